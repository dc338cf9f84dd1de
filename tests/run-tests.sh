#!/usr/bin/env bash
# The test command (./run test): every step below runs, whether or not an
# earlier one failed, and a summary of all of them ends the output; the
# exit status is non-zero if any failed. The last line reads
# "N passed, N failed", counting steps.
#
#   tests/run-tests.sh [BUILD_DIR]
#
# Steps:
#   suites         every meson test suite, in UTC, inside a private D-Bus
#                  session with a real gnome-keyring-daemon, under Xvfb
#   tz-hochiminh   the core and ui suites (the CLI tests are in core) again
#                  under TZ=Asia/Ho_Chi_Minh (UTC+7)
#   tz-losangeles  and under TZ=America/Los_Angeles (DST)
#   asan           the core, gateway and postgresql suites built with AddressSanitizer
#                  and UndefinedBehaviorSanitizer
#   valgrind       the core suite under valgrind memcheck
#   fuzz           each libFuzzer target, a fixed seed and number of inputs
#   run-app        ./run app from a fresh clone in a path with spaces, in
#                  Vietnamese, and the valgrind step for one test there
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-_build}
asan_build=${build}-asan

in_session() {
  xvfb-run -a -s "-screen 0 1280x1024x24" tests/keyring-session.sh "$@"
}

suites() {
  in_session meson test -C "$build" --print-errorlogs --num-processes 2
}

# The suites whose tests depend on the local zone, in another one.
suites_in_zone() {
  in_session meson test -C "$build" --setup "$1" --print-errorlogs --num-processes 2 \
    --suite core --suite ui
}

asan() {
  if [ ! -f "$asan_build/build.ninja" ]; then
    meson setup "$asan_build" -Db_sanitize=address,undefined -Db_lundef=false -Dgui=false || return
  fi
  meson compile -C "$asan_build" || return
  # Leaks are checked with valgrind; here ASan looks for invalid accesses and
  # UBSan for undefined behaviour, and either fails the test.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
    in_session meson test -C "$asan_build" --print-errorlogs --num-processes 2 \
      --suite core --suite gateway --suite postgresql
}

valgrind_core() {
  tests/valgrind/run.sh "$build"
}

fuzz() {
  tests/fuzz/run-fuzzers.sh
}

run_app() {
  in_session tests/check-run-app.sh
}

names=()
results=()
step_log=$(mktemp)
trap 'rm -f "$step_log"' EXIT
step() {
  local name=$1 start=$SECONDS status=0
  shift
  echo
  echo "==== $name"
  "$@" 2>&1 | tee "$step_log"
  status=${PIPESTATUS[0]}
  names+=("$name")
  if [ $status -eq 0 ]; then
    results+=("passed  $((SECONDS - start)) s")
  else
    # The summary is what a reader sees first: name the failing tests and
    # their failed checks there, not only in the step's long output.
    results+=("FAILED  $((SECONDS - start)) s (exit status $status)$(
      grep -E '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|ERROR) |^not ok |^Bail out|^\*\*$|ERROR:|CRITICAL' "$step_log" |
        head -n 20 | tr -d '\r' | awk '{ printf "\n    %s", $0 }')")
  fi
}

step suites suites
step tz-hochiminh suites_in_zone hochiminh
step tz-losangeles suites_in_zone losangeles
step asan asan
step valgrind valgrind_core
step fuzz fuzz
step run-app run_app

passed=0
failed=0
echo
echo "==== summary"
for i in "${!names[@]}"; do
  printf '%-15s %s\n' "${names[$i]}" "${results[$i]}"
  case ${results[$i]} in
    passed*) passed=$((passed + 1)) ;;
    *) failed=$((failed + 1)) ;;
  esac
done
echo "total time $((SECONDS / 60)) min $((SECONDS % 60)) s"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
