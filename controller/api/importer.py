"""`masakari-operator import`: a running Masakari's segments and hosts as manifests for Git.

Each object keeps what Masakari's clients know it by: its name, uuid and integer id, as the
annotations the API reads them from, so that scripts holding a segment's uuid and monitors
naming a host work unchanged against the API after the cut-over. Every record passes the same
rules as a body POSTed to the API, so an import never writes what the API would refuse.

Notification history is written as an archive (`notifications.json`), never as FailureEvents:
a FailureEvent asks for a recovery, and replaying years of ended failures would ask for them
all again.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openstack
import yaml
from keystoneauth1 import exceptions as ksa_exceptions

from controller.api import validation, views
from controller.api.context import spec_fields
from controller.api.faults import ApiFault
from controller.api.hosts import node_names
from controller.api.ids import ID, UUID
from controller.api.main import add_cloud_arguments
from controller.resources.common import API_VERSION

PAGE = 1000  # Masakari's default osapi_max_limit
MAX_PAGES = 10_000
SEGMENT_FIELDS = ("name", "description", "recovery_method", "service_type", "enabled")
HOST_FIELDS = ("name", "type", "control_attributes", "reserved", "on_maintenance")

Get = Callable[[str], dict[str, Any]]  # GET a path of the Masakari API, its JSON answer


class Unimportable(Exception):
    """A record the API would refuse; the text says which and why."""


def pages(get: Get, path: str, key: str) -> Iterator[dict[str, Any]]:
    """Every record of a list, a page at a time, by Masakari's marker (the integer id).

    Only an empty page ends the list: Masakari cuts every page to its osapi_max_limit, whatever
    limit was asked, and says nothing of it (no next link), so a short page may not be the last.
    """
    marker: int | None = None
    for _ in range(MAX_PAGES):
        separator = "&" if "?" in path else "?"
        query = f"{separator}limit={PAGE}" + (f"&marker={marker}" if marker is not None else "")
        records = get(path + query)[key]
        if not records:
            return
        yield from records
        marker = records[-1]["id"]
    raise Unimportable(f"{path}: more than {MAX_PAGES} pages")


def _annotations(record: dict[str, Any], uuid_key: str = "uuid") -> dict[str, str]:
    annotations = {views.NAME: str(record["name"]), UUID: str(record[uuid_key])}
    if record.get("id") is not None:
        annotations[ID] = str(record["id"])
    return annotations


def _checked(schema: validation.Schema, record: dict[str, Any], fields: tuple[str, ...]) -> Any:
    body = {key: record[key] for key in fields if record.get(key) is not None}
    try:
        return schema({schema.key: body})
    except ApiFault as fault:
        raise Unimportable(f"{schema.key} {record.get('name')!r}: {fault.message}") from None


def segment_manifest(record: dict[str, Any]) -> dict[str, Any]:
    fields = _checked(validation.SEGMENT_CREATE_12, record, SEGMENT_FIELDS)
    return {
        "apiVersion": API_VERSION,
        "kind": "FailoverSegment",
        "metadata": {
            "name": views.object_name(fields["name"]),
            "annotations": _annotations(record),
        },
        "spec": spec_fields(fields),
    }


def host_manifest(record: dict[str, Any], segment_object: str) -> dict[str, Any]:
    fields = _checked(validation.HOST_CREATE, record, HOST_FIELDS)
    name = views.object_name(fields["name"])
    names = {k: v for k, v in node_names(name, fields["name"]).items() if v is not None}
    return {
        "apiVersion": API_VERSION,
        "kind": "Host",
        "metadata": {"name": name, "annotations": _annotations(record)},
        "spec": {"segment": segment_object, **spec_fields(fields), **names},
    }


@dataclass
class Imported:
    segments: list[dict[str, Any]] = field(default_factory=list)
    hosts: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)


def read(get: Get, history: bool) -> Imported:
    result = Imported()
    taken: dict[str, str] = {}  # object name -> the Masakari name that took it
    for record in pages(get, "/segments", "segments"):
        manifest = segment_manifest(record)
        _claim(taken, "segment", manifest, record["name"])
        result.segments.append(manifest)
        segment_object = manifest["metadata"]["name"]
        for host in pages(get, f"/segments/{record['uuid']}/hosts", "hosts"):
            host_object = host_manifest(host, segment_object)
            _claim(taken, "host", host_object, host["name"])
            result.hosts.append(host_object)
    if history:
        result.notifications = list(pages(get, "/notifications", "notifications"))
    return result


def _claim(taken: dict[str, str], kind: str, manifest: dict[str, Any], display: str) -> None:
    """Object names are per kind in Kubernetes; object_name keeps distinct names distinct."""
    key = f"{kind}/{manifest['metadata']['name']}"
    if key in taken:
        raise Unimportable(f"{kind} {display!r}: its name is taken by {taken[key]!r}")
    taken[key] = display


def write(imported: Imported, directory: Path) -> list[Path]:
    """segments.yaml, hosts.yaml and a kustomization.yaml listing them (and the archive)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, documents in (("segments.yaml", imported.segments), ("hosts.yaml", imported.hosts)):
        path = directory / name
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False) if documents else "")
        written.append(path)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["segments.yaml", "hosts.yaml"],
    }
    path = directory / "kustomization.yaml"
    path.write_text(yaml.safe_dump(kustomization, sort_keys=False))
    written.append(path)
    if imported.notifications:
        path = directory / "notifications.json"
        path.write_text(json.dumps(imported.notifications, indent=1) + "\n")
        written.append(path)
    return written


# --- `masakari-operator import` -------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_cloud_arguments(parser, "its Masakari is read")
    parser.add_argument(
        "--endpoint",
        help="Masakari's v1 URL, when the catalog does not list instance-ha (e.g. noauth labs)",
    )
    parser.add_argument("--output", type=Path, required=True, help="directory to write to")
    parser.add_argument(
        "--history",
        action="store_true",
        help="also archive the notifications (notifications.json; never applied)",
    )


def _masakari(args: argparse.Namespace) -> Get:
    loader = openstack.config.OpenStackConfig(
        config_files=[str(args.clouds_yaml)], vendor_files=[], load_envvars=False
    )
    options = {"instance_ha_endpoint_override": args.endpoint} if args.endpoint else {}
    connection = openstack.connection.Connection(config=loader.get_one(cloud=args.cloud, **options))
    proxy = connection.instance_ha

    def get(path: str) -> dict[str, Any]:
        answer = proxy.get(path, microversion="1.3")
        if answer.status_code != 200:
            raise Unimportable(f"GET {path.split('?')[0]}: Masakari answered {answer.status_code}")
        body: dict[str, Any] = answer.json()
        return body

    return get


def run(args: argparse.Namespace) -> int:
    try:
        imported = read(_masakari(args), args.history)
        written = write(imported, args.output)
    except (
        Unimportable,
        openstack.exceptions.SDKException,
        ksa_exceptions.ClientException,
        OSError,
    ) as error:
        print(f"masakari-operator import: {error}", file=sys.stderr)
        return 2
    print(
        f"{len(imported.segments)} segment(s), {len(imported.hosts)} host(s)"
        + (f", {len(imported.notifications)} notification(s) archived" if args.history else "")
        + f": {', '.join(str(p) for p in written)}"
    )
    return 0
