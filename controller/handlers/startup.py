"""Operator start: settings, drivers, metrics endpoint, and the single-leader lease."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
import prometheus_client

from controller import metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import KubeClouds, OpenStackConnector
from controller.drivers.kube import Kube, load_client
from controller.drivers.kube_store import KubeStore
from controller.drivers.lease import Lease
from controller.handlers.runtime import Runtime, runtime_of
from controller.handlers.signals import RecoverySignals
from controller.recovery.host_failure import Timing
from controller.recovery.lifecycle import Lifecycle, Settings

PREFIX = "masakari.dev"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    # Handler progress and diff-bases go to annotations: status belongs to our models, whose
    # structural schema would prune kopf's own fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/operator"
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8

    config = OperatorConfig.from_environment()
    # kopf's own requests (patches, Events; watches have their own timeouts) give up in time.
    settings.networking.request_timeout = config.kube_timeout
    client = await asyncio.to_thread(load_client)
    leading = None
    if config.lease_name:
        # Handlers start only once this returns: a standby replica never acts.
        lease = Lease.from_client(
            client, config.lease_namespace, config.lease_name, config.lease_duration
        )
        await lease.acquire()
        memo.lease_keeper = asyncio.create_task(lease.keep(), name="lease keeper")
        leading = lease.holding
    # Every write to Kubernetes and every change to Nova asks the Lease first, so a leader
    # that wakes up past its deadline changes nothing before its keeper stops the process.
    kube = Kube(client, timeout=config.kube_timeout, leading=leading)

    connector = OpenStackConnector(config.nova_concurrency, config.pacemaker_local_prefix)
    if leading is not None:
        connector.leading = leading
    # Each namespace's cloud comes from its CloudBinding: there is no cloud of the operator's.
    clouds = KubeClouds(kube, connector, recheck=config.binding_resync_interval)
    store = KubeStore(kube)
    runtime = Runtime(
        config=config,
        kube=kube,
        store=store,
        clouds=clouds,
        lifecycle=Lifecycle(
            clouds=clouds,
            store=store,
            signals=RecoverySignals(),
            settings=Settings(
                recheck_interval=config.recheck_interval,
                timing=Timing(poll_interval=config.poll_interval),
            ),
            overall_limit=asyncio.Semaphore(config.max_evacuations),
        ),
    )
    runtime.closers.append(clouds.close)
    memo.runtime = runtime
    if config.metrics_port:
        prometheus_client.start_http_server(
            config.metrics_port, config.metrics_address, registry=metrics.REGISTRY
        )
    logger.info(
        "masakari-operator started: each namespace's cloud from its CloudBinding, metrics on %s:%s",
        config.metrics_address,
        config.metrics_port or "-",
    )


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    keeper = getattr(memo, "lease_keeper", None)
    if keeper is not None:
        keeper.cancel()
    runtime = getattr(memo, "runtime", None)
    if runtime is None:
        return
    for close in runtime_of(memo).closers:
        close()
