"""Keystone v3, as much as openstacksdk and a token-validating service need.

Password authentication issues a token (X-Subject-Token) with the roles of the user in its
project and a service catalog (identity, compute, placement, image); GET /v3/auth/tokens
validates one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from controller.sim import cloud as sim_cloud
from controller.sim import topology as topo

TOKEN_LIFETIME = 3600.0
#: Oldest tokens are forgotten beyond this many, so a client that logs in in a loop cannot
#: grow the simulator without bound.
MAX_TOKENS = 10000
DOMAIN = {"id": "default", "name": "Default"}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    password_digest: bytes
    project: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Token:
    user: User
    project: str | None
    issued: float
    expires: float

    @property
    def is_admin(self) -> bool:
        return "admin" in self.user.roles


def _digest(password: str) -> bytes:
    return hashlib.sha256(password.encode()).digest()


def unauthorized() -> web.Response:
    return web.json_response(
        {
            "error": {
                "code": 401,
                "title": "Unauthorized",
                "message": "The request you have made requires authentication.",
            }
        },
        status=401,
    )


class Keystone:
    def __init__(self, users: list[topo.UserSpec], admin_token: str | None = None) -> None:
        self.users: dict[str, User] = {}
        self.tokens: dict[str, Token] = {}
        self.admin_token = admin_token
        self.load_users(users)

    def load_users(self, users: list[topo.UserSpec]) -> None:
        self.users = {
            u.name: User(u.name, _digest(u.password), u.project, tuple(u.roles)) for u in users
        }

    def context(self, token_id: str | None) -> sim_cloud.Context | None:
        """The request context of a token, or None when it is not valid."""
        if token_id is None:
            return None
        if self.admin_token is not None and hmac.compare_digest(token_id, self.admin_token):
            return sim_cloud.Context(project_id="admin", is_admin=True)
        token = self.valid(token_id)
        if token is None or token.project is None:
            return None
        return sim_cloud.Context(
            project_id=token.project,
            is_admin=token.is_admin,
            is_service="service" in token.user.roles,
        )

    def valid(self, token_id: str) -> Token | None:
        token = self.tokens.get(token_id)
        if token is None or token.expires < time.time():
            return None
        return token

    def issue(self, body: dict[str, Any]) -> tuple[str, Token] | None:
        try:
            identity = body["auth"]["identity"]
            if "password" not in identity.get("methods", []):
                return None
            user_spec = identity["password"]["user"]
            name = user_spec.get("name") or user_spec.get("id")
            password = user_spec["password"]
        except (KeyError, TypeError, AttributeError):
            return None
        user = self.users.get(name) if isinstance(name, str) else None
        if (
            user is None
            or not isinstance(password, str)
            or not hmac.compare_digest(_digest(password), user.password_digest)
        ):
            return None
        scope = body["auth"].get("scope") or {}
        project = None
        if "project" in scope:
            wanted = scope["project"].get("name") or scope["project"].get("id")
            if wanted != user.project:
                return None
            project = user.project
        now = time.time()
        token_id = secrets.token_hex(32)
        token = Token(user, project, now, now + TOKEN_LIFETIME)
        self.tokens[token_id] = token
        while len(self.tokens) > MAX_TOKENS:
            del self.tokens[next(iter(self.tokens))]
        return token_id, token

    @staticmethod
    def render(
        token: Token,
        base_url: str,
        *,
        catalog: bool = True,
        extra: list[topo.CatalogEntrySpec] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "methods": ["password"],
            "user": {"id": token.user.name, "name": token.user.name, "domain": DOMAIN},
            "audit_ids": [secrets.token_urlsafe(16)],
            "issued_at": sim_cloud.iso(token.issued, micro=True) + "Z",
            "expires_at": sim_cloud.iso(token.expires, micro=True) + "Z",
        }
        if token.project is not None:
            body["project"] = {"id": token.project, "name": token.project, "domain": DOMAIN}
            body["is_domain"] = False
            body["roles"] = [{"id": role, "name": role} for role in token.user.roles]
            if catalog:
                body["catalog"] = [
                    _service("identity", "keystone", f"{base_url}/identity"),
                    _service("compute", "nova", f"{base_url}/compute/v2.1"),
                    _service("placement", "placement", f"{base_url}/placement"),
                    _service("image", "glance", f"{base_url}/image"),
                    *(_service(entry.type, entry.name, entry.url) for entry in extra or []),
                ]
        return {"token": body}


def _service(kind: str, name: str, url: str) -> dict[str, Any]:
    return {
        "id": f"{name}-service",
        "type": kind,
        "name": name,
        "endpoints": [
            {
                "id": f"{name}-{interface}",
                "interface": interface,
                "region": "RegionOne",
                "region_id": "RegionOne",
                "url": url,
            }
            for interface in ("public", "internal", "admin")
        ],
    }


def version_document(base_url: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": f"{base_url}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }
