"""A fleet of operators on the real API server: two shards choose their namespaces by label;
the one that claimed a namespace both select is the only one acting there; relabelling moves a
namespace (both restart, as their Deployments would start them again); and a shard that stops
for good leaves its claim to be taken over once its Lease has gone stale.

Who acted is read from each operator's log, where every transition of a FailureEvent names its
namespace and event: a shard serving a namespace records its events, one that does not never
mentions them. The events are reports of a host nobody registered, which a served namespace
ends as Ignored at once (no Nova call)."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.harness.operator import Operator, bind_namespace
from tests.harness.sim import Sim, running_sim
from tests.integration.operator_env import host_failure, wait_for

pytestmark = pytest.mark.integration

CLAIM = "masakari.dev/shard"
RESTART = 75  # controller.handlers.shard.RESTART


class Fleet:
    def __init__(self, cluster: Cluster, sim: Sim, tmp_path: Path) -> None:
        tag = uuid.uuid4().hex[:8]
        self.cluster, self.sim, self.tmp_path = cluster, sim, tmp_path
        self.label = f"fleet-{tag}"
        self.leases = f"fleet-{tag}"  # every shard's Lease in one namespace, as in deploy/
        cluster.kubectl("create", "namespace", self.leases)
        self.names = {region: f"{region}-{tag}" for region in ("one", "two", "both")}
        for region, name in self.names.items():
            cluster.kubectl("create", "namespace", name)
            self.relabel(name, region)
            bind_namespace(cluster.kubeconfig, name, sim.clouds_yaml, sim.cloud)

    def relabel(self, namespace: str, region: str) -> None:
        self.cluster.kubectl(
            "label", "namespace", namespace, f"{self.label}={region}", "--overwrite"
        )

    def shard(self, name: str, regions: str, replica: str = "") -> Operator:
        return Operator(
            self.cluster.kubeconfig,
            self.names["both"],  # bound already; each shard binds nothing of its own
            self.sim.clouds_yaml,
            self.sim.cloud,
            self.tmp_path / f"{name}{replica}.log",
            env={
                "MASAKARI_LEASE_NAMESPACE": self.leases,
                "MASAKARI_LEASE_NAME": name,
                "MASAKARI_BINDING_RESYNC_INTERVAL": "1",  # how often a shard reads its selection
            },
            standalone=False,
            scope=("--namespace-selector", f"{self.label} in ({regions})"),
        )

    def claim(self, namespace: str) -> str:
        out = self.cluster.kubectl("get", "namespace", namespace, "-o", "json").stdout
        annotations = json.loads(out)["metadata"].get("annotations", {})
        return str(annotations.get(CLAIM, ""))

    def report(self, namespace: str, event: str) -> None:
        body = json.dumps(host_failure(event, "nobody-registered-this-host"))
        self.cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=body)


def supervise(*shards: Operator) -> None:
    """What the Deployment does: a shard that exited to serve its new set is started again."""
    for shard in shards:
        assert shard.process is not None
        code = shard.process.poll()
        if code is None:
            continue
        assert code == RESTART, f"{shard.log_path.name} exited {code}:\n{shard.log()[-3000:]}"
        begun = time.monotonic()
        shard.start()
        print(
            f"{shard.log_path.stem} exited {code}, started again in {time.monotonic() - begun:.1f}s"
        )


def leader_of(replica: Operator) -> tuple[str, float]:
    """The replica's masakari_leader: its shard, and 1.0 when it leads."""
    text = replica.metrics()
    found = re.search(r'^masakari_leader\{shard="([^"]*)"\} (\S+)$', text, re.MULTILINE)
    assert found, text
    return found[1], float(found[2])


def recorded(shard: Operator | list[Operator], namespace: str, event: str) -> bool:
    replicas = shard if isinstance(shard, list) else [shard]
    return any(f"namespace={namespace} event={event}" in r.log() for r in replicas)


