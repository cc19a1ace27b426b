#!/usr/bin/env python3
"""Pacemaker alert agent: hands node and fencing events to the host monitor of this node.

Pacemaker runs an alert agent for each event it is configured for, with the event in
CRM_alert_* variables (docs/hostmonitor.md has the `pcs alert` / `cibadmin` recipes). This one
sends one datagram to the host monitor's socket (the alert's recipient, a path) and exits: the
host monitor then reads the cluster at once instead of at its next sample, so a FailureEvent
follows a confirmed fencing within a fraction of a second. Polling stays: an alert that is
lost (monitor restarting, socket full) costs one sample interval, nothing else.

Standard library only, no import of the project: it runs as Pacemaker's user with the system
Python, once per event, and must start fast and never fail the cluster (it always exits 0).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping

DEFAULT_SOCKET = "/run/masakari-hostmonitor/alerts.sock"
# Only these kinds change a node's state; resource and attribute alerts are not sent.
KINDS = ("node", "fencing")
FIELDS = ("kind", "node", "desc", "rc", "task", "timestamp", "timestamp_epoch", "nodeid")
MAX_FIELD = 256
# What the host monitor reads of one datagram: the longest alert this agent sends (every
# field MAX_FIELD characters outside the BMP, each escaped by JSON as 12 bytes) fits.
DATAGRAM_MAX = 65536


def message(environment: Mapping[str, str]) -> bytes | None:
    """The datagram for this alert, or None when it is not one the host monitor wants."""
    if environment.get("CRM_alert_kind") not in KINDS:
        return None
    fields = {
        name: environment[f"CRM_alert_{name}"][:MAX_FIELD]
        for name in FIELDS
        if f"CRM_alert_{name}" in environment
    }
    return json.dumps(fields, separators=(",", ":")).encode()


def send(datagram: bytes, path: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)  # a monitor that is not reading must not hold Pacemaker up
        sock.sendto(datagram, path)


def cib_alerts(agent: str, socket_path: str) -> str:
    """The CIB `alerts` section that installs this agent for node and fencing events, as
    `pcs alert create` would write it; load it with
    `cibadmin --modify --scope configuration --xml-text "<configuration>...</configuration>"`."""
    return (
        f'<alerts><alert id="masakari" path="{agent}">'
        "<select><select_nodes/><select_fencing/></select>"
        f'<recipient id="masakari-socket" value="{socket_path}"/>'
        "</alert></alerts>"
    )


def main() -> int:
    if sys.argv[1:2] == ["--cib"]:
        socket_path = sys.argv[2] if len(sys.argv) > 2 else DEFAULT_SOCKET
        print(cib_alerts(os.path.abspath(__file__), socket_path))
        return 0
    datagram = message(os.environ)
    if datagram is None:
        return 0
    recipient = os.environ.get("CRM_alert_recipient", "")  # noqa: SIM112 (Pacemaker's name)
    path = recipient if recipient.startswith("/") else DEFAULT_SOCKET
    try:
        send(datagram, path)
    except OSError as error:
        # Pacemaker logs an agent's stderr; the host monitor's polling covers the event.
        print(f"masakari alert: not delivered to {path}: {error}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
