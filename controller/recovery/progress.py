"""A recovery's progress, written to the FailureEvent's status before the next action starts.

Writing ahead is what makes recoveries resumable: an instance is marked `ongoing` (and the
attempt counted) before Nova is asked to evacuate it, so after a crash the workflow knows to
look at Nova's migration records instead of evacuating a second time. Only those writes are
waited for: a step that only reads (listing the instances) or whose result the next write
carries (a fencing confirmed, a service taken out) is not written on its own, so the first
evacuate call follows the admission by three writes (admission, the service about to be taken
out with the fencing proof, the first moves), not ten.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from controller.resources.failure_event import (
    STEP_DETAILS_LIMIT,
    FailureEventStatus,
    InstanceMove,
    ProgressDetail,
    StepState,
    WorkflowStep,
)

Persist = Callable[[FailureEventStatus], Awaitable[None]]


class NotRecorded(Exception):
    """The cluster refused to store a status write for a reason a retry within seconds does
    not cure: etcd out of space (EtcdSpaceExceeded), the object past the size etcd takes
    (StatusTooLarge), or the schema refused it (StatusRefused). The Store raises it; since
    nothing acts before its progress is recorded, the recovery waits, saying why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def utcnow() -> datetime:
    return datetime.now(UTC)


class Progress:
    """The status being built, and the one writer that persists it.

    Concurrent evacuations call save() often; saves are coalesced so that each caller returns
    once a write containing its change has completed (and no later), with one write in flight
    at a time.
    """

    def __init__(
        self,
        status: FailureEventStatus,
        persist: Persist,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.status = status
        self._persist = persist
        self.clock = clock
        self._wanted = 0
        self._begun = 0  # the last change the write begun last carries
        self._written = 0
        self._writing = False
        self._changed = asyncio.Condition()

    async def save(self, within: float = 0.0) -> None:
        """Return once a write holding the caller's change has completed. `within`: how long
        the change may wait for a write begun by another caller to carry it before it starts
        its own (a move's end, which nothing waits on, and the next move's write-ahead,
        which its evacuate call waits on, in one patch)."""
        self._wanted += 1
        mine = self._wanted
        if within > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(within), self._changed:
                    await self._changed.wait_for(lambda: self._begun >= mine)
        # One turn of the loop before the write: the moves starting at the same moment mark
        # themselves first, and one patch carries all their write-aheads (the first of them
        # went out alone, and every other one waited for a second write).
        await asyncio.sleep(0)
        async with self._changed:
            while self._writing and self._written < mine:
                await self._changed.wait()
            if self._written >= mine:
                return
            self._writing = True
            # One write, of everything wanted so far, then the writer returns: the saves that
            # came in meanwhile are written by the next of them, not by this caller (which
            # kept on writing for the others and held its own evacuate call back by a write
            # or more).
            target = self._begun = self._wanted
            self._changed.notify_all()  # the changes waiting for a write to carry them
        try:
            await self._persist(self.status.model_copy(deep=True))
            self._written = max(self._written, target)
        finally:
            async with self._changed:
                self._writing = False
                self._changed.notify_all()

    def step(self, name: str) -> WorkflowStep:
        for step in self.status.steps:
            if step.name == name:
                return step
        step = WorkflowStep(name=name, state=StepState.PENDING)
        self.status.steps.append(step)
        return step

    def done(self, name: str) -> bool:
        return self.step(name).state in (StepState.SUCCESS, StepState.SKIPPED)

    def note(self, name: str, message: str, progress: float | None = None) -> None:
        step = self.step(name)
        if progress is not None:
            step.progress = max(0.0, min(1.0, progress))
        step.progress_details.append(
            ProgressDetail(timestamp=self.clock(), message=message, progress=step.progress)
        )
        del step.progress_details[:-STEP_DETAILS_LIMIT]

    async def begin(self, name: str, message: str, persist: bool = True) -> None:
        """`persist=False` where no action follows that a restart would need to know of: the
        change goes out with the next write, and the recovery does not wait for one."""
        self.step(name).state = StepState.RUNNING
        self.note(name, message, 0.0)
        if persist:
            await self.save()

    async def end(self, name: str, state: StepState, message: str, persist: bool = True) -> None:
        step = self.step(name)
        step.state = state
        self.note(name, message, 1.0 if state != StepState.FAILURE else step.progress)
        if persist:
            await self.save()

    def move(self, instance_uuid: str) -> InstanceMove | None:
        for move in self.status.instances:
            if move.instance_uuid == instance_uuid:
                return move
        return None
