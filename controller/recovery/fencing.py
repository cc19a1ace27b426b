"""Is a reported host confirmed down, still to be waited for, or back? Fence before evacuate.

Pure: the lifecycle reads Nova and Pacemaker, then asks `confirm`. The order of the checks:
1. the host is alive after all (nova-compute reported after the failure report, or Pacemaker
   shows the node online): the event ends `HostRecovered`;
2. the segment's fencing method confirms it down: with `pacemaker`, only a successful fencing
   of the node completed after it last came online; with `none` (an explicit opt-in), the
   reporter's `host_status: NORMAL`;
3. otherwise the event waits, up to the segment's fencing timeout, then ends
   `HostNotConfirmedDown`.

Masakari and our earlier code took a node offline after a clean shutdown for a fenced one; a
hypervisor whose cluster stack was stopped by hand runs its instances still, so it is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from controller.recovery.gates import Decision, Report, Verdict
from controller.recovery.pacemaker import ClusterState
from controller.resources.segment import FailoverSegmentSpec, FencingMethod

# A fencing that completed this long before the report was made belongs to an earlier failure
# (Pacemaker fences a lost node within its stonith-timeout, seconds to a minute), whenever the
# operator saw the node come online.
FENCING_RECORD_MAX_AGE = timedelta(minutes=10)
# Nova's heartbeat time and the report's time come from different clocks.
HEARTBEAT_SKEW = timedelta(seconds=15)


@dataclass(frozen=True)
class Evidence:
    """What Nova and Pacemaker say of the reported host, read just before deciding."""

    heartbeat: datetime | None = None  # nova-compute's last report to Nova
    cluster: ClusterState | None = None  # None: not configured, or unreadable (see why)
    cluster_unavailable: str = "no Pacemaker access is configured for this cloud"
    online_since: datetime | None = None  # when the operator saw the node (re)join the cluster


def confirmed_down(state: ClusterState, node: str, not_before: datetime | None) -> tuple[bool, str]:
    """True only when Pacemaker, with quorum, shows the node offline and a successful fencing
    of it completed at or after `not_before` (when it last came online)."""
    if not state.has_quorum:
        return False, "the Pacemaker partition answering has no quorum"
    found = state.node(node)
    if found is None:
        return False, f"Pacemaker has no node {node}"
    if found.online and not found.unclean:
        return False, f"Pacemaker reports {node} online"
    if found.unclean:
        return False, f"{node} is unclean: lost and not fenced yet"
    fenced = sorted(
        (event.completed, event.action)
        for event in state.fencing_of(node)
        if event.succeeded
        and event.completed is not None
        and (not_before is None or event.completed >= not_before)
    )
    if fenced:
        completed, action = fenced[-1]
        return True, f"{node} offline and fenced ({action} at {completed.isoformat()})"
    if not state.stonith_enabled:
        return False, f"{node} offline but fencing is disabled: cannot be sure it is off"
    return False, f"{node} offline with no fencing of it since it last came online"


def confirm(
    report: Report,
    node: str,
    segment: FailoverSegmentSpec,
    evidence: Evidence,
    now: datetime,
) -> Decision:
    """The decision on a host failure that passed the other gates."""
    generated = report.spec.generated_time
    if evidence.heartbeat is not None and evidence.heartbeat > generated + HEARTBEAT_SKEW:
        return Decision(
            Verdict.IGNORE,
            "HostRecovered",
            f"nova-compute on {report.spec.host} reported at {evidence.heartbeat.isoformat()}, "
            "after the failure",
        )
    state = evidence.cluster
    if segment.fencing.method == FencingMethod.NONE:
        if report.spec.payload.host_status == "NORMAL":
            return Decision(
                Verdict.PROCEED,
                "ReportedDown",
                "taken on its monitor's word (fencing.method: none)",
            )
        why = "its monitor did not confirm it down, and with fencing.method none nothing can"
    elif state is None:
        why = evidence.cluster_unavailable
    else:
        found = state.node(node)
        if state.has_quorum and found is not None and found.is_up:
            return Decision(
                Verdict.IGNORE, "HostRecovered", f"Pacemaker reports {node} online again"
            )
        oldest = report.created - FENCING_RECORD_MAX_AGE
        online_since = evidence.online_since
        not_before = max(online_since, oldest) if online_since is not None else oldest
        down, why = confirmed_down(state, node, not_before)
        if down:
            return Decision(Verdict.PROCEED, "FencingConfirmed", why)
    timeout = timedelta(seconds=segment.host_failure.fencing_timeout_seconds)
    if now - report.created >= timeout:
        return Decision(
            Verdict.IGNORE,
            "HostNotConfirmedDown",
            f"not confirmed down after {timeout.total_seconds():.0f}s: {why}",
        )
    return Decision(Verdict.WAIT, "AwaitingFencing", why)
