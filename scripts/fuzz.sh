#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a bounded time each (FUZZ_SECONDS, default 20):
# cargo fuzz on nightly Rust, both installed here when missing. A crash fails the run
# and leaves its input under fuzz/artifacts/<target>/ (reproduce with
# `cargo +nightly fuzz run <target> <file>` in fuzz/). The corpus grows in a cache
# folder, seeded from fuzz/seeds/.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
seconds="${FUZZ_SECONDS:-20}"
cache="${RIVULET_FUZZ_CACHE:-$HOME/.cache/rivulet/fuzz}"

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "fuzz: installing the nightly Rust toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd "$here/fuzz"
for target in $(cargo +nightly fuzz list); do
  corpus="$cache/corpus/$target"
  mkdir -p "$corpus"
  echo "fuzz: $target for ${seconds}s"
  cargo +nightly fuzz run --target-dir "$cache/target" "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tail -n 12
done
