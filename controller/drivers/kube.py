"""The operator's own Kubernetes calls: reading objects and writing their status subresource.

kopf watches and dispatches; status is written here, in the middle of a recovery, because
progress must reach the API server before the next action starts. The `kubernetes` client
is synchronous, so calls run in threads.

Every call has a request timeout, and transient failures (connection errors, timeouts, 429,
5xx) are tried again a few times within seconds: an API server restart or an etcd leader
change is bridged, a real outage surfaces quickly to kopf, which runs the handler again. A
retried write that had in fact been applied comes back as Conflict or Gone, as it would for
a client retrying on its own. With `leading` given, every write (each try) is refused with
NotLeading unless this replica still holds its Lease; reads go on.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes
import urllib3
from kubernetes.client.exceptions import ApiException

from controller.drivers.lease import NotLeading
from controller.resources.common import GROUP, VERSION

log = logging.getLogger("masakari.kube")


class KubeError(Exception):
    """A Kubernetes API call failed."""


class Gone(KubeError):
    """The object was deleted."""


class Conflict(KubeError):
    """409: the object exists already, or changed since it was read (resourceVersion)."""


class Invalid(KubeError):
    """422: the API server's schema refused the object; the message says which field."""


class StorageFull(KubeError):
    """etcd raised its NOSPACE alarm: it takes no write (deletes aside) until an etcd operator
    compacts, defragments and disarms it. Not retried: seconds do not cure it."""


class TooLarge(KubeError):
    """The object, as written, is past the size the API server or etcd takes (etcd's
    --max-request-bytes, 1.5 MiB by default)."""


class Expired(KubeError):
    """410 Gone on a watch: the resourceVersion to resume from is no longer kept; list again."""


@dataclass(frozen=True)
class Plural:
    failure_events: str = "failureevents"
    hosts: str = "hosts"
    segments: str = "failoversegments"
    cloud_bindings: str = "cloudbindings"


PLURAL = Plural()
Listed = list[Any]  # what a list's `keep` made of each object
LIST_PAGE = 500  # objects per page of a list call


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


@dataclass(frozen=True)
class Retries:
    """`tries` in all, sleeping first_delay * 2**n (with jitter) in between, and no try
    started later than `window` seconds after the first."""

    tries: int = 4
    first_delay: float = 0.2
    window: float = 3.0

    def delay(self, tries: int) -> float:
        """The sleep after the `tries`-th failed try."""
        return random.uniform(0.5, 1.0) * self.first_delay * 2.0 ** (tries - 1)


# etcd's own words, passed on by the API server in a 500's message.
_NOSPACE = "database space exceeded"
_TOO_LARGE = "request is too large"


def _transient(error: Exception) -> bool:
    if isinstance(error, ApiException):
        if any(words in _message(error.body) for words in (_NOSPACE, _TOO_LARGE)):
            return False
        status: int = error.status
        return status == 429 or status >= 500
    return isinstance(error, urllib3.exceptions.HTTPError)  # connection errors, timeouts


def _final(error: Exception, name: str) -> KubeError:
    if not isinstance(error, ApiException):
        return KubeError(f"Kubernetes API unreachable: {type(error).__name__}")
    if error.status == 404:
        return Gone(f"{name} no longer exists")
    message = _message(error.body)
    if _NOSPACE in message:
        return StorageFull(f"etcd is out of space: {message}")
    if error.status == 413 or _TOO_LARGE in message:
        return TooLarge(f"the object is too large to store: {message}")
    if error.status in (409, 422):
        kind = Conflict if error.status == 409 else Invalid
        return kind(message)
    # The API server's own message says which field was refused; it never echoes
    # credentials (those stay in the client configuration).
    return KubeError(f"Kubernetes API answered {error.status}: {message}")


