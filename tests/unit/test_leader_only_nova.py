"""Nova behind the Lease: a replica that does not lead changes nothing in Nova, but may read."""

from __future__ import annotations

import asyncio

import pytest

from controller.drivers.lease import NotLeading
from controller.drivers.nova.leading import LeaderOnlyNova
from tests.unit.fake_nova import FakeNova


def test_a_replica_that_does_not_lead_evacuates_nothing() -> None:
    fake = FakeNova(["compute1", "compute2"])
    server = fake.add_server("a", "compute1")
    fake.kill("compute1")
    leading = [True]
    nova = LeaderOnlyNova(fake, lambda: leading[0])

    async def act() -> None:
        await nova.force_down("compute1", True)
        leading[0] = False  # the Lease deadline passed
        assert (await nova.server(server.id)).host == "compute1"
        with pytest.raises(NotLeading):
            await nova.evacuate(server.id)
        with pytest.raises(NotLeading):
            await nova.disable_service("compute1", "failed")

    asyncio.run(act())
    assert fake.evacuations == {}
    assert [c[0] for c in fake.calls] == ["force_down", "server"]
