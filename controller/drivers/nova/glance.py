"""Glance's image as selection and priority rules read it (GET /v2/images/{id}).

Glance flattens an image's own properties beside its base attributes in one JSON object; the
base attributes (Glance's v2 image schema) are left out, so a rule on `name` or `status` never
matches by accident. Values are compared as text: Glance stores properties as strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controller.recovery.nova import Image

#: Glance's own attributes of an image (the v2 schema's base properties), not the image's.
BASE_ATTRIBUTES = frozenset(
    {
        "checksum",
        "container_format",
        "created_at",
        "direct_url",
        "disk_format",
        "file",
        "id",
        "locations",
        "min_disk",
        "min_ram",
        "name",
        "os_hash_algo",
        "os_hash_value",
        "os_hidden",
        "owner",
        "protected",
        "schema",
        "self",
        "size",
        "status",
        "stores",
        "tags",
        "updated_at",
        "virtual_size",
        "visibility",
    }
)


def image_from_body(body: Mapping[str, Any]) -> Image:
    return Image(
        id=str(body["id"]),
        properties={
            key: str(value)
            for key, value in body.items()
            if key not in BASE_ATTRIBUTES and value is not None
        },
        tags=frozenset(str(tag) for tag in body.get("tags") or ()),
    )
