"""Request body checks in the shape of Masakari's JSON schemas (masakari/api/validation).

Each body is `{"<resource>": {...}}` with additionalProperties false at both levels; a refused
body gets a 400 whose message names the field, the value and the rule, as Masakari's do.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from controller.api.faults import bad_request
from controller.resources.segment import RecoveryMethod

TRUE_STRINGS = {"True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes"}
FALSE_STRINGS = {"False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no"}
_HOSTNAME = re.compile(r"^[a-zA-Z0-9-._]*$")
_HOST_TYPE = re.compile(r"^[a-zA-Z0-9]*$")
_PAYLOAD_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
_SHOWN_VALUE = 80

Check = Callable[[Any], Any]


class Refused(ValueError):
    """A value breaks a rule; the text says which rule."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "..."


def invalid(name: str, value: Any, reason: str) -> Exception:
    return bad_request(
        f"Invalid input for field/attribute {name}. Value: {_shown(value)}. {reason}"
    )


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in TRUE_STRINGS:
        return True
    if isinstance(value, str) and value in FALSE_STRINGS:
        return False
    raise Refused(f"{_shown(value)} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _string(value: Any, low: int, high: int) -> str:
    if not isinstance(value, str):
        raise Refused(f"{_shown(value)} is not of type 'string'")
    if len(value) < low:
        raise Refused(f"{_shown(value)} is too short")
    if len(value) > high:
        raise Refused(f"{_shown(value)} is too long (at most {high} characters)")
    return value


def name(value: Any) -> str:
    text = _string(value, 1, 255)
    if text != text.strip() or not text.isprintable():
        raise Refused(f"{_shown(value)} has leading/trailing whitespace or unprintable characters")
    return text


def description(value: Any) -> str | None:
    return None if value is None else _string(value, 0, 4096)


def host_type(value: Any) -> str:
    text = _string(value, 0, 255)
    if not _HOST_TYPE.match(text):
        raise Refused(f"{_shown(value)} does not match '^[a-zA-Z0-9]*$'")
    return text


def hostname(value: Any) -> str:
    text = _string(value, 1, 255)
    if not _HOSTNAME.match(text):
        raise Refused(f"{_shown(value)} does not match '^[a-zA-Z0-9-._]*$'")
    return text


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str:
        if value not in choices:
            raise Refused(f"{_shown(value)} is not one of {list(choices)}")
        return str(value)

    return check


def date_time(value: Any) -> datetime:
    text = _string(value, 1, 64)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{_shown(value)} is not a 'date-time'") from None
    # Monitors send naive UTC (datetime.utcnow().isoformat()).
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def payload_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused(f"{_shown(value)} is not of type 'object'")
    for key in value:
        if not _PAYLOAD_KEY.match(key):
            raise Refused(f"the key {_shown(key)} does not match '^[a-zA-Z0-9-_:. ]{{1,255}}$'")
    return value


@dataclass(frozen=True)
class Schema:
    """One resource body: its wrapper key, its fields, which are required, and whether an
    empty body is allowed (updates need at least one field, Masakari's anyOf)."""

    key: str
    fields: Mapping[str, Check]
    required: frozenset[str] = field(default_factory=frozenset)
    at_least_one: bool = False

    def __call__(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) != {self.key}:
            raise bad_request(
                f"The request body must be a JSON object with the single key '{self.key}'."
            )
        inner = body[self.key]
        if not isinstance(inner, dict):
            raise invalid(self.key, inner, f"{_shown(inner)} is not of type 'object'")
        unknown = sorted(set(inner) - set(self.fields))
        if unknown:
            raise bad_request(
                "Additional properties are not allowed "
                f"({', '.join(repr(k) for k in unknown)} {'was' if len(unknown) == 1 else 'were'}"
                " unexpected)"
            )
        missing = sorted(self.required - set(inner))
        if missing:
            raise bad_request(f"'{missing[0]}' is a required property")
        if self.at_least_one and not inner:
            raise bad_request(
                f"At least one of {', '.join(sorted(self.fields))} must be given to update."
            )
        checked: dict[str, Any] = {}
        for key, value in inner.items():
            try:
                checked[key] = self.fields[key](value)
            except Refused as error:
                raise invalid(key, value, str(error)) from None
        return checked


_RECOVERY_METHODS = one_of(*(method.value for method in RecoveryMethod))
_SEGMENT_FIELDS: dict[str, Check] = {
    "name": name,
    "description": description,
    "recovery_method": _RECOVERY_METHODS,
    "service_type": name,
}
_SEGMENT_REQUIRED = frozenset({"name", "recovery_method", "service_type"})
SEGMENT_CREATE = Schema("segment", _SEGMENT_FIELDS, _SEGMENT_REQUIRED)
SEGMENT_CREATE_12 = Schema("segment", {**_SEGMENT_FIELDS, "enabled": boolean}, _SEGMENT_REQUIRED)
SEGMENT_UPDATE = Schema("segment", _SEGMENT_FIELDS, at_least_one=True)
SEGMENT_UPDATE_12 = Schema("segment", {**_SEGMENT_FIELDS, "enabled": boolean}, at_least_one=True)

_HOST_FIELDS: dict[str, Check] = {
    "name": name,
    "type": host_type,
    "control_attributes": lambda value: _string(value, 0, 4096),
    "reserved": boolean,
    "on_maintenance": boolean,
}
HOST_CREATE = Schema("host", _HOST_FIELDS, frozenset({"name", "type", "control_attributes"}))
HOST_UPDATE = Schema("host", _HOST_FIELDS, at_least_one=True)

NOTIFICATION_TYPES = ("COMPUTE_HOST", "VM", "PROCESS")
NOTIFICATION_CREATE = Schema(
    "notification",
    {
        "type": one_of(*NOTIFICATION_TYPES),
        "hostname": hostname,
        "generated_time": date_time,
        "payload": payload_object,
    },
    frozenset({"type", "hostname", "generated_time", "payload"}),
)


def _uuid(value: Any) -> str:
    text = _string(value, 32, 36)
    try:
        uuid.UUID(text)
    except ValueError:
        raise Refused(f"{_shown(value)} is not a 'uuid'") from None
    return text


def _free(low: int, high: int) -> Check:
    return lambda value: _string(value, low, high)


# masakari/api/validation/schemas/payload.py, per notification type.
_EVENTS = one_of("STARTED", "STOPPED")
PAYLOADS: dict[str, Schema] = {
    "COMPUTE_HOST": Schema(
        "payload",
        {
            "event": _EVENTS,
            "host_status": one_of("NORMAL", "UNKNOWN"),
            "cluster_status": one_of("ONLINE", "OFFLINE"),
        },
        frozenset({"event"}),
    ),
    "PROCESS": Schema(
        "payload",
        {"process_name": _free(1, 4096), "event": _EVENTS},
        frozenset({"process_name", "event"}),
    ),
    "VM": Schema(
        "payload",
        {"instance_uuid": _uuid, "vir_domain_event": _free(1, 255), "event": _free(1, 255)},
        frozenset({"instance_uuid", "vir_domain_event", "event"}),
    ),
}


def payload(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return PAYLOADS[kind]({"payload": value})
