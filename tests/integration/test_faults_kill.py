"""The kill rows of the fault matrix (docs/reliability.md): the operator SIGKILLed mid-recovery
and started again, for each recovery method at each step of its workflow, and at random
moments. The recovery must finish with no server evacuated twice, none from a host still
running, and exactly the reserved hosts a fault-free recovery takes, each once.

The kill points are not listed here: they come from what a fault-free recovery of the same
method writes to its status (kubectl's watch shows every write). A point is a write at which
something first holds: a phase, a step recorded or ended, a reserved host taken, a fallback
noted, the first instance (MASAKARI_FAULTS=full: every one) started, the first and middle
(full: every) instance landed. A new step, or a new write, is covered without a change here.

`make test` runs a sample: each moment once across the methods (the steps before the
evacuation are one code path for all four) and MASAKARI_KILL_RUNS (3) random moments;
`make kill` every point of every method and 200 random moments (MASAKARI_KILL_SEED replays).
"""

from __future__ import annotations

import codecs
import json
import os
import random
import select
import subprocess
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster
from tests.harness.control_plane import _die_with_parent
from tests.integration.operator_env import Cloud, host, segment, servers, topology
from tests.integration.test_faults import (
    ENDED,
    EVENT,
    FULL,
    HOSTS,
    NAMES,
    SEGMENT,
    Row,
    Run,
    assert_recovered_once,
    recover,
)

KILL_RUNS = int(os.environ.get("MASAKARI_KILL_RUNS", "3"))
SEED = int(os.environ.get("MASAKARI_KILL_SEED") or random.SystemRandom().randrange(2**32))
# A run is about 15 s; the random row's budget grows with its count.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900 + 60 * KILL_RUNS)]

SPARE = "spare1"
HA = {"HA_Enabled": "True"}
Status = dict[str, Any]


@dataclass(frozen=True)
class Method:
    """A recovery method and a cloud on which it takes its whole path, fallback included."""

    name: str
    hosts: list[dict[str, Any]]
    reserved: list[str]  # the reserved hosts its recovery takes, each once

    def topology(self) -> dict[str, Any]:
        return topology(self.hosts, servers(NAMES, "compute1", metadata=HA))


def _disabled(spec: dict[str, Any]) -> dict[str, Any]:
    return {**spec, "status": "disabled", "disabled_reason": "ops: firmware"}


