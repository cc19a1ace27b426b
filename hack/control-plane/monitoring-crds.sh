#!/usr/bin/env bash
# Fetches the Prometheus Operator's ServiceMonitor and PrometheusRule CRDs from its Go module
# (the version pinned here) into the cache, and prints the directory: the tests apply
# deploy/monitoring/ to the real API server with them installed, as on a cluster that runs
# kube-prometheus-stack. A warm cache returns at once; tests never fetch anything themselves.
set -euo pipefail
version="v0.80.1"
module="github.com/prometheus-operator/prometheus-operator"
cache="${MASAKARI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masakari-operator}"
dest="$cache/monitoring-crds/prometheus-operator-$version"
kinds=(servicemonitors prometheusrules)

have() {
  local k
  for k in "${kinds[@]}"; do [[ -s "$dest/monitoring.coreos.com_$k.yaml" ]] || return 1; done
}
if have; then echo "$dest"; exit 0; fi
command -v go >/dev/null || { echo "monitoring-crds.sh: Go is needed" >&2; exit 1; }
dir="$(cd / && go mod download -json "$module@$version" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir" ]] || { echo "monitoring-crds.sh: $module@$version not downloaded" >&2; exit 1; }
mkdir -p "$dest.partial"
for k in "${kinds[@]}"; do
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$k.yaml" "$dest.partial/"
done
rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "$dest"
