"""FailoverSegment handlers: counts and conditions, recomputed periodically and on change; the
periodic HA readiness check (recovery.capacity) on its own slower timer; and the periodic
retention pass over the ended FailureEvents of the segment's hosts."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import Unbound
from controller.drivers.kube import PLURAL, Gone
from controller.handlers.cloud_bindings import mark_cloud_bound, resolve
from controller.handlers.runtime import runtime_of
from controller.handlers.startup import FINALIZER
from controller.recovery import capacity
from controller.recovery.nova import NovaError
from controller.recovery.progress import utcnow
from controller.recovery.retention import Policy, of_segment, to_delete
from controller.recovery.segments import summarize
from controller.resources.common import GROUP, VERSION, set_condition
from controller.resources.segment import FailoverSegmentSpec, FailoverSegmentStatus, SegmentPhase

CONFIG = OperatorConfig.from_environment()
INTERVAL = CONFIG.segment_resync_interval
log = logging.getLogger("masakari.retention")
capacity_log = logging.getLogger("masakari.capacity")
# Half an interval: segments checked around the same time share a listing, and none reads one
# older than that.
LISTINGS = capacity.Listings(CONFIG.capacity_interval / 2)
ALLOWED = "RecoveryAllowed"


def _unbound(
    status: FailoverSegmentStatus,
    previous: FailoverSegmentStatus,
    why: Unbound,
    now: datetime,
    generation: int,
) -> None:
    """Nothing of an unbound namespace is recovered: the segment says so, unless a person's
    own decision (disabled, paused) is what it shows already."""
    if status.phase in (SegmentPhase.DISABLED, SegmentPhase.PAUSED):
        return
    status.phase = SegmentPhase.BLOCKED
    # summarize() judged the segment as if bound; start again from the condition as it was, so
    # its lastTransitionTime moves only when it really flips.
    before = {c.type: c for c in previous.conditions}.get(ALLOWED)
    status.conditions = [
        before.model_copy() if c.type == ALLOWED and before is not None else c
        for c in status.conditions
    ]
    set_condition(status.conditions, ALLOWED, False, "CloudNotBound", str(why), now, generation)


async def _summarize(body: kopf.Body, memo: Any) -> None:
    runtime = runtime_of(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = FailoverSegmentStatus.model_validate(body.get("status") or {})
    now, generation = utcnow(), body["metadata"].get("generation", 1)
    outcome = await resolve(runtime.clouds, namespace)
    status = summarize(
        FailoverSegmentSpec.model_validate(body["spec"]),
        previous,
        await runtime.cache.hosts(namespace, name),
        await runtime.cache.open_events(namespace),
        now,
        generation,
        None if isinstance(outcome, Unbound) else outcome.pacemaker is not None,
        runtime.capacity.get((namespace, name)),
    )
    mark_cloud_bound(status.conditions, outcome, now, generation)
    if isinstance(outcome, Unbound):
        _unbound(status, previous, outcome, now, generation)
    if status != previous:
        await runtime.kube.write_status(PLURAL.segments, namespace, name, status.to_wire())


@kopf.on.create(GROUP, VERSION, "failoversegments")
@kopf.on.update(GROUP, VERSION, "failoversegments", field="spec")
async def segment_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("segment").time():
        await _summarize(body, memo)


@kopf.timer(GROUP, VERSION, "failoversegments", interval=INTERVAL, initial_delay=1.0)
async def segment_resync(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("segment_resync").time():
        await _summarize(body, memo)


async def _check_capacity(memo: Any, body: kopf.Body) -> None:
    """Check, keep the verdict for every status write of the segment, write it now. A failed
    read leaves the last verdict with its observedAt: stale, and saying so; so does a check
    left out while a host of the cloud is being recovered (capacity.recovering)."""
    runtime = runtime_of(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    spec = FailoverSegmentSpec.model_validate(body["spec"])
    key = (namespace, name)
    outcome = await resolve(runtime.clouds, namespace)
    if spec.capacity.tolerate_host_failures == 0 or isinstance(outcome, Unbound):
        runtime.capacity.pop(key, None)
        metrics.forget_segment_capacity(namespace, name)
        if isinstance(outcome, Unbound):
            LISTINGS.forget(namespace)  # bound again, maybe to another cloud
        return
    recovered = capacity.recovering(await runtime.cache.open_events(namespace))
    if recovered is not None:
        capacity_log.info(
            "%s/%s: readiness not checked while %s is being recovered", namespace, name, recovered
        )
        return
    hosts = await runtime.cache.hosts(namespace, name)
    try:
        # Bounded by the interval: a slow Nova delays the next check, never piles them up.
        verdict = await asyncio.wait_for(
            capacity.check(
                outcome.readiness,
                spec,
                hosts,
                utcnow(),
                LISTINGS.listing(namespace, outcome.readiness),
            ),
            timeout=CONFIG.capacity_interval,
        )
    except (NovaError, TimeoutError) as error:
        why = (
            error if isinstance(error, NovaError) else f"no answer in {CONFIG.capacity_interval:g}s"
        )
        capacity_log.warning("%s/%s: readiness not checked: %s", namespace, name, why)
        return
    before = runtime.capacity.get(key)
    runtime.capacity[key] = capacity.carried(
        before, verdict, timedelta(seconds=capacity.SAME_VERDICT_CHECKS * CONFIG.capacity_interval)
    )
    metrics.segment_capacity_ready.labels(namespace, name).set(1 if verdict.ready else 0)
    if before is None or before.ready != verdict.ready:
        _, reason, message = capacity.condition(verdict)
        level = logging.INFO if verdict.ready else logging.WARNING
        capacity_log.log(level, "%s/%s: %s: %s", namespace, name, reason, message)
    await _summarize(body, memo)


@kopf.timer(
    GROUP, VERSION, "failoversegments", interval=CONFIG.capacity_interval, initial_delay=3.0
)
async def segment_capacity(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("segment_capacity").time():
        await _check_capacity(memo, body)


@kopf.on.delete(GROUP, VERSION, "failoversegments", optional=True)
async def segment_deleted(body: kopf.Body, memo: Any, **_: Any) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    runtime_of(memo).capacity.pop((namespace, name), None)
    metrics.forget_segment_capacity(namespace, name)


async def _retain(body: kopf.Body, memo: Any) -> None:
    """Delete what the segment's retention chose (recovery.retention), a bounded number per
    pass, each with its reason."""
    runtime = runtime_of(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if isinstance(await resolve(runtime.clouds, namespace), Unbound):
        return  # nothing of an unbound namespace is acted on, its history included
    settle = timedelta(seconds=CONFIG.retention_settle)
    policy = Policy.of(FailoverSegmentSpec.model_validate(body["spec"]), settle)
    hosts = await runtime.cache.hosts(namespace)
    events = of_segment(await runtime.cache.events_by_host(namespace), hosts, name)
    for decision in to_delete(events, hosts, policy, utcnow(), CONFIG.retention_batch):
        try:
            await runtime.kube.delete(PLURAL.failure_events, namespace, decision.event)
        except Gone:
            continue
        # An operator stopped between an event's last status write and its recover daemon
        # taking the finalizer off leaves it on an event kopf no longer watches (startup).
        await runtime.store.release_ended_event(namespace, decision.event, FINALIZER)
        metrics.events_deleted.labels(decision.reason).inc()
        log.info(
            "deleted FailureEvent %s: %s (%s)",
            decision.event,
            decision.reason,
            decision.message,
            extra={"namespace": namespace, "event": decision.event},
        )


@kopf.timer(
    GROUP, VERSION, "failoversegments", interval=CONFIG.retention_interval, initial_delay=5.0
)
async def segment_retention(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("segment_retention").time():
        await _retain(body, memo)
