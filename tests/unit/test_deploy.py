"""The shipped dashboard and alerts use metrics the operator really exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from controller import metrics

REPO = Path(__file__).resolve().parents[2]
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")


def _exported() -> set[str]:
    names = set()
    for family in metrics.REGISTRY.collect():
        names |= {sample.name for sample in family.samples} | {family.name}
    # Families without samples yet (labelled metrics before first use) still have a name.
    names |= {name + suffix for name in list(names) for suffix in SUFFIXES}
    return names


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\bmasakari_[a-z_]+", text))


def test_dashboard_queries_use_exported_metrics() -> None:
    dashboard = json.loads((REPO / "deploy/monitoring/grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = set().union(*(_referenced(e) for e in expressions))
    assert used and used <= _exported(), used - _exported()


def test_alert_rules_use_exported_metrics() -> None:
    rule = yaml.safe_load((REPO / "deploy/monitoring/prometheusrule.yaml").read_text())
    expressions = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    used = set().union(*(_referenced(e) for e in expressions))
    assert used and used <= _exported(), used - _exported()


# One series per Host of a BMC-fenced segment, removed with the Host: the alert on a broken BMC
# has to name the host (controller.metrics says why). Hosts are few next to events.
PER_HOST = {"masakari_bmc_fencing_ready": {"namespace", "host"}}


def test_metric_labels_are_bounded() -> None:
    """Never an instance or event name as a label, a host's only where PER_HOST says:
    cardinality stays bounded."""
    unbounded = {"host", "instance", "event", "name", "server"}
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            allowed = PER_HOST.get(family.name, set())
            assert not (unbounded - allowed) & set(sample.labels), sample
    labels = {
        label
        for m in vars(metrics).values()
        if hasattr(m, "_labelnames") and m._name not in PER_HOST
        for label in m._labelnames
    }
    assert labels and not unbounded & labels, labels
    for name, allowed in PER_HOST.items():
        exported = next(m for m in vars(metrics).values() if getattr(m, "_name", None) == name)
        assert set(exported._labelnames) == allowed
