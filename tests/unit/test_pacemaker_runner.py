"""Command runners and node-name validation: nothing runs for a name that is not a name."""

from __future__ import annotations

import stat
from collections.abc import Sequence
from pathlib import Path

import pytest

from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import (
    CommandResult,
    LocalRunner,
    SshRunner,
    validate_node_name,
)
from controller.recovery.pacemaker import (
    CommandTimeout,
    InvalidNodeName,
    PacemakerError,
    ToolMissing,
)
from tests.harness import pacemaker_lab


class RecordingRunner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(tuple(argv), 0, "", "")


BAD_NAMES = ["node1;reboot", "node1 && reboot", "-Dnode1", "$(reboot)", "node`id`", "", "a" * 256]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_are_refused_before_anything_runs(name: str) -> None:
    runner = RecordingRunner()
    cluster = CrmCluster(runner)
    for action in (
        cluster.put_in_standby,
        cluster.bring_online,
        cluster.start_maintenance,
        cluster.end_maintenance,
    ):
        with pytest.raises(InvalidNodeName):
            action(name)
    assert runner.calls == []
    with pytest.raises(InvalidNodeName):
        SshRunner(name)


@pytest.mark.parametrize("name", ["node1", "compute-0.example.org", "Node_2"])
def test_good_names_pass(name: str) -> None:
    assert validate_node_name(name) == name


def test_local_runner_times_out_and_reports_missing_tools() -> None:
    with pytest.raises(CommandTimeout, match="sleep"):
        LocalRunner().run(["sleep", "5"], timeout=0.2)
    with pytest.raises(ToolMissing):
        LocalRunner().run(["masakari-no-such-tool"])


def test_local_runner_passes_arguments_without_a_shell() -> None:
    result = LocalRunner().run(["printf", "%s|", "a b", "node1;reboot", "$(id)"])
    assert result.stdout == "a b|node1;reboot|$(id)|"


def test_ssh_arguments_survive_the_remote_shell(tmp_path: Path) -> None:
    # A stand-in for ssh that does what sshd does with the command: hand it to a shell.
    fake = tmp_path / "ssh"
    fake.write_text('#!/bin/sh\nfor last; do :; done\nexec sh -c "$last"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    runner = SshRunner("node1", user="hacluster", ssh_binary=str(fake))
    argv = runner.ssh_argv(["crm_mon", "--output-as=xml"])
    assert "BatchMode=yes" in argv and argv[argv.index("--") + 1] == "hacluster@node1"
    tricky = ["printf", "%s|", "a b", "'quoted'", "x;reboot", "$(id)", "`id`"]
    result = runner.run(tricky)
    assert result.stdout == "a b|'quoted'|x;reboot|$(id)|`id`|"
    assert result.argv == tuple(tricky)


def test_ssh_failure_is_reported_as_such(tmp_path: Path) -> None:
    fake = tmp_path / "ssh"
    fake.write_text(
        "#!/bin/sh\necho 'ssh: connect to host node1: Connection refused' >&2\nexit 255\n"
    )
    fake.chmod(0o755)
    with pytest.raises(PacemakerError, match=r"ssh to node1 failed: .*Connection refused"):
        SshRunner("node1", ssh_binary=str(fake)).run(["crm_mon"])


def test_lab_says_why_it_cannot_run_without_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pacemaker_lab.os, "geteuid", lambda: 1000)
    assert "needs root" in (pacemaker_lab.missing_prerequisites() or "")
