#!/bin/sh
# Runs "$@" in a private D-Bus session with its own, unlocked
# gnome-keyring-daemon and a throw-away HOME, so tests never touch the
# user's keyring.
set -eu
if [ -z "${GK_IN_KEYRING_SESSION:-}" ]; then
  GK_IN_KEYRING_SESSION=1 exec dbus-run-session -- "$0" "$@"
fi
HOME=$(mktemp -d /tmp/gk-test-home.XXXXXX)
XDG_DATA_HOME="$HOME/.local/share"
XDG_CONFIG_HOME="$HOME/.config"
XDG_RUNTIME_DIR="$HOME/runtime"
mkdir -p "$XDG_DATA_HOME" "$XDG_CONFIG_HOME" "$XDG_RUNTIME_DIR"
chmod 700 "$XDG_RUNTIME_DIR"
export HOME XDG_DATA_HOME XDG_CONFIG_HOME XDG_RUNTIME_DIR
# --login unlocks (creating it on first use) the login keyring, the default
# collection libsecret stores into.
printf 'gk-test-password' | gnome-keyring-daemon --daemonize --login >/dev/null
eval "$(gnome-keyring-daemon --start --components=secrets)"
export GNOME_KEYRING_CONTROL
# The daemon leaves with the private bus when dbus-run-session ends.
status=0
"$@" || status=$?
rm -rf "$HOME"
exit $status
