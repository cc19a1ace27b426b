"""The progress writer: coalesced status writes, each caller back as soon as its change is
stored."""

from __future__ import annotations

import asyncio

from controller.recovery.progress import Progress
from controller.resources.failure_event import FailureEventStatus


def test_a_save_returns_once_its_own_change_is_written() -> None:
    """Issue 12: the caller whose save started a write went on writing for the saves that came
    in meanwhile, so its evacuate call waited for their write too (70 ms on the simulator's
    benchmark). Each save still returns only after a write that holds its change."""
    released: list[asyncio.Event] = []
    written: list[str | None] = []

    async def persist(status: FailureEventStatus) -> None:
        gate = asyncio.Event()
        released.append(gate)
        await gate.wait()
        written.append(status.reason)

    async def scenario() -> list[str]:
        progress = Progress(FailureEventStatus(), persist)
        order: list[str] = []

        async def save(reason: str) -> None:
            progress.status.reason = reason
            await progress.save()
            order.append(f"{reason} back after {written}")

        first = asyncio.create_task(save("first"))
        while not released:
            await asyncio.sleep(0)
        second = asyncio.create_task(save("second"))  # comes in while the first is written
        for _ in range(5):
            await asyncio.sleep(0)
        released[0].set()
        while len(released) < 2:
            await asyncio.sleep(0)
        for _ in range(5):
            await asyncio.sleep(0)
        released[1].set()
        await asyncio.gather(first, second)
        return order

    order = asyncio.run(scenario())
    print(order)
    assert order == ["first back after ['first']", "second back after ['first', 'second']"]
