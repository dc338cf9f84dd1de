#!/usr/bin/env bash
# Runs every test suite of the build in $1 inside a private D-Bus session
# with a real gnome-keyring-daemon, under Xvfb for the UI suite.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-_build}
xvfb-run -a -s "-screen 0 1280x1024x24" \
  tests/keyring-session.sh meson test -C "$build" --print-errorlogs --num-processes 2
