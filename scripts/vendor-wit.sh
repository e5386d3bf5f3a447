#!/usr/bin/env bash
# Re-vendor the official wasi:http WIT files, verbatim, from the crate package
# of the wasmtime release berth builds against (crates.io is the only source
# this project's machines can reach). Run by hand when bumping wasmtime; the
# result is committed under wit/ and CI checks it against wit/CHECKSUMS.
set -euo pipefail
version="${1:-48.0.8}"
top="$(cd "$(dirname "$0")/.." && pwd)"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

mkdir -p "$scratch/src"
cat >"$scratch/Cargo.toml" <<TOML
[package]
name = "vendor-wit"
version = "0.0.0"
edition = "2021"
[dependencies]
wasmtime-wasi-http = { version = "=$version", default-features = false }
TOML
: >"$scratch/src/lib.rs"
(cd "$scratch" && cargo fetch --quiet)
src="$(cd "$scratch" && cargo metadata --format-version 1 --quiet |
  python3 -c 'import json,sys; m=json.load(sys.stdin); print([p["manifest_path"] for p in m["packages"] if p["name"]=="wasmtime-wasi-http"][0])')"
src="$(dirname "$src")"

rm -rf "$top/wit/p2" "$top/wit/p3"
mkdir -p "$top/wit/p2" "$top/wit/p3"
cp -r "$src/wit/." "$top/wit/p2/"
cp -r "$src/src/p3/wit/." "$top/wit/p3/"
(cd "$top/wit" && find p2 p3 -type f -name '*.wit' | sort | xargs sha256sum >CHECKSUMS)
echo "vendored wasi:http WIT from wasmtime-wasi-http $version into $top/wit"
