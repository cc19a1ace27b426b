"""`masakari-operator api`: Masakari's v1 API over the custom resources of one namespace."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import prometheus_client
from aiohttp import web

from controller import logs
from controller.api import metrics as api_metrics
from controller.api.app import Context, build_app
from controller.api.store import Store
from controller.api.tls import ServingCertificate
from controller.drivers.keystone import TokenValidator
from controller.drivers.kube import Kube, load_client
from controller.drivers.nova.openstack import OpenStackNova
from controller.recovery.nova import NovaError

log = logging.getLogger("masakari.api")
READY = "masakari-operator api listening on "
ACCESS_LOG_FORMAT = '%a "%r" %s %b %Tf'
access_log = logging.getLogger("masakari.api.access")


def add_cloud_arguments(parser: argparse.ArgumentParser, used_for: str) -> None:
    parser.add_argument(
        "--clouds-yaml",
        type=Path,
        default=Path("/etc/openstack/clouds.yaml"),
        help=f"clouds.yaml with an admin of the cloud: {used_for}",
    )
    parser.add_argument("--cloud", default="openstack", help="the cloud's name in clouds.yaml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-n", "--namespace", required=True, help="the namespace of the cloud's resources"
    )
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, then ~/.kube)")
    add_cloud_arguments(parser, "Nova checks of new hosts and token validation")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=15868, help="port (Masakari's); 0: any")
    parser.add_argument(
        "--token-cache-seconds",
        type=float,
        default=60.0,
        help="how long a token's validation is reused (never beyond its expiry)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="accept every request as admin without a token: ONLY for local experiments",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        help="serve HTTPS with this certificate (PEM, chain included), e.g. a mounted Secret's "
        "tls.crt; read again when it changes",
    )
    parser.add_argument("--tls-key", type=Path, help="the certificate's key (tls.key)")
    parser.add_argument(
        "--tls-reload-seconds",
        type=float,
        default=60.0,
        help="how often the certificate files are checked for a renewal",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve the API's Prometheus metrics on this port, apart from the API; 0: none",
    )
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--log-format", choices=["text", "json"], default="text")


class NovaComputeHosts:
    """Masakari's host check: a nova-compute service of exactly that host name exists."""

    def __init__(self, nova: OpenStackNova) -> None:
        self.nova = nova

    async def exists(self, name: str) -> bool:
        services = await self.nova.compute_services(host=name)
        return any(service.host == name for service in services)


async def _serve(args: argparse.Namespace) -> None:
    kube = Kube(load_client(args.kubeconfig))
    nova = OpenStackNova.from_clouds_yaml(args.clouds_yaml, args.cloud)
    tokens = None
    if args.insecure_no_auth:
        log.warning(
            "--insecure-no-auth: every request is served as admin without a token; never "
            "expose this API beyond your own machine"
        )
    else:
        tokens = TokenValidator(args.clouds_yaml, args.cloud, args.token_cache_seconds)
    certificate = None
    if args.tls_cert:
        certificate = ServingCertificate(args.tls_cert, args.tls_key)
    store = Store(kube, args.namespace)
    app = build_app(Context(store, tokens, NovaComputeHosts(nova)))
    app.middlewares.insert(0, api_metrics.measured)
    if args.metrics_port:
        prometheus_client.start_http_server(
            args.metrics_port, args.host, registry=api_metrics.REGISTRY
        )
    # Method, path, status, size and seconds: never a header, where the tokens are.
    runner = web.AppRunner(app, access_log=access_log, access_log_format=ACCESS_LOG_FORMAT)
    await runner.setup()
    await store.start()
    reloading = None
    try:
        tls = certificate.context if certificate else None
        await web.TCPSite(runner, args.host, args.port, ssl_context=tls).start()
        if certificate is not None:
            reloading = asyncio.create_task(certificate.watch(args.tls_reload_seconds))
        port = runner.addresses[0][1]
        netloc = f"[{args.host}]" if ":" in args.host else args.host
        scheme = "https" if certificate else "http"
        print(f"{READY}{scheme}://{netloc}:{port}", flush=True)
        log.info("serving namespace %s", args.namespace)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if reloading is not None:
            reloading.cancel()
        await runner.cleanup()
        await store.stop()
        nova.close()


def run(args: argparse.Namespace) -> int:
    logs.configure(args.verbose, args.log_format == "json")
    if (args.tls_cert is None) != (args.tls_key is None):
        print("masakari-operator api: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args))
    except (OSError, NovaError) as error:
        print(f"masakari-operator api: {error}", file=sys.stderr)
        return 2
    return 0
