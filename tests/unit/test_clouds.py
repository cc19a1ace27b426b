"""Which cloud a namespace is bound to: exactly one CloudBinding, its Secret, its clouds.yaml;
clients reused while nothing changed, rebuilt (the old one closed) when something did."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from controller.drivers.clouds import (
    Connected,
    KubeClouds,
    OpenStackConnector,
    Unbound,
    check_clouds_yaml,
)
from controller.drivers.kube import Gone, KubeError
from controller.drivers.nova.openstack import OpenStackNova
from controller.drivers.pacemaker.cluster import CrmCluster
from controller.drivers.pacemaker.runner import SshRunner
from controller.recovery.ports import CloudNotBound
from controller.resources.cloud_binding import CloudBindingSpec
from tests.unit.fake_nova import FakeNova

PASSWORD = "s3cret-do-not-show"


def clouds_yaml(*clouds: str) -> str:
    entry = {"auth": {"auth_url": "http://keystone/v3", "password": PASSWORD}}
    return yaml.safe_dump({"clouds": {name: entry for name in clouds}})


def binding(name: str, secret: str = "clouds", cloud: str = "a", **extra: Any) -> dict[str, Any]:
    metadata = {"name": name, "uid": f"uid-{name}", "generation": 1, **extra}
    return {"metadata": metadata, "spec": {"secretName": secret, "cloud": cloud}}


def secret(text: str | None, version: str = "1") -> dict[str, Any]:
    data = {} if text is None else {"clouds.yaml": base64.b64encode(text.encode()).decode()}
    return {"metadata": {"resourceVersion": version}, "data": data}


@dataclass
class FakeObjects:
    bindings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    secrets: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    broken: bool = False

    async def list(
        self, plural: str, namespace: str, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        assert plural == "cloudbindings"
        if self.broken:
            raise KubeError("Kubernetes API unreachable: MaxRetryError")
        return list(self.bindings.get(namespace, []))

    async def secret(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return self.secrets[(namespace, name)]
        except KeyError:
            raise Gone(f"{name} no longer exists") from None


@dataclass
class FakeConnector:
    built: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)

    async def connect(self, spec: CloudBindingSpec, clouds_yaml: str) -> Connected:
        label = f"{spec.cloud}#{len(self.built)}"
        self.built.append(label)
        return Connected(FakeNova([]), None, lambda: self.closed.append(label))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(objects: FakeObjects) -> tuple[KubeClouds, FakeConnector, Clock]:
    connector, clock = FakeConnector(), Clock()
    clouds = KubeClouds(objects, connector, recheck=10, retire_after=600, clock=clock)
    return clouds, connector, clock


def unbound(clouds: KubeClouds, namespace: str = "ns") -> Unbound:
    with pytest.raises(Unbound) as caught:
        asyncio.run(clouds.bound(namespace))
    assert isinstance(caught.value, CloudNotBound)  # what the recovery catches
    assert PASSWORD not in str(caught.value)
    return caught.value


def test_a_namespace_without_a_binding_is_not_bound() -> None:
    clouds, connector, _ = make(FakeObjects())
    why = unbound(clouds)
    assert why.reason == "NoCloudBinding" and "namespace ns has no CloudBinding" in str(why)
    assert connector.built == []


def test_two_bindings_in_one_namespace_bind_nothing() -> None:
    objects = FakeObjects(
        {"ns": [binding("b"), binding("a")]}, {("ns", "clouds"): secret(clouds_yaml("a"))}
    )
    why = unbound(make(objects)[0])
    assert why.reason == "DuplicateCloudBinding"
    assert "2 CloudBindings (a, b)" in str(why)


def test_a_binding_being_deleted_does_not_count() -> None:
    objects = FakeObjects(
        {"ns": [binding("old", deletionTimestamp="2026-01-01T00:00:00Z"), binding("new")]},
        {("ns", "clouds"): secret(clouds_yaml("a"))},
    )
    clouds = make(objects)[0]
    assert asyncio.run(clouds.bound("ns")).binding.name == "new"


@pytest.mark.parametrize(
    ("stored", "reason", "words"),
    [
        (None, "SecretNotFound", "Secret clouds (of CloudBinding b) does not exist"),
        (secret(None), "CloudsYamlMissing", "Secret clouds has no key clouds.yaml"),
        (secret(clouds_yaml("other")), "CloudNotFound", "has no cloud 'a' (it has: other)"),
        (secret("clouds: [a"), "CloudsYamlInvalid", "is not valid YAML (line 1"),
        (secret("just text"), "CloudsYamlInvalid", "has no `clouds:` mapping"),
        (
            {"metadata": {"resourceVersion": "1"}, "data": {"clouds.yaml": "%%%"}},
            "CloudsYamlInvalid",
            "is not UTF-8 text",
        ),
    ],
    ids=["no-secret", "no-key", "no-such-cloud", "bad-yaml", "not-a-mapping", "not-base64"],
)
def test_a_binding_whose_secret_does_not_hold_the_cloud_binds_nothing(
    stored: dict[str, Any] | None, reason: str, words: str
) -> None:
    objects = FakeObjects({"ns": [binding("b")]})
    if stored is not None:
        objects.secrets[("ns", "clouds")] = stored
    clouds, connector, _ = make(objects)
    why = unbound(clouds)
    assert (why.reason, connector.built) == (reason, [])
    assert words in str(why), str(why)


def test_a_yaml_error_is_reported_by_position_not_by_content() -> None:
    text = f"clouds:\n  a:\n    auth: {{password: {PASSWORD}\n"
    with pytest.raises(Unbound) as caught:
        check_clouds_yaml(text, "a", "clouds.yaml")
    assert PASSWORD not in str(caught.value) and "line" in str(caught.value)


def test_namespaces_never_share_a_cloud() -> None:
    objects = FakeObjects(
        {"a": [binding("b", cloud="one")], "b": [binding("b", cloud="two")]},
        {
            ("a", "clouds"): secret(clouds_yaml("one")),
            ("b", "clouds"): secret(clouds_yaml("two")),
        },
    )
    clouds, connector, _ = make(objects)
    first, second = asyncio.run(clouds.bound("a")), asyncio.run(clouds.bound("b"))
    assert first.cloud.nova is not second.cloud.nova
    assert connector.built == ["one#0", "two#1"]
    assert unbound(clouds, "c").reason == "NoCloudBinding"


def test_the_cloud_is_reused_until_the_secret_changes_then_rebuilt_and_the_old_one_closed() -> None:
    objects = FakeObjects({"ns": [binding("b")]}, {("ns", "clouds"): secret(clouds_yaml("a"))})
    clouds, connector, clock = make(objects)
    first = asyncio.run(clouds.cloud("ns"))
    clock.now = 11
    assert asyncio.run(clouds.cloud("ns")) is first  # read again, nothing changed
    objects.secrets[("ns", "clouds")] = secret(clouds_yaml("a"), version="2")  # rotated
    clock.now = 12
    assert asyncio.run(clouds.cloud("ns")) is first  # not read again within `recheck`
    clock.now = 22
    second = asyncio.run(clouds.cloud("ns"))
    assert second is not first and connector.built == ["a#0", "a#1"]
    assert connector.closed == []  # a recovery may still be running on the old client
    clock.now = 22 + 600
    asyncio.run(clouds.cloud("ns"))
    assert connector.closed == ["a#0"]


def test_a_changed_binding_is_seen_at_once_after_forget() -> None:
    objects = FakeObjects({"ns": [binding("b")]}, {("ns", "clouds"): secret(clouds_yaml("a"))})
    clouds, connector, _ = make(objects)
    asyncio.run(clouds.cloud("ns"))
    objects.bindings["ns"] = []
    clouds.forget("ns")
    assert unbound(clouds).reason == "NoCloudBinding"
    objects.bindings["ns"] = [binding("b", generation=2)]
    clouds.forget("ns")
    asyncio.run(clouds.cloud("ns"))
    assert connector.built == ["a#0", "a#1"]


def test_an_unreadable_binding_keeps_the_last_cloud_for_a_while_only() -> None:
    objects = FakeObjects({"ns": [binding("b")]}, {("ns", "clouds"): secret(clouds_yaml("a"))})
    clouds, _, clock = make(objects)
    first = asyncio.run(clouds.cloud("ns"))
    objects.broken = True
    clock.now = 30
    assert asyncio.run(clouds.cloud("ns")) is first
    clock.now = 61
    why = unbound(clouds)
    assert why.reason == "BindingNotReadable" and "unreachable" in str(why)


def test_an_invalid_cloud_is_not_built_again_until_something_changes() -> None:
    objects = FakeObjects({"ns": [binding("b")]}, {("ns", "clouds"): secret(clouds_yaml("x"))})
    clouds, connector, clock = make(objects)
    assert unbound(clouds).reason == "CloudNotFound"
    clock.now = 11
    assert unbound(clouds).reason == "CloudNotFound"
    objects.secrets[("ns", "clouds")] = secret(clouds_yaml("a"), version="2")
    clock.now = 22
    asyncio.run(clouds.cloud("ns"))
    assert connector.built == ["a#0"]


def test_close_closes_every_client() -> None:
    objects = FakeObjects({"ns": [binding("b")]}, {("ns", "clouds"): secret(clouds_yaml("a"))})
    clouds, connector, clock = make(objects)
    asyncio.run(clouds.cloud("ns"))
    objects.secrets[("ns", "clouds")] = secret(clouds_yaml("a"), version="2")
    clock.now = 11
    asyncio.run(clouds.cloud("ns"))
    clouds.close()
    assert sorted(connector.closed) == ["a#0", "a#1"]


def test_the_connector_builds_clients_from_memory_and_refuses_without_quoting() -> None:
    connector = OpenStackConnector(local_prefix=("sudo", "-n"))
    spec = CloudBindingSpec.model_validate(
        {"secretName": "clouds", "cloud": "a", "pacemaker": {"ssh": {"host": "node1"}}}
    )
    text = yaml.safe_dump(
        {
            "clouds": {
                "a": {
                    "auth": {
                        "auth_url": "http://127.0.0.1:9/v3",
                        "username": "admin",
                        "password": PASSWORD,
                        "project_name": "admin",
                        "user_domain_name": "Default",
                        "project_domain_name": "Default",
                    }
                },
                "broken": {"auth": {"password": PASSWORD}},
            }
        }
    )
    connected = asyncio.run(connector.connect(spec, text))
    try:
        assert isinstance(connected.pacemaker, CrmCluster)
        assert isinstance(connected.pacemaker.runner, SshRunner)
        # The readiness checks read through a client of their own (BoundCloud.readiness).
        assert isinstance(connected.readiness, OpenStackNova)
        assert connected.readiness is not connected.nova
    finally:
        connected.close()
    with pytest.raises(Unbound) as caught:
        asyncio.run(connector.connect(spec.model_copy(update={"cloud": "broken"}), text))
    assert caught.value.reason == "CloudsYamlInvalid" and "auth_url" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_pacemaker_failures_of_the_fencing_step_are_counted() -> None:
    """masakari_api_errors_total counted Nova's failures during a recovery but not
    Pacemaker's: a fencing step that could not read or ask the cluster raised no figure."""
    import asyncio

    from controller import metrics
    from controller.drivers.clouds import ThreadedCluster
    from controller.recovery.pacemaker import ClusterUnavailable

    class Unreachable:
        def state(self) -> None:
            raise ClusterUnavailable("crm_mon: connection refused")

        def fence(self, node: str, timeout: float) -> None:
            raise ClusterUnavailable("stonith_admin: connection refused")

    counter = metrics.api_errors.labels("pacemaker", "ClusterUnavailable")
    before = counter._value.get()
    cluster = ThreadedCluster(Unreachable())  # type: ignore[arg-type]
    for call in (cluster.state(), cluster.fence("node3", 5)):
        with pytest.raises(ClusterUnavailable):
            asyncio.run(call)
    assert counter._value.get() == before + 2
