#!/usr/bin/env bash
# The project's test command (README "Run the tests"; .ci/run calls it).
# Installs what it needs, rebuilds the guest fixtures when the wasm target is
# available, then runs format, lint, WIT and test checks.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

# The silent-socket test opens 5 000 connections to its own server (about
# 10 500 descriptors): lift the soft limit as far as the hard one allows.
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true

step "WIT files match wit/CHECKSUMS (vendored verbatim)"
(cd wit && sha256sum --quiet -c CHECKSUMS)

step "guest components"
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 ||
   rustup target add wasm32-wasip2 >/dev/null 2>&1; then
  scripts/build-guests.sh
else
  echo "wasm32-wasip2 target unavailable: testing with the committed guests/prebuilt fixtures"
fi

step "interop components (componentize-py, componentize-js)"
if command -v python3 >/dev/null && command -v npm >/dev/null; then
  scripts/build-interop.sh
  export BERTH_REQUIRE_INTEROP=1
else
  echo "python3 or npm missing: interop tests will be skipped"
fi

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the library without its default features (no rustls)"
# An embedder that brings its own outgoing client and terminates TLS
# elsewhere compiles no rustls at all.
if cargo tree -p berth --no-default-features -e normal --locked | grep -q rustls; then
  echo "rustls is still a dependency of berth --no-default-features" >&2
  exit 1
fi
cargo clippy -p berth --no-default-features --locked --quiet -- -D warnings
cargo clippy -p berth --no-default-features --features tls --locked --quiet -- -D warnings

step "cargo test"
cargo test --workspace --locked

step "Kubernetes manifests (schemas, and berth check on the ConfigMap)"
scripts/validate-manifests.sh "$CARGO_TARGET_DIR/debug/berth"

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

step "fuzz smoke (${BERTH_FUZZ_SMOKE_SECONDS:-10}s per target)"
# Where a nightly toolchain is installed, each cargo-fuzz target runs
# briefly from its seeds (scripts/fuzz.sh; fuzz/README.md for longer runs).
if cargo +nightly --version >/dev/null 2>&1; then
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet || echo "cargo-fuzz could not be installed"
  fi
  scripts/fuzz.sh "${BERTH_FUZZ_SMOKE_SECONDS:-10}"
else
  echo "no nightly toolchain: fuzz smoke skipped"
fi

echo
echo "all checks passed"
