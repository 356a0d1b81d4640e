"""Small, dependency-free SVG charts for the HTML reports.

Two kinds of chart, both returned as one SVG string ready to inline in HTML:

* ``time_chart``: per-interval values over a time axis (lines, optionally
  filled to zero), reference lines (a service-level target), shaded bands and
  a hover column per interval whose ``<title>`` lists every series' value
  (browsers show it as a tooltip: no JavaScript).
* ``bar_chart``: categories on the x axis, side-by-side bars per category,
  each bar a stack of segments (a histogram of waits, answered + abandoned).

Made to print: white background, thin dark axes, a colour-blind-safe palette
(Okabe-Ito) in which every series also has its own dash pattern or hatch, so
the charts still read on a grayscale printer.  Compact output: one ``<path>``
per series (gaps in the data break the line), coordinates rounded to 0.1 px.
The root ``<svg>`` carries a ``viewBox``, so CSS can scale it to any width.

Charts mark themselves up for tests and tools: ``data-chart`` on the root,
``data-series`` (name) and ``data-points`` (values drawn) on each series.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from html import escape
from typing import Callable, Iterable, Sequence

__all__ = [
    "Style", "Series", "Ref", "Band", "Marker", "STYLES", "NEUTRAL",
    "time_chart", "bar_chart", "nice_ticks", "time_ticks", "fmt_count", "fmt_pct", "fmt_seconds",
]

FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_INK = "#222"
_AXIS = "#555"
_GRID = "#e3e3e3"
_CHAR_W = 0.58  # average glyph width / font size, for layout estimates


@dataclass(frozen=True)
class Style:
    """How a series is drawn: stroke colour, dash pattern (SVG
    ``stroke-dasharray``, "" for solid), stroke width; areas and bars fill
    with ``color`` at ``fill_opacity``, or hatched when ``hatch``."""

    color: str
    dash: str = ""
    width: float = 1.8
    fill_opacity: float = 0.18
    hatch: bool = False


#: Series styles in order: distinct colour *and* dash pattern each.
STYLES: tuple[Style, ...] = (
    Style("#0072B2"),                      # blue, solid
    Style("#D55E00", "7 3"),               # vermillion, dashed
    Style("#009E73", "2 2.5"),             # green, dotted
    Style("#CC79A7", "9 3 2 3"),           # purple, dash-dot
    Style("#E69F00", "4 2"),               # orange, short dash
    Style("#56B4E9", "12 3"),              # sky, long dash
    Style("#000000", "2 2 6 2"),           # black, dot-dash
    Style("#7F7F7F", "1 3"),               # grey, sparse dots
)
#: Context drawn behind the data (offered volume, say): grey area.
NEUTRAL = Style("#8c8c8c", width=1.0, fill_opacity=0.22)


@dataclass
class Series:
    """One series.  In a ``time_chart`` ``values`` align with the interval
    starts (``None``: no value, the line breaks); in a ``bar_chart`` they
    align with the categories.  ``area`` fills down to zero; ``labels``
    (optional) replace the formatted values in hover texts."""

    name: str
    values: Sequence[float | None]
    style: Style = STYLES[0]
    area: bool = False
    labels: Sequence[str] | None = None
    legend: bool | str = True  # False: not in the legend; a str: the legend's text

    @property
    def legend_name(self) -> str:
        return self.legend if isinstance(self.legend, str) else self.name


@dataclass(frozen=True)
class Ref:
    """A horizontal reference line (a target), dashed, labelled at the right."""

    y: float
    label: str
    color: str = "#222"
    dash: str = "5 3"


@dataclass(frozen=True)
class Band:
    """A shaded horizontal band from ``y0`` to ``y1`` (e.g. below target)."""

    y0: float
    y1: float
    color: str = "#D55E00"
    opacity: float = 0.07
    label: str | None = None


@dataclass(frozen=True)
class Marker:
    """A vertical dashed line in a ``bar_chart`` at a fractional category
    position (0 = left edge of the first category), labelled at the top."""

    x: float
    label: str


# -- number formats -------------------------------------------------------------


def fmt_count(v: float) -> str:
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:,.1f}"


def fmt_pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def fmt_seconds(v: float) -> str:
    if v >= 3600:
        return f"{v / 3600:.1f} h"
    if v >= 600:
        return f"{v / 60:.0f} min"
    return f"{v:.0f} s" if v >= 10 or v == int(v) else f"{v:.1f} s"


def _n(v: float) -> str:
    """A coordinate, 0.1 px precision, shortest text."""
    s = "%.1f" % v
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _text_w(text: str, size: float) -> float:
    return len(text) * size * _CHAR_W


# -- ticks ------------------------------------------------------------------------


def nice_ticks(vmax: float, n: int = 5, vmin: float = 0.0) -> list[float]:
    """Round tick values from ``vmin`` to at least ``vmax``, about ``n`` of them."""
    if not vmax > vmin or not math.isfinite(vmax):
        vmax = vmin + 1.0
    raw = (vmax - vmin) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * mag
        if step >= raw:
            break
    if step < 1 and vmax - vmin >= 2:  # counts: integer ticks when the range allows
        step = 1.0
    top = math.ceil(vmax / step - 1e-9) * step
    k = int(round((top - vmin) / step))
    return [round(vmin + i * step, 10) for i in range(k + 1)]


_TIME_STEPS = (300, 900, 1800, 3600, 2 * 3600, 3 * 3600, 4 * 3600, 6 * 3600, 12 * 3600,
               86400, 2 * 86400, 7 * 86400)


def time_ticks(t0: float, t1: float, width: float, tz: tzinfo = timezone.utc) -> tuple[list[float], list[tuple[str, str]]]:
    """Tick times between ``t0`` and ``t1`` (epoch s) for an axis ``width``
    px wide, and their labels as (time, date) pairs: "09:00" with the date
    under the first tick and wherever the day changes; for multi-day spans,
    midnights labelled "Mon 5 Jan" (or "Mon 5" where space is short)."""
    span = max(t1 - t0, 1.0)
    offset = _utcoffset(tz, t0)
    step = _TIME_STEPS[-1]
    for s in _TIME_STEPS:
        min_px = 50 if s >= 86400 else 56
        if span / s * min_px <= width:
            step = s
            break
    long_days = span / step * 80 <= width
    ticks: list[float] = []
    if step < 86400:
        first = math.ceil((t0 + offset) / step) * step - offset
    else:
        first = math.ceil((t0 + offset) / 86400) * 86400 - offset
    t = first
    while t <= t1 + 1e-6:
        ticks.append(t)
        t += step
    labels: list[tuple[str, str]] = []
    last_day = None
    for t in ticks:
        d = datetime.fromtimestamp(t, tz)
        day = d.strftime("%a ") + str(d.day) + d.strftime(" %b")
        if step >= 86400:
            labels.append((day if long_days else d.strftime("%a ") + str(d.day), ""))
        else:
            labels.append((d.strftime("%H:%M"), day if day != last_day else ""))
        last_day = day
    return ticks, labels


def _utcoffset(tz: tzinfo, t: float) -> float:
    off = datetime.fromtimestamp(t, tz).utcoffset()
    return off.total_seconds() if off else 0.0


def hover_time(t: float, step: float, tz: tzinfo = timezone.utc) -> str:
    a = datetime.fromtimestamp(t, tz)
    b = datetime.fromtimestamp(t + step, tz)
    return a.strftime("%a ") + str(a.day) + a.strftime(" %b %H:%M") + "\u2013" + b.strftime("%H:%M")


# -- the frame both chart kinds share ----------------------------------------------------


@dataclass
class _Frame:
    width: float
    height: float
    title: str
    legend: list[tuple[str, Style, str]]  # name, style, kind: line | area | bar | ref
    uid: str
    kind: str
    extra_attrs: dict[str, str] = field(default_factory=dict)
    left: float = 50.0
    right: float = 14.0
    bottom: float = 38.0
    top: float = 0.0
    parts: list[str] = field(default_factory=list)

    def layout(self) -> None:
        """Place title and legend; sets ``top``."""
        y = 17.0
        self.parts.append(f'<text x="8" y="{_n(y)}" font-size="13.5" font-weight="bold" fill="{_INK}">'
                          f"{escape(self.title)}</text>")
        y += 6
        x = 8.0
        row_y = y + 11
        items: list[str] = []
        for name, st, kind in self.legend:
            w = 24 + _text_w(name, 11) + 14
            if x + w > self.width - 8 and x > 8:
                x = 8.0
                row_y += 16
            items.append(_legend_swatch(x, row_y, st, kind, self.uid))
            items.append(f'<text x="{_n(x + 24)}" y="{_n(row_y + 4)}" font-size="11">{escape(name)}</text>')
            x += w
        if self.legend:
            self.parts.append(f'<g fill="{_INK}">' + "".join(items) + "</g>")
            self.top = row_y + 14
        else:
            self.top = y + 6

    @property
    def plot(self) -> tuple[float, float, float, float]:
        """x0, y0 (top), x1, y1 (bottom) of the plot area."""
        return self.left, self.top, self.width - self.right, self.height - self.bottom

    def y_axis(self, ticks: list[float], fmt: Callable[[float], str], ymin: float, ymax: float) -> Callable[[float], float]:
        x0, y0, x1, y1 = self.plot
        span = (ymax - ymin) or 1.0

        def py(v: float) -> float:
            return y1 - (v - ymin) / span * (y1 - y0)

        grid = []
        labels = []
        for v in ticks:
            y = py(v)
            if v != ymin:
                grid.append(f"M{_n(x0)} {_n(y)}H{_n(x1)}")
            labels.append(f'<text x="{_n(x0 - 5)}" y="{_n(y + 4)}">{escape(fmt(v))}</text>')
        if grid:
            self.parts.append(f'<path d="{"".join(grid)}" stroke="{_GRID}" stroke-width="1" fill="none"/>')
        self.parts.append(f'<g font-size="11" fill="{_AXIS}" text-anchor="end">' + "".join(labels) + "</g>")
        return py

    def axes(self) -> None:
        x0, y0, x1, y1 = self.plot
        self.parts.append(f'<path d="M{_n(x0)} {_n(y0)}V{_n(y1)}H{_n(x1)}" stroke="{_AXIS}" stroke-width="1" fill="none"/>')

    def svg(self) -> str:
        attrs = "".join(f' {k}="{escape(v)}"' for k, v in self.extra_attrs.items())
        return (f'<svg viewBox="0 0 {_n(self.width)} {_n(self.height)}" width="{_n(self.width)}" '
                f'height="{_n(self.height)}" role="img" aria-label="{escape(self.title)}" '
                f'font-family="{FONT}" font-size="11" data-chart="{escape(self.kind)}"{attrs}>'
                f'<rect width="100%" height="100%" fill="#fff"/>' + "".join(self.parts) + "</svg>")


def _legend_swatch(x: float, y: float, st: Style, kind: str, uid: str) -> str:
    if kind in ("area", "bar"):
        fill = f"url(#{uid}h{_hatch_key(st)})" if st.hatch else st.color
        op = "" if st.hatch else f' fill-opacity="{st.fill_opacity if kind == "area" else 0.85}"'
        s = (f'<rect x="{_n(x)}" y="{_n(y - 5)}" width="18" height="10" fill="{fill}"{op} '
             f'stroke="{st.color}" stroke-width="1"/>')
        if kind == "area" and st.width:
            s += _legend_line(x, y - 5, st)
        return s
    if kind == "ref":
        return (f'<path d="M{_n(x)} {_n(y)}h18" stroke="{st.color}" stroke-width="1.2" '
                f'stroke-dasharray="{st.dash}" fill="none"/>')
    return _legend_line(x, y, st)


def _legend_line(x: float, y: float, st: Style) -> str:
    dash = f' stroke-dasharray="{st.dash}"' if st.dash else ""
    return f'<path d="M{_n(x)} {_n(y)}h18" stroke="{st.color}" stroke-width="{_n(max(st.width, 1.6))}"{dash} fill="none"/>'


def _hatch_key(st: Style) -> str:
    return st.color.lstrip("#")


def _hatch_defs(uid: str, styles: Iterable[Style]) -> str:
    seen = {}
    for st in styles:
        if st.hatch:
            seen[_hatch_key(st)] = st
    if not seen:
        return ""
    pats = "".join(
        f'<pattern id="{uid}h{k}" width="5" height="5" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">'
        f'<rect width="5" height="5" fill="#fff"/><path d="M0 0V5" stroke="{st.color}" stroke-width="2.2"/></pattern>'
        for k, st in seen.items())
    return f"<defs>{pats}</defs>"


_uid_counter = 0


def _next_uid() -> str:
    global _uid_counter
    _uid_counter += 1
    return f"g{_uid_counter}"


# -- time charts --------------------------------------------------------------------------


def time_chart(
    starts: Sequence[float],
    step: float,
    series: Sequence[Series],
    *,
    title: str,
    kind: str = "time",
    y_format: Callable[[float], str] = fmt_count,
    value_format: Callable[[float], str] | None = None,
    y_max: float | None = None,
    y_min: float = 0.0,
    refs: Sequence[Ref] = (),
    bands: Sequence[Band] = (),
    width: float = 560,
    height: float = 230,
    hover: bool = True,
    tz: tzinfo = timezone.utc,
    uid: str | None = None,
    attrs: dict[str, str] | None = None,
) -> str:
    """A line chart of per-interval values: interval ``i`` covers
    ``starts[i]`` to ``starts[i] + step`` and its value is drawn at the
    middle.  ``y_max`` fixes the top of the axis (else a round number above
    the data and the reference lines)."""
    uid = uid or _next_uid()
    legend: list[tuple[str, Style, str]] = [(s.legend_name, s.style, "area" if s.area else "line")
                                            for s in series if s.legend]
    legend += [(r.label, Style(r.color, r.dash, 1.2), "ref") for r in refs]
    fr = _Frame(width, height, title, legend, uid, kind, dict(attrs or {}))
    fr.layout()
    x0, y0, x1, y1 = fr.plot
    n = len(starts)
    t0 = starts[0] if n else 0.0
    t1 = (starts[-1] + step) if n else step
    tspan = (t1 - t0) or 1.0
    pw = x1 - x0

    def px(t: float) -> float:
        return x0 + (t - t0) / tspan * pw

    vmax = max([v for s in series for v in s.values if v is not None] + [r.y for r in refs] + [0.0])
    top = y_max if y_max is not None else vmax * 1.06  # headroom: no line on the top edge
    yt = nice_ticks(top, 5 if height >= 200 else 4, y_min)
    if y_max is not None:
        yt = [v for v in yt if v <= y_max + 1e-9]
    ymax = y_max if y_max is not None else yt[-1]
    fmt_v = value_format or y_format
    py = fr.y_axis(yt, y_format, y_min, ymax)

    for b in bands:
        ya, yb = py(min(max(b.y1, y_min), ymax)), py(min(max(b.y0, y_min), ymax))
        fr.parts.append(f'<rect x="{_n(x0)}" y="{_n(ya)}" width="{_n(pw)}" height="{_n(yb - ya)}" '
                        f'fill="{b.color}" fill-opacity="{b.opacity}"/>')

    # time axis: ticks, labels, vertical grid at day boundaries
    ticks, labels = time_ticks(t0, t1, pw, tz)
    tl = []
    tick_path = []
    for t, (a, b) in zip(ticks, labels):
        x = px(t)
        if x < x0 - 0.5 or x > x1 + 0.5:
            continue
        tick_path.append(f"M{_n(x)} {_n(y1)}v4")
        anchor = "middle"
        if x - _text_w(a, 11) / 2 < 2:
            anchor = "start"
        elif x + _text_w(max(a, b, key=len), 11) / 2 > width - 2:
            anchor = "end"
        tl.append(f'<text x="{_n(x)}" y="{_n(y1 + 15)}" text-anchor="{anchor}">{escape(a)}</text>')
        if b:
            tl.append(f'<text x="{_n(x)}" y="{_n(y1 + 28)}" text-anchor="{anchor}" font-size="10" fill="#777">{escape(b)}</text>')
    if tspan > 86400:  # multi-day: a faint line at every midnight
        off = _utcoffset(tz, t0)
        m = math.ceil((t0 + off) / 86400) * 86400 - off
        days = []
        while m < t1:
            if x0 < px(m) < x1:
                days.append(f"M{_n(px(m))} {_n(y0)}V{_n(y1)}")
            m += 86400
        if days:
            fr.parts.append(f'<path d="{"".join(days)}" stroke="{_GRID}" stroke-width="1" fill="none"/>')
    if tick_path:
        fr.parts.append(f'<path d="{"".join(tick_path)}" stroke="{_AXIS}" stroke-width="1" fill="none"/>')
    fr.parts.append(f'<g font-size="11" fill="{_AXIS}">' + "".join(tl) + "</g>")

    # series: areas first (behind), then lines
    mids = [px(t + step / 2) for t in starts]
    base = py(max(y_min, 0.0))
    for s in sorted(series, key=lambda s: not s.area):
        segs = _segments(mids, s.values, py)
        npts = sum(len(seg) for seg in segs)
        st = s.style
        dattr = f' data-series="{escape(s.name)}" data-points="{npts}"'
        if s.area:
            d = "".join(f"M{_n(seg[0][0])} {_n(base)}L" + " ".join(f"{_n(x)} {_n(y)}" for x, y in seg)
                        + f" {_n(seg[-1][0])} {_n(base)}Z" for seg in segs)
            fr.parts.append(f'<path d="{d}" fill="{st.color}" fill-opacity="{st.fill_opacity}" '
                            f'stroke="{st.color}" stroke-width="{_n(st.width)}" stroke-linejoin="round"{dattr}/>')
        else:
            d = "".join(f"M{_n(seg[0][0])} {_n(seg[0][1])}" + ("L" + " ".join(f"{_n(x)} {_n(y)}" for x, y in seg[1:])
                                                              if len(seg) > 1 else "h0.01")
                        for seg in segs)
            dash = f' stroke-dasharray="{st.dash}"' if st.dash else ""
            fr.parts.append(f'<path d="{d}" fill="none" stroke="{st.color}" stroke-width="{_n(st.width)}"{dash} '
                            f'stroke-linejoin="round" stroke-linecap="round"{dattr}/>')

    for r in refs:
        y = py(r.y)
        fr.parts.append(f'<path d="M{_n(x0)} {_n(y)}H{_n(x1)}" stroke="{r.color}" stroke-width="1.2" '
                        f'stroke-dasharray="{r.dash}" fill="none" data-ref="{escape(r.label)}"/>')

    fr.axes()

    if hover and n:
        fr.parts.append(_hover_layer(starts, step, series, fmt_v, tz, x0, y0, pw, y1 - y0, t0, tspan))
    return fr.svg()


def _hover_layer(starts: Sequence[float], step: float, series: Sequence[Series], fmt_v: Callable[[float], str],
                 tz: tzinfo, x: float, y: float, w: float, h: float, t0: float, tspan: float) -> str:
    """One transparent column per interval whose ``<title>`` lists the
    values (a tooltip, no script).  The columns sit in a nested ``<svg>``
    whose user unit is one interval wide and the plot high, so each is just
    ``<rect x="i" width="1" height="1">``.  Intervals where every series is
    0 or missing get no column: nothing to read there."""
    multi_day = tspan > 86400
    cols = []
    for i, t in enumerate(starts):
        vals = [s.values[i] for s in series]
        if not any(vals):
            continue
        lines = []
        for s, v in zip(series, vals):
            if s.labels is not None:
                lines.append(f"{s.name} {s.labels[i]}")
            else:
                lines.append(f"{s.name} {fmt_v(v) if v is not None else chr(0x2013)}")
        d = datetime.fromtimestamp(t, tz)
        when = (d.strftime("%a ") + str(d.day) + d.strftime(" %b %H:%M")) if multi_day else hover_time(t, step, tz)
        text = escape(when + "\n" + "\n".join(lines), quote=False)
        cols.append(f'<rect x="{_n((t - t0) / step)}" width="1" height="1"><title>{text}</title></rect>')
    if not cols:
        return ""
    return (f'<svg class="hv" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(h)}" '
            f'viewBox="0 0 {_n(tspan / step)} 1" preserveAspectRatio="none" fill="#000" fill-opacity="0">'
            + "".join(cols) + "</svg>")


def _segments(xs: Sequence[float], values: Sequence[float | None], py: Callable[[float], float]) -> list[list[tuple[float, float]]]:
    segs: list[list[tuple[float, float]]] = []
    cur: list[tuple[float, float]] | None = None
    for x, v in zip(xs, values):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            cur = None
            continue
        if cur is None:
            cur = []
            segs.append(cur)
        cur.append((x, py(v)))
    return segs


# -- bar charts ------------------------------------------------------------------------------


def bar_chart(
    categories: Sequence[str],
    bars: Sequence[Sequence[Series]],
    *,
    title: str,
    kind: str = "bars",
    y_format: Callable[[float], str] = fmt_count,
    markers: Sequence[Marker] = (),
    legend: Sequence[tuple[str, Style, str]] | None = None,
    x_label: str | None = None,
    edge_labels: Sequence[str] | None = None,
    clip_ratio: float | None = 3.0,
    width: float = 560,
    height: float = 230,
    uid: str | None = None,
    attrs: dict[str, str] | None = None,
) -> str:
    """Bars per category: ``bars[k]`` is the k-th bar of every category
    (side by side), a list of segments stacked bottom-up.  Each segment's
    ``values`` align with ``categories``.  A bar more than ``clip_ratio``
    times the next tallest is cut at the top of the axis (marked, its value
    printed on it) so the others stay readable; None never cuts.
    ``edge_labels`` label the boundaries between categories instead of their
    middles (label i at the left edge of category i): a histogram's axis."""
    uid = uid or _next_uid()
    if legend is None:
        seen: dict[str, tuple[str, Style, str]] = {}
        for stack in bars:
            for s in stack:
                if s.legend and s.legend_name not in seen:
                    seen[s.legend_name] = (s.legend_name, s.style, "bar")
        legend = list(seen.values())
    fr = _Frame(width, height, title, list(legend), uid, kind, dict(attrs or {}))
    if x_label:
        fr.bottom = 42
    fr.parts.append(_hatch_defs(uid, [s.style for stack in bars for s in stack] + [st for _, st, _ in legend]))
    fr.layout()
    x0, y0, x1, y1 = fr.plot
    nc = max(len(categories), 1)
    totals = [sum((s.values[i] or 0) for s in stack) for stack in bars for i in range(len(categories))]
    ranked = sorted(totals, reverse=True)
    # one bar towering over the rest (most waits are 0 s) would flatten the
    # tail the chart is for: cut it at the axis top, mark the cut, print its value
    clip = clip_ratio is not None and len(ranked) > 1 and ranked[1] > 0 and ranked[0] > clip_ratio * ranked[1]
    top = ranked[1] * 1.15 if clip else (ranked[0] if ranked else 0.0) * 1.04
    yt = nice_ticks(top, 5 if height >= 200 else 4)
    ymax = yt[-1]
    py = fr.y_axis(yt, y_format, 0.0, ymax)
    cw = (x1 - x0) / nc
    nb = max(len(bars), 1)
    gap = cw * 0.18
    bw = (cw - gap) / nb
    rects = []
    cuts = []
    for ci, cat in enumerate(categories):
        for bi, stack in enumerate(bars):
            bx = x0 + ci * cw + gap / 2 + bi * bw
            acc = 0.0
            total = 0.0
            for s in stack:
                v = s.values[ci] or 0
                if v <= 0 or acc >= ymax:
                    total += max(v, 0)
                    continue
                total += v
                ya, yb = py(min(acc + v, ymax)), py(acc)
                acc += v
                st = s.style
                fill = f"url(#{uid}h{_hatch_key(st)})" if st.hatch else st.color
                op = "" if st.hatch else ' fill-opacity="0.85"'
                label = s.labels[ci] if s.labels is not None else y_format(v)
                tip = escape(f"{cat}: {s.name} {label}", quote=False)
                rects.append(f'<rect x="{_n(bx)}" y="{_n(ya)}" width="{_n(max(bw - 1, 0.5))}" height="{_n(yb - ya)}" '
                             f'fill="{fill}"{op} stroke="{st.color}" stroke-width="0.8" data-series="{escape(s.name)}">'
                             f"<title>{tip}</title></rect>")
            if total > ymax:
                w = max(bw - 1, 0.5)
                yc = y0 + 14
                cuts.append(f'<path d="M{_n(bx - 1)} {_n(yc + 3)}L{_n(bx + w + 1)} {_n(yc - 3)}V{_n(yc + 1)}'
                            f'L{_n(bx - 1)} {_n(yc + 7)}Z" fill="#fff" data-cut="{_n(total)}"/>')
                cuts.append(f'<text x="{_n(bx + w / 2)}" y="{_n(y0 + 9)}" text-anchor="middle" font-size="10" '
                            f'font-weight="bold" fill="#fff">{escape(y_format(total))}</text>')
    fr.parts.append("<g>" + "".join(rects) + "</g>" + "".join(cuts))
    # category labels
    if edge_labels is not None:
        # a histogram's axis: the bin edges at the bin boundaries
        cl = [f'<text x="{_n(x0 + ci * cw)}" y="{_n(y1 + 15)}">{escape(e)}</text>' for ci, e in enumerate(edge_labels)]
        ticks = "".join(f"M{_n(x0 + ci * cw)} {_n(y1)}v4" for ci in range(len(edge_labels)))
        fr.parts.append(f'<path d="{ticks}" stroke="{_AXIS}" stroke-width="1" fill="none"/>')
    else:
        cl = [f'<text x="{_n(x0 + (ci + 0.5) * cw)}" y="{_n(y1 + 15)}">{escape(c)}</text>'
              for ci, c in enumerate(categories)]
    fr.parts.append(f'<g font-size="11" fill="{_AXIS}" text-anchor="middle">' + "".join(cl) + "</g>")
    if x_label:
        fr.parts.append(f'<text x="{_n((x0 + x1) / 2)}" y="{_n(y1 + 31)}" font-size="11" fill="{_AXIS}" '
                        f'text-anchor="middle">{escape(x_label)}</text>')
    for m in markers:
        x = x0 + m.x * cw
        fr.parts.append(f'<path d="M{_n(x)} {_n(y0)}V{_n(y1)}" stroke="{_INK}" stroke-width="1.2" stroke-dasharray="5 3" '
                        f'fill="none" data-ref="{escape(m.label)}"/>')
        anchor = "start" if x + 4 + _text_w(m.label, 11) < x1 else "end"
        dx = 4 if anchor == "start" else -4
        fr.parts.append(f'<text x="{_n(x + dx)}" y="{_n(y0 + 11)}" font-size="11" fill="{_INK}" '
                        f'text-anchor="{anchor}">{escape(m.label)}</text>')
    fr.axes()
    return fr.svg()
