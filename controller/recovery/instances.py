"""Which instances of a failed host are evacuated, and in which order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.recovery.images import Images, exclusion, image_of, rule_matches
from controller.recovery.nova import Server
from controller.resources.segment import HostFailurePolicy, PlacementPolicy

_TRUE = {"1", "t", "true", "on", "y", "yes"}


def is_true(value: str | None) -> bool:
    """oslo's bool_from_string, as Masakari reads HA_Enabled."""
    return value is not None and value.strip().lower() in _TRUE


def flag(metadata: Mapping[str, str], key: str) -> bool:
    return is_true(metadata.get(key))


@dataclass(frozen=True)
class Selection:
    """Instances to move, HA-enabled first, and the ones left where they are with why."""

    evacuate: list[Server]
    left: list[tuple[Server, str]]


def select_for_evacuation(
    servers: Iterable[Server], policy: HostFailurePolicy, images: Images | None = None
) -> Selection:
    """`images`: what Glance said of the servers' images (controller.recovery.images); an
    image not in it is unknown, and unknown never excludes."""
    ha_enabled: list[Server] = []
    others: list[Server] = []
    left: list[tuple[Server, str]] = []
    excluded_projects = set(policy.exclude_projects)
    for server in sorted(servers, key=lambda s: (s.name, s.id)):
        by_image = exclusion(image_of(server, images or {}), policy)
        if server.project_id in excluded_projects:
            left.append((server, f"project {server.project_id} is excluded (excludeProjects)"))
        elif by_image is not None:
            left.append((server, by_image))
        elif policy.exclude_metadata_key and flag(server.metadata, policy.exclude_metadata_key):
            left.append((server, f"metadata {policy.exclude_metadata_key} excludes it"))
        elif policy.ignore_instances_in_error_state and server.vm_state == "error":
            left.append((server, "in error state and ignoreInstancesInErrorState is set"))
        elif flag(server.metadata, policy.ha_enabled_metadata_key):
            ha_enabled.append(server)
        elif policy.evacuate_all_instances:
            others.append(server)
        else:
            left.append((server, f"not HA-enabled ({policy.ha_enabled_metadata_key})"))
    return Selection(ha_enabled + others, left)


# A priority beyond this is a typo, not an intent; clipping keeps the ordering well defined.
_PRIORITY_LIMIT = 1000


def instance_priority(
    server: Server, placement: PlacementPolicy, ha_enabled_key: str, images: Images | None = None
) -> int:
    """Where an instance stands when room is short: its metadata priority (an integer; anything
    else counts 0), else the first of the priority rules it matches, else 0; HA-enabled ones
    before the others of the same priority. A rule about the image never matches an image
    that is not in `images` or could not be read."""
    value = 0
    raw = server.metadata.get(placement.priority_metadata_key)
    if raw is not None:
        try:
            value = int(raw.strip())
        except ValueError:
            value = 0
    else:
        image = image_of(server, images or {})
        for rule in placement.priority_rules:
            if rule_matches(rule, server, image):
                value = rule.priority
                break
    value = max(-_PRIORITY_LIMIT, min(_PRIORITY_LIMIT, value))
    return 2 * value + flag(server.metadata, ha_enabled_key)
