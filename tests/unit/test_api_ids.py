"""Masakari ids given to objects made around the API (controller.api.ids): each object's
answer is handed over as it comes, not held until the last."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from controller.api.ids import ID, PARALLEL_PATCHES, Ids
from controller.drivers.kube import Kube


class _Kube:
    """The counter ConfigMap and the PATCHes; the PATCH of `held` waits for `release`."""

    def __init__(self, held: str) -> None:
        self.counter: dict[str, Any] = {"metadata": {"name": "ids"}, "data": {}}
        self.held = held
        self.release = asyncio.Event()

    async def config_map(self, namespace: str, name: str) -> dict[str, Any]:
        return dict(self.counter)

    async def replace_config_map(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.counter = body

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        if name == self.held:
            await self.release.wait()
        return {"metadata": {"name": name, "annotations": patch["metadata"]["annotations"]}}


def _body(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"u-{name}", "resourceVersion": "1"}}


def test_each_object_is_handed_over_numbered_as_its_patch_is_answered() -> None:
    """Held until the last, 55,000 answers (whole objects) took the API to 1,016 MiB."""
    bodies = [_body(f"e{n}") for n in range(PARALLEL_PATCHES * 5)]
    kube = _Kube(held="e0")
    handed: dict[str, int] = {}

    async def main() -> None:
        ids = Ids(cast(Kube, kube), "ns")
        numbering = asyncio.ensure_future(
            ids.number(
                "failureevents",
                "notifications",
                bodies,
                7,
                lambda body: handed.update(
                    {body["metadata"]["name"]: int(body["metadata"]["annotations"][ID])}
                ),
            )
        )
        for _ in range(100):
            if len(handed) == len(bodies) - 1:
                break
            await asyncio.sleep(0.01)
        assert "e0" not in handed and len(handed) == len(bodies) - 1
        kube.release.set()
        await numbering

    asyncio.run(main())
    assert sorted(handed.values()) == list(range(8, 8 + len(bodies)))
