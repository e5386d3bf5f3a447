#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes, so a typo fails
# the build:
#
# * every resource the kustomization lists (and every YAML file in the
#   directory is listed) against the Kubernetes JSON schemas, strictly
#   (unknown fields are errors), with kubernetes-validate from PyPI
#   (installed into a virtualenv under ~/.cache on first use);
# * the berth.toml inside the ConfigMap with `berth check` (every key,
#   route and component), the image's paths mapped onto the repository's
#   demo component, when a berth binary is given as $1.
#
#   scripts/validate-manifests.sh [PATH-TO-berth]
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top/deploy/kubernetes"

kube_version=1.37.0
venv="${BERTH_KUBEVAL_VENV:-$HOME/.cache/berth-kubeval}"
if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$kube_version"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "kubernetes-validate==$kube_version"
fi
py="$venv/bin/python"

# The kustomization's resources, and a check that no manifest is left out.
mapfile -t resources < <("$py" - <<'EOF'
import pathlib, sys, yaml
k = yaml.safe_load(open("kustomization.yaml"))
listed = k["resources"]
present = sorted(p.name for p in pathlib.Path(".").glob("*.yaml") if p.name != "kustomization.yaml")
missing = sorted(set(present) - set(listed))
if missing:
    sys.exit(f"not in kustomization.yaml resources: {missing}")
for r in listed:
    print(r)
EOF
)
"$venv/bin/kubernetes-validate" --strict --quiet -k "$kube_version" "${resources[@]}"
echo "manifests: ${#resources[@]} resources valid against Kubernetes $kube_version (strict)"

berth="${1:-}"
if [ -z "$berth" ]; then
  echo "manifests: no berth binary given; berth.toml not checked"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$py" - "$work" "$top/guests/prebuilt/demo.wasm" <<'EOF'
import sys, yaml
work, demo = sys.argv[1], sys.argv[2]
text = yaml.safe_load(open("configmap.yaml"))["data"]["berth.toml"]
text = text.replace("/opt/berth/app.wasm", demo).replace("/opt/berth/cache", work + "/cache")
open(work + "/berth.toml", "w").write(text)
EOF
"$berth" check "$work/berth.toml"
