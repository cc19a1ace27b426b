"""What an instance's Glance image says, for selection (`excludeImageProperties`,
`excludeImageTags`) and priority rules (`imageProperty`, `imageTag`).

An instance's image is one of three things, kept apart on purpose:
- none: booted from a volume, Nova shows no image. Its volume's image metadata is Cinder's and is
  not read: no properties, no tags; a rule about an image never matches it.
- an `Image`: read from Glance, once per distinct image per recovery.
- `Unreadable`: Glance failed (down, a 5xx after the driver's retries, a deleted image). Unknown
  is not "absent": it never excludes an instance (leaving a VM dead on a guess is the worse
  mistake; Octavia's amphorae evacuated by Nova cost a failover Octavia does anyway) and never
  matches a rule, so the instance gets the priority its metadata and other rules give. The
  recovery says which image it could not read.

Glance is read only when the segment names an image property or tag: a segment that does not
depend on Glance never waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.recovery.nova import Image, NovaError, Server
from controller.recovery.ports import Nova
from controller.resources.segment import (
    HostFailurePolicy,
    ImageProperty,
    PlacementPolicy,
    PriorityRule,
)


@dataclass(frozen=True)
class Unreadable:
    """An image Glance did not give: why, as the recovery reports it (no credentials)."""

    id: str
    why: str


#: Image id -> what Glance said of it.
Images = Mapping[str, Image | Unreadable]


def needed(host_failure: HostFailurePolicy, placement: PlacementPolicy) -> bool:
    """Whether the segment's selection or priorities depend on images at all."""
    return bool(
        host_failure.exclude_image_properties
        or host_failure.exclude_image_tags
        or any(
            r.image_property is not None or r.image_tag is not None
            for r in placement.priority_rules
        )
    )


def image_of(server: Server, images: Images) -> Image | Unreadable | None:
    """The server's image; None when it has none (booted from a volume)."""
    if server.image_id is None:
        return None
    return images.get(server.image_id) or Unreadable(server.image_id, "not read")


def has_property(image: Image | Unreadable | None, wanted: ImageProperty) -> bool:
    if not isinstance(image, Image):
        return False
    value = image.properties.get(wanted.key)
    return value is not None and (wanted.value is None or wanted.value == value)


def has_tag(image: Image | Unreadable | None, tag: str) -> bool:
    return isinstance(image, Image) and tag in image.tags


def exclusion(image: Image | Unreadable | None, policy: HostFailurePolicy) -> str | None:
    """Why the image keeps its instance from being evacuated, or None."""
    for wanted in policy.exclude_image_properties:
        if has_property(image, wanted):
            assert isinstance(image, Image)  # has_property is true only of a read image
            value = image.properties[wanted.key]
            return f"image {image.id} has property {wanted.key}={value} (excludeImageProperties)"
    for tag in policy.exclude_image_tags:
        if has_tag(image, tag):
            assert isinstance(image, Image)
            return f"image {image.id} has tag {tag} (excludeImageTags)"
    return None


def rule_matches(rule: PriorityRule, server: Server, image: Image | Unreadable | None) -> bool:
    """Every condition the rule names holds of the server."""
    return (
        (rule.flavor is None or rule.flavor == server.flavor.name)
        and (rule.project is None or rule.project == server.project_id)
        and (rule.image_property is None or has_property(image, rule.image_property))
        and (rule.image_tag is None or has_tag(image, rule.image_tag))
    )


async def read(
    nova: Nova, servers: Iterable[Server], known: Images | None = None
) -> dict[str, Image | Unreadable]:
    """Each distinct image of `servers` not in `known`, read once, all at once (the driver
    bounds the calls in flight). An error makes the image Unreadable; it never raises."""
    known = known or {}
    ids = sorted({s.image_id for s in servers if s.image_id is not None} - set(known))

    async def one(image_id: str) -> Image | Unreadable:
        try:
            return await nova.image(image_id)
        except NovaError as error:
            return Unreadable(image_id, str(error))

    return dict(known) | dict(zip(ids, await asyncio.gather(*(one(i) for i in ids)), strict=True))


def unreadable(images: Images, servers: Iterable[Server]) -> list[str]:
    """One line per image that could not be read, with how many of `servers` booted from it."""
    counts: dict[str, int] = {}
    for server in servers:
        if server.image_id is not None and isinstance(images.get(server.image_id), Unreadable):
            counts[server.image_id] = counts.get(server.image_id, 0) + 1
    lines = []
    for image_id, count in sorted(counts.items()):
        found = images[image_id]
        assert isinstance(found, Unreadable)
        lines.append(
            f"image {image_id} not read from Glance ({found.why[:300]}): its {count} instance(s) "
            "neither excluded nor prioritized by image"
        )
    return lines
