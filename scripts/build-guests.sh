#!/usr/bin/env bash
# Rebuilds the guest components from guests/ and refreshes guests/prebuilt/.
# Needs the wasm32-wasip2 target (`rustup target add wasm32-wasip2`).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top/guests"
# A target dir of its own (outside the checkout, so CI rebuilds incrementally).
export CARGO_TARGET_DIR="${BERTH_GUESTS_TARGET_DIR:-$HOME/.cache/berth-guests-target}"
built="$CARGO_TARGET_DIR/wasm32-wasip2/release"
cargo build --quiet --locked --release --target wasm32-wasip2 --workspace
out="$top/guests/prebuilt"
mkdir -p "$out"
for wasm in demo suite command proxy run-probe; do
  cp "$built/$wasm.wasm" "$out/$wasm.wasm"
done
# The demo is also the library's (berth::demo), inside its crate so that
# the crate packages on its own.
cp "$built/demo.wasm" "$top/crates/berth/assets/demo.wasm"
cp "$built/berth-guest-legacy.wasm" "$out/legacy.wasm"
cp "$built/berth-guest-informational.wasm" "$out/informational.wasm"
# Pre-initialisation guests: heavy-init, and one start-up function per way
# of misbehaving (the behaviour is chosen at compile time).
cp "$built/heavy-init.wasm" "$out/heavy-init.wasm"
for behaviour in prints traps loops; do
  INIT_BEHAVIOUR="$behaviour" cargo build --quiet --locked --release --target wasm32-wasip2 \
    -p berth-guest-heavy-init --bin init-misbehaves
  cp "$built/init-misbehaves.wasm" "$out/init-$behaviour.wasm"
done
# wasi:http@0.3.0 guests (Component Model async).
for wasm in p3-hello p3-suite p3-mw-header p3-mw-upper p3-forward p3-run p3-config; do
  cp "$built/$wasm.wasm" "$out/$wasm.wasm"
done
# Guests built with the common guest libraries from crates.io (interop).
for wasm in wstd-proxy wasip3-echo-headers; do
  cp "$built/$wasm.wasm" "$out/$wasm.wasm"
done
cp "$built/berth_guest_waki.wasm" "$out/waki-hello.wasm"
cp "$built/berth_guest_spin.wasm" "$out/spin-hello.wasm"
ls -l "$out"
