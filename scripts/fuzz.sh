#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60):
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and
# cargo-fuzz (`cargo install cargo-fuzz`); exits 0 with a message when
# either is missing and BERTH_FUZZ_REQUIRED is unset. Targets live in
# fuzz/fuzz_targets (see fuzz/README.md). Each run starts from the
# committed seeds in fuzz/seeds/TARGET plus a corpus kept between runs in
# $BERTH_FUZZ_DIR (default ~/.cache/berth-fuzz); the committed seeds are
# never written. A crash stops the script with the reproducer's path and
# exit status 1; reproduce it with
#
#   cargo +nightly fuzz run -s none TARGET PATH        (from the repo root)
#
# The targets build without a sanitizer by default (wasmtime's trap
# handlers and AddressSanitizer do not mix; berth is safe Rust): set
# FUZZ_SANITIZER=address to build the pure targets (fields, uri, egress,
# host_api) with ASan.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"

seconds="${1:-60}"
shift || true
all_targets=(fields uri egress host_api http1)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

missing() {
  echo "fuzz: $1; skipping the fuzz run" >&2
  if [ -n "${BERTH_FUZZ_REQUIRED:-}" ]; then exit 1; fi
  exit 0
}
cargo +nightly --version >/dev/null 2>&1 || missing "no nightly toolchain"
cargo fuzz --version >/dev/null 2>&1 || missing "cargo-fuzz is not installed (cargo install cargo-fuzz)"

work="${BERTH_FUZZ_DIR:-$HOME/.cache/berth-fuzz}"
export CARGO_TARGET_DIR="${BERTH_FUZZ_TARGET_DIR:-$HOME/.cache/berth-fuzz-target}"
sanitizer="${FUZZ_SANITIZER:-none}"

for target in "${targets[@]}"; do
  san="$sanitizer"
  # The server target runs wasm: no ASan there.
  [ "$target" = http1 ] && san=none
  corpus="$work/corpus/$target"
  artifacts="$work/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  echo "==> fuzz $target for ${seconds}s (sanitizer: $san)"
  # -timeout: one input taking longer than 20 s is a hang (a finding).
  if ! cargo +nightly fuzz run --fuzz-dir fuzz -s "$san" "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
      -artifact_prefix="$artifacts" -print_final_stats=1 2>"$work/$target.log"; then
    tail -n 40 "$work/$target.log" >&2
    echo "fuzz: $target FAILED; reproducers in $artifacts:" >&2
    ls -1 "$artifacts" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)|^Done' "$work/$target.log" || true
done
echo "fuzz: ${#targets[@]} target(s), ${seconds}s each, no crash"
