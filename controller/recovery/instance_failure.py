"""Instance failure recovery: restart a crashed instance on its own host (stop, start, confirm).

Masakari's flow and task names. A restart rate limit per instance keeps a crash loop from
becoming a restart storm; the count comes from the instance's earlier FailureEvents.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from controller.recovery.host_failure import Timing, wait_for_vm_state
from controller.recovery.instances import flag
from controller.recovery.nova import Conflict, NotFound, NovaError
from controller.recovery.outcome import Outcome
from controller.recovery.ports import Nova
from controller.recovery.progress import Progress
from controller.resources.failure_event import StepState
from controller.resources.segment import InstanceFailurePolicy

STOP = "StopInstanceTask"
START = "StartInstanceTask"
CONFIRM = "ConfirmInstanceActiveTask"
# Masakari's wait_period_after_power_off and wait_period_after_power_on.
POWER_OFF_TIMEOUT = 180.0
POWER_ON_TIMEOUT = 60.0


@dataclass
class InstanceFailure:
    event: str
    instance_id: str
    policy: InstanceFailurePolicy
    nova: Nova
    progress: Progress
    recent_restarts: int = 0  # restarts of this instance within policy.restart_window_seconds
    timing: Timing = field(default_factory=Timing)

    async def run(self) -> Outcome:
        try:
            return await self._recover()
        except NotFound:
            return Outcome.ignored("InstanceNotFound", f"no instance {self.instance_id}")
        except (NovaError, TimeoutError) as error:
            return Outcome.error("InstanceRecoveryFailed", str(error))

    async def _recover(self) -> Outcome:
        server = await self.nova.server(self.instance_id)
        if not self.progress.done(STOP):
            if not (
                self.policy.process_all_instances
                or flag(server.metadata, self.policy.ha_enabled_metadata_key)
            ):
                return Outcome.finished(
                    "NotHAEnabled",
                    f"{server.name} is not HA-enabled ({self.policy.ha_enabled_metadata_key})",
                )
            if server.vm_state in ("paused", "rescued"):
                return Outcome.ignored(
                    "InstanceNotRecoverable", f"{server.name} is {server.vm_state}"
                )
            if self.recent_restarts >= self.policy.max_restarts:
                return Outcome.ignored(
                    "RestartLimitReached",
                    f"{server.name} was restarted {self.recent_restarts} time(s) in the last "
                    f"{self.policy.restart_window_seconds}s",
                )
            await self.progress.begin(STOP, f"stopping {server.name}")
            if server.vm_state == "resized":
                await self.nova.reset_state(server.id, "active")
            if server.vm_state != "stopped":
                # Conflict: already stopping or stopped (LP#1782517); the wait below decides.
                with contextlib.suppress(Conflict):
                    await self.nova.stop_server(server.id)
            await wait_for_vm_state(self.nova, server.id, "stopped", POWER_OFF_TIMEOUT, self.timing)
            await self.progress.end(STOP, StepState.SUCCESS, f"{server.name} stopped")
        if not self.progress.done(START):
            await self.progress.begin(START, "starting")
            current = await self.nova.server(self.instance_id)
            if current.vm_state == "stopped":
                await self.nova.start_server(current.id)
            await self.progress.end(START, StepState.SUCCESS, "start requested")
        await self.progress.begin(CONFIRM, "waiting for ACTIVE")
        await wait_for_vm_state(
            self.nova, self.instance_id, "active", POWER_ON_TIMEOUT, self.timing
        )
        await self.progress.end(CONFIRM, StepState.SUCCESS, "instance is ACTIVE")
        return Outcome.finished("Recovered", f"{server.name} restarted on {server.host}")
