"""The availability report (`masakari-operator report`, and GET /report on the API): the
figures of recovery.availability as a table, JSON, or a page with charts.

The page is one self-contained HTML document with inline SVG: no script, no outside
resource, so it renders the same behind any proxy and can be mailed as a file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from aiohttp import web

from controller.api.context import authorize, store_of
from controller.api.faults import bad_request
from controller.drivers.kube import PLURAL, Kube, KubeError, load_client
from controller.recovery.availability import Figures, Report, recovery_of, report

Body = Mapping[str, Any]
DEFAULT_WINDOW = "7d"  # the default retention of ended events
WINDOW = re.compile(r"^(\d{1,5})([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def window(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `600s`: how far back the report reaches."""
    match = WINDOW.match(text.strip())
    if match is None:
        raise ValueError(f"window {text[:32]!r}: give a number and s, m, h or d, e.g. 30d")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


def build(
    events: Iterable[Body], hosts: Iterable[Body], since: datetime, until: datetime
) -> Report:
    segments = {h["metadata"]["name"]: h["spec"]["segment"] for h in hosts}
    recoveries = [r for r in (recovery_of(e, segments) for e in events) if r is not None]
    return report(recoveries, segments, since, until)


# --- the table ------------------------------------------------------------------------------

COLUMNS = ("failures", "recovered", "failed", "open", "inst ok", "inst lost", "mean s", "p95 s")
EVENT_COLUMNS = 4  # the first ones; a project's row has its instances' columns only


def _cells(row: Figures, instances_only: bool) -> list[str]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    cells = [
        str(row.failures), str(row.recovered), str(row.failed), str(row.open),
        str(row.instances_recovered), str(row.instances_lost),
        seconds(row.mean_seconds), seconds(row.p95_seconds),
    ]  # fmt: skip
    return cells[EVENT_COLUMNS:] if instances_only else cells


def _columns(instances_only: bool) -> tuple[str, ...]:
    return COLUMNS[EVENT_COLUMNS:] if instances_only else COLUMNS


def _table(title: str, rows: list[tuple[str, Figures]], instances_only: bool = False) -> list[str]:
    width = max([len(title), *(len(name) for name, _ in rows)])
    lines = [f"{title:<{width}}  " + "  ".join(f"{c:>9}" for c in _columns(instances_only))]
    lines += [
        f"{name:<{width}}  " + "  ".join(f"{c:>9}" for c in _cells(r, instances_only))
        for name, r in rows
    ]
    return lines


def text(result: Report) -> str:
    lines = [
        f"Failures reported from {result.since:%Y-%m-%d %H:%M} "
        f"to {result.until:%Y-%m-%d %H:%M} UTC",
        "",
    ]
    lines += _table("segment", [*sorted(result.segments.items()), ("(all)", result.total)])
    lines += [""]
    lines += _table("segment/host", [(f"{s}/{h}", r) for (s, h), r in sorted(result.hosts.items())])
    if result.projects:
        lines += [
            "",
            "Instances per project (time from the failure's report to the instance's move)",
        ]
        lines += _table("project", sorted(result.projects.items()), instances_only=True)
    return "\n".join(lines) + "\n"


# --- the page -------------------------------------------------------------------------------

BAR = 18  # px per bar
CHART_WIDTH = 640
LABELS = 200  # px kept left of the bars for their names
COLOURS = {"recovered": "#2e7d32", "failed": "#c62828", "open": "#f9a825", "lost": "#6a1b9a"}


def _bars(title: str, rows: Sequence[tuple[str, Sequence[tuple[str, float]]]], unit: str) -> str:
    """A horizontal stacked bar chart: one bar per row, its parts (legend key, value)."""
    if not rows:
        return f"<h3>{escape(title)}</h3><p class='none'>Nothing in this window.</p>"
    top = max(sum(v for _, v in parts) for _, parts in rows) or 1.0
    scale = (CHART_WIDTH - LABELS - 60) / top
    height = BAR * len(rows) + 10
    shapes = []
    for index, (name, parts) in enumerate(rows):
        y = 5 + index * BAR
        shapes.append(
            f"<text x='{LABELS - 6}' y='{y + BAR - 6}' text-anchor='end'>{escape(name)}</text>"
        )
        x = float(LABELS)
        for key, value in parts:
            if value <= 0:
                continue
            shapes.append(
                f"<rect x='{x:.1f}' y='{y}' width='{value * scale:.1f}' height='{BAR - 4}' "
                f"fill='{COLOURS.get(key, '#1565c0')}'><title>{escape(key)}: {value:g} {unit}"
                "</title></rect>"
            )
            x += value * scale
        total = sum(v for _, v in parts)
        label = f"{total:.1f}" if unit == "s" else f"{total:g}"
        shapes.append(f"<text x='{x + 4:.1f}' y='{y + BAR - 6}'>{label}</text>")
    return (
        f"<h3>{escape(title)}</h3><svg role='img' aria-label='{escape(title)}' "
        f"width='{CHART_WIDTH}' height='{height}'>{''.join(shapes)}</svg>"
    )