METHODS = {
    # The reserved host is there, and must stay unused.
    "auto": Method("auto", [*HOSTS, {"name": SPARE, "vcpus": 8}], []),
    "reserved_host": Method("reserved_host", [*HOSTS, {"name": SPARE, "vcpus": 8}], [SPARE]),
    # No room left for the scheduler: the fallback to the reserved host moves them all.
    "auto_priority": Method(
        "auto_priority",
        [HOSTS[0], *map(_disabled, HOSTS[1:]), {"name": SPARE, "vcpus": 8}],
        [SPARE],
    ),
    # Room for half on the reserved host: the fallback to the scheduler moves the rest.
    "rh_priority": Method(
        "rh_priority", [*HOSTS, {"name": SPARE, "vcpus": len(NAMES) // 2}], [SPARE]
    ),
}


# -- watching the event's writes ---------------------------------------------------------


class Watch:
    """`kubectl get fev --watch` on a namespace: the FailureEvent's statuses in the order the
    API server stored them, each one as it is written (polling would miss the short ones)."""

    def __init__(self, cloud: Cloud) -> None:
        cluster = cloud.cluster
        self.process = subprocess.Popen(
            [str(cluster.kubectl_binary), f"--kubeconfig={cluster.kubeconfig}", "get", "fev",
             "-n", cloud.namespace, "--watch", "-o", "json", "-v=6"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        self._buffer = ""
        self._text = codecs.getincrementaldecoder("utf-8")()
        self._decoder = json.JSONDecoder()
        assert self.process.stderr is not None
        # Listed (nothing yet) and watching (its request logged at -v=6): no write of the
        # event can be missed from here on.
        deadline = time.monotonic() + 30
        while "watch=true" not in (line := self.process.stderr.readline().decode()):
            assert line and time.monotonic() < deadline, "kubectl's watch did not start"

    def statuses(self, timeout: float) -> Iterator[Status]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            obj = self._next_object()
            if obj is not None:
                if obj["metadata"]["name"] == EVENT:
                    yield obj.get("status") or {}
                continue
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no write of fev/{EVENT} for {timeout:.0f} s"
            if select.select([fd], [], [], remaining)[0]:
                chunk = os.read(fd, 1 << 16)
                assert chunk, "kubectl's watch ended"
                self._buffer += self._text.decode(chunk)

    def _next_object(self) -> dict[str, Any] | None:
        text = self._buffer.lstrip()
        try:
            obj, end = self._decoder.raw_decode(text)
        except json.JSONDecodeError:
            return None
        self._buffer = text[end:]
        return dict(obj)

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


# -- the kill points, from a fault-free recovery's writes ---------------------------------


@dataclass(frozen=True)
class KillPoint:
    names: tuple[str, ...]  # what holds from this write on, first written there
    reached: Callable[[Status], bool]

    @property
    def name(self) -> str:
        return " = ".join(self.names)


def _step(status: Status, name: str) -> Status | None:
    return next((s for s in status.get("steps", []) if s["name"] == name), None)


def _landed(status: Status) -> int:
    return sum(m["status"] == "succeeded" for m in status.get("instances", []))


def _started(status: Status) -> int:
    return sum(m.get("attempts", 0) > 0 for m in status.get("instances", []))


def _notes(status: Status) -> Iterator[str]:
    for step in status.get("steps", []):
        for detail in step.get("progressDetails", []):
            yield detail["message"]


def candidate_points(writes: list[Status]) -> list[KillPoint]:
    """Every moment worth a kill that these writes show, in no particular order."""
    points: list[KillPoint] = []
    for phase in dict.fromkeys(w["phase"] for w in writes if w.get("phase")):
        points.append(KillPoint((f"phase {phase}",), lambda s, p=phase: s.get("phase") == p))
    steps = list(dict.fromkeys(s["name"] for w in writes for s in w.get("steps", [])))
    for name in steps:
        points.append(KillPoint((f"{name} recorded",), lambda s, n=name: _step(s, n) is not None))
        points.append(
            KillPoint(
                (f"{name} ended",),
                lambda s, n=name: (
                    (t := _step(s, n)) is not None and t["state"] not in ("PENDING", "RUNNING")
                ),
            )
        )
    for taken in dict.fromkeys(h for w in writes for h in w.get("reservedHosts", [])):
        points.append(
            KillPoint(
                (f"reserved host {taken} taken",),
                lambda s, h=taken: h in s.get("reservedHosts", []),
            )
        )
    for note in dict.fromkeys(n for w in writes for n in _notes(w) if "falling back" in n):
        points.append(KillPoint((f"noted: {note}",), lambda s, n=note: n in _notes(s)))
    moves = max(len(w.get("instances", [])) for w in writes)
    started = range(1, moves + 1) if FULL else {1}
    for k in sorted(started):
        points.append(KillPoint((f"{k} of {moves} started",), lambda s, k=k: _started(s) >= k))
    total = max(_landed(w) for w in writes)
    landed = range(1, total) if FULL else {1, (total + 1) // 2}
    for k in sorted(landed):
        points.append(KillPoint((f"{k} of {total} landed",), lambda s, k=k: _landed(s) >= k))
    return points


def kill_points(writes: list[Status], killed: Collection[str] = ()) -> list[KillPoint]:
    """One point per write at which a candidate first holds, in the order written, named by
    every candidate that first holds there; none once the event has ended (nothing is left
    to interrupt), none where every candidate is in `killed` (a moment already killed at)."""
    at: dict[int, list[KillPoint]] = {}
    for point in candidate_points(writes):
        index = next(i for i, w in enumerate(writes) if point.reached(w))
        if writes[index].get("phase") not in ENDED:
            at.setdefault(index, []).append(point)
    return [
        KillPoint(tuple(p.name for p in at[i]), at[i][0].reached)
        for i in sorted(at)
        if any(p.name not in killed for p in at[i])
    ]


# -- one recovery ------------------------------------------------------------------------


class Recovery:
    """The parts of one run of `recover` that belong to a method: its segment and reserved
    host, applied before the failure, and the watch of the event, opened before it exists."""

    def __init__(self, method: Method) -> None:
        self.method = method
        self.watch: Watch | None = None

    def prepare(self, cloud: Cloud) -> None:
        policies = {k: SEGMENT["spec"][k] for k in ("hostFailure", "retry")}
        cloud.apply(segment(method=self.method.name, **policies), host(SPARE, reserved=True))
        # Out of the scheduler before the failure, as a reserved host is kept.
        cloud.wait_phase("mhost", SPARE, {"Reserved"}, 30)
        self.watch = Watch(cloud)

    def writes(self, timeout: float) -> Iterator[Status]:
        assert self.watch is not None
        return self.watch.statuses(timeout)

    def close(self, _cloud: Cloud | None = None) -> None:
        if self.watch is not None:
            self.watch.close()

    def run(self, cluster: Cluster, workdir: Path, strike: Callable[[Cloud], None]) -> Run:
        try:
            return recover(
                cluster,
                workdir,
                strike,
                120,
                self.prepare,
                spec=self.method.topology(),
                after=self.close,
                strike_when=lambda _cloud: None,
            )
        finally:
            self.close()

    def check(self, run: Run) -> None:
        assert_recovered_once(run)
        assert run.status.get("reservedHosts", []) == self.method.reserved, run.status


@dataclass
class Baseline:
    seconds: float
    writes: list[Status]


def fault_free(cluster: Cluster, workdir: Path, method: Method) -> Baseline:
    """A fault-free recovery, every write of its status watched."""
    recovery = Recovery(method)
    writes: list[Status] = []

    def watch_all(_cloud: Cloud) -> None:
        for status in recovery.writes(120):
            writes.append(status)
            if status.get("phase") in ENDED:
                return

    run = recovery.run(cluster, workdir, watch_all)
    recovery.check(run)
    return Baseline(run.seconds, writes)


@pytest.fixture(scope="module")
def baselines(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Method], Baseline]:
    """Each method's fault-free recovery, run once for both tests, when first asked for."""
    done: dict[str, Baseline] = {}

    def of(method: Method) -> Baseline:
        if method.name not in done:
            workdir = tmp_path_factory.mktemp(method.name) / "baseline"
            done[method.name] = fault_free(cluster, workdir, method)
        return done[method.name]

    return of


def restart(cloud: Cloud) -> None:
    cloud.operator.kill()
    cloud.operator.start()


def killed_at(recovery: Recovery, point: KillPoint) -> Callable[[Cloud], None]:
    def strike(cloud: Cloud) -> None:
        for status in recovery.writes(60):
            if point.reached(status):
                break
            assert status.get("phase") not in ENDED, f"ended before {point.name}: {status}"
        restart(cloud)

    return strike


def killed_after(delay: float) -> Callable[[Cloud], None]:
    def strike(cloud: Cloud) -> None:
        time.sleep(delay)  # the fault's moment itself, drawn from the seeded generator
        restart(cloud)

    return strike


def test_killed_at_every_step_of_every_method(
    cluster: Cluster, tmp_path: Path, baselines: Callable[[Method], Baseline]
) -> None:
    """The sample (not MASAKARI_FAULTS=full) kills once at each moment: the steps before the
    evacuation are one code path for every method, so a later method adds only the writes
    that only it makes (its reserved host taken, its fallback)."""
    failures: list[str] = []
    killed: set[str] = set()
    for method in METHODS.values():
        base = baselines(method)
        points = kill_points(base.writes, set() if FULL else killed)
        killed.update(name for p in points for name in p.names)
        row = Row(f"operator SIGKILLed at each step, {method.name} ({len(points)} points)")
        try:
            for i, point in enumerate(points):
                recovery = Recovery(method)
                strike = killed_at(recovery, point)
                run = recovery.run(cluster, tmp_path / method.name / str(i), strike)
                row.runs.append(run)
                try:
                    recovery.check(run)
                except AssertionError as error:
                    failures.append(f"{method.name}, killed at {point.name}: {error}")
        finally:
            print(f"\n{method.name}: killed at " + "; ".join(p.name for p in points))
            row.report([base.seconds])
    assert not failures, "\n".join(failures)


def test_killed_at_random_moments(
    cluster: Cluster, tmp_path: Path, baselines: Callable[[Method], Baseline]
) -> None:
    """Each run: a method and a moment in [0, its fault-free time], drawn from a seeded
    generator; the seed printed replays the same draws (MASAKARI_KILL_SEED). One row per
    method, each against its own fault-free time."""
    print(f"\nMASAKARI_KILL_SEED={SEED} MASAKARI_KILL_RUNS={KILL_RUNS}", flush=True)
    draw = random.Random(SEED)
    plan = [(method, draw.random()) for method in draw.choices(list(METHODS), k=KILL_RUNS)]
    rows = {name: Row(f"operator SIGKILLed at a random moment, {name}") for name in METHODS}
    failures: list[str] = []
    try:
        for i, (name, fraction) in enumerate(plan):
            delay = fraction * baselines(METHODS[name]).seconds
            recovery = Recovery(METHODS[name])
            run = recovery.run(cluster, tmp_path / str(i), killed_after(delay))
            rows[name].runs.append(run)
            try:
                recovery.check(run)
            except AssertionError as error:
                failures.append(f"run {i}, {name}, killed after {delay:.2f} s: {error}")
    finally:
        for name, row in rows.items():
            if row.runs:
                row.report([baselines(METHODS[name]).seconds])
    assert not failures, "\n".join(failures)
