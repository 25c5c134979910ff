#!/usr/bin/env bash
# Started by Playwright's webServer (see playwright.config.ts): serves the release
# build on a fresh SQLite database filled with demo data.
# Runs from the repo root because the server serves its assets from target/site.
set -euo pipefail
cd "$(dirname "$0")/.."
# OPSHUB_BIN: the server binary (make test passes it when CARGO_TARGET_DIR moves it).
bin=${OPSHUB_BIN:-target/release/opshub}
if [ ! -x "$bin" ] || [ ! -d target/site ]; then
  echo "start-server: $bin or target/site missing; run 'cargo leptos build --release' first" >&2
  exit 1
fi
# A new directory per run; it is left behind (exec below leaves no one to delete
# it), which costs one small SQLite file per run.
tmp=$(mktemp -d "${TMPDIR:-/tmp}/opshub-e2e.XXXXXX")
export OPSHUB_DATABASE_URL="sqlite://$tmp/e2e.db"
export OPSHUB_LISTEN="127.0.0.1:${OPSHUB_E2E_PORT:-3000}"
"$bin" migrate
"$bin" seed-demo
exec "$bin" serve
