"""The shipped alert rules, checked and unit-tested by promtool (tests/unit/data/
alert_rules_test.yaml: the first failure after a restart, a host that could not be fenced, no
leader and two), and each alert's runbook in docs/runbooks.md.

promtool comes from Debian's prometheus package, installed by `make test` (hack/promtool):
missing, these tests fail, never skip, so CI cannot pass without running them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "deploy/monitoring/prometheusrule.yaml"
TESTS = Path(__file__).parent / "data/alert_rules_test.yaml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run `make promtool` (as root: Debian's prometheus)")
    return found


def groups() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(RULE.read_text())["spec"]
    return spec


def alerts() -> list[dict[str, Any]]:
    return [r for g in groups()["groups"] for r in g["rules"] if "alert" in r]


def run(*args: str, cwd: Path) -> None:
    result = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups()))
    run("check", "rules", "rules.yaml", cwd=tmp_path)


def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    bare = groups()
    for group in bare["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(bare))
    shutil.copy(TESTS, tmp_path / TESTS.name)
    run("test", "rules", TESTS.name, cwd=tmp_path)
    tested = set(re.findall(r"alertname: (\w+)", TESTS.read_text()))
    assert tested == {a["alert"] for a in alerts()}, "an alert without a promtool test"


def test_every_alert_has_a_runbook_in_the_docs() -> None:
    runbooks = (REPO / "docs/runbooks.md").read_text()
    anchors = {h.lower() for h in re.findall(r"^## (\w+)$", runbooks, re.MULTILINE)}
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        assert url == f"docs/runbooks.md#{alert['alert'].lower()}", url
        assert alert["alert"].lower() in anchors, f"no runbook for {alert['alert']}"
