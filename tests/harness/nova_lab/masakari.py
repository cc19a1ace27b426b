"""Real masakari-api 22.0.0 beside the lab's Nova, for tests that compare with Masakari itself.

It runs from the virtualenv of hack/masakari-functional/install.sh: that one holds masakari 22
with every dependency it declares (a frozen full install; `pip check` passes), so it runs the
services as well as the functional tests. masakari-engine is started only when asked
(`engine=EngineWaits(...)`): the API alone stores segments, hosts and notifications (a
notification then stays `new`); with the engine, a host notification runs Masakari's own
host-failure flow against the lab's Nova.

Configuration, as the verified lab recipe ran it:
- `auth_strategy = noauth2`: any token "user[:project]" is accepted, "admin" is an admin.
- Its database is SQLite, which Masakari 22's migrations support; one API worker writes it, so
  SQLite's lock upgrades (a failure under Nova's concurrency) never race.
- Creating a host makes masakari-api look the host up in Nova. Its Nova client is built from a
  password-style keystoneauth plugin; `lab_token` (runtime/lab_token_auth.py) sends the lab's
  token to Nova's endpoint instead, registered by a dist-info written into the workdir.
- The API casts a new notification to the engine over the lab's RabbitMQ.
- The engine shares the API's SQLite files: it writes a notification's status and its TaskFlow
  progress while the API, with nothing else to do, only reads, so writers never meet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.harness import masakari_functional
from tests.harness.control_plane import _die_with_parent, free_port

from .lab import RUNTIME, TOKEN, NovaLab, NovaLabError, _write_ini

#: Bounds with room for a loaded machine: db sync took 4-9 s here (it imports all of Masakari),
#: and the API answered about 6 s after its start.
COMMAND_TIMEOUT = 120
READY_TIMEOUT = 60.0
#: The queue masakari-api casts a notification to (Masakari's `masakari_topic`). A cast before
#: the engine consumes it is dropped and left to the engine's 120 s periodic retry.
ENGINE_TOPIC = "ha_engine"


@dataclass(frozen=True)
class EngineWaits:
    """masakari-engine's waits, Masakari 22's defaults unless given. They dominate its recovery
    time (wait_period_after_service_update is slept whole after disabling the host), so a
    bench reports them beside its figures."""

    wait_period_after_service_update: int = 180
    wait_period_after_evacuation: int = 90
    verify_interval: int = 1
    host_failure_recovery_threads: int = 3

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class RealMasakari:
    url: str  # the v1 endpoint
    process: subprocess.Popen[bytes]
    log_path: Path
    ready_seconds: float
    engine: subprocess.Popen[bytes] | None = None
    engine_waits: EngineWaits | None = None

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextlib.contextmanager
def running_masakari(
    lab: NovaLab, workdir: Path, max_limit: int = 1000, engine: EngineWaits | None = None
) -> Iterator[RealMasakari]:
    """masakari-api on a free loopback port with a fresh database; its config, database and
    logs in `workdir`. Stopped (its process group) on exit. `max_limit` is its osapi_max_limit,
    the length it cuts every list page to. With `engine`, masakari-engine runs beside it with
    those waits (its log: masakari-engine.log)."""
    begin = time.monotonic()
    venv = masakari_functional.install()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = _write_config(lab, venv, workdir, port, max_limit, engine or EngineWaits())
    environment = {
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": f"{RUNTIME}:{_register_plugin(workdir)}",
        "HOME": str(workdir),  # stevedore caches entry points under it
        "LANG": "C.UTF-8",
    }
    log_path = workdir / "masakari-api.log"
    with log_path.open("ab") as log:
        sync = subprocess.run(
            [str(venv / "bin" / "masakari-manage"), f"--config-file={config}", "db", "sync"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            cwd=workdir, timeout=COMMAND_TIMEOUT, check=False,
        )  # fmt: skip
        if sync.returncode != 0:
            raise NovaLabError(
                f"masakari-manage db sync failed ({sync.returncode}), see {log_path}"
            )
        # Its own group (oslo.service forks a worker), killed with the test process.
        process = subprocess.Popen(
            [str(venv / "bin" / "masakari-api"), f"--config-file={config}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            cwd=workdir, preexec_fn=_die_with_parent,
        )  # fmt: skip
    masakari = RealMasakari(f"http://127.0.0.1:{port}/v1", process, log_path, 0.0)
    try:
        if engine is not None:
            masakari.engine_waits = engine
            masakari.engine = _start_engine(venv, config, workdir, environment)
        _wait_until_answering(masakari)
        if masakari.engine is not None:
            _wait_for_engine(lab, masakari.engine, workdir / "masakari-engine.log")
        masakari.ready_seconds = time.monotonic() - begin
        yield masakari
    finally:
        # SIGKILL to the groups, workers included: the database is thrown away with workdir.
        for started in (process, masakari.engine):
            if started is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(started.pid, signal.SIGKILL)
                started.wait(timeout=30)


def _start_engine(
    venv: Path, config: Path, workdir: Path, environment: dict[str, str]
) -> subprocess.Popen[bytes]:
    with (workdir / "masakari-engine.log").open("ab") as log:
        return subprocess.Popen(
            [str(venv / "bin" / "masakari-engine"), f"--config-file={config}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=environment,
            cwd=workdir, preexec_fn=_die_with_parent,
        )  # fmt: skip


def _wait_for_engine(lab: NovaLab, engine: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if lab.queue_consumers(ENGINE_TOPIC) > 0:
            return
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        tail = "\n".join(text.splitlines()[-40:])
        if engine.poll() is not None:
            raise NovaLabError(f"masakari-engine exited with {engine.returncode}:\n{tail}")
        if time.monotonic() > deadline:
            raise NovaLabError(f"masakari-engine not consuming after {READY_TIMEOUT:.0f}s:\n{tail}")
        time.sleep(0.5)


def _write_config(
    lab: NovaLab, venv: Path, workdir: Path, port: int, max_limit: int, waits: EngineWaits
) -> Path:
    config = workdir / "masakari.conf"
    _write_ini(
        config,
        {
            "DEFAULT": {
                "auth_strategy": "noauth2",
                "masakari_api_listen": "127.0.0.1",
                "masakari_api_listen_port": str(port),
                "masakari_api_workers": "1",  # each worker is about 130 MB
                "osapi_max_limit": str(max_limit),
                "transport_url": f"rabbit://guest:guest@127.0.0.1:{lab.ports.amqp}/",
                "os_privileged_user_name": TOKEN,  # lab_token sends the user name as the token
                "os_privileged_user_password": TOKEN,
                "os_privileged_user_tenant": TOKEN,
                "os_privileged_user_auth_url": lab.nova_url,
                "os_region_name": "RegionOne",
                "nova_catalog_admin_info": "compute:nova:publicURL",
                **{name: str(value) for name, value in waits.as_dict().items()},
            },
            "wsgi": {"api_paste_config": str(venv / "etc" / "masakari" / "api-paste.ini")},
            "keystone_authtoken": {"auth_type": "lab_token"},
            "database": {"connection": f"sqlite:///{workdir / 'masakari.sqlite'}"},
            # Masakari refuses to start without it, API included; db sync creates its tables.
            "taskflow": {"connection": f"sqlite:///{workdir / 'taskflow.sqlite'}"},
            "oslo_concurrency": {"lock_path": str(workdir / "lock")},
        },
    )
    return config


def _register_plugin(workdir: Path) -> Path:
    """A directory for PYTHONPATH whose dist-info declares the `lab_token` plugin."""
    site = workdir / "plugins"
    info = site / "lab_token_auth-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-token-auth\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[keystoneauth1.plugin]\nlab_token = lab_token_auth:Loader\n"
    )
    return site


def _wait_until_answering(masakari: RealMasakari) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if masakari.process.poll() is not None:
            raise NovaLabError(
                f"masakari-api exited with {masakari.process.returncode}:\n{masakari.log_tail()}"
            )
        request = urllib.request.Request(
            f"{masakari.url}/segments", headers={"X-Auth-Token": TOKEN}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:  # not listening yet, or an error status while it starts
            pass
        time.sleep(0.3)
    raise NovaLabError(
        f"masakari-api not answering after {READY_TIMEOUT:.0f}s:\n{masakari.log_tail()}"
    )
