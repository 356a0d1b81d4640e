"""The HTML replay report: one self-contained file a planner can open or print.

``render_report(report, title=...)`` turns the KPI report of ``acd replay``
(``acd.core.kpi``) into one HTML page: headline figures, the KPI table per
queue (service level coloured against its target), the agent groups, and
per-interval charts -- contacts offered/answered/abandoned, service level
against target, ASA, queue length, agents staffed and busy, occupancy -- plus
the wait-time distribution per queue.  Charts are inline SVG made by
``acd.svg``; the page needs no network, no script and no external file, and
prints on A4 landscape.  ``write_report`` writes it to a file.

The building blocks (``Timeline``, the table and figure helpers) are shared
with ``acd.compare``, which overlays several replays of one scenario.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import __version__
from .svg import (
    NEUTRAL, STYLES, Band, Marker, Ref, Series, Style, bar_chart, fmt_pct, time_chart,
)

__all__ = ["render_report", "write_report", "Timeline", "sites_from_spec", "GroupBy"]

#: Agent-group grouping for the staffing charts: group name -> site (or any
#: other key); a mapping, a function, or None (one chart per group).
GroupBy = Mapping[str, str] | Callable[[str], str] | None

_ANSWERED = STYLES[0]
_ABANDONED = Style("#D55E00", "6 3", 1.6)
_MAXLEN = Style("#D55E00", "4 2", 1.3)
_STAFFED = Style("#222222", "", 1.4)
_BUSY = Style("#0072B2", "", 1.2, fill_opacity=0.3)
_TARGET_BAND = "#D55E00"

# chart geometry (viewBox units; CSS scales them to the column width)
# (the two-column charts print at ~0.7 scale on A4 landscape: 11-unit text ~ 7.5 pt)
_W, _H = 560, 230
_WIDE_W, _WIDE_H = 1140, 260


# -- the data, interval by interval ---------------------------------------------------


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pretty_time(epoch: float) -> str:
    d = datetime.fromtimestamp(epoch, timezone.utc)
    return d.strftime("%a ") + str(d.day) + d.strftime(" %b %Y %H:%M")


def period_text(start: float, end: float) -> str:
    """"Mon 5 Jan 2026 08:00 – 20:14 UTC", the date twice only if it changes."""
    a = datetime.fromtimestamp(start, timezone.utc)
    b = datetime.fromtimestamp(end, timezone.utc)
    right = b.strftime("%H:%M") if a.date() == b.date() else _pretty_time(end)
    return f"{_pretty_time(start)} \u2013 {right} UTC"


@dataclass
class Timeline:
    """Every interval from the first to the last of one or more reports, in
    order; ``rows[k][i]`` is report k's row for ``starts[i]`` (``None`` where
    that report has none: nothing happened then)."""

    starts: list[float]
    step: float
    rows: list[list[dict[str, Any] | None]]
    #: per report and interval, the share of the interval the replay covered
    #: (below 1 for a first or last interval cut by the replay's start or
    #: end): the report's averages (staffed, busy, queue length) are over
    #: whole intervals, so a cut one is scaled back up
    covered: list[list[float]] | None = None

    @classmethod
    def of(cls, reports: Sequence[dict[str, Any]], step: float | None = None) -> "Timeline":
        by_start = [{row["start"]: row for row in rep.get("intervals") or ()} for rep in reports]
        all_starts = sorted(set().union(*by_start)) if by_start else []
        if step is None:
            diffs = [b - a for a, b in zip(all_starts, all_starts[1:]) if b > a]
            step = min(diffs) if diffs else 900.0
        starts: list[float] = []
        if all_starts:
            t, end = all_starts[0], all_starts[-1]
            n = int(round((end - t) / step))
            if n <= 100_000 and all(abs((s - t) / step - round((s - t) / step)) < 1e-6 for s in all_starts):
                starts = [t + i * step for i in range(n + 1)]
            else:  # irregular starts: keep them as they are
                starts = all_starts
        covered = []
        for rep in reports:
            meta = rep.get("replay") or {}
            a, b = meta.get("start"), meta.get("end")
            fr = []
            for t in starts:
                lo = max(t, a) if a is not None else t
                hi = min(t + step, b) if b is not None else t + step
                fr.append(min(1.0, max(0.0, (hi - lo) / step)))
            covered.append(fr)
        return cls(starts, step, [[d.get(t) for t in starts] for d in by_start], covered)

    def _scale(self, k: int, i: int) -> float:
        f = self.covered[k][i] if self.covered else 1.0
        return 1.0 / f if 0.0 < f < 1.0 else 1.0

    # per queue -----------------------------------------------------------------

    def queue(self, k: int, queue: str | None, key: str) -> list[float | None]:
        """A queue's (``None``: the total's) figure per interval.  Counts and
        queue lengths are 0 where nothing happened; ratios are ``None`` where
        they are undefined (SL with nothing offered, ASA with nothing
        answered), so charts break the line instead of drawing a false 0."""
        out: list[float | None] = []
        for i, row in enumerate(self.rows[k]):
            fig = None if row is None else (row["total"] if queue is None else row["queues"].get(queue))
            if fig is None:
                out.append(None if key in _RATIOS else 0)
                continue
            if key in ("service_level", "abandon_rate", "p_wait") and not fig.get("offered"):
                out.append(None)
            elif key == "asa" and not fig.get("answered"):
                out.append(None)
            elif key == "avg_queue_len":
                out.append(round(fig.get(key, 0) * self._scale(k, i), 4))
            else:
                out.append(fig.get(key, 0))
        return out

    # per agent group (or site) -----------------------------------------------------

    def groups(self, k: int, members: Iterable[str]) -> tuple[list[float], list[float], list[float | None]]:
        """Average agents staffed and busy, and occupancy, per interval, over
        the agent groups ``members``."""
        members = list(members)
        staffed, busy, occ = [], [], []
        for i, row in enumerate(self.rows[k]):
            s = b = 0.0
            if row is not None:
                g = row.get("groups") or {}
                for m in members:
                    fig = g.get(m)
                    if fig:
                        s += fig.get("staffed", 0.0)
                        b += fig.get("busy", 0.0)
            scale = self._scale(k, i)
            staffed.append(round(s * scale, 2))
            busy.append(round(b * scale, 2))
            occ.append(round(b / s, 4) if s > 0 else None)
        return staffed, busy, occ


_RATIOS = {"service_level", "asa", "abandon_rate", "p_wait", "occupancy", "aht"}


def group_sets(groups: Iterable[str], group_by: GroupBy) -> dict[str, list[str]]:
    """``{site: [groups]}`` in first-seen order; one set per group without
    ``group_by``."""
    out: dict[str, list[str]] = {}
    for g in groups:
        if group_by is None:
            key = g
        elif callable(group_by):
            key = group_by(g)
        else:
            key = group_by.get(g, g)
        out.setdefault(str(key), []).append(g)
    return out


def sites_from_spec(spec: Any, attribute: str = "site") -> dict[str, str] | None:
    """``{group: site}`` from the agent groups' ``site`` (the field, where
    the config has one) or their ``attributes`` (``site: manila``); None if
    no group names a site."""
    groups = getattr(spec, "agents", None) or []

    def site_of(g: Any) -> Any:
        field_value = getattr(g, attribute, None) if attribute == "site" else None
        return field_value if field_value is not None else (g.attributes or {}).get(attribute)

    if not any(site_of(g) is not None for g in groups):
        return None
    return {g.group: str(site_of(g)) if site_of(g) is not None else f"(no {attribute})" for g in groups}


def sl_marker(edges: Sequence[float], threshold: float) -> float | None:
    """Where the threshold falls on a histogram's category axis."""
    for i, a in enumerate(edges):
        b = edges[i + 1] if i + 1 < len(edges) else None
        if b is None:
            return float(i) if threshold == a else None
        if a <= threshold < b:
            return i + (threshold - a) / (b - a)
    return None


