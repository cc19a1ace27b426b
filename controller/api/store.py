"""The namespace's custom resources as the API reads and writes them.

Reads come from memory (`Contents`, kept by one informer per kind) once every kind's first
list is in; until then each request reads the API server as the API always did (a list of
each kind per request: slow at thousands of objects, but right), and `/readyz` says not
ready so that a Deployment sends no traffic here meanwhile. Answering 503 instead would make
masakari-monitors retry and openstack CLI users fail for as long as the first list takes
(seconds at 50,000 events); a slow right answer is what both cope with.

Writes go to the API server; their answers are applied to the contents at once, so a
client's read after its own write (through this process) sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from controller.api import views
from controller.api.contents import Contents, trim
from controller.api.faults import ApiFault, conflict, not_found
from controller.api.ids import ID, UUID, Ids
from controller.drivers.informer import Informer
from controller.drivers.kube import PLURAL, Conflict, Gone, Invalid, Kube, KubeError

log = logging.getLogger("masakari.api")

KINDS = {PLURAL.segments: "segments", PLURAL.hosts: "hosts", PLURAL.failure_events: "notifications"}


#: Tries of one PUT while the operator keeps writing the object's status: each write in
#: between costs one more; three in a request's few milliseconds means something is wrong.
PATCH_ATTEMPTS = 3


def _changed_meanwhile() -> ApiFault:
    return conflict("The object was changed meanwhile; read it again and retry.")


def _what_requests_read(plural: str, body: dict[str, Any]) -> tuple[Any, ...]:
    kept = trim(plural, body)
    return kept["metadata"].get("uid"), kept["spec"], kept["metadata"].get("annotations")


def _invalid(error: Exception) -> ApiFault:
    """The schema's words (which field, which rule), without the object's kind and name."""
    return ApiFault(400, "Invalid input: " + str(error).split(" is invalid: ", 1)[-1])


class Store:
    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube = kube
        self.namespace = namespace
        self.ids = Ids(kube, namespace)
        self.contents = Contents()
        self.informers = {
            plural: Informer(
                kube, namespace, plural, self.contents, functools.partial(trim, plural)
            )
            for plural in KINDS
        }
        self._numbering = asyncio.Lock()
        self._reporting: dict[str, asyncio.Lock] = {}
        self._reporters: Counter[str] = Counter()
        self._background: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for informer in self.informers.values():
            informer.start()
        self._background = asyncio.get_running_loop().create_task(self._number_when_synced())

    async def stop(self) -> None:
        if self._background is not None:
            self._background.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._background
        for informer in self.informers.values():
            await informer.stop()

    def ready(self) -> bool:
        return all(informer.synced.is_set() for informer in self.informers.values())

    def readiness(self) -> dict[str, Any]:
        return {
            "ready": self.ready(),
            "kinds": {
                plural: {
                    "synced": informer.synced.is_set(),
                    "objects": self.contents.count(plural),
                    "lists": informer.lists,
                    "resourceVersion": informer.version,
                    # Consecutive failed lists or watches: memory is served as it was meanwhile.
                    "failures": informer.backoff.failures,
                }
                for plural, informer in self.informers.items()
            },
        }

    async def view(self) -> Contents:
        """What a request reads: the contents in memory once synced, with a Masakari id on
        every object; before that, the API server's objects read now."""
        if not self.ready():
            direct = Contents()
            for plural in KINDS:
                direct.replace(plural, await self.list(plural), "")
            return direct
        await self._number(self.contents)
        return self.contents

    async def _number_when_synced(self) -> None:
        # Objects made around the API (kubectl, the hostmonitor, a restore) are numbered
        # before a request needs it: at 50,000 that is minutes of PATCHes, better spent now.
        for informer in self.informers.values():
            await informer.synced.wait()
        while True:
            try:
                await self._number(self.contents)
                return
            except ApiFault as fault:
                log.warning("numbering objects made around the API: %s", fault.message)
                await asyncio.sleep(5)

    async def _number(self, contents: Contents) -> None:
        for plural, kind in KINDS.items():
            if not contents.unnumbered(plural):
                continue
            # One at a time: two requests numbering the same objects would waste ids and
            # race on every object.
            async with self._numbering:
                missing = contents.unnumbered(plural)
                if missing:
                    log.info("giving %d %s their Masakari ids", len(missing), plural)
                    await self._call(
                        self.ids.number(
                            plural,
                            kind,
                            missing,
                            contents.highest_id[plural],
                            functools.partial(contents.apply, plural, "MODIFIED"),
                        )
                    )

    @contextlib.asynccontextmanager
    async def reporting(self, host_object: str) -> AsyncIterator[None]:
        """One notification of a host at a time in this process: the duplicate check of
        the second sees the first (applied from its answer)."""
        lock = self._reporting.setdefault(host_object, asyncio.Lock())
        self._reporters[host_object] += 1
        try:
            async with lock:
                yield
        finally:
            self._reporters[host_object] -= 1
            if not self._reporters[host_object]:  # bounded by the hosts reporting now
                del self._reporters[host_object], self._reporting[host_object]

    async def _call(self, coroutine: Any) -> Any:
        """Kubernetes errors become API faults without the server's internals."""
        try:
            return await coroutine
        except (Gone, Conflict, Invalid):
            raise
        except KubeError:
            raise ApiFault(503, "The Kubernetes API is not reachable at the moment.") from None

    async def list(self, plural: str) -> list[dict[str, Any]]:
        """`plural`'s objects read from the API server now, each with a Masakari id."""
        bodies = await self._call(self.kube.list(plural, self.namespace))
        live = [b for b in bodies if not b["metadata"].get("deletionTimestamp")]
        assigned: list[dict[str, Any]] = await self._call(
            self.ids.assign_missing(plural, KINDS[plural], live)
        )
        return assigned

    async def create(
        self, plural: str, name: str, display: str, body: dict[str, Any], **annotations: str
    ) -> dict[str, Any]:
        new_id = await self._call(
            self.ids.allocate(KINDS[plural], above=self.contents.highest_id[plural])
        )
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
        self.contents.apply(plural, "ADDED", created)
        return created

    async def patch(self, plural: str, body: dict[str, Any], patch: dict[str, Any]) -> Any:
        """Apply `patch` over the version of the object this request read.

        Masakari's PUT has no versions, and the operator writes a segment's or a host's
        status at any time: a write in between that left what the request read alone (spec,
        Masakari's annotations) is applied over, a few times at most. A change to what it
        read is a 409: the request's checks were made on the older object."""
        read = body
        for _ in range(PATCH_ATTEMPTS):
            version = read["metadata"]["resourceVersion"]
            patch.setdefault("metadata", {})["resourceVersion"] = version
            try:
                patched: dict[str, Any] = await self._call(
                    self.kube.patch(plural, self.namespace, body["metadata"]["name"], patch)
                )
            except Gone:
                raise not_found("The object was deleted meanwhile.") from None
            except Conflict:
                read = await self._reread(plural, body)
                continue
            except Invalid as error:
                raise _invalid(error) from None
            self.contents.apply(plural, "MODIFIED", patched)
            return patched
        raise _changed_meanwhile()

    async def _reread(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        """The object now, if only what a request does not read of it changed since `body`."""
        try:
            fresh: dict[str, Any] = await self._call(
                self.kube.get(plural, self.namespace, body["metadata"]["name"])
            )
        except Gone:
            raise not_found("The object was deleted meanwhile.") from None
        if _what_requests_read(plural, fresh) != _what_requests_read(plural, body):
            raise _changed_meanwhile()
        return fresh

    async def delete(self, plural: str, body: dict[str, Any]) -> None:
        with contextlib.suppress(Gone):
            await self._call(self.kube.delete(plural, self.namespace, body["metadata"]["name"]))
        self.contents.forget(plural, body)
