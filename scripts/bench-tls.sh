#!/usr/bin/env bash
# TLS benchmark: the suite guest's /hello on berth over cleartext and over
# TLS (rustls, keep-alive), HTTP/1.1 (wrk) and HTTP/2 (h2load: h2c with
# prior knowledge vs h2 negotiated by ALPN), interleaved, plus new TLS
# handshakes per second (every request on a new connection: `Connection:
# close`). Prints medians and ratios. Needs wrk and h2load
# (apt-get install wrk nghttp2-client).
#
#   scripts/bench-tls.sh [ROUNDS] [SECONDS] [CONNECTIONS]
#   PIN=1 scripts/bench-tls.sh ...   server on core 0, wrk on core 1
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-8}" conns="${3:-16}"
source scripts/bench-lib.sh
command -v h2load >/dev/null || { echo "h2load is required: apt-get install nghttp2-client" >&2; exit 1; }
guest="$top/guests/prebuilt/suite.wasm"
pki="$(mktemp -d)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -keyout "$pki/key.pem" -out "$pki/cert.pem" 2>/dev/null

run_one() { # label
  local label="$1" port pid scheme=http tls=() close=()
  port="$(free_port)"
  case "$label" in
    tls|tls-handshake|h2-tls) scheme=https tls=(--tls-cert "$pki/cert.pem" --tls-key "$pki/key.pem") ;;
  esac
  RUST_LOG=warn $server_prefix "$berth" serve "$guest" --addr "127.0.0.1:$port" "${tls[@]}" 2>/dev/null & pid=$!
  pids+=("$pid")
  for _ in $(seq 200); do curl -skf -o /dev/null "$scheme://127.0.0.1:$port/hello" && break; sleep 0.05; done
  if [ "$label" = h2 ] || [ "$label" = h2-tls ]; then
    # h2load: $conns connections, one stream each (like wrk); it reports no
    # percentiles, so the latency columns hold its mean and max.
    local out
    $client_prefix h2load -t1 -c"$conns" -m1 -D1 "$scheme://127.0.0.1:$port/hello" >/dev/null
    out="$($client_prefix h2load -t1 -c"$conns" -m1 -D"$seconds" "$scheme://127.0.0.1:$port/hello")"
    grep -q ' 0 failed, 0 errored' <<<"$out" || { echo "h2load saw failures: $out" >&2; exit 1; }
    echo "$label $(awk '/^finished in/ {print $4}' <<<"$out") $(awk '/time for request:/ {print $6, $5}' <<<"$out") 0" >>"$results"
  elif [ "$label" = tls-handshake ]; then
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
  for label in cleartext tls tls-handshake h2 h2-tls; do run_one "$label"; done
done
rm -rf "$pki"
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="server core 0, wrk core 1"
summarize "suite /hello over TLS: $rounds interleaved rounds x $seconds s, $conns connections (wrk HTTP/1.1; h2load HTTP/2, latency columns = its mean and max; $pinning)" \
  - cleartext h2
