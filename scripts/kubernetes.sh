#!/usr/bin/env bash
# A real Kubernetes API server for tests, the way controller-runtime's envtest runs one:
# kube-apiserver and etcd only (no controller-manager, scheduler or kubelet, so Pods are
# stored but never run), both bound to 127.0.0.1. The two binaries are built from the Go
# module proxy with the module in scripts/kubernetes/ (k8s.io/kubernetes and
# go.etcd.io/etcd/server/v3 at the versions its go.mod pins) into
# ~/.cache/rivulet/kubernetes/bin, with Go's caches under ~/.cache/rivulet/go.
#
#   scripts/kubernetes.sh build        build both binaries (idempotent: skipped while the
#                                      go.mod, go.sum and main.go files match the last build;
#                                      the first build takes many minutes on 2 cores)
#   scripts/kubernetes.sh start DIR    build if needed, then start (or find running) etcd and
#                                      kube-apiserver whose state is in DIR; wait until
#                                      /readyz says ok; print the API URL. DIR/env then has
#                                      KUBE_API=https://127.0.0.1:PORT, KUBE_TOKEN (a static
#                                      token in group system:masters), KUBE_CA (the file that
#                                      verifies the API's self-signed certificate), ETCD_URL,
#                                      ETCD_PID and KUBE_APISERVER_PID
#   scripts/kubernetes.sh stop DIR     stop both (SIGTERM, then SIGKILL after 20 s); idempotent
#
# A second `start` on the same DIR after a `stop` restarts on the same ports with the same
# etcd data. RIVULET_KUBE_START_TIMEOUT (seconds, default 180) bounds the wait for /readyz.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
. "$here/scripts/lib.sh"
src="$here/scripts/kubernetes"
cache="$HOME/.cache/rivulet"
bin="${RIVULET_KUBE_BIN:-$cache/kubernetes/bin}"
timeout="${RIVULET_KUBE_START_TIMEOUT:-180}"

die() { echo "kubernetes.sh: $*" >&2; exit 1; }
say() { echo "kubernetes.sh: $*" >&2; }

# Go as this module wants it: the machine's toolchain (never a downloaded one), every cache
# in ~/.cache/rivulet/go so that a second build is quick, static binaries.
go_env() {
  local go; go="$(command -v go || echo /usr/local/go/bin/go)"
  [ -x "$go" ] || die "go not found: building kube-apiserver and etcd needs Go >= 1.25"
  export GOTOOLCHAIN=local GOPATH="$cache/go" GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build" CGO_ENABLED=0
  GO="$go"
}

# What the binaries are built from: a new go.mod, go.sum or main.go means a rebuild.
source_hash() { cat "$src/go.mod" "$src/go.sum" "$src/kube-apiserver/main.go" "$src/etcd/main.go" | sha256sum | cut -d' ' -f1; }

build() {
  local hash; hash="$(source_hash)"
  built() { [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ] && [ "$(cat "$bin/.stamp" 2>/dev/null)" = "$hash" ]; }
  built && return 0
  mkdir -p "$bin"
  # One build at a time (tests may start several servers at once); the others wait for it.
  exec 9> "$bin/.lock"
  flock 9
  if built; then exec 9>&-; return 0; fi
  go_env
  local k8s etcd
  k8s="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$src/go.mod")"
  etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "$src/go.mod")"
  say "building kube-apiserver $k8s and etcd $etcd with $("$GO" version | cut -d' ' -f3) into $bin"
  say "(the first build downloads ~750 MB of modules and compiles for 5 to 10 minutes on 2 cores)"
  local start=$SECONDS
  # The version the API server reports (/version); the compatibility version it serves is
  # compiled in, whatever this says.
  local major="${k8s#v}"; major="${major%%.*}"
  local minor="${k8s#v*.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  (cd "$src" && "$GO" build -trimpath -o "$bin/kube-apiserver.new" \
    -ldflags "-s -w -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
    ./kube-apiserver) || die "building kube-apiserver failed"
  say "kube-apiserver built in $((SECONDS - start)) s; building etcd"
  (cd "$src" && "$GO" build -trimpath -ldflags "-s -w" -o "$bin/etcd.new" ./etcd) || die "building etcd failed"
  mv "$bin/kube-apiserver.new" "$bin/kube-apiserver"
  mv "$bin/etcd.new" "$bin/etcd"
  echo "$hash" > "$bin/.stamp"
  say "built in $((SECONDS - start)) s"
  exec 9>&-
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# running DIR NAME: the process in DIR/NAME.pid is alive, not a zombie, and still ours
# (a pid may be reused after a reboot or a long time).
running() {
  local pidfile="$1/$2.pid" pid state
  [ -f "$pidfile" ] || return 1
  pid="$(cat "$pidfile")"
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
  [ -n "$state" ] && [ "$state" != "Z" ] || return 1
  [ "$(basename "$(head -zn1 "/proc/$pid/cmdline" 2>/dev/null | tr -d '\0')")" = "$2" ]
}