class Kube:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        *,
        timeout: float = 5.0,
        retries: Retries = Retries(),
        leading: Callable[[], bool] | None = None,
    ) -> None:
        self._client = client
        self._objects = kubernetes.client.CustomObjectsApi(client)
        self._core = kubernetes.client.CoreV1Api(client)
        self._timeout = timeout
        self._retries = retries
        self._leading = leading

    async def _call(self, function: Any, *args: Any, write: bool = False, **kwargs: Any) -> Any:
        started = time.monotonic()
        tries = 0
        while True:
            if write and self._leading is not None and not self._leading():
                raise NotLeading(f"not the leader: {function.__name__} refused")
            tries += 1
            try:
                return await asyncio.to_thread(
                    function, *args, _request_timeout=self._timeout, **kwargs
                )
            except (ApiException, urllib3.exceptions.HTTPError) as error:
                failure = _final(error, str(args[-1]))
                if not _transient(error):
                    raise failure from None
            delay = self._retries.delay(tries)
            if (
                tries >= self._retries.tries
                or time.monotonic() - started + delay > self._retries.window
            ):
                raise KubeError(f"{failure} (gave up after {tries} tries)") from None
            log.warning("%s (try %d), trying again in %.1fs", failure, tries, delay)
            await asyncio.sleep(delay)

    async def get(self, plural: str, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = await self._call(
            self._objects.get_namespaced_custom_object, GROUP, VERSION, namespace, plural, name
        )
        return body

    async def list(
        self,
        plural: str,
        namespace: str,
        field_selector: str | None = None,
        not_older_than: str | None = None,
    ) -> list[dict[str, Any]]:
        """Every object, fetched in pages: the API server never builds one huge answer.

        Without `not_older_than` a consistent read: the API server serves it from its watch
        cache once that cache has caught up with etcd's newest revision, which for a kind
        nobody wrote lately means waiting for etcd's next progress notification (60-100 ms
        measured, issue 12). With it, a snapshot at that resourceVersion or newer: served at
        once when the cache has it."""
        items, _ = await self.list_versioned(
            plural, namespace, field_selector, not_older_than=not_older_than
        )
        return items

    async def list_versioned(
        self,
        plural: str,
        namespace: str,
        field_selector: str | None = None,
        keep: Callable[[dict[str, Any]], Any] | None = None,
        not_older_than: str | None = None,
    ) -> tuple[Listed, str]:
        """Every object and the resourceVersion the list was read at, where a watch of the
        changes since starts (the pages of one list are one consistent snapshot). `keep`,
        applied page by page, says what of each object to hold on to (a part of it, or what
        is made of it): a cache of 50,000 objects need not hold them whole all at once."""
        items: Listed = []
        page: str | None = None
        while True:
            query: dict[str, Any] = {"limit": LIST_PAGE}
            if field_selector:
                query["field_selector"] = field_selector
            if page:
                query["_continue"] = page  # the token holds the snapshot's version
            elif not_older_than:
                query["resource_version"] = not_older_than
                query["resource_version_match"] = "NotOlderThan"
            body = await self._call(
                self._objects.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                plural,
                **query,
            )
            if keep is None:
                items.extend(body["items"])
            else:
                items.extend(map(keep, body["items"]))
                # What is kept is held for long (the caches): taken out of the collector's
                # generations as it comes, page by page. Left in, the collector's full passes
                # walked it again and again as it grew: at 5,000 Hosts and 50,000 events, 22
                # of them in the operator's first minute, 15 s with the event loop held, up to
                # 2.4 s at once after. Freed as ever when dropped, by reference counts; only
                # a reference cycle already garbage at that moment stays.
                gc.freeze()
            page = (body.get("metadata") or {}).get("continue")
            if not page:
                return items, str((body.get("metadata") or {}).get("resourceVersion") or "")

    def watch(
        self, plural: str, namespace: str, resource_version: str, seconds: int
    ) -> Iterator[dict[str, Any]]:
        """The changes after `resource_version`, one decoded watch event at a time, until the
        API server ends the watch (after about `seconds`) or the connection breaks. Blocking:
        run it in a thread of its own, it holds one for the whole watch. Bookmarks are asked
        for, so the resourceVersion to resume from stays recent on a quiet namespace."""
        try:
            response = self._objects.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural,
                watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
                timeout_seconds=seconds, _preload_content=False,
                # No byte in this long (bookmarks come about once a minute): a dead
                # connection, not a quiet one.
                _request_timeout=(self._timeout, seconds + 30),
            )  # fmt: skip
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            if isinstance(error, ApiException) and error.status == 410:
                raise Expired(_message(error.body)) from None
            raise _final(error, plural) from None
        assert isinstance(response, urllib3.HTTPResponse)
        try:
            pending = b""
            for chunk in response.stream(64 * 1024, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise KubeError(f"watch of {plural} broke: {type(error).__name__}") from None
        finally:
            # Closed, not handed back to the pool half read: the next call on that
            # connection would read the rest of this watch.
            response.close()
            response.release_conn()

    async def write_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the whole status: a JSON patch, so fields cleared in `status` are cleared.
        Returns the object as written."""
        patch = [{"op": "add", "path": "/status", "value": status}]
        return await self._patch_status(
            plural, namespace, name, patch, "application/json-patch+json"
        )

    async def merge_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """A merge patch of status: the keys given are set (None deletes one), the others are
        left as they are, so two writers owning different keys never undo each other.
        Returns the object as written."""
        patch = {"status": status}
        return await self._patch_status(
            plural, namespace, name, patch, "application/merge-patch+json"
        )

    async def _patch_status(
        self, plural: str, namespace: str, name: str, patch: Any, content_type: str
    ) -> dict[str, Any]:
        written: dict[str, Any] = await self._call(
            self._objects.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            patch,
            write=True,
            _content_type=content_type,
        )
        return written

    async def create(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            self._objects.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            body,
            write=True,
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
            write=True,
            _content_type="application/merge-patch+json",
        )
        return patched

    async def delete(self, plural: str, namespace: str, name: str) -> None:
        await self._call(
            self._objects.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            write=True,
        )

    async def config_map(self, namespace: str, name: str) -> dict[str, Any]:
        found = await self._call(self._core.read_namespaced_config_map, name, namespace)
        body: dict[str, Any] = self._client.sanitize_for_serialization(found)
        return body

    async def secret(self, namespace: str, name: str) -> dict[str, Any]:
        """A Secret as the API server stores it (data base64-encoded); never log it."""
        found = await self._call(self._core.read_namespaced_secret, name, namespace)
        body: dict[str, Any] = self._client.sanitize_for_serialization(found)
        return body

    async def create_config_map(self, namespace: str, body: dict[str, Any]) -> None:
        await self._call(self._core.create_namespaced_config_map, namespace, body, write=True)

    async def replace_config_map(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        """Replace; body's metadata.resourceVersion makes it conditional (Conflict)."""
        await self._call(
            self._core.replace_namespaced_config_map, name, namespace, body, write=True
        )
