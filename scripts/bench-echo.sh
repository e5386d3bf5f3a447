#!/usr/bin/env bash
# Echo benchmark: streams SIZE MiB (default 1024) through an echo route
# with one curl upload each (chunked), reading the echo concurrently, and
# checks every byte came back. Hosts: berth and `wasmtime serve` on the
# suite guest's /echo (wasi:http@0.2), berth on the p3-suite guest's /echo
# (a wasi:http@0.3 service copying 64 KiB chunks through the guest, as the
# 0.2 echo does), berth on that service behind a two-stage middleware
# chain (p3-mw-header, which passes the body stream on, then p3-mw-upper,
# which copies it through guest memory), and the native origin's /echo.
# Prints MB/s and the server's peak RSS (VmHWM, from when it answers) per
# host.
#
#   scripts/bench-echo.sh [SIZE_MIB]
#   HOSTS="berth berth-p3" scripts/bench-echo.sh 256
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
size_mib="${1:-1024}"
source scripts/bench-lib.sh
need_wasmtime
guest="$top/guests/prebuilt/suite.wasm"
p3="$top/guests/prebuilt/p3-suite.wasm"
chain=("$top/guests/prebuilt/p3-mw-header.wasm" "$top/guests/prebuilt/p3-mw-upper.wasm" "$p3")
hosts="${HOSTS:-berth wasmtime berth-p3 berth-p3-chain native}"
limits=(--cpu-time-limit-ms 600000 --wall-time-limit-ms 600000)

# Compiled ahead (the AOT cache), as a deployment would: a server that
# compiles at start keeps the compiler's freed heap (~20 MiB) in its RSS.
for component in "$guest" "${chain[@]}"; do
  "$berth" compile "$component" >/dev/null 2>&1 || true
done
printf '%-16s %10s %14s\n' host "MB/s" "peak RSS MiB"
for host in $hosts; do
  port="$(free_port)" ready=/hello
  case "$host" in
    native) "$origin_bin" "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
    berth) "${berth_env[@]}" "$berth" serve "$guest" --addr "127.0.0.1:$port" \
      "${limits[@]}" 2>/dev/null & pid=$! ;;
    berth-p3) ready=/fields
      "${berth_env[@]}" "$berth" serve "$p3" --addr "127.0.0.1:$port" \
      "${limits[@]}" 2>/dev/null & pid=$! ;;
    berth-p3-chain) ready=/fields
      "${berth_env[@]}" "$berth" serve "${chain[@]}" --addr "127.0.0.1:$port" \
      "${limits[@]}" 2>/dev/null & pid=$! ;;
    wasmtime) "$wasmtime" serve -S cli --addr "127.0.0.1:$port" "$guest" 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port$ready"
  # The peak counts from here, not from start-up (clear_refs 5 resets
  # VmHWM to the current RSS).
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
  read -r seconds got < <(head -c "$((size_mib << 20))" /dev/zero |
    curl -sS -T - -H 'content-type: application/octet-stream' -o /dev/null \
      -w '%{time_total} %{size_download}\n' "http://127.0.0.1:$port/echo")
  if [ "$got" != "$((size_mib << 20))" ]; then
    echo "$host echoed $got of $((size_mib << 20)) bytes" >&2
    exit 1
  fi
  peak_kib="$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")"
  awk -v h="$host" -v s="$seconds" -v m="$size_mib" -v r="$peak_kib" \
    'BEGIN { printf "%-16s %10.0f %14.1f\n", h, m * 1.048576 / s, r / 1024 }'
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
