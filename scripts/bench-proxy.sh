#!/usr/bin/env bash
# Proxy benchmark: the proxy guest (guests/src/bin/proxy.rs) forwarding to a
# native hyper origin, served by berth and by `wasmtime serve` 48 (the
# reference host), berth with --reuse 1000, and a native reverse proxy (berth-bench-origin --proxy:
# one pooled hyper client) in one interleaved run. Prints medians, the
# berth/wasmtime ratio, and the TIME_WAIT sockets each host left towards
# its origin (connection reuse keeps that near the pool size).
#
#   scripts/bench-proxy.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PIN=1 scripts/bench-proxy.sh ...   host on core 0, wrk on core 1
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-10}" conns="${3:-16}"
source scripts/bench-lib.sh
need_wasmtime
proxy="$top/guests/prebuilt/proxy.wasm"

run_one() { # host
  local host="$1" oport hport opid hpid
  oport="$(free_port)"; hport="$(free_port)"
  $client_prefix "$origin_bin" "127.0.0.1:$oport" 2>/dev/null & opid=$!; pids+=("$opid")
  wait_http "http://127.0.0.1:$oport/"
  case "$host" in
    berth) "${berth_env[@]}" $server_prefix "$berth" serve "$proxy" --addr "127.0.0.1:$hport" \
      --env "UPSTREAM=http://127.0.0.1:$oport" --allow-outbound "127.0.0.1:$oport" 2>/dev/null & hpid=$! ;;
    berth-reuse) "${berth_env[@]}" $server_prefix "$berth" serve "$proxy" --reuse 1000 --addr "127.0.0.1:$hport" \
      --env "UPSTREAM=http://127.0.0.1:$oport" --allow-outbound "127.0.0.1:$oport" 2>/dev/null & hpid=$! ;;
    wasmtime) $server_prefix "$wasmtime" serve -S cli --addr "127.0.0.1:$hport" --env "UPSTREAM=http://127.0.0.1:$oport" \
      "$proxy" 2>/dev/null & hpid=$! ;;
    native-proxy) $server_prefix "$origin_bin" "127.0.0.1:$hport" --proxy "http://127.0.0.1:$oport" 2>/dev/null & hpid=$! ;;
  esac
  pids+=("$hpid")
  wait_http "http://127.0.0.1:$hport/"
  measure "$host" "http://127.0.0.1:$hport/" "$seconds" "$conns"
  # TIME_WAIT sockets towards this run's origin only, right after the run.
  set_extra "$(ss -Htan state time-wait "( dport = :$oport )" | wc -l)"
  kill "$hpid" "$opid" 2>/dev/null || true
  wait "$hpid" "$opid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  for host in ${HOSTS:-berth berth-reuse wasmtime native-proxy}; do run_one "$host"; done
done
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="proxy on core 0, wrk and origin on core 1"
summarize "proxy benchmark: $rounds interleaved rounds x $seconds s, $conns connections (wrk, HTTP/1.1, $pinning)" \
  "TIME_WAIT to origin" wasmtime native-proxy
