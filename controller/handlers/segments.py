"""FailoverSegment handler: counts and conditions, recomputed periodically and on change."""

from __future__ import annotations

from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.kube import PLURAL
from controller.handlers.runtime import runtime_of
from controller.recovery.progress import utcnow
from controller.recovery.segments import summarize
from controller.resources.common import GROUP, VERSION
from controller.resources.segment import FailoverSegmentSpec, FailoverSegmentStatus

INTERVAL = OperatorConfig.from_environment().segment_resync_interval


async def _summarize(body: kopf.Body, memo: Any) -> None:
    runtime = runtime_of(memo)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = FailoverSegmentStatus.model_validate(body.get("status") or {})
    status = summarize(
        FailoverSegmentSpec.model_validate(body["spec"]),
        previous,
        await runtime.store.hosts(namespace, name),
        await runtime.store.failure_events(namespace),
        utcnow(),
        body["metadata"].get("generation", 1),
    )
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
