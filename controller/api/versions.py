"""Microversions (`OpenStack-API-Version: instance-ha X.Y`) and the version documents."""

from __future__ import annotations

import re
from typing import Any

from controller.api.faults import ApiFault, bad_request
from controller.microversions import asked_for

SERVICE_TYPE = "instance-ha"
MIN_VERSION = (1, 0)
MAX_VERSION = (1, 3)
UPDATED = "2016-07-01T11:33:21Z"
_VERSION = re.compile(r"^([1-9]\d*)\.(0|[1-9]\d*)$")

Version = tuple[int, int]


def text(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


def requested(headers: list[str]) -> Version:
    """The microversion asked for: missing means the minimum, as in Masakari."""
    value = asked_for(headers, SERVICE_TYPE)
    if value is None:
        return MIN_VERSION
    if value.lower() == "latest":
        return MAX_VERSION
    match = _VERSION.match(value)
    try:
        # int() refuses over 4300 digits (ValueError): no version, however far out of range.
        asked = (int(match.group(1)), int(match.group(2))) if match else None
    except ValueError:
        asked = None
    if asked is None:
        raise bad_request(
            f"API Version String {value[:40]} is of invalid format. Must be of "
            "format MajorNum.MinorNum."
        )
    if not MIN_VERSION <= asked <= MAX_VERSION:
        raise ApiFault(
            406,
            f"Version {text(asked)} is not supported by the API. Minimum is "
            f"{text(MIN_VERSION)} and maximum is {text(MAX_VERSION)}.",
        )
    return asked


def _document(base_url: str) -> dict[str, Any]:
    return {
        "id": "v1.0",
        "status": "CURRENT",
        "version": text(MAX_VERSION),
        "min_version": text(MIN_VERSION),
        "updated": UPDATED,
        "links": [{"rel": "self", "href": f"{base_url}/v1/"}],
    }


def versions(base_url: str) -> dict[str, Any]:
    return {"versions": [_document(base_url)]}


def version_v1(base_url: str) -> dict[str, Any]:
    document = _document(base_url)
    document["links"].append(
        {
            "rel": "describedby",
            "type": "text/html",
            "href": "https://docs.openstack.org/masakari/latest/",
        }
    )
    document["media-types"] = [
        {"base": "application/json", "type": "application/vnd.openstack.masakari+json;version=1"}
    ]
    return {"version": document}
