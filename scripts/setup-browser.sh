#!/usr/bin/env bash
# Installs Debian's Chromium for the web UI's end-to-end tests (driven by playwright-core
# from web-ui/node_modules; Playwright's own browser download does not work offline).
# Skipped when RIVULET_CHROMIUM names a browser that exists.
set -euo pipefail
browser="${RIVULET_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
. "$(dirname "$0")/lib.sh"
apt_install "setup (for the web UI tests)" chromium
