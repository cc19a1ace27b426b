"""A real Corosync 3 + Pacemaker 2.1 cluster on one machine, for tests and benchmarks.

Every node runs in network, mount, UTS and PID namespaces of its own. Corosync (knet) talks over
veth pairs plugged into a bridge that lives in a hub network namespace of the lab's own, so the
root network namespace gets no address, route or link. Killing a node is one SIGKILL to its
PID-namespace init: the kernel then kills every process of the node, like a power cut. Fencing is
`fence_dummy`, which records success without touching anything, so a "fenced" partitioned node
keeps running, as the tests of partitions need.

    with pacemaker_lab.running(members=3, remotes=1) as lab:
        lab.crm_mon("node1")
        lab.kill("node3"); lab.start_node("node3")

    python -m tests.harness.pacemaker_lab up [--members 3] [--remotes 0]   # until Ctrl-C

Packages come from hack/pacemaker-lab/install.sh (`make pacemaker-lab`). Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from controller.monitors import pacemaker_alert

from .control_plane import _die_with_parent

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "hack" / "pacemaker-lab" / "install.sh"
NODE_INIT = Path(__file__).with_name("pacemaker_node_init.sh")
REMOTED = Path(
    os.environ.get("MASAKARI_PCMK_REMOTED", "/opt/masakari-pcmk-remote/usr/sbin/pacemaker-remoted")
)
# Lab directories and namespaces carry this prefix; a sweep removes those of dead owners.
PREFIX = "mko"
STATE_ROOT = Path(tempfile.gettempdir())
SUBNET = "10.213.0"
COMMAND_TIMEOUT = 30.0
FAILING_STATUS = "/var/lib/pacemaker/fence-failing.status"
CLONE_NEWNET = 0x40000000


class LabError(RuntimeError):
    pass


def missing_prerequisites() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the Pacemaker lab needs root (network namespaces, bind mounts)"
    needed = ["corosync", "pacemakerd", "crm_mon", "crm_attribute", "fence_dummy", "nsenter"]
    lacking = [name for name in needed if shutil.which(name, path=_path()) is None]
    if lacking:
        return f"missing {', '.join(lacking)}: run `make pacemaker-lab` ({INSTALL_SCRIPT})"
    return None


def _path() -> str:
    return os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def _run(argv: Sequence[str], timeout: float = COMMAND_TIMEOUT) -> str:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


@dataclass
class LabNode:
    name: str
    kind: str  # "member" or "remote"
    address: str
    directory: Path
    holder: subprocess.Popen[bytes] | None = None

    @property
    def is_remote(self) -> bool:
        return self.kind == "remote"


@dataclass
class PacemakerLab:
    members: int = 3
    remotes: int = 0
    fencing: bool = True
    fence_delay: int = 2
    # Nodes whose fencing must not succeed, for the tests of "never evacuated unfenced":
    # `unfenceable` ones are in no device's pcmk_host_list (the fencer answers "no device"),
    # `failing_fence` ones have a device of their own that answers failure.
    unfenceable: tuple[str, ...] = ()
    failing_fence: tuple[str, ...] = ()
    token_ms: int = 1000
    lab_id: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: dict[str, LabNode] = field(default_factory=dict)
    _bridge: _ApiserverBridge | None = None

    @property
    def directory(self) -> Path:
        return STATE_ROOT / f"{PREFIX}-pcmk-lab-{self.lab_id}"

    @property
    def hub(self) -> str:
        return f"{PREFIX}{self.lab_id}-hub"

    def netns(self, node: str) -> str:
        return f"{PREFIX}{self.lab_id}-{node}"

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float = 90.0) -> PacemakerLab:
        problem = missing_prerequisites()
        if problem:
            raise LabError(problem)
        if self.remotes and not REMOTED.is_file():
            raise LabError(f"no pacemaker-remoted at {REMOTED}: run `make pacemaker-lab`")
        sweep_stale_labs()
        try:
            self.directory.mkdir(parents=True)
            (self.directory / "owner.pid").write_text(str(os.getpid()))
            for index in range(1, self.members + 1):
                self._add_node(f"node{index}", "member", f"{SUBNET}.{index}")
            for index in range(1, self.remotes + 1):
                self._add_node(f"remote{index}", "remote", f"{SUBNET}.{100 + index}")
            self._make_network()
            self._write_configuration()
            for name in self.nodes:
                self.start_node(name)
            self.wait_online(list(self.nodes), timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _add_node(self, name: str, kind: str, address: str) -> None:
        self.nodes[name] = LabNode(name, kind, address, self.directory / name)

    def _make_network(self) -> None:
        _run(["ip", "netns", "add", self.hub])
        _run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        for node in self.nodes.values():
            netns = self.netns(node.name)
            _run(["ip", "netns", "add", netns])
            _run(["ip", "-n", netns, "link", "set", "lo", "up"])
            # The veth is created in the hub and its peer moved straight into the node: neither
            # end ever exists in the root namespace.
            _run(
                [
                    "ip",
                    "-n",
                    self.hub,
                    "link",
                    "add",
                    f"v-{node.name}",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    netns,
                ]
            )
            _run(["ip", "-n", self.hub, "link", "set", f"v-{node.name}", "master", "br0", "up"])
            _run(["ip", "-n", netns, "addr", "add", f"{node.address}/24", "dev", "eth0"])
            _run(["ip", "-n", netns, "link", "set", "eth0", "up"])

    def _write_configuration(self) -> None:
        shared = self.directory / "shared"
        shared.mkdir()
        _run(["corosync-keygen", "-l", "-k", str(shared / "authkey")])
        (shared / "pcmk-authkey").write_bytes(os.urandom(4096))
        members = [node for node in self.nodes.values() if not node.is_remote]
        hosts = "127.0.0.1 localhost\n" + "".join(
            f"{node.address} {node.name}\n" for node in self.nodes.values()
        )
        for node in self.nodes.values():
            directory = node.directory
            for sub in (
                "etc-corosync",
                "var-lib-corosync",
                "log-corosync",
                "etc-pacemaker",
                "log-pacemaker",
                "var-lib-pacemaker/cib",
                "var-lib-pacemaker/pengine",
                "var-lib-pacemaker/blackbox",
                "var-lib-pacemaker/cores",
            ):
                (directory / sub).mkdir(parents=True)
            (directory / "etc-corosync" / "corosync.conf").write_text(
                _corosync_conf(members, self.token_ms)
            )
            shutil.copy(shared / "authkey", directory / "etc-corosync" / "authkey")
            os.chmod(directory / "etc-corosync" / "authkey", 0o400)
            key = directory / "etc-pacemaker" / "authkey"
            shutil.copy(shared / "pcmk-authkey", key)
            os.chmod(key, 0o440)
            shutil.chown(key, group="haclient")
            (directory / "hosts").write_text(hosts)
            if not node.is_remote:
                (directory / "var-lib-pacemaker" / "cib" / "cib.xml").write_text(self._seed_cib())
            if self.failing_fence:
                failing = directory / "var-lib-pacemaker" / Path(FAILING_STATUS).name
                failing.write_text("unknown")
            for sub in ("var-lib-pacemaker", "log-pacemaker"):
                _run(["chown", "-R", "hacluster:haclient", str(directory / sub)])
            os.chmod(directory / "log-pacemaker", 0o770)

    def _seed_cib(self) -> str:
        """The first CIB of every member: options, the fence device and the remote nodes.

        dc-deadtime=2s: the 20 s default delays the first DC election as long. startup-fencing
        off: nodes that start a second late are not "fenced" into the history at start-up.
        """
        options = {
            "stonith-enabled": "true" if self.fencing else "false",
            "dc-deadtime": "2s",
            "startup-fencing": "false",
            "cluster-recheck-interval": "1min",
        }
        resources = ""
        if self.fencing:
            special = set(self.unfenceable) | set(self.failing_fence)
            fenceable = [name for name in self.nodes if name not in special]
            resources += _fence_dummy("fence-dummy", fenceable, {"delay": str(self.fence_delay)})
            if self.failing_fence:
                # Its status file reads neither on nor off (a BMC that cannot tell), so the
                # agent fails every "off" at once. fence_dummy's type=fail is no use here: run
                # by the fencer it polls the plug until the fencing times out instead.
                resources += _fence_dummy(
                    "fence-failing", self.failing_fence, {"status_file": FAILING_STATUS}
                )
        for node in self.nodes.values():
            if node.is_remote:
                resources += (
                    f'<primitive id="{node.name}" class="ocf" provider="pacemaker" type="remote">'
                    f'<instance_attributes id="{node.name}-ia">'
                    f'<nvpair id="{node.name}-server" name="server" value="{node.name}"/>'
                    f'<nvpair id="{node.name}-reconnect" name="reconnect_interval" value="5s"/>'
                    "</instance_attributes><operations>"
                    f'<op id="{node.name}-monitor" name="monitor" interval="2s" timeout="10s"/>'
                    "</operations></primitive>"
                )
        nvpairs = "".join(
            f'<nvpair id="opt-{name}" name="{name}" value="{value}"/>'
            for name, value in options.items()
        )
        return (
            '<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" '
            'num_updates="0" admin_epoch="0"><configuration><crm_config>'
            f'<cluster_property_set id="cib-bootstrap-options">{nvpairs}</cluster_property_set>'
            f"</crm_config><nodes/><resources>{resources}</resources><constraints/>"
            "</configuration><status/></cib>\n"
        )

    def start_node(self, name: str) -> None:
        """Power a node on: a fresh PID namespace running the node's daemons."""
        node = self.nodes[name]
        if node.holder is not None and node.holder.poll() is None:
            raise LabError(f"{name} is already running")
        log = (node.directory / "init.log").open("ab")
        node.holder = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.netns(name),
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "bash",
                str(NODE_INIT),
                str(node.directory),
                name,
                node.kind,
                str(REMOTED),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def init_pid(self, name: str, timeout: float = 10.0) -> int:
        """Host PID of the node's PID-namespace init (the namespace holder's only child)."""
        holder = self.nodes[name].holder
        if holder is None or holder.poll() is not None:
            raise LabError(f"{name} is not running")
        deadline = time.monotonic() + timeout
        children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children")
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                pids = children.read_text().split()
                if pids:
                    return int(pids[0])
            time.sleep(0.02)
        raise LabError(f"{name}: no init process after {timeout}s")

    def is_running(self, name: str) -> bool:
        holder = self.nodes[name].holder
        return holder is not None and holder.poll() is None

    def kill(self, name: str) -> None:
        """Power a node off: SIGKILL to its PID-namespace init kills every process of it."""
        node = self.nodes[name]
        holder = node.holder
        if holder is None or holder.poll() is not None:
            return
        with contextlib.suppress(LabError, ProcessLookupError):
            os.kill(self.init_pid(name, timeout=1), signal.SIGKILL)
        # unshare reaps its child and exits; killing it too early would leave the init a
        # zombie for the machine's PID 1 to reap whenever it gets to it.
        try:
            holder.wait(timeout=10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=30)

    def cut(self, name: str) -> None:
        """Partition a node: its link to the bridge goes down (its loopback stays)."""
        _run(["ip", "-n", self.hub, "link", "set", f"v-{name}", "down"])

    def restore(self, name: str) -> None:
        _run(["ip", "-n", self.hub, "link", "set", f"v-{name}", "up"])

    def stop_stack(self, name: str, observer: str, timeout: float = 60.0) -> None:
        """Stop Pacemaker, then Corosync, on a node by hand, as an administrator would: the
        node leaves cleanly (offline, not unclean) and the cluster never fences it, while the
        machine itself runs on."""
        self.exec(name, ["pacemakerd", "--shutdown"])
        # Corosync waits until Pacemaker is gone (the node pending), or it leaves uncleanly.
        self.wait_node(name, observer, timeout, pending="true")
        self.exec(name, ["corosync-cfgtool", "-H", "--force"])
        state = self.wait_node(name, observer, timeout, online="false")
        if state.get("unclean") != "false":
            raise LabError(f"{name} left uncleanly: {state}")

    def stop(self) -> None:
        """Tear everything down: processes, bridge proxy, namespaces, files."""
        if self._bridge is not None:
            self._bridge.stop()
            self._bridge = None
        for name in self.nodes:
            with contextlib.suppress(Exception):
                self.kill(name)
        _remove_namespaces(f"{PREFIX}{self.lab_id}-")
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- inside a node ----------------------------------------------------------------------

    def nsenter_prefix(self, name: str, pid_namespace: bool = False) -> list[str]:
        """The command prefix that runs a program inside a node (net, mount, UTS namespaces).

        Pacemaker's IPC uses abstract unix sockets (network namespace) and /dev/shm ring
        buffers (mount namespace), so clients need both.
        """
        flags = ["-n", "-m", "-u"] + (["-p"] if pid_namespace else [])
        return ["nsenter", "-t", str(self.init_pid(name)), *flags, "--"]

    def exec(
        self, name: str, argv: Sequence[str], timeout: float = COMMAND_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self.nsenter_prefix(name) + list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise LabError(
                f"{name}: {' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            )
        return result

    def install_alert_agent(self, socket_path: str) -> None:
        """Pacemaker's node and fencing alerts to the project's agent
        (controller/monitors/pacemaker_alert.py), its recipient the host monitor's socket,
        `socket_path` (each node's own /run)."""
        cib = pacemaker_alert.cib_alerts(pacemaker_alert.__file__, socket_path)
        member = next(name for name, node in self.nodes.items() if not node.is_remote)
        self.exec(
            member,
            [
                "cibadmin",
                "--modify",
                "--scope",
                "configuration",
                "--xml-text",
                f"<configuration>{cib}</configuration>",
            ],
        )

    def crm_mon(self, name: str) -> str:
        return self.exec(name, ["crm_mon", "--output-as=xml"]).stdout

    def node_states(self, observer: str) -> dict[str, dict[str, str]]:
        """Each node's attributes as `observer` sees them, {} when it cannot tell."""
        try:
            root = ET.fromstring(self.crm_mon(observer))
        except (LabError, ET.ParseError, subprocess.TimeoutExpired):
            return {}
        return {node.get("name", ""): dict(node.attrib) for node in root.iterfind("nodes/node")}

    def wait_online(
        self, names: Sequence[str], observer: str | None = None, timeout: float = 90.0
    ) -> float:
        """Wait until every one of `names` is online and fully joined; returns seconds taken."""
        begin = time.monotonic()
        deadline = begin + timeout
        watchers = [observer] if observer else [n for n in names if not self.nodes[n].is_remote]
        states: dict[str, dict[str, str]] = {}
        while time.monotonic() < deadline:
            for watcher in watchers:
                states = self.node_states(watcher)
                joined = [
                    n
                    for n in names
                    if states.get(n, {}).get("online") == "true"
                    and states.get(n, {}).get("pending") == "false"
                ]
                if len(joined) == len(names):
                    return time.monotonic() - begin
            time.sleep(0.2)
        raise LabError(f"nodes {list(names)} not online after {timeout}s; last view: {states}")

    def wait_node(
        self, name: str, observer: str, timeout: float = 60.0, **attributes: str
    ) -> dict[str, str]:
        """Wait until `observer` reports node `name` with the given attribute values."""
        deadline = time.monotonic() + timeout
        state: dict[str, str] = {}
        while time.monotonic() < deadline:
            state = self.node_states(observer).get(name, {})
            if state and all(state.get(key) == value for key, value in attributes.items()):
                return state
            time.sleep(0.1)
        raise LabError(f"{name} as {observer} sees it: {state}, wanted {attributes}")

    # -- reaching the API server from inside a node -----------------------------------------

    def forward_into_nodes(self, port: int, host: str = "127.0.0.1") -> None:
        """Make `host:port` of the root namespace reachable as 127.0.0.1:port in every node.

        A listening socket is opened inside each node's network namespace (a thread enters it,
        binds, and ends), and its connections are relayed to the root namespace's loopback. The
        root namespace gets no address, route or link, and the node's own view stays a node's:
        an agent inside talks to "its" loopback, while its cluster network can be cut.
        """
        if self._bridge is None:
            self._bridge = _ApiserverBridge(host, port)
        self._bridge.serve([_listen_in(self.netns(name), port) for name in self.nodes])


def _fence_dummy(device: str, targets: Sequence[str], parameters: dict[str, str]) -> str:
    """A fence_dummy stonith primitive for `targets` (none: a device that fences nothing)."""
    attributes = {
        "pcmk_host_list": " ".join(targets),
        # pcmk_host_check=static-list: only the listed nodes, never "ask the agent".
        "pcmk_host_check": "static-list",
        "status_file": f"/var/lib/pacemaker/{device}.status",
        **parameters,
    }
    nvpairs = "".join(
        f'<nvpair id="{device}-{name}" name="{name}" value="{value}"/>'
        for name, value in attributes.items()
    )
    return (
        f'<primitive id="{device}" class="stonith" type="fence_dummy">'
        f'<instance_attributes id="{device}-ia">{nvpairs}</instance_attributes>'
        f'<operations><op id="{device}-monitor" name="monitor" interval="60s"/>'
        "</operations></primitive>"
    )


def _corosync_conf(members: Sequence[LabNode], token_ms: int) -> str:
    nodelist = "".join(
        f"    node {{\n        name: {node.name}\n        nodeid: {index}\n"
        f"        ring0_addr: {node.address}\n    }}\n"
        for index, node in enumerate(members, start=1)
    )
    return (
        "totem {\n    version: 2\n    cluster_name: masakarilab\n    transport: knet\n"
        "    crypto_cipher: aes256\n    crypto_hash: sha256\n"
        f"    token: {token_ms}\n}}\n"
        "logging {\n    to_logfile: yes\n    logfile: /var/log/corosync/corosync.log\n"
        "    to_stderr: no\n    to_syslog: no\n    timestamp: on\n}\n"
        "quorum {\n    provider: corosync_votequorum\n}\n"
        f"nodelist {{\n{nodelist}}}\n"
    )


def _listen_in(netns: str, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port inside a named network namespace."""
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def enter_and_listen() -> None:
        # setns changes the calling thread only; this thread ends right after.
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            with open(f"/run/netns/{netns}", "rb") as handle:
                if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(64)
            listener.setblocking(False)
            made.append(listener)
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=enter_and_listen, name=f"listen-{netns}")
    thread.start()
    thread.join(timeout=10)
    if failure or not made:
        raise LabError(f"cannot listen inside {netns}: {failure}")
    return made[0]


class _ApiserverBridge:
    """Relays connections accepted inside node namespaces to a root-namespace address."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.servers: list[asyncio.Server] = []

    def serve(self, listeners: list[socket.socket]) -> None:
        for listener in listeners:
            future = asyncio.run_coroutine_threadsafe(
                asyncio.start_server(self._relay, sock=listener), self.loop
            )
            self.servers.append(future.result(timeout=10))

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(OSError):
                    sink.close()

        # Cancelled at teardown: end quietly, the sockets are closed by the pumps.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()
            relays = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in relays:
                task.cancel()
            await asyncio.gather(*relays, return_exceptions=True)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


def _remove_namespaces(prefix: str) -> None:
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    for line in listed.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "delete", name], timeout=10, check=False)


def sweep_stale_labs() -> None:
    """Remove labs whose owning process died without tearing them down (e.g. SIGKILLed runs).

    Their node processes already died with the owner (PR_SET_PDEATHSIG); what stays behind is
    namespaces and files. Labs of living owners are left alone.
    """
    for directory in STATE_ROOT.glob(f"{PREFIX}-pcmk-lab-*"):
        owner = directory / "owner.pid"
        with contextlib.suppress(OSError, ValueError):
            if Path(f"/proc/{int(owner.read_text())}").exists():
                continue
        lab_id = directory.name.rsplit("-", 1)[-1]
        _remove_namespaces(f"{PREFIX}{lab_id}-")
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def running(
    members: int = 3,
    remotes: int = 0,
    fencing: bool = True,
    fence_delay: int = 2,
    unfenceable: Sequence[str] = (),
    failing_fence: Sequence[str] = (),
) -> Iterator[PacemakerLab]:
    lab = PacemakerLab(
        members=members,
        remotes=remotes,
        fencing=fencing,
        fence_delay=fence_delay,
        unfenceable=tuple(unfenceable),
        failing_fence=tuple(failing_fence),
    )
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.pacemaker_lab")
    parser.add_argument("action", choices=["up", "sweep"])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--remotes", type=int, default=0)
    parser.add_argument("--no-fencing", action="store_true")
    parser.add_argument("--unfenceable", nargs="*", default=[], help="nodes no device fences")
    parser.add_argument(
        "--failing-fence", nargs="*", default=[], help="nodes whose fence device fails"
    )
    args = parser.parse_args(argv)
    if args.action == "sweep":
        sweep_stale_labs()
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with running(
        args.members,
        args.remotes,
        fencing=not args.no_fencing,
        unfenceable=args.unfenceable,
        failing_fence=args.failing_fence,
    ) as lab:
        print(f"lab {lab.lab_id} up in {lab.directory}; nodes: {', '.join(lab.nodes)}")
        for name in lab.nodes:
            if lab.nodes[name].is_remote:
                continue
            print(f"  {name}: {' '.join(lab.nsenter_prefix(name))} crm_mon -1")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
