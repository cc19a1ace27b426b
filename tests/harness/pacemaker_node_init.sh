#!/usr/bin/env bash
# PID 1 of one Pacemaker lab node (started by tests/harness/pacemaker_lab.py inside the node's
# own network, mount, UTS and PID namespaces). It gives the node private copies of the paths
# corosync and pacemaker write to, then runs the node's daemons and reaps orphans until killed.
# usage: pacemaker_node_init.sh NODE_DIR NODE_NAME member|remote REMOTED_BINARY
set -euo pipefail
dir=$1 name=$2 kind=$3 remoted=$4

bind() { mkdir -p "$2" && mount --bind "$1" "$2"; }
bind "$dir/etc-corosync" /etc/corosync
bind "$dir/var-lib-corosync" /var/lib/corosync
bind "$dir/log-corosync" /var/log/corosync
bind "$dir/etc-pacemaker" /etc/pacemaker
bind "$dir/var-lib-pacemaker" /var/lib/pacemaker
bind "$dir/log-pacemaker" /var/log/pacemaker
mount --bind "$dir/hosts" /etc/hosts
# libqb keeps its IPC ring buffers in /dev/shm and daemons their pid files in /run: a node that
# shared them with another would talk to the other's daemons.
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
hostname "$name"
export PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_logfacility=none

case $kind in
  member)
    /usr/sbin/corosync -f >"$dir/corosync.out" 2>&1 &
    for _ in $(seq 100); do
      corosync-cfgtool -s >/dev/null 2>&1 && break
      sleep 0.1
    done
    /usr/sbin/pacemakerd >"$dir/pacemakerd.out" 2>&1 &
    ;;
  remote)
    "$remoted" >"$dir/remoted.out" 2>&1 &
    ;;
  *) echo "unknown node kind $kind" >&2; exit 2 ;;
esac
# As PID 1, bash's wait also reaps the daemons' re-parented children.
while true; do wait || true; sleep 1; done
