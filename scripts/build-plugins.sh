#!/usr/bin/env bash
# Builds the example operators and the test fixture guests for wasm32-wasip2, then puts
# each component where jobs and tests look for it:
#   plugins-examples/<dir>/<crate>.wasm   and   tests/fixtures/wasm/<crate>.wasm
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
out="$CARGO_TARGET_DIR/wasm32-wasip2/release"

(cd plugins-examples && cargo build --release --quiet)
for dir in plugins-examples/*/; do
  [ -f "$dir/Cargo.toml" ] || continue
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)
  cp -f "$out/$crate.wasm" "$dir/$crate.wasm"
done

(cd tests/fixtures/guests && cargo build --release --quiet)
mkdir -p tests/fixtures/wasm
for dir in tests/fixtures/guests/*/; do
  [ -f "$dir/Cargo.toml" ] || continue
  crate=$(sed -n 's/^name = "\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)
  cp -f "$out/$crate.wasm" "tests/fixtures/wasm/$crate.wasm"
done
echo "plugins: built $(ls plugins-examples/*/*.wasm tests/fixtures/wasm/*.wasm | wc -l) components"
