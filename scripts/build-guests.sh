#!/usr/bin/env bash
# Rebuilds the guest components from guests/ and refreshes guests/prebuilt/.
# Needs the wasm32-wasip2 target (`rustup target add wasm32-wasip2`).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top/guests"
cargo build --quiet --locked --release --target wasm32-wasip2 --workspace
out="$top/guests/prebuilt"
mkdir -p "$out"
for wasm in demo suite; do
  cp "target/wasm32-wasip2/release/$wasm.wasm" "$out/$wasm.wasm"
done
cp target/wasm32-wasip2/release/berth-guest-legacy.wasm "$out/legacy.wasm"
ls -l "$out"
