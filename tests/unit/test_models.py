"""The models accept the examples and reject what the CRDs reject."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from controller.resources.cloud_binding import CloudBinding
from controller.resources.failure_event import FailureEvent
from controller.resources.host import Host
from controller.resources.segment import FailoverSegment, RecoveryMethod

REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "FailoverSegment": FailoverSegment,
    "Host": Host,
    "FailureEvent": FailureEvent,
    "CloudBinding": CloudBinding,
}


def _examples() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        documents += [
            doc
            for doc in yaml.safe_load_all(path.read_text())
            if doc and str(doc.get("apiVersion", "")).startswith("masakari.dev/")
        ]
    return documents


@pytest.mark.parametrize("document", _examples(), ids=lambda d: d["metadata"]["name"])
def test_examples_parse(document: dict[str, Any]) -> None:
    model = MODELS[document["kind"]]
    parsed = model.model_validate({"spec": document["spec"]})
    assert parsed.to_wire()["spec"]  # and round-trips to camelCase


def test_defaults_match_masakari() -> None:
    segment = FailoverSegment.model_validate(
        {"spec": {"recoveryMethod": "auto", "serviceType": "COMPUTE"}}
    )
    assert segment.spec.recovery_method == RecoveryMethod.AUTO
    assert segment.spec.enabled is True
    policy = segment.spec.host_failure
    assert (policy.evacuate_all_instances, policy.ha_enabled_metadata_key) == (True, "HA_Enabled")
    assert policy.ignore_instances_in_error_state is False
    assert policy.add_reserved_host_to_aggregate is False
    assert segment.spec.instance_failure.process_all_instances is False


def test_wire_form_is_camel_case_except_payload() -> None:
    document = yaml.safe_load((REPO / "examples/failureevent.yaml").read_text())
    event = FailureEvent.model_validate({"spec": document["spec"]})
    wire = event.to_wire()
    assert "generatedTime" in wire["spec"]
    assert wire["spec"]["payload"]["host_status"] == "NORMAL"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"recoveryMethod": "manual", "serviceType": "COMPUTE"}, "recoveryMethod"),
        ({"recoveryMethod": "auto"}, "serviceType"),
        ({"recoveryMethod": "auto", "serviceType": "C", "bogus": 1}, "bogus"),
        (
            {
                "recoveryMethod": "auto",
                "serviceType": "C",
                "hostFailure": {"evacuationConcurrency": 0},
            },
            "evacuationConcurrency",
        ),
    ],
)
def test_bad_segment_specs(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        FailoverSegment.model_validate({"spec": spec})


def test_payload_enums() -> None:
    with pytest.raises(ValidationError, match="host_status"):
        FailureEvent.model_validate(
            {
                "spec": {
                    "type": "COMPUTE_HOST",
                    "host": "h1",
                    "generatedTime": "2026-01-01T00:00:00Z",
                    "payload": {"event": "STOPPED", "host_status": "MAYBE"},
                }
            }
        )
