#!/usr/bin/env bash
# Installs the tools that building and testing opshub needs, and nothing that is
# already there. Idempotent: every step prints one line, "skipped" or "installed".
# Usage (from anywhere; it works from the repo root): scripts/setup-tools.sh
# Afterwards put the project-local wasm-opt first on PATH for cargo-leptos:
#   export PATH="$PWD/.tools/node_modules/.bin:$PATH"
set -euo pipefail
trap 'echo "setup-tools: failed (line $LINENO, exit $?)" >&2' ERR
cd "$(dirname "$0")/.."
SECONDS=0

CARGO_LEPTOS_VERSION=0.3.10   # newer releases need Rust 1.96+; the toolchain is 1.95
BINARYEN_VERSION=132.0.0      # Debian's binaryen 108 emits wasm that fails at hydration
TOOLS_DIR=.tools

say() { printf '%-18s %s\n' "$1:" "$2"; }
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else echo "setup-tools: need root (or sudo) for: $*" >&2; exit 1
  fi
}

# 1. Debian packages. `apt-get update` only when something must be installed.
pkgs=()
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
[ -x /usr/bin/chromium ] || pkgs+=(chromium)
if [ ${#pkgs[@]} -eq 0 ]; then
  say apt "skipped (node, npm, chromium present)"
else
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
  say apt "installed ${pkgs[*]}"
fi

# 2. The browser half of the app compiles to wasm. (Command output is captured
#    before grepping it: in `cmd | grep -q` grep may exit first and kill cmd with
#    SIGPIPE, which pipefail would report as a failure.)
targets=$(rustup target list --installed)
if grep -qx wasm32-unknown-unknown <<<"$targets"; then
  say wasm32-target "skipped (installed)"
else
  rustup target add wasm32-unknown-unknown >/dev/null
  say wasm32-target "installed"
fi

# 3. cargo-leptos, pinned.
have=$(cargo leptos --version 2>/dev/null || true)
if [[ "$have" == *" $CARGO_LEPTOS_VERSION" ]]; then
  say cargo-leptos "skipped ($have)"
else
  cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
  say cargo-leptos "installed $CARGO_LEPTOS_VERSION"
fi

# 4. wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly,
#    or cargo-leptos would try to download its own copy (which fails here).
[ -f Cargo.lock ] || { echo "setup-tools: Cargo.lock not found in $PWD; run 'cargo generate-lockfile' first" >&2; exit 1; }
want=$(awk '/^\[\[package\]\]/ {p=0} /^name = "wasm-bindgen"$/ {p=1}
            p && /^version = / {gsub(/"/, "", $3); print $3; exit}' Cargo.lock)
[ -n "$want" ] || { echo "setup-tools: no wasm-bindgen package in Cargo.lock" >&2; exit 1; }
have=$(wasm-bindgen --version 2>/dev/null || true)
if [ "$have" = "wasm-bindgen $want" ]; then
  say wasm-bindgen "skipped ($have)"
else
  # No --locked: wasm-bindgen-cli's own lockfile names a crate the registry lacks.
  cargo install wasm-bindgen-cli --version "$want"
  say wasm-bindgen "installed $want"
fi

# 5. wasm-opt from the npm package (a node-run build of binaryen) into .tools/.
wasm_opt="$TOOLS_DIR/node_modules/.bin/wasm-opt"
have=$("$wasm_opt" --version 2>/dev/null || true)
if [[ "$have" == *"version ${BINARYEN_VERSION%%.*}"* ]]; then
  say wasm-opt "skipped ($have)"
else
  mkdir -p "$TOOLS_DIR"
  npm install --prefix "$TOOLS_DIR" --no-save --no-package-lock --no-audit --no-fund \
    --loglevel=error "binaryen@$BINARYEN_VERSION" >/dev/null
  say wasm-opt "installed $("$wasm_opt" --version)"
fi

# 6. Playwright for end2end/. It drives Debian's /usr/bin/chromium, so no
#    browser download (`npx playwright install` cannot work here).
# Skipped only when every package end2end/package.json names is there.
missing=$(cd end2end && node -e '
  const fs = require("fs");
  const wanted = Object.keys(require("./package.json").devDependencies);
  console.log(wanted.filter((name) => !fs.existsSync(`node_modules/${name}/package.json`)).join(" "));
')
if [ -z "$missing" ]; then
  say playwright "skipped (end2end/node_modules complete)"
else
  export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
  if [ -f end2end/package-lock.json ]; then verb=ci; else verb=install; fi
  (cd end2end && npm "$verb" --no-audit --no-fund --loglevel=error >/dev/null)
  say playwright "installed (npm $verb in end2end/)"
fi

echo "setup-tools: done in ${SECONDS}s"
