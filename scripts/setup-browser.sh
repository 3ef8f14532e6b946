#!/usr/bin/env bash
# Installs Debian's Chromium for the web UI's end-to-end tests (driven by playwright-core
# from web-ui/node_modules; Playwright's own browser download does not work offline).
# Skipped when RIVULET_CHROMIUM names a browser that exists.
set -euo pipefail
browser="${RIVULET_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$browser" ]; then
  exit 0
fi
echo "setup: installing Debian's chromium (for the web UI tests)"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