def group_title(key: str, members: Sequence[str]) -> str:
    """A staffing chart's title: the group, or the site and its groups."""
    if list(members) == [key]:
        return key
    listed = f"{key} ({', '.join(members)})"
    return listed if len(listed) <= 48 else f"{key} ({len(members)} agent groups)"


def bin_labels(edges: Sequence[float]) -> list[str]:
    out = []
    for i, a in enumerate(edges):
        b = edges[i + 1] if i + 1 < len(edges) else None
        out.append(f"{a:g}\u2013{b:g}" if b is not None else f"{a:g}+")
    return out


# -- formatting ---------------------------------------------------------------------------


def pct(v: float | None, digits: int = 1) -> str:
    return "\u2013" if v is None else f"{v * 100:.{digits}f}%"


def num(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "\u2013"
    return f"{v:,.{digits}f}" if digits else f"{v:,.0f}"


def target_text(fig: dict[str, Any]) -> str:
    return f"{fig['sl_target'] * 100:g}% in {fig['sl_threshold']:g} s"


def sl_cell(fig: dict[str, Any]) -> str:
    """The SL ``<td>``: green when the target is met, red when missed, with
    a mark that survives grayscale printing."""
    if "sl_target" not in fig:
        return f'<td class="sl">{pct(fig.get("service_level"))}</td>'
    if not fig.get("offered"):
        return '<td class="sl">\u2013</td>'
    met = fig.get("sl_met", fig["service_level"] >= fig["sl_target"])
    cls, mark = ("met", "\u2713") if met else ("missed", "\u2717")
    return (f'<td class="sl {cls}" title="target {escape(target_text(fig))}">'
            f'{pct(fig["service_level"])} <span class="mark">{mark}</span></td>')


def intervals_below(tl: Timeline, k: int, queue: str, target: float) -> tuple[int, int]:
    """(intervals below the SL target, intervals with contacts offered)."""
    sl = tl.queue(k, queue, "service_level")
    counted = [v for v in sl if v is not None]
    return sum(1 for v in counted if v < target - 1e-12), len(counted)


# -- the page -------------------------------------------------------------------------------

CSS = """
:root{--ink:#1c1c1e;--muted:#5f6368;--line:#d5d7db;--ok:#dff1e3;--okink:#17612a;--bad:#fbe0da;--badink:#9c2410}
*{box-sizing:border-box}
html{background:#eef0f3}
body{margin:0;color:var(--ink);font:14px/1.45 "DejaVu Sans",Helvetica,Arial,sans-serif}
main{max-width:1420px;margin:0 auto;padding:26px 32px 36px;background:#fff}
header{border-bottom:3px solid var(--ink);padding-bottom:10px;margin-bottom:6px}
h1{font-size:23px;margin:0 0 6px;letter-spacing:-.2px}
.meta{color:var(--muted);font-size:13px;margin:2px 0}
.meta b{color:var(--ink);font-weight:600}
h2{font-size:17px;margin:30px 0 4px;padding-bottom:3px;border-bottom:1px solid var(--ink)}
h2 + .note{margin-top:2px}
.note{color:var(--muted);font-size:12.5px;margin:4px 0 12px;max-width:1100px}
.tiles{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 4px}
.tile{border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:128px}
.tile .v{font-size:24px;font-weight:600;font-variant-numeric:tabular-nums;line-height:1.2}
.tile .k{font-size:11.5px;color:var(--muted);text-transform:uppercase;letter-spacing:.4px}
.tile.met{background:var(--ok);border-color:#9fd1ab}.tile.missed{background:var(--bad);border-color:#eba699}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px;margin:8px 0 4px}
th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child,th.l,td.l{text-align:left}
thead th{border-bottom:1.5px solid var(--ink);font-weight:600;vertical-align:bottom;font-size:12px}
th small{display:block;font-weight:normal;color:var(--muted)}
tr.total td{font-weight:600;border-top:1.5px solid var(--ink);border-bottom:none}
tr.first td{border-top:1.5px solid var(--ink)}
td.met{background:var(--ok);color:var(--okink)}
td.missed{background:var(--bad);color:var(--badink);font-weight:600}
td.sl{min-width:78px}
.mark{font-size:12px}
td.muted,span.muted{color:var(--muted)}
h3{font-size:14px;margin:14px 0 4px}
.pair{display:flex;flex-wrap:wrap;gap:0 48px;align-items:flex-start}
.pair > section{flex:0 1 auto;min-width:0}
.pair > section#highlights{flex:1 1 420px}
ul.hl{margin:10px 0 0;padding-left:18px;font-size:13px;line-height:1.5}
ul.hl li{margin:0 0 5px}
.up{color:var(--okink)}.down{color:var(--badink)}
.grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:16px 22px;margin-top:8px}
.grid.wide{grid-template-columns:minmax(0,1fr)}
figure{margin:0;break-inside:avoid;page-break-inside:avoid}
svg{width:100%;height:auto;display:block}
.hv rect:hover{fill-opacity:.07}
pre{background:#f6f7f9;border:1px solid var(--line);border-radius:4px;padding:10px 12px;font-size:12px;
    line-height:1.35;overflow:auto;white-space:pre}
pre .add{color:#17612a;background:#e6f4e9}pre .del{color:#9c2410;background:#fbe9e5}
footer{margin-top:28px;padding-top:8px;border-top:1px solid var(--line);color:var(--muted);font-size:12px}
@page{size:A4 landscape;margin:9mm}
@media print{
  html{background:#fff}
  body{font-size:11px}
  main{max-width:none;padding:0}
  h2{break-after:avoid;page-break-after:avoid;margin-top:16px}
  .note{font-size:10.5px;break-after:avoid;page-break-after:avoid}
  table{font-size:10.5px}
  .grid{gap:8px 14px}
  td.met,td.missed,.tile,pre .add,pre .del{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  pre{white-space:pre-wrap;font-size:9.5px}
  section.appendix{break-before:page;page-break-before:always}
}
"""


class Page:
    """Accumulates the sections of a report page."""

    def __init__(self, title: str):
        self.title = title
        self.parts: list[str] = []
        self._uid = 0

    def uid(self) -> str:
        self._uid += 1
        return f"c{self._uid}"

    def add(self, html: str) -> None:
        self.parts.append(html)

    def section(self, sid: str, heading: str, note: str | None = None, cls: str = "") -> None:
        c = f' class="{cls}"' if cls else ""
        self.parts.append(f'<section id="{sid}"{c}><h2>{escape(heading)}</h2>')
        if note:
            self.parts.append(f'<p class="note">{note}</p>')

    def end_section(self) -> None:
        self.parts.append("</section>")

    def grid(self, figures: list[str], wide: bool = False) -> None:
        if figures:
            self.parts.append(f'<div class="grid{" wide" if wide else ""}">' + "".join(figures) + "</div>")

    def html(self, footer: str) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<meta name=\"generator\" content=\"acd {escape(__version__)}\">"
                f"<title>{escape(self.title)}</title><style>{CSS}</style></head>\n<body><main>\n"
                + "\n".join(self.parts)
                + f"\n<footer>{footer}</footer>\n</main></body></html>\n")