def _html_table(title: str, rows: list[tuple[str, Figures]], instances_only: bool = False) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in (title, *_columns(instances_only)))
    body = "".join(
        f"<tr><td>{escape(name)}</td>"
        + "".join(f"<td>{c}</td>" for c in _cells(r, instances_only))
        + "</tr>"
        for name, r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #212121; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #bdbdbd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
svg text { font-size: 12px; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; }
.none { color: #757575; }
"""


def html(result: Report, namespace: str) -> str:
    hosts = sorted(result.hosts.items())
    failures = [
        (f"{segment}/{host}", [("recovered", r.recovered), ("failed", r.failed), ("open", r.open)])
        for (segment, host), r in hosts
        if r.failures
    ]
    times = [
        (f"{r.reported:%m-%d %H:%M} {r.host}", [("recovered", r.seconds_to_recover or 0.0)])
        for r in result.recoveries[:40]
        if r.seconds_to_recover is not None
    ]
    instances = [
        (name, [("recovered", r.instances_recovered), ("lost", r.instances_lost)])
        for name, r in sorted(result.projects.items())
    ]
    legend = "".join(
        f"<span><i style='background:{colour}'></i>{key}</span>" for key, colour in COLOURS.items()
    )
    total = result.total
    summary = (
        f"{total.failures} failure(s), {total.recovered} recovered, {total.failed} given up, "
        f"{total.instances_recovered} instance(s) recovered, {total.instances_lost} lost"
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Availability report: {escape(namespace)}</title><style>{STYLE}</style>"
        "</head><body>"
        f"<h1>Availability report: {escape(namespace)}</h1>"
        f"<p>Failures reported from {result.since:%Y-%m-%d %H:%M} to "
        f"{result.until:%Y-%m-%d %H:%M} UTC. <strong>{escape(summary)}</strong>.</p>"
        f"<p class='legend'>{legend}</p>"
        + _bars("Failures per host", failures, "failure(s)")
        + _bars("Time to recover, latest recoveries (s)", times, "s")
        + _bars("Instances per project", instances, "instance(s)")
        + "<h2>Segments</h2>"
        + _html_table("segment", [*sorted(result.segments.items()), ("(all)", total)])
        + "<h2>Hosts</h2>"
        + _html_table("segment/host", [(f"{s}/{h}", r) for (s, h), r in hosts])
        + "<h2>Projects</h2>"
        + _html_table("project", sorted(result.projects.items()), instances_only=True)
        + "</body></html>"
    )


# --- where it is served ---------------------------------------------------------------------


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"Invalid input: {text[:64]!r} is not an ISO 8601 time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def get_report(request: web.Request) -> web.Response:
    """GET /report?window=7d (or since=/until=, ISO 8601) &format=html|json."""
    authorize(request, "masakari:report")
    query = request.query
    until = _moment(query["until"]) if "until" in query else datetime.now(UTC)
    try:
        reach = window(query.get("window", DEFAULT_WINDOW))
    except ValueError as error:
        raise bad_request(f"Invalid input: {error}") from None
    try:
        since = _moment(query["since"]) if "since" in query else until - reach
    except OverflowError:
        # until=0001-01-01 and a 30-day window: no datetime is that early.
        raise bad_request("Invalid input: the window reaches back before year 1.") from None
    store = store_of(request)
    contents = await store.view()
    result = build(contents.objects[PLURAL.failure_events].values(), contents.hosts(), since, until)
    if query.get("format", "html") == "json":
        return web.json_response(result.as_dict())
    if query.get("format", "html") != "html":
        raise bad_request("Invalid input: format is html or json.")
    return web.Response(text=html(result, store.namespace), content_type="text/html")


# --- `masakari-operator report` -------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--namespace", required=True, help="the cloud's namespace")
    parser.add_argument("--kubeconfig", help="kubeconfig (default: in-cluster, then ~/.kube)")
    parser.add_argument(
        "--window",
        default=DEFAULT_WINDOW,
        type=window,
        help="how far back: 7d, 12h, 90m (default 7d)",
    )
    parser.add_argument(
        "--format", choices=["table", "json", "html"], default="table", help="default: table"
    )


async def _read(args: argparse.Namespace) -> Report:
    kube = Kube(load_client(args.kubeconfig))
    events = await kube.list(PLURAL.failure_events, args.namespace)
    hosts = await kube.list(PLURAL.hosts, args.namespace)
    until = datetime.now(UTC)
    return build(events, hosts, until - args.window, until)


def run(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_read(args))
    except (KubeError, OSError) as error:
        print(f"masakari-operator report: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result.as_dict(), indent=2))
    elif args.format == "html":
        print(html(result, args.namespace))
    else:
        sys.stdout.write(text(result))
    return 0
