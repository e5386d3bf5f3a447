#!/usr/bin/env bash
# Cold start: time from `berth serve` (or `wasmtime serve`) being spawned to
# the first 200 response, for the suite guest, with no cache and with a warm
# cache. Prints the median of N runs per case.
#
#   scripts/bench-coldstart.sh [RUNS]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
runs="${1:-10}"
source scripts/bench-lib.sh
need_wasmtime
guest="${GUEST:-$top/guests/prebuilt/suite.wasm}"
cache="$(mktemp -d)"
"$berth" compile "$guest" --cache-dir "$cache" 2>/dev/null

python3 - "$runs" "$berth" "$wasmtime" "$guest" "$cache" "$origin_bin" <<'PY'
import os, socket, statistics, subprocess, sys, time, urllib.request
runs, berth, wasmtime, guest, cache, origin = sys.argv[1:]
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
def first_200(cmd, port, path):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, RUST_LOG="error"))
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    if r.status == 200:
                        return (time.perf_counter() - start) * 1000
            except OSError:
                time.sleep(0.0005)
    finally:
        proc.kill(); proc.wait()
cases = {
    "berth, no cache": lambda p: [berth, "serve", guest, "--addr", f"127.0.0.1:{p}", "--no-cache"],
    "berth, warm cache": lambda p: [berth, "serve", guest, "--addr", f"127.0.0.1:{p}", "--cache-dir", cache],
    "wasmtime serve": lambda p: [wasmtime, "serve", "-S", "cli", "--addr", f"127.0.0.1:{p}", guest],
    "native hyper": lambda p: [origin, f"127.0.0.1:{p}"],
}
results = {name: [] for name in cases}
for _ in range(int(runs)):
    for name, cmd in cases.items():
        port = free_port()
        results[name].append(first_200(cmd(port), port, "/hello"))
print(f"cold start to first 200 (suite guest /hello), median of {runs} interleaved runs")
for name, values in results.items():
    print(f"{name:<20} {statistics.median(values):8.1f} ms   (min {min(values):.1f}, max {max(values):.1f})")
PY
rm -rf "$cache"
