#!/usr/bin/env bash
# Installs what the real-Nova test tier runs on, idempotently, and prints the directory of the
# virtualenvs: MariaDB and RabbitMQ from Debian (apt), then Nova + Placement and Glance from PyPI
# into virtualenvs in a cache directory keyed by the pinned versions. A warm cache returns at once.
# Needs root (apt, and the lab starts the database and the broker as root).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${MASAKARI_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/masakari-operator}"
python="${NOVA_LAB_PYTHON:-python3}"

fail() { echo "nova-lab install: $*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || fail "must run as root (Debian packages, and the lab runs MariaDB/RabbitMQ as root)"

packages=(mariadb-server rabbitmq-server)
installed() { dpkg-query -W -f='${Status}\n' "$@" 2>/dev/null | grep -c '^install ok installed$' | grep -qx "$#"; }
if ! installed "${packages[@]}"; then
  command -v apt-get >/dev/null || fail "apt-get not found: the lab needs a Debian-like system"
  echo "nova-lab install: apt-get install ${packages[*]}" >&2
  # The lab runs private MariaDB and RabbitMQ instances.
  source "$here/../lib/apt.sh"
  apt_install_without_daemons "${packages[@]}"
fi

pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
lock_hash="$(cat "$here"/requirements-*.txt | sha256sum | cut -c1-12)"
dest="$cache/nova-lab/py$pyver-$lock_hash"
ready() { [[ -x "$dest/nova/bin/nova-compute" && -x "$dest/glance/bin/glance-manage" && -e "$dest/.complete" ]]; }
source "$here/../lib/cache.sh"
cache_claim "$dest" ready

tmp="$dest.partial"
start=$(date +%s)
echo "nova-lab install: Nova, Placement and Glance into $dest (first use only)" >&2
# Two venvs because glance and nova pin some libraries differently; built side by side.
for venv in nova glance; do
  (
    "$python" -m venv "$tmp/$venv"
    "$tmp/$venv/bin/pip" install -q --disable-pip-version-check --no-deps \
      -r "$here/requirements-$venv.txt" >"$tmp/$venv-pip.log" 2>&1 \
      || { cat "$tmp/$venv-pip.log" >&2; exit 1; }
  ) &
done
for job in $(jobs -p); do wait "$job" || fail "pip install failed (see above)"; done
cache_commit "$dest" nova/bin glance/bin
echo "nova-lab install: done in $(( $(date +%s) - start ))s" >&2
echo "$dest"
