#!/usr/bin/env bash
# The whole benchmark suite in one run, each table interleaving its hosts:
# hello (suite guest /hello: berth fresh and --reuse, `wasmtime serve`
# fresh and with reuse, native hyper) at 1, 16 and 256 connections,
# unpinned and pinned (server core 0, wrk core 1); heavy start-up (fresh,
# --pre-init, --reuse); wasi:http@0.3.0 hello at 16 and 256 connections,
# unpinned and pinned; proxy against a native pooled hyper proxy, unpinned
# and pinned; echo of 1 GiB (0.2, a 0.3 service, a two-stage 0.3
# middleware chain); 10 000 concurrent trickling streams (0.3 and 0.2,
# HTTP/1.1 and HTTP/2); cold start to the first 200; and the criterion
# micro-benchmark of one request (instantiate + handle). berth runs at its
# default log level (access lines on). Installs wasmtime-cli 48 from
# crates.io on first use (scripts/bench-lib.sh); needs wrk and curl.
#
#   scripts/bench.sh [ROUNDS] [SECONDS]     defaults: 2 rounds x 5 s
#
# Takes about 35 minutes with the defaults. Results and the machine they
# came from go in BENCHMARKS.md.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
rounds="${1:-2}" seconds="${2:-5}"

section() { printf '\n## %s\n\n' "$*"; }

section "machine"
echo "$(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr)"
echo "rustc $(rustc --version | cut -d' ' -f2), $(date -u +%Y-%m-%dT%H:%MZ)"

for conns in 1 16 256; do
  section "hello, $conns connections"
  scripts/bench-hello.sh "$rounds" "$seconds" "$conns"
  echo
  PIN=1 scripts/bench-hello.sh "$rounds" "$seconds" "$conns"
done

section "heavy start-up (guests/heavy-init), 16 connections"
GUEST=heavy-init URL_PATH=/ HOSTS="berth berth-preinit berth-reuse wasmtime" \
  scripts/bench-hello.sh "$rounds" "$seconds" 16

for conns in 16 256; do
  section "wasi:http@0.3.0 hello, $conns connections"
  scripts/bench-p3.sh "$rounds" "$seconds" "$conns"
  echo
  PIN=1 scripts/bench-p3.sh "$rounds" "$seconds" "$conns"
done

section "proxy, 16 connections"
scripts/bench-proxy.sh "$rounds" "$seconds" 16
echo
PIN=1 scripts/bench-proxy.sh "$rounds" "$seconds" 16

section "echo of 1 GiB"
scripts/bench-echo.sh 1024

section "10 000 concurrent streams (a 64-byte chunk a second for 30 s each)"
scripts/bench-streams.sh 10000 30

section "cold start"
scripts/bench-coldstart.sh 10

section "micro-benchmark: one request through Runtime::handle (criterion)"
# A failing micro-benchmark must not look like an empty table.
if ! micro="$(cargo bench --quiet --locked -p berth-runtime --bench instantiate -- \
  --warm-up-time 1 --measurement-time 3 2>&1)"; then
  printf '%s\n' "$micro" | tail -20 >&2
  echo "the micro-benchmark failed" >&2
  exit 1
fi
grep -E "time:|^hello|^phase|^heavy" <<<"$micro"
