"""`PacemakerCluster` on Pacemaker's command line tools, run through a CommandRunner.

Node attributes are changed with crm_attribute, which works the same for cluster members and
pacemaker-remote nodes. crmsh is avoided on purpose: `crm node standby` does nothing (exit 0)
when the node name does not resolve and answer ping, and refuses remote nodes that have a
`server` parameter; pcs needs pcsd for some remote-node actions. Every change is confirmed by
reading crm_mon until the node shows it, so a command that "succeeds" without effect is an error.
Fencing is the exception: its proof is the fencing history that `state()` shows, and reading it
is the caller's (controller.recovery.fencing), which also decides whether to fence at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.recovery.pacemaker import ChangeNotObserved, ClusterState, Node, NodeNotFound

from . import crm_mon, stonith_admin
from .runner import DEFAULT_TIMEOUT, CommandRunner, validate_node_name


@dataclass
class CrmCluster:
    runner: CommandRunner
    command_timeout: float = DEFAULT_TIMEOUT
    confirm_timeout: float = 30.0
    confirm_interval: float = 0.2

    def state(self) -> ClusterState:
        return crm_mon.read(
            self.runner.run(["crm_mon", "--output-as=xml"], timeout=self.command_timeout)
        )

    def put_in_standby(self, node: str) -> None:
        self._set_node_attribute(node, "standby", "on", lambda n: n.standby)

    def bring_online(self, node: str) -> None:
        self._set_node_attribute(node, "standby", "off", lambda n: not n.standby)

    def start_maintenance(self, node: str) -> None:
        self._set_node_attribute(node, "maintenance", "true", lambda n: n.maintenance)

    def end_maintenance(self, node: str) -> None:
        self._set_node_attribute(node, "maintenance", "false", lambda n: not n.maintenance)

    def fence(self, node: str, timeout: float) -> None:
        """Ask the cluster to fence `node` now, whatever its state; return once the device
        answered success. Deciding whether a fencing is needed is the caller's: stonith_admin
        would fence a node just fenced again (its --tolerance is left at 0)."""
        argv = stonith_admin.fence_argv(node, timeout)
        result = self.runner.run(argv, timeout=stonith_admin.command_timeout(timeout))
        if result.returncode != 0:
            raise stonith_admin.fence_error(result, node)

    def _set_node_attribute(
        self, node: str, name: str, value: str, shows_it: Callable[[Node], bool]
    ) -> None:
        validate_node_name(node)
        if self.state().node(node) is None:
            raise NodeNotFound(f"the cluster has no node {node!r}")
        result = self.runner.run(
            ["crm_attribute", "--type", "nodes", "--node", node, "--name", name, "--update", value],
            timeout=self.command_timeout,
        )
        crm_mon.raise_for_exit(result)
        self._confirm(node, f"{name}={value}", shows_it)

    def _confirm(self, node: str, change: str, shows_it: Callable[[Node], bool]) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while True:
            seen = self.state().node(node)
            if seen is not None and shows_it(seen):
                return
            if time.monotonic() >= deadline:
                raise ChangeNotObserved(
                    f"{change} on {node} was accepted but crm_mon did not show it within "
                    f"{self.confirm_timeout:g}s"
                )
            time.sleep(self.confirm_interval)
