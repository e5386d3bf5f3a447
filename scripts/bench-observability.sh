#!/usr/bin/env bash
# Cost of observability: the suite guest's /hello with logging off
# (RUST_LOG=warn: no access lines), with text access logs, with JSON
# logs plus the admin listener (scraped once a second), and with text logs
# plus OTLP trace export at 100% and at 1% sampling (to a local sink that
# answers 200), interleaved. Logs go to a file, as they would to a
# collector. Metrics are always recorded.
#
#   scripts/bench-observability.sh [ROUNDS] [SECONDS] [CONNECTIONS]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-3}" seconds="${2:-5}" conns="${3:-16}"
source scripts/bench-lib.sh
guest="$top/guests/prebuilt/suite.wasm"
logs="$(mktemp -d)"
sink_port="$(free_port)"
"$origin_bin" "127.0.0.1:$sink_port" 2>/dev/null & sink=$!
pids+=("$sink")

run_one() { # label
  local label="$1" port admin pid scraper="" level=info args=()
  port="$(free_port)"
  case "$label" in
    quiet) level=warn ;;
    text) ;;
    json) admin="$(free_port)"; args=(--log-format json --admin-addr "127.0.0.1:$admin") ;;
    trace100) args=(--otlp-endpoint "http://127.0.0.1:$sink_port") ;;
    trace1) args=(--otlp-endpoint "http://127.0.0.1:$sink_port" --trace-sample-ratio 0.01) ;;
  esac
  RUST_LOG="$level" $server_prefix "$berth" serve "$guest" --addr "127.0.0.1:$port" "${args[@]}" \
    2>"$logs/$label.log" & pid=$!
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/hello"
  if [ "$label" = json ]; then
    (while sleep 1; do curl -sf -o /dev/null "http://127.0.0.1:$admin/metrics" || true; done) & scraper=$!
  fi
  measure "$label" "http://127.0.0.1:$port/hello" "$seconds" "$conns"
  [ -n "$scraper" ] && kill "$scraper" 2>/dev/null
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

for _ in $(seq "$rounds"); do
  for label in quiet text json trace100 trace1; do run_one "$label"; done
done
echo "log lines written in the last round: text $(wc -l <"$logs/text.log"), json $(wc -l <"$logs/json.log")"
rm -rf "$logs"
pinning="unpinned"; [ "${PIN:-0}" = 1 ] && pinning="server core 0, wrk core 1"
summarize "suite /hello, logging off vs text access logs vs JSON logs + /metrics scraped each second vs text logs + OTLP traces at 100% and 1% sampling: $rounds interleaved rounds x $seconds s, $conns connections (wrk, HTTP/1.1, $pinning)" \
  - quiet text
