"""Fencing a node on request with `stonith_admin --fence` (Pacemaker 2.1).

Pure: the argument list and what the command's end means; cluster.py runs it. stonith_admin
hands the request to the fencer, which picks a device able to fence the node (its
pcmk_host_list, or the agent's own list), runs the agent's "off" and records the result in the
cluster-wide fencing history, success or failure. The command returns when that result is in,
or when its own --timeout passes.
"""

from __future__ import annotations

import math

from controller.recovery.pacemaker import CommandTimeout, FencingFailed, PacemakerError

from .crm_mon import error_for_exit
from .runner import CommandResult, validate_node_name

# What stonith_admin --fence exits with (Pacemaker 2.1.5, tests/unit/data/pacemaker/
# stonith-admin.json): 1 when the device ran and failed ("No data available"), 105 when no device
# can fence the node ("No such device"), 124 when the fencing did not end within --timeout,
# 102 when the fencer does not answer. Only 0 means the node was fenced.
_DEVICE_FAILED = 1
_NO_DEVICE = 105
_TIMEOUT = 124
# The fencer stretches the --timeout of a fencing it hands to a peer by a fifth ("Total timeout
# set to 36" for 30 s, in the lab's fencer log) and sends stonith_admin the longer bound. The
# command's own bound is longer still, so the fencer's answer, with its reason, arrives before
# the runner kills the command and leaves us knowing nothing.
PEER_STRETCH = 1.2
COMMAND_MARGIN = 10.0


def fence_argv(node: str, timeout: float) -> list[str]:
    """`stonith_admin --fence node --timeout S`: "off", not Pacemaker's default "reboot", since
    a host whose instances are evacuated must stay down until someone releases it."""
    validate_node_name(node)
    return ["stonith_admin", "--fence", node, "--timeout", str(whole_seconds(timeout))]


def command_timeout(timeout: float) -> float:
    """How long the stonith_admin command itself may run for a fencing bounded by `timeout`."""
    return whole_seconds(timeout) * PEER_STRETCH + COMMAND_MARGIN


def whole_seconds(timeout: float) -> int:
    """stonith_admin takes whole seconds; never fewer than asked, never zero (its default)."""
    return max(1, math.ceil(timeout))


def fence_error(result: CommandResult, node: str) -> PacemakerError:
    """The PacemakerError of a fencing request that did not succeed (non-zero exit)."""
    detail = _reason(result) or f"exit code {result.returncode}"
    code = result.returncode
    if code == _DEVICE_FAILED:
        return FencingFailed(f"the fencing device failed to fence {node} ({code}): {detail}")
    if code == _NO_DEVICE:
        return FencingFailed(f"no fencing device can fence {node} ({code}): {detail}")
    if code == _TIMEOUT:
        return CommandTimeout(f"fencing {node} did not end in time ({code}): {detail}")
    return error_for_exit(result, detail)


def _reason(result: CommandResult) -> str:
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()]
    return next((line for line in reversed(lines) if line), "")
