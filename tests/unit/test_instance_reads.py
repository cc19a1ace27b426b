"""The reads a host recovery's moves share while they wait (controller.recovery.instance_reads)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from controller.recovery.instance_reads import LISTING_WINDOW, InstanceReads
from controller.recovery.nova import NotFound, Server, Unavailable
from tests.unit.fake_nova import FakeNova

SINCE = datetime(2026, 12, 3, tzinfo=UTC)


def now() -> datetime:
    return SINCE + timedelta(seconds=60)


def cloud(*names: str) -> FakeNova:
    nova = FakeNova(["h1", "h2"])
    for name in names:
        nova.add_server(name, "h1")
    return nova


def kinds(nova: FakeNova) -> list[str]:
    return [call[0] for call in nova.calls]


def listings(nova: FakeNova, unchanged: frozenset[str] = frozenset()) -> list[datetime]:
    """The moments the listings were asked from; `unchanged` servers left out of them."""
    asked: list[datetime] = []
    listing = nova.servers_changed_since

    async def recorded(since: datetime) -> list[Server]:
        asked.append(since)
        return [s for s in await listing(since) if s.id not in unchanged]

    nova.servers_changed_since = recorded  # type: ignore[method-assign]
    return asked


def test_moves_asking_together_share_one_listing_from_the_oldest_start() -> None:
    nova = cloud("a", "b", "c")
    asked = listings(nova)

    async def main() -> list[str]:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        found = await asyncio.gather(
            reads.server("uuid-a", SINCE + timedelta(seconds=5)),
            reads.server("uuid-b", SINCE),
        )
        return [s.name for s in found]

    assert asyncio.run(main()) == ["a", "b"]
    assert kinds(nova) == ["servers_changed_since"]
    assert asked == [SINCE]


def test_a_move_alone_is_read_with_its_own_get() -> None:
    nova = cloud("a", "b")

    async def main() -> str:
        return (
            await InstanceReads(nova, now, "h1", lambda: len(nova.servers)).server("uuid-a", SINCE)
        ).name  # type: ignore[arg-type]

    assert asyncio.run(main()) == "a"
    assert nova.calls == [("server", "uuid-a")]


def test_an_ask_made_during_a_read_waits_for_a_read_begun_after_it() -> None:
    """No move is answered with a state read before it asked."""
    nova = cloud("a", "b", "c")
    listing = nova.servers_changed_since
    gate = asyncio.Event()
    listed = asyncio.Event()

    async def slow(since: datetime) -> list:  # type: ignore[type-arg]
        found = await listing(since)  # c read on h1 here, answered once the gate opens
        listed.set()
        await gate.wait()
        return found

    nova.servers_changed_since = slow  # type: ignore[method-assign]

    async def main() -> str | None:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        first = asyncio.gather(reads.server("uuid-a", SINCE), reads.server("uuid-b", SINCE))
        await listed.wait()
        nova.servers["uuid-c"] = dataclasses.replace(nova.servers["uuid-c"], host="h2")
        late = asyncio.ensure_future(reads.server("uuid-c", SINCE))
        await asyncio.sleep(0)
        gate.set()
        await first
        return (await late).host

    assert asyncio.run(main()) == "h2"
    # The late ask alone: its own GET, after the listing it did not take part in.
    assert kinds(nova) == ["servers_changed_since", "server"]


def test_what_the_listing_lacks_or_a_failed_listing_is_read_one_by_one() -> None:
    nova = cloud("a", "b")

    async def unavailable(since: datetime) -> list:  # type: ignore[type-arg]
        raise Unavailable("Nova: HTTP 503 (gave up after 5 attempts)")

    async def main(ids: list[str]) -> list[object]:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        return await asyncio.gather(*(reads.server(i, SINCE) for i in ids), return_exceptions=True)

    # A deleted instance is not listed: its GET says NotFound, to its move only.
    found = asyncio.run(main(["uuid-a", "uuid-gone"]))
    assert getattr(found[0], "name", None) == "a" and isinstance(found[1], NotFound)
    assert kinds(nova) == ["servers_changed_since", "server"]

    nova.calls.clear()
    nova.servers_changed_since = unavailable  # type: ignore[method-assign]
    found = asyncio.run(main(["uuid-a", "uuid-b"]))
    assert [getattr(s, "name", None) for s in found] == ["a", "b"]
    assert kinds(nova) == ["server", "server"]


def test_a_move_cancelled_while_it_waits_leaves_the_others_answered() -> None:
    nova = cloud("a", "b", "c")

    async def main() -> list[str]:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        gone = asyncio.ensure_future(reads.server("uuid-a", SINCE))
        others = [asyncio.ensure_future(reads.server(i, SINCE)) for i in ("uuid-b", "uuid-c")]
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return [(await o).name for o in others]

    assert asyncio.run(main()) == ["b", "c"]


def test_an_unexpected_error_reaches_every_move_of_that_read() -> None:
    nova = cloud("a", "b")

    async def broken(since: datetime) -> list:  # type: ignore[type-arg]
        raise RuntimeError("a bug in the driver")

    nova.servers_changed_since = broken  # type: ignore[method-assign]

    async def main() -> list[object]:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        found = await asyncio.gather(
            reads.server("uuid-a", SINCE), reads.server("uuid-b", SINCE), return_exceptions=True
        )
        # The reads go on for the next asks.
        found.append(await reads.server("uuid-a", SINCE))
        return found

    found = asyncio.run(main())
    assert [type(f).__name__ for f in found] == ["RuntimeError", "RuntimeError", "Server"]


def test_a_move_begun_long_ago_does_not_widen_the_listing() -> None:
    """A move resumed after a long outage: a listing from its start could be the whole cloud."""
    nova = cloud("a", "b", "c")
    asked = listings(nova, unchanged=frozenset({"uuid-a"}))

    async def main() -> None:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        await asyncio.gather(
            reads.server("uuid-a", now() - LISTING_WINDOW - timedelta(seconds=1)),
            reads.server("uuid-b", SINCE),
            reads.server("uuid-c", SINCE),
        )

    asyncio.run(main())
    assert asked == [SINCE]
    assert nova.calls == [("servers_changed_since",), ("server", "uuid-a")]


def test_moves_starting_together_share_one_listing_of_the_failed_host() -> None:
    """A move's first read: the instances still on the failed host come from one listing of
    it, begun after they asked; one that left it (a drain's live migration landed) is read
    with its own GET, as fresh."""
    nova = cloud("a", "b", "c")
    nova.servers["uuid-c"] = dataclasses.replace(nova.servers["uuid-c"], host="h2")

    async def main() -> list[str | None]:
        reads = InstanceReads(nova, now, "h1", lambda: len(nova.servers))  # type: ignore[arg-type]
        found = await asyncio.gather(*(reads.before_move(f"uuid-{n}") for n in "abc"))
        return [s.host for s in found]

    assert asyncio.run(main()) == ["h1", "h1", "h2"]
    assert nova.calls == [("servers_on_host", "h1"), ("server", "uuid-c")]


def test_a_few_moves_of_a_full_host_read_their_own() -> None:
    """A listing costs Nova by the servers it shows: three moves starting on a host of thirty
    (the default concurrency) read their instances with three GETs; on a host of six, the
    three share its listing."""

    def calls(held: int) -> list[str]:
        nova = cloud(*(f"vm{n:02d}" for n in range(held)))

        async def main() -> None:
            reads = InstanceReads(nova, now, "h1", lambda: held)  # type: ignore[arg-type]
            await asyncio.gather(*(reads.before_move(f"uuid-vm{n:02d}") for n in range(3)))

        asyncio.run(main())
        return kinds(nova)

    assert calls(30) == ["server"] * 3
    assert calls(6) == ["servers_on_host"]
