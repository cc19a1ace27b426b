"""The lab harness itself: it cleans up after itself completely."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import LabFactory

pytestmark = pytest.mark.pacemaker


def test_teardown_leaves_no_namespace_process_or_file(lab_factory: LabFactory) -> None:
    with lab_factory(members=1, remotes=1, fencing=False) as lab:
        inits = {name: lab.init_pid(name) for name in lab.nodes}
        holders = [node.holder for node in lab.nodes.values()]
        directory, prefix = lab.directory, f"mko{lab.lab_id}-"
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert sum(line.startswith(prefix) for line in listed.splitlines()) == 3  # hub + 2
        assert directory.is_dir()
        assert lab.node_states("node1")["remote1"]["online"] == "true"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert not [line for line in listed.splitlines() if line.startswith(prefix)]
    assert not directory.exists()
    assert all(holder is not None and holder.poll() is not None for holder in holders)
    assert not [pid for pid in inits.values() if Path(f"/proc/{pid}").exists()]