def figure(svg: str, **data: str) -> str:
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
    return f"<figure{attrs}>{svg}</figure>"


def config_block(text: str) -> str:
    return f"<pre>{escape(text)}</pre>"


# -- the single-replay report -------------------------------------------------------------------


def render_report(report: dict[str, Any], *, title: str, config_text: str | None = None,
                  group_by: GroupBy = None, group_label: str = "group", interval: float | None = None) -> str:
    """The HTML page (a str) for one replay's KPI report.

    ``config_text`` (the routing config's YAML) is shown as an appendix.
    ``group_by`` maps agent groups to the key their staffing is charted by
    (a site, say; default: each group on its own), ``group_label`` names
    that key.  ``interval`` is the KPI interval in s (default: inferred from
    the interval starts, else 900)."""
    page = Page(title)
    tl = Timeline.of([report], interval)
    meta = report.get("replay") or {}
    queues: dict[str, dict[str, Any]] = report.get("queues") or {}
    total = report.get("total") or {}

    page.add(_header(title, meta, tl))
    page.add(_tiles(total, queues))

    # key figures
    page.section("kpi", "Key figures per queue",
                 "Service level = answered within the queue\u2019s threshold / offered; "
                 "\u2713 target met, \u2717 missed. ASA = mean wait of answered contacts. "
                 "Occupancy of a queue is over the agent groups that can serve it.")
    page.add(_kpi_table(report, tl))
    page.end_section()

    groups = report.get("groups") or {}
    sets = group_sets(groups, group_by)
    page.add('<div class="pair">')
    page.section("agents", "Agent groups")
    page.add(_group_table(groups, tl, sets if group_by is not None else None, group_label))
    page.end_section()
    page.section("highlights", "Highlights")
    page.add(_highlights(report, tl))
    page.end_section()
    page.add("</div>")

    if tl.starts:
        _traffic_section(page, tl, queues)
        _sl_section(page, tl, queues)
        _asa_section(page, tl, queues)
        _queue_len_section(page, tl, queues)
        _staffing_section(page, tl, sets, group_label)
        _occupancy_section(page, tl, sets, group_label)
    else:
        page.add('<p class="note">This report has no per-interval figures: no interval charts.</p>')
    _wait_section(page, report)

    if config_text:
        page.section("config", "Routing config", escape(meta.get("config", "")) or None, cls="appendix")
        page.add(config_block(config_text))
        page.end_section()

    return page.html(_footer(meta))


