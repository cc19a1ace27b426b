"""The operator's Kubernetes calls: a request timeout on each, transient failures tried again
within a bounded time, and no write once the replica does not lead."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import kubernetes
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException

from controller.drivers.kube import LIST_PAGE, Gone, Kube, KubeError, Retries
from controller.drivers.lease import NotLeading

QUICK = Retries(tries=4, first_delay=0.01, window=1.0)


class FakeObjects:
    """CustomObjectsApi calls that fail with `failures` in turn, then answer."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls: list[dict[str, Any]] = []

    def _answer(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        if self.failures:
            raise self.failures.pop(0)
        return {"metadata": {"name": "c1"}}

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._answer(**kwargs)

    def patch_namespaced_custom_object_status(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._answer(**kwargs)


def kube(objects: FakeObjects, **kwargs: Any) -> Kube:
    made = Kube(kubernetes.client.ApiClient(), timeout=2.5, retries=QUICK, **kwargs)
    made._objects = objects
    return made


def get(made: Kube) -> dict[str, Any]:
    return asyncio.run(made.get("failureevents", "ns", "c1"))


def write(made: Kube) -> None:
    asyncio.run(made.write_status("failureevents", "ns", "c1", {"phase": "Running"}))


@pytest.mark.parametrize(
    "failure",
    [
        ApiException(status=503),
        ApiException(status=429),
        ApiException(status=500),
        urllib3.exceptions.ReadTimeoutError(None, "/apis", "timed out"),
        urllib3.exceptions.MaxRetryError(None, "/apis"),
    ],
)
def test_a_transient_failure_is_tried_again(failure: Exception) -> None:
    objects = FakeObjects(failure, failure)
    assert get(kube(objects)) == {"metadata": {"name": "c1"}}
    assert len(objects.calls) == 3


def test_every_call_has_a_request_timeout() -> None:
    objects = FakeObjects()
    made = kube(objects)
    get(made)
    write(made)
    assert [c["_request_timeout"] for c in objects.calls] == [2.5, 2.5]


def test_retries_are_bounded_in_number_and_time() -> None:
    objects = FakeObjects(*[ApiException(status=503)] * 10)
    started = time.monotonic()
    with pytest.raises(KubeError, match=r"answered 503.*gave up after 4 tries"):
        get(kube(objects))
    assert len(objects.calls) == 4
    assert time.monotonic() - started < 1.0


def test_no_try_starts_after_the_window() -> None:
    objects = FakeObjects(*[ApiException(status=503)] * 10)
    retries = Retries(tries=100, first_delay=0.05, window=0.3)
    made = Kube(kubernetes.client.ApiClient(), retries=retries)
    made._objects = objects
    started = time.monotonic()
    with pytest.raises(KubeError, match="gave up"):
        get(made)
    assert time.monotonic() - started < 0.6
    assert len(objects.calls) < 10


def test_a_definite_answer_is_not_tried_again() -> None:
    objects = FakeObjects(ApiException(status=404))
    with pytest.raises(Gone):
        get(kube(objects))
    assert len(objects.calls) == 1


def test_no_write_once_the_replica_does_not_lead_reads_go_on() -> None:
    objects = FakeObjects()
    made = kube(objects, leading=lambda: False)
    with pytest.raises(NotLeading):
        write(made)
    assert objects.calls == []
    assert get(made) == {"metadata": {"name": "c1"}}


def test_leadership_is_asked_again_before_each_try() -> None:
    objects = FakeObjects(ApiException(status=503))
    answers = iter([True, False])
    with pytest.raises(NotLeading):
        write(kube(objects, leading=lambda: next(answers)))
    assert len(objects.calls) == 1


class PagedObjects(FakeObjects):
    """A list answered in pages of two, as the API server does with limit/continue."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def list_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        start = int(kwargs.get("_continue") or 0)
        page = self.names[start : start + 2]
        more = start + 2 < len(self.names)
        return {
            "items": [{"metadata": {"name": n}} for n in page],
            "metadata": {"continue": str(start + 2) if more else ""},
        }


def test_lists_come_in_pages_and_all_of_them_are_read() -> None:
    objects = PagedObjects([f"h{i}" for i in range(5)])
    items = asyncio.run(kube(objects).list("hosts", "ns", "spec.segment=a"))
    assert [i["metadata"]["name"] for i in items] == ["h0", "h1", "h2", "h3", "h4"]
    assert len(objects.calls) == 3
    assert all(
        c["limit"] == LIST_PAGE and c["field_selector"] == "spec.segment=a" for c in objects.calls
    )
    assert [c.get("_continue") for c in objects.calls] == [None, "2", "4"]


def test_what_a_list_keeps_is_kept_out_of_the_collectors_generations() -> None:
    """A full collection walks every object of its generations, the event loop held: with
    50,000 events cached, 22 of them in the operator's first minute, up to 2.4 s each. What a
    cache keeps of a list is frozen page by page; a read's list is not (it is soon gone)."""

    class Kept:
        def __init__(self, body: dict[str, Any]) -> None:
            self.name = body["metadata"]["name"]

    objects = PagedObjects([f"h{i}" for i in range(5)])
    kept, _ = asyncio.run(kube(objects).list_versioned("hosts", "ns", keep=Kept))
    read = asyncio.run(kube(PagedObjects(["r0", "r1"])).list("hosts", "ns"))
    collected = {id(o) for generation in (0, 1, 2) for o in gc.get_objects(generation)}
    assert [k.name for k in kept] == ["h0", "h1", "h2", "h3", "h4"]
    assert not {id(k) for k in kept} & collected
    assert {id(r) for r in read} <= collected
