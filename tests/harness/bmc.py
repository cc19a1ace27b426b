"""BMCs on loopback for the fencing drivers' tests: one Redfish and one IPMI BMC per host.

- Redfish: the sushy-tools emulator (`sushy-emulator`) with its fake system driver, one emulated
  ComputerSystem per host, HTTP basic authentication on (an htpasswd file, bcrypt as the
  emulator requires). Its power actions settle 1 to 11 seconds later, as its fake driver
  chooses, so a power off is read back by polling.
- IPMI: a real IPMI 2.0 LAN peer per host, pyghmi's BMC server class holding a chassis power
  state, each in its own subprocess (`python -m tests.harness.bmc ipmi-peer`) on its own UDP
  port, since pyghmi keeps its sessions in process-wide tables.
- A BMC that does not answer, for each protocol: a TCP listener that never accepts (the
  connection opens, no reply comes) and a UDP socket that reads nothing.
- A BMC whose power is stuck on, for the hosts in `stuck_on`: it accepts the power off (Redfish
  answers 204 to ForceOff, the IPMI peer acknowledges the chassis power down) and the system
  keeps reading On, as with a failed power supply relay or a BMC that lost its link to the
  board. The emulator runs under a small wrapper (`python -m tests.harness.bmc
  redfish-emulator`) that replaces its fake driver's power action for those systems only.
- Every power-off request each BMC received is counted (`power_off_requests`), so a test can
  tell one fencing request from two.
- A Redfish BMC slow to answer the power off, for the hosts in `held`: it records the ForceOff
  and holds its answer until the test releases it (`release_power_off`), so a test can act
  while a fencing request is known to be at the BMC and not yet in effect.

A BMC that refuses the credentials is any of the above given a wrong password: both servers
check every request. Everything binds 127.0.0.1; the subprocesses die with the test process
(PR_SET_PDEATHSIG) and are stopped when the context ends.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt

from tests.harness.control_plane import _die_with_parent, free_port, stop_process

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
READY = "ipmi-peer ready"
# JSON [port, username, password, power, stuck_on]: the password stays out of the process list.
PEER_ENV = "MASAKARI_TEST_IPMI_PEER"
# The emulator's configuration key naming the file its wrapper appends each power action to.
POWER_LOG = "MASAKARI_TEST_POWER_LOG"
IPMI_POWER_OFF = "ipmi-peer: chassis power down"
HOLD_LIMIT = 60.0  # seconds a held power off waits for its release before it goes on anyway


@dataclass
class BMCLab:
    """The BMCs of `hosts`, and what a Host's spec.bmc and its Secret would hold."""

    username: str
    password: str
    redfish_url: str
    systems: dict[str, str]  # host -> ComputerSystem id
    ipmi: dict[str, str]  # host -> host:port
    silent_redfish: str  # base URL of a BMC that never answers
    silent_ipmi: str  # host:port of a BMC that never answers
    workdir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def secret_data(self) -> dict[str, str]:
        """The Secret's `data` (base64) holding the lab's credentials."""
        return secret_data(self.username, self.password)

    def redfish_power(self, host: str) -> str:
        """The emulated system's PowerState as the emulator reports it, read without the
        driver under test."""
        url = f"{self.redfish_url}/redfish/v1/Systems/{self.systems[host]}"
        request = urllib.request.Request(url)
        token = _basic(self.username, self.password)
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            state: str = json.load(answer)["PowerState"]
        return state

    def bmc(self, method: str, host: str, credentials: str = "bmc-credentials") -> dict[str, str]:
        """A Host's spec.bmc for its BMC of `method`, its credentials in Secret `credentials`."""
        if method == "redfish":
            return {
                "address": self.redfish_url,
                "system": self.systems[host],
                "credentialsSecret": credentials,
            }
        return {"address": self.ipmi[host], "credentialsSecret": credentials}

    def release_power_off(self, host: str) -> None:
        """Let the held ForceOff of `host` (see `held`) go on: the system powers off 1 to 11 s
        later, as the emulator's fake driver chooses."""
        (self.workdir / f"release-{self.systems[host]}").touch()

    def power_off_requests(self, method: str, host: str) -> int:
        """How many power-off requests the host's BMC of `method` received, as the BMC itself
        counted them (the emulator's wrapper, the IPMI peer's log)."""
        if method == "redfish":
            actions = _lines(self.workdir / "power-actions.log")
            return actions.count(f"{self.systems[host]} ForceOff")
        return _lines(self.workdir / f"ipmi-{host}.log").count(IPMI_POWER_OFF)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []


