#!/usr/bin/env bash
# Build one operator from its source folder into a Wasm component, whatever its language:
#   scripts/build-operator.sh DIR [OUT.wasm]
#   - Rust:       DIR/Cargo.toml  → cargo build --release --target wasm32-wasip2
#   - Python:     DIR/app.py      → componentize-py (sdk/python on the path; `Operator = export(...)`)
#   - JavaScript: DIR/app.js      → esbuild bundles sdk/js (imported as "rivulet-sdk"),
#     or TypeScript DIR/app.ts      then componentize-js (no wasi:http); esbuild strips the
#                                   types (type-check with tsc and sdk/js/index.d.ts)
# OUT defaults to DIR/<folder name with - as _>.wasm. Skips the build when OUT is newer
# than the sources, the SDK and the WIT contract. Toolchains come from scripts/setup.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(cd "$1" && pwd)"
name="$(basename "$dir" | tr '-' '_')"
out="${2:-$dir/$name.wasm}"
tools="${RIVULET_TOOLS:-$HOME/.cache/rivulet/tools}"

# Newer than every input?
fresh() {
  [ -f "$out" ] || return 1
  [ -z "$(find "$@" -newer "$out" -type f -not -name '*.wasm' -not -path '*/node_modules/*' -not -path '*/__pycache__/*' 2>/dev/null | head -n1)" ]
}

if [ -f "$dir/app.py" ]; then
  fresh "$dir" "$root/sdk/python" "$root/wit" && exit 0
  cpy="$tools/componentize-py-0.25.1"
  [ -d "$cpy" ] || { echo "build-operator: componentize-py is missing: run scripts/setup.sh operators" >&2; exit 1; }
  echo "build-operator: $dir (Python)" >&2
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  PYTHONPATH="$cpy" python3 -c 'import sys, componentize_py; sys.argv[0] = "componentize-py"; componentize_py.script()' \
    -d "$root/wit" -w rivulet-operator componentize app -p "$dir" -p "$root/sdk/python" -o "$tmp/out.wasm" >/dev/null
  mv "$tmp/out.wasm" "$out"
elif [ -f "$dir/app.js" ] || [ -f "$dir/app.ts" ]; then
  entry="$dir/app.js"
  [ -f "$entry" ] || entry="$dir/app.ts"
  fresh "$dir" "$root/sdk/js/index.js" "$root/sdk/js/cep.js" "$root/sdk/js/cep-nfa.js" "$root/wit" && exit 0
  bin="$root/sdk/js/node_modules/.bin"
  [ -x "$bin/componentize-js" ] || { echo "build-operator: componentize-js is missing: run scripts/setup.sh operators" >&2; exit 1; }
  echo "build-operator: $dir (JavaScript)" >&2
  # componentize-js reads the WIT through a sandbox rooted at the working directory.
  # A stable folder name: it shows in JS stack traces.
  tmp="$root/.build/$name"
  rm -rf "$tmp" && mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  "$bin/esbuild" "$entry" --bundle --format=esm --platform=neutral --log-level=warning \
    --alias:rivulet-sdk="$root/sdk/js/index.js" '--external:rivulet:*' --outfile="$tmp/bundle.js"
  (cd "$root" && "$bin/componentize-js" "${tmp#"$root"/}/bundle.js" --wit wit/operator.wit --world-name rivulet-operator \
    -d http fetch-event -o "${tmp#"$root"/}/out.wasm" >/dev/null)
  mv "$tmp/out.wasm" "$out"
elif [ -f "$dir/Cargo.toml" ]; then
  echo "build-operator: $dir (Rust)" >&2
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rivulet/target}"
  crate="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$dir/Cargo.toml" | head -n1)"
  (cd "$dir" && cargo build --release --target wasm32-wasip2 --quiet)
  cp -f "$CARGO_TARGET_DIR/wasm32-wasip2/release/$crate.wasm" "$out"
else
  echo "build-operator: $dir has no app.py, app.js, app.ts or Cargo.toml" >&2
  exit 1
fi
