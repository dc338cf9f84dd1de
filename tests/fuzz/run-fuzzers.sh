#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (AddressSanitizer and
# UndefinedBehaviorSanitizer) against the core sources (and the gateway's,
# for the targets that fuzz the gateway) and runs each for
# SECONDS (default 30), starting from the seeds in tests/fuzz/corpus/<target>.
#
#   tests/fuzz/run-fuzzers.sh [SECONDS] [TARGET...]
#
# Needs clang (Debian: clang) and the -dev packages of the build. New inputs
# go to $FUZZ_BUILD/corpus/<target> (the checked-in seeds stay as they are);
# a crash leaves its input in $FUZZ_BUILD/crashes/ and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-30}
shift || true
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

pkgs="glib-2.0 gobject-2.0 gio-2.0 sqlite3 libsecret-1 libcrypto json-glib-1.0 libsoup-3.0 libcurl"
# shellcheck disable=SC2207
cflags=($(pkg-config --cflags $pkgs))
# shellcheck disable=SC2207
libs=($(pkg-config --libs $pkgs) -lm)
common=(-g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined
        -DGLIB_VERSION_MIN_REQUIRED=GLIB_VERSION_2_74 -DGLIB_VERSION_MAX_ALLOWED=GLIB_VERSION_2_74
        -DOPENSSL_API_COMPAT=30000 -DOPENSSL_NO_DEPRECATED
        -I"$build" -Isrc/core -Isrc/gateway -Itests/fuzz "${cflags[@]}")

# The core once, instrumented for coverage but without libFuzzer's main.
objs=()
for src in src/core/*.c "$build/gk-core-resources.c"; do
  obj="$build/obj/$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
    "$CC" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
  fi
  objs+=("$obj")
done
gateway_objs=()
for src in src/gateway/*.c; do
  obj="$build/obj/$(basename "${src%.c}").o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ src/gateway/gk-gateway-private.h -nt "$obj" ]; then
    "$CC" "${common[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
  fi
  gateway_objs+=("$obj")
done

status=0
for t in "${targets[@]}"; do
  src="tests/fuzz/fuzz-$t.c"
  bin="$build/fuzz-$t"
  extra=()
  case $t in
    usage-scanner|request|upstream-request) extra=("${gateway_objs[@]}") ;;
  esac
  "$CC" "${common[@]}" -fsanitize=fuzzer,address,undefined "$src" "${extra[@]}" "${objs[@]}" \
    "${libs[@]}" -o "$bin"

  mkdir -p "$build/corpus/$t"
  echo "== fuzz-$t for ${seconds}s"
  # LeakSanitizer stays on: an error path that forgets to free shows up
  # as a leak of that one input.
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
       UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
       G_DEBUG= G_MESSAGES_DEBUG= \
       "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
         -artifact_prefix="$build/crashes/$t-" \
         "$build/corpus/$t" "tests/fuzz/corpus/$t" 2> "$build/fuzz-$t.log"; then
    echo "fuzz-$t FAILED: see $build/fuzz-$t.log and $build/crashes/" >&2
    tail -n 40 "$build/fuzz-$t.log" >&2
    status=1
  else
    grep -E '^stat::number_of_executed_units|^Done' "$build/fuzz-$t.log" || true
  fi
done

if [ $status -eq 0 ]; then
  echo "${#targets[@]} passed, 0 failed"
fi
exit $status
