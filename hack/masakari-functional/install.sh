#!/usr/bin/env bash
# Installs Masakari 22 (whose wheel ships its functional tests, masakari.tests.functional) into a
# virtualenv of its own in the cache, keyed by the pinned versions, idempotently, and prints the
# virtualenv's directory. Its own venv: Masakari's dependencies are heavy and pin libraries
# differently from ours. requirements.txt freezes a full install (every dependency masakari
# declares), so the venv also runs a real masakari-api (tests/harness/nova_lab/masakari.py).
# A warm cache returns at once. Needs no root.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MASAKARI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masakari-operator}"
python="${MASAKARI_FUNCTIONAL_PYTHON:-python3}"

pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
lock_hash="$(sha256sum "$here/requirements.txt" | cut -c1-12)"
dest="$cache/masakari-functional/py$pyver-$lock_hash"
ready() { [[ -x "$dest/bin/python" && -e "$dest/.complete" ]]; }
source "$here/../lib/cache.sh"
cache_claim "$dest" ready

tmp="$dest.partial"
start=$(date +%s)
echo "masakari-functional install: Masakari 22 into $dest (first use only)" >&2
"$python" -m venv "$tmp"
"$tmp/bin/pip" install -q --disable-pip-version-check --no-deps -r "$here/requirements.txt" \
  >"$tmp/pip.log" 2>&1 || { cat "$tmp/pip.log" >&2; exit 1; }
cache_commit "$dest" bin
echo "masakari-functional install: done in $(( $(date +%s) - start ))s" >&2
echo "$dest"
