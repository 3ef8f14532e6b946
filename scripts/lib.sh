#!/usr/bin/env bash
# Helpers the set-up scripts share. Source it: `. "$(dirname "$0")/lib.sh"`. Messages go
# to stderr (some scripts print their result on stdout).

# apt_install WHO PACKAGE... — install Debian packages (with sudo when not root), saying
# who asks and why.
apt_install() {
  local who="$1"
  shift
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "$who: installing Debian packages: $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# ensure_node WHO WHY — Node.js and npm, from Debian when missing.
ensure_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "$1: Node.js and npm are needed $2" >&2
    apt_install "$1" nodejs npm
  fi
}
