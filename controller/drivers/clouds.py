"""Each namespace's cloud (recovery.lifecycle.Clouds), from its CloudBinding and the Secret the
binding names.

A namespace is bound when, in this order: it holds exactly one CloudBinding (one being deleted
does not count), the Secret the binding names exists in the namespace and the operator may read
it, the Secret has a `clouds.yaml` key, that clouds.yaml is a YAML mapping whose `clouds:` has
the binding's cloud, and openstacksdk accepts the cloud's settings. Anything else raises
`Unbound` (a CloudNotBound) with a CamelCase reason and a message, and nothing in the namespace
is acted on. Two namespaces never share anything built here, so a host name that exists in two
clouds is only ever looked up in the cloud of the object's own namespace.

What is built (the Nova client, the Pacemaker runner) is kept per namespace while the binding's
uid and generation and the Secret's resourceVersion stay the same; they are read again at most
every `recheck` seconds, and at the next call after `forget` (the binding handler calls it on
every change of a binding). A replaced Nova client is closed `retire_after` seconds later, so a
recovery still running on it finishes its calls. A failed read of the binding or the Secret
keeps the last cloud for up to `stale_for` seconds: an API server restart does not stop a
running recovery, a revoked Secret does stop the namespace soon after.

Credentials stay in memory: the clouds.yaml reaches openstacksdk through an anonymous memory file
(memfd), never a file on disk, and no message here quotes the Secret's content.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml
from keystoneauth1 import exceptions as ksa_exceptions
from pydantic import ValidationError

from controller import metrics
from controller.drivers.bmc import shared_power
from controller.drivers.kube import PLURAL, Gone, KubeError
from controller.drivers.nova.openstack import OpenStackNova, connect
from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import LocalRunner, SshRunner
from controller.recovery.pacemaker import ClusterState, PacemakerError
from controller.recovery.ports import Cloud, CloudNotBound, Nova, PacemakerCluster
from controller.resources.cloud_binding import CLOUDS_YAML_KEY, CloudBindingSpec, PacemakerAccess

T = TypeVar("T")
log = logging.getLogger("masakari.clouds")


class Unbound(CloudNotBound):
    """Why a namespace is not bound: `reason` for conditions, the message for people."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Objects(Protocol):
    """The Kubernetes reads this needs (controller.drivers.kube.Kube has them)."""

    async def list(
        self, plural: str, namespace: str, field_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    async def secret(self, namespace: str, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Binding:
    """The namespace's one CloudBinding, as read."""

    name: str
    uid: str
    generation: int
    spec: CloudBindingSpec


@dataclass(frozen=True)
class Connected:
    """What a connector built for one cloud."""

    nova: Nova
    pacemaker: PacemakerCluster | None
    close: Callable[[], None]
    # What the segments' readiness checks read through, when not `nova`: see BoundCloud.
    readiness: Nova | None = None


class Connector(Protocol):
    async def connect(self, spec: CloudBindingSpec, clouds_yaml: str) -> Connected:
        """Build the clients of `spec.cloud`, whose entry in `clouds_yaml` was checked."""
        ...


@dataclass(frozen=True)
class BoundCloud:
    """A namespace's cloud: what the recovery uses, and the Pacemaker cluster the Host
    reconciler changes (standby)."""

    binding: Binding
    secret_version: str
    cloud: Cloud
    pacemaker: PacemakerCluster | None
    # The Nova the segments' readiness checks read through: at 5,000 hosts a round is 10,000
    # Placement reads and a listing of every server, and through the recovery's own client
    # a recovery's reads waited behind them (bench/scale.py). A recovery never waits behind
    # housekeeping.
    readiness: Nova

    @property
    def description(self) -> str:
        return f"cloud {self.binding.spec.cloud} of Secret {self.binding.spec.secret_name}"


def check_clouds_yaml(text: str, cloud: str, where: str) -> None:
    """Unbound unless `text` is a clouds.yaml with `cloud` under `clouds:`.

    A YAML error is reported by position only: its text would quote the Secret's content.
    """
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise Unbound("CloudsYamlInvalid", f"{where} is not valid YAML{at}") from None
    clouds = parsed.get("clouds") if isinstance(parsed, dict) else None
    if not isinstance(clouds, dict):
        raise Unbound("CloudsYamlInvalid", f"{where} has no `clouds:` mapping")
    if not isinstance(clouds.get(cloud), dict):
        known = ", ".join(sorted(str(name) for name in clouds)) or "none"
        raise Unbound("CloudNotFound", f"{where} has no cloud {cloud!r} (it has: {known})")


def pacemaker_cluster(
    access: PacemakerAccess | None, local_prefix: tuple[str, ...] = ()
) -> CrmCluster | None:
    if access is None:
        return None
    if access.ssh is not None:
        return CrmCluster(
            SshRunner(host=access.ssh.host, user=access.ssh.user, port=access.ssh.port)
        )
    return CrmCluster(LocalRunner(prefix=local_prefix))


@dataclass(frozen=True)
class ThreadedCluster:
    """ClusterFencing on a PacemakerCluster, whose commands block: each runs in a thread.
    Its failures count in masakari_api_errors_total as the Nova driver's do: the fencing step
    is the one caller, so nothing counts them twice."""

    cluster: PacemakerCluster

    async def state(self) -> ClusterState:
        return await _counted(asyncio.to_thread(self.cluster.state))

    async def fence(self, node: str, timeout: float) -> None:
        await _counted(asyncio.to_thread(self.cluster.fence, node, timeout))


async def _counted(call: Awaitable[T]) -> T:
    try:
        return await call
    except PacemakerError as error:
        metrics.api_errors.labels("pacemaker", type(error).__name__).inc()
        raise


def _connect_in_memory(clouds_yaml: str, cloud: str) -> tuple[Any, list[str]]:
    """openstacksdk reads configuration from files only; this one lives in memory, readable by
    this process alone, and is gone once the connection is built."""
    descriptor = os.memfd_create("clouds.yaml", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, clouds_yaml.encode())
        return connect(Path(f"/proc/self/fd/{descriptor}"), cloud)
    finally:
        os.close(descriptor)


@dataclass
class OpenStackConnector:
    """Clients over openstacksdk and Pacemaker's command line tools."""

    max_concurrency: int = 16
    local_prefix: tuple[str, ...] = ()
    leading: Callable[[], bool] = lambda: True  # changes to Nova only while this is true
    readiness_concurrency: int = 4  # the readiness checks' calls at once (BoundCloud)

    async def connect(self, spec: CloudBindingSpec, clouds_yaml: str) -> Connected:
        try:
            conn, secrets = await asyncio.to_thread(_connect_in_memory, clouds_yaml, spec.cloud)
        except ksa_exceptions.MissingRequiredOptions as error:
            missing = ", ".join(option.dest for option in error.options)
            raise Unbound(
                "CloudsYamlInvalid", f"cloud {spec.cloud!r} lacks auth settings: {missing}"
            ) from None
        except Exception as error:  # its text may quote the configuration
            raise Unbound(
                "CloudsYamlInvalid",
                f"openstacksdk refused cloud {spec.cloud!r}: {type(error).__name__}",
            ) from None
        nova = OpenStackNova(
            conn, secrets, max_concurrency=self.max_concurrency, leading=self.leading
        )
        readiness = nova.sibling(self.readiness_concurrency)

        def close() -> None:
            readiness.close()
            nova.close()

        return Connected(
            nova=nova,
            pacemaker=pacemaker_cluster(spec.pacemaker, self.local_prefix),
            close=close,
            readiness=readiness,
        )


def _binding(body: Mapping[str, Any]) -> Binding:
    metadata = body["metadata"]
    try:
        spec = CloudBindingSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise Unbound(
            "BindingInvalid", f"CloudBinding {metadata['name']}: spec.{where}: {first['msg']}"
        ) from None
    return Binding(metadata["name"], metadata.get("uid", ""), metadata.get("generation", 1), spec)


def clouds_yaml_of(secret: Mapping[str, Any], where: str) -> str:
    encoded = (secret.get("data") or {}).get(CLOUDS_YAML_KEY)
    if not encoded:
        raise Unbound("CloudsYamlMissing", f"{where} has no key {CLOUDS_YAML_KEY}")
    try:
        return base64.b64decode(encoded, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unbound(
            "CloudsYamlInvalid", f"{where}: {CLOUDS_YAML_KEY} is not UTF-8 text"
        ) from None


@dataclass
class _Entry:
    """The last resolution of one namespace."""

    key: tuple[str, int, str] | None  # binding uid, generation, Secret resourceVersion
    result: BoundCloud | Unbound
    checked: float  # when the binding and Secret were last read
    good: float  # when they were last read successfully
    close: Callable[[], None] | None = None


@dataclass
class KubeClouds:
    objects: Objects
    connector: Connector
    recheck: float = 10.0
    retire_after: float = 600.0
    stale_for: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _retired: list[tuple[float, Callable[[], None]]] = field(default_factory=list)

    async def cloud(self, namespace: str) -> Cloud:
        return (await self.bound(namespace)).cloud

    async def bound(self, namespace: str) -> BoundCloud:
        """The namespace's cloud; Unbound (saying why) when there is none."""
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            self._close_retired()
            entry = self._entries.get(namespace)
            if entry is None or self.clock() - entry.checked >= self.recheck:
                entry = await self._resolve(namespace, entry)
                self._entries[namespace] = entry
            if isinstance(entry.result, Unbound):
                # A new exception each time: one raised again keeps growing its traceback.
                raise Unbound(entry.result.reason, str(entry.result))
            return entry.result

    def forget(self, namespace: str) -> None:
        """Read the namespace's binding and Secret again at the next call (built clients are
        kept while they still match)."""
        entry = self._entries.get(namespace)
        if entry is not None:
            entry.checked = float("-inf")

    def close(self) -> None:
        for entry in self._entries.values():
            if entry.close is not None:
                entry.close()
        for _, close in self._retired:
            close()
        self._entries.clear()
        self._retired.clear()

    async def _resolve(self, namespace: str, previous: _Entry | None) -> _Entry:
        now = self.clock()
        try:
            binding, secret = await self._read(namespace)
        except Unbound as unbound:
            self._retire(previous)
            return _Entry(None, unbound, now, now)
        except KubeError as error:
            if (
                previous is not None
                and isinstance(previous.result, BoundCloud)
                and now - previous.good < self.stale_for
            ):
                log.warning(
                    "cloud binding not readable, still using the last one: %s",
                    error,
                    extra={"namespace": namespace},
                )
                previous.checked = now
                return previous
            self._retire(previous)
            unreadable = Unbound("BindingNotReadable", f"the binding or its Secret: {error}")
            return _Entry(None, unreadable, now, previous.good if previous else now)
        version = str(secret["metadata"].get("resourceVersion", ""))
        key = (binding.uid, binding.generation, version)
        if previous is not None and previous.key == key:
            previous.checked = previous.good = now
            return previous
        self._retire(previous)
        where = f"Secret {binding.spec.secret_name}"
        try:
            text = clouds_yaml_of(secret, where)
            check_clouds_yaml(text, binding.spec.cloud, f"{CLOUDS_YAML_KEY} of {where}")
            connected = await self.connector.connect(binding.spec, text)
        except Unbound as unbound:
            return _Entry(key, unbound, now, now)
        cluster = ThreadedCluster(connected.pacemaker) if connected.pacemaker else None
        cloud = Cloud(connected.nova, cluster, power=shared_power(self.objects))
        readiness = connected.readiness or connected.nova
        bound = BoundCloud(binding, version, cloud, connected.pacemaker, readiness)
        log.info(
            "namespace bound to %s (CloudBinding %s, Secret version %s)",
            bound.description,
            binding.name,
            version,
            extra={"namespace": namespace},
        )
        return _Entry(key, bound, now, now, connected.close)

    async def _read(self, namespace: str) -> tuple[Binding, dict[str, Any]]:
        bodies = await self.objects.list(PLURAL.cloud_bindings, namespace)
        live = sorted(
            (b for b in bodies if not b["metadata"].get("deletionTimestamp")),
            key=lambda b: str(b["metadata"]["name"]),
        )
        if not live:
            raise Unbound(
                "NoCloudBinding",
                f"namespace {namespace} has no CloudBinding: nothing in it is acted on",
            )
        if len(live) > 1:
            names = ", ".join(b["metadata"]["name"] for b in live)
            raise Unbound(
                "DuplicateCloudBinding",
                f"namespace {namespace} has {len(live)} CloudBindings ({names}); exactly one "
                "is allowed, nothing in it is acted on until the others are removed",
            )
        binding = _binding(live[0])
        try:
            secret = await self.objects.secret(namespace, binding.spec.secret_name)
        except Gone:
            raise Unbound(
                "SecretNotFound",
                f"Secret {binding.spec.secret_name} (of CloudBinding {binding.name}) does not "
                f"exist in namespace {namespace}",
            ) from None
        return binding, secret

    def _retire(self, entry: _Entry | None) -> None:
        if entry is not None and entry.close is not None:
            self._retired.append((self.clock() + self.retire_after, entry.close))
            entry.close = None

    def _close_retired(self) -> None:
        now = self.clock()
        due = [close for deadline, close in self._retired if deadline <= now]
        self._retired = [(d, c) for d, c in self._retired if d > now]
        for close in due:
            close()
