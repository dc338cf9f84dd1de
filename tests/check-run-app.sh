#!/usr/bin/env bash
# The README's commands as a new user meets them, from a fresh clone whose
# path contains a space:
#
#   1. `./run app` under LANG=vi_VN.UTF-8 builds the clone and starts the
#      app; its main window appears with the Vietnamese title (the build
#      tree's catalogue is in use), and app.quit over D-Bus closes it with
#      exit status 0.
#   2. The valgrind step (tests/valgrind/run.sh) runs one test there.
#
# Runs inside tests/keyring-session.sh (a private D-Bus session, keyring and
# HOME) and under an X server (xvfb-run), as tests/run-tests.sh does. The
# clone is of the repository's committed HEAD, not of uncommitted changes.
#
#   tests/check-run-app.sh [REPOSITORY]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repo=${1:-$root}

app_id=io.github.geminikeys.GeminiKeys
# The window title in Vietnamese (po/vi.po: "Gemini Keys").
vi_title="Quản lý Gemini Keys"
# Generous: the clone is built from scratch on a loaded 2-core machine.
build_timeout=1200
window_timeout=120
quit_timeout=60

if [ -z "${DISPLAY:-}" ] || [ -z "${DBUS_SESSION_BUS_ADDRESS:-}" ]; then
  echo "check-run-app: needs an X display and a D-Bus session (see tests/run-tests.sh)" >&2
  exit 1
fi
for tool in xwininfo gapplication git; do
  if ! command -v "$tool" >/dev/null; then
    echo "check-run-app: $tool is not installed" >&2
    exit 1
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gk run app.XXXXXX")
clone="$tmp/my projects/gemini keys"
app_pid=
cleanup() {
  if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
    kill "$app_pid" 2>/dev/null || true
    wait "$app_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "check-run-app: FAILED: $*" >&2
  if [ -f "$tmp/app.log" ]; then
    echo "--- last lines of ./run app" >&2
    tail -n 40 "$tmp/app.log" >&2
  fi
  exit 1
}

# The id of the first viewable top-level window named $1, if any.
viewable_window() {
  local id
  for id in $(xwininfo -root -children 2>/dev/null | grep -F "\"$1\"" | awk '{print $1}'); do
    if xwininfo -id "$id" 2>/dev/null | grep -q 'Map State: IsViewable'; then
      echo "$id"
      return 0
    fi
  done
  return 1
}

mkdir -p "$tmp/my projects"
git clone --quiet "$repo" "$clone"
echo "== ./run app in \"$clone\" (LANG=vi_VN.UTF-8)"

# Only LANG says which language: nothing more specific may override it.
(cd "$clone" && exec env -u LC_ALL -u LC_MESSAGES -u LANGUAGE LANG=vi_VN.UTF-8 \
   timeout --signal=TERM "$build_timeout" ./run app) > "$tmp/app.log" 2>&1 &
app_pid=$!

# The build comes first; the window follows within $window_timeout of the
# app's start.
deadline=$((SECONDS + build_timeout))
window=
while [ $SECONDS -lt $deadline ]; do
  if window=$(viewable_window "$vi_title"); then
    break
  fi
  if ! kill -0 "$app_pid" 2>/dev/null; then
    wait "$app_pid" && status=0 || status=$?
    app_pid=
    fail "./run app exited with status $status before showing its window"
  fi
  if grep -q "^Starting Gemini Keys" "$tmp/app.log" &&
     [ $((deadline - SECONDS)) -gt $window_timeout ]; then
    deadline=$((SECONDS + window_timeout))
  fi
  sleep 1
done
if [ -z "$window" ]; then
  echo "--- top-level windows:" >&2
  xwininfo -root -children >&2 || true
  fail "no viewable window titled \"$vi_title\" (is the Vietnamese catalogue found?)"
fi
echo "main window $window: \"$vi_title\""

# app.quit closes the window (saving its size) and ends the app.
gapplication action "$app_id" quit || fail "gapplication action $app_id quit"
deadline=$((SECONDS + quit_timeout))
while kill -0 "$app_pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
  sleep 1
done
if kill -0 "$app_pid" 2>/dev/null; then
  fail "the app did not quit within ${quit_timeout}s of app.quit"
fi
wait "$app_pid" && status=0 || status=$?
app_pid=
[ "$status" -eq 0 ] || fail "./run app exited with status $status after app.quit"
echo "./run app: window shown in Vietnamese, quit cleanly"

# The valgrind step from the same path, on one test.
echo "== tests/valgrind/run.sh in \"$clone\""
(cd "$clone" && tests/valgrind/run.sh _build test-crypto) > "$tmp/valgrind.log" 2>&1 ||
  { tail -n 40 "$tmp/valgrind.log" >&2; fail "tests/valgrind/run.sh _build test-crypto"; }
grep -E '^Ok:|^Fail:' "$tmp/valgrind.log"
echo "check-run-app: passed"
