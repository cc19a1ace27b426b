"""`masakari-operator heartbeat-agent`: the host's second opinion for the operator's detection.

Runs beside nova-compute and answers the operator's UDP probe (protocol in
controller.drivers.heartbeat). Its answer says only "this host runs and is reachable", which is
what tells a dead host from a dead nova-compute when Nova reports the service down. It reads
nothing and needs nothing beyond the standard library; it can also run as
`python3 -m controller.monitors.heartbeat_agent`, which imports nothing else of the package.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import time
from dataclasses import dataclass, field
from types import FrameType

from controller.drivers.heartbeat import DATAGRAM, DEFAULT_PORT, reply_to, split_address

log = logging.getLogger("masakari.heartbeat")


@dataclass
class Budget:
    """A token bucket: answers per second, so a flood of forged probes stays a trickle."""

    rate: float
    tokens: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.rate

    def take(self, now: float) -> bool:
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def bind(address: str) -> socket.socket:
    host, port = split_address(address, listening=True)
    family, _, _, _, sockaddr = socket.getaddrinfo(
        host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    if family == socket.AF_INET6 and host in ("::", ""):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # IPv4 too
    sock.bind(sockaddr)
    return sock


def serve(sock: socket.socket, budget: Budget, stopping: list[bool], tick: float = 1.0) -> int:
    """Answer probes until `stopping[0]`; returns how many were answered."""
    sock.settimeout(tick)  # wakes up to notice a stop request even when nothing arrives
    answered = dropped = 0
    while not stopping[0]:
        try:
            datagram, peer = sock.recvfrom(DATAGRAM + 1)
        except TimeoutError:
            continue
        reply = reply_to(datagram)
        if reply is None:
            continue
        if not budget.take(time.monotonic()):
            dropped += 1
            if dropped in (1, 100, 10_000):  # tells of a flood without flooding the journal
                log.warning("over %s answers/s: %d probe(s) dropped", budget.rate, dropped)
            continue
        try:
            sock.sendto(reply, peer)
            answered += 1
        except OSError as error:
            log.debug("could not answer %s: %s", peer, error)
    return answered


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        default=f"[::]:{DEFAULT_PORT}",
        help=f"address:port to answer on (default [::]:{DEFAULT_PORT}, IPv4 included); "
        "the address the Host's spec.heartbeat.address names",
    )
    parser.add_argument(
        "--max-rate",
        type=float,
        default=200.0,
        help="answers per second at most (the operator sends 1 to 3 per detection pass)",
    )
    parser.add_argument("--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    stopping = [False]

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping[0] = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sock = bind(args.listen)
    log.info("heartbeat agent answering on %s", sock.getsockname()[:2])
    try:
        answered = serve(sock, Budget(args.max_rate), stopping)
    finally:
        sock.close()
    log.info("heartbeat agent stopped after %d answer(s)", answered)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="heartbeat-agent", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
