"""The operator's one HTTP port: /metrics, /healthz and /readyz, on every replica.

Served from the first moment of the process, before the Lease is won. A standby is a healthy
replica ready to take over, so Kubernetes must count it Ready (a rolling update waits for the
new pod to be Ready, a PodDisruptionBudget counts Ready pods) and Prometheus must scrape it;
`masakari_leader` (controller.metrics) says which replica leads.

- /healthz: the event loop still turns (a heartbeat task on it stamps the time). A loop stuck
  in a blocking call recovers nothing and renews nothing: restarting the pod is the right cure.
- /readyz: alive, and the API server answered this replica recently (for a replica electing a
  leader: a Lease call answered within one lease duration; standalone: startup finished).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from controller import metrics

StartResponse = Callable[..., Any]


@dataclass
class Probes:
    ready: Callable[[], bool]
    stale_after: float = 30.0  # seconds without a heartbeat before the loop counts as stuck
    clock: Callable[[], float] = time.monotonic
    beat_at: float = field(default_factory=time.monotonic)

    def alive(self) -> bool:
        return self.clock() - self.beat_at < self.stale_after

    async def heartbeat(self) -> None:
        while True:
            self.beat_at = self.clock()
            await asyncio.sleep(min(1.0, self.stale_after / 4))

    def app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            ok = self.alive()
        elif path == "/readyz":
            ok = self.alive() and self.ready()
        else:
            served: Iterable[bytes] = _metrics_app(environ, start_response)
            return served
        status = "200 OK" if ok else "503 Service Unavailable"
        body = b"ok\n" if ok else b"not ok\n"
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


_metrics_app = make_wsgi_app(metrics.REGISTRY)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the process up at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the operator's own log."""


def serve(probes: Probes, address: str, port: int) -> WSGIServer:
    """Start serving in a thread of its own; `shutdown()` the result to stop."""
    server = make_server(address, port, probes.app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server
