"""Reads of the instances a host recovery moves, shared by its moves.

Each move waiting for its instance to land used to GET that instance on every poll. With fifty
moves at once those GETs took the operator's whole core, and the evacuate calls of the later
moves queued behind them. On the simulator, with 100 instances, 2 s per evacuation and
concurrency 50, the recovery took 1.6-1.8x the ideal. Now the moves that ask at about the same
time share one read: Nova's listing of the servers changed since the oldest of those moves began.

A move's first read, the one its evacuate call rests on, is shared the same way: the moves
starting together are read with one listing of the failed host's servers. Fifty GETs at once
took 160 ms to come back on the simulator, and each move waited for the last write-ahead patch
of those trickling in; one listing takes a few milliseconds and lets them share one patch. On
real Nova, three servers listed by host took 63 ms against 96-120 ms for their three GETs; but
a listing costs Nova by the servers it shows, so it is made only when the moves asking are at
least half of the instances the failed host still holds by the recovery's records: the two or
three moves of a round at the default concurrency, on a host of thirty, read their own.

Freshness is kept: a read answers only the moves that asked before it began, so no move gets
back a state older than its question, as fresh as its own GET would be. Reads of a kind do not
overlap. The moves that ask while a read runs share the next one, as in a group commit. A move
alone, or one that began long ago, is read with a GET, as before. If the listing fails, or it
lacks an instance (not changed in the window, no longer on the host, or deleted), that instance
is read with its own GET, so every move gets the answer or the error a GET gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

from controller.recovery.nova import NovaError, Server
from controller.recovery.ports import Nova

# A move that began longer ago than this (resumed after a long outage) is read with a GET: the
# listing covers the whole cloud's changes since the oldest move, which in a busy region could
# be many pages on every poll.
LISTING_WINDOW = timedelta(minutes=5)
# A listing shows a down cell's instances as bare records (status UNKNOWN, no host): a GET is
# the better read of those.
_PARTIAL = "UNKNOWN"

# The listing that answers the moves of one read, from when each said its instance changed
# (None: unknown); None when GETs are the better read.
Listing = Callable[[Sequence[datetime | None]], Awaitable[list[Server]] | None]


class InstanceReads:
    def __init__(
        self,
        nova: Nova,
        clock: Callable[[], datetime],
        failed_host: str,
        held: Callable[[], int],
    ) -> None:
        """`held`: how many instances the failed host still holds, as far as the recovery knows
        (those it has not moved off)."""
        self._nova = nova
        self._clock = clock
        self._landings = _SharedReads(nova, self._changed)
        self._failed_host = failed_host
        self._held = held
        self._first = _SharedReads(nova, self._on_failed_host)

    async def server(self, server_id: str, since: datetime) -> Server:
        """The instance as a read begun after this call sees it. `since` is when its move
        began, with the clock skew already taken off: Nova changed it at or after then."""
        return await self._landings.read(server_id, since)

    async def before_move(self, server_id: str) -> Server:
        """The instance as a read begun after this call sees it, before its move starts."""
        return await self._first.read(server_id, None)

    def _changed(self, asked: Sequence[datetime | None]) -> Awaitable[list[Server]] | None:
        horizon = self._clock() - LISTING_WINDOW
        recent = [since for since in asked if since is not None and since >= horizon]
        if len(recent) < 2:
            return None
        return self._nova.servers_changed_since(min(recent))

    def _on_failed_host(self, asked: Sequence[datetime | None]) -> Awaitable[list[Server]] | None:
        if len(asked) < 2 or 2 * len(asked) < self._held():
            return None
        return self._nova.servers_on_host(self._failed_host)


class _SharedReads:
    """One kind of read, shared by the moves asking for it at about the same time."""

    def __init__(self, nova: Nova, listing: Listing) -> None:
        self._nova = nova
        self._listing = listing
        # server id -> (changed at or after, the moves' answers), for the next read
        self._asked: dict[str, tuple[datetime | None, list[asyncio.Future[Server]]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def read(self, server_id: str, since: datetime | None) -> Server:
        answer: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
        earliest, answers = self._asked.get(server_id, (since, []))
        # A move that cannot say when its instance changed (None) leaves no bound for any.
        since = None if earliest is None or since is None else min(earliest, since)
        self._asked[server_id] = (since, [*answers, answer])
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._read())
        return await answer

    async def _read(self) -> None:
        # No await between the check and the return: an ask cannot slip in after the last read.
        while self._asked:
            asked, self._asked = self._asked, {}
            try:
                await self._answer(asked)
            except Exception as error:  # not Nova's: each move meets it as its own read would
                for _, answers in asked.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(error)
            except BaseException:
                # Cancelled (the loop closing): no move is left waiting on an answer.
                for _, answers in [*asked.values(), *self._asked.values()]:
                    for answer in answers:
                        answer.cancel()
                raise

    async def _answer(
        self, asked: dict[str, tuple[datetime | None, list[asyncio.Future[Server]]]]
    ) -> None:
        # A move cancelled while it waited needs no read.
        waiting = {
            sid: (since, [a for a in answers if not a.done()])
            for sid, (since, answers) in asked.items()
            if not all(a.done() for a in answers)
        }
        found: dict[str, Server | Exception] = {}
        listing = self._listing([since for since, _ in waiting.values()]) if waiting else None
        if listing is not None:
            try:
                listed = await listing
            except NovaError:
                listed = []  # each instance is read on its own below, its error its own
            found = {s.id: s for s in listed if s.id in waiting and s.status != _PARTIAL}
        missing = [sid for sid in waiting if sid not in found]
        read = await asyncio.gather(
            *(self._nova.server(sid) for sid in missing), return_exceptions=True
        )
        for sid, result in zip(missing, read, strict=True):
            if not isinstance(result, Server | Exception):
                raise result  # a cancellation is not an answer
            found[sid] = result
        for sid, (_, answers) in waiting.items():
            result = found[sid]
            for answer in answers:
                if answer.done():
                    continue
                if isinstance(result, Exception):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)
