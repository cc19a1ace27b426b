"""CloudBinding handlers: a changed binding is read again at once, and every binding of the
namespace says in its `Ready` condition whether the namespace is bound, or why not."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import BoundCloud, KubeClouds, Unbound
from controller.drivers.kube import PLURAL, Gone
from controller.handlers import detection
from controller.handlers.runtime import Runtime, runtime_of
from controller.handlers.signals import reference
from controller.recovery.progress import utcnow
from controller.resources.cloud_binding import CLOUD_BOUND, READY, CloudBindingStatus
from controller.resources.common import (
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    set_condition,
)

log = logging.getLogger("masakari.clouds")
INTERVAL = OperatorConfig.from_environment().binding_resync_interval


async def resolve(clouds: KubeClouds, namespace: str) -> BoundCloud | Unbound:
    """The namespace's cloud, or why it has none."""
    try:
        return await clouds.bound(namespace)
    except Unbound as why:
        return why


def mark_cloud_bound(
    conditions: list[Condition], outcome: BoundCloud | Unbound, now: datetime, generation: int
) -> None:
    """The `CloudBound` condition of a segment or host of the namespace."""
    if isinstance(outcome, Unbound):
        message = f"{outcome}; nothing in this namespace is acted on"
        set_condition(conditions, CLOUD_BOUND, False, outcome.reason, message, now, generation)
    else:
        message = f"bound to {outcome.description} by CloudBinding {outcome.binding.name}"
        set_condition(conditions, CLOUD_BOUND, True, "Bound", message, now, generation)


def marker(outcome: BoundCloud | Unbound) -> Callable[[list[Condition], datetime, int], None]:
    """`mark_cloud_bound` with the namespace's outcome, for the host sync."""

    def mark(conditions: list[Condition], now: datetime, generation: int) -> None:
        mark_cloud_bound(conditions, outcome, now, generation)

    return mark


def binding_status(
    previous: CloudBindingStatus,
    name: str,
    outcome: BoundCloud | Unbound,
    now: datetime,
    generation: int,
) -> CloudBindingStatus:
    status = previous.model_copy(deep=True)
    status.observed_generation = generation
    if isinstance(outcome, Unbound):
        status.secret_resource_version = None
        set_condition(
            status.conditions, READY, False, outcome.reason, str(outcome), now, generation
        )
    elif outcome.binding.name != name:  # listed a moment before another one replaced it
        status.secret_resource_version = None
        message = f"the namespace is bound by CloudBinding {outcome.binding.name}"
        set_condition(status.conditions, READY, False, "NotInUse", message, now, generation)
    else:
        status.secret_resource_version = outcome.secret_version
        message = f"the namespace is bound to {outcome.description}"
        set_condition(status.conditions, READY, True, "Bound", message, now, generation)
    return status


async def _publish(
    runtime: Runtime, body: Mapping[str, Any], outcome: BoundCloud | Unbound
) -> None:
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    previous = CloudBindingStatus.model_validate(body.get("status") or {})
    status = binding_status(previous, name, outcome, utcnow(), metadata.get("generation", 1))
    if status == previous:
        return
    try:
        await runtime.kube.write_status(PLURAL.cloud_bindings, namespace, name, status.to_wire())
    except Gone:
        return
    was = {c.type: c.status for c in previous.conditions}.get(READY)
    [ready] = [c for c in status.conditions if c.type == READY]
    if ready.status != was:
        post = kopf.info if ready.status == ConditionStatus.TRUE else kopf.warn
        post(
            reference("CloudBinding", namespace, name, metadata.get("uid")),
            reason=ready.reason,
            message=ready.message[:1024],
        )
        log.info("%s: %s", ready.reason, ready.message, extra={"namespace": namespace})


@kopf.on.create(GROUP, VERSION, PLURAL.cloud_bindings)
@kopf.on.update(GROUP, VERSION, PLURAL.cloud_bindings, field="spec")
@kopf.on.delete(GROUP, VERSION, PLURAL.cloud_bindings, optional=True)
async def binding_changed(namespace: str | None, memo: Any, **_: Any) -> None:
    """One binding changed: each binding of the namespace may now be the one, or a duplicate."""
    runtime = runtime_of(memo)
    with metrics.handler_duration.labels("cloud_binding").time():
        runtime.clouds.forget(namespace or "")
        outcome = await resolve(runtime.clouds, namespace or "")
        for body in await runtime.kube.list(PLURAL.cloud_bindings, namespace or ""):
            if not body["metadata"].get("deletionTimestamp"):
                await _publish(runtime, body, outcome)
        if isinstance(outcome, Unbound):  # the host pass may have gone with the last binding
            await runtime.host_sync.unbound(namespace or "", marker(outcome))


@kopf.timer(GROUP, VERSION, PLURAL.cloud_bindings, interval=INTERVAL, initial_delay=1.0)
async def binding_resync(body: kopf.Body, memo: Any, **_: Any) -> None:
    """The Secret may have changed, appeared or gone: it has no handler of its own."""
    runtime = runtime_of(memo)
    with metrics.handler_duration.labels("cloud_binding_resync").time():
        await _publish(runtime, body, await resolve(runtime.clouds, body["metadata"]["namespace"]))


@kopf.timer(GROUP, VERSION, PLURAL.cloud_bindings, interval=detection.INTERVAL, initial_delay=1.0)
async def detection_pass(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    """Hosts silent in Nova and to their heartbeat agent are reported, in segments that ask."""
    runtime, namespace = runtime_of(memo), namespace or ""
    outcome = await resolve(runtime.clouds, namespace)
    if isinstance(outcome, Unbound) or outcome.binding.name != name:
        return  # unbound: nothing is acted on; or another binding of the namespace is in use
    await detection.detect(runtime, memo, namespace, outcome)
