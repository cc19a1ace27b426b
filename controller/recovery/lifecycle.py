"""A FailureEvent from report to end: gates, attempts, backoff, and the phase it ends in.

New → Running → Finished | Ignored | Error → (backoff, bounded attempts) → Failed.
Gates that block (storm limit, pause, fencing not yet confirmed) keep the event New with a
reason and a Blocked condition, and are evaluated again until they let it through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from controller.drivers.nova.model import Nova
from controller.drivers.pacemaker.model import ClusterState
from controller.recovery.fencing import confirmed_down
from controller.recovery.gates import Decision, Report, SegmentHealth, Verdict, admit
from controller.recovery.host_failure import HostFailure, Timing
from controller.recovery.instance_failure import InstanceFailure
from controller.recovery.outcome import Outcome
from controller.recovery.process_failure import ProcessFailure
from controller.recovery.progress import Progress, utcnow
from controller.resources.common import set_condition
from controller.resources.failure_event import (
    EventPhase,
    FailureEventSpec,
    FailureEventStatus,
    FailureType,
)
from controller.resources.host import HostSpec, HostStatus
from controller.resources.segment import FailoverSegmentSpec

TERMINAL = {EventPhase.FINISHED, EventPhase.IGNORED, EventPhase.FAILED}


@dataclass(frozen=True)
class EventRecord:
    name: str
    namespace: str
    spec: FailureEventSpec
    status: FailureEventStatus
    created: datetime
    generation: int = 1
    uid: str | None = None

    def report(self) -> Report:
        return Report(self.name, self.spec, self.created, self.status.phase)


@dataclass(frozen=True)
class HostRecord:
    name: str
    spec: HostSpec
    status: HostStatus
    created: datetime

    @property
    def nova_host(self) -> str:
        return self.spec.nova_host or self.name

    @property
    def pacemaker_node(self) -> str:
        return self.spec.pacemaker_node or self.name


class Store(Protocol):
    """The cluster's objects as the recovery needs them."""

    async def failure_event(self, namespace: str, name: str) -> EventRecord | None: ...

    async def failure_events(
        self, namespace: str, host: str | None = None
    ) -> list[EventRecord]: ...

    async def hosts(self, namespace: str, segment: str | None = None) -> list[HostRecord]: ...

    async def segment(self, namespace: str, name: str) -> FailoverSegmentSpec | None: ...

    async def write_event_status(
        self, namespace: str, name: str, status: FailureEventStatus
    ) -> None: ...


class Signals(Protocol):
    """What the outside world hears: Kubernetes Events, metrics, log lines."""

    def transition(self, record: EventRecord, status: FailureEventStatus) -> None: ...

    def blocked(self, record: EventRecord, reason: str | None) -> None: ...

    def running(self, record: EventRecord, running: bool) -> None: ...


Fencing = Callable[[], Awaitable[ClusterState]]
Wait = Callable[[float], Awaitable[bool]]  # sleeps; True when the operator is stopping


@dataclass
class Settings:
    recheck_interval: float = 5.0  # blocked events are evaluated again this often
    timing: Timing = field(default_factory=Timing)


