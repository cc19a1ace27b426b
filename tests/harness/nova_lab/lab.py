"""Real Nova 34 on loopback: the processes, their configuration and their lifecycle.

MariaDB and RabbitMQ (Debian packages) run as private instances with their data in the lab's
directory, never the system's services. Placement, Glance (file store), nova-api, conductor,
scheduler and one nova-compute per host (fake virt driver) run from the virtualenvs that
hack/nova-lab/install.sh builds. No Keystone: a paste filter stands in for keystonemiddleware,
and Nova reaches Placement, Glance and the Neutron stub with keystoneauth's admin_token plugin.
Every port is picked free on 127.0.0.1 at start. See docs/nova-lab.md.
"""

from __future__ import annotations

import configparser
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.control_plane import free_port, run_install_script

REPO = Path(__file__).resolve().parents[3]
INSTALL_SCRIPT = REPO / "hack" / "nova-lab" / "install.sh"
RUNTIME = Path(__file__).resolve().parent / "runtime"
INSTALL_TIMEOUT = 1800
COMMAND_TIMEOUT = 300
READY_TIMEOUT = 180.0

# Tokens the lab's services accept. Not a secret: everything listens on loopback only.
TOKEN = "admin"

# Timings that decide how fast a test sees a host die (see docs/nova-lab.md for the reasons).
REPORT_INTERVAL = 2  # seconds between nova-compute heartbeats
SERVICE_DOWN_TIME = 10  # a service whose last heartbeat is older counts as down
RPC_RESPONSE_TIMEOUT = 15  # nova-api blocks this long on a call to a dead compute (F14)


class NovaLabError(RuntimeError):
    pass


def install() -> Path:
    """Run the project's installer (idempotent) and return the directory of the venvs."""
    if os.geteuid() != 0:
        raise NovaLabError(
            "the real-Nova tier needs root (Debian packages, MariaDB and RabbitMQ run as root); "
            'run as root, or deselect the tier with -m "not real_nova"'
        )
    venvs = run_install_script(INSTALL_SCRIPT, INSTALL_TIMEOUT)
    if venvs is None:
        raise NovaLabError(
            f"{INSTALL_SCRIPT.relative_to(REPO)} failed; its output is above. "
            "The real-Nova tier cannot run without it"
        )
    return venvs


@dataclass
class Ports:
    mariadb: int = field(default_factory=free_port)
    amqp: int = field(default_factory=free_port)
    epmd: int = field(default_factory=free_port)
    erlang_distribution: int = field(default_factory=free_port)
    placement: int = field(default_factory=free_port)
    glance: int = field(default_factory=free_port)
    nova: int = field(default_factory=free_port)
    neutron: int = field(default_factory=free_port)


