# opshub — the two commands of the README:
#   make run    build and serve the hub on SQLite with demo data (http://127.0.0.1:3000)
#   make test   the whole suite (what CI runs)
#   make bench  the engine benchmark (prints figures)
# Both install whatever is missing first (scripts/setup-tools.sh; idempotent).

SHELL := bash
# cargo-leptos must find wasm-bindgen and wasm-opt on PATH, or it would try to
# download them; ours come from cargo install and npm (.tools/).
export PATH := $(CURDIR)/.tools/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

# CI builds in a fresh clone each time; a target dir outside the clone keeps
# its dependencies compiled between runs.
ifeq ($(CI),true)
export CARGO_TARGET_DIR ?= $(HOME)/.cache/opshub/target
endif
export OPSHUB_BIN := $(or $(CARGO_TARGET_DIR),target)/release/opshub

.PHONY: run test setup build bench
.DEFAULT_GOAL := run

setup:
	@scripts/setup-tools.sh

# What the release build is made of. `make build` runs cargo-leptos only when
# one of these changed since the last build (or the binary is missing):
# regenerating the browser bundle takes ~30 s even when nothing changed, and
# `make run` on a built tree should serve at once.
BUILD_INPUTS := $(shell find src style public migrations -type f) Cargo.toml Cargo.lock Leptos.toml
BUILD_STAMP := target/site/.built-by-make
# --split: every page but the hub is a lazy route, cut into wasm chunks the
# browser fetches when it first shows that page (required: without it the JS
# imports a placeholder module and nothing hydrates);
# --precompress: the site's files also as .br/.gz at maximum quality, which
# the server sends instead of compressing on the fly.
build: $(BUILD_STAMP)
$(BUILD_STAMP): $(BUILD_INPUTS) $(if $(wildcard $(OPSHUB_BIN)),,FORCE) | setup
	cargo leptos build --release --split --precompress
	@touch $@

.PHONY: FORCE
FORCE:

run: build
	OPSHUB_SEED_DEMO_WHEN_EMPTY=true $(OPSHUB_BIN) serve

test: setup
	@scripts/test.sh

# Engine figures (runs/s, items/s, claim latency) on SQLite and PostgreSQL.
bench: build
	$(OPSHUB_BIN) bench engine
