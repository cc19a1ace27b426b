"""Masakari's own functional tests (`masakari.tests.functional`, shipped in the masakari 22
wheel) run against our API, as a conformance suite.

They run in a virtualenv of their own (hack/masakari-functional/install.sh) with stdlib
unittest, the way Masakari's gate runs them: openstacksdk reads a clouds.yaml whose clouds
`devstack-admin` and `devstack` (the names masakari/tests/functional/base.py looks for) reach
Nova and, as the instance-ha service, the API under test.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.control_plane import run_install_script

REPO = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO / "hack" / "masakari-functional" / "install.sh"
INSTALL_TIMEOUT = 900
#: masakari/tests/functional/base.py: ADMIN_CLOUD_NAME and USER_CLOUD_NAME's defaults.
CLOUDS = ("devstack-admin", "devstack")
SUITE = "masakari.tests.functional"
#: unittest's verbose line of one test (testtools names a test by its id):
#: "masakari.tests.functional.test_hosts.TestHosts.test_list ... ok".
RESULT_LINE = re.compile(r"^(\S+) \.\.\. (ok|FAIL|ERROR|skipped)", re.M)
STARTED_LINE = re.compile(r"^(\S+) \.\.\. ", re.M)


def install() -> Path:
    """Run the installer (idempotent, fast when done) and return the virtualenv."""
    venv = run_install_script(INSTALL_SCRIPT, INSTALL_TIMEOUT)
    if venv is None:
        raise RuntimeError(f"{INSTALL_SCRIPT.relative_to(REPO)} failed; its output is above")
    return venv


def clouds_yaml(path: Path, nova_cloud: dict[str, Any], api_url: str) -> Path:
    """The suite's two clouds: the lab's Nova cloud with the API as its instance-ha service."""
    cloud = {**nova_cloud, "instance_ha_endpoint_override": api_url}
    path.write_text(yaml.safe_dump({"clouds": dict.fromkeys(CLOUDS, cloud)}))
    path.chmod(0o600)
    return path


@dataclass
class SuiteResult:
    outcomes: dict[str, str]  # test id -> ok, FAIL, ERROR, skipped, or "cut after Ns"
    log_path: Path

    @property
    def passed(self) -> list[str]:
        return [name for name, outcome in self.outcomes.items() if outcome == "ok"]

    @property
    def not_passed(self) -> dict[str, str]:
        return {name: outcome for name, outcome in self.outcomes.items() if outcome != "ok"}

    def report(self) -> str:
        """unittest's account of what did not pass: each traceback, without the test's
        captured output (the HTTP log, which stays in the log files)."""
        text = self.log_path.read_text(errors="replace")
        failures = text.split("\n" + "=" * 70 + "\n")[1:]
        if not failures:  # the run itself failed: its last words say why
            return text[-3000:]
        return "\n\n".join(re.split(r"\n(?:Stdout|Stderr):\n", block)[0] for block in failures)


def run_suite(venv: Path, clouds: Path, workdir: Path, timeout: float) -> SuiteResult:
    """Run the suite and read each test's outcome. unittest's account goes to suite.log
    (`-b`: with what a test that did not pass logged), openstacksdk's HTTP debug log of every
    test (it redacts tokens) to suite-http.log."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
        "OS_CLIENT_CONFIG_FILE": str(clouds),
    }
    command = [str(venv / "bin" / "python"), "-m", "unittest", "discover", "-v", "-b", "-s", SUITE]
    log_path = workdir / "suite.log"
    timed_out = False
    with log_path.open("w") as log, (workdir / "suite-http.log").open("w") as http:
        try:
            subprocess.run(
                command, cwd=workdir, env=env, stdout=http, stderr=log,
                stdin=subprocess.DEVNULL, timeout=timeout, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            timed_out = True
    text = log_path.read_text(errors="replace")
    outcomes = dict(RESULT_LINE.findall(text))
    if timed_out:  # the test that was running when the time ran out
        running = STARTED_LINE.findall(text)
        outcomes[running[-1] if running else SUITE] = f"cut after {timeout:.0f}s"
    return SuiteResult(outcomes, log_path)
