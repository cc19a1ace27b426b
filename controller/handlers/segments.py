"""FailoverSegment handler: counts and conditions, recomputed periodically and on change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import Unbound
from controller.drivers.kube import PLURAL
from controller.handlers.cloud_bindings import mark_cloud_bound, resolve
from controller.handlers.runtime import runtime_of
from controller.recovery.progress import utcnow
from controller.recovery.segments import summarize
from controller.resources.common import GROUP, VERSION, set_condition
from controller.resources.segment import FailoverSegmentSpec, FailoverSegmentStatus, SegmentPhase

INTERVAL = OperatorConfig.from_environment().segment_resync_interval
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
        await runtime.store.hosts(namespace, name),
        await runtime.store.failure_events(namespace),
        now,
        generation,
        None if isinstance(outcome, Unbound) else outcome.pacemaker is not None,
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
