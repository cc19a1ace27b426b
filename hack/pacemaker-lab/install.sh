#!/usr/bin/env bash
# Installs what the Pacemaker test tier needs from Debian: Corosync 3, Pacemaker 2.1, the CLI
# tools (crm_mon, crm_attribute, crm_standby), crmsh, pcs and fence_dummy; and pacemaker-remoted
# unpacked beside Pacemaker, because Debian's pacemaker-remote package conflicts with pacemaker
# (installing it would remove pacemaker). Idempotent: returns at once when everything is there.
set -euo pipefail
remote_root="${PCMK_REMOTE_ROOT:-/opt/masakari-pcmk-remote}"
remoted="$remote_root/usr/sbin/pacemaker-remoted"
packages=(pacemaker corosync pacemaker-cli-utils crmsh pcs fence-agents iproute2 util-linux)
tools=(corosync pacemakerd crm_mon crm_attribute crm_standby crm pcs fence_dummy corosync-keygen
       ip nsenter unshare)

have_all() {
  local t
  for t in "${tools[@]}"; do
    PATH="$PATH:/usr/sbin:/sbin" command -v "$t" >/dev/null || return 1
  done
  [[ -x "$remoted" ]]
}

if have_all; then exit 0; fi
if [[ $(id -u) -ne 0 ]]; then
  echo "install.sh: the Pacemaker lab needs root to install packages and create namespaces" >&2
  exit 1
fi
# The lab starts its own daemons, per node.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/apt.sh"
apt_install_without_daemons "${packages[@]}"
if [[ ! -x "$remoted" ]]; then
  work="$(mktemp -d)"
  (cd "$work" && apt-get download -qq pacemaker-remote)
  mkdir -p "$remote_root"
  dpkg-deb -x "$work"/pacemaker-remote_*.deb "$remote_root"
  rm -rf "$work"
fi
have_all || { echo "install.sh: packages installed but a tool is still missing" >&2; exit 1; }
echo "install.sh: Pacemaker lab packages ready" >&2
