"""CrmCluster.fence on stonith_admin's captured answers: only exit 0 counts as fenced, every
other end is an error the fencing step can name, and nothing runs for a name that is not one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from controller.drivers.pacemaker import stonith_admin
from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import CommandResult
from controller.recovery.pacemaker import (
    ClusterUnavailable,
    CommandTimeout,
    FencingFailed,
    InvalidNodeName,
    PacemakerError,
    PermissionDenied,
)

SAMPLES = json.loads(
    (Path(__file__).parent / "data" / "pacemaker" / "stonith-admin.json").read_text()
)


class Answering:
    """A runner that answers every command with one captured result."""

    def __init__(self, sample: dict[str, object]) -> None:
        self.sample = sample
        self.calls: list[tuple[list[str], float]] = []

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        self.calls.append((list(argv), timeout))
        return CommandResult(
            tuple(argv),
            int(self.sample["returncode"]),  # type: ignore[call-overload]
            str(self.sample["stdout"]),
            str(self.sample["stderr"]),
        )


def test_a_fenced_node_returns_after_one_bounded_request() -> None:
    runner = Answering(SAMPLES["fenced"])
    CrmCluster(runner).fence("node1", 60)
    ((argv, timeout),) = runner.calls
    assert argv == ["stonith_admin", "--fence", "node1", "--timeout", "60"]
    # Longer than the fencer's own bound for a peer's fencing (1.2 x 60 s), not unbounded.
    assert 72 < timeout <= 90


@pytest.mark.parametrize(("asked", "seconds"), [(0.2, "1"), (29.1, "30"), (30, "30")])
def test_the_timeout_is_whole_seconds_never_shorter_never_zero(asked: float, seconds: str) -> None:
    runner = Answering(SAMPLES["fenced"])
    CrmCluster(runner).fence("node1", asked)
    assert runner.calls[0][0][-1] == seconds


@pytest.mark.parametrize(
    ("sample", "error", "words"),
    [
        ("device-failed", FencingFailed, r"fencing device failed to fence node3 \(1\).*No data"),
        ("no-device", FencingFailed, r"no fencing device can fence node2 \(105\)"),
        ("unknown-node", FencingFailed, r"no fencing device can fence node9"),
        ("timed-out", CommandTimeout, r"fencing node1 did not end in time \(124\).*Timer"),
        ("not-connected", ClusterUnavailable, r"not connected \(102\)"),
    ],
)
def test_every_other_end_is_an_error_with_the_fencers_reason(
    sample: str, error: type[PacemakerError], words: str
) -> None:
    target = SAMPLES[sample]["argv"][2]
    with pytest.raises(error, match=words):
        CrmCluster(Answering(SAMPLES[sample])).fence(target, 20)


def test_an_unexpected_exit_is_still_an_error() -> None:
    denied = {"returncode": 4, "stdout": "", "stderr": "stonith_admin: not allowed\n"}
    with pytest.raises(PermissionDenied):
        CrmCluster(Answering(denied)).fence("node1", 20)
    odd = {"returncode": 99, "stdout": "", "stderr": ""}
    with pytest.raises(PacemakerError, match="exit code 99"):
        CrmCluster(Answering(odd)).fence("node1", 20)


@pytest.mark.parametrize("name", ["node1;reboot", "-Fnode1", "$(reboot)", "", "a" * 256])
def test_bad_names_are_refused_before_anything_runs(name: str) -> None:
    runner = Answering(SAMPLES["fenced"])
    with pytest.raises(InvalidNodeName):
        CrmCluster(runner).fence(name, 20)
    assert runner.calls == []


def test_the_command_bound_follows_the_fencing_timeout() -> None:
    assert stonith_admin.command_timeout(1) > 1
    assert stonith_admin.command_timeout(300) > 300 * stonith_admin.PEER_STRETCH
