"""Hostile input (issue 16) on the Pacemaker side: what crm_mon prints and what arrives on the
host monitor's alert socket, fuzzed with hypothesis.

The properties: any output of crm_mon is either a cluster state or a PacemakerError (the one
error the host monitor and the operator handle), never another exception; a damaged copy of a
healthy cluster's document never shows a node down, so garbage never becomes a failure
report; the monitor's sampling loop and its socket reader outlive any input. The examples
after the properties are the bugs the properties found, kept as plain tests.
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.drivers.pacemaker import crm_mon
from controller.drivers.pacemaker.runner import CommandResult, LocalRunner
from controller.monitors import pacemaker_alert
from controller.monitors.host_failures import FailureDetector, NodeReport
from controller.monitors.hostmonitor import Alerts, HostMonitor
from controller.recovery.pacemaker import ClusterState, PacemakerError
from tests.unit import test_pacemaker_alerts

alerts = test_pacemaker_alerts.alerts  # the fixture: the monitor's socket, listening
DATA = Path(__file__).parent / "data" / "pacemaker"
HEALTHY = (DATA / "healthy.xml").read_text()
SAMPLES = sorted(path.read_text() for path in DATA.glob("*.xml"))
EXAMPLES = int(os.environ.get("MASAKARI_FUZZ_UNIT_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Damaged attribute values. "true" and "false" are left out: a flag switched to the other
# well-formed value is a different document, not garbage.
WORDS = st.sampled_from(["", "1", "0", "yes", "TRUE", "tru", "-1", "9" * 40])
VALUES = st.one_of(WORDS, st.text(max_size=20)).filter(lambda v: v not in ("true", "false"))


def state_or_error(output: str, returncode: int = 0, stderr: str = "") -> ClusterState | None:
    """The parse of one crm_mon run: its state, or None for a PacemakerError."""
    try:
        return crm_mon.read(
            CommandResult(("crm_mon", "--output-as=xml"), returncode, output, stderr)
        )
    except PacemakerError as error:
        assert str(error), "an error without a message is not a clear error"
        return None


@st.composite
def damaged_attribute(draw: st.DrawFn, document: str) -> str:
    """`document` with one attribute value replaced by a value crm_mon never writes there."""
    spots = [i for i in range(len(document)) if document.startswith('="', i)]
    start = draw(st.sampled_from(spots)) + 2
    end = document.index('"', start)
    value = draw(VALUES.map(lambda v: v.replace('"', "").replace("&", "").replace("<", "")))
    return document[:start] + value + document[end:]


@st.composite
def damaged_text(draw: st.DrawFn, document: str) -> str:
    """`document` with a slice cut out, or text spliced in."""
    start = draw(st.integers(0, len(document)))
    end = draw(st.integers(start, min(len(document), start + 200)))
    return document[:start] + draw(st.text(max_size=40)) + document[end:]


def damaged(document: str) -> st.SearchStrategy[str]:
    return damaged_attribute(document) | damaged_text(document)


@FUZZ
@given(output=st.one_of(st.text(), st.sampled_from(SAMPLES).flatmap(damaged)),
       returncode=st.integers(-300, 300), stderr=st.text(max_size=200))  # fmt: skip
def test_any_crm_mon_output_is_a_state_or_a_pacemaker_error(
    output: str, returncode: int, stderr: str
) -> None:
    state_or_error(output, returncode, stderr)


@FUZZ
@given(output=damaged_attribute(HEALTHY))
def test_a_damaged_healthy_document_never_shows_a_node_down(output: str) -> None:
    state = state_or_error(output)
    if state is not None:
        down = [node.name for node in state.nodes if node.is_down]
        assert not down, f"garbage shows {down} down"


class Outputs:
    """crm_mon's answers: a healthy cluster first, then each given output twice running (what
    one sample shows, the next confirms), the last one for good."""

    def __init__(self, outputs: Sequence[str]) -> None:
        self.outputs = [HEALTHY, HEALTHY, *(output for output in outputs for _ in range(2))]

    def run(self, argv: Sequence[str], timeout: float = 30) -> CommandResult:
        output = self.outputs.pop(0) if len(self.outputs) > 1 else self.outputs[0]
        return CommandResult(tuple(argv), 0, output, "")


class Reports:
    def __init__(self) -> None:
        self.reports: list[NodeReport] = []

    def submit(self, report: NodeReport) -> None:
        self.reports.append(report)


@FUZZ
@given(outputs=st.lists(st.one_of(st.text(max_size=200), damaged_attribute(HEALTHY)), max_size=8))
def test_the_monitor_outlives_garbage_and_reports_nothing_from_it(outputs: list[str]) -> None:
    reports = Reports()
    # Each sample 100 s after the last: a node seen lost is reported at the next sample, fenced
    # or not, so a failure read from garbage cannot hide behind the fencing timeout.
    detector = FailureDetector("node1", samples=1, clock=itertools.count(0, 100).__next__)
    monitor = HostMonitor(Outputs(outputs), detector, reports)  # type: ignore[arg-type]
    for _ in range(2 * len(outputs) + 3):
        monitor.poll_once()
    assert reports.reports == []


def test_a_status_code_that_is_not_a_number_is_a_pacemaker_error() -> None:
    """Found by the fuzzing: int() of the code raised ValueError, which ended the monitor."""
    output = HEALTHY.replace('<status code="0"', '<status code="zero"')
    with pytest.raises(PacemakerError, match="status code"):
        crm_mon.parse(output)


def test_a_node_flag_that_is_not_a_boolean_is_refused_not_read_as_false() -> None:
    """Found by the fuzzing: online="tru" read as offline, so a damaged document showed a
    healthy node down, and two such samples reported its failure."""
    node3 = 'name="node3" id="3" online="true"'
    broken = HEALTHY.replace(node3, 'name="node3" id="3" online="tru"')
    assert broken != HEALTHY
    with pytest.raises(PacemakerError, match=r"node 'node3' with online 'tru'"):
        crm_mon.parse(broken)
    without = HEALTHY.replace(node3, 'name="node3" id="3"')
    with pytest.raises(PacemakerError, match=r"node 'node3' with online missing"):
        crm_mon.parse(without)


def test_output_that_is_not_utf8_is_read_not_a_crash(tmp_path: Path) -> None:
    """Found by the fuzzing: bytes that are not UTF-8 raised UnicodeDecodeError in the
    runner, past the monitor's PacemakerError handler."""
    script = tmp_path / "crm_mon"
    script.write_bytes(b"#!/bin/sh\nprintf '<pacemaker-result>\\377</pacemaker-result>'\n")
    script.chmod(0o755)
    result = LocalRunner().run([str(script)], timeout=10)
    assert result.returncode == 0 and "\ufffd" in result.stdout
    with pytest.raises(PacemakerError):
        crm_mon.read(result)


