#!/usr/bin/env bash
# Builds the interop components from other toolchains into
# ${BERTH_INTEROP_DIR:-~/.cache/berth-interop}: Python (componentize-py) and
# JavaScript (componentize-js). They are 13-18 MB each, so they are built
# here (from PyPI and npm, pinned) rather than committed.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
out="${BERTH_INTEROP_DIR:-$HOME/.cache/berth-interop}"
mkdir -p "$out"

componentize_py_version=0.25.1
componentize_js_version=0.23.0

# --- Python -----------------------------------------------------------------
venv="$out/venv"
if [ ! -x "$venv/bin/componentize-py" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "componentize-py==$componentize_py_version"
fi
py_build="$(mktemp -d)"
cp "$top/guests/python/app.py" "$py_build/"
(cd "$py_build" && "$venv/bin/componentize-py" -q -d "$top/wit/p2" -w wasi:http/proxy@0.2.12 \
  componentize app -o "$out/python.wasm")
rm -rf "$py_build"

# --- JavaScript -------------------------------------------------------------
js="$out/js"
mkdir -p "$js"
if [ ! -x "$js/node_modules/.bin/componentize-js" ]; then
  (cd "$js" && npm init -y >/dev/null &&
    npm install --silent --no-audit --no-fund "@bytecodealliance/componentize-js@$componentize_js_version")
fi
# componentize-js $componentize_js_version's engine exports
# wasi:http/incoming-handler@0.2.10, so its build input must name 0.2.10: a
# scratch copy of the vendored WIT with the patch version rewritten (the
# vendored files stay untouched). berth itself serves it via semver matching.
wit="$(mktemp -d)"
mkdir -p "$wit/deps"
cp "$top/guests/js/world.wit" "$wit/"
cp "$top"/wit/p2/deps/*.wit "$wit/deps/"
sed -i -e 's/@0\.2\.12/@0.2.10/g' -e 's/version = 0\.2\.12/version = 0.2.10/g' "$wit"/world.wit "$wit"/deps/*.wit
(cd "$js" && node_modules/.bin/componentize-js "$top/guests/js/app.js" --wit "$wit" \
  --world-name js-guest -o "$out/js.wasm" >/dev/null)
rm -rf "$wit"

ls -l "$out"/*.wasm
