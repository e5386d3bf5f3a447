#!/usr/bin/env bash
# Hello benchmark: the suite guest's /hello route on berth (fresh instance
# per request, and --reuse 1000), on `wasmtime serve` 48 (fresh instances),
# and a native hyper server (the upper bound), interleaved. Prints medians
# and ratios.
#
#   scripts/bench-hello.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PIN=1 scripts/bench-hello.sh ...   server on core 0, wrk on core 1
#   GUEST=heavy-init URL_PATH=/ HOSTS="berth berth-preinit berth-reuse wasmtime" \
#     scripts/bench-hello.sh ...       another prebuilt guest, route and hosts
#
# Hosts: berth (fresh instance per request), berth-reuse (--reuse 1000),
# berth-preinit (--pre-init), wasmtime (`wasmtime serve`), wasmtime-reuse
# (`wasmtime serve --max-instance-reuse-count 1000`), native (hyper).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-10}" conns="${3:-16}"
source scripts/bench-lib.sh
need_wasmtime
guest_name="${GUEST:-suite}"
guest="$top/guests/prebuilt/$guest_name.wasm"
path="${URL_PATH:-/hello}"
hosts="${HOSTS:-berth berth-reuse wasmtime wasmtime-reuse native}"

run_one() { # host
  local host="$1" port pid
  port="$(free_port)"
  case "$host" in
    native) $server_prefix "$origin_bin" "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth) "${berth_env[@]}" $server_prefix "$berth" serve "$guest" --addr "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth-reuse) "${berth_env[@]}" $server_prefix "$berth" serve "$guest" --reuse 1000 --addr "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth-preinit) "${berth_env[@]}" $server_prefix "$berth" serve "$guest" --pre-init --addr "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    wasmtime) $server_prefix "$wasmtime" serve -S cli --addr "127.0.0.1:$port" "$guest" 2>/dev/null & pid=$! ;;
    wasmtime-reuse) $server_prefix "$wasmtime" serve -S cli --max-instance-reuse-count 1000 \
      --addr "127.0.0.1:$port" "$guest" 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port$path"
  measure "$host" "http://127.0.0.1:$port$path" "$seconds" "$conns"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  for host in $hosts; do run_one "$host"; done
done
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="server core 0, wrk core 1"
summarize "$guest_name $path: $rounds interleaved rounds x $seconds s, $conns connections (wrk, HTTP/1.1, $pinning)" \
  - wasmtime wasmtime-reuse native