@dataclass
class Lifecycle:
    nova: Nova
    store: Store
    signals: Signals
    fencing: Fencing | None = None
    settings: Settings = field(default_factory=Settings)
    overall_limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))
    clock: Callable[[], datetime] = utcnow
    _host_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _claims: dict[tuple[str, str], str] = field(default_factory=dict)

    async def process(self, namespace: str, name: str, wait: Wait) -> None:
        """Drive one event until it ends, the object is gone or the operator stops."""
        while True:
            record = await self.store.failure_event(namespace, name)
            if record is None or record.status.phase in TERMINAL:
                return
            pause = await self._step(record)
            if pause is None:
                continue
            if await wait(pause):
                return

    async def _step(self, record: EventRecord) -> float | None:
        """One move of the state machine; returns how long to wait before the next one."""
        status = record.status
        if status.phase == EventPhase.ERROR and status.next_attempt_time is not None:
            delay = (status.next_attempt_time - self.clock()).total_seconds()
            if delay > 0:
                return delay
        if status.phase in (None, EventPhase.NEW):
            decision = await self._admit(record)
            if decision.verdict == Verdict.WAIT:
                await self._block(record, decision)
                return self.settings.recheck_interval
            if decision.verdict == Verdict.IGNORE:
                await self._end(record, Outcome.ignored(decision.reason, decision.message))
                return None
        await self._attempt(record)
        return None

    async def _host_and_segment(
        self, record: EventRecord
    ) -> tuple[dict[str, HostRecord], HostRecord | None, FailoverSegmentSpec | None]:
        """The namespace's hosts by name, the event's host and its segment (None if gone)."""
        hosts = {h.name: h for h in await self.store.hosts(record.namespace)}
        host = hosts.get(record.spec.host)
        segment = await self.store.segment(record.namespace, host.spec.segment) if host else None
        return hosts, host, segment

    async def _admit(self, record: EventRecord) -> Decision:
        hosts, host, segment = await self._host_and_segment(record)
        others = [
            e.report()
            for e in await self.store.failure_events(record.namespace, record.spec.host)
            if e.name != record.name
        ]
        members = [h for h in hosts.values() if host and h.spec.segment == host.spec.segment]
        health = SegmentHealth(
            hosts=len(members),
            failed_hosts={h.name for h in members if h.status.phase in ("Failed", "Recovering")},
        )
        decision = admit(record.report(), host.spec if host else None, segment, others, health)
        if decision.verdict != Verdict.CONFIRM_FENCING or host is None or segment is None:
            return decision
        return await self._confirm_fencing(record, host, segment)

    async def _confirm_fencing(
        self, record: EventRecord, host: HostRecord, segment: FailoverSegmentSpec
    ) -> Decision:
        timeout = timedelta(seconds=segment.host_failure.fencing_timeout_seconds)
        waited = self.clock() - record.created
        why = "no Pacemaker cluster is configured"
        if self.fencing is not None:
            try:
                down, why = confirmed_down(await self.fencing(), host.pacemaker_node)
            except Exception as error:  # any driver failure means "not confirmed"
                down, why = False, f"Pacemaker could not be read: {error}"
            if down:
                return Decision(Verdict.PROCEED, "FencingConfirmed", why)
        if waited >= timeout:
            return Decision(
                Verdict.IGNORE,
                "HostNotConfirmedDown",
                f"not confirmed down after {timeout.total_seconds():.0f}s: {why}",
            )
        return Decision(Verdict.WAIT, "AwaitingFencing", why)

    async def _block(self, record: EventRecord, decision: Decision) -> None:
        status = record.status.model_copy(deep=True)
        changed = status.reason != decision.reason or status.phase != EventPhase.NEW
        status.phase = EventPhase.NEW
        status.reason = decision.reason
        status.message = decision.message
        set_condition(
            status.conditions,
            "Blocked",
            True,
            decision.reason,
            decision.message,
            self.clock(),
            record.generation,
        )
        if changed:
            await self.store.write_event_status(record.namespace, record.name, status)
            self.signals.transition(record, status)
        self.signals.blocked(record, decision.reason)

    async def _attempt(self, record: EventRecord) -> None:
        lock = self._host_locks.setdefault((record.namespace, record.spec.host), asyncio.Lock())
        async with lock:
            status = record.status.model_copy(deep=True)
            resuming = status.phase == EventPhase.RUNNING
            if not resuming:
                status.attempts = (status.attempts or 0) + 1
                status.start_time = status.start_time or self.clock()
                status.next_attempt_time = None
                status.phase = EventPhase.RUNNING
                status.reason, status.message = "Recovering", f"attempt {status.attempts}"
            self.signals.blocked(record, None)
            set_condition(
                status.conditions,
                "Blocked",
                False,
                "Admitted",
                "gates passed",
                self.clock(),
                record.generation,
            )
            await self.store.write_event_status(record.namespace, record.name, status)
            if not resuming:
                self.signals.transition(record, status)
            self.signals.running(record, True)  # a resumed recovery runs in this process too
            progress = Progress(
                status,
                lambda s: self.store.write_event_status(record.namespace, record.name, s),
                self.clock,
            )
            outcome = await self._run(record, progress)
        await self._end(record, outcome, progress.status)

    async def _run(self, record: EventRecord, progress: Progress) -> Outcome:
        hosts, host, segment = await self._host_and_segment(record)
        if host is None or segment is None:
            return Outcome.error("HostNotFound", "the host or its segment disappeared")
        progress.status.segment = host.spec.segment
        payload = record.spec.payload
        if record.spec.type == FailureType.COMPUTE_HOST:
            if payload.event == "STARTED":
                return Outcome.finished("HostStarted", f"{host.name} reported started")
            progress.status.recovery_method = segment.recovery_method
            return await HostFailure(
                event=record.name,
                host=host.nova_host,
                method=segment.recovery_method,
                policy=segment.host_failure,
                nova=self.nova,
                progress=progress,
                reserved_candidates=self._reserved_candidates(
                    record, host, hosts, await self._taken_elsewhere(record)
                ),
                claim=self._claimer(record),
                overall_limit=self.overall_limit,
                timing=self.settings.timing,
            ).run()
        if record.spec.type == FailureType.VM:
            return await InstanceFailure(
                event=record.name,
                instance_id=payload.instance_uuid or "",
                policy=segment.instance_failure,
                nova=self.nova,
                progress=progress,
                recent_restarts=await self._recent_restarts(record, segment),
                timing=self.settings.timing,
            ).run()
        return await ProcessFailure(
            event=record.name,
            host=host.nova_host,
            process=payload.process_name or "",
            stopped=payload.event == "STOPPED",
            nova=self.nova,
            progress=progress,
            may_enable=not (
                host.spec.reserved or host.spec.on_maintenance or host.status.phase == "Failed"
            ),
        ).run()

    def _reserved_candidates(
        self,
        record: EventRecord,
        failed: HostRecord,
        hosts: dict[str, HostRecord],
        taken_elsewhere: set[str],
    ) -> list[str]:
        """The segment's reserved hosts free to take, newest first as Masakari orders them:
        not on maintenance or failed, not shown in use, not taken by another open recovery."""
        free = [
            h
            for h in hosts.values()
            if h.spec.segment == failed.spec.segment
            and h.spec.reserved
            and not h.spec.on_maintenance
            and h.name != failed.name
            and h.status.reservation != "InUse"
            and h.status.phase != "Failed"
            and h.nova_host not in taken_elsewhere
        ]
        free.sort(key=lambda h: (h.created, h.name), reverse=True)
        return [h.nova_host for h in free]

    def _claimer(self, record: EventRecord) -> Callable[[str], bool]:
        """Claims reserved hosts for `record` in this process, until it ends."""

        def claim(nova_host: str) -> bool:
            owner = self._claims.setdefault((record.namespace, nova_host), record.name)
            return owner == record.name

        return claim

    async def _taken_elsewhere(self, record: EventRecord) -> set[str]:
        """Reserved hosts recorded by other open recoveries (also after a restart, when the
        in-process claims are gone)."""
        return {
            reserved
            for event in await self.store.failure_events(record.namespace)
            if event.name != record.name and event.status.phase not in TERMINAL
            for reserved in event.status.reserved_hosts
        }

    async def _recent_restarts(self, record: EventRecord, segment: FailoverSegmentSpec) -> int:
        window = timedelta(seconds=segment.instance_failure.restart_window_seconds)
        since = record.spec.generated_time - window
        instance = record.spec.payload.instance_uuid
        return sum(
            1
            for e in await self.store.failure_events(record.namespace)
            if e.name != record.name
            and e.spec.type == FailureType.VM
            and e.spec.payload.instance_uuid == instance
            and e.spec.generated_time >= since
            and e.status.reason == "Recovered"
        )

    async def _end(
        self,
        record: EventRecord,
        outcome: Outcome,
        status: FailureEventStatus | None = None,
    ) -> None:
        status = (status or record.status).model_copy(deep=True)
        segment = None
        if outcome.phase == EventPhase.ERROR:
            _, _, segment = await self._host_and_segment(record)
        status.reason, status.message = outcome.reason, outcome.message
        status.phase = outcome.phase
        if outcome.phase == EventPhase.ERROR:
            retry = segment.retry if segment else None
            attempts = status.attempts or 1
            if retry is None or attempts >= retry.max_attempts:
                status.phase = EventPhase.FAILED
                status.message = f"{outcome.message} (gave up after {attempts} attempt(s))"
            else:
                backoff = min(
                    retry.initial_backoff_seconds * 2 ** (attempts - 1), retry.max_backoff_seconds
                )
                status.next_attempt_time = self.clock() + timedelta(seconds=backoff)
        if status.phase in TERMINAL:
            status.end_time = self.clock()
            status.next_attempt_time = None
            for key in [k for k, v in self._claims.items() if v == record.name]:
                del self._claims[key]
        set_condition(
            status.conditions,
            "Blocked",
            False,
            outcome.reason,
            outcome.message,
            self.clock(),
            record.generation,
        )
        final = status

        async def publish() -> None:
            await self.store.write_event_status(record.namespace, record.name, final)
            self.signals.running(record, False)
            self.signals.transition(record, final)

        # Shielded: the final write makes the event terminal, on which the operator stops this
        # recovery's task; the Event and the counters for the transition must still go out.
        await asyncio.shield(publish())
