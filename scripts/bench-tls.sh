#!/usr/bin/env bash
# TLS benchmark: the suite guest's /hello on berth over cleartext HTTP/1.1
# and over TLS (rustls, keep-alive), interleaved, plus new TLS handshakes
# per second (every request on a new connection: `Connection: close`).
# Prints medians and ratios.
#
#   scripts/bench-tls.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PIN=1 scripts/bench-tls.sh ...   server on core 0, wrk on core 1
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-8}" conns="${3:-16}"
source scripts/bench-lib.sh
guest="$top/guests/prebuilt/suite.wasm"
pki="$(mktemp -d)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$pki/key.pem" -out "$pki/cert.pem" 2>/dev/null

run_one() { # label
  local label="$1" port pid scheme=http tls=() close=()
  port="$(free_port)"
  case "$label" in
    tls|tls-handshake) scheme=https tls=(--tls-cert "$pki/cert.pem" --tls-key "$pki/key.pem") ;;
  esac
  RUST_LOG=warn $server_prefix "$berth" serve "$guest" --addr "127.0.0.1:$port" "${tls[@]}" 2>/dev/null & pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do curl -skf -o /dev/null "$scheme://127.0.0.1:$port/hello" && break; sleep 0.05; done
  if [ "$label" = tls-handshake ]; then
    # A new connection (and TLS handshake) per request.
    local out
    out="$($client_prefix wrk -t1 -c"$conns" -d"${seconds}s" --latency -H 'Connection: close' "$scheme://127.0.0.1:$port/hello")"
    echo "$label $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") 0" >>"$results"
  else
    measure "$label" "$scheme://127.0.0.1:$port/hello" "$seconds" "$conns"
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  for label in cleartext tls tls-handshake; do run_one "$label"; done
done
rm -rf "$pki"
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="server core 0, wrk core 1"
summarize "suite /hello over TLS: $rounds interleaved rounds x $seconds s, $conns connections (wrk, HTTP/1.1, $pinning)" \
  - cleartext
