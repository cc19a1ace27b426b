"""The simulator's cloud out of reach for a while, the two ways a client meets it:

- refuse: the API is down (its service stopped, its load balancer without members). The port
  closes and open connections are reset, so every call fails at once with "connection
  refused"; the control API goes with it, and the port opens again when the period ends.
- hang: the network between client and cloud is cut. Requests to the cloud's APIs get no
  answer; when the cut heals their connections are dropped unprocessed (the request never
  arrived), so a client without a timeout of its own waits for the whole cut. The control API
  under /_sim keeps answering: a test can look at the cloud while its clients cannot.

Meanwhile the cloud itself goes on: rebuilds started before the cut finish, as nova-compute
goes on when the API or the network in front of it fails.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

MODES = ("refuse", "hang")


@dataclass
class Network:
    runner: web.AppRunner | None = None
    site: web.TCPSite | None = None
    host: str = ""
    port: int = 0
    mode: str | None = None
    until: float = 0.0  # the event loop's clock
    # Held so the loop, which keeps only weak references to tasks, cannot drop the outage.
    refusal: asyncio.Task[None] | None = None

    def attach(self, runner: web.AppRunner, site: web.TCPSite, host: str, port: int) -> None:
        self.runner, self.site, self.host, self.port = runner, site, host, port

    def view(self) -> dict[str, object]:
        remaining = self.until - asyncio.get_running_loop().time()
        return {"mode": self.mode, "seconds": round(remaining, 3)} if self.mode else {}

    def cut(self, mode: str, seconds: float, answering: asyncio.BaseTransport | None) -> None:
        """Out of reach for `seconds` from now; `answering` is the connection that asked,
        which gets its answer before a refusal closes the port."""
        if mode not in MODES:
            raise ValueError(f"outage mode {mode!r}: use one of {list(MODES)}")
        if self.mode is not None:
            raise ValueError(f"an outage ({self.mode}) is already under way")
        loop = asyncio.get_running_loop()
        self.mode, self.until = mode, loop.time() + seconds
        if mode == "refuse":
            self.refusal = loop.create_task(self._refuse(seconds, answering))
        else:
            loop.call_later(seconds, self._heal)

    def _heal(self) -> None:
        self.mode = None

    async def _refuse(self, seconds: float, answering: asyncio.BaseTransport | None) -> None:
        assert self.runner is not None and self.site is not None, "serve() attaches the site"
        await self.site.stop()
        server = self.runner.server
        for handler in server.connections if server is not None else []:
            if handler.transport is not None and handler.transport is not answering:
                handler.transport.abort()  # a reset, as a restarted API server's peers see
        await asyncio.sleep(seconds)
        self.site = web.TCPSite(self.runner, self.host, self.port)
        await self.site.start()
        self._heal()

    async def lost(self, request: web.Request) -> bool:
        """Held while a cut lasts; True when `request` was lost to it (its connection is
        dropped: no answer may be written)."""
        if self.mode != "hang":
            return False
        loop = asyncio.get_running_loop()
        while self.mode == "hang" and (remaining := self.until - loop.time()) > 0:
            await asyncio.sleep(remaining)
        if request.transport is not None:
            request.transport.abort()
        return True
