"""The namespace's custom resources as the API reads and writes them."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

from controller.api import views
from controller.api.faults import ApiFault, conflict, not_found
from controller.api.ids import ID, UUID, Ids, object_uuid
from controller.drivers.kube import PLURAL, Conflict, Gone, Invalid, Kube, KubeError
from controller.recovery.gates import OPEN_PHASES

KINDS = {PLURAL.segments: "segments", PLURAL.hosts: "hosts", PLURAL.failure_events: "notifications"}


@dataclass
class Snapshot:
    """What one request needs of the namespace, read once."""

    segments: list[dict[str, Any]]
    hosts: list[dict[str, Any]]

    def segment_by_uuid(self, segment_uuid: str) -> dict[str, Any]:
        for body in self.segments:
            if object_uuid(body) == segment_uuid:
                return body
        raise not_found(f"No failover segment with id {segment_uuid[:64]}.")

    def segment_of(self, host_body: dict[str, Any]) -> dict[str, Any] | None:
        wanted = host_body["spec"]["segment"]
        return next((s for s in self.segments if s["metadata"]["name"] == wanted), None)

    def hosts_of(self, segment_body: dict[str, Any]) -> list[dict[str, Any]]:
        name = segment_body["metadata"]["name"]
        return [h for h in self.hosts if h["spec"]["segment"] == name]

    def host_by_name(self, name: str) -> dict[str, Any] | None:
        return next((h for h in self.hosts if views.display_name(h) == name), None)


def _invalid(error: Exception) -> ApiFault:
    """The schema's words (which field, which rule), without the object's kind and name."""
    return ApiFault(400, "Invalid input: " + str(error).split(" is invalid: ", 1)[-1])


class Store:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.ids = Ids(kube, namespace)

    async def _call(self, coroutine: Any) -> Any:
        """Kubernetes errors become API faults without the server's internals."""
        try:
            return await coroutine
        except (Gone, Conflict, Invalid):
            raise
        except KubeError:
            raise ApiFault(503, "The Kubernetes API is not reachable at the moment.") from None

    async def list(self, plural: str) -> list[dict[str, Any]]:
        bodies = await self._call(self.kube.list(plural, self.namespace))
        live = [b for b in bodies if not b["metadata"].get("deletionTimestamp")]
        assigned: list[dict[str, Any]] = await self._call(
            self.ids.assign_missing(plural, KINDS[plural], live)
        )
        return assigned

    async def snapshot(self) -> Snapshot:
        return Snapshot(await self.list(PLURAL.segments), await self.list(PLURAL.hosts))

    async def create(
        self, plural: str, name: str, display: str, body: dict[str, Any], **annotations: str
    ) -> dict[str, Any]:
        new_id = await self._call(self.ids.allocate(KINDS[plural]))
        body["metadata"] = {
            "name": name,
            **body.get("metadata", {}),
            "annotations": {
                ID: str(new_id),
                UUID: str(uuid.uuid4()),
                views.NAME: display,
                **annotations,
            },
        }
        try:
            created: dict[str, Any] = await self._call(
                self.kube.create(plural, self.namespace, body)
            )
        except Conflict:
            raise conflict(f"{display} already exists.") from None
        except Invalid as error:
            # The schema's own words (which field, which rule), never a stack or a URL.
            raise _invalid(error) from None
        return created

    async def patch(self, plural: str, body: dict[str, Any], patch: dict[str, Any]) -> Any:
        """Apply `patch` to the version of the object this request read (409 if it changed)."""
        patch.setdefault("metadata", {})["resourceVersion"] = body["metadata"]["resourceVersion"]
        try:
            return await self._call(
                self.kube.patch(plural, self.namespace, body["metadata"]["name"], patch)
            )
        except Gone:
            raise not_found("The object was deleted meanwhile.") from None
        except Conflict:
            raise conflict("The object was changed meanwhile; read it again and retry.") from None
        except Invalid as error:
            raise _invalid(error) from None

    async def delete(self, plural: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(Gone):
            await self._call(self.kube.delete(plural, self.namespace, body["metadata"]["name"]))

    async def under_recovery(self, snapshot: Snapshot, segment_body: dict[str, Any]) -> bool:
        """Masakari's rule: a notification of one of the segment's hosts in new/running/error."""
        hosts = {h["metadata"]["name"] for h in snapshot.hosts_of(segment_body)}
        if not hosts:
            return False
        events = await self._call(self.kube.list(PLURAL.failure_events, self.namespace))
        return any(
            e["spec"]["host"] in hosts and (e.get("status") or {}).get("phase") in OPEN_PHASES
            for e in events
        )
