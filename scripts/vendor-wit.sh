#!/usr/bin/env bash
# Re-vendor the official wasi:http (and wasi:config) WIT files, verbatim, from
# the crate packages of the wasmtime release berth builds against (crates.io is the only source
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
wasmtime-wasi-config = { version = "=$version", default-features = false }
TOML
: >"$scratch/src/lib.rs"
(cd "$scratch" && cargo fetch --quiet)
crate_dir() {
  (cd "$scratch" && cargo metadata --format-version 1 --quiet) |
    python3 -c 'import json,sys,os; m=json.load(sys.stdin); print(os.path.dirname([p["manifest_path"] for p in m["packages"] if p["name"]==sys.argv[1]][0]))' "$1"
}
src="$(crate_dir wasmtime-wasi-http)"
config_src="$(crate_dir wasmtime-wasi-config)"

rm -rf "$top/wit/p2" "$top/wit/p3" "$top/wit/config"
mkdir -p "$top/wit/p2" "$top/wit/p3" "$top/wit/config"
cp -r "$src/wit/." "$top/wit/p2/"
cp -r "$src/src/p3/wit/." "$top/wit/p3/"
cp -r "$config_src/wit/." "$top/wit/config/"
(cd "$top/wit" && find p2 p3 config -type f -name '*.wit' | sort | xargs sha256sum >CHECKSUMS)
echo "vendored WIT from wasmtime-wasi-http and wasmtime-wasi-config $version into $top/wit"
