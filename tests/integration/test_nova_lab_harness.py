"""The real-Nova lab leaves nothing behind even when its owner is SIGKILLed, and refuses to run
without root with a message that says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.harness.nova_lab.lab import _connects

pytestmark = pytest.mark.real_nova

REPO = Path(__file__).resolve().parents[2]
NOBODY = 65534


def _processes_using(workdir: Path) -> list[str]:
    """Processes whose command line or environment names the lab's directory (every process
    the lab starts gets it as HOME, so this finds epmd and Erlang's helpers too)."""
    marker = str(workdir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().split()[2] == "Z":
                continue
            if (
                marker in (entry / "cmdline").read_bytes()
                or marker in (entry / "environ").read_bytes()
            ):
                found.append(f"{entry.name}: {(entry / 'cmdline').read_bytes()[:120]!r}")
        except OSError:
            continue
    return found


def test_a_killed_owner_leaves_no_process_port_or_directory() -> None:
    owner = subprocess.Popen(
        [sys.executable, "-m", "tests.harness.nova_lab", "up"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert owner.stdout is not None
    lines: list[str] = []
    clouds_yaml = None
    try:
        for line in owner.stdout:  # bounded by the lab's own readiness timeouts
            lines.append(line)
            if line.startswith("export OS_CLIENT_CONFIG_FILE="):
                clouds_yaml = Path(line.split()[1].split("=", 1)[1])
                break
        assert clouds_yaml is not None, "the lab did not come up:\n" + "".join(lines[-40:])
        workdir = clouds_yaml.parent
        nova = yaml.safe_load(clouds_yaml.read_text())["clouds"]["nova-lab"]["auth"]["endpoint"]
        nova_port = int(nova.split(":")[2].split("/")[0])
        assert _processes_using(workdir), "the lab's processes should be found while it runs"
        assert _connects(nova_port)
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (_processes_using(workdir) or workdir.exists()):
        time.sleep(0.5)
    assert _processes_using(workdir) == []
    assert not workdir.exists()
    assert not _connects(nova_port)


def test_the_installer_refuses_to_run_without_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("run as root: this test switches to nobody to see the refusal", pytrace=False)
    result = subprocess.run(
        ["bash", str(REPO / "hack" / "nova-lab" / "install.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        user=NOBODY,
        check=False,
    )
    assert result.returncode == 1
    assert "must run as root" in result.stderr
