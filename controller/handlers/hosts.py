"""Host handlers: a spec change syncs its Host at once; one pass per bound namespace and
MASAKARI_HOST_RESYNC_INTERVAL syncs every Host of it, since Nova and Pacemaker change alone.
The orchestration is the domain's (controller.recovery.host_sync).

The pass hangs on the namespace's CloudBinding: a namespace that is acted on has exactly one,
and the pass needs the cloud it binds. A namespace without a usable binding has its Hosts'
`CloudBound` condition set when a Host changes, when a binding changes or is deleted, and by
the pass of any binding left in it."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import BoundCloud, Unbound
from controller.drivers.kube import PLURAL
from controller.handlers.cloud_bindings import marker, resolve
from controller.handlers.runtime import runtime_of
from controller.recovery.host_sync import Access, HostBusy
from controller.recovery.nova import NovaError
from controller.recovery.pacemaker import PacemakerError
from controller.resources.common import GROUP, VERSION

log = logging.getLogger("masakari.hosts")
INTERVAL = OperatorConfig.from_environment().host_resync_interval


def _access(outcome: BoundCloud) -> Access:
    return Access(outcome.cloud.nova, outcome.pacemaker, marker(outcome), outcome.cloud.power)


def unobserved(meta: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether the Host's spec is newer than what its status was last synced from: new, or
    changed since (while the operator ran or not)."""
    return meta.get("generation") != status.get("observedGeneration")


@kopf.on.event(GROUP, VERSION, PLURAL.hosts)
async def host_changed(
    type: str | None,
    name: str,
    namespace: str | None,
    meta: kopf.Meta,
    status: kopf.Status,
    memo: Any,
    **_: Any,
) -> None:
    """A new Host, or one whose spec changed, is synced at once. A watch event handler, not a
    create and update handler: kopf keeps no diff-base for it, so a new Host costs no PATCH of
    kopf's and no watch event of that PATCH (at 5,000 new Hosts, a fifth of the start's CPU),
    and the generation the status observed says what a diff-base would. A sync that fails is
    not retried here: the namespace's pass syncs every Host within INTERVAL."""
    if type == "DELETED" or not unobserved(meta, status):
        return
    runtime, namespace = runtime_of(memo), namespace or ""
    with metrics.handler_duration.labels("host").time():
        outcome = await resolve(runtime.clouds, namespace)
        if isinstance(outcome, Unbound):
            await runtime.host_sync.unbound(namespace, marker(outcome), name)
            return
        try:
            await runtime.host_sync.sync_host(namespace, name, _access(outcome))
        except (NovaError, PacemakerError) as error:
            runtime.host_sync.signals.unreachable(
                "nova" if isinstance(error, NovaError) else "pacemaker", error
            )
        except HostBusy as error:
            log.info("%s; left to the next pass", error, extra={"namespace": namespace})


@kopf.timer(GROUP, VERSION, PLURAL.cloud_bindings, interval=INTERVAL, initial_delay=1.0)
async def host_pass(name: str, namespace: str | None, memo: Any, **_: Any) -> None:
    runtime, namespace = runtime_of(memo), namespace or ""
    with metrics.handler_duration.labels("host_pass").time():
        outcome = await resolve(runtime.clouds, namespace)
        if isinstance(outcome, Unbound):
            await runtime.host_sync.unbound(namespace, marker(outcome))
            return
        if outcome.binding.name != name:
            return  # another binding of the namespace is the one in use
        result = await runtime.host_sync.sync_namespace(namespace, _access(outcome))
        if result.written or result.failed or result.nova_error:
            log.debug("host pass: %s", result, extra={"namespace": namespace})
