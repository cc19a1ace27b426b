"""One table from the bench's JSON results, the README's performance table, PNG charts.

Reads what the parts of `make bench` wrote under bench/results/ (side_by_side.json: real Nova;
pacemaker_detection.json: the Pacemaker lab; sim_recovery.json: the simulator), whichever are
there, and:

- prints one table, each figure beside issue 12's goal and whether it is met;
- rewrites the README's performance table, between the markers README_BEGIN and README_END
  (nothing else of the README is touched);
- renders each chart (SVG) to PNG beside it with headless Chromium (hack/chromium/install.sh),
  when it is there: no plotting dependency. The SVGs stay.

    .venv/bin/python bench/report.py [--no-readme] [--no-png]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
README_BEGIN = "<!-- bench:begin (bench/report.py writes this table) -->"
README_END = "<!-- bench:end -->"
MIN_WINDOW = 200


@dataclass(frozen=True)
class Row:
    part: str
    measure: str
    figure: str
    goal: str
    met: bool | None  # None: no goal, or not measured


def _load(name: str, results: Path) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _when(report: dict[str, Any]) -> str:
    conditions = report.get("conditions", {})
    load = conditions.get("machine", {}).get("load_1m_at_end")
    return f"{conditions.get('date', '?')[:10]}, load {load}"


def nova_rows(report: dict[str, Any]) -> list[Row]:
    rows = []
    # Older results did not record it (the default was 3 then).
    concurrency = report.get("conditions", {}).get("operator", {}).get("evacuationConcurrency")
    pace = f" (evacuationConcurrency {concurrency})" if concurrency else ""
    for n, sides in report["results"].items():
        operator, masakari, raw = sides["operator"], sides["masakari"], sides["raw"]
        if masakari["median"] is None:
            masakari_figure, masakari_ratio = "failed every run", "-"
        else:
            masakari_figure = f"{masakari['median']:.2f} s"
            masakari_ratio = f"{masakari['x_raw']:.2f}x"
        failed = len(masakari.get("failed", []))
        failures = f"; Masakari failed {failed} of its runs" if failed else ""
        rows.append(
            Row(
                "real Nova 34",
                f"N={n}: kill to all settled, operator{pace} / Masakari 22 / raw calls",
                f"{operator['median']:.2f} s / {masakari_figure} / {raw['median']:.2f} s"
                f" ({operator['x_raw']:.2f}x / {masakari_ratio} raw{failures})",
                "operator ≤ 1.15x raw",
                operator["x_raw"] <= 1.15,
            )
        )
        every = sides.get("operator_all")
        if every is not None and every["median"] is not None:
            rows.append(
                Row(
                    "real Nova 34",
                    f"N={n}: the operator with evacuationConcurrency {n} (all at once, as the "
                    "raw calls) / raw calls",
                    f"{every['median']:.2f} s / {raw['median']:.2f} s ({every['x_raw']:.2f}x raw)",
                    "",
                    None,
                )
            )
    return rows


def pacemaker_rows(report: dict[str, Any]) -> list[Row]:
    summary, monitor = report["summary"], report["hostmonitor"]
    runs = len(report["runs"])

    def median(key: str) -> str:
        value = summary[key]["median"]
        return "not seen" if value is None else f"{value:.2f} s (max {summary[key]['max']:.2f})"

    gap = summary["event_after_fenced"]
    idle = monitor["idle"]["with_crm_mon_percent"]
    own_clock = report.get("fencing_clock") == "Pacemaker's own"
    clock = f" (times of OFFLINE and fencing: {report.get('fencing_clock', '?')})"
    return [
        Row(
            "Pacemaker", f"SIGKILL to OFFLINE, median of {runs}{clock}", median("offline"), "", None
        ),
        Row("Pacemaker", "SIGKILL to fencing confirmed", median("fenced"), "", None),
        Row("Pacemaker", "SIGKILL to FailureEvent", median("event_created"), "", None),
        Row(
            "Pacemaker",
            "FailureEvent after fencing confirmed, median",
            "not measured" if gap["median"] is None else f"{gap['median']:.3f} s",
            "≤ 0.5 s",
            None if gap["median"] is None else gap["median"] <= 0.5,
        ),
        # Only Pacemaker's own clock can say "before": an alert reaches each node late.
        Row(
            "Pacemaker",
            "FailureEvent after fencing confirmed, least",
            "not measured" if gap["min"] is None else f"{gap['min']:.3f} s",
            "never < 0",
            None if gap["min"] is None or not own_clock else gap["min"] >= 0,
        ),
        Row(
            "Pacemaker",
            "host monitor CPU when idle (with its crm_mon runs)",
            f"{idle:.2f} % of a core, RSS {monitor['rss_mib']} MiB",
            "≤ 1 %",
            idle <= 1.0,
        ),
    ]


def sim_rows(report: dict[str, Any]) -> list[Row]:
    rows = []
    head = f"{report['instances']} servers, {report['latency']:g} s each"
    for r in report["results"]:
        rows.append(
            Row(
                "simulator",
                f"{head}, concurrency {r['concurrency']}: total / ideal",
                f"{r['total']:.2f} s / {r['ideal']:.1f} s ({r['x_ideal']:.2f}x)",
                "≤ 1.1x",
                r["x_ideal"] <= 1.1,
            )
        )
    for r in report["results"]:
        rows.append(
            Row(
                "simulator",
                f"concurrency {r['concurrency']}: event stored to first evacuate call",
                f"{1000 * r['first_evacuate']:.0f} ms",
                "≤ 150 ms",
                r["first_evacuate"] <= 0.150,
            )
        )
    return rows


PARTS = (
    ("side_by_side", nova_rows),
    ("pacemaker_detection", pacemaker_rows),
    ("sim_recovery", sim_rows),
)


def collect(results: Path) -> tuple[list[Row], list[str]]:
    """The rows of every part that has results, and one 'where and when' line per part."""
    rows: list[Row] = []
    sources = []
    for name, to_rows in PARTS:
        report = _load(name, results)
        if report is None:
            continue
        rows.extend(to_rows(report))
        sources.append(f"`bench/results/{name}.json` ({_when(report)})")
    return rows, sources


def _met(row: Row) -> str:
    return "" if row.met is None else ("yes" if row.met else "**no**")


def markdown(rows: list[Row], sources: list[str]) -> str:
    lines = ["| part | measure | figure | goal | met |", "|---|---|---|---|---|"]
    lines += [f"| {r.part} | {r.measure} | {r.figure} | {r.goal} | {_met(r)} |" for r in rows]
    lines.append("")
    lines.append("From " + "; ".join(sources) + ". `make bench` reruns them (`docs/operator.md`).")
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """`text` with what lies between the README markers replaced by `section`."""
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no {README_BEGIN} ... {README_END} markers")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{section}\n{README_END}", text, count=1)


def render_png(svg: Path, chromium: str) -> Path:
    """The SVG photographed by headless Chromium at its own size."""
    root = svg.read_text()
    width = re.search(r'<svg[^>]*\swidth="(\d+)"', root)
    height = re.search(r'<svg[^>]*\sheight="(\d+)"', root)
    if width is None or height is None:
        raise SystemExit(f"{svg}: no width/height on its <svg>")
    png = svg.with_suffix(".png")
    with tempfile.TemporaryDirectory() as profile:
        # As root Chromium needs --no-sandbox; the page is our own SVG, with no script.
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                # Below about 150 px of window headless Chromium paints only the top of the
                # page; a taller window leaves white below the chart instead.
                f"--window-size={width.group(1)},{max(int(height.group(1)), MIN_WINDOW)}",
                f"--screenshot={png}",
                svg.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=True,
        )
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument("--no-png", action="store_true", help="do not render the charts")
    args = parser.parse_args(argv)
    rows, sources = collect(args.results)
    if not rows:
        print(f"no results under {args.results}", file=sys.stderr)
        return 1
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("part", "measure", "figure", "goal")]
    for r in rows:
        cells = (r.part, r.measure, r.figure, r.goal)
        met = "" if r.met is None else ("met" if r.met else "NOT MET")
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)), met)
    if not args.no_readme:
        args.readme.write_text(replace_section(args.readme.read_text(), markdown(rows, sources)))
        print(f"rewrote the performance table of {args.readme}")
    if not args.no_png:
        chromium = shutil.which("chromium")
        if chromium is None:
            print("no chromium (hack/chromium/install.sh): PNG charts not rendered")
        else:
            for svg in sorted(args.results.glob("*.svg")):
                print(f"rendered {render_png(svg, chromium)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
