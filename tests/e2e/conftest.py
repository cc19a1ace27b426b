"""The Pacemaker tier: a real Corosync + Pacemaker cluster in network namespaces.

A machine that cannot run it (not root, packages missing) fails this tier with the reason;
deselect it explicitly with `-m "not pacemaker"`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from tests.harness import pacemaker_lab

LabFactory = Callable[..., AbstractContextManager[pacemaker_lab.PacemakerLab]]


@pytest.fixture(scope="module")
def lab_factory() -> Iterator[LabFactory]:
    problem = pacemaker_lab.missing_prerequisites()
    if problem:
        pytest.fail(
            f"the Pacemaker tier cannot run here: {problem}. "
            "Deselect it with -m 'not pacemaker' if that is intended.",
            pytrace=False,
        )
    yield pacemaker_lab.running
