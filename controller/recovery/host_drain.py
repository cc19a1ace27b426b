"""Maintenance drains: a host on maintenance emptied by migration, beside the host pass.

The host pass (recovery.host_sync) asks `Drains.reconcile` after planning each host; the
decisions are controller.recovery.drain's. One task per draining host starts migrations (live
ones, and cold ones for stopped instances where the segment says so) within the segment's
bounds and follows each until Nova lands it elsewhere or says it failed. A cold migration Nova
landed (VERIFY_RESIZE) is confirmed by the drain, once: after that Nova's record is no longer
"finished", and only a "finished" one is confirmed.

Crash safety is the recovery's: every move is written to the Host's `status.drain` (ongoing,
its attempt counted, its start time) before Nova is asked, and before asking again (a resumed
drain, a retry after a timeout) Nova's migration records are read: a migration still running,
of either kind, is followed, never started a second time.

A start holds the host's lock (HostLocks, shared with recoveries) for the write and the call
only: a recovery of the host waits seconds at most, and once it holds the lock nothing more
starts. What runs then is followed to its end; the rest is the recovery's (`HandedOver`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from controller.recovery import drain as decide
from controller.recovery.drain import Next, Slots, Want
from controller.recovery.nova import NotFound, NovaError, Server
from controller.recovery.ports import DrainSignals, HostStore, Nova
from controller.recovery.progress import utcnow
from controller.resources.host import (
    DrainMove,
    DrainMoveStatus,
    DrainPhase,
    DrainStatus,
    MigrationKind,
)
from controller.resources.segment import MaintenancePolicy

if TYPE_CHECKING:  # host_sync runs the drains: it imports this module
    from controller.recovery.host_sync import HostLocks

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # between reads of a live migration's server and records
LOCK_PATIENCE = 5.0  # a start waits this long for the host's lock, then tries later
STOP_TIMEOUT = 120.0  # LiveMigrateOrStop: how long an instance may take to stop


@dataclass
class _Run:
    namespace: str
    host: str
    nova_host: str
    segment: str
    nova: Nova
    policy: MaintenancePolicy
    drain: DrainStatus
    want: Want = Want.DRAIN
    moves: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    write: asyncio.Lock = field(default_factory=asyncio.Lock)
    changes: int = 0  # changes to `drain` asked to be written, counted
    written: int = 0  # how many of them the last write carried
    publishing: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Drains:
    store: HostStore
    signals: DrainSignals
    locks: HostLocks
    clock: Callable[[], datetime] = utcnow
    poll_interval: float = POLL_INTERVAL
    _runs: dict[tuple[str, str], _Run] = field(default_factory=dict)
    _tasks: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    # The start of each host's last drain run here: a Host read before that run's last write
    # still shows it Draining, and must not resume it.
    _ended: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def reconcile(
        self,
        namespace: str,
        host: str,
        nova_host: str,
        segment: str,
        view: decide.HostView,
        policy: MaintenancePolicy | None,
        nova: Nova,
    ) -> Want:
        """Start, resume, stop or hand over the host's drain, as `drain.wanted` says. Never
        waits: the drain runs in a task of its own."""
        key = (namespace, host)
        run = self._runs.get(key)
        if run is not None:
            want = decide.wanted(_live(view, run.drain), policy)
            if want in (Want.STOP, Want.HAND_OVER) and run.want == Want.DRAIN:
                run.want = want
            return want
        draining = view.drain is not None and view.drain.phase == DrainPhase.DRAINING
        if draining and view.drain and self._ended.get(key) == view.drain.start_time:
            return Want.NOTHING
        want = decide.wanted(view, policy)
        if draining and view.drain is not None:
            # Resumed after a restart: to go on, or to stop and follow what still runs.
            started: DrainStatus | None = view.drain.model_copy(deep=True)
            running_policy = _policy_of(view.drain, policy)
        elif want == Want.DRAIN and policy is not None:
            started, running_policy = None, policy
        else:
            return want
        run = _Run(namespace, host, nova_host, segment, nova, running_policy, started or _EMPTY)
        run.want = want
        self._runs[key] = run
        self._tasks[key] = asyncio.create_task(self._drive(run, fresh=started is None))
        return want

    def ongoing_in_segment(self, namespace: str, segment: str) -> int:
        return sum(
            len(run.moves)
            for run in self._runs.values()
            if (run.namespace, run.segment) == (namespace, segment)
        )

    def running(self, namespace: str, host: str) -> bool:
        return (namespace, host) in self._runs

    def close(self) -> None:
        """The operator stops: the drains stop following. Their status says where each move
        was, and the next leader resumes them from it."""
        for task in list(self._tasks.values()):
            task.cancel()

    # --- one drain --------------------------------------------------------------------------

    async def _drive(self, run: _Run, fresh: bool) -> None:
        key = (run.namespace, run.host)
        self.signals.running(1)
        try:
            if fresh:
                servers = await run.nova.servers_on_host(run.nova_host)
                run.drain = decide.begin(servers, run.policy, self.clock())
                await self._write(run)
                self.signals.drain(run.namespace, run.host, "DrainStarted", _summary(run), False)
            await self._loop(run)
        except NovaError as error:
            # Nova unreachable: the drain stays Draining and the next pass resumes it.
            log.warning("drain of %s: %s", run.host, error)
            self.signals.unreachable("nova", error)
        except Exception as error:  # kept visible; the next pass resumes from status
            log.exception("drain of %s failed", run.host)
            self.signals.unreachable("kubernetes", error)
        finally:
            for task in [*run.moves.values(), *run.publishing]:
                task.cancel()
            self._runs.pop(key, None)
            self._tasks.pop(key, None)
            self._ended[key] = run.drain.start_time
            self.signals.running(-1)

    async def _loop(self, run: _Run) -> None:
        # Bounded: every round either starts a move, waits for one, or ends; each move has at
        # most `attempts` tries of `instance_timeout_seconds`.
        per_move = run.policy.attempts * (run.policy.instance_timeout_seconds + 60)
        rounds = int(len(run.drain.instances) * per_move / self.poll_interval) + 100
        for _ in range(rounds):
            for move in self._resumed(run):
                self._start(run, move)
            if run.want != Want.DRAIN:
                why = "maintenance ended" if run.want == Want.STOP else "the host failed"
                decide.cancel_pending(run.drain, why, self.clock())
            else:
                slots = Slots(
                    run.policy.concurrency_per_host,
                    run.policy.concurrency_per_segment,
                    self.ongoing_in_segment(run.namespace, run.segment),
                )
                for instance in decide.next_moves(run.drain, slots, run.moves):
                    self._start(run, _move(run.drain, instance))
            if not run.moves and decide.outcome(run.drain) is not None:
                break
            waiting = list(run.moves.values())
            if waiting:
                # The first to end frees a slot: the next instance starts at once.
                await asyncio.wait(
                    waiting, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
                )
            else:
                await asyncio.sleep(self.poll_interval)
        await self._end(run)

    def _resumed(self, run: _Run) -> list[DrainMove]:
        """Moves recorded ongoing by an earlier run, not followed by this one yet."""
        return [
            m
            for m in run.drain.instances
            if m.status == DrainMoveStatus.ONGOING and m.instance_uuid not in run.moves
        ]

    def _start(self, run: _Run, move: DrainMove) -> None:
        task = asyncio.create_task(self._one(run, move))
        run.moves[move.instance_uuid] = task
        task.add_done_callback(lambda _: run.moves.pop(move.instance_uuid, None))

    async def _end(self, run: _Run) -> None:
        phase = decide.outcome(run.drain)
        if run.want == Want.STOP:
            phase = DrainPhase.STOPPED
        elif run.want == Want.HAND_OVER:
            phase = DrainPhase.HANDED_OVER
        if phase is None:
            return  # out of rounds with moves open: the next pass resumes it
        run.drain.phase, run.drain.end_time = phase, self.clock()
        await self._write(run)
        # Landed moves still being published: carried by this write, their signals follow it.
        await asyncio.gather(*run.publishing, return_exceptions=True)
        warning = phase in (DrainPhase.INCOMPLETE, DrainPhase.HANDED_OVER)
        self.signals.drain(run.namespace, run.host, f"Drain{phase}", _summary(run), warning)

    async def _write(self, run: _Run) -> None:
        await self._carry(run, _changed(run))

    async def _carry(self, run: _Run, change: int) -> None:
        """Make the drain durable as it was at `change`, at least. A write is whole, so one
        that begins after a change carries it: moves that end or ask together share one."""
        async with run.write:
            if run.written >= change:
                return
            carried = run.changes
            await self.store.write_host_drain(run.namespace, run.host, run.drain)
            run.written = max(run.written, carried)

    def _publish(self, run: _Run, then: Callable[[], None]) -> None:
        """Write soon without holding up the next move, then `then` (the move's signals): for
        an end a resumed drain finds again in Nova, a landed move, whose slot is free at once."""
        change = _changed(run)

        async def publish() -> None:
            try:
                # Left a poll for the next move's write-ahead, which carries it: one status
                # write per move, not two.
                await asyncio.sleep(self.poll_interval)
                await self._carry(run, change)
            except Exception as error:  # the drain's next write carries it
                log.warning("drain of %s: status write: %s", run.host, error)
                self.signals.unreachable("kubernetes", error)
            then()

        task = asyncio.create_task(publish())
        run.publishing.add(task)
        task.add_done_callback(run.publishing.discard)

    # --- one instance -----------------------------------------------------------------------

    async def _one(self, run: _Run, move: DrainMove) -> None:
        try:
            await self._attempt(run, move)
        except NovaError as error:  # the move stays as written; the next round takes it up
            log.warning("drain of %s: %s: %s", run.host, move.instance_uuid, error)
            self.signals.unreachable("nova", error)
            await asyncio.sleep(self.poll_interval)
        except Exception as error:  # a status write: likewise, Nova is asked again only after
            log.warning("drain of %s: %s: %s", run.host, move.instance_uuid, error)
            self.signals.unreachable("kubernetes", error)
            await asyncio.sleep(self.poll_interval)

    async def _attempt(self, run: _Run, move: DrainMove) -> None:
        """One attempt: started (or resumed) and followed to its end."""
        if self._handing_over(run):  # resumed after the host failed: Nova is only read
            await self._handed_over(run, move)
            return
        try:
            server = await run.nova.server(move.instance_uuid)
        except NotFound:
            await self._finish(run, move, DrainMoveStatus.GONE, None, "deleted")
            return
        ongoing = move.status == DrainMoveStatus.ONGOING
        # Off the host and settled; a cold migration of this move's still to be confirmed.
        if _settled_off(server, run) and not (ongoing and server.vm_state == "resized"):
            if ongoing:
                self._landed(run, move, server.host)
            else:
                await self._finish(run, move, DrainMoveStatus.GONE, None, f"on {server.host}")
            return
        # A first attempt has nothing of this drain's in flight (another's shows in the
        # server's task state): one Nova read less per instance, measured on real Nova.
        asked = move.attempts > 0 or ongoing
        migrations = await run.nova.migrations(move.instance_uuid) if asked else []
        if not decide.in_flight(server, move, migrations):
            if ongoing:
                failure = decide.attempt_failed(server, move, migrations)
                if failure is not None:  # ended while no one followed it
                    await self._failed(run, move, failure)
                    return
            kind = decide.kind_for(server, run.policy)
            if kind is None:
                why = decide.left_because(server)
                await self._finish(run, move, DrainMoveStatus.LEFT, None, why)
                return
            move.kind = kind  # started or stopped since the drain began: written with the ask
            refused = await self._ask(run, move)
            if refused:
                await self._failed(run, move, refused)
            if refused is not None:
                return
        elif move.status == DrainMoveStatus.PENDING:
            # A retry finds the attempt that timed out still running: this attempt waits for
            # it, counted, with a bound of its own (counted from its start, the migration's
            # stays for Nova's records). Failing at once again spun without a pause.
            move.status, move.attempts = DrainMoveStatus.ONGOING, move.attempts + 1
            await self._write(run)
            await self._follow(run, move, since=self.clock())
            return
        await self._follow(run, move)

    async def _ask(self, run: _Run, move: DrainMove) -> str | None:
        """Write ahead, then ask Nova, let in under the host's lock (other moves ask at the
        same time, a recovery waits for it). None when asked; "" when not asked (a recovery
        took the host, the drain stops, the lock is busy); Nova's refusal."""
        if self._handing_over(run):
            return ""
        epoch = self.locks.epoch

        def may() -> bool:
            # A recovery that ran while this waited for the lock took the host out.
            if self.locks.recovered_since(run.namespace, run.host, epoch):
                run.want = Want.HAND_OVER
            return run.want == Want.DRAIN

        async with self.locks.asking(run.namespace, run.host, LOCK_PATIENCE, may) as let_in:
            if not let_in:
                return ""  # the next round tries again, or the drain ends
            move.status, move.attempts = DrainMoveStatus.ONGOING, move.attempts + 1
            move.start_time, move.end_time, move.message = self.clock(), None, None
            await self._write(run)
            try:
                if move.kind == MigrationKind.COLD:
                    await run.nova.cold_migrate(move.instance_uuid)
                else:
                    await run.nova.live_migrate(move.instance_uuid)
            except NovaError as error:
                return str(error)
            return None

    async def _follow(self, run: _Run, move: DrainMove, since: datetime | None = None) -> None:
        loop = asyncio.get_running_loop()
        started = since or move.start_time or self.clock()
        elapsed = (self.clock() - started).total_seconds()
        deadline = loop.time() + max(run.policy.instance_timeout_seconds - elapsed, 0)
        while loop.time() < deadline:
            await asyncio.sleep(self.poll_interval)
            if self._handing_over(run):
                await self._handed_over(run, move)
                return
            try:
                server: Server = await run.nova.server(move.instance_uuid)
            except NotFound:
                await self._finish(run, move, DrainMoveStatus.GONE, None, "deleted")
                return
            if _settled_off(server, run) and server.vm_state != "resized":
                self._landed(run, move, server.host)
                return
            if server.task_state is None:
                migrations = await run.nova.migrations(move.instance_uuid)
                if decide.to_confirm(server, move, migrations):
                    # The record leaves "finished" with this call: never confirmed twice.
                    await run.nova.confirm_resize(move.instance_uuid)
                    continue
                failure = decide.attempt_failed(server, move, migrations)
                if failure is not None:
                    await self._failed(run, move, failure)
                    return
        timeout = run.policy.instance_timeout_seconds
        # Not aborted: the next attempt asks Nova first and follows it if it still runs.
        await self._failed(run, move, f"not landed within {timeout}s")

    def _handing_over(self, run: _Run) -> bool:
        """Has a recovery taken the host? Seen at once from its lock, not at the next host
        pass: from then on the drain asks Nova for nothing, and an instance that leaves the
        host may be the recovery's evacuation, not this drain's live migration."""
        if self.locks.recovering(run.namespace, run.host):
            run.want = Want.HAND_OVER
        return run.want == Want.HAND_OVER

    async def _handed_over(self, run: _Run, move: DrainMove) -> None:
        """The host failed under a migration: landed if Nova completed it (a cold one once
        on its destination, confirmed or not: the disk is there, the guest never ran on both),
        otherwise the instance is its recovery's, which may have to evacuate it
        (recovery.handover)."""
        for m in await run.nova.migrations(move.instance_uuid):
            since = (move.start_time or self.clock()) - decide.CLOCK_SKEW
            recent = m.created_at is not None and m.created_at >= since
            ours = recent and m.migration_type == decide.MIGRATION_TYPE[move.kind]
            if ours and m.status in decide.LANDED[move.kind]:
                why = _unconfirmed(m.status, run.host)
                await self._finish(run, move, DrainMoveStatus.SUCCEEDED, m.dest_host, why)
                return
        why = f"the host failed during its {move.kind} migration: left to the recovery"
        await self._finish(run, move, DrainMoveStatus.CANCELLED, None, why)

    async def _failed(self, run: _Run, move: DrainMove, why: str) -> None:
        self.signals.drain_move("attempt_failed", None)
        following = not self._handing_over(run) and run.want == Want.DRAIN
        step = decide.after_failure(move, run.policy) if following else Next.GIVE_UP
        if step == Next.RETRY:
            move.status, move.message = DrainMoveStatus.PENDING, f"attempt {move.attempts}: {why}"
            await self._write(run)
            return
        if step == Next.STOP_INSTANCE and await self._stop_instance(run, move):
            await self._finish(run, move, DrainMoveStatus.STOPPED, None, why)
            return
        await self._finish(run, move, DrainMoveStatus.FAILED, None, why)
        self.signals.drain(
            run.namespace, run.host, "DrainMoveFailed", f"{move.instance_uuid}: {why}", True
        )

    async def _stop_instance(self, run: _Run, move: DrainMove) -> bool:
        try:
            await run.nova.stop_server(move.instance_uuid)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + STOP_TIMEOUT
            while loop.time() < deadline:
                await asyncio.sleep(self.poll_interval)
                server = await run.nova.server(move.instance_uuid)
                if server.vm_state == "stopped" and server.task_state is None:
                    return True
        except NovaError as error:
            log.warning("drain of %s: stopping %s: %s", run.host, move.instance_uuid, error)
        return False

    async def _finish(
        self,
        run: _Run,
        move: DrainMove,
        status: DrainMoveStatus,
        destination: str | None,
        message: str | None,
    ) -> None:
        self._ended_as(move, status, destination, message)
        await self._write(run)
        self.signals.drain_move(str(status), _seconds(move))

    def _landed(self, run: _Run, move: DrainMove, destination: str | None) -> None:
        """Settled on `destination`: recorded without waiting, so the next instance starts at
        once. Safe unwritten: a drain resumed from the ongoing move reads the server settled
        off the host and records it again; counted once it is written, for the same reason."""
        self._ended_as(move, DrainMoveStatus.SUCCEEDED, destination, None)
        self._publish(run, lambda: self.signals.drain_move(str(move.status), _seconds(move)))

    def _ended_as(
        self,
        move: DrainMove,
        status: DrainMoveStatus,
        destination: str | None,
        message: str | None,
    ) -> None:
        move.status, move.destination, move.message = status, destination, message
        move.end_time = self.clock()


