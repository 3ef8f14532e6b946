MAKEFLAGS += --no-print-directory
# Rivulet — the two commands a user needs are `make demo` and `make test`.
# Everything is idempotent: set-up steps skip what is installed, cargo skips what is built.

CARGO_TARGET_DIR ?= $(CURDIR)/target
export CARGO_TARGET_DIR
RIVULET_RELEASE := $(CARGO_TARGET_DIR)/release/rivulet
RIVULET_DEV := $(CARGO_TARGET_DIR)/debug/rivulet

.PHONY: setup build plugins operator demo test bench clean

setup:
	@bash scripts/setup.sh

plugins: setup
	@bash scripts/build-plugins.sh

## One operator from its source folder, in Rust, Python or JavaScript:
##   make operator DIR=plugins-examples/python-fraud-detection  → DIR/<name>.wasm
operator: setup
	@test -n "$(DIR)" || { echo "usage: make operator DIR=path/to/operator" >&2; exit 2; }
	@bash scripts/build-operator.sh $(DIR)

## Host binary (release) and every example plugin.
build: plugins
	cargo build --release -p rivulet-host
	@echo "built $(RIVULET_RELEASE)"

## Set up, build, and run the fraud-detection example on its bundled sample.
demo: build
	$(RIVULET_RELEASE) run plugins-examples/fraud-detection/job.yaml \
	  --param input=sample.jsonl --param output=$(CURDIR)/target/demo-alerts \
	  --checkpoint-dir $(CURDIR)/target/demo-checkpoints --checkpoint-interval 1s
	@echo "--- fraud alerts (committed part files of target/demo-alerts/) ---"
	@cat $(CURDIR)/target/demo-alerts/part-*

## Set up, build plugins and fixtures, run every test.
test: plugins
	cargo test --workspace --no-fail-fast

## Benchmarks (results go to docs/benchmarks.md by hand).
bench: plugins
	cargo bench -p rivulet-host --bench engine
	cargo bench -p rivulet-host --bench checkpoint
	cargo bench -p rivulet-host --bench languages
	cargo bench -p rivulet-host --bench server

clean:
	cargo clean
