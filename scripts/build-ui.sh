#!/usr/bin/env bash
# Builds the web UI (web-ui/ → web-ui/dist, embedded into the `rivulet` binary by
# crates/api/src/ui.rs): npm packages pinned by web-ui/package-lock.json, the API types
# generated from web-ui/src/api/openapi.json, a type check, then Vite.
# Skips everything when nothing the build reads has changed since the last build, so
# cargo does not re-embed (and relink) an identical UI.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
here="$(cd "$(dirname "$0")/.." && pwd)"
ui="$here/web-ui"

ensure_node build-ui "to build the web UI"

stamp="$ui/node_modules/.rivulet-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$ui/package-lock.json" "$stamp"; then
  echo "build-ui: installing the web UI's npm packages (pinned by web-ui/package-lock.json)"
  (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$ui/package-lock.json" "$stamp"
fi

inputs_hash() {
  (cd "$ui" && find src public index.html package-lock.json tsconfig.json vite.config.ts -type f ! -name schema.d.ts -print0 \
    | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}
want="$(inputs_hash)"
built="$ui/dist/.rivulet-inputs"
if [ -f "$ui/dist/index.html" ] && [ -f "$built" ] && [ "$(cat "$built")" = "$want" ]; then
  exit 0
fi
echo "build-ui: building web-ui/dist (type check + Vite)"
(cd "$ui" && npm run --silent build)
echo "$want" > "$built"
