#!/usr/bin/env bash
# A real PostgreSQL for tests and demos, from Debian's packages: a cluster of its own in
# DIR (initdb, trust authentication), listening on a free 127.0.0.1 port only.
#
#   scripts/postgres.sh start DIR     start it (or find it running); prints its URL,
#                                     postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR      stop it
#
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

die() { echo "postgres.sh: $*" >&2; exit 1; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
bin="$(find_bin)"
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  apt_install postgres.sh postgresql
  bin="$(find_bin)"
  [ -n "$bin" ] || die "postgresql did not install"
fi

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  [ -n "${1:-}" ] || die "usage: postgres.sh start DIR"
  mkdir -p "$1"
  local dir; dir="$(cd "$1" && pwd)"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null || die "initdb failed in $dir"
  fi
  if [ ! -f "$dir/port" ]; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' > "$dir/port"
  fi
  local port; port="$(cat "$dir/port")"
  if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
      || { tail -20 "$dir/data/server.log" >&2; die "the server did not start (log: $dir/data/server.log)"; }
  fi
  echo "postgres://postgres@127.0.0.1:$port/postgres"
}

stop() {
  [ -n "${1:-}" ] || die "usage: postgres.sh stop DIR"
  [ -f "$1/data/PG_VERSION" ] || return 0
  as_pg "$bin/pg_ctl" -D "$1/data" -m immediate stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: postgres.sh start DIR | stop DIR" ;;
esac
