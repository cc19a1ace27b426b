"""Reading OpenStack's microversion header, shared by the Masakari API and the simulator."""

from __future__ import annotations

from collections.abc import Iterable

HEADER = "OpenStack-API-Version"


def asked_for(headers: Iterable[str], service: str) -> str | None:
    """The version string `service` is asked for in `OpenStack-API-Version` headers
    (`compute 2.87`, `instance-ha 1.2`, comma-separated lists); the last one wins."""
    value = None
    for header in headers:
        for part in header.split(","):
            name, _, version = part.strip().partition(" ")
            if name.lower() == service:
                value = version.strip()
    return value
