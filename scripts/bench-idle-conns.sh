#!/usr/bin/env bash
# Memory per idle connection: opens N keep-alive connections to a server,
# sends one /hello on each (HTTP/1.1, or HTTP/2 with prior knowledge),
# keeps them all open and idle, and reads the server's RSS before and
# after (both after a warm-up burst). Servers: berth (suite guest) and
# native hyper (berth-bench-origin, the floor). Timeouts are raised so
# nothing is closed while measuring.
#
#   scripts/bench-idle-conns.sh [CONNECTIONS] [ROUNDS]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
conns="${1:-10000}" rounds="${2:-2}"
source scripts/bench-lib.sh
guest="$top/guests/prebuilt/suite.wasm"
# The client holds $conns sockets (the server as many, in its own process).
ulimit -Sn "$(ulimit -Hn)"
[ "$(ulimit -Sn)" = unlimited ] || [ "$(ulimit -Sn)" -gt $((conns + 100)) ] ||
  { echo "need more than $conns file descriptors (ulimit -n is $(ulimit -Sn))" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

client() { # PORT PROTO: opens the connections, prints how many answered, holds them 5 s
  python3 - "$1" "$2" "$conns" <<'PY'
import asyncio, sys
port, proto, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
def frame(kind, flags, stream, payload=b""):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
# GET /hello: :method GET, :scheme http (static), literal :path and :authority.
BLOCK = b"\x82\x86\x04\x06/hello\x01\x05bench"

async def h1(r, w):
    w.write(b"GET /hello HTTP/1.1\r\nhost: bench\r\n\r\n")
    data = b""
    while True:
        chunk = await r.read(65536)
        if not chunk:
            raise RuntimeError("closed before the response ended")
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            continue
        lines = head.lower().split(b"\r\n")
        length = [l.split(b":")[1] for l in lines if l.startswith(b"content-length:")]
        if length and len(body) >= int(length[0]):
            return
        if not length and body.endswith(b"0\r\n\r\n"):
            return

async def h2(r, w):
    w.write(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, BLOCK))
    while True:
        head = await r.readexactly(9)
        size, kind, flags = int.from_bytes(head[:3], "big"), head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = await r.readexactly(size)
        if kind == 4 and not flags & 1:
            w.write(frame(4, 1, 0))
        if kind == 6 and not flags & 1:
            w.write(frame(6, 1, 0, payload))
        if stream == 1 and kind in (0, 1) and flags & 1:
            return

async def one(gate, held):
    async with gate:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        await (h1 if proto == "h1" else h2)(r, w)
        held.append((r, w))

async def main():
    gate, held = asyncio.Semaphore(256), []
    await asyncio.gather(*(one(gate, held) for _ in range(n)))
    print(len(held), flush=True)
    # Hold them, idle, while the server's memory is read.
    await asyncio.sleep(5)

asyncio.run(main())
PY
}

results_idle="$(mktemp)"
run_one() { # label proto
  local label="$1" proto="$2" port pid before after
  port="$(free_port)"
  case "$label" in
    berth-*) RUST_LOG=warn "$berth" serve "$guest" --addr "127.0.0.1:$port" \
               --header-read-timeout-secs 600 --idle-timeout-secs 600 \
               --max-connections $((conns + 10)) 2>/dev/null & pid=$! ;;
    native-*) "$origin_bin" "127.0.0.1:$port" 2>/dev/null & pid=$! ;;
  esac
  pids+=("$pid")
  wait_http "http://127.0.0.1:$port/hello"
  # Warm up with as many requests at once as the client opens connections
  # at once, so instances and buffers a burst needs are already resident
  # and the difference below is the connections' own.
  wrk -t1 -c256 -d2s "http://127.0.0.1:$port/hello" >/dev/null
  sleep 0.5
  before="$(rss_kib "$pid")"
  local out opened client_pid
  out="$(mktemp)"
  client "$port" "$proto" >"$out" & client_pid=$!
  until [ -s "$out" ] || ! kill -0 "$client_pid" 2>/dev/null; do sleep 0.1; done
  opened="$(head -1 "$out")"
  [ "$opened" = "$conns" ] || { echo "$label: only '$opened' connections" >&2; exit 1; }
  sleep 2
  after="$(rss_kib "$pid")"
  wait "$client_pid"
  rm -f "$out"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$label $before $after" >>"$results_idle"
}

for _ in $(seq "$rounds"); do
  for label in berth-h1 native-h1 berth-h2 native-h2; do run_one "$label" "${label##*-}"; done
done

python3 - "$results_idle" "$conns" "$rounds" <<'PY'
import statistics, sys
path, n, rounds = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows = {}
for line in open(path):
    label, before, after = line.split()
    rows.setdefault(label, []).append((int(before), int(after)))
print(f"{n} idle keep-alive connections, one /hello each, {rounds} interleaved rounds (server RSS, medians)")
print(f"{'server':<12} {'RSS before':>12} {'RSS with idle':>14} {'per connection':>15}")
for label, v in rows.items():
    before = statistics.median(b for b, _ in v)
    after = statistics.median(a for _, a in v)
    per = statistics.median((a - b) * 1024 / n for b, a in v)
    print(f"{label:<12} {before/1024:>9.1f} MiB {after/1024:>10.1f} MiB {per/1024:>11.1f} KiB")
PY
