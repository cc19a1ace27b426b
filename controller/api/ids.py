"""Masakari's integer ids and uuids for objects that Kubernetes names by string.

Every FailoverSegment, Host and FailureEvent carries annotations `masakari.dev/id` (Masakari's
integer id, which clients use as the pagination marker) and `masakari.dev/uuid`. The API sets
both when it creates an object. Objects created otherwise (kubectl, GitOps, the hostmonitor)
get theirs the first time the API lists them: the uuid is the object's metadata.uid, the id is
taken from the counter.

The counter is a ConfigMap (`masakari-api-ids`, one key per kind) updated with the
resourceVersion it was read at, so two API replicas never hand out the same number: the loser
of a race gets 409 and reads again. Lazily assigned ids are written with the object's
resourceVersion as a precondition too, so an object never gets two ids; the loser re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from controller.api.faults import ApiFault
from controller.drivers.kube import Conflict, Gone, Kube

ID = "masakari.dev/id"
UUID = "masakari.dev/uuid"
COUNTER = "masakari-api-ids"
ATTEMPTS = 30
PARALLEL_PATCHES = 4  # the Kube client's calls run on asyncio's default executor (few threads)


def _contended() -> ApiFault:
    return ApiFault(503, "Too many concurrent changes; try again.")


def object_id(body: dict[str, Any]) -> int | None:
    value = (body["metadata"].get("annotations") or {}).get(ID)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def object_uuid(body: dict[str, Any]) -> str:
    annotations = body["metadata"].get("annotations") or {}
    return str(annotations.get(UUID) or body["metadata"]["uid"])


class Ids:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace

    async def allocate(self, kind: str, count: int = 1, above: int = 0) -> int:
        """Reserve `count` consecutive ids of `kind`, all greater than `above` (the highest id
        in use, which objects made outside the API may have taken); returns the first."""
        for attempt in range(ATTEMPTS):
            try:
                counter = await self.kube.config_map(self.namespace, COUNTER)
            except Gone:
                with contextlib.suppress(Conflict):
                    await self.kube.create_config_map(
                        self.namespace, {"metadata": {"name": COUNTER}, "data": {}}
                    )
                continue
            data = counter.get("data") or {}
            last = max(int(data.get(kind, "0")), above)
            counter["data"] = {**data, kind: str(last + count)}
            try:
                await self.kube.replace_config_map(self.namespace, COUNTER, counter)
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                continue
            return last + 1
        raise _contended()

    async def assign_missing(
        self, plural: str, kind: str, bodies: list[dict[str, Any]], above: int = 0
    ) -> list[dict[str, Any]]:
        """`bodies`, each with an id and a uuid; objects deleted meanwhile are left out. New
        ids are above `above` and above those `bodies` have."""
        done: dict[str, dict[str, Any]] = {}
        await self.number(
            plural, kind, bodies, above, lambda body: done.update({body["metadata"]["name"]: body})
        )
        return [
            done.get(body["metadata"]["name"], body)
            for body in bodies
            if object_id(body) is not None or body["metadata"]["name"] in done
        ]

    async def number(
        self,
        plural: str,
        kind: str,
        bodies: list[dict[str, Any]],
        above: int,
        numbered: Callable[[dict[str, Any]], None],
    ) -> None:
        """Give each of `bodies` without an id one, above `above` and above those `bodies`
        have; `numbered` gets each object as written, as it comes. Kept until the last was
        written, the answers (whole objects) took the API to 1,016 MiB while it numbered
        55,000 objects made around it (docs/scale.md)."""
        missing = [body for body in bodies if object_id(body) is None]
        if not missing:
            return
        highest = max([above, *(object_id(body) or 0 for body in bodies)])
        first = await self.allocate(kind, len(missing), highest)
        # A few PATCHes at a time, by a few workers (not a task per object: there may be
        # 50,000): one after the other, 5,510 objects took 51 s (docs/scale.md).
        work = iter(enumerate(missing))

        async def worker() -> None:
            for offset, body in work:
                updated = await self._annotate(plural, body, first + offset)
                if updated is not None:
                    numbered(updated)

        await asyncio.gather(*(worker() for _ in range(PARALLEL_PATCHES)))

    async def _annotate(
        self, plural: str, body: dict[str, Any], new_id: int
    ) -> dict[str, Any] | None:
        name = body["metadata"]["name"]
        for attempt in range(ATTEMPTS):
            if object_id(body) is not None:
                return body  # another replica got there first: its id stands
            patch = {
                "metadata": {
                    "resourceVersion": body["metadata"]["resourceVersion"],
                    "annotations": {ID: str(new_id), UUID: object_uuid(body)},
                }
            }
            try:
                return await self.kube.patch(plural, self.namespace, name, patch)
            except Gone:
                return None
            except Conflict:
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
                try:
                    body = await self.kube.get(plural, self.namespace, name)
                except Gone:
                    return None
        raise _contended()
