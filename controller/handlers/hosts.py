"""Host handlers: keep Nova and Pacemaker in line with each Host's spec and mirror them in its
status. Runs on every spec change and periodically, since Nova and Pacemaker change alone."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import Unbound
from controller.drivers.kube import PLURAL
from controller.drivers.kube_store import host_record
from controller.handlers.cloud_bindings import mark_cloud_bound, resolve
from controller.handlers.runtime import Runtime, runtime_of
from controller.handlers.signals import reference
from controller.recovery import hosts
from controller.recovery.nova import NotFound, NovaError
from controller.recovery.pacemaker import Node, PacemakerError
from controller.recovery.ports import HostRecord, PacemakerCluster
from controller.recovery.progress import utcnow
from controller.resources.common import GROUP, VERSION
from controller.resources.host import HOLDS

log = logging.getLogger("masakari.hosts")
INTERVAL = OperatorConfig.from_environment().host_resync_interval


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """Status without observation times, so an unchanged host is not rewritten every resync,
    and without the service holds, which recoveries write."""
    copy = {k: v for k, v in status.items() if k not in ("nova", "pacemaker", HOLDS)}
    for key in ("nova", "pacemaker"):
        if key in status:
            copy[key] = {k: v for k, v in status[key].items() if k != "observedAt"}
    return copy


async def _node(
    pacemaker: PacemakerCluster | None, name: str
) -> tuple[Node | None, datetime | None]:
    """The node, and when Pacemaker last fenced it."""
    if pacemaker is None:
        return None, None
    try:
        state = await asyncio.to_thread(pacemaker.state)
    except PacemakerError:
        metrics.api_errors.labels("pacemaker", "read").inc()
        return None, None
    fenced = [e.completed for e in state.fencing_of(name) if e.succeeded and e.completed]
    return state.node(name), max(fenced, default=None)


async def _unbound(runtime: Runtime, namespace: str, host: HostRecord, why: Unbound) -> None:
    """Nothing is read or changed for a host of an unbound namespace. Its phase stays as last
    observed (the storm gate counts failed hosts by phase); CloudBound says why."""
    conditions = [c.model_copy() for c in host.status.conditions]
    mark_cloud_bound(conditions, why, utcnow(), host.status.observed_generation or 1)
    if conditions != host.status.conditions:
        wire = [c.to_wire() for c in conditions]
        await runtime.kube.merge_status(PLURAL.hosts, namespace, host.name, {"conditions": wire})


async def reconcile(body: kopf.Body, runtime: Runtime) -> None:
    host = host_record(body)
    namespace = body["metadata"]["namespace"]
    outcome = await resolve(runtime.clouds, namespace)
    if isinstance(outcome, Unbound):
        await _unbound(runtime, namespace, host, outcome)
        return
    nova, pacemaker = outcome.cloud.nova, outcome.pacemaker
    async with runtime.host_lock(namespace, host.name):
        try:
            service = await nova.compute_service(host.nova_host)
        except NotFound:
            service = None
        except NovaError as error:
            metrics.api_errors.labels("nova", type(error).__name__).inc()
            raise kopf.TemporaryError(f"Nova: {error}", delay=INTERVAL) from None
        node, fenced_at = await _node(pacemaker, host.pacemaker_node)
        own = await runtime.store.failure_events(namespace, host.name)
        everyone = await runtime.store.failure_events(namespace) if host.spec.reserved else own
        now, generation = utcnow(), body["metadata"].get("generation", 1)
        plan = hosts.plan(host, service, node, own, everyone, now, generation, fenced_at)
        mark_cloud_bound(plan.status.conditions, outcome, now, generation)
        try:
            if plan.unforce:
                await nova.force_down(host.nova_host, False)
            if plan.disable:
                await nova.disable_service(host.nova_host, plan.disable)
            if plan.enable:
                await nova.enable_service(host.nova_host)
            if plan.standby is not None and pacemaker is not None:
                change = pacemaker.put_in_standby if plan.standby else pacemaker.bring_online
                await asyncio.to_thread(change, host.pacemaker_node)
        except (NovaError, PacemakerError) as error:
            metrics.api_errors.labels(
                "nova" if isinstance(error, NovaError) else "pacemaker", type(error).__name__
            ).inc()
            raise kopf.TemporaryError(f"applying host state: {error}", delay=INTERVAL) from None
        wire = plan.status.to_wire()
        if _comparable(wire) != _comparable(body.get("status") or {}) or plan.released_holds:
            # A merge patch that names every field but the holds (None clears one): a hold a
            # recovery recorded after this body was read survives the write.
            patch = plan.status.to_merge_patch(exclude={"service_holds"})
            if plan.released_holds:
                patch[HOLDS] = dict.fromkeys(plan.released_holds)  # None removes each
            await runtime.kube.merge_status(PLURAL.hosts, namespace, host.name, patch)
        if plan.transition is not None:
            reason, message = plan.transition
            kopf.info(
                reference("Host", namespace, host.name, body["metadata"].get("uid")),
                reason=reason,
                message=message,
            )
            log.info(message, extra={"namespace": namespace, "host": host.name})


@kopf.on.create(GROUP, VERSION, "hosts")
@kopf.on.update(GROUP, VERSION, "hosts", field="spec")
async def host_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("host").time():
        await reconcile(body, runtime_of(memo))


@kopf.timer(GROUP, VERSION, "hosts", interval=INTERVAL, initial_delay=1.0)
async def host_resync(body: kopf.Body, memo: Any, **_: Any) -> None:
    with metrics.handler_duration.labels("host_resync").time():
        await reconcile(body, runtime_of(memo))
