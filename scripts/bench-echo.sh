#!/usr/bin/env bash
# Echo benchmark: streams SIZE MiB (default 1024) through the suite guest's
# /echo on berth and on `wasmtime serve`, and through the native origin's
# /echo, with one curl upload each (chunked). Prints MB/s and the server's
# peak RSS (VmHWM) per host.
#
#   scripts/bench-echo.sh [SIZE_MIB]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
size_mib="${1:-1024}"
source scripts/bench-lib.sh
need_wasmtime
guest="$top/guests/prebuilt/suite.wasm"

printf '%-10s %10s %14s\n' host "MB/s" "peak RSS MiB"
for host in berth wasmtime native; do
  port="$(free_port)"
  case "$host" in
    native) "$origin_bin" "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth) "${berth_env[@]}" "$berth" serve "$guest" --addr "127.0.0.1:$port" \
      --cpu-time-limit-ms 600000 --wall-time-limit-ms 600000 2>/dev/null & pid=$! ;;
    wasmtime) "$wasmtime" serve -S cli --addr "127.0.0.1:$port" "$guest" 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/hello"
  seconds="$(head -c "$((size_mib << 20))" /dev/zero |
    curl -sS -T - -H 'content-type: application/octet-stream' -o /dev/null -w '%{time_total}' \
      "http://127.0.0.1:$port/echo")"
  peak_kib="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  awk -v h="$host" -v s="$seconds" -v m="$size_mib" -v r="$peak_kib" \
    'BEGIN { printf "%-10s %10.0f %14.1f\n", h, m * 1.048576 / s, r / 1024 }'
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
