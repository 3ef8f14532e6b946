#!/usr/bin/env bash
# Builds the example operators and the test fixture guests for wasm32-wasip2 (release),
# then puts each component where jobs and tests look for it:
#   plugins-examples/<dir>/<crate>.wasm   (next to the example's job.yaml)
#   tests/fixtures/wasm/<crate>.wasm
# Uses the host's cargo target directory, so one directory holds every build's cache.
# With arguments (`build-plugins.sh fraud-detection …`), only those Rust examples are
# built (what `make demo` needs).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rivulet/target}"
out="$CARGO_TARGET_DIR/wasm32-wasip2/release"

# The crate name of the package whose manifest is $1.
crate_name() {
  sed -n 's/^name *= *"\(.*\)"/\1/p' "$1" | head -n1
}

# Copy $1 to $2 after checking it is a WebAssembly component (not a core module).
install_component() {
  local src="$1" dst="$2" header
  if [ ! -f "$src" ]; then
    echo "build-plugins: $src was not built" >&2
    exit 1
  fi
  header="$(od -An -tx1 -N8 "$src" | tr -d ' \n')"
  if [ "$header" != "0061736d0d000100" ]; then
    echo "build-plugins: $src is not a WebAssembly component (header $header)" >&2
    exit 1
  fi
  cp -f "$src" "$dst"
}

# build_workspace <workspace dir> <destination dir, or "" for next to each crate>
build_workspace() {
  local ws="$1" dest="$2" dir crate n=0
  (cd "$ws" && cargo build --release --target wasm32-wasip2)
  for dir in "$ws"/*/; do
    [ -f "$dir/Cargo.toml" ] || continue
    crate="$(crate_name "$dir/Cargo.toml")"
    if [ -n "$dest" ]; then
      mkdir -p "$dest"
      install_component "$out/$crate.wasm" "$dest/$crate.wasm"
    else
      install_component "$out/$crate.wasm" "${dir%/}/$crate.wasm"
    fi
    n=$((n + 1))
  done
  echo "build-plugins: $n components from $ws"
}

if [ $# -gt 0 ]; then
  for name in "$@"; do
    dir="$root/plugins-examples/$name"
    [ -f "$dir/Cargo.toml" ] || { echo "build-plugins: no Rust example plugins-examples/$name" >&2; exit 2; }
    crate="$(crate_name "$dir/Cargo.toml")"
    (cd "$root/plugins-examples" && cargo build --release --target wasm32-wasip2 -p "$crate")
    install_component "$out/$crate.wasm" "$dir/$crate.wasm"
  done
  echo "build-plugins: $# example(s): $*"
  exit 0
fi

build_workspace "$root/plugins-examples" ""
build_workspace "$root/tests/fixtures/guests" "$root/tests/fixtures/wasm"

# Operators in Python, JavaScript and TypeScript (folders with app.py, app.js or app.ts), each skipped when
# its component is newer than its sources.
for dir in "$root"/plugins-examples/*/ "$root"/plugins-examples/*/*/; do
  if [ -f "$dir/app.py" ] || [ -f "$dir/app.js" ] || [ -f "$dir/app.ts" ]; then
    bash "$root/scripts/build-operator.sh" "$dir"
  fi
done
for dir in "$root"/tests/fixtures/python/*/ "$root"/tests/fixtures/js/*/; do
  [ -d "$dir" ] || continue
  name="$(basename "$dir" | tr '-' '_')"
  bash "$root/scripts/build-operator.sh" "$dir" "$root/tests/fixtures/wasm/$name.wasm"
done
