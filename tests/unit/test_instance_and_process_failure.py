"""Instance restarts and nova-compute process failures against an in-memory Nova."""

from __future__ import annotations

import asyncio
import dataclasses

from controller.recovery.instance_failure import InstanceFailure
from controller.recovery.outcome import Outcome
from controller.recovery.process_failure import ENABLE, REASON_PREFIX, ProcessFailure
from controller.recovery.progress import Progress
from controller.resources.failure_event import FailureEventStatus, StepState
from controller.resources.segment import InstanceFailurePolicy
from tests.unit.fake_nova import FakeNova


async def _store(_: FailureEventStatus) -> None:
    return None


def restart(nova: FakeNova, name: str, recent: int = 0, **policy: object) -> Outcome:
    failure = InstanceFailure(
        event="ev",
        instance_id=f"uuid-{name}",
        policy=InstanceFailurePolicy.model_validate(policy),
        nova=nova,  # type: ignore[arg-type]
        progress=Progress(FailureEventStatus(), _store),
        recent_restarts=recent,
    )
    return asyncio.run(failure.run())


def test_ha_enabled_instance_is_stopped_and_started() -> None:
    nova = FakeNova(["h1"])
    nova.add_server("vm", "h1", metadata={"HA_Enabled": "True"})
    outcome = restart(nova, "vm")
    assert (outcome.phase, outcome.reason) == ("Finished", "Recovered")
    assert [c[0] for c in nova.calls if c[0] != "server"] == ["stop_server", "start_server"]
    assert nova.servers["uuid-vm"].vm_state == "active"


def test_plain_instance_is_left_alone_unless_all_are_processed() -> None:
    nova = FakeNova(["h1"])
    nova.add_server("vm", "h1")
    assert restart(nova, "vm").reason == "NotHAEnabled"
    assert not [c for c in nova.calls if c[0] != "server"]
    assert restart(nova, "vm", processAllInstances=True).reason == "Recovered"


def test_restart_rate_limit_and_unrecoverable_states() -> None:
    nova = FakeNova(["h1"])
    nova.add_server("vm", "h1", metadata={"HA_Enabled": "True"})
    assert restart(nova, "vm", recent=3, maxRestarts=3).reason == "RestartLimitReached"
    nova.add_server("paused", "h1", vm_state="paused", metadata={"HA_Enabled": "True"})
    assert restart(nova, "paused").phase == "Ignored"
    assert restart(nova, "gone").reason == "InstanceNotFound"


def process(
    nova: FakeNova,
    stopped: bool,
    name: str = "nova-compute",
    may_enable: bool = True,
    status: FailureEventStatus | None = None,
) -> Outcome:
    failure = ProcessFailure(
        event="ev",
        host="h1",
        process=name,
        stopped=stopped,
        nova=nova,  # type: ignore[arg-type]
        progress=Progress(status or FailureEventStatus(), _store),
        may_enable=may_enable,
    )
    return asyncio.run(failure.run())


def test_nova_compute_stopped_then_started() -> None:
    nova = FakeNova(["h1"])
    assert process(nova, stopped=True).reason == "ComputeServiceDisabled"
    assert nova.services["h1"].disabled_reason.startswith(REASON_PREFIX)  # type: ignore[union-attr]
    assert process(nova, stopped=False, may_enable=False).reason == "Recorded"
    assert nova.services["h1"].status == "disabled"
    assert process(nova, stopped=False).reason == "ComputeServiceEnabled"
    assert nova.services["h1"].status == "enabled"


def test_started_resumed_after_the_enable_call_ends_its_step() -> None:
    """The operator killed between enabling the service and writing that it did: the resumed
    recovery finds the service enabled. That is its own doing (the step was begun), not a
    service someone else left enabled: it ends the step and says it enabled the service."""
    nova = FakeNova(["h1"])
    status = FailureEventStatus()
    progress = Progress(status, _store)
    asyncio.run(progress.begin(ENABLE, "enabling nova-compute on h1"))
    # The service as the killed run left it: enabled, by its call.
    assert nova.services["h1"].status == "enabled"
    outcome = process(nova, stopped=False, status=status)
    assert (outcome.phase, outcome.reason) == ("Finished", "ComputeServiceEnabled"), outcome
    [step] = status.steps
    assert (step.name, step.state) == (ENABLE, StepState.SUCCESS), step


def test_started_leaves_a_service_someone_else_disabled() -> None:
    nova = FakeNova(["h1"])
    nova.services["h1"] = dataclasses.replace(
        nova.services["h1"], status="disabled", disabled_reason="kernel upgrade"
    )
    assert process(nova, stopped=False).reason == "Recorded"
    assert nova.services["h1"].status == "disabled"


def test_other_processes_are_recorded_only() -> None:
    nova = FakeNova(["h1"])
    assert process(nova, stopped=True, name="libvirtd").reason == "Recorded"
    assert nova.calls == []
