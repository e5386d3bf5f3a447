#!/usr/bin/env bash
# A rolling update rehearsed on one machine, no cluster needed: three berth
# processes on loopback ports behind HAProxy (from Debian's packages,
# installed if missing), a steady load through the balancer, and the
# processes rolled one at a time — SIGTERM, wait for the drain to end
# (exit status 0), start the new component version, wait for /readyz —
# as a Kubernetes Deployment with maxUnavailable 0 would.
#
#   scripts/rolling-update.sh
#
# Version 1 is the suite guest (wasi:http 0.2, "hello from berth"),
# version 2 the 0.3 hello ("Hello from a wasi:http@0.3.0 component"): the
# rehearsal also upgrades the wasi:http version under load. HAProxy checks
# each backend's /readyz on its admin port every 200 ms; berth runs with
# --shutdown-delay-secs 1, so from SIGTERM on /readyz answers 503 while it
# goes on serving for a second, and only then drains (Kubernetes' preStop
# sleep plays that part in deploy/kubernetes). HAProxy retries only a
# request whose connection was refused (never one a backend received).
# With BERTH_ROLL_SHUTDOWN_DELAY=0 a few requests fail per run: HAProxy
# sends them on idle keep-alive connections in the instant the drain
# closes them. The load (berth-roll-load, crates/soak)
# prints answers per version per second; the last line is
#   rolling update: N requests, F failed, versions ...
# and the script exits non-zero if F > 0 or a berth did not exit 0 on
# SIGTERM. Ports: BERTH_ROLL_PORT (default 18600) and the 30 above it.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
base="${BERTH_ROLL_PORT:-18600}"
settle="${BERTH_ROLL_SETTLE_SECS:-3}"

if ! command -v haproxy >/dev/null; then
  echo "installing haproxy (Debian package)"
  { apt-get update -qq && apt-get install -y -qq haproxy; } >/dev/null 2>&1 ||
    { echo "rolling update: haproxy is missing and could not be installed" >&2; exit 1; }
fi
cargo build --release --locked --quiet -p berth-cli -p berth-soak
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
v1="$top/guests/prebuilt/suite.wasm"
v2="$top/guests/prebuilt/p3-hello.wasm"

pids=()
lb_pid=""
cleanup() {
  for pid in "${pids[@]}" $lb_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

http_port() { echo $((base + 10 + $1)); }
admin_port() { echo $((base + 20 + $1)); }

start_berth() { # index component
  "$bin/berth" serve "$2" --addr "127.0.0.1:$(http_port "$1")" \
    --admin-addr "127.0.0.1:$(admin_port "$1")" --drain-timeout-secs 10 \
    --shutdown-delay-secs "${BERTH_ROLL_SHUTDOWN_DELAY:-1}" \
    2>>"$work/berth-$1.log" &
  pids[$1]=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$(admin_port "$1")/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "rolling update: berth $1 did not become ready" >&2
  exit 1
}

for i in 0 1 2; do start_berth "$i" "$v1"; done

cat >"$work/haproxy.cfg" <<EOF
global
  maxconn 4096
defaults
  mode http
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  retries 3
  option redispatch 1
  retry-on ${BERTH_ROLL_RETRY_ON:-conn-failure}
frontend front
  bind 127.0.0.1:$base
  default_backend berth
backend berth
  balance roundrobin
  option httpchk GET /readyz
  default-server inter 200ms fall 1 rise 2
  server b0 127.0.0.1:$(http_port 0) check port $(admin_port 0)
  server b1 127.0.0.1:$(http_port 1) check port $(admin_port 1)
  server b2 127.0.0.1:$(http_port 2) check port $(admin_port 2)
EOF
haproxy -f "$work/haproxy.cfg" -db 2>"$work/haproxy.log" &
lb_pid=$!
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$base/hello" >/dev/null 2>&1 && break
  sleep 0.1
done

"$bin/berth-roll-load" --target "127.0.0.1:$base" --stop "$work/stop" \
  --version "v1=hello from berth" --version "v2=Hello from a wasi:http@0.3.0" \
  >"$work/load.out" 2>"$work/load.err" &
load_pid=$!

status=0
sleep "$settle"
for i in 0 1 2; do
  echo "rolling berth $i: SIGTERM, drain, start version 2"
  kill -TERM "${pids[$i]}"
  if ! wait "${pids[$i]}"; then
    echo "FAIL: berth $i did not exit 0 after SIGTERM" && status=1
  fi
  start_berth "$i" "$v2"
  # rise 2 x 200 ms before HAProxy sends it traffic again.
  sleep 1
done
sleep "$settle"
touch "$work/stop"
wait "$load_pid" || status=1
sed -n '1,5p' "$work/load.err"
cat "$work/load.out"
exit "$status"
