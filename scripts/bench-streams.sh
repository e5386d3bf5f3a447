#!/usr/bin/env bash
# Many long-lived streams on one server: CLIENTS clients (default 10 000)
# connect at once and each GETs a trickling answer (one 64-byte chunk a
# second for 30 s, the suite guests' /trickle), over HTTP/1.1 and over
# HTTP/2 (prior knowledge, a connection per client). Every stream must
# complete with every byte; meanwhile a healthy request (/hello) is sent
# every 10 ms and its latency recorded, and the server's RSS is sampled
# (peak, and per stream above the idle process). Apps: the p3-suite guest
# (wasi:http@0.3, concurrent requests per instance) and the suite guest
# (wasi:http@0.2, a fresh instance per request).
#
#   scripts/bench-streams.sh [CLIENTS] [CHUNKS]
#   APPS="p3" PROTOCOLS="h1" scripts/bench-streams.sh 2000 10
#
# Each run prints the driver's progress and its last line
# (crates/soak/src/bin/berth-streams.rs).
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
clients="${1:-10000}" chunks="${2:-30}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
unset RUST_LOG
cargo build --quiet --release --locked -p berth-cli -p berth-soak --bin berth --bin berth-streams
berth="$CARGO_TARGET_DIR/release/berth"
driver="$CARGO_TARGET_DIR/release/berth-streams"
apps="${APPS:-p3 p2}" protocols="${PROTOCOLS:-h1 h2}"
# Two sockets per client (both ends on this machine), plus the server's own.
want=$((clients * 2 + 1000))
if [ "$(ulimit -n)" -lt "$want" ]; then
  ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
fi
if [ "$(ulimit -n)" -lt "$((clients + 200))" ]; then
  echo "bench-streams: need $((clients + 200)) open files, the limit is $(ulimit -Hn)" >&2
  exit 1
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; }
trap cleanup EXIT

status=0
for app in $apps; do
  case "$app" in
    p3) guest="$top/guests/prebuilt/p3-suite.wasm" probe=/ ;;
    p2) guest="$top/guests/prebuilt/suite.wasm" probe=/hello ;;
    *) echo "unknown app $app" >&2; exit 2 ;;
  esac
  for protocol in $protocols; do
    port="$(free_port)"
    # Room for every client: connections, admission places, instances
    # (0.2: one per stream), and a wall-clock limit past the trickle.
    config="$(mktemp --suffix .toml)"
    cat >"$config" <<TOML
[server]
addr = "127.0.0.1:$port"
max_connections = $((clients + 100))
max_instances = $((clients + 100))

[[apps]]
name = "streams"
component = "$guest"
routes = ["*"]
max_concurrent_requests = $((clients + 100))
wall_time_limit_ms = $(((chunks + 30) * 1000))
TOML
    "$berth" serve --config "$config" 2>"${SERVER_LOG:-/dev/null}" & pid=$!
    for _ in $(seq 200); do curl -sf -o /dev/null "http://127.0.0.1:$port$probe" && break; sleep 0.05; done
    echo "== $app, $protocol, $clients clients x $chunks chunks"
    "$driver" --target "127.0.0.1:$port" --protocol "$protocol" --clients "$clients" \
      --path "/trickle?chunks=$chunks&every_ms=1000&size=64" --expect-bytes $((chunks * 64)) \
      --probe-path "$probe" --pid "$pid" || status=1
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
    rm -f "$config"
  done
done
exit "$status"
