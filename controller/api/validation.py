"""Request body checks in the shape of Masakari's JSON schemas (masakari/api/validation).

Each body is `{"<resource>": {...}}` with additionalProperties false at both levels; a refused
body gets a 400 whose message names the field, the value and the rule, as Masakari's do.

Every field's check is a Rule that also carries the JSON Schema of what it accepts, built from
the same bounds and patterns: the published OpenAPI document (openapi.py) is derived from these
rules, so it cannot drift from what the API enforces.
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


@dataclass(frozen=True)
class Rule:
    """A field's check and the JSON Schema of the values it lets through."""

    check: Check
    schema: Mapping[str, Any]

    def __call__(self, value: Any) -> Any:
        return self.check(value)


class Refused(ValueError):
    """A value breaks a rule; the text says which rule."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "..."


def invalid(name: str, value: Any, reason: str) -> Exception:
    return bad_request(
        f"Invalid input for field/attribute {name}. Value: {_shown(value)}. {reason}"
    )


def _boolean(value: Any) -> bool:
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
    try:
        value.encode()
    except UnicodeEncodeError:
        # JSON's "\ud800" decodes to a lone surrogate; Kubernetes would store U+FFFD instead.
        raise Refused(f"{_shown(value)} is not valid Unicode (a lone surrogate)") from None
    if len(value) < low:
        raise Refused(f"{_shown(value)} is too short")
    if len(value) > high:
        raise Refused(f"{_shown(value)} is too long (at most {high} characters)")
    return value


def text(low: int, high: int, pattern: re.Pattern[str] | None = None) -> Rule:
    def check(value: Any) -> str:
        checked = _string(value, low, high)
        if pattern is not None and not pattern.match(checked):
            raise Refused(f"{_shown(value)} does not match '{pattern.pattern}'")
        return checked

    schema: dict[str, Any] = {"type": "string", "minLength": low, "maxLength": high}
    if pattern is not None:
        schema["pattern"] = pattern.pattern
    return Rule(check, schema)


boolean = Rule(
    _boolean, {"anyOf": [{"type": "boolean"}, {"enum": sorted(TRUE_STRINGS | FALSE_STRINGS)}]}
)
_name_length = text(1, 255)


def _name(value: Any) -> str:
    checked: str = _name_length(value)
    if checked != checked.strip() or not checked.isprintable():
        raise Refused(f"{_shown(value)} has leading/trailing whitespace or unprintable characters")
    return checked


# The schema's pattern is the whitespace half of the rule; "printable" has no JSON Schema
# spelling, so the document says it in words.
name = Rule(
    _name,
    {
        **_name_length.schema,
        "pattern": r"^\S(.*\S)?$",
        "description": "printable, without leading or trailing whitespace",
    },
)
_description_text = text(0, 4096)
description = Rule(
    lambda value: None if value is None else _description_text(value),
    {"anyOf": [_description_text.schema, {"type": "null"}]},
)
host_type = text(0, 255, _HOST_TYPE)
hostname = text(1, 255, _HOSTNAME)


def one_of(*choices: str) -> Rule:
    def check(value: Any) -> str:
        if value not in choices:
            raise Refused(f"{_shown(value)} is not one of {list(choices)}")
        return str(value)

    return Rule(check, {"enum": list(choices)})


def date_time(value: Any) -> datetime:
    text = _string(value, 1, 64)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(f"{_shown(value)} is not a 'date-time'") from None
    if moment.tzinfo is None:
        # Monitors send naive UTC (datetime.utcnow().isoformat()).
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+14:00 is before year 1 in UTC: no datetime holds it.
        raise Refused(f"{_shown(value)} is not a 'date-time' this API can hold") from None


def _payload_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Refused(f"{_shown(value)} is not of type 'object'")
    for key in value:
        if not _PAYLOAD_KEY.match(key):
            raise Refused(f"the key {_shown(key)} does not match '{_PAYLOAD_KEY.pattern}'")
    return value


payload_object = Rule(
    _payload_object, {"type": "object", "propertyNames": {"pattern": _PAYLOAD_KEY.pattern}}
)


@dataclass(frozen=True)
class Schema:
    """One resource body: its wrapper key, its fields, which are required, and whether an
    empty body is allowed (updates need at least one field, Masakari's anyOf)."""

    key: str
    fields: Mapping[str, Rule]
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

    def json_schema(self) -> dict[str, Any]:
        """What the inner object may hold, as JSON Schema (the wrapper is the caller's)."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {key: dict(rule.schema) for key, rule in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = sorted(self.required)
        if self.at_least_one:
            schema["minProperties"] = 1
        return schema

    def body_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {self.key: self.json_schema()},
            "required": [self.key],
            "additionalProperties": False,
        }


_RECOVERY_METHODS = one_of(*(method.value for method in RecoveryMethod))
_SEGMENT_FIELDS: dict[str, Rule] = {
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

_HOST_FIELDS: dict[str, Rule] = {
    "name": name,
    "type": host_type,
    "control_attributes": text(0, 4096),
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
        "generated_time": Rule(date_time, {"type": "string", "format": "date-time"}),
        "payload": payload_object,
    },
    frozenset({"type", "hostname", "generated_time", "payload"}),
)


def _uuid(value: Any) -> str:
    checked = _string(value, 32, 36)
    try:
        uuid.UUID(checked)
    except ValueError:
        raise Refused(f"{_shown(value)} is not a 'uuid'") from None
    return checked


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
        {"process_name": text(1, 4096), "event": _EVENTS},
        frozenset({"process_name", "event"}),
    ),
    "VM": Schema(
        "payload",
        {
            # uuid.UUID also takes 32 bare hex digits (as Masakari's is_uuid_like does), which
            # JSON Schema's "uuid" format refuses: the published rule is the looser one.
            "instance_uuid": Rule(_uuid, {"type": "string", "minLength": 32, "maxLength": 36}),
            "vir_domain_event": text(1, 255),
            "event": text(1, 255),
        },
        frozenset({"instance_uuid", "vir_domain_event", "event"}),
    ),
}


def payload(kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return PAYLOADS[kind]({"payload": value})
