"""A FailureEvent from report to end: gates, attempts, backoff, and the phase it ends in.

New → Running → Finished | Ignored | Error → (backoff, bounded attempts) → Failed.
Every attempt passes the gates, retries included (and a recovery resumed after a restart
before its host was taken out of Nova). Gates that block (no cloud bound, storm limit, pause)
keep the event where it is (New, or Error for a retry) with a reason and a Blocked condition,
and are evaluated again until they let it through. An admitted host failure is fenced first
(`recovery.fencing`): nothing of Nova is touched before the host is confirmed off.

Host failures of one segment are admitted one at a time under the segment's lock, counting
every admitted recovery as a failed host, so hosts failing together cannot pass the storm
limit between two Host resyncs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from controller.recovery import drain
from controller.recovery.fencing import FenceHost, unconfirmed_report
from controller.recovery.gates import (
    TERMINAL,
    Decision,
    Verdict,
    admit,
    of_registration,
    segment_health,
)
from controller.recovery.host_failure import DISABLE, HostFailure, Timing
from controller.recovery.host_sync import HostLocks
from controller.recovery.hosts import entered_maintenance, reserved_by
from controller.recovery.instance_failure import InstanceFailure
from controller.recovery.nova import NotFound, NovaError
from controller.recovery.outcome import Outcome
from controller.recovery.ports import (
    Cloud,
    CloudNotBound,
    Clouds,
    EventRecord,
    HostRecord,
    HostStore,
    Signals,
    Store,
)
from controller.recovery.process_failure import ProcessFailure
from controller.recovery.progress import NotRecorded, Progress, utcnow
from controller.resources.common import condition_true, set_condition
from controller.resources.failure_event import (
    EventPhase,
    FailureEventStatus,
    FailureType,
)
from controller.resources.host import HostPhase, ReservationState
from controller.resources.segment import FailoverSegmentSpec, FencingMethod, RecoveryMethod

Wait = Callable[[float], Awaitable[bool]]  # sleeps; True when the operator is stopping
# The longest wait between tries of a recovery whose progress the cluster refuses to store:
# short, since its instances are down until it goes on (a 30 s bound cost the etcd-full
# row of tests/integration/test_faults_storage.py up to 30 s after space was back).
NOT_RECORDED_BACKOFF = 10.0


@dataclass
class Settings:
    recheck_interval: float = 5.0  # blocked events are evaluated again this often
    timing: Timing = field(default_factory=Timing)


@dataclass(frozen=True)
class Context:
    """What one step of an event needs to know of the world, read at the start of the step."""

    cloud: Cloud
    hosts: dict[str, HostRecord]
    host: HostRecord | None
    segment: FailoverSegmentSpec | None


@dataclass
class Lifecycle:
    clouds: Clouds
    store: Store
    signals: Signals
    settings: Settings = field(default_factory=Settings)
    overall_limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(64))
    clock: Callable[[], datetime] = utcnow
    # Shared with the host sync: a recovery holds its host for its whole run.
    host_locks: HostLocks = field(default_factory=HostLocks)
    # Ended events, read from memory where the operator keeps them (drivers.kube_cache): the
    # recoveries' own store reads the API server, where listing every event is a whole LIST
    # of the namespace. None: the store.
    history: HostStore | None = None
    _segment_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _claims: dict[tuple[str, str], str] = field(default_factory=dict)

    async def process(self, namespace: str, name: str, wait: Wait) -> None:
        """Drive one event until it ends, the object is gone or the operator stops."""
        refusals = 0
        while True:
            record = await self.store.failure_event(namespace, name)
            if record is None or record.status.phase in TERMINAL:
                return
            refused: NotRecorded | None = None
            try:
                pause = await self._step(record)
            except* NotRecorded as group:  # from a workflow's TaskGroup too
                refused = _first(group)
            if refused is not None:
                refusals += 1
                pause = await self._not_recorded(record, refused, refusals)
            else:
                refusals = 0
            if pause is None:
                continue
            if await wait(pause):
                return

    async def _not_recorded(self, record: EventRecord, error: NotRecorded, refusals: int) -> float:
        """A write of the recovery's progress was refused (etcd full, the status too large):
        nothing more is done for it until a write succeeds, since every action is recorded
        before it is taken. Said where it can be: a log line, the blocked gauge, an Event and,
        where the API server still takes a small write, the Blocked condition. Tried again
        with backoff: a recovery resumes from what was recorded once space returns."""
        self.signals.not_recorded(record, error.reason, error.message)
        pause = min(
            self.settings.recheck_interval * 2.0 ** min(refusals - 1, 10), NOT_RECORDED_BACKOFF
        )
        # Read again: the step may have recorded more than `record` holds before the refusal.
        current = await self.store.failure_event(record.namespace, record.name)
        if current is None or current.status.phase in TERMINAL:
            return pause
        status = current.status.model_copy(deep=True)
        set_condition(
            status.conditions,
            "Blocked",
            True,
            error.reason,
            f"progress cannot be recorded, so nothing more is done: {error.message}",
            self.clock(),
            record.generation,
        )
        with contextlib.suppress(NotRecorded):  # etcd full: the log and the gauge say it
            await self.store.write_event_status(record.namespace, record.name, status)
        return pause

    async def _step(self, record: EventRecord) -> float | None:
        """One move of the state machine; returns how long to wait before the next one."""
        status = record.status
        if status.phase == EventPhase.ERROR and status.next_attempt_time is not None:
            delay = (status.next_attempt_time - self.clock()).total_seconds()
            if delay > 0:
                return delay
        try:
            cloud = await self.clouds.cloud(record.namespace)
        except CloudNotBound as error:
            await self._block(record, Decision(Verdict.WAIT, "CloudNotBound", str(error)))
            return self.settings.recheck_interval
        context = await self._context(record, cloud)
        if not self._needs_gates(record):
            await self._attempt(record, context)
            return None
        segment = context.host.spec.segment if context.host else ""
        lock = self._segment_locks.setdefault((record.namespace, segment), asyncio.Lock())
        # Admission and the write that records it happen under the segment's lock: the next
        # report of the segment counts this one among the open recoveries.
        async with lock:
            decision = await self._admit(record, context)
            if decision.verdict == Verdict.WAIT:
                await self._block(record, decision)
                return self.settings.recheck_interval
            if decision.verdict == Verdict.IGNORE:
                await self._end(record, Outcome.ignored(decision.reason, decision.message))
                return None
            record = await self._start(record)
        await self._attempt(record, context)
        return None

    def _needs_gates(self, record: EventRecord) -> bool:
        """A new report, a retry, or a recovery resumed before it took its host out of Nova."""
        if record.status.phase != EventPhase.RUNNING:
            return True
        disable = next((s for s in record.status.steps if s.name == DISABLE), None)
        return record.spec.type == FailureType.COMPUTE_HOST and disable is None

    async def _context(self, record: EventRecord, cloud: Cloud) -> Context:
        # The failed host's segment only: a recovery takes targets and reserved hosts from its
        # own segment, and listing every Host of a namespace of thousands cost seconds a step.
        host = await self.store.host(record.namespace, record.spec.host)
        if host is None:
            return Context(cloud, {}, None, None)
        members, segment = await asyncio.gather(
            self.store.hosts(record.namespace, host.spec.segment),
            self.store.segment(record.namespace, host.spec.segment),
        )
        return Context(cloud, {h.name: h for h in members}, host, segment)

    async def _admit(self, record: EventRecord, context: Context) -> Decision:
        host, segment = context.host, context.segment
        # Read fresh under the segment's lock: what other recoveries were admitted is a safety
        # matter (the storm limit), never taken from a cache. The segment's Hosts as well: a
        # recovery that ended since this step began counts by the service hold it left on its
        # Host. The three reads at once: one after the other they were most of the 100 ms
        # from a report to its admission on the simulator's benchmark (issue 12).
        opened, of_host, hosts = await asyncio.gather(
            self.store.failure_events(record.namespace, open_only=True),
            self.store.failure_events(record.namespace, record.spec.host),
            self.store.hosts(record.namespace, host.spec.segment) if host else _none(),
        )
        open_events = [e.report() for e in opened if e.name != record.name]
        same_host = [e.report() for e in of_host if e.name != record.name]
        if host is not None:
            same_host = of_registration(same_host, host.created)
        members = {
            h.name: h.status.phase in (HostPhase.FAILED, HostPhase.RECOVERING)
            or bool(h.status.service_holds)
            for h in hosts
        }
        decision = admit(
            record.report(),
            host.spec if host else None,
            segment,
            same_host,
            segment_health(members, open_events),
            drain_unfinished=host is not None
            and segment is not None
            and drain.unfinished(
                segment.maintenance, host.status.drain, entered_maintenance(host.status)
            ),
        )
        if (
            decision.verdict != Verdict.PROCEED
            or host is None
            or segment is None
            or record.spec.type != FailureType.COMPUTE_HOST
            or record.spec.payload.event == "STARTED"
            or segment.fencing.method != FencingMethod.NONE
        ):
            return decision
        try:
            heartbeat = (await context.cloud.nova.compute_service(host.nova_host)).updated_at
        except NotFound:
            heartbeat = None
        except NovaError as error:
            return Decision(Verdict.WAIT, "NovaUnavailable", f"Nova failed: {error}")
        return unconfirmed_report(record.report(), segment, heartbeat, self.clock()) or decision

    async def _block(self, record: EventRecord, decision: Decision) -> None:
        status = record.status.model_copy(deep=True)
        # A retry waits in Error, with its attempts; anything else waits as New.
        phase = EventPhase.ERROR if status.phase == EventPhase.ERROR else EventPhase.NEW
        changed = status.reason != decision.reason or status.phase != phase
        status.phase = phase
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

    async def _start(self, record: EventRecord) -> EventRecord:
        """Record the admission: Running, one more attempt."""
        status = record.status.model_copy(deep=True)
        resumed = status.phase == EventPhase.RUNNING
        if not resumed:
            status.attempts = (status.attempts or 0) + 1
            status.start_time = status.start_time or self.clock()
            status.next_attempt_time = None
            status.phase = EventPhase.RUNNING
            status.reason, status.message = "Recovering", f"attempt {status.attempts}"
        set_condition(
            status.conditions,
            "Blocked",
            False,
            "Admitted",
            "gates passed",
            self.clock(),
            record.generation,
        )
        self.signals.blocked(record, None)
        await self.store.write_event_status(record.namespace, record.name, status)
        if not resumed:
            self.signals.transition(record, status)
        return replace(record, status=status)

    async def _attempt(self, record: EventRecord, context: Context) -> None:
        async with self.host_locks.recovery(record.namespace, record.spec.host):
            status = record.status.model_copy(deep=True)
            self.signals.running(record, True)  # a resumed recovery runs in this process too
            if condition_true(status.conditions, "Blocked"):
                # Left by a refused write (_not_recorded): the first write that goes through
                # says the progress is recorded again.
                set_condition(
                    status.conditions,
                    "Blocked",
                    False,
                    "Recording",
                    "the progress is recorded again",
                    self.clock(),
                    record.generation,
                )
                self.signals.blocked(record, None)
            progress = Progress(
                status,
                lambda s: self.store.write_event_status(record.namespace, record.name, s),
                self.clock,
            )
            try:
                outcome = await self._run(record, context, progress)
            except NovaError as error:
                outcome = Outcome.error("NovaUnavailable", f"Nova failed: {error}")
        await self._end(record, outcome, progress.status, context.segment)

    async def _run(self, record: EventRecord, context: Context, progress: Progress) -> Outcome:
        host, segment, nova = context.host, context.segment, context.cloud.nova
        if host is None or segment is None:
            return Outcome.error("HostNotFound", "the host or its segment disappeared")
        progress.status.segment = host.spec.segment
        payload = record.spec.payload
        if record.spec.type == FailureType.COMPUTE_HOST:
            if payload.event == "STARTED":
                return Outcome.finished("HostStarted", f"{host.name} reported started")
            progress.status.recovery_method = segment.recovery_method
            fencing = FenceHost(
                report=record.report(),
                namespace=record.namespace,
                host=host,
                segment=segment,
                cloud=context.cloud,
                progress=progress,
                clock=self.clock,
                timing=self.settings.timing,
            )
            fenced = await fencing.run()
            if fenced is not None:
                return fenced

            async def hold() -> None:
                await self.store.hold_host_service(record.namespace, host.name, record.name)

            return await HostFailure(
                event=record.name,
                host=host.nova_host,
                method=segment.recovery_method,
                policy=segment.host_failure,
                nova=nova,
                progress=progress,
                reserved_candidates=await self._reserved_candidates(
                    record, host, segment, context.hosts
                ),
                claim=self._claimer(record),
                hold=hold,
                overall_limit=self.overall_limit,
                timing=self.settings.timing,
                placement=segment.placement,
                segment_hosts=_segment_targets(host, context.hosts),
                live_migration_timeout=segment.maintenance.instance_timeout_seconds,
                known_service=fencing.service,
            ).run()
        if record.spec.type == FailureType.VM:
            return await InstanceFailure(
                event=record.name,
                instance_id=payload.instance_uuid or "",
                policy=segment.instance_failure,
                nova=nova,
                progress=progress,
                recent_restarts=await self._recent_restarts(record, segment),
                timing=self.settings.timing,
            ).run()
        return await ProcessFailure(
            event=record.name,
            host=host.nova_host,
            process=payload.process_name or "",
            stopped=payload.event == "STOPPED",
            nova=nova,
            progress=progress,
            may_enable=not (
                host.spec.reserved
                or host.spec.on_maintenance
                or host.status.phase == HostPhase.FAILED
            ),
        ).run()

    async def _reserved_candidates(
        self,
        record: EventRecord,
        failed: HostRecord,
        segment: FailoverSegmentSpec,
        hosts: dict[str, HostRecord],
    ) -> list[str]:
        """The segment's reserved hosts free to take, newest first as Masakari orders them:
        not on maintenance or failed, not shown in use, not taken by another recovery. None
        read for the scheduler's method, which takes none, nor in a segment without any: the
        events' read was a round trip before the first evacuate (3-75 ms, issue 12)."""
        free = [
            h
            for h in hosts.values()
            if h.spec.segment == failed.spec.segment
            and h.spec.reserved
            and not h.spec.on_maintenance
            and h.name != failed.name
            and h.status.reservation != ReservationState.IN_USE
            and h.status.phase != HostPhase.FAILED
        ]
        if not free or segment.recovery_method == RecoveryMethod.AUTO:
            return []
        taken_elsewhere = await self._taken_elsewhere(record, hosts)
        free = [h for h in free if h.nova_host not in taken_elsewhere]
        free.sort(key=lambda h: (h.created, h.name), reverse=True)
        return [h.nova_host for h in free]

    def _claimer(self, record: EventRecord) -> Callable[[str], bool]:
        """Claims reserved hosts for `record` in this process, until it ends."""

        def claim(nova_host: str) -> bool:
            owner = self._claims.setdefault((record.namespace, nova_host), record.name)
            return owner == record.name

        return claim

    async def _taken_elsewhere(self, record: EventRecord, hosts: dict[str, HostRecord]) -> set[str]:
        """Reserved hosts other recoveries took and their Host has not returned to the pool.
        Ended recoveries count too: their Host shows InUse only at its next resync, and a
        failure in between must not take the host as a free spare. Read from the events, so
        this holds after a restart, when the in-process claims are gone. The open events
        fresh, the ended ones from history: an event records its reserved host when it takes
        it, long before it ends."""
        history = self.history or self.store
        taken = {
            e.name: e
            for e in await history.failure_events(record.namespace)
            if e.status.reserved_hosts
        }
        for e in await self.store.failure_events(record.namespace, open_only=True):
            taken[e.name] = e
        taken.pop(record.name, None)
        others = [e for e in taken.values() if e.status.reserved_hosts]
        return {
            h.nova_host
            for h in hosts.values()
            if h.spec.reserved and reserved_by(h, others) is not None
        }

    async def _recent_restarts(self, record: EventRecord, segment: FailoverSegmentSpec) -> int:
        window = timedelta(seconds=segment.instance_failure.restart_window_seconds)
        since = record.spec.generated_time - window
        instance = record.spec.payload.instance_uuid
        if not instance:
            return 0
        return sum(
            1
            for e in await self.store.failure_events(record.namespace, instance=instance)
            if e.name != record.name
            and e.spec.type == FailureType.VM
            and e.spec.generated_time >= since
            and e.status.reason == "Recovered"
        )

    async def _end(
        self,
        record: EventRecord,
        outcome: Outcome,
        status: FailureEventStatus | None = None,
        segment: FailoverSegmentSpec | None = None,
    ) -> None:
        status = (status or record.status).model_copy(deep=True)
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


async def _none() -> list[HostRecord]:
    return []


def _first(group: BaseExceptionGroup[NotRecorded]) -> NotRecorded:
    leaf: NotRecorded | BaseExceptionGroup[NotRecorded] = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    return leaf


def _segment_targets(failed: HostRecord, hosts: dict[str, HostRecord]) -> list[str]:
    """The segment's hosts a placement plan may send instances to: not reserved (the reserved
    methods take those), not on maintenance, not failed or being recovered. Nova's view of
    their services is checked by the recovery itself."""
    return sorted(
        h.nova_host
        for h in hosts.values()
        if h.spec.segment == failed.spec.segment
        and h.name != failed.name
        and not h.spec.reserved
        and not h.spec.on_maintenance
        and h.status.phase not in (HostPhase.FAILED, HostPhase.RECOVERING)
    )
