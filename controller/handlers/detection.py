"""The detection pass of a bound namespace (recovery.detection_pass), run by the CloudBinding
timer in controller.handlers.cloud_bindings, and what the world hears of it: a warning Event on
the Host it reports, and a log line whenever a silent host's reason for not being reported
changes (not on every pass)."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from controller import metrics
from controller.config import PREFIX
from controller.drivers.clouds import BoundCloud
from controller.drivers.heartbeat import UdpHeartbeatProbe
from controller.drivers.kube import KubeError
from controller.drivers.kube_detection import KubeDetectionStore
from controller.drivers.lease import NotLeading
from controller.handlers.runtime import Runtime
from controller.handlers.signals import reference
from controller.recovery.detection import Finding, Held, Hold
from controller.recovery.detection_pass import DetectionPass

log = logging.getLogger("masakari.detection")
# Seconds between passes: detection takes the segment's threshold plus up to one interval.
INTERVAL = float(os.environ.get(PREFIX + "DETECTION_INTERVAL", "10"))


class DetectionSignals:
    def __init__(self) -> None:
        # The reasons last logged, per namespace: only this pass's silent hosts are kept.
        self._held: dict[str, dict[str, Held]] = {}

    def reported(self, namespace: str, finding: Finding, created: bool) -> None:
        host = finding.silent.host
        extra = {"namespace": namespace, "host": host.name}
        if not created:
            log.info("%s: silence already reported: %s", host.name, finding.message, extra=extra)
            return
        log.warning("%s reported failed: %s", host.name, finding.message, extra=extra)
        kopf.warn(
            reference("Host", namespace, host.name, host.uid),
            reason="FailureDetected",
            message=finding.message[:1024],
        )

    def held(self, namespace: str, holds: list[Hold]) -> None:
        before = self._held.get(namespace, {})
        now = {hold.host: hold.reason for hold in holds}
        for hold in holds:
            if before.get(hold.host) != hold.reason:
                log.info(
                    "%s silent in Nova, not reported (%s): %s",
                    hold.host,
                    hold.reason,
                    hold.message,
                    extra={"namespace": namespace, "host": hold.host},
                )
        if now:
            self._held[namespace] = now
        else:
            self._held.pop(namespace, None)

    def unreachable(self, system: str, error: Exception) -> None:
        if system != "nova":  # the Nova driver counts its own failed calls
            metrics.api_errors.labels(system, type(error).__name__).inc()
        log.warning("detection pass: %s: %s", system, error)


def _pass(runtime: Runtime, memo: Any) -> DetectionPass:
    """One per operator, kept in kopf's memo: its signals remember what they logged."""
    found: DetectionPass | None = getattr(memo, "detection", None)
    if found is None:
        store = KubeDetectionStore(runtime.kube, runtime.cache)
        found = DetectionPass(store, UdpHeartbeatProbe(), DetectionSignals())
        memo.detection = found
    return found


async def detect(runtime: Runtime, memo: Any, namespace: str, outcome: BoundCloud) -> None:
    found = _pass(runtime, memo)
    with metrics.handler_duration.labels("detection_pass").time():
        try:
            result = await found.run(namespace, outcome.cloud.nova)
        except (KubeError, NotLeading) as error:
            # Raised, kopf would hold this timer back a minute (its backoff); the next
            # interval reads everything again anyway.
            found.signals.unreachable("kubernetes", error)
            return
    if result.silent or result.nova_error or result.failed:
        log.debug("detection pass: %s", result, extra={"namespace": namespace})
