"""The contract suite runs on every backend: the simulator always, real Nova where it can run.

Real Nova needs root (Debian packages, MariaDB, RabbitMQ); where it cannot run the tier fails
loudly. Deselect it explicitly with `-m "not real_nova"`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.contract.backend import NovaBackend


@pytest.fixture(
    scope="session",
    params=["sim", pytest.param("nova", marks=pytest.mark.real_nova)],
)
def nova_backend_session(request: pytest.FixtureRequest) -> Iterator[NovaBackend]:
    if request.param == "sim":
        from tests.harness.sim import running_sim_backend

        with running_sim_backend() as backend:
            yield backend
    else:
        yield request.getfixturevalue("real_nova")


@pytest.fixture
def nova_backend(nova_backend_session: NovaBackend) -> NovaBackend:
    nova_backend_session.reset()
    return nova_backend_session
