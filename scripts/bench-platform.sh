#!/usr/bin/env bash
# Platform benchmarks (berth serve --config):
#  1. start-up time (warm compilation cache) and idle memory with 1 and 100
#     apps (every app the suite guest, routed at its own host);
#  2. routing cost: /hello through a table of 1 000 routes (1 000 hosts;
#     1 000 path prefixes under one host, the request matching the last one
#     tried) against a single app routed at `*`, interleaved, wrk;
#  3. a reload storm: wrk runs while the config changes and SIGHUP arrives
#     every 200 ms; counts the requests that failed.
#
#   scripts/bench-platform.sh [ROUNDS] [SECONDS]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-5}"
source scripts/bench-lib.sh
work="$(mktemp -d)"
cp guests/prebuilt/suite.wasm "$work/suite.wasm"
export BERTH_CACHE_DIR="$work/cache"

# apps N FILE: N apps, app I routed at appI.test.
apps() {
  : >"$2"
  for i in $(seq 0 $(($1 - 1))); do
    printf '[[apps]]\nname = "app%d"\ncomponent = "suite.wasm"\nroutes = ["app%d.test"]\n\n' "$i" "$i" >>"$2"
  done
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# start FILE: starts berth serve --config FILE; sets pid, port, started_ms.
start() {
  port="$(free_port)"
  local log="$work/log" t0
  t0=$(date +%s%N)
  RUST_LOG="${LOG:-warn}" "$berth" serve --config "$1" --addr "127.0.0.1:$port" 2>"$log" & pid=$!
  pids+=("$pid")
  until grep -q "Serving HTTP" "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.005
  done
  started_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
stop() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }

echo "== start-up and idle memory (warm cache, $rounds rounds)"
for n in 1 100; do apps "$n" "$work/apps$n.toml"; "$berth" check "$work/apps$n.toml" >/dev/null; done
startup="$work/startup"
: >"$startup"
for _ in $(seq "$rounds"); do
  for n in 1 100; do
    start "$work/apps$n.toml"
    sleep 1
    echo "$n $started_ms $(rss_kib "$pid")" >>"$startup"
    stop
  done
done
python3 - "$startup" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    n, ms, rss = map(int, line.split())
    rows.setdefault(n, []).append((ms, rss))
print(f"{'apps':>5} {'start-up ms (median)':>21} {'min..max':>12} {'idle RSS MiB':>13}")
med = {}
for n, v in sorted(rows.items()):
    ms = [x[0] for x in v]
    rss = statistics.median(x[1] for x in v)
    med[n] = rss
    print(f"{n:>5} {statistics.median(ms):>21.0f} {min(ms):>5}..{max(ms):<6} {rss/1024:>13.1f}")
if 1 in med and 100 in med:
    print(f"idle memory per loaded app: {(med[100]-med[1])/99:.0f} KiB")
PY

echo
echo "== routing cost"
printf '[[apps]]\nname = "hello"\ncomponent = "suite.wasm"\nroutes = ["*"]\n' >"$work/single.toml"
{
  printf '[[apps]]\nname = "hello"\ncomponent = "suite.wasm"\nroutes = ['
  for i in $(seq 0 999); do printf '"h%d.test", ' "$i"; done
  printf ']\n'
} >"$work/hosts.toml"
{
  printf '[[apps]]\nname = "hello"\ncomponent = "suite.wasm"\nroutes = ["p.test", '
  for i in $(seq 0 998); do printf '"p.test/r%d", ' "$i"; done
  printf ']\n'
} >"$work/prefixes.toml"
for table in single hosts prefixes; do "$berth" check "$work/$table.toml" >/dev/null; done
for _ in $(seq "$rounds"); do
  for table in single hosts prefixes; do
    start "$work/$table.toml"
    host=h500.test
    [ "$table" = prefixes ] && host=p.test
    wrk -t1 -c16 -d1s -H "Host: $host" "http://127.0.0.1:$port/hello" >/dev/null
    out="$(wrk -t1 -c16 -d"${seconds}s" --latency -H "Host: $host" "http://127.0.0.1:$port/hello")"
    if grep -q "Non-2xx" <<<"$out"; then echo "$table: non-2xx answers: $out" >&2; exit 1; fi
    echo "$table $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") 0" >>"$results"
    stop
  done
done
summarize "suite /hello through a routing table: $rounds interleaved rounds x $seconds s, 16 connections (wrk, HTTP/1.1)" - single

echo
echo "== reload storm"
apps 4 "$work/storm.toml"
"$berth" check "$work/storm.toml" >/dev/null
LOG=info start "$work/storm.toml"
wrk -t1 -c16 -d10s -H "Host: app0.test" "http://127.0.0.1:$port/hello" >"$work/storm.out" & wrk_pid=$!
reloads=0
for i in $(seq 40); do
  # Alternate the route of app3, and reload by signal.
  sed -i "s/\"app3\(-moved\)\?\.test\"/\"app3$([ $((i % 2)) = 0 ] && echo -moved).test\"/" "$work/storm.toml"
  kill -HUP "$pid"
  reloads=$((reloads + 1))
  sleep 0.2
done
wait "$wrk_pid"
sleep 0.5
applied=$(grep -c "config reloaded" "$work/log" || true)
refused=$(grep -c "config reload refused" "$work/log" || true)
stop
requests=$(awk '/requests in/ {print $1}' "$work/storm.out")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/storm.out")
errors=$(awk '/Socket errors/ {s=0; for (i=4;i<=NF;i+=2) s+=$i; print s}' "$work/storm.out")
echo "$reloads SIGHUPs in 10 s under load ($applied reloads applied, $refused refused): ${requests} requests, ${non2xx:-0} non-2xx, ${errors:-0} socket errors"
rm -rf "$work"
