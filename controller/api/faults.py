"""Masakari's fault bodies: `{"<faultName>": {"code": N, "message": "..."}}`.

Every error the API answers is an ApiFault with a message written for the caller; texts of
exceptions from Kubernetes, Keystone or Nova never reach a response.
"""

from __future__ import annotations

from typing import Any

# masakari/api/openstack/wsgi.py Fault._fault_names
FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}
INTERNAL_ERROR = (
    "Unexpected API Error. Please report this at the operator's issue tracker and attach "
    "the request id if possible."
)


class ApiFault(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        name = FAULT_NAMES.get(self.code, "masakariFault")
        return {name: {"code": self.code, "message": self.message}}


def bad_request(message: str) -> ApiFault:
    return ApiFault(400, message)


def not_found(message: str) -> ApiFault:
    return ApiFault(404, message)


def conflict(message: str) -> ApiFault:
    return ApiFault(409, message)


def unavailable(what: str) -> ApiFault:
    return ApiFault(503, f"{what} is not reachable at the moment; try again later.")
