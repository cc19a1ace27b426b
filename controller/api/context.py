"""What every route handler shares: the application's context, the request's microversion
and caller, and the small steps every handler takes (policy, body, answer)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from pydantic.alias_generators import to_camel

from controller.api import versions
from controller.api.faults import ApiFault, bad_request
from controller.api.store import Store
from controller.drivers.keystone import Caller

DETAILS_VERSION = (1, 1)
ENABLED_VERSION = (1, 2)


class Tokens(Protocol):
    async def caller(self, token: str) -> Caller | None: ...


class ComputeHosts(Protocol):
    async def exists(self, name: str) -> bool: ...


@dataclass
class Context:
    store: Store
    tokens: Tokens | None  # None: --insecure-no-auth
    compute: ComputeHosts


CONTEXT = web.AppKey("context", Context)
VERSION: web.RequestKey[versions.Version] = web.RequestKey("version")
CALLER = web.RequestKey("caller", Caller)


def authorize(request: web.Request, rule: str) -> None:
    caller: Caller = request[CALLER]
    if not caller.is_admin:
        raise ApiFault(403, f"Policy doesn't allow {rule} to be performed.")


async def read_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("Malformed request body: it is not JSON.") from None
    except LookupError:
        # Content-Type: application/json; charset=<no such codec>
        raise bad_request("Malformed request body: unknown charset.") from None
    except RecursionError:
        # "[" * 50000 fits the size limit and exhausts the JSON decoder's recursion.
        raise bad_request("Malformed request body: JSON nested too deeply.") from None


def answer(key: str, value: Any, status: int = 200) -> web.Response:
    return web.json_response({key: value}, status=status, dumps=json.dumps)


def store_of(request: web.Request) -> Store:
    return request.app[CONTEXT].store


def segment_id(request: web.Request) -> str:
    return request.match_info["segment_id"]


def spec_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Masakari's body fields as the resource's spec fields (the name is the object's)."""
    return {to_camel(key): value for key, value in fields.items() if key != "name"}
