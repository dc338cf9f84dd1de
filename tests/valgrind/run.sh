#!/usr/bin/env bash
# Runs the core test suite under valgrind memcheck: a definite leak or any
# memory error fails the test. Runs inside tests/keyring-session.sh (the
# secret-store tests need a keyring) unless already in one.
#
#   tests/valgrind/run.sh [BUILD_DIR] [meson test arguments...]
#
# Child processes the tests start (gemini-keysctl, the crash writer) are not
# traced; the suite's own programs are.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-_build}
shift || true
cd "$root"

if ! command -v valgrind >/dev/null; then
  echo "valgrind: not installed (apt-get install valgrind)" >&2
  exit 1
fi
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" -Dgui=false
fi
meson compile -C "$build"

wrap=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite
      --errors-for-leak-kinds=definite --error-exitcode=1 --track-origins=yes
      --num-callers=40 "--suppressions=$here/gemini-keys.supp")

# meson test splits --wrap's value as a POSIX shell would: each word is
# single-quoted, so a path with spaces (or quotes) stays one argument.
shell_quote() {
  local word out=()
  for word in "$@"; do
    out+=("'${word//\'/\'\\\'\'}'")
  done
  echo "${out[*]}"
}

# GLib's slice allocator is plain malloc in 2.76+, but be explicit; and no
# MALLOC_CHECK_/MALLOC_PERTURB_, which valgrind replaces anyway. GK_TEST_SLOW
# lets the long-running tests do fewer rounds.
run=(env G_SLICE=always-malloc MALLOC_CHECK_= MALLOC_PERTURB_= GK_TEST_SLOW=1
     meson test -C "$build" --suite core --wrap "$(shell_quote "${wrap[@]}")"
     --timeout-multiplier 10 --num-processes 2 --print-errorlogs "$@")

if [ -n "${GK_IN_KEYRING_SESSION:-}" ]; then
  "${run[@]}"
else
  tests/keyring-session.sh "${run[@]}"
fi
