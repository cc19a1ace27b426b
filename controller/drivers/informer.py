"""One kind of one namespace kept in memory: a paged list, then a watch from its resourceVersion.

The shape of client-go's reflector, small: the list replaces what the `Sink` holds, every watch
event is applied to it in order, a watch that ends (the API server closes it after a few
minutes) is opened again from the last resourceVersion seen, and a 410 Gone (that version was
compacted away, e.g. after a long outage or an API server restart) starts over with a list.
Errors wait a bounded, growing delay (0.5 s to 30 s, jittered), so an API server that is down
is asked again about twice a minute, not in a tight loop, and one that comes back is seen
within 30 s.

The watch runs in a thread of its own (the `kubernetes` client is blocking, and a watch holds
its thread for minutes: on asyncio's default executor three of them would starve every other
call); events reach the event loop through `call_soon_threadsafe`, at most `BACKLOG` of them
in flight, so a burst of changes waits in the API server's socket, not in this process.

Nothing here decides what is served: the Sink does, and `synced` says when the first list
is in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from controller.drivers.kube import Expired, Kube, KubeError

log = logging.getLogger("masakari.informer")

BACKLOG = 1000  # watch events handed to the event loop and not yet applied
WATCH_SECONDS = (240, 300)  # a watch's length, randomized so the kinds do not reopen together


class Sink(Protocol):
    def replace(self, plural: str, bodies: list[Any], version: str) -> None:
        """Everything of `plural`, as listed at `version`: what the informer's `keep` made of
        each listed object (the object itself without one)."""

    def apply(self, plural: str, kind: str, body: dict[str, Any]) -> None:
        """One watch event: ADDED, MODIFIED or DELETED."""


@dataclass
class Backoff:
    first: float = 0.5
    most: float = 30.0
    failures: int = 0

    def next(self) -> float:
        self.failures += 1
        return min(self.most, self.first * 2.0 ** (self.failures - 1)) * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


class Relist(Exception):
    """What the sink holds may be wrong (an event could not be applied): list again."""


class Informer:
    def __init__(
        self,
        kube: Kube,
        namespace: str,
        plural: str,
        sink: Sink,
        keep: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        self.keep = keep  # what of each listed object the sink holds (see Kube.list_versioned)
        self.kube = kube
        self.namespace = namespace
        self.plural = plural
        self.sink = sink
        self.synced = asyncio.Event()
        self.lists = 0  # lists done: 1 after the start, one more per 410 or failed resume
        self.version = ""
        self.backoff = Backoff()
        self._stopping = threading.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.plural)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if not self.version:
                    await self._list()
                opened = time.monotonic()
                self.version = await self._watch(self.version)
                if time.monotonic() - opened < 1.0:
                    # Ended as soon as opened (a proxy, a server going away): not a loop.
                    await asyncio.sleep(self.backoff.next())
                else:
                    self.backoff.reset()
            except Expired:
                log.info("%s: resourceVersion %s expired, listing again", self.plural, self.version)
                self.version = ""
                # A pause, growing while no watch works: never a loop of lists.
                await asyncio.sleep(self.backoff.next())
            except Relist:
                self.version = ""
                await asyncio.sleep(self.backoff.next())
            except KubeError as error:
                delay = self.backoff.next()
                log.warning("%s: %s; again in %.1fs", self.plural, error, delay)
                await asyncio.sleep(delay)
            except Exception:
                # A bug must not leave the cache silently frozen: say so, then start over.
                delay = self.backoff.next()
                log.exception("%s: informer failed; listing again in %.1fs", self.plural, delay)
                self.version = ""
                await asyncio.sleep(delay)

    async def _list(self) -> None:
        bodies, version = await self.kube.list_versioned(
            self.plural, self.namespace, keep=self.keep
        )
        self.sink.replace(self.plural, bodies, version)
        self.version = version
        self.lists += 1
        self.synced.set()
        log.info("%s: %d listed at %s", self.plural, len(bodies), version)

    async def _watch(self, version: str) -> str:
        """Apply the watch's events until it ends; the resourceVersion to resume from."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[str] = loop.create_future()
        room = threading.Semaphore(BACKLOG)
        latest = [version]
        ended = threading.Event()  # this watch's events are no longer applied

        def deliver(event: dict[str, Any]) -> None:
            room.release()
            kind, body = event.get("type"), event.get("object") or {}
            if ended.is_set():
                return
            self.backoff.reset()  # the watch works (a bookmark says so too)
            if kind not in ("ADDED", "MODIFIED", "DELETED"):
                return
            try:
                self.sink.apply(self.plural, str(kind), body)
            except Exception as error:
                # An event lost would leave the sink wrong until the next list: list now.
                log.exception("%s: applying a %s event failed", self.plural, kind)
                ended.set()
                failure = Relist(repr(error))
                settle(lambda f: f.set_exception(failure))

        def settle(outcome: Callable[[asyncio.Future[str]], None]) -> None:
            if not done.done():
                outcome(done)

        def follow() -> None:
            try:
                seconds = random.randint(*WATCH_SECONDS)
                for event in self.kube.watch(self.plural, self.namespace, version, seconds):
                    if self._stopping.is_set() or ended.is_set():
                        break
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:
                            raise Expired(str(status.get("message", "410 Gone")))
                        raise KubeError(f"watch error {status.get('code')}: {status.get('reason')}")
                    found = ((event.get("object") or {}).get("metadata") or {}).get(
                        "resourceVersion"
                    )
                    if found:
                        latest[0] = str(found)
                    # Bounded: wait for the loop to apply earlier events (or for a stop).
                    while not room.acquire(timeout=1.0):
                        if self._stopping.is_set() or ended.is_set() or loop.is_closed():
                            return
                    loop.call_soon_threadsafe(deliver, event)
                result = latest[0]
                loop.call_soon_threadsafe(settle, lambda f: f.set_result(result))
            except Exception as error:  # handed to the loop, which decides
                failure = error if isinstance(error, KubeError) else KubeError(repr(error))
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(settle, lambda f: f.set_exception(failure))

        threading.Thread(target=follow, name=f"watch-{self.plural}", daemon=True).start()
        return await done
