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


def test_a_change_that_may_wait_goes_out_with_the_next_write_or_alone_after_its_wait() -> None:
    """Issue 12: a move's end was written the moment it landed, and the next move's
    write-ahead, asked for a read later, waited for that patch and then made its own: two
    writes before its evacuate call. An end may wait for another write to carry it; with none
    coming, it is written alone once its wait is over."""
    written: list[str | None] = []

    async def persist(status: FailureEventStatus) -> None:
        await asyncio.sleep(0.01)
        written.append(status.reason)

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        progress = Progress(FailureEventStatus(), persist)
        progress.status.reason = "an end"
        end = asyncio.create_task(progress.save(within=5.0))
        await asyncio.sleep(0.02)  # the next move reads its instance
        progress.status.reason = "an end and a write-ahead"
        await progress.save()
        await end
        alone = loop.time()
        progress.status.reason = "the last end"
        await progress.save(within=0.05)
        return loop.time() - alone

    waited = asyncio.run(scenario())
    assert written == ["an end and a write-ahead", "the last end"], written
    assert waited >= 0.05, waited