def _seconds(move: DrainMove) -> float | None:
    """A landed live migration's duration, for the histogram: a cold one copies a disk,
    another scale."""
    live = move.kind == MigrationKind.LIVE
    start, end = move.start_time, move.end_time
    if move.status == DrainMoveStatus.SUCCEEDED and live and start and end:
        return (end - start).total_seconds()
    return None


def _changed(run: _Run) -> int:
    """Count a change of the drain made in memory: the writes that begin after it carry it."""
    run.changes += 1
    return run.changes


_EMPTY = DrainStatus(phase=DrainPhase.DRAINING, mode="None", start_time=datetime.min)


def _live(view: decide.HostView, drain: DrainStatus) -> decide.HostView:
    """The view with the drain this process runs (the Host's status may lag behind it)."""
    return decide.HostView(
        view.on_maintenance, view.phase, view.service, view.recovering, drain,
        view.maintenance_since,
    )  # fmt: skip


def _policy_of(drain: DrainStatus, policy: MaintenancePolicy | None) -> MaintenancePolicy:
    """A resumed drain keeps its mode; bounds and timeouts are the segment's current ones."""
    base = policy or MaintenancePolicy()
    return base.model_copy(update={"drain": drain.mode})


def _settled_off(server: Server, run: _Run) -> bool:
    return server.host != run.nova_host and server.task_state is None


def _unconfirmed(status: str, host: str) -> str | None:
    """Nova confirms a resize on its source: with the source dead, it waits for it."""
    if status in ("finished", "confirming"):
        return f"cold-migrated, its resize not confirmed: confirm it once {host} is back"
    return None


def _move(drain: DrainStatus, instance: str) -> DrainMove:
    return next(m for m in drain.instances if m.instance_uuid == instance)


def _summary(run: _Run) -> str:
    counts: dict[str, int] = {}
    for move in run.drain.instances:
        counts[str(move.status)] = counts.get(str(move.status), 0) + 1
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"{run.drain.phase}: {len(run.drain.instances)} instances ({parts or 'none'})"
