"""Selection and priority by image (controller.recovery.images): the pure matching as a table,
then a host failure on the in-memory Nova whose Glance answers, fails, or is not needed."""

from __future__ import annotations

import dataclasses

import pytest

from controller.recovery import images
from controller.recovery.images import Unreadable
from controller.recovery.instances import instance_priority, select_for_evacuation
from controller.recovery.nova import Flavor, Image, Server
from controller.resources.failure_event import MoveStatus
from controller.resources.segment import (
    HostFailurePolicy,
    ImageProperty,
    PlacementPolicy,
    PriorityRule,
)
from tests.unit.test_host_failure_placement import Store, hosts_of, run, world
from tests.unit.test_instance_priority import server

AMPHORA = Image("img-amp", {"role": "amphora", "hw_disk_bus": "virtio"}, frozenset({"amphora"}))
PLAIN = Image("img-plain", {"os_distro": "ubuntu"})
DOWN = Unreadable("img-down", "get image img-down: HTTP 503")
VOLUME = None  # booted from a volume: no image


@pytest.mark.parametrize(
    ("image", "wanted", "matches"),
    [
        (AMPHORA, ImageProperty(key="role", value="amphora"), True),
        (AMPHORA, ImageProperty(key="role"), True),  # the key alone, any value
        (AMPHORA, ImageProperty(key="role", value="Amphora"), False),  # values are exact text
        (AMPHORA, ImageProperty(key="name", value="img-amp"), False),  # base attributes are not
        (PLAIN, ImageProperty(key="role"), False),
        (DOWN, ImageProperty(key="role"), False),  # unknown is not a match
        (VOLUME, ImageProperty(key="role"), False),
    ],
)
def test_an_image_property_matches_only_a_read_image_that_has_it(
    image: Image | Unreadable | None, wanted: ImageProperty, matches: bool
) -> None:
    assert images.has_property(image, wanted) is matches


@pytest.mark.parametrize(
    ("image", "policy", "why"),
    [
        (AMPHORA, {"exclude_image_tags": ["amphora"]}, "image img-amp has tag amphora"),
        (
            AMPHORA,
            {"exclude_image_properties": [{"key": "role", "value": "amphora"}]},
            "image img-amp has property role=amphora",
        ),
        (PLAIN, {"exclude_image_tags": ["amphora"]}, None),
        (DOWN, {"exclude_image_tags": ["amphora"]}, None),  # never excluded on a guess
        (DOWN, {"exclude_image_properties": [{"key": "role"}]}, None),
        (VOLUME, {"exclude_image_properties": [{"key": "role"}]}, None),
        (AMPHORA, {}, None),
    ],
)
def test_exclusion_by_image(
    image: Image | Unreadable | None, policy: dict[str, object], why: str | None
) -> None:
    found = images.exclusion(image, HostFailurePolicy.model_validate(policy))
    assert (found if found is None else found.split(" (")[0]) == why


def _server(name: str, image: str | None, **changes: object) -> Server:
    return dataclasses.replace(server(name, project="p1"), image_id=image, **changes)  # type: ignore[arg-type]


KNOWN: images.Images = {i.id: i for i in (AMPHORA, PLAIN)} | {DOWN.id: DOWN}
RULES = PlacementPolicy(
    priority_rules=[
        PriorityRule(image_tag="amphora", priority=-5),
        PriorityRule(image_property=ImageProperty(key="os_distro", value="ubuntu"), priority=50),
        PriorityRule(image_property=ImageProperty(key="os_distro"), flavor="big", priority=70),
        PriorityRule(project="p1", priority=10),
    ]
)


@pytest.mark.parametrize(
    ("server", "priority"),
    [
        (_server("amp", "img-amp"), -5),
        (_server("web", "img-plain"), 50),
        # Every condition of a rule must hold: the flavor rule is passed over for a small one.
        (_server("big", "img-plain", flavor=Flavor("big", 8, 8192, 1)), 50),
        # Unknown and volume-booted: the image rules never match, the project rule does.
        (_server("down", "img-down"), 10),
        (_server("volume", None), 10),
        (_server("unread", "img-never-read"), 10),
        # Metadata names the priority: the rules are not consulted.
        (_server("meta", "img-plain", metadata={"HA_Priority": "3"}), 3),
        (_server("other", "img-plain", project_id="p2"), 50),
    ],
)
def test_priority_rules_by_image(server: Server, priority: int) -> None:
    # instance_priority doubles the priority and adds one for HA-enabled (none here).
    assert instance_priority(server, RULES, "HA_Enabled", KNOWN) == 2 * priority


