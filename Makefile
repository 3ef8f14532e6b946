MAKEFLAGS += --no-print-directory
# Rivulet — the two commands a user needs are `make demo` and `make test`.
# Everything is idempotent: set-up steps skip what is installed, cargo skips what is built.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
# `make demo`, `make build` and `make test` share one build: the dev profile, whose
# dependencies are optimized (Cargo.toml), so the tests reuse every dependency the demo
# compiled. `make release` builds the fully optimized binary for production.
RIVULET_DEV := $(CARGO_TARGET_DIR)/debug/rivulet
RIVULET_RELEASE := $(CARGO_TARGET_DIR)/release/rivulet

.PHONY: setup setup-operators setup-tests build release plugins demo-plugins ui ui-api ui-screenshots operator demo test test-sdk test-ui schemathesis fuzz bench bench-nexmark clean

## What building the host and Rust operators needs (Debian packages, the wasm target).
setup:
	@bash scripts/setup.sh

## Also the Python and JavaScript operator toolchains.
setup-operators:
	@bash scripts/setup.sh operators

## Also what the tests run (Java and Maven for Kafka, SeaweedFS for S3).
setup-tests:
	@bash scripts/setup.sh tests

## Every example plugin and test fixture, in Rust, Python and JavaScript.
plugins: setup-operators
	@bash scripts/build-plugins.sh

## Only the plugin the demo runs.
demo-plugins: setup
	@bash scripts/build-plugins.sh fraud-detection

## One operator from its source folder, in Rust, Python or JavaScript:
##   make operator DIR=plugins-examples/python-fraud-detection  → DIR/<name>.wasm
operator: setup-operators
	@test -n "$(DIR)" || { echo "usage: make operator DIR=path/to/operator" >&2; exit 2; }
	@bash scripts/build-operator.sh $(DIR)

## The web UI (web-ui/dist, embedded into the binary); skipped when unchanged.
ui: setup
	@bash scripts/build-ui.sh

## Refresh the UI's copy of the server's OpenAPI document (a host test checks it).
ui-api:
	cargo run -q -p rivulet -- openapi > web-ui/src/api/openapi.json

## The host binary with the web UI (the build the tests share), and every example plugin.
build: plugins ui
	cargo build -p rivulet
	@echo "built $(RIVULET_DEV)"

## The fully optimized host binary (a separate, slower build: for production and benchmarks).
release: ui
	cargo build --release -p rivulet
	@echo "built $(RIVULET_RELEASE)"

## Set up, build, and run the fraud-detection example on its bundled sample. Builds
## only what the demo runs: the host (shared with the tests) and one plugin.
demo: demo-plugins ui
	cargo build -p rivulet
	$(RIVULET_DEV) run plugins-examples/fraud-detection/job.yaml \
	  --param input=plugins-examples/fraud-detection/sample.jsonl --param output=$(CURDIR)/target/demo-alerts \
	  --checkpoint-dir $(CURDIR)/target/demo-checkpoints --checkpoint-interval 1s
	@echo "--- fraud alerts (committed part files of target/demo-alerts/) ---"
	@cat $(CURDIR)/target/demo-alerts/part-*

## Set up, build plugins, fixtures and the UI, run every test: Rust, then the UI's
## component tests (Vitest) and end-to-end tests (Chromium against a real server).
## The SDK's own tests run apart: built natively with its `guest` feature it would turn
## on features (wit-bindgen's id-arena) that wasmtime's crates share, and the host
## tests would then recompile wasmtime instead of reusing what `make demo` built.
test: setup-tests plugins ui
	@bash scripts/setup-browser.sh
	@bash scripts/kafka.sh install
	cargo test --workspace --exclude rivulet-sdk --no-fail-fast
	cargo test -p rivulet-sdk --no-fail-fast
	@$(MAKE) test-sdk
	@$(MAKE) test-ui
	@$(MAKE) schemathesis
	@$(MAKE) fuzz

## The Python and JavaScript SDKs' own tests (their CEP matching, natively).
test-sdk:
	python3 sdk/python/tests/test_cep.py
	node --test sdk/js/test/

## Schemathesis (PyPI) against a real server and its OpenAPI document: ST_EXAMPLES per
## operation (default 25), every check, no finding allowed.
schemathesis:
	@bash scripts/schemathesis.sh

## The fuzz targets (fuzz/), each for FUZZ_SECONDS (default 20), on nightly Rust.
fuzz:
	@bash scripts/fuzz.sh

test-ui:
	cd web-ui && npm run --silent test
	cd web-ui && RIVULET_BIN=$(RIVULET_DEV) node --test e2e/

## Re-take the screenshots in docs/ui/ (the end-to-end test takes them).
ui-screenshots: ui
	cargo build -p rivulet
	cd web-ui && RIVULET_BIN=$(RIVULET_DEV) RIVULET_DOCS_SCREENSHOTS=1 node --test e2e/

## Benchmarks (results go to docs/benchmarks.md by hand).
bench: plugins ui
	cargo bench -p rivulet --bench engine
	cargo bench -p rivulet --bench checkpoint
	cargo bench -p rivulet --bench languages
	cargo bench -p rivulet --bench server
	cargo bench -p rivulet --bench kafka
	cargo bench -p rivulet --bench cluster
	cargo bench -p rivulet --bench joins
	cargo build --release -p rivulet
	cd web-ui && RIVULET_BIN=$(RIVULET_RELEASE) node bench/load.mjs 15 5

## Nexmark side by side with Apache Flink SQL (PyPI apache-flink in ~/.cache on first
## use; Java 17): one stream, each query in both engines, results compared, a table printed.
##   make bench-nexmark NEXMARK_ARGS="--events 1000000 --parallelism 2"
FLINK_VENV ?= $(HOME)/.cache/rivulet/flink-venv
bench-nexmark: plugins ui
	cargo build --release -p rivulet
	@test -x $(FLINK_VENV)/bin/python || python3 -m venv $(FLINK_VENV)
	@$(FLINK_VENV)/bin/python -c "import pyflink" 2>/dev/null || $(FLINK_VENV)/bin/pip install -q apache-flink==2.3.0
	python3 benchmarks/nexmark/side_by_side.py --rivulet $(RIVULET_RELEASE) --flink-python $(FLINK_VENV)/bin/python $(NEXMARK_ARGS)

clean:
	cargo clean
