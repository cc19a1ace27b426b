"""Reads of the instances a host recovery waits on, shared by its moves.

Each move waiting for its instance to land used to GET that instance on every poll. With fifty
moves at once those GETs took the operator's whole core, and the evacuate calls of the later
moves queued behind them. On the simulator, with 100 instances, 2 s per evacuation and
concurrency 50, the recovery took 1.6-1.8x the ideal. Now the moves that ask at about the same
time share one read: Nova's listing of the servers changed since the oldest of those moves began.

Freshness is kept: a read answers only the moves that asked before it began, so no move gets
back a state older than its question. Reads do not overlap. The moves that ask while a read
runs share the next one, as in a group commit. A move alone, or one that began long ago, is
read with a GET, as before. If the listing fails, or it lacks an instance (not changed in the
window, or deleted), that instance is read with its own GET, so every move gets the answer or
the error a GET gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


class InstanceReads:
    def __init__(self, nova: Nova, clock: Callable[[], datetime]) -> None:
        self._nova = nova
        self._clock = clock
        # server id -> (changed at or after, the moves' answers), for the next read
        self._asked: dict[str, tuple[datetime, list[asyncio.Future[Server]]]] = {}
        self._reading: asyncio.Task[None] | None = None

    async def server(self, server_id: str, since: datetime) -> Server:
        """The instance as a read begun after this call sees it. `since` is when its move
        began, with the clock skew already taken off: Nova changed it at or after then."""
        answer: asyncio.Future[Server] = asyncio.get_running_loop().create_future()
        earliest, answers = self._asked.get(server_id, (since, []))
        self._asked[server_id] = (min(earliest, since), [*answers, answer])
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
        self, asked: dict[str, tuple[datetime, list[asyncio.Future[Server]]]]
    ) -> None:
        # A move cancelled while it waited needs no read.
        waiting = {
            sid: (since, [a for a in answers if not a.done()])
            for sid, (since, answers) in asked.items()
            if not all(a.done() for a in answers)
        }
        found: dict[str, Server | Exception] = {}
        horizon = self._clock() - LISTING_WINDOW
        recent = [since for since, _ in waiting.values() if since >= horizon]
        if len(recent) > 1:
            try:
                listed = await self._nova.servers_changed_since(min(recent))
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
