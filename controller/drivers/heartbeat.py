"""The heartbeat agents' protocol, and the operator's probe of them (recovery.detection_pass's
HeartbeatProbe) over UDP.

One datagram each way: the probe sends `MHB1Q <nonce>`, the agent answers `MHB1R <nonce>`, of the
same length, so an agent cannot be used to amplify traffic towards a forged source. The nonce
is random per host and probe round: an answer left over from an earlier round, or forged by
someone who cannot see the probe, is not an answer. UDP rather than HTTP: at 5,000 hosts a
round is one socket and a datagram per host, not 5,000 connections. Standard library only:
the agent (controller.monitors.heartbeat_agent) imports this module and nothing heavier.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass

REQUEST = b"MHB1Q "
REPLY = b"MHB1R "
NONCE_BYTES = 16
DATAGRAM = len(REQUEST) + 2 * NONCE_BYTES  # every valid datagram, either way, is this long
DEFAULT_PORT = 7411  # as controller.resources.host.HEARTBEAT_PORT, without importing pydantic

_ADDRESS = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[^:\[\]]+))(?::(?P<port>\d+))?$")


def split_address(address: str, listening: bool = False) -> tuple[str, int]:
    """host[:port] or [v6][:port] -> (host, port); ValueError when it is neither. Port 0 (any
    free port) only for an address to listen on."""
    match = _ADDRESS.match(address)
    if match is None:
        raise ValueError(f"not host[:port]: {address!r}")
    port = int(match["port"]) if match["port"] else DEFAULT_PORT
    if not (0 if listening else 1) <= port < 65536:
        raise ValueError(f"port out of range: {address!r}")
    return match["v6"] or match["name"], port


def reply_to(datagram: bytes) -> bytes | None:
    """The agent's answer to a probe, or None for anything that is not one."""
    if len(datagram) != DATAGRAM or not datagram.startswith(REQUEST):
        return None
    nonce = datagram[len(REQUEST) :]
    if not all(c in b"0123456789abcdef" for c in nonce):
        return None
    return REPLY + nonce


@dataclass(frozen=True)
class ProbeSettings:
    timeout: float = 2.0  # a round waits this long at most for every answer
    sends: int = 3  # datagrams per host within the timeout, at even intervals: UDP may drop one
    resolve_timeout: float = 2.0  # for the host names among the addresses, all at once


class _Answers(asyncio.DatagramProtocol):
    def __init__(self, expected: Mapping[bytes, str]) -> None:
        self.expected = expected
        self.answered: set[str] = set()
        self.all_in = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) != DATAGRAM or not data.startswith(REPLY):
            return
        host = self.expected.get(data[len(REPLY) :])
        if host is not None:
            self.answered.add(host)
            if len(self.answered) == len(self.expected):
                self.all_in.set()

    def error_received(self, exc: Exception) -> None:
        # An ICMP unreachable for one host says nothing about the others; silence is the answer.
        pass


class UdpHeartbeatProbe:
    def __init__(self, settings: ProbeSettings = ProbeSettings()) -> None:
        self.settings = settings

    async def answered(self, agents: Mapping[str, str]) -> dict[str, bool]:
        targets = await self._resolve(agents)
        result: dict[str, bool] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            mine = {host: addr for host, (fam, addr) in targets.items() if fam == family}
            if mine:
                result |= await self._round(family, mine)
        return result

    async def _resolve(self, agents: Mapping[str, str]) -> dict[str, tuple[int, tuple[str, int]]]:
        """Host name -> (family, (address, port)). A name that does not resolve is left out:
        the operator's DNS failing is not the host falling silent."""
        loop = asyncio.get_running_loop()

        async def one(address: str) -> tuple[int, tuple[str, int]] | None:
            try:
                name, port = split_address(address)
                found = await loop.getaddrinfo(name, port, type=socket.SOCK_DGRAM)
            except (ValueError, OSError):
                return None
            family, _, _, _, sockaddr = found[0]
            return int(family), (str(sockaddr[0]), int(sockaddr[1]))

        names = list(agents)
        try:
            found = await asyncio.wait_for(
                asyncio.gather(*(one(agents[name]) for name in names)),
                self.settings.resolve_timeout,
            )
        except TimeoutError:
            return {}
        return {name: target for name, target in zip(names, found, strict=True) if target}

    async def _round(self, family: int, targets: Mapping[str, tuple[str, int]]) -> dict[str, bool]:
        nonces = {host: secrets.token_hex(NONCE_BYTES).encode() for host in targets}
        loop = asyncio.get_running_loop()
        transport, answers = await loop.create_datagram_endpoint(
            lambda: _Answers({nonce: host for host, nonce in nonces.items()}),
            family=family,
        )
        try:
            interval = self.settings.timeout / self.settings.sends
            for _ in range(self.settings.sends):
                for host, target in targets.items():
                    if host not in answers.answered:
                        transport.sendto(REQUEST + nonces[host], target)
                try:
                    await asyncio.wait_for(answers.all_in.wait(), interval)
                    break
                except TimeoutError:
                    continue
        finally:
            transport.close()
        return {host: host in answers.answered for host in targets}