def secret_data(username: str, password: str) -> dict[str, str]:
    return {"username": _b64(username), "password": _b64(password)}


def credentials_secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    """The manifest of a Secret `name` holding `data` (see `secret_data`)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _basic(username: str, password: str) -> str:
    return _b64(f"{username}:{password}")


def _htpasswd(path: Path, username: str, password: str) -> None:
    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"{username}:{digest}\n")


def _emulator_config(
    workdir: Path,
    systems: dict[str, str],
    power: dict[str, str],
    stuck_on: set[str],
    held: set[str],
) -> Path:
    fake = [
        {
            "uuid": ident,
            "name": host,
            "power_state": power.get(host, "On"),
            "nics": [],
            # Kept in the fake driver's record of the system, where the wrapper reads it.
            "stuck_on": host in stuck_on,
            "hold_power_off": host in held,
        }
        for host, ident in systems.items()
    ]
    config = workdir / "emulator.conf"
    config.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake!r}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(workdir / 'htpasswd')!r}\n"
        f"SUSHY_EMULATOR_STATE_DIR = {str(workdir / 'state')!r}\n"
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
        f"{POWER_LOG} = {str(workdir / 'power-actions.log')!r}\n"
    )
    return config


def _wait_redfish(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sushy-emulator exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"{url}/redfish/v1/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sushy-emulator not up after {START_TIMEOUT}s: {log.read_text()[-2000:]}")


def _start_ipmi_peer(peer: tuple[int, str, str, str, bool], log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{PEER_ENV: json.dumps(peer)})
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.bmc", "ipmi-peer"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log.open("wb"),
        preexec_fn=_die_with_parent,
    )
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
    line = process.stdout.readline().decode() if ready else ""
    if READY not in line:
        stop_process(process)
        raise RuntimeError(f"IPMI peer not ready: {line!r} {log.read_text()[-2000:]}")
    return process


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_bmc_lab(
    hosts: list[str],
    power: dict[str, str] | None = None,
    stuck_on: tuple[str, ...] = (),
    held: tuple[str, ...] = (),
) -> Iterator[BMCLab]:
    """BMCs for `hosts`, each powered as `power` says ("On" by default); those of the hosts in
    `stuck_on` accept a power off and stay on; the Redfish BMCs of those in `held` hold their
    answer to a power off until `release_power_off`."""
    power = power or {}
    # Random, so that a test finding either in a log line or a message cannot be a coincidence;
    # IPMI 2.0 takes passwords of 20 bytes at most.
    username = f"fencer-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(15)
    workdir = Path(tempfile.mkdtemp(prefix="bmc-lab-"))
    silent_tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent_udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # Listening with a backlog and never accepting: the TCP handshake completes in the
        # kernel, and then nothing answers, as with a hung BMC web server.
        silent_tcp.bind((LOOPBACK, 0))
        silent_tcp.listen(64)
        silent_udp.bind((LOOPBACK, 0))

        systems = {host: str(uuid.uuid4()) for host in hosts}
        _htpasswd(workdir / "htpasswd", username, password)
        config = _emulator_config(workdir, systems, power, set(stuck_on), set(held))
        port = free_port()
        emulator_log = workdir / "sushy-emulator.log"
        emulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.harness.bmc",
                "redfish-emulator",
                "--config",
                str(config),
                "-i",
                LOOPBACK,
                "-p",
                str(port),
            ],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
            stderr=emulator_log.open("wb"),
            preexec_fn=_die_with_parent,
        )
        processes.append(emulator)
        redfish_url = f"http://{LOOPBACK}:{port}"
        _wait_redfish(redfish_url, emulator, emulator_log)

        ports = {host: _free_udp_port() for host in hosts}
        for host in hosts:
            peer = (ports[host], username, password, power.get(host, "On"), host in stuck_on)
            processes.append(_start_ipmi_peer(peer, workdir / f"ipmi-{host}.log"))
        yield BMCLab(
            username=username,
            password=password,
            redfish_url=redfish_url,
            systems=systems,
            ipmi={host: f"{LOOPBACK}:{ports[host]}" for host in hosts},
            silent_redfish=f"http://{LOOPBACK}:{silent_tcp.getsockname()[1]}",
            silent_ipmi=f"{LOOPBACK}:{silent_udp.getsockname()[1]}",
            workdir=workdir,
            processes=processes,
        )
    finally:
        for process in processes:
            stop_process(process, timeout=5)
        silent_tcp.close()
        silent_udp.close()
        shutil.rmtree(workdir, ignore_errors=True)


def _serve_redfish_emulator(arguments: list[str]) -> None:
    """sushy-emulator with its fake driver, every power action appended to the file the
    configuration names, a ForceOff of a system marked `hold_power_off` held until its release
    file appears beside that file, and one of a system marked `stuck_on` accepted and
    dropped."""
    from sushy_tools.emulator import main as emulator
    from sushy_tools.emulator.resources.systems import fakedriver

    accepted = fakedriver.FakeDriver.set_power_state

    def set_power_state(self: Any, identity: str, state: str) -> None:
        system = self._get(identity)
        with open(self._config[POWER_LOG], "a") as actions:
            actions.write(f"{system['uuid']} {state}\n")
        if system.get("hold_power_off") and state == "ForceOff":
            release = Path(self._config[POWER_LOG]).parent / f"release-{system['uuid']}"
            deadline = time.monotonic() + HOLD_LIMIT
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        if system.get("stuck_on") and state in ("ForceOff", "GracefulShutdown"):
            return
        accepted(self, identity, state)

    fakedriver.FakeDriver.set_power_state = set_power_state
    sys.argv = ["sushy-emulator", *arguments]
    sys.exit(emulator.main())


def _serve_ipmi_peer() -> None:
    """An IPMI peer's process: a pyghmi BMC on (port, username, password, power, stuck_on)."""
    from pyghmi.ipmi import bmc as ipmi_bmc
    from pyghmi.ipmi.private import serversession
    from pyghmi.ipmi.private import session as ipmi_session

    # pyghmi's server speaks cipher suite 3 (HMAC-SHA1) only, yet answers every RMCP+ open
    # session request as if it had been granted, and pyghmi's client asks for suite 17
    # (HMAC-SHA256) first: the two then disagree on the RAKP hashes. A BMC limited to suite 3
    # refuses the request ("no matching authentication payload"), and the client falls back;
    # this one now does the same.
    granted = serversession.ServerSession.create_open_session_response

    def open_session(self: Any, request: bytearray) -> bytearray:
        auth_algorithm = request[12]
        if auth_algorithm != 1:
            self.clientsessionid = request[4:8]
            return bytearray([request[0], 0x11, 0, 0]) + request[4:8]
        response: bytearray = granted(self, request)
        return response

    serversession.ServerSession.create_open_session_response = open_session

    # Every packet from a client address goes to that address's session while one is filed,
    # and pyghmi's server never unfiles a closed one: the driver's next login (it logs out after
    # each call, from the same socket) then reached the dead session and stalled.
    def close_server_session(self: Any) -> None:
        filed = ipmi_session.Session.bmc_handlers.get(self.sockaddr, {})
        if filed.get(self.bmc.port) is self:
            del filed[self.bmc.port]

    serversession.ServerSession.close_server_session = close_server_session

    class PoweredBmc(ipmi_bmc.Bmc):  # type: ignore[misc]
        """A BMC whose chassis is a power state in memory; power down is immediate, as on
        most BMCs (the chassis reports off once the command is acknowledged), unless the
        power is stuck on: acknowledged, and nothing changes."""

        def __init__(self, authdata: dict[str, str], port: int, power: str, stuck: bool) -> None:
            super().__init__(authdata, port=port, address=LOOPBACK)
            self.power = power.lower()
            self.stuck = stuck

        def get_power_state(self) -> str:
            return self.power

        def power_off(self) -> None:
            print(IPMI_POWER_OFF, file=sys.stderr, flush=True)
            if not self.stuck:
                self.power = "off"

        def power_on(self) -> None:
            self.power = "on"

    port, username, password, power, stuck = json.loads(os.environ[PEER_ENV])
    PoweredBmc({username: password}, port, power, stuck)
    print(READY, flush=True)
    ipmi_bmc.Bmc.listen()


if __name__ == "__main__":
    if sys.argv[1:] == ["ipmi-peer"]:
        _serve_ipmi_peer()
    elif sys.argv[1:2] == ["redfish-emulator"]:
        _serve_redfish_emulator(sys.argv[2:])
    else:
        sys.exit(f"usage: {sys.argv[0]} ipmi-peer | redfish-emulator [sushy-emulator options]")
