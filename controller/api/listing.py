"""Lists as Masakari answers them: sort keys and directions, limit, and the integer-id marker.

Masakari sorts in SQL with `created_at` and `id` appended as tiebreakers and pages with
`marker` = the integer id of the last item seen; the same happens here over rendered items.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from multidict import MultiMapping

from controller.api.faults import bad_request
from controller.api.validation import FALSE_STRINGS, TRUE_STRINGS

MAX_LIMIT = 1000  # Masakari's osapi_max_limit
Item = dict[str, Any]


def limit_and_marker(query: MultiMapping[str]) -> tuple[int, int | None]:
    limit = MAX_LIMIT
    if "limit" in query:
        try:
            limit = int(query["limit"])
        except ValueError:
            raise bad_request("limit param must be an integer") from None
        if limit < 0:
            raise bad_request("limit param must be positive")
        limit = min(limit or MAX_LIMIT, MAX_LIMIT)
    marker = None
    if "marker" in query:
        try:
            marker = int(query["marker"])
        except ValueError:
            raise bad_request(f"Marker {query['marker'][:40]} could not be found.") from None
    return limit, marker


def sort_params(query: MultiMapping[str], allowed: Sequence[str]) -> list[tuple[str, str]]:
    keys = query.getall("sort_key", []) or ["created_at"]
    dirs = query.getall("sort_dir", [])
    if len(dirs) > len(keys):
        raise bad_request("Sort direction size exceeds sort key size")
    for direction in dirs:
        if direction not in ("asc", "desc"):
            raise bad_request(f"Unknown sort direction {direction[:10]!r}, must be 'desc' or 'asc'")
    default = dirs[0] if dirs else "desc"
    dirs = dirs + [default] * (len(keys) - len(dirs))
    for key in keys:
        if key not in allowed:
            raise bad_request(f"Sort key supplied is invalid: {key[:40]}")
    pairs = list(zip(keys, dirs, strict=True))
    for tiebreak in ("created_at", "id"):
        if tiebreak not in keys:
            pairs.append((tiebreak, default))
    return pairs


def comparable(value: Any) -> tuple[int, Any]:
    # None sorts first, as NULL does in MySQL ascending order.
    if value is None:
        return (0, "")
    if isinstance(value, dict | list):
        return (1, json.dumps(value, sort_keys=True))
    return (1, value)


def _compare(a: Item, b: Item, sort: list[tuple[str, str]]) -> int:
    for key, direction in sort:
        left, right = comparable(a.get(key)), comparable(b.get(key))
        if left == right:
            continue
        smaller = left < right
        return (-1 if smaller else 1) * (1 if direction == "asc" else -1)
    return 0


def page(
    items: list[Item],
    every_item: Mapping[int, Item],
    sort: list[tuple[str, str]],
    limit: int,
    marker: int | None,
) -> list[Item]:
    """Sort `items` and return up to `limit` of them after the one whose id is `marker`.

    The marker may be any item of the resource (filtered out or not), as in Masakari, whose
    marker is looked up by id before the filters apply; an unknown one is a 400.
    """

    def compare(a: Item, b: Item) -> int:
        return _compare(a, b, sort)

    ordered = sorted(items, key=functools.cmp_to_key(compare))
    if marker is not None:
        anchor = every_item.get(marker)
        if anchor is None:
            raise bad_request(f"Marker {marker} could not be found.")
        ordered = [item for item in ordered if _compare(item, anchor, sort) > 0]
    return ordered[:limit]


def answer(
    everything: list[Item],
    query: MultiMapping[str],
    sort_keys: Sequence[str],
    wanted: Mapping[str, Any],
    keep: Callable[[Item], bool] = lambda item: True,
) -> list[Item]:
    """The page of `everything` a list request asks for: the items that `keep` accepts and
    whose fields equal the `wanted` values that are not None, sorted and paged."""
    limit, marker = limit_and_marker(query)
    sort = sort_params(query, sort_keys)
    items = [
        item
        for item in everything
        if keep(item) and all(item[k] == v for k, v in wanted.items() if v is not None)
    ]
    return page(items, {item["id"]: item for item in everything}, sort, limit, marker)


def filter_bool(query: MultiMapping[str], key: str) -> bool | None:
    if key not in query:
        return None
    value = query[key]
    if value in TRUE_STRINGS:
        return True
    if value in FALSE_STRINGS:
        return False
    raise bad_request(f"Invalid value {value[:20]!r} for the {key} filter: must be a boolean")
