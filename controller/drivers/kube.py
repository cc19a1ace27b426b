"""The operator's own Kubernetes calls: reading objects and writing their status subresource.

kopf watches and dispatches; status is written here, in the middle of a recovery, because
progress must reach the API server before the next action starts. The `kubernetes` client
is synchronous, so calls run in threads.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import kubernetes
from kubernetes.client.exceptions import ApiException

from controller.resources.common import GROUP, VERSION


class KubeError(Exception):
    """A Kubernetes API call failed."""


class Gone(KubeError):
    """The object was deleted."""


class Conflict(KubeError):
    """409: the object exists already, or changed since it was read (resourceVersion)."""


class Invalid(KubeError):
    """422: the API server's schema refused the object; the message says which field."""


@dataclass(frozen=True)
class Plural:
    failure_events: str = "failureevents"
    hosts: str = "hosts"
    segments: str = "failoversegments"


PLURAL = Plural()


def load_client(kubeconfig: str | None = None) -> kubernetes.client.ApiClient:
    """In-cluster service account when running in a pod, else the kubeconfig."""
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config()
            return kubernetes.client.ApiClient()
        except kubernetes.config.ConfigException:
            pass
    client: kubernetes.client.ApiClient = kubernetes.config.new_client_from_config(
        config_file=kubeconfig
    )
    return client


def _message(body: Any) -> str:
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return "no details"


class Kube:
    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self._client = client
        self._objects = kubernetes.client.CustomObjectsApi(client)
        self._core = kubernetes.client.CoreV1Api(client)

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except ApiException as error:
            if error.status == 404:
                raise Gone(f"{args[-1]} no longer exists") from None
            if error.status in (409, 422):
                kind = Conflict if error.status == 409 else Invalid
                raise kind(_message(error.body)) from None
            # The API server's own message says which field was refused; it never echoes
            # credentials (those stay in the client configuration).
            detail = _message(error.body)
            raise KubeError(f"Kubernetes API answered {error.status}: {detail}") from None

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call(
            self._objects.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )
        return body

    async def list(
        self, plural: str, namespace: str, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        extra = {"field_selector": field_selector} if field_selector else {}
        body = await self._call(
            self._objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            **extra,
        )
        items: list[dict[str, Any]] = body["items"]
        return items

    async def write_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Replace the whole status: a JSON patch, so fields cleared in `status` are cleared."""
        await self._call(
            self._objects.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            [{"op": "add", "path": "/status", "value": status}],
            _content_type="application/json-patch+json",
        )

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            self._objects.create_namespaced_custom_object, GROUP, VERSION, namespace, plural, body
        )
        return created

    async def patch(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A merge patch; with metadata.resourceVersion in it, it applies only to that
        version of the object (Conflict otherwise)."""
        patched: dict[str, Any] = await self._call(
            self._objects.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )
        return patched

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        await self._call(
            self._objects.delete_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )

    async def config_map(self, namespace: str, name: str) -> dict[str, Any]:
        found = await self._call(self._core.read_namespaced_config_map, name, namespace)
        body: dict[str, Any] = self._client.sanitize_for_serialization(found)
        return body

    async def create_config_map(self, namespace: str, body: dict[str, Any]) -> None:
        await self._call(self._core.create_namespaced_config_map, namespace, body)

    async def replace_config_map(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Replace; body's metadata.resourceVersion makes it conditional (Conflict)."""
        await self._call(self._core.replace_namespaced_config_map, name, namespace, body)
