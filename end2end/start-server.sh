#!/usr/bin/env bash
# Started by Playwright's webServer (see playwright.config.ts): serves the release
# build on a fresh database filled with demo data.
# Runs from the repo root because the server serves its assets from target/site.
set -euo pipefail
cd "$(dirname "$0")/.."
# OPSHUB_BIN: the server binary (make test passes it when CARGO_TARGET_DIR moves it).
bin=${OPSHUB_BIN:-target/release/opshub}
if [ ! -x "$bin" ] || [ ! -d target/site ]; then
  echo "start-server: $bin or target/site missing; run 'make build' first" >&2
  exit 1
fi
# A new directory per run; it is left behind (exec below leaves no one to delete
# it), which costs one small SQLite file per run.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/opshub-e2e.XXXXXX")
# OPSHUB_E2E_BACKEND=postgres runs the same suite on a fresh PostgreSQL
# database (OPSHUB_TEST_POSTGRES_URL: an admin URL, as scripts/with-postgres.sh
# provides); the default is a fresh SQLite file.
case "${OPSHUB_E2E_BACKEND:-sqlite}" in
  sqlite) export OPSHUB_DATABASE_URL="sqlite://$tmp/e2e.db" ;;
  postgres)
    admin=${OPSHUB_TEST_POSTGRES_URL:?OPSHUB_TEST_POSTGRES_URL must name a PostgreSQL admin URL}
    db="opshub_e2e_$(date +%s)_$$"
    # Databases of earlier runs go first, so they do not pile up.
    for old in $(psql "$admin" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE 'opshub\_e2e\_%'"); do
      psql "$admin" -qAtc "DROP DATABASE IF EXISTS $old WITH (FORCE)" >/dev/null
    done
    psql "$admin" -qAtc "CREATE DATABASE $db" >/dev/null
    export OPSHUB_DATABASE_URL="${admin%/*}/$db"
    ;;
  *) echo "start-server: OPSHUB_E2E_BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac
export OPSHUB_LISTEN="127.0.0.1:${OPSHUB_E2E_PORT:-3000}"
"$bin" migrate
"$bin" seed-demo
# A large scope whose every subject changed between two syncs: its drift runs
# for seconds, long enough for the journeys that act on a running run (join,
# abort, progress moving). Demo scopes finish in milliseconds.
fleet=${OPSHUB_E2E_FLEET_SIZE:-60000}
for version in 1 2; do
  node -e '
    const [size, version, file] = process.argv.slice(1);
    const items = Array.from({ length: Number(size) }, (_, i) => ({
      subject_type: "server", external_id: `srv-${i}`, display_name: `Server ${i}`,
      payload: { os_version: `2026.${version}`, owner: "platform" },
    }));
    require("fs").writeFileSync(file, JSON.stringify(items));
  ' "$fleet" "$version" "$tmp/fleet-$version.json"
  "$bin" inventory import --tenant acme --scope servers/fleet "$tmp/fleet-$version.json"
done
exec "$bin" serve
