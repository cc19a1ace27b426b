"""A test session stopped with SIGTERM tears its fixtures down (tests/conftest.py), as one
stopped with Ctrl-C does: the labs a session starts are stopped by their fixtures."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_session_stopped_with_sigterm_tears_its_fixtures_down(tmp_path: Path) -> None:
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    module = tmp_path / "test_lab.py"
    module.write_text(
        "import time\n"
        "from pathlib import Path\n"
        "import pytest\n"
        "@pytest.fixture(scope='session')\n"
        "def lab():\n"
        f"    Path({str(started)!r}).touch()\n"
        "    yield\n"
        f"    Path({str(stopped)!r}).touch()\n"
        "def test_long(lab):\n"
        "    time.sleep(60)\n"
    )
    # The project's conftest as the session's root conftest, beside the test module.
    (tmp_path / "conftest.py").write_text((REPO / "tests/conftest.py").read_text())
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(module)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started.exists(), "the session never set its fixture up"
        session.send_signal(signal.SIGTERM)
        session.wait(timeout=30)
    finally:
        if session.poll() is None:
            session.kill()
            session.wait(timeout=10)
    assert stopped.exists(), (session.stdout.read() if session.stdout else b"").decode()
