"""The API's request pipeline: what a failing handler and an unknown route answer."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from controller.api.app import Context, build_app


class NoCompute:
    async def exists(self, name: str) -> bool:
        return False


async def _failing(request: web.Request) -> web.Response:
    raise RuntimeError("kube-apiserver at https://10.0.0.1:6443 said: token abc123 expired")


async def _ask(path: str) -> tuple[int, dict[str, str], Any]:
    app = build_app(Context(store=None, tokens=None, compute=NoCompute()))  # type: ignore[arg-type]
    app.router.add_get("/v1/broken", _failing)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get(path, headers={"OpenStack-API-Version": "instance-ha 1.1"})
        return answer.status, dict(answer.headers), await answer.json()


def test_unexpected_errors_answer_a_generic_fault() -> None:
    status, headers, body = asyncio.run(_ask("/v1/broken"))
    assert status == 500 and list(body) == ["masakariFault"]
    assert "abc123" not in str(body) and "10.0.0.1" not in str(body)
    assert headers["OpenStack-API-Version"] == "instance-ha 1.1"


def test_unknown_routes_answer_a_fault_body() -> None:
    status, _, body = asyncio.run(_ask("/v1/whatever"))
    assert status == 404 and body["itemNotFound"]["code"] == 404
