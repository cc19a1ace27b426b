"""kopf's session to the API server is bounded (handlers.startup.login): a start with hundreds
of new Hosts opened a TLS connection per request in flight, each with a 256 KiB read buffer.
The bound must leave room for every watch stream kopf holds open, or its requests would wait
for a connection forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import kubernetes.client
import pytest

import controller.handlers  # noqa: F401  (registers the handlers)
from controller.handlers.startup import KOPF_REQUESTS, connection_limit, login


def _watched_kinds() -> int:
    # kopf opens one watch per resource it has handlers for, per namespace it serves.
    registry = kopf.get_default_registry()
    selectors = {
        selector
        for kind in (registry._watching, registry._spawning, registry._changing, registry._indexing)
        for selector in kind.get_all_selectors()
    }
    return len(selectors)


@pytest.mark.parametrize("namespaces", [0, 1, 7, 200])
def test_the_bound_leaves_room_for_every_watch_stream(namespaces: int) -> None:
    streams = _watched_kinds() * max(1, namespaces)
    assert _watched_kinds() >= 4  # hosts, events, segments, bindings: the registry was read
    assert connection_limit(namespaces) - streams >= KOPF_REQUESTS


def test_the_login_hands_kopf_a_bounded_session(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:6443', "
        "insecure-skip-tls-verify: true}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u, namespace: cloud}}]\n"
        "users: [{name: u, user: {token: not-a-real-token}}]\n"
    )
    # Read at the client's import from $KUBECONFIG: set where load_kube_config looks.
    monkeypatch.setattr(
        "kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig)
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    # The client's login sets its default configuration, which the process shares.
    saved = kubernetes.client.Configuration.get_default_copy()
    request.addfinalizer(lambda: kubernetes.client.Configuration.set_default(saved))

    async def logged_in() -> tuple[Any, int, str | None]:
        memo = kopf.Memo(namespaces_served=3)
        info = await login(
            memo=memo, logger=logging.getLogger(__name__), settings=kopf.OperatorSettings()
        )
        assert isinstance(info, kopf.AiohttpSession)
        session = info.aiohttp_session
        try:
            return info, session.connector.limit, session.headers.get("Authorization")
        finally:
            await session.close()

    info, limit, authorization = asyncio.run(logged_in())
    assert info.server == "https://127.0.0.1:6443"
    assert limit == connection_limit(3)
    assert authorization == "Bearer not-a-real-token"