# --- the alert agent and the monitor's socket -------------------------------------------------


ENVIRONMENTS = st.dictionaries(
    st.one_of(
        st.sampled_from([f"CRM_alert_{name}" for name in pacemaker_alert.FIELDS]),
        st.text(max_size=20),
    ),
    st.text(max_size=600),
).map(lambda env: {**env, "CRM_alert_kind": env.get("CRM_alert_kind", "node")})


@FUZZ
@given(environment=ENVIRONMENTS)
def test_every_alert_fits_what_the_monitor_reads(environment: dict[str, str]) -> None:
    datagram = pacemaker_alert.message(environment)
    if datagram is not None:
        assert len(datagram) <= pacemaker_alert.DATAGRAM_MAX
        assert isinstance(json.loads(datagram), dict)


def received_after(alerts: Alerts, before: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alerts.received == before and time.monotonic() < deadline:
        time.sleep(0.005)
    return alerts.received > before


JSON = st.recursive(
    st.none() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=20,
)
DATAGRAMS = st.one_of(
    st.binary(max_size=8192),
    st.integers(1, 20000).map(lambda depth: b"[" * depth),
    JSON.map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=max(20, EXAMPLES // 4),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(garbage=DATAGRAMS)
def test_the_socket_reader_outlives_any_datagram(alerts: Alerts, garbage: bytes) -> None:
    """Garbage first, then a real alert: the real one still wakes the monitor."""
    before = alerts.received
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(garbage, str(alerts.path))
    real = pacemaker_alert.message({"CRM_alert_kind": "fencing", "CRM_alert_node": "node3"})
    assert real is not None
    pacemaker_alert.send(real, str(alerts.path))
    assert received_after(alerts, before), "the reader stopped reading"


def test_deeply_nested_json_on_the_socket_is_ignored(alerts: Alerts) -> None:
    """Found by the fuzzing: json.loads of 4096 '[' raised RecursionError, not ValueError, and
    the reader thread died: no alert woke the monitor after that."""
    pacemaker_alert.send(b"[" * 4096, str(alerts.path))
    real = pacemaker_alert.message({"CRM_alert_kind": "node", "CRM_alert_node": "node2"})
    assert real is not None
    pacemaker_alert.send(real, str(alerts.path))
    assert received_after(alerts, 0)
    assert alerts.received == 1


def test_an_alert_of_long_non_ascii_fields_is_read_whole(alerts: Alerts) -> None:
    """Found by the fuzzing: JSON escapes each non-ASCII character as six bytes, so an alert of
    long descriptions outgrew the 4096 bytes the monitor read, and arrived cut (ignored)."""
    fields = {f"CRM_alert_{name}": "é" * 300 for name in pacemaker_alert.FIELDS}
    datagram = pacemaker_alert.message({**fields, "CRM_alert_kind": "node"})
    assert datagram is not None and len(datagram) > 4096
    pacemaker_alert.send(datagram, str(alerts.path))
    assert received_after(alerts, 0)
