"""One operator of a fleet: the namespaces its label selector picks, claimed by its leader.

kopf takes its namespace list once, when it starts (`masakari-operator run` computes it, see
controller.run), so a change of the selection is served by a restart: the leader reads the
selection and the claims every binding resync interval, writes the claims the rules ask for
(controller.recovery.shards), and when the set it should serve is not the set it serves, it
says so and stops (exit 75); the Deployment starts it again with the new set. A recovery under
way resumes there (DESIGN principle 3). Claims on namespaces it was serving are released only
after its handlers have stopped, so the next shard never acts beside it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import cast

from controller.drivers.lease import Lease, brief
from controller.drivers.namespace_claims import NamespaceClaims
from controller.recovery import shards

log = logging.getLogger("masakari.shards")

RESTART = 75  # EX_TEMPFAIL: the process ends to be started again, with its new namespaces


@dataclass
class Shard:
    selector: str
    name: str  # its Lease, `namespace/name`
    serving: frozenset[str]  # what kopf was started with
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    restarting: bool = False
    interval: float = 10.0
    lease_duration: float = 15.0
    claims: NamespaceClaims | None = None
    lease: Lease | None = None
    _ages: shards.LeaseAges = field(default_factory=shards.LeaseAges)
    _refused: set[str] = field(default_factory=set)
    _release_at_exit: set[str] = field(default_factory=set)
    _watch: asyncio.Task[None] | None = None

    async def begin(self, claims: NamespaceClaims, lease: Lease, interval: float) -> bool:
        """Claim what this shard serves before any handler runs. False when its set changed
        while this replica stood by (or a claim was lost): the shard is stopping already."""
        self.claims, self.lease, self.interval = claims, lease, interval
        self.lease_duration = lease.duration
        while True:
            try:
                ready = await self.check()
                break
            except Exception as error:  # the keeper stops the process if the Lease goes too
                log.warning("reading the namespaces of shard %s: %s", self.name, brief(error))
                await asyncio.sleep(lease.retry_period)
        if ready:
            self._watch = asyncio.create_task(self._watching(), name="namespace selection")
        return ready

    async def _watching(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                if not await self.check():
                    return
            except Exception as error:  # the next reading tries again; serving goes on
                log.warning("reading the namespaces of shard %s: %s", self.name, brief(error))

    async def check(self) -> bool:
        """Write the claims and releases the rules ask for; False once a restart is under way."""
        claims = cast(NamespaceClaims, self.claims)
        states = await asyncio.to_thread(claims.read, self.selector)
        decision = shards.plan(states, self.name, await self._stale(states))
        by_name = {state.name: state for state in states}
        serve = set(decision.serve)
        for name in sorted(decision.claim):
            if not self._leading() or not await asyncio.to_thread(
                claims.claim, by_name[name], self.name
            ):
                serve.discard(name)  # someone was first: the next reading says who
            elif by_name[name].claim:
                log.warning(
                    "namespace %s: took over the claim of shard %s, whose Lease has not "
                    "changed for a lease duration", name, by_name[name].claim,
                )  # fmt: skip
        for name in sorted(decision.release):
            if name in self.serving:
                self._release_at_exit.add(name)
            elif self._leading():
                await asyncio.to_thread(claims.release, name, self.name)
        await self._report_refused(decision.refused)
        if serve == self.serving:
            return True
        log.critical(
            "shard %s: the namespaces to serve are now [%s], kopf serves [%s]; stopping to "
            "start again with the new set (exit %d)",
            self.name, ", ".join(sorted(serve)), ", ".join(sorted(self.serving)), RESTART,
        )  # fmt: skip
        self.restarting = True
        self.stop.set()
        return False

    async def end(self) -> None:
        """At kopf's cleanup, handlers stopped: give up the claims of namespaces deselected."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        claims = self.claims
        for name in sorted(self._release_at_exit):
            if claims is not None and self._leading():
                release = asyncio.to_thread(claims.release, name, self.name)
                with contextlib.suppress(Exception):  # a claim left behind is released at start
                    await asyncio.wait_for(release, self.interval)

    def _leading(self) -> bool:
        return self.lease is not None and self.lease.holding()

    async def _stale(self, states: list[shards.NamespaceState]) -> frozenset[str]:
        claims = cast(NamespaceClaims, self.claims)
        stale = set()
        now = time.monotonic()
        for other in shards.other_shards(states, self.name):
            seen = await asyncio.to_thread(claims.lease, other)
            duration = max(self.lease_duration, seen.duration)
            if self._ages.stale(other, seen.record, duration, now):
                stale.add(other)
        return frozenset(stale)

    async def _report_refused(self, refused: dict[str, str]) -> None:
        """Once per namespace and process: an error line and an Event on the Namespace."""
        claims = cast(NamespaceClaims, self.claims)
        for name, owner in sorted(refused.items()):
            if name in self._refused:
                continue
            self._refused.add(name)
            message = f"selected by shard {self.name} but claimed by shard {owner}: not served"
            log.error("namespace %s: %s", name, message)
            try:
                await asyncio.to_thread(claims.warn, name, "ClaimedByAnotherShard", message)
            except Exception as error:  # the log line says it already
                log.warning("posting an Event on namespace %s: %s", name, brief(error))
        self._refused &= set(refused)
