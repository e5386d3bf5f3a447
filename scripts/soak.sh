#!/usr/bin/env bash
# The soak: berth under a mixed healthy and hostile load for SECONDS
# (default 600), sampling its RSS, open descriptors, live instances and
# healthy-request latency.
#
#   scripts/soak.sh [SECONDS]
#
# Starts, on loopback only, a native origin (berth-bench-origin, the target
# of the guests' outbound floods) and `berth serve` (release build) with
# five apps from one config, each on its own host name: the suite guest
# fresh (p2) and with reuse (p2r), the 0.3 hello concurrent (p3) and one
# request per instance (p3f), the 0.3 suite (p3x). berth-soak
# (crates/soak) measures the healthy baseline alone, then runs the mix;
# see its module docs for what each side sends.
#
# The last line: `soak: N requests, P panics, RSS start A MiB end B MiB,
# fds start C end D, healthy p99 X ms (baseline Y ms)`, start being where
# RSS and descriptors settled after the first minute (a fifth of shorter
# runs). Exits non-zero unless there were no panics (the /metrics counter,
# and none in berth's log), every healthy request succeeded, RSS and fds
# ended within 10% of where they settled, and the healthy p99 stayed
# within 2x the baseline. Ports: BERTH_SOAK_PORT (default 18480) and the
# next two.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"

seconds="${1:-600}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
port="${BERTH_SOAK_PORT:-18480}"
admin=$((port + 1))
origin=$((port + 2))

cargo build --release --locked --quiet -p berth-cli -p berth-bench-origin -p berth-soak
bin="$CARGO_TARGET_DIR/release"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

prebuilt="$top/guests/prebuilt"
limits='cpu_time_limit_ms = 200
wall_time_limit_ms = 2000
memory_limit_mib = 64'
cat >"$work/soak.toml" <<EOF
[server]
addr = "127.0.0.1:$port"
admin_addr = "127.0.0.1:$admin"

[[apps]]
name = "p2"
component = "$prebuilt/suite.wasm"
routes = ["p2.soak"]
allow_outbound = ["127.0.0.1:$origin"]
env = { UPSTREAM = "127.0.0.1:$origin" }
$limits

[[apps]]
name = "p2r"
component = "$prebuilt/suite.wasm"
routes = ["p2r.soak"]
reuse = 1000
$limits

[[apps]]
name = "p3"
component = "$prebuilt/p3-hello.wasm"
routes = ["p3.soak"]
$limits

[[apps]]
name = "p3f"
component = "$prebuilt/p3-hello.wasm"
routes = ["p3f.soak"]
instance_requests = 1
$limits

[[apps]]
name = "p3x"
component = "$prebuilt/p3-suite.wasm"
routes = ["p3x.soak"]
allow_outbound = ["127.0.0.1:$origin"]
$limits
EOF

"$bin/berth-bench-origin" "127.0.0.1:$origin" 2>"$work/origin.log" &
pids+=($!)
# Access lines off (warn): ten minutes of them is gigabytes; panics and
# errors still reach the log.
RUST_LOG=warn "$bin/berth" serve --config "$work/soak.toml" 2>"$work/berth.log" &
berth_pid=$!
pids+=("$berth_pid")
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1 && break
  kill -0 "$berth_pid" 2>/dev/null || { cat "$work/berth.log" >&2; echo "soak: berth did not start" >&2; exit 1; }
  sleep 0.2
done

status=0
"$bin/berth-soak" --server "127.0.0.1:$port" --admin "127.0.0.1:$admin" \
  --origin "127.0.0.1:$origin" --pid "$berth_pid" --seconds "$seconds" \
  --baseline "$(( seconds < 200 ? 10 : 20 ))" >"$work/soak.out" || status=$?

# Everything but the verdict line, then the log check, then the verdict.
head -n -1 "$work/soak.out"
# Guests' own panics (a Rust guest that traps on purpose prints one) come
# through as berth::guest lines; berth's are anything else.
grep 'panicked at' "$work/berth.log" | grep -v 'berth::guest' >"$work/panics" || true
if [ -s "$work/panics" ]; then
  echo "FAIL: panics in berth's log:"
  sed -n '1,20p' "$work/panics"
  status=1
fi
kill -0 "$berth_pid" 2>/dev/null || { echo "FAIL: berth exited during the soak"; status=1; }
echo "berth's log: $(wc -l <"$work/berth.log") lines ($work/berth.log)"
tail -n 1 "$work/soak.out"
exit "$status"
