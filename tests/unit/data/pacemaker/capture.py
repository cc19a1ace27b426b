"""Re-capture the crm_mon XML samples of this directory from a real lab cluster.

    sudo .venv/bin/python -m tests.unit.data.pacemaker.capture      # about a minute; needs root
    sudo .venv/bin/python -m tests.unit.data.pacemaker.capture fencing   # stonith_admin only

Each sample is one state the parser and the host monitor must read right; stonith-admin.json
holds what `stonith_admin --fence` answers (exit code, output) for each way a fencing ends. Node
names, times and ids differ from run to run; the tests only rely on the states named in the file
names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.harness import pacemaker_lab

HERE = Path(__file__).resolve().parent


def save(lab: pacemaker_lab.PacemakerLab, name: str, observer: str = "node1") -> None:
    (HERE / f"{name}.xml").write_text(lab.crm_mon(observer))
    print(f"captured {name}.xml from {observer}")


def capture_joining(lab: pacemaker_lab.PacemakerLab, node: str, timeout: float = 30) -> None:
    """Catch a restarted node half way in: online, pending (and usually standby)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        xml = lab.exec("node1", ["crm_mon", "--output-as=xml"], check=False).stdout
        if f'name="{node}"' in xml and any(
            f'<node name="{node}"' in line and 'pending="true"' in line for line in xml.splitlines()
        ):
            (HERE / "member-joining.xml").write_text(xml)
            print("captured member-joining.xml")
            return
        time.sleep(0.02)
    print("no joining state seen (the node joined between two samples); kept the old sample")


def capture_fencing() -> None:
    """stonith_admin --fence for each way a fencing request ends."""
    samples: dict[str, dict[str, object]] = {}

    def fence(name: str, prefix: list[str], target: str, timeout: str) -> None:
        argv = ["stonith_admin", "--fence", target, "--timeout", timeout]
        result = subprocess.run(
            prefix + argv, capture_output=True, text=True, timeout=60, check=False
        )
        samples[name] = {
            "argv": argv,
            "returncode": result.returncode,
            "stdout": result.stdout,
            "stderr": result.stderr,
        }
        print(f"captured {name} (exit code {result.returncode})")

    with pacemaker_lab.running(
        members=3, fence_delay=2, unfenceable=["node2"], failing_fence=["node3"]
    ) as lab:
        node1 = lab.nsenter_prefix("node1")
        fence("no-device", node1, "node2", "20")
        fence("device-failed", node1, "node3", "20")
        fence("unknown-node", node1, "node9", "20")
        fence("fenced", lab.nsenter_prefix("node2"), "node1", "20")
        # fence_dummy waits its 2 s delay first: a 1 s timeout passes before it answers.
        fence("timed-out", lab.nsenter_prefix("node2"), "node1", "1")
        # The hub namespace runs no cluster daemons, like a node whose stack is down.
        fence("not-connected", ["ip", "netns", "exec", lab.hub], "node3", "5")
    (HERE / "stonith-admin.json").write_text(json.dumps(samples, indent=2) + "\n")


def main() -> int:
    if sys.argv[1:] == ["fencing"]:
        capture_fencing()
        return 0
    with pacemaker_lab.running(members=3, remotes=1, fence_delay=3) as lab:
        save(lab, "healthy")

        lab.exec(
            "node2", ["crm_attribute", "-t", "nodes", "-N", "node1", "-n", "standby", "-v", "on"]
        )
        lab.exec(
            "node2",
            ["crm_attribute", "-t", "nodes", "-N", "remote1", "-n", "standby", "-v", "on"],
        )
        lab.exec(
            "node2",
            ["crm_attribute", "-t", "nodes", "-N", "node3", "-n", "maintenance", "-v", "true"],
        )
        lab.wait_node("node3", "node1", maintenance="true")
        lab.wait_node("remote1", "node1", standby="true")
        save(lab, "standby-maintenance")
        for node, name, value in (
            ("node1", "standby", "off"),
            ("remote1", "standby", "off"),
            ("node3", "maintenance", "false"),
        ):
            lab.exec("node2", ["crm_attribute", "-t", "nodes", "-N", node, "-n", name, "-v", value])
        lab.wait_node("node3", "node1", maintenance="false")

        lab.kill("node3")
        lab.wait_node("node3", "node1", unclean="true")
        save(lab, "member-unclean")
        lab.wait_node("node3", "node1", online="false", unclean="false")
        save(lab, "member-fenced")
        lab.start_node("node3")
        capture_joining(lab, "node3")
        lab.wait_online(["node3"], observer="node1")

        lab.kill("remote1")
        lab.wait_node("remote1", "node1", online="false")
        save(lab, "remote-lost")
        lab.wait_node("remote1", "node1", online="false", unclean="false", timeout=90)
        save(lab, "remote-fenced")
        lab.start_node("remote1")
        lab.wait_online(["remote1"], observer="node1", timeout=90)

        lab.cut("node3")
        lab.wait_node("node1", "node3", unclean="true")
        save(lab, "minority-no-quorum", observer="node3")
        # Let the majority's fencing of node3 finish first: landing after the restart, it
        # would make the new node3 stop itself.
        lab.wait_node("node3", "node1", online="false", unclean="false")
        lab.restore("node3")
        lab.kill("node3")
        lab.start_node("node3")
        lab.wait_online(["node3"], observer="node1", timeout=90)

        lab.exec(
            "node1",
            ["crm_attribute", "-t", "crm_config", "-n", "stonith-enabled", "-v", "false"],
        )
        lab.kill("node2")
        lab.wait_node("node2", "node1", online="false")
        save(lab, "member-offline-no-fencing")

        # The hub namespace runs no cluster daemons: crm_mon there is a node whose stack is down.
        result = subprocess.run(
            ["ip", "netns", "exec", lab.hub, "crm_mon", "--output-as=xml"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        (HERE / "not-connected.xml").write_text(result.stdout)
        (HERE / "not-connected.rc").write_text(f"{result.returncode}\n")
        print(f"captured not-connected.xml (exit code {result.returncode})")
    capture_fencing()
    return 0


if __name__ == "__main__":
    sys.exit(main())