@dataclass
class NovaLab:
    workdir: Path
    venvs: Path
    computes: int = 3
    owns_workdir: bool = False
    ports: Ports = field(default_factory=Ports)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    image_id: str = ""
    flavor_id: str = ""
    ready_seconds: float = 0.0
    _reaper: subprocess.Popen[str] | None = None

    @classmethod
    def temporary(cls, venvs: Path, computes: int = 3) -> NovaLab:
        workdir = Path(tempfile.mkdtemp(prefix="masakari-nova-lab-"))
        return cls(workdir, venvs, computes, owns_workdir=True)

    @property
    def hosts(self) -> list[str]:
        return [f"compute{n}" for n in range(1, self.computes + 1)]

    @property
    def nova_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.nova}/v2.1"

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> NovaLab:
        begin = time.monotonic()
        try:
            for directory in ("etc", "log", "state", "lock", "images", "rabbit"):
                (self.workdir / directory).mkdir(parents=True, exist_ok=True)
            self._start_reaper()
            self._start_rabbitmq()
            self._start_mariadb()
            self._write_config()
            self._wait_for("MariaDB", "mariadb", self._mariadb_answers)
            self._create_databases()
            self._wait_for("RabbitMQ", "rabbitmq", self._rabbitmq_answers)
            self._start_openstack()
            self._wait_for("every compute", "nova-api", self._computes_ready)
            self._create_image_and_flavor()
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = time.monotonic() - begin
        return self

    def stop(self) -> None:
        """SIGKILL everything: the data is thrown away, and nova-compute's graceful stop alone
        takes about 15 s (F15)."""
        for name in list(self.processes):
            self._kill(name)
        if self._reaper is not None:
            assert self._reaper.stdin is not None
            self._reaper.stdin.close()  # the reaper removes the workdir when it is ours
            self._reaper.wait(timeout=30)
            self._reaper = None
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_compute(self, host: str) -> None:
        number = self.hosts.index(host) + 1
        etc = self.workdir / "etc"
        self._spawn(
            f"nova-compute-{host}",
            [
                self._bin("nova", "nova-compute"),
                f"--config-file={etc / 'nova' / 'nova.conf'}",
                f"--config-file={etc / 'nova' / f'compute{number}.conf'}",
            ],
        )

    def kill_compute(self, host: str) -> None:
        self._kill(f"nova-compute-{host}")

    def compute_running(self, host: str) -> bool:
        process = self.processes.get(f"nova-compute-{host}")
        return process is not None and process.poll() is None

    def rss_bytes(self) -> int:
        """Resident memory of every process the lab started, children included."""
        groups = {process.pid for process in self.processes.values()}
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) not in groups:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except (OSError, ValueError):
                continue
        return total

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.workdir / "log" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    # -- processes ---------------------------------------------------------------------------

    def _start_reaper(self) -> None:
        command = [sys.executable, str(RUNTIME / "reaper.py")]
        if self.owns_workdir:
            command.append(str(self.workdir))
        self._reaper = subprocess.Popen(
            command, stdin=subprocess.PIPE, text=True, start_new_session=True
        )

    def _tell_reaper(self, line: str) -> None:
        if self._reaper is not None and self._reaper.stdin is not None:
            self._reaper.stdin.write(line + "\n")
            self._reaper.stdin.flush()

    def _spawn(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        log = (self.workdir / "log" / f"{name}.log").open("ab")
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(RUNTIME),
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            **(env or {}),
        }
        # Own session: Ctrl-C goes to the test process only, which tears the lab down, and the
        # reaper can kill the whole group (gunicorn and oslo.service workers, Erlang's beam).
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=cwd or self.workdir,
            start_new_session=True,
        )
        log.close()
        self.processes[name] = process
        self._tell_reaper(f"add {process.pid}")

    def _kill(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self._tell_reaper(f"remove {process.pid}")

    def _bin(self, venv: str, name: str) -> str:
        return str(self.venvs / venv / "bin" / name)

    def _run(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = self.workdir / "log" / f"{name}.log"
        with log.open("ab") as output:
            result = subprocess.run(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})},
                cwd=self.workdir,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        if result.returncode != 0:
            raise NovaLabError(
                f"{' '.join(command[:3])} failed (exit {result.returncode}):\n{self.log_tail(name)}"
            )

    def _wait_for(self, what: str, log: str, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise NovaLabError(
                        f"{name} exited with {process.returncode} while waiting for {what}:\n"
                        f"{self.log_tail(name)}"
                    )
            if ready():
                return
            time.sleep(0.3)
        raise NovaLabError(f"{what} not ready after {READY_TIMEOUT:.0f}s:\n{self.log_tail(log)}")

    # -- MariaDB and RabbitMQ ----------------------------------------------------------------

    def _start_mariadb(self) -> None:
        data = self.workdir / "mariadb"
        self._run(
            "mariadb-install-db",
            [
                "mariadb-install-db",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
        )
        # As root without changing user, so the reaper's SIGKILL to its group reaches it; a
        # throwaway database needs no durability (no binlog, lazy log flush).
        self._spawn(
            "mariadb",
            [
                "/usr/sbin/mariadbd",
                "--no-defaults",
                f"--datadir={data}",
                "--user=root",
                "--bind-address=127.0.0.1",
                f"--port={self.ports.mariadb}",
                f"--socket={self.workdir / 'mariadb.sock'}",
                f"--pid-file={self.workdir / 'mariadb.pid'}",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=64M",
                "--performance-schema=OFF",
                "--max-connections=1000",
                "--skip-name-resolve",
            ],
        )

    def _mariadb(self, sql: str) -> None:
        self._run(
            "mariadb-client",
            [
                "mariadb",
                "--no-defaults",
                "-h127.0.0.1",
                f"-P{self.ports.mariadb}",
                "-uroot",
                "-e",
                sql,
            ],
        )

    def _mariadb_answers(self) -> bool:
        return _connects(self.ports.mariadb)

    def _database_url(self, name: str) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.ports.mariadb}/{name}?charset=utf8"

    def _start_rabbitmq(self) -> None:
        # epmd runs in the foreground under our control; RabbitMQ would otherwise daemonize one
        # that outlives the lab.
        self._spawn(
            "epmd", ["/usr/bin/epmd", "-address", "127.0.0.1", "-port", str(self.ports.epmd)]
        )
        rabbit = self.workdir / "rabbit"
        (rabbit / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.ports.amqp}\n"
        )
        (rabbit / "enabled_plugins").write_text("[].\n")
        (rabbit / "rabbitmq-env.conf").write_text("")
        environment = {
            "RABBITMQ_CONF_ENV_FILE": str(rabbit / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(rabbit / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(rabbit / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(rabbit / "mnesia"),
            "RABBITMQ_LOG_BASE": str(rabbit / "log"),
            "RABBITMQ_NODENAME": self._rabbitmq_node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.ports.amqp),
            "RABBITMQ_DIST_PORT": str(self.ports.erlang_distribution),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.ports.epmd),
            "HOME": str(rabbit),  # the Erlang cookie goes here, not in root's home
        }
        # The packaged script, not /usr/sbin's wrapper, which would switch to the rabbitmq user.
        self._spawn("rabbitmq", ["/usr/lib/rabbitmq/bin/rabbitmq-server"], environment, cwd=rabbit)

    @property
    def _rabbitmq_node(self) -> str:
        return f"nova-lab-{os.getpid()}@localhost"

    def queue_consumers(self, queue: str) -> int:
        """How many consumers RabbitMQ counts on `queue` (0 when it does not exist yet): an RPC
        server is listening once its topic queue has one."""
        listed = subprocess.run(
            ["/usr/lib/rabbitmq/bin/rabbitmqctl", "-n", self._rabbitmq_node, "-q",
             "list_queues", "name", "consumers"],
            capture_output=True, text=True, timeout=60, check=True, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "HOME": str(self.workdir / "rabbit"),
                 "ERL_EPMD_PORT": str(self.ports.epmd), "LANG": "C.UTF-8"},
        )  # fmt: skip
        counts = dict(line.split("\t", 1) for line in listed.stdout.splitlines() if "\t" in line)
        return int(counts.get(queue, "0"))

    def _rabbitmq_answers(self) -> bool:
        # The AMQP listener opens late in the broker's boot; its protocol header answer
        # (connection.start, a method frame) means it takes connections.
        try:
            with socket.create_connection(("127.0.0.1", self.ports.amqp), timeout=2) as sock:
                sock.sendall(b"AMQP\x00\x00\x09\x01")
                return sock.recv(1) == b"\x01"
        except OSError:
            return False

    def _create_databases(self) -> None:
        names = ("nova_api", "nova_cell0", "nova_cell1", "placement", "glance")
        self._mariadb(" ".join(f"CREATE DATABASE {name} CHARACTER SET utf8mb4;" for name in names))
        etc = self.workdir / "etc"
        nova_manage = [
            self._bin("nova", "nova-manage"),
            f"--config-file={etc / 'nova' / 'nova.conf'}",
            f"--config-file={etc / 'nova' / 'nova-db.conf'}",
        ]
        steps: list[tuple[str, list[list[str]]]] = [
            (
                "nova-manage",
                [
                    [*nova_manage, "api_db", "sync"],
                    [
                        *nova_manage,
                        "cell_v2",
                        "map_cell0",
                        f"--database_connection={self._database_url('nova_cell0')}",
                    ],
                    [*nova_manage, "cell_v2", "create_cell", "--name=cell1"],
                    [*nova_manage, "db", "sync"],
                ],
            ),
            (
                "placement-manage",
                [
                    [
                        self._bin("nova", "placement-manage"),
                        f"--config-file={etc / 'placement' / 'placement.conf'}",
                        "db",
                        "sync",
                    ]
                ],
            ),
            (
                "glance-manage",
                [
                    [
                        self._bin("glance", "glance-manage"),
                        f"--config-file={etc / 'glance' / 'glance-api.conf'}",
                        "db_sync",
                    ]
                ],
            ),
        ]
        errors: list[BaseException] = []

        def run_steps(name: str, commands: list[list[str]]) -> None:
            try:
                for command in commands:
                    self._run(name, command)
            except BaseException as error:  # re-raised in the calling thread below
                errors.append(error)

        threads = [threading.Thread(target=run_steps, args=step) for step in steps]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    # -- OpenStack services ------------------------------------------------------------------

    def _write_config(self) -> None:
        etc = self.workdir / "etc"
        for directory in ("nova", "placement", "glance"):
            (etc / directory).mkdir(exist_ok=True)
        _write_ini(
            etc / "placement" / "placement.conf",
            {
                "api": {"auth_strategy": "noauth2"},
                "placement_database": {"connection": self._database_url("placement")},
            },
        )
        self._write_nova_config(etc / "nova")
        self._write_glance_config(etc / "glance")

    def _write_nova_config(self, etc: Path) -> None:
        paste = _read_ini(self.venvs / "nova" / "etc" / "nova" / "api-paste.ini")
        # keystonemiddleware's slot in the pipeline gets the lab's token filter (F1).
        paste["filter:authtoken"] = {
            "paste.filter_factory": "lab_auth:filter_factory",
            "token": TOKEN,
        }
        _write_ini(etc / "api-paste.ini", paste)

        def service(port: int, **extra: str) -> dict[str, str]:
            endpoint = f"http://127.0.0.1:{port}"
            return {"auth_type": "admin_token", "endpoint": endpoint, "token": TOKEN, **extra}

        glance = f"http://127.0.0.1:{self.ports.glance}"
        neutron = f"http://127.0.0.1:{self.ports.neutron}"
        rabbit = f"rabbit://guest:guest@127.0.0.1:{self.ports.amqp}/"
        _write_ini(
            etc / "nova.conf",
            {
                "DEFAULT": {
                    "transport_url": rabbit,
                    "my_ip": "127.0.0.1",
                    "state_path": str(self.workdir / "state"),
                    # Restartable after SIGKILL: a stable compute_id in state_path (F6).
                    "compute_driver": "fake.FakeDriverWithoutFakeNodes",
                    "use_rootwrap_daemon": "False",
                    "report_interval": str(REPORT_INTERVAL),
                    "service_down_time": str(SERVICE_DOWN_TIME),
                    "rpc_response_timeout": str(RPC_RESPONSE_TIMEOUT),
                    # Periodic tasks start at once, not after a random 0-60 s: the scheduler's
                    # host discovery (below) would otherwise delay readiness by up to a minute.
                    "periodic_fuzzy_delay": "0",
                },
                "api": {"auth_strategy": "keystone"},
                # One worker each: the default (one per core) costs ~250 MB per extra worker.
                "conductor": {"workers": "1"},
                "scheduler": {"workers": "1", "discover_hosts_in_cells_interval": "2"},
                "oslo_concurrency": {"lock_path": str(self.workdir / "lock")},
                "placement": service(self.ports.placement),
                "glance": service(self.ports.glance, endpoint_override=glance),
                "neutron": service(self.ports.neutron, endpoint_override=neutron),
                "oslo_policy": {"enforce_scope": "False", "enforce_new_defaults": "True"},
                "oslo_messaging_notifications": {"driver": "noop"},
                "quota": {"instances": "-1", "cores": "-1", "ram": "-1"},  # F9
                "vnc": {"enabled": "False"},
            },
        )
        # Only the services that use the databases see them: nova-compute refuses DB access (F4).
        _write_ini(
            etc / "nova-db.conf",
            {
                "api_database": {"connection": self._database_url("nova_api")},
                "database": {"connection": self._database_url("nova_cell1")},
            },
        )
        for number, host in enumerate(self.hosts, start=1):
            state = self.workdir / "state" / host
            state.mkdir(parents=True, exist_ok=True)
            _write_ini(
                etc / f"compute{number}.conf",
                {
                    "DEFAULT": {
                        "host": host,
                        "state_path": str(state),
                        "instances_path": str(state / "instances"),
                    }
                },
            )

    def _write_glance_config(self, etc: Path) -> None:
        shutil.copy(self.venvs / "glance" / "etc" / "glance" / "glance-api-paste.ini", etc)
        images = self.workdir / "images"
        stores = {}
        for store in ("file", "os_glance_staging_store", "os_glance_tasks_store"):
            (images / store).mkdir(exist_ok=True)
            stores[store] = {"filesystem_store_datadir": str(images / store)}
        _write_ini(
            etc / "glance-api.conf",
            {
                "DEFAULT": {
                    "enabled_backends": "file:file",
                    "worker_self_reference_url": f"http://127.0.0.1:{self.ports.glance}",
                },
                "glance_store": {"default_backend": "file"},
                **stores,
                "database": {"connection": self._database_url("glance")},
                # The empty flavor gives an unauthenticated context (no Keystone) (F5).
                "paste_deploy": {"flavor": "", "config_file": str(etc / "glance-api-paste.ini")},
                "oslo_policy": {"enforce_new_defaults": "False", "enforce_scope": "False"},
            },
        )

    def _gunicorn(self, venv: str, app: str, port: int, threads: int) -> list[str]:
        return [
            self._bin(venv, "gunicorn"),
            "--workers=1",
            "--worker-class=gthread",
            f"--threads={threads}",
            "--timeout=120",
            f"--bind=127.0.0.1:{port}",
            f"lab_wsgi:{app}()",
        ]

    def _start_openstack(self) -> None:
        etc = self.workdir / "etc"
        nova_db = [
            f"--config-file={etc / 'nova' / 'nova.conf'}",
            f"--config-file={etc / 'nova' / 'nova-db.conf'}",
        ]
        self._spawn(
            "neutron-stub",
            [
                self._bin("nova", "python"),
                str(RUNTIME / "neutron_stub.py"),
                str(self.ports.neutron),
            ],
        )
        self._spawn(
            "placement",
            self._gunicorn("nova", "placement", self.ports.placement, 4),
            {"OS_PLACEMENT_CONFIG_DIR": str(etc / "placement")},
        )
        self._spawn(
            "glance",
            self._gunicorn("glance", "glance", self.ports.glance, 4),
            {"OS_GLANCE_CONFIG_DIR": str(etc / "glance")},
        )
        self._spawn(
            "nova-api",
            self._gunicorn("nova", "nova_api", self.ports.nova, 8),
            {
                "OS_NOVA_CONFIG_DIR": str(etc / "nova"),
                # Nova's WSGI app loads its paste pipeline from the first file of the list.
                "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf;nova-db.conf",
            },
        )
        self._spawn("nova-conductor", [self._bin("nova", "nova-conductor"), *nova_db])
        self._spawn("nova-scheduler", [self._bin("nova", "nova-scheduler"), *nova_db])
        # A compute's first ping of the conductor is lost while the conductor's queue does not
        # exist yet, and costs a 10 s timeout; a compute started now pings after the conductor
        # (which logs this line just before it starts consuming) is listening.
        self._wait_for("nova-conductor", "nova-conductor", self._conductor_starting)
        for host in self.hosts:
            self.start_compute(host)

    def _conductor_starting(self) -> bool:
        return "Starting conductor node" in self.log_tail("nova-conductor", lines=200)

    def request(self, method: str, url: str, body: Any = None, timeout: float = 10) -> Any:
        """One JSON request to a lab service with the lab's token; None when it fails."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"X-Auth-Token": TOKEN, "Content-Type": "application/json"}
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                text = answer.read()
        except OSError:  # refused, timed out, or an HTTP error status
            return None
        return json.loads(text) if text else {}

    def _computes_ready(self) -> bool:
        """Every compute's hypervisor is discovered and its service has sent a heartbeat (a
        new service shows updated_at null until its first one)."""
        hypervisors = self.request("GET", f"{self.nova_url}/os-hypervisors")
        services = self.request("GET", f"{self.nova_url}/os-services?binary=nova-compute")
        if hypervisors is None or services is None:
            return False
        reported = {s["host"] for s in services["services"] if s["updated_at"]}
        return len(hypervisors["hypervisors"]) >= self.computes and reported >= set(self.hosts)

    def _create_image_and_flavor(self) -> None:
        glance = f"http://127.0.0.1:{self.ports.glance}/v2/images"
        # Default visibility (shared): publicizing needs an admin role Glance cannot see here (F5).
        image = self.request(
            "POST", glance, {"name": "lab", "disk_format": "raw", "container_format": "bare"}
        )
        if image is None:
            raise NovaLabError(f"creating the lab's image failed:\n{self.log_tail('glance')}")
        upload = urllib.request.Request(
            f"{glance}/{image['id']}/file",
            data=b"\0" * 1024 * 1024,
            headers={"X-Auth-Token": TOKEN, "Content-Type": "application/octet-stream"},
            method="PUT",
        )
        with urllib.request.urlopen(upload, timeout=60):
            pass
        self.image_id = image["id"]
        flavor = self.request(
            "POST",
            f"{self.nova_url}/flavors",
            {"flavor": {"name": "lab.tiny", "vcpus": 1, "ram": 128, "disk": 1}},
        )
        if flavor is None:
            raise NovaLabError(f"creating the lab's flavor failed:\n{self.log_tail('nova-api')}")
        self.flavor_id = flavor["flavor"]["id"]


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _read_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return {section: dict(parser[section]) for section in parser.sections()}


def _write_ini(path: Path, sections: dict[str, dict[str, str]]) -> None:
    lines = []
    for section, options in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{key} = {value}" for key, value in options.items())
        lines.append("")
    path.write_text("\n".join(lines))
