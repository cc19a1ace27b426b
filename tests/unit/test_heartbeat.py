"""The heartbeat agent and the operator's probe over real UDP on loopback: an agent that runs
answers, one that stopped (or never ran) is silent within the probe's bounded time, an address
that does not resolve is left out rather than called silent, and the agent answers only
well-formed probes, never more bytes than it got, and no faster than its budget."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.cli import build_parser
from controller.drivers.heartbeat import (
    DATAGRAM,
    REPLY,
    REQUEST,
    ProbeSettings,
    UdpHeartbeatProbe,
    reply_to,
    split_address,
)
from controller.monitors.heartbeat_agent import Budget, bind, serve

REPO = Path(__file__).resolve().parents[2]
FAST = ProbeSettings(timeout=0.6, sends=3, resolve_timeout=2.0)


class Agent:
    def __init__(self, listen: str = "127.0.0.1:0", rate: float = 1000.0) -> None:
        self.sock = bind(listen)
        self.port = self.sock.getsockname()[1]
        self.stopping = [False]
        self.answered = 0
        self.budget = Budget(rate)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.answered = serve(self.sock, self.budget, self.stopping, 0.1)

    def stop(self) -> None:
        self.stopping[0] = True
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()
        self.sock.close()


@pytest.fixture
def agent() -> Iterator[Agent]:
    running = Agent()
    yield running
    if not running.stopping[0]:
        running.stop()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def probe(agents: dict[str, str], settings: ProbeSettings = FAST) -> tuple[dict[str, bool], float]:
    started = time.monotonic()
    answers = asyncio.run(UdpHeartbeatProbe(settings).answered(agents))
    return answers, time.monotonic() - started


def test_a_running_agent_answers_and_a_stopped_one_is_silent(agent: Agent) -> None:
    silent_port = closed_port()
    answers, elapsed = probe(
        {"alive": f"127.0.0.1:{agent.port}", "dead": f"127.0.0.1:{silent_port}"}
    )
    assert answers == {"alive": True, "dead": False}
    # Bounded by the round's timeout, give or take a loaded machine's scheduling.
    assert elapsed < FAST.timeout + 2.0, elapsed

    agent.stop()
    answers, _ = probe({"alive": f"127.0.0.1:{agent.port}"})
    assert answers == {"alive": False}


def test_every_agent_answering_ends_the_round_early(agent: Agent) -> None:
    patient = ProbeSettings(timeout=6.0, sends=3)
    answers, elapsed = probe({f"h{i}": f"127.0.0.1:{agent.port}" for i in range(20)}, patient)
    assert all(answers.values()) and len(answers) == 20
    assert elapsed < patient.timeout / 2, elapsed


def test_an_address_that_does_not_resolve_is_not_called_silent(agent: Agent) -> None:
    answers, _ = probe({"gone": "no-such-host.invalid:7411", "alive": f"127.0.0.1:{agent.port}"})
    assert answers == {"alive": True}


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        six = Agent("[::1]:0")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        answers, _ = probe({"six": f"[::1]:{six.port}"})
        assert answers == {"six": True}
    finally:
        six.stop()


def test_the_agent_answers_only_probes_with_as_many_bytes(agent: Agent) -> None:
    nonce = b"0123456789abcdef" * 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        for junk in (b"hello", REQUEST + nonce[:-1], REQUEST + nonce + b"x", b"MHB1R " + nonce):
            sock.sendto(junk, ("127.0.0.1", agent.port))
            with pytest.raises(TimeoutError):
                sock.recvfrom(1024)
        sock.sendto(REQUEST + nonce, ("127.0.0.1", agent.port))
        answer, _ = sock.recvfrom(1024)
    assert answer == REPLY + nonce and len(answer) == DATAGRAM


def test_reply_to_refuses_what_is_not_a_probe() -> None:
    nonce = b"ab" * 16
    assert reply_to(REQUEST + nonce) == REPLY + nonce
    assert reply_to(REQUEST + b"AB" * 16) is None  # only the probe's own lowercase hex
    assert reply_to(REPLY + nonce) is None


def test_the_budget_drops_a_flood() -> None:
    budget = Budget(rate=10.0, at=100.0)
    taken = sum(budget.take(100.0) for _ in range(100))
    assert taken == 10
    assert not budget.take(100.05)
    assert budget.take(100.15)  # a token back after a tenth of a second


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("compute-1", ("compute-1", 7411)),
        ("compute-1.example:9000", ("compute-1.example", 9000)),
        ("10.0.0.5:7411", ("10.0.0.5", 7411)),
        ("[fd00::5]", ("fd00::5", 7411)),
        ("[fd00::5]:9", ("fd00::5", 9)),
    ],
)
def test_addresses(address: str, expected: tuple[str, int]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize("address", ["fd00::5", "host:0", "host:70000", "[x]:1", ""])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(ValueError):
        split_address(address)


def test_the_subcommand_exists() -> None:
    args = build_parser().parse_args(["heartbeat-agent", "--listen", "127.0.0.1:0"])
    assert args.listen == "127.0.0.1:0" and args.max_rate == 200.0


def test_the_systemd_units_command_runs_the_agent_and_sigterm_stops_it() -> None:
    """The unit's ExecStart, with its Environment= defaults (the address moved to loopback and
    a free port) and this interpreter for the installed one."""
    unit = (REPO / "deploy/heartbeat-agent/masakari-heartbeat-agent.service").read_text()
    unit = unit.replace("\\\n", " ")
    env = dict(
        line.removeprefix("Environment=").split("=", 1)
        for line in unit.splitlines()
        if line.startswith("Environment=")
    )
    env["MASAKARI_HEARTBEAT_LISTEN"] = "127.0.0.1:0"
    lines = unit.splitlines()
    [command] = [line.removeprefix("ExecStart=") for line in lines if line.startswith("ExecStart=")]
    argv = shlex.split(command)
    assert argv[0] == "/opt/masakari-operator/bin/python3"
    argv = [sys.executable] + [re.sub(r"\$\{(\w+)\}", lambda m: env[m[1]], a) for a in argv[1:]]
    with subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True) as agent:
        assert agent.stderr is not None
        line = agent.stderr.readline()
        assert "answering on ('127.0.0.1'," in line, line
        port = int(line.rsplit(",", 1)[1].strip(" )\n"))
        answers, _ = probe({"me": f"127.0.0.1:{port}"})
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=10) == 0
    assert answers == {"me": True}