def _header(title: str, meta: dict[str, Any], tl: Timeline) -> str:
    bits = []
    if meta.get("scenario"):
        bits.append(f"scenario <b>{escape(str(meta['scenario']))}</b>")
    if meta.get("config"):
        bits.append(f"config <b>{escape(str(meta['config']))}</b>")
    if "seed" in meta:
        bits.append(f"seed {escape(str(meta['seed']))}")
    line1 = " \u00b7 ".join(bits)
    period = ""
    start = meta.get("start", tl.starts[0] if tl.starts else None)
    end = meta.get("end", (tl.starts[-1] + tl.step) if tl.starts else None)
    if start is not None and end is not None:
        period = period_text(start, end)
    line2 = [period] if period else []
    if meta.get("contacts") is not None:
        line2.append(f"{meta['contacts']:,} contacts")
    if tl.starts:
        line2.append(f"{len(tl.starts):,} intervals of {tl.step / 60:g} min")
    out = f"<header><h1>{escape(title)}</h1>"
    if line1:
        out += f'<p class="meta">{line1}</p>'
    if line2:
        out += "<p class=\"meta\">" + escape(" \u00b7 ".join(line2)) + "</p>"
    return out + "</header>"


def _footer(meta: dict[str, Any]) -> str:
    made = f"Made by acd {escape(__version__)} (acd replay)"
    return (f"{made}. All times UTC. Per-interval figures file each contact under the interval of its "
            "arrival; staffed and busy agents are interval averages. Hover a chart for the values of an interval.")


