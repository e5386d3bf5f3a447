# Shared helpers of the bench-*.sh scripts (sourced, not run).
# Sets: berth, origin_bin, wasmtime; provides need_wasmtime, free_port,
# wait_http, measure (wrk run appended to $results) and summarize.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/berth-target}"
# berth runs at its default log level (access lines on), as operators run
# it; BERTH_BENCH_LOG=warn measures it without them.
unset RUST_LOG
berth_env=(env ${BERTH_BENCH_LOG:+RUST_LOG=$BERTH_BENCH_LOG})
bench_dir="$HOME/.cache/berth-bench"
wasmtime="${WASMTIME:-$bench_dir/wasmtime-48/bin/wasmtime}"

command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
# need_wasmtime: installs `wasmtime serve` 48 for the scripts that compare
# against it (once; a long build).
need_wasmtime() {
  if [ ! -x "$wasmtime" ]; then
    echo "installing wasmtime-cli 48.0.8 into $bench_dir (once) ..." >&2
    CARGO_TARGET_DIR="$bench_dir/target" cargo install --quiet wasmtime-cli --version 48.0.8 --locked \
      --root "$bench_dir/wasmtime-48"
  fi
}
cargo build --quiet --release --locked -p berth-cli -p berth-bench-origin
berth="$CARGO_TARGET_DIR/release/berth"
origin_bin="$CARGO_TARGET_DIR/release/berth-bench-origin"
results="$(mktemp)"
# PIN=1: server on core 0, load generator on core 1 (taskset).
if [ "${PIN:-0}" = 1 ]; then
  server_prefix="taskset -c 0" client_prefix="taskset -c 1"
else
  server_prefix="" client_prefix=""
fi
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done; echo "no answer from $1" >&2; return 1; }

# measure LABEL URL SECONDS CONNECTIONS: warm up, run wrk, append
# "label req/s p50 p99 0" to $results (set_extra fills the last column).
measure() {
  local label="$1" url="$2" seconds="$3" conns="$4" extra=0 out
  $client_prefix wrk -t1 -c"$conns" -d1s "$url" >/dev/null
  out="$($client_prefix wrk -t1 -c"$conns" -d"${seconds}s" --latency "$url")"
  echo "$label $(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out") $extra" >>"$results"
}

# set_extra VALUE: the extra column of the last measurement.
set_extra() { sed -i "\$ s/ [0-9]*\$/ $1/" "$results"; }

# summarize TITLE EXTRA-COLUMN-NAME BASELINE...: medians per label and
# ratios of every label against each baseline.
summarize() {
  python3 - "$results" "$@" <<'PY'
import statistics, sys
path, title, extra, *baselines = sys.argv[1:]
def ms(t):
    if t.endswith("us"): return float(t[:-2]) / 1000
    if t.endswith("ms"): return float(t[:-2])
    return float(t[:-1]) * 1000
rows = {}
for line in open(path):
    label, rps, p50, p99, x = line.split()
    rows.setdefault(label, []).append((float(rps), ms(p50), ms(p99), x))
print(title)
head = f"{'host':<12} {'req/s (median)':>15} {'min..max':>17} {'p50 ms':>8} {'p99 ms':>8}"
print(head + (f" {extra:>20}" if extra != "-" else ""))
med = {}
for label, v in rows.items():
    r = [x[0] for x in v]
    med[label] = statistics.median(r)
    line = (f"{label:<12} {med[label]:>15.0f} {min(r):>8.0f}..{max(r):<8.0f} "
            f"{statistics.median(x[1] for x in v):>8.2f} {statistics.median(x[2] for x in v):>8.2f}")
    if extra != "-":
        line += f" {max(int(x[3]) for x in v):>20}"
    print(line)
for base in baselines:
    for label in med:
        if label != base and base in med:
            print(f"ratio {label} / {base}: {med[label] / med[base]:.2f}x")
PY
}