def test_two_shards_serve_disjoint_namespaces_and_a_namespace_moves_between_them(
    cluster: Cluster, tmp_path: Path
) -> None:
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        sim = stack.enter_context(running_sim(None))
        fleet = Fleet(cluster, sim, tmp_path)
        one_ns, two_ns, both_ns = (fleet.names[r] for r in ("one", "two", "both"))
        one = fleet.shard("shard-one", "one,both")
        two = fleet.shard("shard-two", "two,both")
        # Shard two's standby: it wins the Lease when the leader restarts for its new set, a
        # set the standby did not start with; it too must start again, before acting.
        standby = fleet.shard("shard-two", "two,both", replica="-standby")
        shard_two = [two, standby]
        # A shard that selects nothing: kopf, given no namespace, would serve the whole cluster.
        empty = fleet.shard("shard-empty", "none")
        for replica in (standby, two, one, empty):
            stack.callback(replica.stop)
        one.start()
        two.start()  # after one has claimed the namespace both select
        standby.start()
        empty.start()
        print(f"\nfour operators (three shards) started in {time.monotonic() - started:.1f}s")
        owner_one, owner_two = f"{fleet.leases}/shard-one", f"{fleet.leases}/shard-two"
        assert [fleet.claim(n) for n in (one_ns, two_ns, both_ns)] == [
            owner_one,
            owner_two,
            owner_one,
        ]
        assert f"claimed by shard {owner_one}: not served" in two.log()
        # Each shard's leader exports its own series: the leader alerts count shards apart.
        assert leader_of(one) == (owner_one, 1.0)
        assert sorted(leader_of(r) for r in shard_two) == [(owner_two, 0.0), (owner_two, 1.0)]
        events = cluster.kubectl(
            "get", "events", "-A", "--field-selector", "reason=ClaimedByAnotherShard", "-o", "json"
        ).stdout
        assert any(e["involvedObject"]["name"] == both_ns for e in json.loads(events)["items"])

        for namespace in (one_ns, two_ns, both_ns):
            fleet.report(namespace, "e1")
        wait_for(
            "one's namespaces served",
            lambda: all(recorded(one, n, "e1") for n in (one_ns, both_ns)),
        )
        wait_for("two's namespace served", lambda: recorded(two, two_ns, "e1"))
        assert not recorded(one, two_ns, "e1")
        assert not any(f"namespace={both_ns}" in r.log() for r in shard_two)
        assert "serves []" in empty.log()
        assert not any(recorded(empty, n, "e1") for n in fleet.names.values())

        # Relabelled, a namespace leaves shard one (which releases it once its handlers have
        # stopped) and joins shard two (which claims it once released): both start again.
        moved = time.monotonic()
        fleet.relabel(one_ns, "two")

        def claimed_by_two() -> bool:
            supervise(one, *shard_two)
            return fleet.claim(one_ns) == owner_two

        wait_for("the relabelled namespace claimed by shard two", claimed_by_two, timeout=45)
        fleet.report(one_ns, "e2")  # shard one gave it up: only shard two may act on it now

        def served_by_two() -> bool:
            supervise(one, *shard_two)
            return recorded(shard_two, one_ns, "e2")

        wait_for("the relabelled namespace served by shard two", served_by_two, timeout=45)
        print(
            f"relabelled namespace served by the other shard after {time.monotonic() - moved:.1f}s"
        )
        assert not recorded(one, one_ns, "e2")
        # The standby took the Lease with the set it had started with: it started again first.
        assert "stopping to start again with the new set" in standby.log()

        # Shard one stops for good (SIGKILL: no release). Its claim stands until its Lease has
        # not changed for a lease duration on shard two's clock; then two takes it over.
        one.kill()
        killed = time.monotonic()
        fleet.report(both_ns, "e3")

        def taken_over() -> bool:
            supervise(*shard_two)
            return fleet.claim(both_ns) == owner_two and recorded(shard_two, both_ns, "e3")

        wait_for("the stale claim taken over", taken_over, timeout=45)
        print(f"stale claim taken over and served after {time.monotonic() - killed:.1f}s")
        assert any("took over the claim of shard" in r.log() for r in shard_two)

        # An operator of another shape claims nothing and must not start beside a shard.
        alone = fleet.shard("all-namespaces", "")
        alone.scope, alone.standalone = ("--all-namespaces",), True
        with pytest.raises(
            RuntimeError, match=f"namespace {both_ns} is claimed by shard {owner_two}"
        ):
            alone.start()
        assert alone.process is not None and alone.process.returncode == 1
        for namespace in fleet.names.values():
            # Left behind, a claim would keep an operator of another shape from starting.
            cluster.kubectl("annotate", "namespace", namespace, f"{CLAIM}-")
    print(f"fleet test took {time.monotonic() - started:.1f}s")