def _tiles(total: dict[str, Any], queues: dict[str, dict[str, Any]]) -> str:
    met = sum(1 for f in queues.values() if f.get("sl_met"))
    with_traffic = sum(1 for f in queues.values() if f.get("offered"))
    tiles = [
        ("offered", f"{total.get('offered', 0):,}", ""),
        ("answered", f"{total.get('answered', 0):,}", ""),
        ("abandoned", f"{total.get('abandoned', 0):,} ({pct(total.get('abandon_rate'))})", ""),
        ("service level", pct(total.get("service_level")), ""),
        ("ASA", f"{total.get('asa', 0):.1f} s", ""),
        ("occupancy", pct(total.get("occupancy")), ""),
        ("queues on SL target", f"{met} of {with_traffic}", "met" if met == with_traffic else "missed"),
    ]
    return '<div class="tiles">' + "".join(
        f'<div class="tile{" " + c if c else ""}"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for k, v, c in tiles) + "</div>"


_KPI_HEAD = ("<thead><tr><th>queue</th><th>offered</th><th>answered</th><th>abandoned</th><th>aband.</th>"
             "<th>overflowed</th><th>ASA<small>s</small></th><th>P(wait)</th><th>SL</th><th>SL target</th>"
             "<th>intervals<small>below target</small></th><th>max wait<small>s</small></th>"
             "<th>AHT<small>s</small></th><th>occupancy</th></tr></thead>")


def _kpi_row(name: str, fig: dict[str, Any], below: str, cls: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return (f"<tr{c}><td>{escape(name)}</td><td>{fig.get('offered', 0):,}</td><td>{fig.get('answered', 0):,}</td>"
            f"<td>{fig.get('abandoned', 0):,}</td><td>{pct(fig.get('abandon_rate'))}</td>"
            f"<td>{fig.get('overflowed', 0):,}</td><td>{num(fig.get('asa'))}</td><td>{pct(fig.get('p_wait'))}</td>"
            f"{sl_cell(fig)}<td>{escape(target_text(fig)) if 'sl_target' in fig else ''}</td>"
            f"<td>{below}</td><td>{num(fig.get('max_wait'), 0)}</td><td>{num(fig.get('aht'))}</td>"
            f"<td>{pct(fig.get('occupancy'))}</td></tr>")


def _kpi_table(report: dict[str, Any], tl: Timeline) -> str:
    rows = []
    for name, fig in (report.get("queues") or {}).items():
        below = ""
        if "sl_target" in fig and tl.starts:
            b, n = intervals_below(tl, 0, name, fig["sl_target"])
            below = f"{b} of {n}"
        rows.append(_kpi_row(name, fig, below))
    rows.append(_kpi_row("TOTAL", report.get("total") or {}, "", "total"))
    return f'<table class="kpi">{_KPI_HEAD}<tbody>{"".join(rows)}</tbody></table>'


def _hm(t: float, step: float) -> str:
    a = datetime.fromtimestamp(t, timezone.utc)
    b = datetime.fromtimestamp(t + step, timezone.utc)
    return f"{a.strftime('%a %H:%M')}\u2013{b.strftime('%H:%M')}"


def _highlights(report: dict[str, Any], tl: Timeline) -> str:
    """What a planner looks for first, in words: where each queue fell below
    its target and how badly, the peak, the longest wait, the busiest group."""
    items: list[str] = []
    for q, fig in (report.get("queues") or {}).items():
        if "sl_target" not in fig or not tl.starts:
            continue
        sl = tl.queue(0, q, "service_level")
        below = [(v, i) for i, v in enumerate(sl) if v is not None and v < fig["sl_target"] - 1e-12]
        if not below:
            items.append(f"<b>{escape(q)}</b>: on target ({pct(fig['sl_target'], 0)}) in every interval.")
            continue
        worst, i = min(below)
        ab = tl.queue(0, q, "abandoned")[i]
        off = tl.queue(0, q, "offered")[i]
        items.append(f"<b>{escape(q)}</b>: below its {pct(fig['sl_target'], 0)} target in {len(below)} of "
                     f"{sum(1 for v in sl if v is not None)} intervals; worst {escape(_hm(tl.starts[i], tl.step))}: "
                     f"{pct(worst)} of {off:,} offered, {ab:,} abandoned.")
    if tl.starts:
        offered = tl.queue(0, None, "offered")
        i = max(range(len(offered)), key=lambda k: offered[k])
        items.append(f"Peak: <b>{offered[i]:,}</b> contacts offered {escape(_hm(tl.starts[i], tl.step))} "
                     f"({offered[i] * 3600 / tl.step:,.0f} an hour).")
    queues = report.get("queues") or {}
    if queues:
        q, fig = max(queues.items(), key=lambda kv: kv[1].get("max_wait", 0))
        if fig.get("max_wait"):
            items.append(f"Longest wait: <b>{fig['max_wait']:,.0f} s</b> in {escape(q)}.")
    groups = report.get("groups") or {}
    if groups:
        g, fig = max(groups.items(), key=lambda kv: kv[1].get("occupancy", 0))
        lo, lfig = min(groups.items(), key=lambda kv: kv[1].get("occupancy", 0))
        items.append(f"Busiest agents: <b>{escape(g)}</b>, {pct(fig.get('occupancy'))} occupied; "
                     f"least busy: {escape(lo)}, {pct(lfig.get('occupancy'))}.")
    meta = report.get("replay") or {}
    if meta.get("in_system_at_end"):
        items.append(f"<b>{meta['in_system_at_end']:,}</b> contacts were still waiting at the end "
                     "(no agent could take them).")
    rejected = report.get("rejected_inputs") or {}
    if rejected:
        items.append("Rejected inputs: " + escape(", ".join(f"{k} {v}" for k, v in rejected.items())) + ".")
    return '<ul class="hl">' + "".join(f"<li>{it}</li>" for it in items) + "</ul>"


def _group_table(groups: dict[str, dict[str, Any]], tl: Timeline, sets: dict[str, list[str]] | None,
                 group_label: str) -> str:
    head = ("<thead><tr>" + (f"<th>{escape(group_label)}</th>" if sets else "")
            + '<th class="l">agent group</th><th>staffed<small>agent-hours</small></th><th>busy<small>agent-hours</small></th>'
              "<th>occupancy</th><th>peak staffed<small>agents</small></th><th>peak busy<small>agents</small></th>"
              "</tr></thead>")
    order: list[tuple[str | None, str]] = []
    if sets:
        for key, members in sets.items():
            order += [(key, g) for g in members]
    else:
        order = [(None, g) for g in groups]
    rows = []
    tot_s = tot_b = 0.0
    prev: str | None = None
    for key, g in order:
        fig = groups[g]
        staffed, busy, _ = tl.groups(0, [g])
        tot_s += fig.get("staffed_s", 0.0)
        tot_b += fig.get("busy_s", 0.0)
        cls = ' class="first"' if sets and rows and key != prev else ""
        cells = ""
        if sets:
            cells += f"<td>{escape(str(key)) if key != prev else ''}</td>"
        prev = key
        cells += (f'<td class="l">{escape(g)}</td><td>{fig.get("staffed_s", 0) / 3600:,.1f}</td>'
                  f"<td>{fig.get('busy_s', 0) / 3600:,.1f}</td><td>{pct(fig.get('occupancy'))}</td>"
                  f"<td>{max(staffed, default=0):,.1f}</td><td>{max(busy, default=0):,.1f}</td>")
        rows.append(f"<tr{cls}>{cells}</tr>")
    occ = tot_b / tot_s if tot_s else None
    lead = "<td>TOTAL</td><td></td>" if sets else "<td>TOTAL</td>"
    rows.append(f'<tr class="total">{lead}<td>{tot_s / 3600:,.1f}</td><td>{tot_b / 3600:,.1f}</td>'
                f"<td>{pct(occ)}</td><td></td><td></td></tr>")
    return f'<table class="groups">{head}<tbody>{"".join(rows)}</tbody></table>'


# sections ---------------------------------------------------------------------------------------


def _traffic_chart(page: Page, tl: Timeline, queue: str | None, title: str, wide: bool = False) -> str:
    offered = tl.queue(0, queue, "offered")
    answered = tl.queue(0, queue, "answered")
    abandoned = tl.queue(0, queue, "abandoned")
    svg = time_chart(
        tl.starts, tl.step,
        [Series("offered", offered, NEUTRAL, area=True), Series("answered", answered, _ANSWERED),
         Series("abandoned", abandoned, _ABANDONED)],
        title=title, kind="traffic", width=_WIDE_W if wide else _W, height=_WIDE_H if wide else _H, uid=page.uid(),
        attrs={"data-queue": queue or "TOTAL"})
    return figure(svg)


def _traffic_section(page: Page, tl: Timeline, queues: dict[str, Any]) -> None:
    page.section("traffic", "Contacts per interval",
                 f"Offered (grey area), answered and abandoned contacts per {tl.step / 60:g}-minute interval, "
                 "filed under the interval of arrival.")
    page.grid([_traffic_chart(page, tl, None, "All queues", wide=True)], wide=True)
    page.grid([_traffic_chart(page, tl, q, q) for q in queues])
    page.end_section()


def _sl_section(page: Page, tl: Timeline, queues: dict[str, Any]) -> None:
    page.section("service-level", "Service level against target",
                 "Share of offered contacts answered within the threshold, per interval; the dashed line is the "
                 "target, the tinted band below it the intervals that miss. No line where nothing was offered.")
    figs = []
    for q, fig in queues.items():
        target = fig.get("sl_target")
        sl = tl.queue(0, q, "service_level")
        refs = [Ref(target, f"target {target * 100:g}% in {fig.get('sl_threshold', 0):g} s")] if target is not None else []
        bands = [Band(0, target)] if target is not None else []
        svg = time_chart(tl.starts, tl.step, [Series("service level", sl, _ANSWERED)], title=q, kind="service-level",
                         y_format=fmt_pct, value_format=lambda v: f"{v * 100:.1f}%", y_max=1.0, refs=refs,
                         bands=bands, uid=page.uid(), width=_W, height=_H, attrs={"data-queue": q})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _asa_section(page: Page, tl: Timeline, queues: dict[str, Any]) -> None:
    page.section("asa", "Average speed of answer",
                 "Mean wait of the contacts answered in each interval, per queue (seconds).")
    series = [Series(q, tl.queue(0, q, "asa"), STYLES[i % len(STYLES)]) for i, q in enumerate(queues)]
    svg = time_chart(tl.starts, tl.step, series, title="ASA per queue (s)", kind="asa", y_format=_fmt_axis_s,
                     value_format=lambda v: f"{v:.1f} s", width=_WIDE_W, height=_WIDE_H, uid=page.uid())
    page.grid([figure(svg)], wide=True)
    page.end_section()


def _fmt_axis_s(v: float) -> str:
    return f"{v:g}"


def _queue_len_section(page: Page, tl: Timeline, queues: dict[str, Any]) -> None:
    page.section("queue-length", "Queue length",
                 "Contacts waiting: the interval\u2019s time-weighted average (area) and its maximum (dashed).")
    figs = []
    for q in queues:
        svg = time_chart(tl.starts, tl.step,
                         [Series("average waiting", tl.queue(0, q, "avg_queue_len"), _BUSY, area=True),
                          Series("most waiting", tl.queue(0, q, "max_queue_len"), _MAXLEN)],
                         title=q, kind="queue-length", value_format=lambda v: f"{v:.2f}".rstrip("0").rstrip("."),
                         uid=page.uid(), width=_W, height=_H, attrs={"data-queue": q})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _staffing_section(page: Page, tl: Timeline, sets: dict[str, list[str]], group_label: str) -> None:
    page.section("staffing", f"Agents staffed and busy per {group_label}",
                 "Average number of agents logged in and available or busy (line) and of agents busy on a contact "
                 "or in wrap-up (area), per interval.")
    figs = []
    for key, members in sets.items():
        staffed, busy, _ = tl.groups(0, members)
        title = group_title(key, members)
        svg = time_chart(tl.starts, tl.step, [Series("busy", busy, _BUSY, area=True),
                                              Series("staffed", staffed, _STAFFED)],
                         title=title, kind="staffing", value_format=lambda v: f"{v:.1f}", uid=page.uid(),
                         width=_W, height=_H, attrs={"data-group": key})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _occupancy_section(page: Page, tl: Timeline, sets: dict[str, list[str]], group_label: str) -> None:
    page.section("occupancy", f"Agent occupancy per {group_label}",
                 "Busy time / staffed time, per interval. No line where nobody was staffed.")
    series = [Series(key, tl.groups(0, members)[2], STYLES[i % len(STYLES)]) for i, (key, members) in enumerate(sets.items())]
    svg = time_chart(tl.starts, tl.step, series, title=f"Occupancy per {group_label}", kind="occupancy",
                     y_format=fmt_pct, value_format=lambda v: f"{v * 100:.1f}%", y_max=1.0, width=_WIDE_W,
                     height=_WIDE_H, uid=page.uid())
    page.grid([figure(svg)], wide=True)
    page.end_section()


def _wait_section(page: Page, report: dict[str, Any]) -> None:
    hist = report.get("wait_histogram") or {}
    edges = hist.get("edges") or []
    if not edges:
        return
    page.section("waits", "Wait-time distribution",
                 "Contacts per wait band (seconds from arrival to answer or abandon), answered (solid) and "
                 "abandoned (hatched) stacked; the dashed line is the service-level threshold.")
    cats = bin_labels(edges)
    figs = []
    queues = report.get("queues") or {}
    for q, h in (hist.get("queues") or {}).items():
        fig = queues.get(q, {})
        thr = fig.get("sl_threshold")
        pos = sl_marker(edges, thr) if thr is not None else None
        markers = [Marker(pos, f"threshold {thr:g} s")] if pos is not None else []
        n = max(fig.get("offered", 0), 1)
        ans, ab = h.get("answered", []), h.get("abandoned", [])
        stack = [Series("answered", ans, _ANSWERED, labels=[f"{v:,} ({v / n:.1%} of offered)" for v in ans]),
                 Series("abandoned", ab, Style("#D55E00", hatch=True),
                        labels=[f"{v:,} ({v / n:.1%} of offered)" for v in ab])]
        svg = bar_chart(cats, [stack], title=q, kind="waits", markers=markers, x_label="wait (s)", uid=page.uid(),
                        edge_labels=[f"{e:g}" for e in edges],
                        width=_W, height=_H, attrs={"data-queue": q})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


# -- writing -------------------------------------------------------------------------------------------


def write_report(path: str | os.PathLike[str], report: dict[str, Any], *, title: str | None = None,
                 config_path: str | None = None, spec: Any = None, group_by: GroupBy = None,
                 group_label: str | None = None) -> int:
    """Render ``report`` and write it to ``path``; returns the size in bytes.
    With ``spec`` (the loaded routing config) the KPI interval comes from it
    and, if agent groups carry a ``site`` attribute, staffing is charted per
    site.  ``config_path`` names the YAML shown in the appendix (unreadable:
    left out).  Raises OSError if the file cannot be written."""
    meta = report.get("replay") or {}
    if title is None:
        name = meta.get("scenario")
        title = f"Replay report: {os.path.basename(str(name))}" if name else "Replay report"
    config_text = None
    if config_path:
        try:
            with open(config_path, encoding="utf-8") as f:
                config_text = f.read()
        except (OSError, UnicodeDecodeError):
            config_text = None
    if group_by is None and spec is not None:
        group_by = sites_from_spec(spec)
        if group_by is not None and group_label is None:
            group_label = "site"
    interval = getattr(spec, "interval", None) if spec is not None else None
    html = render_report(report, title=title, config_text=config_text, group_by=group_by,
                         group_label=group_label or "group", interval=interval)
    data = html.encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    return len(data)
