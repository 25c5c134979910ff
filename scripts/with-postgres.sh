#!/usr/bin/env bash
# Usage: scripts/with-postgres.sh CMD [ARGS...]
# Runs CMD with OPSHUB_TEST_POSTGRES_URL set to an admin URL (database `postgres`,
# allowed to CREATE/DROP DATABASE) and exits with CMD's exit code. The server is,
# in order of preference:
#   1. whatever OPSHUB_TEST_POSTGRES_URL already names;
#   2. a server answering on 127.0.0.1:5432 (user postgres, trust auth);
#   3. a throwaway cluster in a temp dir on a free port, deleted on exit
#      (PostgreSQL is installed from apt first if no initdb exists).
# OPSHUB_FORCE_PRIVATE_PG=1 skips step 2, to exercise step 3 on a machine that
# has a server on 5432.
# If no PostgreSQL can be had this fails loudly: PostgreSQL tests must never be
# skipped silently.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

fail() { echo "with-postgres: PostgreSQL could not be had: $*" >&2; exit 1; }

if [ -n "${OPSHUB_TEST_POSTGRES_URL:-}" ]; then
  echo "with-postgres: using OPSHUB_TEST_POSTGRES_URL from the environment" >&2
  exec "$@"
fi

# 2. A running server on 5432 (every machine of this project's kind has one).
shared_url=postgres://postgres@127.0.0.1:5432/postgres
answers() {  # answers URL [BINDIR]
  local psql=${2:+$2/}psql pg_isready=${2:+$2/}pg_isready
  export PGCONNECT_TIMEOUT=3
  if command -v "$psql" >/dev/null; then  # proves that login works, not only the port
    "$psql" "$1" -Atqc 'select 1' >/dev/null 2>&1
  elif command -v "$pg_isready" >/dev/null; then
    "$pg_isready" -q -d "$1"
  else
    return 1
  fi
}
if [ "${OPSHUB_FORCE_PRIVATE_PG:-0}" != 1 ] && answers "$shared_url"; then
  echo "with-postgres: using the server on 127.0.0.1:5432" >&2
  export OPSHUB_TEST_POSTGRES_URL=$shared_url
  exec "$@"
fi

# 3. A throwaway cluster.
find_bin() {  # the bin dir of the newest server install (client-only dirs lack initdb)
  local found="" f
  for f in /usr/lib/postgresql/*/bin/initdb; do [ -x "$f" ] && found=${f%/initdb}; done
  [ -z "$found" ] || printf '%s\n' "$found"
}
bin=$(find_bin)
if [ -z "$bin" ]; then
  echo "with-postgres: no initdb found; installing postgresql from apt" >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  { $sudo apt-get update -qq &&
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } ||
    fail "apt-get install postgresql failed"
  bin=$(find_bin)
  [ -n "$bin" ] || fail "apt installed postgresql but no /usr/lib/postgresql/*/bin/initdb exists"
fi

# initdb and postgres refuse to run as root: run them as an unprivileged user.
if [ "$(id -u)" -eq 0 ]; then
  if id postgres >/dev/null 2>&1; then pg_user=postgres; else pg_user=nobody; fi
  as_pg() { runuser -u "$pg_user" -- "$@"; }
else
  as_pg() { "$@"; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/opshub-pg.XXXXXX") || fail "cannot make a temp dir"
[ "$(id -u)" -ne 0 ] || chown "$pg_user" "$tmp"
cleanup() {
  as_pg "$bin/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

here=$PWD
cd "$tmp"  # the unprivileged user may not be able to read the caller's directory
as_pg "$bin/initdb" -D "$tmp/data" -U postgres --auth=trust -E UTF8 --no-locale \
  >"$tmp/initdb.log" 2>&1 || fail "initdb failed: $(tail -n5 "$tmp/initdb.log")"

# Start on the first free port from 55432. Another run may grab the same port
# between the check and the start, so a start that finds its port taken moves on.
# fsync off etc.: a cluster that is thrown away needs no durability.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
port=55432 started=""
while [ -z "$started" ] && [ "$port" -lt 55532 ]; do
  rm -f "$tmp/server.log"
  if port_free "$port" &&
     as_pg "$bin/pg_ctl" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start -o \
       "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
       >/dev/null 2>&1; then
    started=1
  elif [ -f "$tmp/server.log" ] && ! grep -q "already in use" "$tmp/server.log"; then
    break  # failed for another reason: trying more ports would not help
  else
    port=$((port + 1))
  fi
done
[ -n "$started" ] || fail "the server did not start (port $port): $(tail -n5 "$tmp/server.log" 2>/dev/null)"
cd "$here"

export OPSHUB_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres
answers "$OPSHUB_TEST_POSTGRES_URL" "$bin" || fail "the throwaway server on port $port does not answer"
echo "with-postgres: using a throwaway cluster on 127.0.0.1:$port ($tmp)" >&2
# CMD runs in the background so that a TERM/INT sent to this script is passed on
# to it and the cluster is still removed (bash runs no trap while it waits for a
# foreground child). `<&0` keeps stdin, which `&` would replace with /dev/null.
"$@" <&0 & child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM
while :; do
  wait "$child" && rc=0 || rc=$?
  kill -0 "$child" 2>/dev/null || break  # wait was only interrupted by a signal
done
exit "$rc"