# stop_one DIR NAME: SIGTERM, then SIGKILL after 20 s.
stop_one() {
  local dir="$1" name="$2"
  if running "$dir" "$name"; then
    local pid; pid="$(cat "$dir/$name.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do running "$dir" "$name" || break; sleep 0.2; done
    if running "$dir" "$name"; then kill -9 "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$dir/$name.pid"
}

# fail DIR WHY: show the logs' tails, stop what started, and give up.
fail() {
  local dir="$1"
  for log in etcd kube-apiserver; do
    if [ -s "$dir/$log.log" ]; then
      echo "---- last lines of $dir/$log.log" >&2
      tail -25 "$dir/$log.log" >&2
    fi
  done
  stop_one "$dir" kube-apiserver
  stop_one "$dir" etcd
  die "$2"
}

# api_get PATH: GET from the API server as the admin (uses start's dir, token and api_port).
api_get() { curl -sS --max-time 5 --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port$1"; }

start() {
  [ -n "${1:-}" ] || die "usage: kubernetes.sh start DIR"
  mkdir -p "$1"
  local dir; dir="$(cd "$1" && pwd)"
  build
  # What stays from one start to the next in DIR: ports, keys, token, certificates, etcd data.
  if [ ! -f "$dir/ports" ]; then
    local a b c
    a="$(free_port)"; b="$(free_port)"; c="$(free_port)"
    while [ "$b" = "$a" ]; do b="$(free_port)"; done
    while [ "$c" = "$a" ] || [ "$c" = "$b" ]; do c="$(free_port)"; done
    printf 'etcd_port=%s\netcd_peer_port=%s\napi_port=%s\n' "$a" "$b" "$c" > "$dir/ports"
  fi
  local etcd_port etcd_peer_port api_port
  etcd_port="$(sed -n 's/^etcd_port=//p' "$dir/ports")"
  etcd_peer_port="$(sed -n 's/^etcd_peer_port=//p' "$dir/ports")"
  api_port="$(sed -n 's/^api_port=//p' "$dir/ports")"
  if [ ! -f "$dir/sa.key" ]; then
    # The key service-account tokens are signed with (and checked against).
    openssl genrsa -out "$dir/sa.key.new" 2048 2>/dev/null || die "openssl could not make an RSA key"
    openssl rsa -in "$dir/sa.key.new" -pubout -out "$dir/sa.pub" 2>/dev/null || die "openssl could not write the public key"
    mv "$dir/sa.key.new" "$dir/sa.key"
  fi
  if [ ! -f "$dir/tokens.csv" ]; then
    # token,user,uid,"groups": one admin, who may do anything (system:masters).
    echo "rivulet-test-$(openssl rand -hex 16),admin,admin,\"system:masters\"" > "$dir/tokens.csv"
  fi
  local token; token="$(cut -d, -f1 "$dir/tokens.csv")"
  local etcd_url="http://127.0.0.1:$etcd_port"

  if running "$dir" kube-apiserver && running "$dir" etcd && [ "$(api_get /readyz 2>/dev/null)" = ok ]; then
    echo "https://127.0.0.1:$api_port"
    return 0
  fi
  # Half up (one of them died): start both again.
  stop_one "$dir" kube-apiserver
  stop_one "$dir" etcd

  say "starting etcd on $etcd_url (data in $dir/etcd)"
  mkdir -p "$dir/etcd" "$dir/certs"
  chmod 700 "$dir/etcd"
  : > "$dir/etcd.log"
  # --unsafe-no-fsync: the data is thrown away with the test, and fsync is slow.
  setsid nohup "$bin/etcd" --name rivulet --data-dir "$dir/etcd" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
    --initial-cluster "rivulet=http://127.0.0.1:$etcd_peer_port" \
    --unsafe-no-fsync --log-level warn \
    >> "$dir/etcd.log" 2>&1 < /dev/null &
  echo $! > "$dir/etcd.pid"
  local waited=0
  until curl -sS --max-time 2 "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"'; do
    running "$dir" etcd || fail "$dir" "etcd exited while starting (log: $dir/etcd.log)"
    [ "$waited" -lt $((timeout * 5)) ] || fail "$dir" "etcd was not healthy within $timeout s (log: $dir/etcd.log)"
    sleep 0.2; waited=$((waited + 1))
  done

  say "starting kube-apiserver on https://127.0.0.1:$api_port"
  : > "$dir/kube-apiserver.log"
  # Flags as envtest sets them: ServiceAccount admission off (no controller-manager makes
  # the default service accounts), privileged containers allowed, RBAC with a static
  # admin token; a self-signed serving certificate is made in DIR/certs on first start.
  # No endpoint reconciler: the `kubernetes` Service's Endpoints may not hold a loopback
  # address, so the default one logs an error every 10 s.
  setsid nohup "$bin/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
    --cert-dir="$dir/certs" \
    --etcd-servers="$etcd_url" \
    --token-auth-file="$dir/tokens.csv" \
    --authorization-mode=RBAC \
    --service-account-key-file="$dir/sa.pub" \
    --service-account-signing-key-file="$dir/sa.key" \
    --service-account-issuer="https://127.0.0.1:$api_port" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --disable-admission-plugins=ServiceAccount \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    >> "$dir/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$dir/kube-apiserver.pid"
  waited=0
  until [ -f "$dir/certs/apiserver.crt" ] && [ "$(api_get /readyz 2>/dev/null)" = ok ]; do
    running "$dir" kube-apiserver || fail "$dir" "kube-apiserver exited while starting (log: $dir/kube-apiserver.log)"
    running "$dir" etcd || fail "$dir" "etcd exited while kube-apiserver was starting (log: $dir/etcd.log)"
    [ "$waited" -lt $((timeout * 2)) ] || fail "$dir" "kube-apiserver's /readyz was not ok within $timeout s (log: $dir/kube-apiserver.log; last answer: $(api_get '/readyz?verbose' 2>&1 | grep -v '\[+\]' | tail -5 | tr '\n' ' '))"
    sleep 0.5; waited=$((waited + 1))
  done

  cat > "$dir/env.new" <<ENV
KUBE_API=https://127.0.0.1:$api_port
KUBE_TOKEN=$token
KUBE_CA=$dir/certs/apiserver.crt
ETCD_URL=$etcd_url
ETCD_PID=$(cat "$dir/etcd.pid")
KUBE_APISERVER_PID=$(cat "$dir/kube-apiserver.pid")
ENV
  mv "$dir/env.new" "$dir/env"
  say "ready ($dir/env)"
  echo "https://127.0.0.1:$api_port"
}

stop() {
  [ -n "${1:-}" ] || die "usage: kubernetes.sh stop DIR"
  [ -d "$1" ] || return 0
  stop_one "$1" kube-apiserver
  stop_one "$1" etcd
  rm -f "$1/env"
}

case "${1:-}" in
  build) build ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) die "usage: kubernetes.sh build | start DIR | stop DIR" ;;
esac
