#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from Go modules (versions pinned in go.mod here) into a
# cache directory keyed by version, and prints that directory. A warm cache returns at once.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MASAKARI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masakari-operator}"
k8s="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$here/go.mod")"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$here/go.mod")"
dest="$cache/control-plane/kubernetes-$k8s-etcd-$etcd"

built() { [[ -x "$dest/kube-apiserver" && -x "$dest/etcd" && -x "$dest/kubectl" ]]; }
if built; then echo "$dest"; exit 0; fi

command -v go >/dev/null || { echo "build.sh: Go is needed to build the control plane" >&2; exit 1; }
mkdir -p "$cache/control-plane"
exec 9>"$cache/control-plane/.build.lock"
flock 9   # a second build waits for the first and then finds the binaries
if built; then echo "$dest"; exit 0; fi

minor="${k8s#v1.}"; minor="${minor%%.*}"
stamp="-X k8s.io/component-base/version.gitVersion=$k8s"
stamp+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
tmp="$dest.partial"
rm -rf "$tmp" && mkdir -p "$tmp"
cd "$here"
start=$(date +%s)
echo "build.sh: building kube-apiserver and kubectl $k8s, etcd $etcd (first use only)" >&2
export CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
go build -ldflags "-s -w $stamp" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -ldflags "-s -w $stamp" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl
go build -ldflags "-s -w" -o "$tmp/etcd" ./etcd
rm -rf "$dest" && mv "$tmp" "$dest"
echo "build.sh: built in $(( $(date +%s) - start ))s" >&2
echo "$dest"
