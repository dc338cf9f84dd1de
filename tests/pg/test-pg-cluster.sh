#!/usr/bin/env bash
# pg-cluster.sh itself (TAP): the cluster runs as an unprivileged user,
# listens on loopback only, and everything is gone when the script ends,
# whether its command passed, failed or the script was terminated.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cluster="$here/pg-cluster.sh"
bindir=${GK_PG_BINDIR:-/usr/lib/postgresql/15/bin}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

n=0
failed=0
check() {
  local what=$1
  shift
  n=$((n + 1))
  if "$@"; then
    echo "ok $n - $what"
  else
    echo "not ok $n - $what"
    failed=1
  fi
}

# Whether a server answers at the URI saved in $1.
answers() {
  "$bindir/pg_isready" -q -t 5 -d "$(cat "$1")"
}

gone() {
  [ ! -e "$(cat "$work/dir")" ] && ! answers "$work/uri"
}

echo "1..9"

# A command that fails: its status comes back, and nothing is left.
"$cluster" sh -c '
  printf "%s" "$GK_TEST_PG_DIR" > "$0/dir"
  printf "%s" "$GK_TEST_PG_URI" > "$0/uri"
  port=${GK_TEST_PG_URI##*@127.0.0.1:}; port=${port%%/*}
  ss -ltnH "sport = :$port" | awk "{ print \$4 }" > "$0/listen"
  stat -c %U "$GK_TEST_PG_DIR/data" > "$0/owner"
  "$1/pg_isready" -q -t 5 -d "$GK_TEST_PG_URI" && exit 3' "$work" "$bindir"
status=$?
check "the command's exit status comes back" [ "$status" -eq 3 ]
check "the server listened on 127.0.0.1 only" [ "$(cat "$work/listen")" = "$(sed -n 's/.*@\(127\.0\.0\.1:[0-9]*\)\/.*/\1/p' "$work/uri")" ]
if [ "$(id -u)" -eq 0 ]; then
  check "the cluster belonged to an unprivileged user" [ "$(cat "$work/owner")" = postgres ]
else
  check "the cluster belonged to the caller" [ "$(cat "$work/owner")" = "$(id -un)" ]
fi
check "after a failure, the folder is removed and the server stopped" gone

# Terminated while its command runs.
rm -f "$work/dir" "$work/uri"
"$cluster" sh -c 'printf "%s" "$GK_TEST_PG_DIR" > "$0/dir"
  echo $$ > "$0/child"; printf "%s" "$GK_TEST_PG_URI" > "$0/uri"; exec sleep 300' "$work" &
pid=$!
for _ in $(seq 600); do
  [ -s "$work/uri" ] && break
  sleep 0.1
done
check "the server answers while the command runs" answers "$work/uri"
kill -TERM "$pid"
wait "$pid"
status=$?
check "terminated, the script says so" [ "$status" -eq 143 ]
check "terminated, the folder is removed and the server stopped" gone
check "terminated, its command is stopped too" eval '! kill -0 "$(cat "$work/child")" 2>/dev/null'

# A command that passes.
"$cluster" sh -c 'printf "%s" "$GK_TEST_PG_DIR" > "$0/dir"
  printf "%s" "$GK_TEST_PG_URI" > "$0/uri"' "$work"
check "after success, the folder is removed and the server stopped" gone

exit $failed
