#!/usr/bin/env bash
# Builds Helm from its Go module (the version pinned here) into the cache, as
# hack/control-plane/build.sh does for the control plane, and prints its path. The chart's
# tests (`helm lint`, `helm template`) run it; a warm cache returns at once.
set -euo pipefail
version="v3.17.3"
cache="${MASAKARI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masakari-operator}"
dest="$cache/helm-$version"
if [[ -x "$dest/helm" ]]; then echo "$dest/helm"; exit 0; fi
command -v go >/dev/null || { echo "build.sh: Go is needed to build Helm" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.helm-build.lock"
flock 9
if [[ -x "$dest/helm" ]]; then echo "$dest/helm"; exit 0; fi
echo "build.sh: building Helm $version (first use only)" >&2
rm -rf "$dest.partial" && mkdir -p "$dest.partial"
GOBIN="$dest.partial" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
  go install -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$version"
rm -rf "$dest" && mv "$dest.partial" "$dest"
echo "$dest/helm"
