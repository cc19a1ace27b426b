"""The CRDs in crds/ are what the models generate, and they document and bound every field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.resources import crd, crd_files

REPO = Path(__file__).resolve().parents[2]


def test_crds_directory_matches_the_models() -> None:
    stale = crd_files.stale_files(REPO / "crds", crd_files.render_all())
    assert stale == [], f"crds/ is out of date ({stale}); run `make crds`"


def test_drift_is_detected(tmp_path: Path) -> None:
    files = crd_files.render_all()
    crd_files.write_all(tmp_path, files)
    assert crd_files.stale_files(tmp_path, files) == []
    name = next(iter(files))
    (tmp_path / name).write_text(files[name].replace("maxLength: 253", "maxLength: 254", 1))
    (tmp_path / "leftover.yaml").write_text("{}")
    assert crd_files.stale_files(tmp_path, files) == [name, "leftover.yaml"]


def _fields(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}.{name}", prop
        yield from _fields(prop, f"{path}.{name}")
    if "items" in schema:
        yield from _fields(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _fields(schema["additionalProperties"], f"{path}{{}}")


def _schemas() -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in crd.KINDS:
        body = crd.definition(kind)
        yield kind.kind, body["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize(("kind", "schema"), list(_schemas()))
def test_every_field_is_described(kind: str, schema: dict[str, Any]) -> None:
    missing = [
        path
        for path, prop in _fields(schema)
        if not prop.get("description") and path != ".metadata"  # documented by Kubernetes
    ]
    assert missing == [], f"{kind}: fields without a description: {missing}"


@pytest.mark.parametrize(("kind", "schema"), list(_schemas()))
def test_schema_is_structural(kind: str, schema: dict[str, Any]) -> None:
    untyped = [path for path, prop in _fields(schema) if "type" not in prop]
    assert untyped == [], f"{kind}: fields without a type: {untyped}"
    text = yaml.safe_dump(schema)
    for keyword in ("$ref", "anyOf", "title:"):
        assert keyword not in text, f"{kind}: {keyword} is not allowed in a structural schema"
    # additionalProperties only as a map's value schema, never beside properties or as a bool.
    for path, prop in _fields(schema):
        if "additionalProperties" in prop:
            assert isinstance(prop["additionalProperties"], dict), path
            assert "properties" not in prop, f"{kind}{path}: properties and a map at once"


def test_spec_strings_are_bounded() -> None:
    """CEL rules (immutability, exclusive limits) are priced by the longest possible input."""
    for kind, schema in _schemas():
        for path, prop in _fields(schema["properties"]["spec"]):
            if prop["type"] == "string" and "enum" not in prop and "format" not in prop:
                assert "maxLength" in prop, f"{kind} spec{path} has no maxLength"
            if prop["type"] == "array":
                assert "maxItems" in prop, f"{kind} spec{path} has no maxItems"


def test_names_and_columns() -> None:
    short = {k.kind: crd.definition(k)["spec"]["names"]["shortNames"] for k in crd.KINDS}
    assert short == {
        "FailoverSegment": ["fseg"],
        "Host": ["mhost"],
        "FailureEvent": ["fev"],
        "CloudBinding": ["mcloud"],
    }
    for kind in crd.KINDS:
        body = crd.definition(kind)
        assert body["spec"]["names"]["categories"] == ["masakari"]
        version = body["spec"]["versions"][0]
        assert version["subresources"] == {"status": {}}
        columns = version["additionalPrinterColumns"]
        assert columns[-1]["name"] == "Age"
        schema = version["schema"]["openAPIV3Schema"]
        paths = {path for path, _ in _fields(schema)}
        for column in columns[:-1]:
            # A filter such as [?(@.type=="Ready")] picks list items: the item's field must exist.
            path = re.sub(r"\[\?\(.*?\)\]", "[]", column["jsonPath"])
            assert path in paths, f"{kind.kind}: column {column} names no field"
        for selectable in version.get("selectableFields", []):
            assert selectable["jsonPath"] in paths
