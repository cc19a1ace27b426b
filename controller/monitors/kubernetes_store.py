"""`FailureEventStore` on the Kubernetes API, through the official `kubernetes` client."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from controller.drivers.kube import PLURAL
from controller.resources.common import GROUP, VERSION

from .reporting import HostEntry, Rejected, Unreachable

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# Connect and read timeouts of every call: a hung API server must not hold a report forever.
REQUEST_TIMEOUT = (5.0, 15.0)
# Answers that say "this object will never be accepted"; anything else is worth retrying.
_FINAL = {400, 422}


def default_namespace() -> str:
    """The pod's namespace in a cluster, else `default`."""
    try:
        return (SERVICE_ACCOUNT / "namespace").read_text().strip() or "default"
    except OSError:
        return "default"


class KubernetesStore:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        # urllib3's own retries would hide an outage inside one call; the Reporter retries.
        api.configuration.retries = 0
        self.objects = client.CustomObjectsApi(api)
        self.namespace = namespace

    def hosts(self) -> Mapping[str, HostEntry]:
        listed = self._call(
            self.objects.list_namespaced_custom_object,
            plural=PLURAL.hosts,
            namespace=self.namespace,
        )
        found: dict[str, HostEntry] = {}
        for item in listed.get("items", []):
            name = item["metadata"]["name"]
            spec = item.get("spec", {})
            found[spec.get("pacemakerNode") or name] = HostEntry(name, spec.get("segment", ""))
        return found

    def create(self, body: dict[str, Any]) -> bool:
        return self._create(body, dry_run=False)

    def taken(self, body: dict[str, Any]) -> bool:
        # A server-side dry run: answered like the create (409 if the name exists), nothing
        # stored, and no read permission needed.
        return not self._create(body, dry_run=True)

    def _create(self, body: dict[str, Any], dry_run: bool) -> bool:
        try:
            self._call(
                self.objects.create_namespaced_custom_object,
                plural=PLURAL.failure_events,
                namespace=self.namespace,
                body=body,
                dry_run="All" if dry_run else None,
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _call(self, method: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            result: dict[str, Any] = method(
                group=GROUP, version=VERSION, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except ApiException as error:
            if error.status == 409:
                raise
            if error.status in _FINAL:
                raise Rejected(f"{error.status} {error.reason}: {_message(error)}") from error
            raise Unreachable(f"{error.status} {error.reason}") from error
        except Exception as error:  # urllib3 connection, TLS and timeout errors
            raise Unreachable(type(error).__name__) from error
        return result


def _message(error: ApiException) -> str:
    try:
        return str(json.loads(error.body or "{}").get("message", ""))[:500]
    except ValueError:
        return ""