def test_selection_leaves_excluded_images_and_keeps_unknown_ones() -> None:
    servers = [
        _server("amp", "img-amp"),
        _server("down", "img-down"),
        _server("volume", None),
        _server("web", "img-plain"),
    ]
    policy = HostFailurePolicy(exclude_image_tags=["amphora"])
    selection = select_for_evacuation(servers, policy, KNOWN)
    assert [s.name for s in selection.evacuate] == ["down", "volume", "web"]
    assert [(s.name, why) for s, why in selection.left] == [
        ("amp", "image img-amp has tag amphora (excludeImageTags)")
    ]


def test_images_are_needed_only_when_a_rule_names_one() -> None:
    plain = HostFailurePolicy()
    assert not images.needed(plain, PlacementPolicy(priority_rules=[PriorityRule(priority=1)]))
    assert images.needed(HostFailurePolicy(exclude_image_tags=["amphora"]), PlacementPolicy())
    assert images.needed(plain, RULES)


# --- a host failure on the in-memory Nova ---------------------------------------------------


def _boot(nova_servers: dict[str, Server], name: str, image: str | None) -> None:
    key = f"uuid-{name}"
    nova_servers[key] = dataclasses.replace(nova_servers[key], image_id=image)


def test_a_recovery_reads_each_image_once_excludes_by_it_and_prioritizes_by_it() -> None:
    # Room for two of the three instances: h2 and h3 give one vCPU each.
    nova = world({"h2": 1, "h3": 1})
    nova.images = {AMPHORA.id: AMPHORA, PLAIN.id: PLAIN}
    for name, image in [("amp", "img-amp"), ("a-low", None), ("b-low", None), ("web", "img-plain")]:
        nova.add_server(name, "h1")
        _boot(nova.servers, name, image)
    nova.add_server("web2", "h1")
    _boot(nova.servers, "web2", "img-plain")
    store = Store()
    run(
        nova,
        store,
        placement=PlacementPolicy(
            priority_rules=[
                PriorityRule(image_property=ImageProperty(key="os_distro"), priority=100)
            ]
        ),
        exclude_image_tags=["amphora"],
    )
    # One read per distinct image for the whole recovery (selection and plan alike).
    assert sorted(c[1] for c in nova.calls if c[0] == "image") == ["img-amp", "img-plain"]
    moves = {m.instance_name: m for m in store.status.instances}
    assert moves["amp"].status == MoveStatus.IGNORED
    assert "excludeImageTags" in (moves["amp"].message or "")
    assert hosts_of(nova)["amp"] == "h1"
    # The two instances of the prioritized image take the room; the others are reported.
    assert {moves["web"].status, moves["web2"].status} == {MoveStatus.SUCCEEDED}
    assert {moves["a-low"].status, moves["b-low"].status} == {MoveStatus.FAILED}


def test_glance_down_never_excludes_and_is_said_on_the_event() -> None:
    nova = world({"h2": 4, "h3": 4})
    nova.images = {AMPHORA.id: AMPHORA}
    nova.failing_images = {AMPHORA.id}
    nova.add_server("amp", "h1")
    _boot(nova.servers, "amp", "img-amp")
    store = Store()
    outcome = run(nova, store, exclude_image_tags=["amphora"])
    assert outcome.reason == "Recovered"
    [move] = store.status.instances
    assert move.status == MoveStatus.SUCCEEDED and hosts_of(nova)["amp"] in ("h2", "h3")
    prepare = next(s for s in store.status.steps if s.name == "PrepareHAEnabledInstancesTask")
    said = [d.message for d in prepare.progress_details]
    print("\n".join(said))
    assert any("image img-amp not read from Glance" in m and "HTTP 503" in m for m in said)


def test_a_segment_without_image_rules_never_calls_glance() -> None:
    nova = world({"h2": 4, "h3": 4})
    nova.add_server("vm", "h1")
    _boot(nova.servers, "vm", "img-anything")
    run(nova, Store())
    assert not [c for c in nova.calls if c[0] == "image"]
