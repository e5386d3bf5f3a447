#!/usr/bin/env bash
# wasi:http@0.3.0 hello benchmark, interleaved: berth serving p3-hello with
# concurrent reuse (default: 16 requests at once per instance, instance
# retired after 256), berth with unbounded-ish reuse (--instance-requests
# 1000000), `wasmtime serve` 48 with p3 (its own concurrent reuse), and the
# native hyper server. Also reports each server's RSS after the run and how
# much it grew during the measured run: bounded reuse must stay flat.
#
#   scripts/bench-p3.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PIN=1 scripts/bench-p3.sh ...   server on core 0, wrk on core 1
#   HOSTS="berth-p3 wasmtime-p3" scripts/bench-p3.sh ...
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-10}" conns="${3:-16}"
source scripts/bench-lib.sh
need_wasmtime
guest="$top/guests/prebuilt/p3-hello.wasm"
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

run_one() { # host
  local host="$1" port pid before after
  port="$(free_port)"
  case "$host" in
    native) $server_prefix "$origin_bin" "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth-p3) "${berth_env[@]}" $server_prefix "$berth" serve "$guest" --addr "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth-p3-unb) "${berth_env[@]}" $server_prefix "$berth" serve "$guest" --instance-requests 1000000 --addr "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    wasmtime-p3) $server_prefix "$wasmtime" serve -Wcomponent-model-async -Sp3,cli --addr "127.0.0.1:$port" "$guest" 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/"
  # Warm up, then measure growth across the measured run.
  $client_prefix wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port/" >/dev/null
  before="$(rss_kib "$pid")"
  measure "$host" "http://127.0.0.1:$port/" "$seconds" "$conns"
  after="$(rss_kib "$pid")"
  set_extra "$(( (after - before) ))"
  echo "$host: RSS ${before} KiB -> ${after} KiB" >&2
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  for host in ${HOSTS:-berth-p3 berth-p3-unb wasmtime-p3 native}; do run_one "$host"; done
done
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="server core 0, wrk core 1"
summarize "wasi:http@0.3.0 hello: $rounds interleaved rounds x $seconds s, $conns connections (wrk, HTTP/1.1, $pinning)" \
  "RSS growth KiB (max)" wasmtime-p3 native
