#!/usr/bin/env bash
# Proxy benchmark: the proxy guest (guests/src/bin/proxy.rs) forwarding to a
# native hyper origin, served by berth and by `wasmtime serve` 48 (the
# reference host) in one interleaved run. Prints a table of medians and the
# berth/wasmtime ratio, and the TIME_WAIT sockets each host left towards
# its origin (connection reuse keeps that near the pool size).
#
#   scripts/bench-proxy.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#
# Needs wrk (apt-get install wrk). wasmtime-cli 48 is installed from
# crates.io into ~/.cache/berth-bench on first use (never committed).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}"
seconds="${2:-10}"
conns="${3:-16}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
bench_dir="$HOME/.cache/berth-bench"
wasmtime="${WASMTIME:-$bench_dir/wasmtime-48/bin/wasmtime}"

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
if [ ! -x "$wasmtime" ]; then
  echo "installing wasmtime-cli 48.0.8 into $bench_dir (once) ..." >&2
  CARGO_TARGET_DIR="$bench_dir/target" cargo install --quiet wasmtime-cli --version 48.0.8 --locked \
    --root "$bench_dir/wasmtime-48"
fi
cargo build --quiet --release --locked -p berth-cli -p berth-bench-origin
berth="$CARGO_TARGET_DIR/release/berth"
origin_bin="$CARGO_TARGET_DIR/release/berth-bench-origin"
proxy="$top/guests/prebuilt/proxy.wasm"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

results="$(mktemp)"
run_one() { # host round
  local host="$1" oport hport opid hpid out rps p50 p99 tw
  oport="$(free_port)"; hport="$(free_port)"
  "$origin_bin" "127.0.0.1:$oport" 2>/dev/null & opid=$!; pids+=("$opid")
  wait_http "http://127.0.0.1:$oport/"
  if [ "$host" = berth ]; then
    RUST_LOG=warn "$berth" serve "$proxy" --addr "127.0.0.1:$hport" \
      --env "UPSTREAM=http://127.0.0.1:$oport" --allow-outbound "127.0.0.1:$oport" 2>/dev/null & hpid=$!
  else
    "$wasmtime" serve -S cli --addr "127.0.0.1:$hport" --env "UPSTREAM=http://127.0.0.1:$oport" \
      "$proxy" 2>/dev/null & hpid=$!
  fi
  pids+=("$hpid")
  wait_http "http://127.0.0.1:$hport/"
  wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$hport/" >/dev/null # warm-up
  out="$(wrk -t1 -c"$conns" -d"${seconds}s" --latency "http://127.0.0.1:$hport/")"
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  tw="$(ss -Htan state time-wait "( dport = :$oport )" | wc -l)"
  echo "$host $rps $p50 $p99 $tw" >>"$results"
  kill "$hpid" "$opid" 2>/dev/null || true
  wait "$hpid" "$opid" 2>/dev/null || true
}

for r in $(seq "$rounds"); do
  run_one berth "$r"
  run_one wasmtime "$r"
done

python3 - "$results" "$rounds" "$seconds" "$conns" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
def ms(t):
    return float(t[:-2]) if t.endswith("ms") else float(t[:-2]) / 1000 if t.endswith("us") else float(t[:-1]) * 1000
hosts = {}
for host, rps, p50, p99, tw in rows:
    hosts.setdefault(host, []).append((float(rps), ms(p50), ms(p99), int(tw)))
print(f"proxy benchmark: {sys.argv[2]} interleaved rounds x {sys.argv[3]} s, {sys.argv[4]} connections (wrk, HTTP/1.1)")
print(f"{'host':<10} {'req/s (median)':>15} {'min..max':>17} {'p50 ms':>8} {'p99 ms':>8} {'TIME_WAIT to origin':>20}")
med = {}
for host, v in hosts.items():
    r = [x[0] for x in v]
    med[host] = statistics.median(r)
    print(f"{host:<10} {med[host]:>15.0f} {min(r):>8.0f}..{max(r):<8.0f} {statistics.median(x[1] for x in v):>8.2f} "
          f"{statistics.median(x[2] for x in v):>8.2f} {max(x[3] for x in v):>20}")
if "berth" in med and "wasmtime" in med:
    print(f"ratio berth / wasmtime serve: {med['berth'] / med['wasmtime']:.2f}x")
PY
