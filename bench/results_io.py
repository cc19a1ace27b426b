"""What every bench part writes beside its figures: the run's conditions, a JSON file and an
SVG bar chart under bench/results/ (bench/report.py reads them back into one table)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def conditions(**extra: Any) -> dict[str, Any]:
    """The machine and the commit a figure was measured on; the load matters on a shared box."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )

    commit = git("rev-parse", "--short", "HEAD").stdout.strip()
    # What ran is the working tree: say when the operator's code was not the commit's.
    if git("diff", "--quiet", "HEAD", "--", "controller").returncode != 0:
        commit += " + uncommitted changes in controller/"
    return {
        **extra,
        "machine": {
            "cpus": os.cpu_count(),
            "load_1m_at_end": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "commit": commit,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def bar_chart(title: str, rows: Sequence[tuple[str, float]], unit: str = "s") -> str:
    """Horizontal bars drawn by hand: no plotting dependency for a few charts."""
    widest = max((value for _, value in rows), default=0.0) or 1.0
    height = 24 * len(rows) + 30
    bars = []
    for index, (label, value) in enumerate(rows):
        y = 20 + 24 * index
        width = 500 * value / widest
        bars.append(
            f'<text x="200" y="{y + 14}" text-anchor="end">{label}</text>'
            f'<rect x="210" y="{y}" width="{width:.1f}" height="18" fill="#4a7ab5"/>'
            f'<text x="{215 + width:.1f}" y="{y + 14}">{value:.2f} {unit}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="800" height="{height}" '
        'font-family="sans-serif" font-size="12">'
        '<rect width="100%" height="100%" fill="white"/>'
        f'<text x="10" y="12">{title}</text>' + "".join(bars) + "</svg>\n"
    )


def write(name: str, report: dict[str, Any], chart: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{name}.svg").write_text(chart)
    print(f"wrote {RESULTS.relative_to(REPO)}/{name}.json and .svg", flush=True)
