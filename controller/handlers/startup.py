"""Operator start: settings, drivers, metrics and probes, and the single-leader lease.

The HTTP port opens first, before the Lease is won, so a standby is scraped and Ready
(controller.health); on SIGTERM the leader releases the Lease once its handlers have stopped."""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import aiohttp
import kopf

from controller import health, metrics
from controller.config import OperatorConfig
from controller.drivers.clouds import KubeClouds, OpenStackConnector
from controller.drivers.kube import LIST_PAGE, PLURAL, Kube, load_client
from controller.drivers.kube_cache import CachedStore
from controller.drivers.kube_store import OPEN_EVENTS, KubeStore
from controller.drivers.lease import Lease
from controller.drivers.namespace_claims import NamespaceClaims
from controller.handlers.runtime import Runtime, runtime_of
from controller.handlers.shard import Shard
from controller.handlers.signals import RecoverySignals
from controller.recovery.host_failure import Timing
from controller.recovery.lifecycle import Lifecycle, Settings
from controller.resources.common import GROUP

PREFIX = "masakari.dev"
FINALIZER = f"{PREFIX}/operator"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: Any, logger: kopf.Logger, **_: Any) -> None:
    # Handler progress and diff-bases go to annotations: status belongs to our models, whose
    # structural schema would prune kopf's own fields.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # kopf lists and watches the open FailureEvents only (selected at the API server): every
    # object it sees costs it a diff-base and a worker, and the ended ones, most of a
    # namespace's events, have nothing left for it to do. 5,000 ended events were half the
    # operator's start-up CPU. An event that ends leaves its sight (its watch says DELETED),
    # so the recovery that ends it takes the finalizer off itself (handlers.failure_events).
    settings.watching.field_selectors[GROUP, PLURAL.failure_events] = ",".join(OPEN_EVENTS)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    # kopf's first list of a kind is one answer without a limit unless told: 5,000 Hosts
    # whole, decoded at once, raise the process's memory for good.
    settings.watching.chunk_size = LIST_PAGE
    settings.execution.max_workers = 8

    config = OperatorConfig.from_environment()
    # kopf's own requests (patches, Events; watches have their own timeouts) give up in time.
    settings.networking.request_timeout = config.kube_timeout
    client = await asyncio.to_thread(load_client)
    lease = None
    if config.lease_name:
        lease = Lease.from_client(
            client, config.lease_namespace, config.lease_name, config.lease_duration
        )
    metrics.initialise()
    shard: Shard | None = getattr(memo, "shard", None)
    leader = metrics.leader.labels(shard.name if shard is not None else "")
    leader.set(0)
    memo.leader_gauge = leader
    _serve_probes(memo, config, lease)
    leading = None
    if lease is not None:
        # Handlers start only once this returns: a standby replica never acts.
        await lease.acquire()
        memo.lease = lease
        memo.lease_keeper = asyncio.create_task(lease.keep(), name="lease keeper")
        leading = lease.holding
        if shard is not None:  # one operator of a fleet: it claims its namespaces first
            claims = NamespaceClaims.from_client(client, config.kube_timeout)
            if not await shard.begin(claims, lease, config.binding_resync_interval):
                # Its set changed while it stood by, and kopf is stopping, which skips the
                # cleanup of a startup that never ended: nothing has run, so hand the Lease
                # on here, and wait to be cancelled.
                await _stop(memo)
                await asyncio.Event().wait()
    leader.set(1)
    # Every write to Kubernetes and every change to Nova asks the Lease first, so a leader
    # that wakes up past its deadline changes nothing before its keeper stops the process.
    kube = Kube(client, timeout=config.kube_timeout, leading=leading)

    connector = OpenStackConnector(config.nova_concurrency, config.pacemaker_local_prefix)
    if leading is not None:
        connector.leading = leading
    # Each namespace's cloud comes from its CloudBinding: there is no cloud of the operator's.
    clouds = KubeClouds(kube, connector, recheck=config.binding_resync_interval)
    store = KubeStore(kube)
    cache = CachedStore(store)
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
            history=cache,  # ended events, for the reserved hosts' takers
        ),
        cache=cache,
    )
    runtime.closers.append(clouds.close)
    memo.runtime = runtime
    memo.started = True
    logger.info(
        "masakari-operator started: each namespace's cloud from its CloudBinding, metrics on %s:%s",
        config.metrics_address,
        config.metrics_port or "-",
    )


def _serve_probes(memo: Any, config: OperatorConfig, lease: Lease | None) -> None:
    """Once per process: kopf retries a startup handler that failed, the port stays open and
    answers for the Lease of the latest attempt."""
    memo.probed_lease = lease
    if not config.metrics_port or getattr(memo, "health_server", None) is not None:
        return

    def ready() -> bool:
        current: Lease | None = memo.probed_lease
        if current is None:
            return bool(getattr(memo, "started", False))
        # Leader and standby alike: the API server answered a Lease call within a duration
        # (the leader renews every sixth of it, a standby tries every third).
        return current.answered_within(current.duration)

    probes = health.Probes(ready)
    memo.heartbeat = asyncio.create_task(probes.heartbeat(), name="health heartbeat")
    memo.health_server = health.serve(probes, config.metrics_address, config.metrics_port)


# kopf's own session keeps no bound on its connections: one per request in flight. A start
# with 500 new Hosts (kopf writing each one's diff-base at once) opened 164 TLS connections,
# each with asyncio's 256 KiB read buffer: some 40 MiB of the operator's RSS, growing with the
# namespace. Beyond the bound a request waits for a free connection. A watch stream holds
# one for its whole length, so the bound leaves room for every stream kopf can open (one per
# kind it watches, per namespace: four kinds today).
KOPF_REQUESTS = 32
WATCHES_PER_NAMESPACE = 8


def connection_limit(namespaces: int) -> int:
    """kopf's connections to the API server serving `namespaces` (1 when cluster-wide)."""
    return WATCHES_PER_NAMESPACE * max(1, namespaces) + KOPF_REQUESTS


@kopf.on.login()
async def login(
    memo: Any, logger: kopf.Logger, settings: kopf.OperatorSettings, **_: Any
) -> kopf.AiohttpSession | None:
    """kopf's login from the kubeconfig or the service account, on a bounded session."""
    info = await asyncio.to_thread(kopf.login_via_client, logger=logger, settings=settings)
    if info is None:
        return None
    limit = connection_limit(memo.get("namespaces_served", 1))
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        priority=info.priority,
        aiohttp_session=session,
    )


@kopf.on.cleanup()
async def stop(memo: Any, **_: Any) -> None:
    await _stop(memo)


async def _stop(memo: Any) -> None:
    # kopf runs cleanup after its watchers and handlers have stopped: nothing acts any more,
    # so the Lease can go to the standby now rather than after a whole lease duration.
    shard: Shard | None = getattr(memo, "shard", None)
    if shard is not None:
        await shard.end()
    keeper = getattr(memo, "lease_keeper", None)
    if keeper is not None:
        keeper.cancel()
        await asyncio.wait([keeper], timeout=1)
    lease = getattr(memo, "lease", None)
    if lease is not None:
        await lease.release_async()
        memo.leader_gauge.set(0)
    runtime = getattr(memo, "runtime", None)
    if runtime is not None:
        for close in runtime_of(memo).closers:
            closing = close()
            if inspect.isawaitable(closing):  # the watches' tasks end on the loop
                await closing
    server = getattr(memo, "health_server", None)
    if server is not None:
        await asyncio.to_thread(server.shutdown)
