#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer) against the core sources (and the gateway's,
# for the targets that fuzz the gateway) and runs them from the seeds in
# tests/fuzz/corpus/<target>. Two modes:
#
#   tests/fuzz/run-fuzzers.sh [--runs N] [TARGET...]
#       Reproducible, what ./run test does: a fixed seed and a fixed number
#       of inputs per target (runs_for below, about 10 s each on an idle
#       2-core machine; --runs N for all), starting from the checked-in
#       seeds only, so the same commit always gives the same result.
#   tests/fuzz/run-fuzzers.sh --explore [SECONDS] [TARGET...]
#       Exploratory: a random seed, SECONDS per target (default 600), and
#       the inputs found so far in $FUZZ_BUILD/corpus/<target> (kept between
#       runs). Run it before resolving work that touches a parser.
#
# Needs clang (Debian: clang) and the -dev packages of the build. A crash
# leaves its input in $FUZZ_BUILD/crashes/ (FUZZ_BUILD defaults to
# _build-fuzz) and fails the run: fix the bug, then add the input to
# tests/fuzz/corpus/<target>/, where the core and gateway suites replay it.
set -euo pipefail
cd "$(dirname "$0")/../.."

# The reproducible mode's seed and number of inputs per target.
FIXED_SEED=1
runs_for() {
  case $1 in
    key-import) echo 5000 ;;       # derives keys: ~500 inputs/s
    request) echo 30000 ;;
    usage-scanner) echo 50000 ;;
    *) echo 100000 ;;
  esac
}
DEFAULT_EXPLORE_SECONDS=600

mode=fixed
runs=
seconds=$DEFAULT_EXPLORE_SECONDS
while [ $# -gt 0 ]; do
  case $1 in
    --runs)
      runs=${2:?--runs needs a number}
      shift 2
      ;;
    --explore)
      mode=explore
      shift
      if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
        seconds=$1
        shift
      fi
      ;;
    -*)
      echo "usage: $0 [--runs N | --explore [SECONDS]] [TARGET...]" >&2
      exit 2
      ;;
    *)
      break
      ;;
  esac
done
build=${FUZZ_BUILD:-_build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(crypto-decrypt outcome usage-stream key-import usage-scanner request upstream-request)
fi

CC=${CC:-clang}
if ! command -v "$CC" >/dev/null; then
  echo "run-fuzzers: $CC not found (apt-get install clang)" >&2
  exit 1
fi

mkdir -p "$build/obj" "$build/corpus" "$build/crashes"

# The same macros as meson's config.h; their values do not matter here.
cat > "$build/config.h" <<'H'
#pragma once
#define APP_ID "io.github.geminikeys.GeminiKeys"
#define GETTEXT_PACKAGE "gemini-keys"
#define LOCALEDIR "/usr/share/locale"
#define PACKAGE_VERSION "fuzz"
#define PKGDATADIR "/usr/share/gemini-keys"
H

for kind in source header; do
  ext=c; [ $kind = header ] && ext=h
  glib-compile-resources --generate-$kind --c-name gk_core \
    --sourcedir resources --target "$build/gk-core-resources.$ext" resources/core.gresource.xml
done

pkgs="glib-2.0 gobject-2.0 gio-2.0 sqlite3 libsecret-1 libcrypto json-glib-1.0 libsoup-3.0 libcurl
      libmicrohttpd libpq xlsxwriter"
# shellcheck disable=SC2207
cflags=($(pkg-config --cflags $pkgs))
# shellcheck disable=SC2207
libs=($(pkg-config --libs $pkgs) -lm)
common=(-g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
        -DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 -DGLIB_VERSION_MAX_ALLOWED=GLIB_VERSION_2_74
        -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
        -I"$build" -Isrc/core -Isrc/gateway -Itests/fuzz "${cflags[@]}")

# Whether $1 must be compiled again: its source or a header changed since.
stale() {
  local obj=$1 src=$2
  [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] ||
    [ -n "$(find src/core src/gateway -name '*.h' -newer "$obj" -print -quit)" ]
}

# The core once, instrumented for coverage but without libFuzzer's main.
objs=()
for src in src/core/*.c "$build/gk-core-resources.c"; do
  obj="$build/obj/$(basename "${src%.c}").o"
  if stale "$obj" "$src"; then
    "$CC" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
gateway_objs=()
for src in src/gateway/*.c; do
  obj="$build/obj/$(basename "${src%.c}").o"
  if stale "$obj" "$src"; then
    "$CC" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
  fi
  gateway_objs+=("$obj")
done

passed=0
failed=0
for t in "${targets[@]}"; do
  src="tests/fuzz/fuzz-$t.c"
  bin="$build/fuzz-$t"
  extra=()
  case $t in
    usage-scanner|request|upstream-request) extra=("${gateway_objs[@]}") ;;
  esac
  "$CC" "${common[@]}" -fsanitize=fuzzer,address,undefined "$src" "${extra[@]}" "${objs[@]}" \
    "${libs[@]}" -o "$bin"

  if [ $mode = fixed ]; then
    # New inputs go to a folder emptied first: nothing from an earlier run
    # changes this one.
    out_corpus="$build/corpus-fixed/$t"
    rm -rf "$out_corpus"
    n=${runs:-$(runs_for "$t")}
    # -reload=0: no time-driven rereading of the output folder. Without
    # address space randomisation the stack depth libFuzzer counts as
    # coverage is the same from run to run, and so is what it explores.
    limits=(-seed=$FIXED_SEED -runs="$n" -reload=0)
    norandom=(setarch "$(uname -m)" --addr-no-randomize)
    if ! "${norandom[@]}" true 2>/dev/null; then
      echo "run-fuzzers: cannot turn address space randomisation off; runs may differ" >&2
      norandom=()
    fi
    echo "== fuzz-$t: $n inputs, seed $FIXED_SEED"
  else
    out_corpus="$build/corpus/$t"
    limits=(-max_total_time="$seconds")
    norandom=()
    echo "== fuzz-$t for ${seconds}s, random seed"
  fi
  mkdir -p "$out_corpus"
  # LeakSanitizer stays on: an error path that forgets to free shows up
  # as a leak of that one input. The time-out per input is generous: a
  # loaded machine must not turn a slow input into a failure.
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       G_DEBUG= G_MESSAGES_DEBUG= \
       "${norandom[@]}" "$bin" "${limits[@]}" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$build/crashes/$t-" \
         "$out_corpus" "tests/fuzz/corpus/$t" 2> "$build/fuzz-$t.log"; then
    echo "fuzz-$t FAILED: see $build/fuzz-$t.log and $build/crashes/" >&2
    tail -n 40 "$build/fuzz-$t.log" >&2
    failed=$((failed + 1))
  else
    passed=$((passed + 1))
    # The DONE line's coverage figures are the same in every fixed run.
    grep -E '^INFO: Seed:|DONE|^stat::average_exec_per_sec|^Done' \
      "$build/fuzz-$t.log" || true
  fi
done

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
