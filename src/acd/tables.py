"""Plain-text KPI tables for the terminal (the human side of ``--json``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

COLUMNS = [
    # (heading, key, format)
    ("offered", "offered", "{:,}"),
    ("answered", "answered", "{:,}"),
    ("abandoned", "abandoned", "{:,}"),
    ("aband%", "abandon_rate", "{:.1%}"),
    ("ASA s", "asa", "{:.1f}"),
    ("P(wait)", "p_wait", "{:.1%}"),
    ("SL", "service_level", "{:.1%}"),
    ("AHT s", "aht", "{:.1f}"),
    ("occup.", "occupancy", "{:.1%}"),
]


def iso(epoch: float) -> str:
    """UTC ISO-8601 of an epoch time, seconds precision."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def kpi_table(report: dict[str, Any]) -> str:
    """One row per queue, then the total; SL marked against its target."""
    cols = list(COLUMNS)
    if any(fig.get("closed") for fig in report["queues"].values()):  # business hours at work
        cols.insert(3, ("closed", "closed", "{:,}"))
    rows = [["queue"] + [h for h, _, _ in cols] + ["SL target"]]
    for name, fig in report["queues"].items():
        target = f"{fig['sl_target']:.0%}/{fig['sl_threshold']:g}s"
        mark = "met" if fig.get("sl_met") else ("MISSED" if fig["offered"] else "-")
        rows.append([name] + [fmt.format(fig[key]) for _, key, fmt in cols] + [f"{target} {mark}"])
    tot = report["total"]
    rows.append(["TOTAL"] + [fmt.format(tot[key]) for _, key, fmt in cols] + [""])
    return _render(rows, sep_before_last=True)


def interval_table(report: dict[str, Any], every: int = 1) -> str:
    """Per-interval totals (every ``every``-th interval)."""
    ivs = report.get("intervals", [])
    # follow-the-sun: who answered, per site (the hand-over between sites)
    sites = sorted({s for row in ivs for s in row.get("sites", {})})
    rows = [["interval (UTC)", "offered", "answered", "aband%", "ASA s", "SL", "occup."]
            + [f"by {s}" for s in sites]]
    for row in ivs[::every]:
        t = row["total"]
        by_site = row.get("sites", {})
        rows.append([iso(row["start"])[:16].replace("T", " "), f"{t['offered']:,}", f"{t['answered']:,}",
                     f"{t['abandon_rate']:.1%}", f"{t['asa']:.1f}", f"{t['service_level']:.1%}",
                     f"{t['occupancy']:.1%}"] + [f"{by_site.get(s, {}).get('answered', 0):,}" for s in sites])
    return _render(rows)


def render_rows(rows: list[list[str]], sep_before_last: bool = False) -> str:
    """Columns padded (first left, the rest right), a rule under the
    heading and (``sep_before_last``) above the last row."""
    return _render(rows, sep_before_last)


def _render(rows: list[list[str]], sep_before_last: bool = False) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or (sep_before_last and n == len(rows) - 2):
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
