"""Process failure: nova-compute stopped takes the host out of the scheduler, started puts it
back, but only if this operator was the one that took it out. Other processes are recorded."""

from __future__ import annotations

from dataclasses import dataclass

from controller.recovery.nova import NovaError
from controller.recovery.outcome import Outcome
from controller.recovery.ports import Nova
from controller.recovery.progress import Progress
from controller.resources.failure_event import StepState

DISABLE = "DisableComputeNodeTask"
ENABLE = "EnableComputeNodeTask"
REASON_PREFIX = "masakari-operator: nova-compute stopped"


@dataclass
class ProcessFailure:
    event: str
    host: str  # nova-compute service host
    process: str
    stopped: bool  # STOPPED, else STARTED
    nova: Nova
    progress: Progress
    may_enable: bool = True  # false when the host is reserved, on maintenance or failed

    async def run(self) -> Outcome:
        if self.process != "nova-compute":
            state = "stopped" if self.stopped else "started"
            return Outcome.finished("Recorded", f"{self.process} {state}; nothing to do")
        try:
            if self.stopped:
                return await self._disable()
            return await self._enable()
        except NovaError as error:
            return Outcome.error("ProcessRecoveryFailed", str(error))

    async def _disable(self) -> Outcome:
        await self.progress.begin(DISABLE, f"disabling nova-compute on {self.host}")
        service = await self.nova.compute_service(self.host)
        if service.is_enabled:
            service = await self.nova.disable_service(self.host, f"{REASON_PREFIX} ({self.event})")
        await self.progress.end(DISABLE, StepState.SUCCESS, "compute service disabled")
        return Outcome.finished("ComputeServiceDisabled", f"{self.host} out of the scheduler")

    async def _enable(self) -> Outcome:
        service = await self.nova.compute_service(self.host)
        ours = (service.disabled_reason or "").startswith(REASON_PREFIX)
        begun = any(
            s.name == ENABLE and s.state == StepState.RUNNING for s in self.progress.status.steps
        )
        if service.is_enabled and begun:
            # Resumed after a restart between the enable call and the write of its end: the
            # service is enabled by this recovery, not found so.
            return await self._enabled()
        if service.is_enabled or not ours or not self.may_enable:
            why = (
                "already enabled"
                if service.is_enabled
                else "kept disabled: the host is reserved, on maintenance or failed"
                if ours
                else "disabled by someone else; left as it is"
            )
            return Outcome.finished("Recorded", f"nova-compute started on {self.host}: {why}")
        await self.progress.begin(ENABLE, f"enabling nova-compute on {self.host}")
        await self.nova.enable_service(self.host)
        return await self._enabled()

    async def _enabled(self) -> Outcome:
        await self.progress.end(ENABLE, StepState.SUCCESS, "compute service enabled")
        return Outcome.finished("ComputeServiceEnabled", f"{self.host} back in the scheduler")
