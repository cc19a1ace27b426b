"""Hosts kept in line with their spec, and their status with what Nova and Pacemaker report.

A pass over a namespace reads the world once: Nova's compute services in one call, the Pacemaker
cluster in one crm_mon, the namespace's Hosts and FailureEvents in one list each. Each Host is
then planned in memory (`hosts.plan`, pure), and only what differs is changed in Nova or
Pacemaker or written to status, a few hosts at a time. One Host whose spec changed is synced at
once on its own (`sync_host`), reading only that host. Measured with 1,000 Hosts, a Host timer
each (one Nova call and one crm_mon per host and interval) kept 70% of a core busy while nothing
changed, and a maintenance change waited half a minute for its turn.

Status is written only when something a person would notice changed: Nova's heartbeat
(`status.nova.updatedAt`) and the times of the reads (`observedAt`) move on every read and are
written only along with a real change. The phase transition (its Event and log line) is decided
against the freshest status the Store knows (its own writes are read back before the watch
delivers them), never against a handler's kopf body, and is signalled once its write succeeded.
A kopf body was what made every resync say `Pending -> Active` again: the Host timer's first
tick planned from the body of before the create handler's write.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from controller.recovery import drain, hosts
from controller.recovery.bmc_check import BMC_METHODS, BMCCheck, Target
from controller.recovery.host_drain import Drains
from controller.recovery.nova import ComputeService, NotFound, NovaError
from controller.recovery.pacemaker import ClusterState, PacemakerError
from controller.recovery.ports import (
    EventView,
    HostRecord,
    HostSignals,
    HostStore,
    Nova,
    PacemakerCluster,
    PowerControl,
    by_host,
)
from controller.recovery.progress import utcnow
from controller.resources.common import Condition
from controller.resources.host import HostStatus, ReservationState
from controller.resources.segment import FailoverSegmentSpec, ReturnPolicy, UsedReservedHost

# Sets the `CloudBound` condition of a host (conditions, now, generation), as the namespace's
# binding says.
Mark = Callable[[list[Condition], datetime, int], None]

WRITE_LIMIT = 8  # hosts of one pass changed or written at a time
# How long a sync waits for a host's lock held by another sync (one change and write): a pass
# leaves the host to its next run, a single host's sync fails with HostBusy to be tried again.
PASS_PATIENCE = 1.0
SYNC_PATIENCE = 30.0
# Hosts synced one by one at a time (each new Host at start, a spec change): the others wait
# before reading anything, so memory holds this many hosts' reads and writes, not every
# Host's at start.
ONE_HOST_SYNCS = 256


class HostBusy(Exception):
    """Another sync of the host held its lock for longer than SYNC_PATIENCE."""


class Hold(StrEnum):
    LOCKED = "locked"  # this sync holds the host's lock: it may change Nova and Pacemaker
    RECOVERING = "recovering"  # a recovery holds it: observe only
    BUSY = "busy"  # another sync holds it


class HostLocks:
    """One lock per host, held by whoever changes its compute service or its Pacemaker node:
    a recovery for its whole run (minutes), a host sync for one apply-and-write (seconds).

    A sync never waits for a recovery: it sees the recovery's hold (`recovering`) and records
    what it observed without changing anything, since the recovery owns the service until it
    ends. A sync also changes nothing from a read older than the latest recovery start of the
    host (`recovered_since`): a snapshot taken before a recovery disabled a service would
    otherwise re-enable it.

    A drain's migration request (`asking`) is let in under the lock and made outside it, so
    that a drain's requests run side by side (Nova takes about a second to answer one); a
    recovery, once it holds the lock, waits for the requests let in before it, and no new one
    is let in while it runs.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._recovering: set[tuple[str, str]] = set()
        self._started: dict[tuple[str, str], int] = {}
        self._asking: dict[tuple[str, str], set[asyncio.Future[None]]] = {}
        self.epoch = 0  # counts recovery starts, across hosts

    def lock(self, namespace: str, host: str) -> asyncio.Lock:
        return self._locks.setdefault((namespace, host), asyncio.Lock())

    async def acquire(self, namespace: str, host: str, patience: float) -> bool:
        """Take the host's lock if it comes within `patience` seconds; whether it was taken."""
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the lock is granted, and the caller (a pass, a drain's request) would
            # go on holding the lock after the operator or the drain was told to stop.
            async with asyncio.timeout(patience):
                await self.lock(namespace, host).acquire()
        except TimeoutError:
            return False
        return True

    def recovering(self, namespace: str, host: str) -> bool:
        return (namespace, host) in self._recovering

    def recovered_since(self, namespace: str, host: str, epoch: int) -> bool:
        return self._started.get((namespace, host), -1) >= epoch

    @asynccontextmanager
    async def asking(
        self, namespace: str, host: str, patience: float, may: Callable[[], bool]
    ) -> AsyncIterator[bool]:
        """A drain's request to Nova: let in (True) if the host's lock comes within `patience`
        seconds and `may()`, asked under it, says so; made outside the lock."""
        if not await self.acquire(namespace, host, patience):
            yield False
            return
        key = (namespace, host)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            allowed = may()
            if allowed:
                self._asking.setdefault(key, set()).add(done)
        finally:
            self.lock(namespace, host).release()
        if not allowed:
            yield False
            return
        try:
            yield True
        finally:
            asks = self._asking.get(key, set())
            asks.discard(done)
            done.set_result(None)
            if not asks:
                self._asking.pop(key, None)

    @asynccontextmanager
    async def recovery(self, namespace: str, host: str) -> AsyncIterator[None]:
        key = (namespace, host)
        async with self.lock(namespace, host):
            self._started[key] = self.epoch
            self.epoch += 1
            self._recovering.add(key)
            try:
                # Requests let in before: each ends within the Nova driver's retry deadline.
                # Drains see `recovering` and ask nothing more.
                if asks := self._asking.get(key):
                    await asyncio.wait(set(asks))
                yield
            finally:
                self._recovering.discard(key)


class SegmentReads:
    """The reads of a segment, shared by the syncs that ask for it at once: a read started
    after a sync asked serves that sync, as fresh as a read of its own. At start every new
    Host is synced on its own, and each read its segment: 500 GETs for 10 segments."""

    def __init__(self, read: Callable[[str, str], Awaitable[FailoverSegmentSpec | None]]):
        self._read = read
        self._next: dict[tuple[str, str], asyncio.Task[FailoverSegmentSpec | None]] = {}
        self._running: dict[tuple[str, str], asyncio.Task[FailoverSegmentSpec | None]] = {}

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None:
        key = (namespace, name)
        read = self._next.get(key)
        if read is None:
            read = self._next[key] = asyncio.create_task(self._run(key))
        # Shielded: one asker cancelled does not cancel the read the others wait for.
        return await asyncio.shield(read)

    async def _run(self, key: tuple[str, str]) -> FailoverSegmentSpec | None:
        running = self._running.get(key)
        if running is not None:  # begun before some of this read's askers asked
            await asyncio.wait([running])
        this = self._next.pop(key)  # from now on, askers wait for the read after this one
        self._running[key] = this
        try:
            return await self._read(*key)
        finally:
            if self._running.get(key) is this:
                del self._running[key]


@dataclass(frozen=True)
class Access:
    """What the namespace's cloud offers the host sync."""

    nova: Nova
    pacemaker: PacemakerCluster | None
    mark: Mark
    power: PowerControl | None = None  # the hosts' BMCs, for the BMC check


@dataclass(frozen=True)
class Read:
    """When the world was read: recovery starts and single-host syncs counted so far."""

    recoveries: int
    syncs: int


@dataclass
class PassResult:
    hosts: int = 0
    written: int = 0
    changed: int = 0  # hosts whose Nova service or Pacemaker node was changed
    held: int = 0  # hosts left unchanged: a recovery holds them, or they were read again since
    failed: int = 0  # hosts whose change or write failed; the next pass tries again
    nova_error: str | None = None  # Nova could not be read: nothing was planned


class Done(StrEnum):
    UNCHANGED = "unchanged"
    STALE = "stale"  # a recovery or a single sync of the host since the read: left alone
    HELD = "held"
    WRITTEN = "written"
    CHANGED = "changed"


def _noticeable(status: HostStatus) -> HostStatus:
    """The status without what moves on every read: Nova's heartbeat and the read times.
    Shallow copies, only compared: a deep copy of every status doubled the cost of a pass."""
    changes: dict[str, Any] = {}
    if status.nova is not None:
        changes["nova"] = status.nova.model_copy(update={"updated_at": None, "observed_at": None})
    if status.pacemaker is not None:
        changes["pacemaker"] = status.pacemaker.model_copy(update={"observed_at": None})
    return status.model_copy(update=changes)


def _system(error: Exception) -> str:
    if isinstance(error, NovaError):
        return "nova"
    return "pacemaker" if isinstance(error, PacemakerError) else "kubernetes"


def _last_fencing(cluster: ClusterState | None, node: str) -> datetime | None:
    if cluster is None:
        return None
    fenced = [e.completed for e in cluster.fencing_of(node) if e.succeeded and e.completed]
    return max(fenced, default=None)


async def _instances_if_returning(
    host: HostRecord, returning: ReturnPolicy | None, nova: Nova
) -> int | None:
    """How many servers a used reserved host runs, read only where its segment returns such
    hosts to the pool once empty: a Nova call per used reserved host and pass, not per host."""
    if (
        returning is None
        or returning.used_reserved_host != UsedReservedHost.RETURNS_WHEN_EMPTY
        or not host.spec.reserved
        or host.status.reservation != ReservationState.IN_USE
    ):
        return None
    return len(await nova.servers_on_host(host.nova_host))


@dataclass
class HostSync:
    store: HostStore
    signals: HostSignals
    locks: HostLocks = field(default_factory=HostLocks)
    clock: Callable[[], datetime] = utcnow
    write_limit: int = WRITE_LIMIT
    bmc_check: BMCCheck = field(default_factory=BMCCheck)
    drains: Drains | None = None  # maintenance drains, started and stopped by the syncs
    _syncs: int = 0  # counts syncs of single hosts
    _synced: dict[tuple[str, str], int] = field(default_factory=dict)
    # The last read of each segment, (namespace, name): a few per namespace.
    _segments: dict[tuple[str, str], FailoverSegmentSpec | None] = field(default_factory=dict)
    _segment_reads: SegmentReads = field(init=False)
    _one_host: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._segment_reads = SegmentReads(self.store.segment)
        self._one_host = asyncio.Semaphore(ONE_HOST_SYNCS)

    async def sync_namespace(self, namespace: str, access: Access) -> PassResult:
        """One pass over every Host of the namespace."""
        read = self._read()
        try:
            services = {s.host: s for s in await access.nova.compute_services()}
        except NovaError as error:
            self.signals.unreachable("nova", error)
            return PassResult(nova_error=str(error))
        cluster = await self._cluster(access.pacemaker)
        records = await self.store.hosts(namespace)
        events = await self.store.failure_events(namespace)
        targets = await self._bmc_targets(namespace, records)
        self.bmc_check.schedule(namespace, targets, access.power)
        grouped = by_host(events)
        result = PassResult(hosts=len(records))
        limit = asyncio.Semaphore(self.write_limit)

        async def one(host: HostRecord) -> None:
            if self._stale(namespace, host.name, read):
                result.held += 1
                return
            service = services.get(host.nova_host)
            async with limit:
                try:
                    own, bmc = grouped.get(host.name, []), targets.get(host.name)
                    done = await self._sync(
                        namespace, host, service, cluster, own, events, access, read, bmc
                    )
                except Exception as error:  # one host's failure never stops the pass
                    self.signals.unreachable(_system(error), error)
                    result.failed += 1
                    return
            result.written += done in (Done.HELD, Done.WRITTEN, Done.CHANGED)
            result.changed += done == Done.CHANGED
            result.held += done in (Done.HELD, Done.STALE)

        await asyncio.gather(*(one(h) for h in records))
        return result

    async def sync_host(self, namespace: str, name: str, access: Access) -> Done:
        """Sync one Host at once, read fresh. NovaError or PacemakerError when Nova cannot be
        read or a change fails, for the caller to try again."""
        async with self._one_host, self._hold(namespace, name, SYNC_PATIENCE) as hold:
            if hold == Hold.BUSY:
                raise HostBusy(f"host {name} is being changed; try again")
            host = await self.store.host(namespace, name)
            if host is None:
                return Done.UNCHANGED
            try:
                service: ComputeService | None = await access.nova.compute_service(host.nova_host)
            except NotFound:
                service = None
            cluster = await self._cluster(access.pacemaker)
            everyone = host.spec.reserved  # a reserved host is taken by others' events
            events = await self.store.failure_events(namespace, None if everyone else name)
            own = [e for e in events if e.spec.host == name]
            read = self._read()
            targets = await self._bmc_targets(namespace, [host])
            self.bmc_check.schedule(namespace, targets, access.power, everyone=False)
            bmc = targets.get(name)
            done = await self._sync(
                namespace, host, service, cluster, own, events, access, read, bmc, hold
            )
            self._syncs += 1
            self._synced[(namespace, name)] = self._syncs
            return done

    async def unbound(self, namespace: str, mark: Mark, name: str | None = None) -> None:
        """Nothing is read or changed for the hosts of an unbound namespace. Their phase stays
        as last observed (the storm gate counts failed hosts by phase); CloudBound says why.
        Their BMCs are no longer checked either: the namespace's Secrets are not to be used."""
        if name is None:
            self.bmc_check.schedule(namespace, {}, None)
            records = await self.store.hosts(namespace)
        else:
            found = await self.store.host(namespace, name)
            records = [found] if found is not None else []
        for host in records:
            status = host.status.model_copy(deep=True)
            mark(status.conditions, self.clock(), host.status.observed_generation or 1)
            if status.conditions != host.status.conditions:
                await self.store.write_host_status(namespace, host.name, status, [])

    @asynccontextmanager
    async def _hold(self, namespace: str, name: str, patience: float) -> AsyncIterator[Hold]:
        """The host's lock, waited for `patience` seconds at most: never behind a recovery,
        which holds it for minutes."""
        if self.locks.recovering(namespace, name):
            yield Hold.RECOVERING
            return
        if not await self.locks.acquire(namespace, name, patience):
            yield Hold.RECOVERING if self.locks.recovering(namespace, name) else Hold.BUSY
            return
        try:
            yield Hold.LOCKED
        finally:
            self.locks.lock(namespace, name).release()

    def _read(self) -> Read:
        return Read(self.locks.epoch, self._syncs)

    def _stale(self, namespace: str, name: str, read: Read) -> bool:
        """Whether what was read of the host is older than a recovery start or a single-host
        sync of it: left to the next pass, which reads again."""
        return (
            self.locks.recovered_since(namespace, name, read.recoveries)
            or self._synced.get((namespace, name), -1) > read.syncs
        )

    async def _bmc_targets(self, namespace: str, records: list[HostRecord]) -> dict[str, Target]:
        """The hosts of segments that fence by BMC, with how each is checked; one read per
        segment. A segment that cannot be read counts as last read: an API server hiccup must
        neither stop the pass nor make every FencingReady condition come and go."""
        segments: dict[str, FailoverSegmentSpec | None] = {}
        for name in sorted({host.spec.segment for host in records}):
            try:
                segments[name] = await self._segment_reads.segment(namespace, name)
            except Exception as error:
                self.signals.unreachable("kubernetes", error)
                segments[name] = self._segments.get((namespace, name))
                continue
            self._segments[(namespace, name)] = segments[name]
        targets = {}
        for host in records:
            segment = segments.get(host.spec.segment)
            if segment is None or segment.fencing.method not in BMC_METHODS:
                continue
            interval = segment.fencing.bmc_check_interval_seconds
            targets[host.name] = Target(segment.fencing.method, host.spec.bmc, interval)
        return targets

    async def _cluster(self, pacemaker: PacemakerCluster | None) -> ClusterState | None:
        if pacemaker is None:
            return None
        try:
            return await asyncio.to_thread(pacemaker.state)
        except PacemakerError as error:
            self.signals.unreachable("pacemaker", error)
            return None

    async def _sync(
        self,
        namespace: str,
        host: HostRecord,
        service: ComputeService | None,
        cluster: ClusterState | None,
        own: Sequence[EventView],
        events: Sequence[EventView],
        access: Access,
        read: Read,
        fencing: Target | None,
        hold: Hold | None = None,
    ) -> Done:
        """`own`: the host's events; `events`: every event of the namespace (a reserved host
        is taken by others' events); `fencing`: how its BMC is checked, if it is."""
        now = self.clock()
        node = cluster.node(host.pacemaker_node) if cluster is not None else None
        fenced_at = _last_fencing(cluster, host.pacemaker_node)
        checked = self.bmc_check.readiness(namespace, host.name)
        segment = self._segments.get((namespace, host.spec.segment))
        policy = segment.maintenance if segment is not None else None
        returning = segment.return_to_service if segment is not None else None
        instances = await _instances_if_returning(host, returning, access.nova)
        plan = hosts.plan(
            host, service, node, own, events, now, host.generation, fenced_at, fencing, checked,
            policy, returning, instances,
        )  # fmt: skip
        if self.drains is not None:
            view = drain.HostView(
                host.spec.on_maintenance, plan.status.phase, service,
                self.locks.recovering(namespace, host.name), host.status.drain,
                hosts.maintenance_since(host.status, now),
            )  # fmt: skip
            self.drains.reconcile(
                namespace, host.name, host.nova_host, host.spec.segment, view, policy, access.nova
            )
        access.mark(plan.status.conditions, now, host.generation)
        changes = plan.unforce or plan.disable or plan.enable or plan.standby is not None
        write = plan.released_holds or _noticeable(plan.status) != _noticeable(host.status)
        if not changes and not write:
            return Done.UNCHANGED
        if hold is not None:  # taken by the caller
            return await self._apply_and_write(namespace, host, plan, access, read, hold)
        async with self._hold(namespace, host.name, PASS_PATIENCE) as taken:
            if taken == Hold.BUSY:
                return Done.STALE
            return await self._apply_and_write(namespace, host, plan, access, read, taken)

    async def _apply_and_write(
        self,
        namespace: str,
        host: HostRecord,
        plan: hosts.Plan,
        access: Access,
        read: Read,
        hold: Hold,
    ) -> Done:
        if self._stale(namespace, host.name, read):
            return Done.STALE
        done = Done.WRITTEN
        if hold != Hold.LOCKED:  # a recovery owns the host: record what was seen, change nothing
            done = Done.HELD
        elif await self._apply(host, plan, access):
            done = Done.CHANGED
        await self.store.write_host_status(namespace, host.name, plan.status, plan.released_holds)
        if plan.transition is not None:
            reason, message = plan.transition
            self.signals.transition(namespace, host, reason, message)
        return done

    async def _apply(self, host: HostRecord, plan: hosts.Plan, access: Access) -> bool:
        nova, pacemaker = access.nova, access.pacemaker
        if plan.unforce:
            await nova.force_down(host.nova_host, False)
        if plan.disable:
            await nova.disable_service(host.nova_host, plan.disable)
        if plan.enable:
            await nova.enable_service(host.nova_host)
        standby = plan.standby is not None and pacemaker is not None
        if standby and pacemaker is not None:
            change = pacemaker.put_in_standby if plan.standby else pacemaker.bring_online
            await asyncio.to_thread(change, host.pacemaker_node)
        return bool(plan.unforce or plan.disable or plan.enable or standby)
