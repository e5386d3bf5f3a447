#!/usr/bin/env bash
# Builds berth's container image (deploy/Containerfile) and smoke-tests it:
# the container serves the demo, /readyz answers 200 on the admin port,
# and SIGTERM drains and exits 0 — with a read-only root filesystem and no
# capabilities, as deploy/kubernetes runs it.
#
#   scripts/image.sh [TAG]          (default berth:dev)
#
# Uses docker or podman, whichever has a running engine; where none runs
# (or BERTH_IMAGE_SKIP is set), says so and exits 0.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
tag="${1:-berth:dev}"

engine=""
for candidate in docker podman; do
  if command -v "$candidate" >/dev/null && "$candidate" info >/dev/null 2>&1; then
    engine="$candidate"
    break
  fi
done
if [ -n "${BERTH_IMAGE_SKIP:-}" ] || [ -z "$engine" ]; then
  echo "image: no container engine running (docker or podman); skipping the image build and smoke test"
  exit 0
fi

echo "==> $engine build -f deploy/Containerfile -t $tag ."
"$engine" build -f deploy/Containerfile -t "$tag" .
name="berth-smoke-$$"
cleanup() { "$engine" rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$engine" run -d --name "$name" --read-only --cap-drop ALL --security-opt no-new-privileges \
  -p 127.0.0.1::8080 -p 127.0.0.1::9090 "$tag" >/dev/null
port() { "$engine" port "$name" "$1/tcp" | head -n 1 | sed 's/.*://'; }
http_port="$(port 8080)"
admin_port="$(port 9090)"
for _ in $(seq 50); do
  curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$admin_port/readyz" >/dev/null
body="$(curl -fsS "http://127.0.0.1:$http_port/")"
grep -qi berth <<<"$body" || { echo "image: unexpected answer: $body" >&2; exit 1; }
"$engine" kill --signal TERM "$name" >/dev/null
status="$("$engine" wait "$name")"
"$engine" logs "$name" 2>&1 | tail -n 5
if [ "$status" != 0 ]; then
  echo "image: berth exited with $status after SIGTERM" >&2
  exit 1
fi
echo "image: $tag serves the demo, is ready, and drains on SIGTERM (exit 0)"
