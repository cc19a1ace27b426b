"""Keystone token validation for the Masakari-compatible API, as keystonemiddleware does it.

The API's own credential (the clouds.yaml the operator uses) authenticates the call
GET /v3/auth/tokens with the caller's token in X-Subject-Token. Answers are cached briefly,
keyed by a digest of the token, so tokens are never kept or logged in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from keystoneauth1 import exceptions as ksa_exceptions

from controller.drivers.nova.openstack import connect

log = logging.getLogger(__name__)

CACHE_SIZE = 4096


class KeystoneUnavailable(Exception):
    """Keystone could not be asked (network, 5xx, our own credential refused)."""


@dataclass(frozen=True)
class Caller:
    user: str
    project: str | None
    roles: frozenset[str]

    @property
    def is_admin(self) -> bool:
        # Masakari's policy: context_is_admin = role:admin, and every rule is admin_api.
        return "admin" in self.roles


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _expiry(body: dict[str, Any]) -> float | None:
    try:
        return datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")).timestamp()
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


class TokenValidator:
    def __init__(self, clouds_yaml: Path, cloud: str, cache_seconds: float = 60.0) -> None:
        conn, _ = connect(clouds_yaml, cloud)
        self._session = conn.session
        self._auth_url = str(conn.config.config["auth"]["auth_url"]).rstrip("/")
        if not self._auth_url.endswith("/v3"):
            self._auth_url += "/v3"
        self._cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[float, Caller | None]] = OrderedDict()

    def _ask(self, token: str) -> tuple[Caller | None, float | None]:
        try:
            answer = self._session.get(
                f"{self._auth_url}/auth/tokens?nocatalog",
                headers={"X-Subject-Token": token},
                authenticated=True,
                raise_exc=False,
            )
        except ksa_exceptions.ClientException as error:
            raise KeystoneUnavailable(type(error).__name__) from None
        if answer.status_code == 404:
            return None, None
        if answer.status_code != 200:
            raise KeystoneUnavailable(f"Keystone answered {answer.status_code}")
        body = answer.json().get("token") or {}
        caller = Caller(
            user=str((body.get("user") or {}).get("name", "")),
            project=(body.get("project") or {}).get("id"),
            roles=frozenset(str(role.get("name")) for role in body.get("roles") or []),
        )
        return caller, _expiry(body)

    async def caller(self, token: str) -> Caller | None:
        """Who holds `token`, or None when Keystone does not know it (or it expired)."""
        key = _digest(token)
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        caller, expires = await asyncio.to_thread(self._ask, token)
        until = now + self._cache_seconds
        if expires is not None:
            until = min(until, expires)
        self._cache[key] = (until, caller)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return caller
