"""Is a failed host confirmed down? Principle 2: fence before evacuate."""

from __future__ import annotations

from controller.drivers.pacemaker.model import ClusterState


def confirmed_down(state: ClusterState, node: str) -> tuple[bool, str]:
    """True when Pacemaker reports the node offline and fenced, or offline after a clean
    shutdown; never while it is unclean (lost, fencing not yet done) or seen without quorum."""
    if not state.has_quorum:
        return False, "the Pacemaker partition answering has no quorum"
    found = state.node(node)
    if found is None:
        return False, f"Pacemaker has no node {node}"
    if found.online and not found.unclean:
        return False, f"Pacemaker reports {node} online"
    if found.unclean:
        return False, f"{node} is unclean: lost and not fenced yet"
    fenced = [event for event in state.fencing_of(node) if event.succeeded]
    if fenced:
        return True, f"{node} offline and fenced ({fenced[-1].action})"
    if not state.stonith_enabled:
        return False, f"{node} offline but fencing is disabled: cannot be sure it is off"
    return True, f"{node} offline after a clean shutdown"
