"""Masakari's records as manifests (controller.api.importer), without a Masakari: its pages,
its names, and records the compatible API would refuse."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api import importer
from controller.api.ids import ID, UUID
from controller.api.views import NAME

SEGMENT = {
    "id": 7, "uuid": "5c9a7e2e-2a8e-4a0b-9a59-4b3c1f0d8f10", "name": "Rack A/1",
    "description": "first", "recovery_method": "reserved_host", "service_type": "COMPUTE",
    "enabled": False, "created_at": "2026-01-01T00:00:00.000000",
}  # fmt: skip
HOST = {
    "id": 11, "uuid": "0b1f0f5e-7a57-4f6a-8d0a-2f57a9b8f3c1", "name": "compute1",
    "type": "COMPUTE", "control_attributes": "SSH", "reserved": True, "on_maintenance": False,
    "failover_segment_id": SEGMENT["uuid"],
}  # fmt: skip


def test_a_segment_keeps_its_name_uuid_and_id() -> None:
    manifest = importer.segment_manifest(SEGMENT)
    annotations = manifest["metadata"]["annotations"]
    assert annotations == {NAME: "Rack A/1", UUID: SEGMENT["uuid"], ID: "7"}
    assert manifest["metadata"]["name"].startswith("rack-a-1-")
    assert manifest["spec"] == {
        "description": "first", "recoveryMethod": "reserved_host",
        "serviceType": "COMPUTE", "enabled": False,
    }  # fmt: skip


def test_a_host_names_its_segment_and_keeps_its_flags() -> None:
    manifest = importer.host_manifest(HOST, "rack-a")
    assert manifest["metadata"] == {
        "name": "compute1",
        "annotations": {NAME: "compute1", UUID: HOST["uuid"], ID: "11"},
    }
    assert manifest["spec"] == {
        "segment": "rack-a", "type": "COMPUTE", "controlAttributes": "SSH",
        "reserved": True, "onMaintenance": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ({**SEGMENT, "recovery_method": "teleport"}, "recovery_method"),
        ({**SEGMENT, "name": ""}, "name"),
    ],
)
def test_a_record_the_api_would_refuse_is_named(record: dict[str, Any], words: str) -> None:
    with pytest.raises(importer.Unimportable, match=rf"segment '.*': .*{words}"):
        importer.segment_manifest(record)


def test_pages_follow_the_integer_id_marker() -> None:
    records = [{"id": n, "name": f"s{n}"} for n in range(1, importer.PAGE * 2 + 2)]
    asked: list[str] = []

    def get(path: str) -> dict[str, Any]:
        asked.append(path)
        marker = int(path.split("marker=")[1]) if "marker=" in path else 0
        page = [r for r in records if r["id"] > marker][: importer.PAGE]
        return {"segments": page}

    assert list(importer.pages(get, "/segments", "segments")) == records
    assert asked == [
        f"/segments?limit={importer.PAGE}",
        f"/segments?limit={importer.PAGE}&marker={importer.PAGE}",
        f"/segments?limit={importer.PAGE}&marker={importer.PAGE * 2}",
        f"/segments?limit={importer.PAGE}&marker={importer.PAGE * 2 + 1}",
    ]


def test_a_page_cut_below_the_limit_asked_is_not_the_last() -> None:
    # Masakari cuts every page to its osapi_max_limit, whatever limit was asked: a short page
    # may have more after it (seen on real Masakari 22 with osapi_max_limit = 2).
    records = [{"id": n, "name": f"s{n}"} for n in (9, 7, 4, 2, 1)]

    def get(path: str) -> dict[str, Any]:
        marker = int(path.split("marker=")[1]) if "marker=" in path else None
        after = (
            records if marker is None else records[[r["id"] for r in records].index(marker) + 1 :]
        )
        return {"segments": after[:2]}

    assert list(importer.pages(get, "/segments", "segments")) == records


def test_two_names_one_object_name_is_refused() -> None:
    def get(path: str) -> dict[str, Any]:
        if path.startswith("/segments?"):
            return {"segments": [SEGMENT, {**SEGMENT, "id": 8, "uuid": "x"}]}
        return {"hosts": []}

    with pytest.raises(importer.Unimportable, match="its name is taken"):
        importer.read(get, history=False)
