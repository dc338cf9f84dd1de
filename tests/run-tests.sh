#!/usr/bin/env bash
# Runs every test suite of the build in $1 inside a private D-Bus session
# with a real gnome-keyring-daemon, under Xvfb for the UI suite; then the
# core and gateway suites again in a build with AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-_build}
asan_build=${build}-asan

in_session() {
  xvfb-run -a -s "-screen 0 1280x1024x24" tests/keyring-session.sh "$@"
}

in_session meson test -C "$build" --print-errorlogs --num-processes 2

if [ ! -f "$asan_build/build.ninja" ]; then
  meson setup "$asan_build" -Db_sanitize=address,undefined -Db_lundef=false -Dgui=false
fi
meson compile -C "$asan_build"
# Leaks are checked with valgrind; here ASan looks for invalid accesses and
# UBSan for undefined behaviour, and either fails the test.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1 \
  in_session meson test -C "$asan_build" --print-errorlogs --num-processes 2 --suite core --suite gateway

# The core suite under valgrind memcheck: no definite leaks, no invalid
# reads or writes.
tests/valgrind/run.sh "${build}-valgrind"

# Each libFuzzer target for 30 s with its checked-in seeds.
tests/fuzz/run-fuzzers.sh 30
