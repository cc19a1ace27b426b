"""The probes: /healthz follows the event loop's heartbeat, /readyz also the replica's own
readiness (not leadership), and any other path is the metrics exposition."""

from __future__ import annotations

from typing import Any

from controller.health import Probes


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def call(probes: Probes, path: str) -> tuple[str, bytes]:
    answer: dict[str, str] = {}

    def start_response(status: str, headers: Any) -> None:
        answer["status"] = status

    body = b"".join(probes.app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, start_response))
    return answer["status"], body


def test_a_stuck_event_loop_fails_both_probes() -> None:
    clock = Clock()
    probes = Probes(ready=lambda: True, stale_after=30, clock=clock, beat_at=clock.now)
    assert call(probes, "/healthz")[0].startswith("200")
    assert call(probes, "/readyz")[0].startswith("200")
    clock.now += 30  # no heartbeat for the whole allowance
    assert call(probes, "/healthz")[0].startswith("503")
    assert call(probes, "/readyz")[0].startswith("503")


def test_readiness_is_the_replicas_own_and_metrics_are_served_beside_it() -> None:
    clock = Clock()
    reachable = [False]
    probes = Probes(ready=lambda: reachable[0], clock=clock, beat_at=clock.now)
    assert call(probes, "/readyz")[0].startswith("503")
    assert call(probes, "/healthz")[0].startswith("200")  # alive: no restart for that
    reachable[0] = True
    assert call(probes, "/readyz")[0].startswith("200")
    status, body = call(probes, "/metrics")
    assert status.startswith("200") and b"masakari_leader" in body
