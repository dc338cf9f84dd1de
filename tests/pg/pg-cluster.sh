#!/usr/bin/env bash
# Runs a command beside a throwaway PostgreSQL 15 cluster:
#
#   tests/pg/pg-cluster.sh COMMAND [ARGS...]
#
# The cluster lives in a new temporary folder, runs as an unprivileged user
# (the "postgres" system user when started as root, else the caller),
# listens on 127.0.0.1 only (no Unix socket), on a free port, and has a test
# role with a random password and its own database (the role may create
# more: a test may make one per case). COMMAND runs with:
#
#   GK_TEST_PG_URI    postgresql://gk_test:PASSWORD@127.0.0.1:PORT/gk_test
#   GK_TEST_PG_STOP   a command line that stops the server (fast shutdown)
#   GK_TEST_PG_START  a command line that starts it again, same port
#   GK_TEST_PG_DIR    the temporary folder (the cluster is in data/)
#
# Everything is removed when the script ends, whether COMMAND passed,
# failed or the script was interrupted or terminated. Its exit status is
# COMMAND's.
set -euo pipefail

bindir=${GK_PG_BINDIR:-/usr/lib/postgresql/15/bin}
if [ ! -x "$bindir/initdb" ]; then
  echo "pg-cluster: PostgreSQL 15 is not installed ($bindir/initdb); apt-get install postgresql-15" >&2
  exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/gk-pg.XXXXXX")
data="$dir/data"
child=

if [ "$(id -u)" -eq 0 ]; then
  owner=postgres
  chown "$owner" "$dir"
  as_owner() { runuser -u "$owner" -- "$@"; }
else
  owner=$(id -un)
  as_owner() { "$@"; }
fi

cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$child" ]; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  if [ -f "$data/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

password=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
superpass=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
# The superuser's password reaches initdb in a file only its owner reads.
printf '%s\n' "$superpass" > "$dir/superpass"
chmod 600 "$dir/superpass"
[ "$owner" = "$(id -un)" ] || chown "$owner" "$dir/superpass"
as_owner "$bindir/initdb" -D "$data" -U postgres --pwfile="$dir/superpass" \
  --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
  cat "$dir/initdb.log" >&2
  exit 1
}

# A free port: asked of the kernel, then retried should another process
# take it before the server binds it.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_server() {
  as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories= -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
    start >/dev/null
}

started=
for _ in 1 2 3 4 5; do
  port=$(free_port)
  if start_server; then
    started=1
    break
  fi
done
if [ -z "$started" ]; then
  cat "$dir/server.log" >&2
  exit 1
fi

PGPASSWORD=$superpass "$bindir/psql" -q -v ON_ERROR_STOP=1 -X \
  "postgresql://postgres@127.0.0.1:$port/postgres" <<EOF
CREATE ROLE gk_test LOGIN CREATEDB PASSWORD '$password';
CREATE DATABASE gk_test OWNER gk_test;
EOF

export GK_TEST_PG_URI="postgresql://gk_test:$password@127.0.0.1:$port/gk_test"
export GK_TEST_PG_DIR="$dir"
pg_ctl_line="$bindir/pg_ctl -D $data"
if [ "$owner" != "$(id -un)" ]; then
  pg_ctl_line="runuser -u $owner -- $pg_ctl_line"
fi
export GK_TEST_PG_STOP="$pg_ctl_line -m fast -w stop"
export GK_TEST_PG_START="$pg_ctl_line -l $dir/server.log -w -t 60 -o '-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories= -c fsync=off' start"

# In the background, so a signal reaches the trap at once.
"$@" &
child=$!
status=0
wait "$child" || status=$?
child=
exit "$status"
