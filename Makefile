# opshub — the two commands of the README:
#   make run    build and serve the hub on SQLite with demo data (http://127.0.0.1:3000)
#   make test   the whole suite (what CI runs)
# Both install whatever is missing first (scripts/setup-tools.sh; idempotent).

SHELL := bash
# cargo-leptos must find wasm-bindgen and wasm-opt on PATH, or it would try to
# download them; ours come from cargo install and npm (.tools/).
export PATH := $(CURDIR)/.tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: run test setup build
.DEFAULT_GOAL := run

setup:
	@scripts/setup-tools.sh

build: setup
	cargo leptos build --release

run: build
	OPSHUB_SEED_DEMO_WHEN_EMPTY=true target/release/opshub serve

test: setup
	@scripts/test.sh
