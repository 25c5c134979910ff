#!/usr/bin/env bash
# The whole suite, stage by stage, with the time each took. `make test` runs it
# after scripts/setup-tools.sh; .ci/run runs `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
timings=()

stage() {  # stage NAME CMD...
  local name=$1 start=$SECONDS
  shift
  echo "==> $name"
  "$@"
  timings+=("$(printf '%-28s %4ss' "$name" $((SECONDS - start)))")
}

stage "format" cargo fmt --all -- --check
# The suite plants faults inside the engine: built with `fault-injection`
# (tests/engine_faults.rs requires it), never in a release build.
stage "clippy (ssr)" cargo clippy --features ssr,fault-injection --all-targets -- -D warnings
stage "clippy (hydrate, wasm32)" cargo clippy --features hydrate --lib --target wasm32-unknown-unknown -- -D warnings
# Unit tests and the store conformance suite on SQLite and PostgreSQL.
stage "unit + conformance tests" scripts/with-postgres.sh cargo test --features ssr,fault-injection
stage "release build" cargo leptos build --release --split --precompress  # as `make build`
# Browser tests against the release server, on a fresh database of each kind.
e2e() {  # e2e BACKEND
  OPSHUB_E2E_BACKEND=$1 OPSHUB_E2E_BASE_URL="${OPSHUB_E2E_BASE_URL:-http://127.0.0.1:3917}" \
    scripts/with-postgres.sh bash -c 'cd end2end && npx playwright test'
}
stage "end-to-end, SQLite" e2e sqlite
stage "end-to-end, PostgreSQL" e2e postgres

echo
echo "stage timings:"
printf '  %s\n' "${timings[@]}"
echo "  total $((SECONDS))s"
