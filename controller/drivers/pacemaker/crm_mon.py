"""Reading `crm_mon --output-as=xml` (Pacemaker 2.1, XML API 2.x) into typed models.

Pure functions: no command runs here, so the parser is tested on captured output.
"""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from controller.recovery.pacemaker import (
    ClusterState,
    ClusterUnavailable,
    CommandTimeout,
    FenceEvent,
    FenceStatus,
    Node,
    NodeNotFound,
    NodeType,
    PacemakerError,
    PermissionDenied,
    ToolMissing,
)

from .runner import CommandResult

# Pacemaker's exit codes (crm_exit_t) that mean something a caller can act on.
_UNAVAILABLE = {7: "not running", 69: "service unavailable", 102: "not connected"}
_DENIED = {4: "insufficient privileges", 77: "permission denied"}
_MISSING = {5: "not installed", 127: "command not found"}
_NO_SUCH = 105
_TIMEOUT = 124


def raise_for_exit(result: CommandResult, xml_message: str | None = None) -> None:
    """Raise the PacemakerError a Pacemaker tool's failure exit code stands for."""
    if result.returncode != 0:
        raise error_for_exit(result, xml_message)


def error_for_exit(result: CommandResult, xml_message: str | None = None) -> PacemakerError:
    """The PacemakerError matching a Pacemaker tool's (non-zero) exit code."""
    tool = result.argv[0] if result.argv else "command"
    detail = xml_message or _last_line(result.stderr) or f"exit code {result.returncode}"
    code = result.returncode
    if code in _UNAVAILABLE:
        return ClusterUnavailable(f"{tool}: cluster {_UNAVAILABLE[code]} ({code}): {detail}")
    if code in _DENIED:
        return PermissionDenied(f"{tool}: {_DENIED[code]} ({code}): {detail}")
    if code in _MISSING:
        return ToolMissing(f"{tool}: {_MISSING[code]} ({code}): {detail}")
    if code == _NO_SUCH:
        return NodeNotFound(f"{tool}: no such object ({code}): {detail}")
    if code == _TIMEOUT:
        return CommandTimeout(f"{tool}: timed out ({code}): {detail}")
    return PacemakerError(f"{tool} failed with exit code {code}: {detail}")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def _xml_errors(root: ET.Element) -> str | None:
    status = root.find("status")
    if status is None:
        return None
    errors = [error.text.strip() for error in status.iterfind("errors/error") if error.text]
    message = status.get("message", "")
    return "; ".join([message, *errors]) if errors or message else None


def _flag(element: ET.Element, name: str, owner: str) -> bool:
    # crm_mon writes each of these flags as "true" or "false". Anything else is a damaged
    # document: read as false, online="tru" would show a healthy node down, and the host
    # monitor would report its failure.
    value = element.get(name)
    if value not in ("true", "false"):
        shown = "missing" if value is None else repr(value[:40])
        raise PacemakerError(f"crm_mon reported {owner} with {name} {shown}, not true or false")
    return value == "true"


def _node(element: ET.Element) -> Node:
    name = element.get("name")
    if not name:
        raise PacemakerError("crm_mon reported a node without a name")
    try:
        node_type = NodeType(element.get("type", "unknown"))
    except ValueError:
        node_type = NodeType.UNKNOWN
    owner = f"node {name[:64]!r}"
    return Node(
        name=name,
        id=element.get("id", ""),
        type=node_type,
        online=_flag(element, "online", owner),
        standby=_flag(element, "standby", owner),
        maintenance=_flag(element, "maintenance", owner),
        pending=_flag(element, "pending", owner),
        unclean=_flag(element, "unclean", owner),
        shutdown=_flag(element, "shutdown", owner),
        expected_up=_flag(element, "expected_up", owner),
        is_dc=_flag(element, "is_dc", owner),
    )


def _completed(value: str | None) -> datetime | None:
    # crm_mon prints "2026-11-26 00:49:01Z": UTC with one-second resolution.
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _fence_event(element: ET.Element) -> FenceEvent:
    try:
        status = FenceStatus(element.get("status", "unknown"))
    except ValueError:
        status = FenceStatus.UNKNOWN
    return FenceEvent(
        target=element.get("target", ""),
        action=element.get("action", ""),
        status=status,
        origin=element.get("origin"),
        delegate=element.get("delegate"),
        client=element.get("client"),
        completed=_completed(element.get("completed")),
        exit_reason=element.get("exit-reason") or element.get("exit_reason"),
    )


def _status_code(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PacemakerError(f"crm_mon reported the status code {text[:40]!r}") from None


def parse(xml: str) -> ClusterState:
    """The cluster state in one `crm_mon --output-as=xml` document.

    Raises ClusterUnavailable (or another PacemakerError) when the document is crm_mon's report
    of its own failure rather than a cluster state.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as error:
        raise PacemakerError(f"crm_mon output is not XML: {error}") from error
    if root.tag != "pacemaker-result":
        raise PacemakerError(f"unexpected crm_mon document <{root.tag}>")
    status = root.find("status")
    code = _status_code(status.get("code", "0")) if status is not None else 0
    summary = root.find("summary")
    if code != 0 or summary is None:
        raise error_for_exit(
            CommandResult(("crm_mon",), code or 1, "", ""), _xml_errors(root) or "no summary"
        )
    dc = summary.find("current_dc")
    options = summary.find("cluster_options")
    dc_present = dc is not None and _flag(dc, "present", "the DC")
    return ClusterState(
        dc=dc.get("name") if dc is not None and dc_present else None,
        # Without a DC there is no partition decision yet: treat it as no quorum.
        has_quorum=dc is not None and dc_present and _flag(dc, "with_quorum", "the DC"),
        stonith_enabled=options is not None and _flag(options, "stonith-enabled", "the cluster"),
        maintenance_mode=options is not None and _flag(options, "maintenance-mode", "the cluster"),
        nodes=tuple(_node(element) for element in root.iterfind("nodes/node")),
        fence_history=tuple(
            _fence_event(element) for element in root.iterfind("fence_history/fence_event")
        ),
    )


def read(result: CommandResult) -> ClusterState:
    """The state from a finished crm_mon run, or the error its exit code stands for."""
    if result.returncode != 0:
        message = None
        with contextlib.suppress(ET.ParseError):
            message = _xml_errors(ET.fromstring(result.stdout))
        raise_for_exit(result, message)
    return parse(result.stdout)
