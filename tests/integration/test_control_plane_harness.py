"""The control-plane harness cleans up after itself, even when its parent is killed, and the
kind provider fails loudly where it cannot run."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _children_alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_up() -> tuple[subprocess.Popen[str], Path, int]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.control_plane", "up"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if match := re.match(r"export KUBECONFIG=(.*)", line.strip()):
            kubeconfig = Path(match.group(1))
            port = int(re.search(r"127\.0\.0\.1:(\d+)", kubeconfig.read_text()).group(1))
            return process, kubeconfig.parent, port
        if not line and process.poll() is not None:
            break
    process.kill()
    pytest.fail(f"control plane did not come up: {process.stdout.read()}")


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False
    ).stdout
    return [int(p) for p in out.split()]


def _wait_gone(pids: list[int], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_children_alive(pids) or _port_open(port)):
        time.sleep(0.2)


def test_interrupted_control_plane_leaves_nothing_behind() -> None:
    process, workdir, port = _start_up()
    children = _descendants(process.pid)
    assert len(children) == 2  # etcd and kube-apiserver
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    _wait_gone(children, port)
    assert _children_alive(children) == []
    assert not _port_open(port)
    assert not workdir.exists()


def test_killed_parent_takes_its_control_plane_along() -> None:
    process, workdir, port = _start_up()
    children = _descendants(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    _wait_gone(children, port)
    try:
        assert _children_alive(children) == [], "etcd or kube-apiserver outlived its parent"
        assert not _port_open(port)
    finally:
        subprocess.run(["rm", "-rf", str(workdir)], check=False)  # SIGKILL skips the cleanup


def test_kind_provider_that_cannot_run_fails_the_run(tmp_path: Path) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text("def test_needs_cluster(cluster):\n    pass\n")
    env = {**os.environ, "MASAKARI_TEST_CLUSTER": "kind", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            f"--rootdir={REPO}",
            "-c",
            str(REPO / "pyproject.toml"),
            str(probe),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "MASAKARI_TEST_CLUSTER=kind" in result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout
