"""``acd compare``: one scenario, several routing configs, side by side.

This is how a user tunes routing rules: change the config (staffing,
escalation steps, strategies, overflow), replay the same traffic with the
same seed, and see what moved.  Each config is replayed in its own worker
process (``concurrent.futures.ProcessPoolExecutor``, a fresh process per run,
so runs share nothing and use several cores); the results come back as KPI
reports and are shown as

* a terminal table of KPI deltas against the first config, per queue and in
  total, and which config meets each queue's service-level target;
* ``--json``: the reports, deltas and target matrix as one JSON object;
* ``--report FILE``: an HTML page with the same tables and the per-interval
  charts of ``acd.report`` overlaid, one series per config, plus each
  config's diff against the first.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import difflib
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from html import escape
from typing import Any, Sequence

from . import __version__
from .report import (
    GroupBy, Page, Timeline, bin_labels, group_title, figure, group_sets, intervals_below, pct, sites_from_spec, sl_marker,
    period_text, target_text, _iso,
)
from .svg import STYLES, Band, Marker, Ref, Series, Style, bar_chart, fmt_pct, time_chart

__all__ = ["Run", "CompareError", "WorkerError", "compare", "deltas", "sl_matrix", "delta_table", "sl_table", "to_json",
           "render_compare", "write_compare", "add_compare_arguments", "run_compare"]

#: (key, heading, kind) of the KPIs compared; kind: count | pct | s
KPIS: tuple[tuple[str, str, str], ...] = (
    ("offered", "offered", "count"),
    ("answered", "answered", "count"),
    ("abandoned", "abandoned", "count"),
    ("abandon_rate", "aband%", "pct"),
    ("asa", "ASA s", "s"),
    ("p_wait", "P(wait)", "pct"),
    ("service_level", "SL", "pct"),
    ("aht", "AHT s", "s"),
    ("occupancy", "occup.", "pct"),
)
#: the KPIs whose delta the terminal table shows next to the value
_DELTA_COLS = ("abandoned", "abandon_rate", "asa", "service_level", "occupancy")
#: which direction is better, for colouring deltas in HTML
_BETTER_UP = {"answered": True, "service_level": True, "abandoned": False, "abandon_rate": False, "asa": False,
              "p_wait": False}


class CompareError(ValueError):
    """Bad input (a config, the scenario, the arguments): one line for the user."""


class WorkerError(RuntimeError):
    """A worker process failed (not the input's fault)."""


@dataclass
class Run:
    """One config's replay of the scenario."""

    label: str
    config: str
    report: dict[str, Any]
    pid: int
    wall_s: float
    interval: float = 900.0
    sites: dict[str, str] | None = None
    config_text: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# -- running --------------------------------------------------------------------------------


def replay_config(config: str, scenario: str, seed: int = 0, answer_delay: float = 0.0) -> dict[str, Any]:
    """Load ``config``, replay ``scenario`` with ``seed``: the worker of
    ``compare`` (module level, so a spawned process can import it).  Returns
    ``{"report", "pid", "wall_s", "interval", "sites"}``, or ``{"error":
    message}`` for bad input, never raises for it."""
    from .config import ConfigError, load_config
    from .replay import Replay
    from .scenario import Scenario, ScenarioError

    t0 = time.perf_counter()
    try:
        spec = load_config(config)
        sc = Scenario(scenario)
        rep = Replay(spec, seed=seed, start=sc.start, answer_delay=answer_delay).run(sc)
    except ConfigError as exc:
        return {"error": _first_line(exc)}
    except ScenarioError as exc:
        return {"error": str(exc)}
    for row in rep.get("intervals", []):
        row["start_iso"] = _iso(row["start"])
    meta = rep["replay"]
    meta.update(scenario=scenario, config=config, seed=seed, start_iso=_iso(meta["start"]), pid=os.getpid())
    return {"report": rep, "pid": os.getpid(), "wall_s": round(time.perf_counter() - t0, 3),
            "interval": spec.interval, "sites": sites_from_spec(spec)}


def _first_line(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or [exc]
    text = str(errors[0]).splitlines()[0] if str(errors[0]) else repr(errors[0])
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more: see acd check)"
    return text


def labels_for(paths: Sequence[str]) -> list[str]:
    """Short names for the configs: the file stem; the path where stems
    clash; ``#2``, ``#3`` for a path given twice."""
    stems = [os.path.splitext(os.path.basename(p))[0] or p for p in paths]
    paths_of: dict[str, set[str]] = {}
    for p, s in zip(paths, stems):
        paths_of.setdefault(s, set()).add(p)
    names = [s if len(paths_of[s]) == 1 else p for p, s in zip(paths, stems)]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def check_inputs(configs: Sequence[str], scenario: str) -> None:
    """Fail fast in the parent, before any process starts: every config
    loads and the scenario's header reads.  Raises CompareError."""
    from .config import ConfigError, load_config
    from .scenario import Scenario, ScenarioError

    if len(configs) < 2:
        raise CompareError(f"compare needs at least two configs, got {len(configs)}")
    for path in configs:
        try:
            load_config(path)
        except ConfigError as exc:
            raise CompareError(_first_line(exc)) from None
    try:
        Scenario(scenario)
    except ScenarioError as exc:
        raise CompareError(str(exc)) from None


def compare(configs: Sequence[str], scenario: str, *, seed: int = 0, answer_delay: float = 0.0,
            jobs: int | None = None) -> list[Run]:
    """Replay ``scenario`` under each config, all with ``seed``, each in its
    own fresh worker process (``jobs`` at a time; default: one per config, at
    most the CPU count).  Returns the runs in the order of ``configs``;
    raises CompareError on bad input, WorkerError if a process dies.

    The workers are spawned (a clean interpreter each), so a script calling
    this needs the usual ``if __name__ == "__main__":`` guard."""
    configs = [os.fspath(c) for c in configs]
    check_inputs(configs, scenario)
    jobs = max(1, jobs if jobs is not None else min(len(configs), os.cpu_count() or 1))
    # spawn + one task per child: every run starts from a clean interpreter
    ctx = multiprocessing.get_context("spawn")
    try:
        with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, max_tasks_per_child=1) as pool:
            futures = [pool.submit(replay_config, c, scenario, seed, answer_delay) for c in configs]
            results = [f.result() for f in futures]
    except cf.process.BrokenProcessPool as exc:
        # e.g. a script calling compare() at import time without the
        # ``if __name__ == "__main__":`` guard multiprocessing needs
        raise WorkerError(f"a replay process died before reporting back ({exc})") from None
    labels = labels_for(configs)
    runs = []
    for label, path, res in zip(labels, configs, results):
        if "error" in res:
            raise CompareError(res["error"])
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            text = ""
        runs.append(Run(label, path, res["report"], res["pid"], res["wall_s"], res["interval"], res["sites"], text))
    return runs


# -- deltas and targets ---------------------------------------------------------------------


def _queue_names(runs: Sequence[Run]) -> list[str]:
    names: dict[str, None] = {}
    for r in runs:
        for q in r.report.get("queues") or {}:
            names.setdefault(q, None)
    return list(names)


def _fig(run: Run, queue: str | None) -> dict[str, Any] | None:
    if queue is None:
        return run.report.get("total")
    return (run.report.get("queues") or {}).get(queue)


def deltas(runs: Sequence[Run]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{label: {queue | "TOTAL": {kpi: value - first config's value}}}``
    for every run after the first (None where a queue is missing)."""
    base = runs[0]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for r in runs[1:]:
        per: dict[str, dict[str, float | None]] = {}
        for q in _queue_names(runs) + [None]:
            a, b = _fig(base, q), _fig(r, q)
            per[q or "TOTAL"] = {k: (None if a is None or b is None else round(b.get(k, 0) - a.get(k, 0), 6))
                                 for k, _, _ in KPIS}
        out[r.label] = per
    return out


def sl_matrix(runs: Sequence[Run]) -> dict[str, dict[str, bool | None]]:
    """``{queue: {label: target met?}}`` (None: the queue is absent or had no
    traffic in that run)."""
    out: dict[str, dict[str, bool | None]] = {}
    for q in _queue_names(runs):
        row: dict[str, bool | None] = {}
        for r in runs:
            fig = _fig(r, q)
            row[r.label] = None if fig is None or not fig.get("offered") else bool(fig.get("sl_met"))
        out[q] = row
    return out


def meets_all(runs: Sequence[Run]) -> list[str]:
    """Labels of the configs that meet every queue's target."""
    m = sl_matrix(runs)
    return [r.label for r in runs if all(row[r.label] is not False for row in m.values())]


def to_json(runs: Sequence[Run], scenario: str, seed: int) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "seed": seed,
        "runs": [{"label": r.label, "config": r.config, "pid": r.pid, "wall_s": r.wall_s, "report": r.report}
                 for r in runs],
        "deltas": deltas(runs),
        "sl_met": sl_matrix(runs),
        "meets_all_targets": meets_all(runs),
    }


# -- the terminal tables ---------------------------------------------------------------------------


def _fmt(kind: str, v: float | None) -> str:
    if v is None:
        return "-"
    if kind == "count":
        return f"{v:,.0f}"
    if kind == "pct":
        return f"{v:.1%}"
    return f"{v:.1f}"


def _fmt_delta(kind: str, d: float | None) -> str:
    if d is None:
        return "-"
    if kind == "count":
        return f"{d:+,.0f}" if d else "0"
    if kind == "pct":
        v = d * 100
        return f"{v:+.1f}" if round(v, 1) else "0"
    return f"{d:+.1f}" if round(d, 1) else "0"


def _render(rows: list[list[str]], seps: Sequence[int] = (), left: int = 2) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    rule = "  ".join("-" * w for w in widths)
    for n, r in enumerate(rows):
        cells = [c.ljust(w) for c, w in zip(r[:left], widths[:left])] + [c.rjust(w) for c, w in zip(r[left:], widths[left:])]
        lines.append("  ".join(cells).rstrip())
        if n == 0 or n in seps:
            lines.append(rule)
    return "\n".join(lines)


def delta_table(runs: Sequence[Run]) -> str:
    """Per queue (then TOTAL), one row per config: the KPIs, and after the
    main ones the change against the first config (percentage points for
    rates)."""
    kinds = {k: kind for k, _, kind in KPIS}
    shown = [(k, h, kind) for k, h, kind in KPIS if k != "answered"]
    head = ["queue", "config"]
    for k, h, _ in shown:
        head.append(h)
        if k in _DELTA_COLS:
            head.append("\u0394")
    head.append("SL target")
    rows = [head]
    seps = []
    base = runs[0]
    for q in _queue_names(runs) + [None]:
        for i, r in enumerate(runs):
            fig = _fig(r, q)
            bfig = _fig(base, q)
            row = [(q or "TOTAL") if i == 0 else "", r.label]
            for k, _, kind in shown:
                row.append(_fmt(kind, None if fig is None else fig.get(k)))
                if k in _DELTA_COLS:
                    if i == 0 or fig is None or bfig is None:
                        row.append("")
                    else:
                        row.append(_fmt_delta(kinds[k], fig.get(k, 0) - bfig.get(k, 0)))
            if fig is not None and "sl_target" in fig:
                mark = "met" if fig.get("sl_met") else ("MISSED" if fig.get("offered") else "-")
                row.append(f"{fig['sl_target']:.0%}/{fig['sl_threshold']:g}s {mark}")
            else:
                row.append("")
            rows.append(row)
        seps.append(len(rows) - 1)
    return _render(rows, seps[:-1])


def sl_table(runs: Sequence[Run]) -> str:
    """Queue x config: the service level and whether it meets the target."""
    m = sl_matrix(runs)
    rows = [["queue", "SL target"] + [r.label for r in runs]]
    for q, row in m.items():
        fig0 = next((_fig(r, q) for r in runs if _fig(r, q)), {})
        cells = [q, f"{fig0['sl_target']:.0%} in {fig0['sl_threshold']:g}s" if "sl_target" in fig0 else ""]
        for r in runs:
            fig = _fig(r, q)
            met = row[r.label]
            cells.append("-" if met is None else f"{fig['service_level']:.1%} {'met' if met else 'MISSED'}")
        rows.append(cells)
    ok = set(meets_all(runs))
    rows.append(["all queues", ""] + ["all met" if r.label in ok else "no" for r in runs])
    return _render(rows, [len(rows) - 2])


def group_table(runs: Sequence[Run]) -> str:
    """Agent-hours staffed and busy and occupancy per config (the cost side)."""
    rows = [["config", "staffed agent-h", "\u0394", "busy agent-h", "occupancy", "\u0394"]]
    b_st = b_occ = None
    for i, r in enumerate(runs):
        groups = r.report.get("groups") or {}
        st = sum(g.get("staffed_s", 0) for g in groups.values()) / 3600
        bu = sum(g.get("busy_s", 0) for g in groups.values()) / 3600
        occ = bu / st if st else 0.0
        if i == 0:
            b_st, b_occ = st, occ
        rows.append([r.label, f"{st:,.1f}", "" if i == 0 else f"{st - b_st:+,.1f}", f"{bu:,.1f}", f"{occ:.1%}",
                     "" if i == 0 else _fmt_delta("pct", occ - b_occ)])
    return _render(rows, left=1)


# -- the HTML page ------------------------------------------------------------------------------------


def _style(i: int) -> Style:
    return STYLES[i % len(STYLES)]


def render_compare(runs: Sequence[Run], *, title: str, scenario: str | None = None, seed: int | None = None,
                   group_by: GroupBy = None, group_label: str = "group") -> str:
    """The HTML page comparing ``runs`` (the first is the baseline)."""
    page = Page(title)
    tl = Timeline.of([r.report for r in runs], runs[0].interval if runs else None)
    meta = runs[0].report.get("replay") or {}
    bits = []
    if scenario:
        bits.append(f"scenario <b>{escape(scenario)}</b>")
    if seed is not None:
        bits.append(f"seed {seed}")
    bits.append(f"{len(runs)} routing configs, each replayed in its own process")
    period = ""
    if meta.get("start") is not None and meta.get("end") is not None:
        period = (f"{period_text(meta['start'], meta['end'])} \u00b7 "
                  f"{meta.get('contacts', 0):,} contacts \u00b7 {len(tl.starts):,} intervals of {tl.step / 60:g} min")
    page.add(f"<header><h1>{escape(title)}</h1>" + '<p class="meta">' + " \u00b7 ".join(bits) + "</p>"
             + (f'<p class="meta">{escape(period)}</p>' if period else "") + "</header>")

    # the configs
    page.section("configs", "Configs compared",
                 f"Deltas are against <b>{escape(runs[0].label)}</b>. Percentage-point changes for rates.")
    rows = []
    base_groups = runs[0].report.get("groups") or {}
    base_st = sum(g.get("staffed_s", 0) for g in base_groups.values())
    for i, r in enumerate(runs):
        groups = r.report.get("groups") or {}
        st = sum(g.get("staffed_s", 0) for g in groups.values())
        bu = sum(g.get("busy_s", 0) for g in groups.values())
        d = "" if i == 0 else f' <span class="muted">({(st - base_st) / 3600:+,.1f})</span>'
        rows.append(f'<tr><td>{_swatch(i)} <b>{escape(r.label)}</b></td><td class="l">{escape(r.config)}</td>'
                    f"<td>{st / 3600:,.1f}{d}</td><td>{bu / 3600:,.1f}</td><td>{pct(bu / st if st else None)}</td>"
                    f"<td>{r.report['total'].get('service_level', 0) * 100:.1f}%</td>"
                    f"<td>{r.pid}</td><td>{r.wall_s:.2f} s</td></tr>")
    page.add('<table class="runs"><thead><tr><th>config</th><th class="l">file</th><th>staffed<small>agent-hours</small></th>'
             '<th>busy<small>agent-hours</small></th><th>occupancy</th><th>SL<small>all queues</small></th>'
             '<th>process<small>pid</small></th><th>replay<small>wall time</small></th></tr></thead><tbody>'
             + "".join(rows) + "</tbody></table>")
    page.end_section()

    page.section("targets", "Which config meets each queue\u2019s service-level target",
                 "Service level over the whole run; \u2713 target met, \u2717 missed; in brackets the intervals "
                 "below target.")
    page.add(_html_sl_matrix(runs, tl))
    page.end_section()

    page.section("kpi", "KPIs side by side",
                 f"Each config\u2019s figures, and the change against {escape(runs[0].label)} "
                 "(green: better for the customer, red: worse).")
    page.add(_html_delta_table(runs))
    page.end_section()

    queues = _queue_names(runs)
    _cmp_time_section(page, tl, runs, queues, "service-level", "Service level against target", "service_level",
                      "Per interval, one line per config; dashed: the target.", pct_axis=True)
    _cmp_time_section(page, tl, runs, queues, "abandoned", "Abandoned contacts per interval", "abandoned",
                      "Contacts that hung up before being connected, per interval.")
    _cmp_time_section(page, tl, runs, queues, "asa", "Average speed of answer", "asa",
                      "Mean wait of answered contacts per interval (s).", value_format=lambda v: f"{v:.1f} s")
    _cmp_time_section(page, tl, runs, queues, "queue-length", "Average queue length", "avg_queue_len",
                      "Time-weighted average number of contacts waiting, per interval.",
                      value_format=lambda v: f"{v:.2f}")

    groups: dict[str, None] = {}
    for r in runs:
        for g in r.report.get("groups") or {}:
            groups.setdefault(g, None)
    if group_by is None and runs[0].sites:
        group_by, group_label = runs[0].sites, "site"
    sets = group_sets(groups, group_by)
    _cmp_staffing(page, tl, runs, sets, group_label)
    _cmp_occupancy(page, tl, runs, sets, group_label)
    _cmp_waits(page, runs)

    page.section("config-diffs", "The configs", "Each config as a diff against the first.", cls="appendix")
    page.add(f"<h3>{escape(runs[0].label)} <small class=\"muted\">{escape(runs[0].config)}</small></h3>"
             f"<pre>{escape(runs[0].config_text)}</pre>")
    for r in runs[1:]:
        page.add(f"<h3>{escape(r.label)} <small class=\"muted\">{escape(r.config)}</small></h3>"
                 + _html_diff(runs[0], r))
    page.end_section()

    footer = (f"Made by acd {escape(__version__)} (acd compare). Same scenario and seed for every config; "
              "all times UTC. Hover a chart for the values of an interval.")
    return page.html(footer)


def _swatch(i: int) -> str:
    st = _style(i)
    dash = f' stroke-dasharray="{st.dash}"' if st.dash else ""
    return (f'<svg width="26" height="10" viewBox="0 0 26 10" style="display:inline;width:26px;vertical-align:middle">'
            f'<path d="M1 5h24" stroke="{st.color}" stroke-width="2.2"{dash}/></svg>')


def _html_sl_matrix(runs: Sequence[Run], tl: Timeline) -> str:
    m = sl_matrix(runs)
    head = '<thead><tr><th>queue</th><th class="l">target</th>' + "".join(
        f"<th>{_swatch(i)}<br>{escape(r.label)}</th>" for i, r in enumerate(runs)) + "</tr></thead>"
    rows = []
    for q, row in m.items():
        fig0 = next((_fig(r, q) for r in runs if _fig(r, q)), {})
        cells = [f"<td>{escape(q)}</td><td class=\"l\">{escape(target_text(fig0)) if 'sl_target' in fig0 else ''}</td>"]
        for k, r in enumerate(runs):
            fig = _fig(r, q)
            met = row[r.label]
            if met is None or fig is None:
                cells.append("<td>\u2013</td>")
                continue
            b, n = intervals_below(tl, k, q, fig["sl_target"])
            cls, mark = ("met", "\u2713") if met else ("missed", "\u2717")
            cells.append(f'<td class="sl {cls}">{fig["service_level"] * 100:.1f}% <span class="mark">{mark}</span> '
                         f'<span class="muted">({b}/{n})</span></td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ok = set(meets_all(runs))
    rows.append('<tr class="total"><td>all queues</td><td></td>' + "".join(
        f'<td class="sl {"met" if r.label in ok else "missed"}">{"all met" if r.label in ok else "no"}</td>'
        for r in runs) + "</tr>")
    return f'<table class="slm">{head}<tbody>{"".join(rows)}</tbody></table>'


def _html_delta_table(runs: Sequence[Run]) -> str:
    head = '<thead><tr><th>queue</th><th class="l">config</th>' + "".join(f"<th>{escape(h)}</th>" for _, h, _ in KPIS) + "</tr></thead>"
    rows = []
    base = runs[0]
    for q in _queue_names(runs) + [None]:
        for i, r in enumerate(runs):
            fig, bfig = _fig(r, q), _fig(base, q)
            cls = ' class="first"' if i == 0 and rows else (' class="total"' if q is None and i == 0 else "")
            cells = [f"<td>{escape(q or 'TOTAL') if i == 0 else ''}</td><td class=\"l\">{_swatch(i)} {escape(r.label)}</td>"]
            for k, _, kind in KPIS:
                if fig is None:
                    cells.append("<td>\u2013</td>")
                    continue
                v = fig.get(k)
                text = _fmt(kind, v)
                if k == "service_level" and "sl_target" in fig and fig.get("offered"):
                    mark = "\u2713" if fig.get("sl_met") else "\u2717"
                    text += f" {mark}"
                cell_cls = ""
                if k == "service_level" and "sl_target" in fig and fig.get("offered"):
                    cell_cls = ' class="sl met"' if fig.get("sl_met") else ' class="sl missed"'
                if i > 0 and bfig is not None:
                    d = v - bfig.get(k, 0)
                    dt = _fmt_delta(kind, d)
                    if dt not in ("0", "-"):
                        better = _BETTER_UP.get(k)
                        dc = "" if better is None else ("up" if (d > 0) == better else "down")
                        unit = "pp" if kind == "pct" else ""
                        text += f' <small class="{dc}">{dt}{unit}</small>'
                cells.append(f"<td{cell_cls}>{text}</td>")
            rows.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f'<table class="deltas">{head}<tbody>{"".join(rows)}</tbody></table>'


def _html_diff(a: Run, b: Run) -> str:
    lines = list(difflib.unified_diff(a.config_text.splitlines(), b.config_text.splitlines(), a.config, b.config,
                                      n=2, lineterm=""))
    if not lines:
        return '<p class="note">Identical to the first config.</p>'
    out = []
    for ln in lines:
        e = escape(ln)
        if ln.startswith("+") and not ln.startswith("+++"):
            out.append(f'<span class="add">{e}</span>')
        elif ln.startswith("-") and not ln.startswith("---"):
            out.append(f'<span class="del">{e}</span>')
        else:
            out.append(e)
    return "<pre>" + "\n".join(out) + "</pre>"


def _cmp_time_section(page: Page, tl: Timeline, runs: Sequence[Run], queues: list[str], sid: str, heading: str,
                      key: str, note: str, pct_axis: bool = False, value_format=None) -> None:
    page.section(sid, heading, note)
    figs = []
    for q in queues:
        series = [Series(r.label, tl.queue(k, q, key), _style(k)) for k, r in enumerate(runs)]
        refs, bands = [], []
        fig0 = next((_fig(r, q) for r in runs if _fig(r, q)), {})
        if pct_axis and "sl_target" in fig0:
            refs = [Ref(fig0["sl_target"], f"target {fig0['sl_target'] * 100:g}% in {fig0['sl_threshold']:g} s")]
            bands = [Band(0, fig0["sl_target"])]
        svg = time_chart(tl.starts, tl.step, series, title=q, kind=sid, uid=page.uid(),
                         y_format=fmt_pct if pct_axis else (lambda v: f"{v:g}"),
                         value_format=(lambda v: f"{v * 100:.1f}%") if pct_axis else value_format,
                         y_max=1.0 if pct_axis else None, refs=refs, bands=bands, attrs={"data-queue": q})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _cmp_staffing(page: Page, tl: Timeline, runs: Sequence[Run], sets: dict[str, list[str]], group_label: str) -> None:
    page.section("staffing", f"Agents staffed and busy per {group_label}",
                 "Per config: agents busy (line) and staffed (thin dotted line in the config\u2019s colour), "
                 "interval averages.")
    figs = []
    for key, members in sets.items():
        series = []
        for k, r in enumerate(runs):
            staffed, busy, _ = tl.groups(k, members)
            st = _style(k)
            series.append(Series(f"{r.label} busy", busy, st, legend=r.label))
            series.append(Series(f"{r.label} staffed", staffed, Style(st.color, "1.5 2.5", 1.1), legend=False))
        title = group_title(key, members)
        svg = time_chart(tl.starts, tl.step, series, title=title, kind="staffing", uid=page.uid(),
                         value_format=lambda v: f"{v:.1f}", attrs={"data-group": key})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _cmp_occupancy(page: Page, tl: Timeline, runs: Sequence[Run], sets: dict[str, list[str]], group_label: str) -> None:
    page.section("occupancy", f"Agent occupancy per {group_label}", "Busy time / staffed time per interval.")
    figs = []
    for key, members in sets.items():
        series = [Series(r.label, tl.groups(k, members)[2], _style(k)) for k, r in enumerate(runs)]
        svg = time_chart(tl.starts, tl.step, series, title=key, kind="occupancy", uid=page.uid(), y_format=fmt_pct,
                         value_format=lambda v: f"{v * 100:.1f}%", y_max=1.0, attrs={"data-group": key})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def _cmp_waits(page: Page, runs: Sequence[Run]) -> None:
    hist0 = runs[0].report.get("wait_histogram") or {}
    edges = hist0.get("edges") or []
    if not edges:
        return
    page.section("waits", "Wait-time distribution",
                 "Contacts per wait band, one bar per config: answered (solid) and abandoned (hatched) stacked; "
                 "dashed: the service-level threshold.")
    cats = bin_labels(edges)
    figs = []
    for q in _queue_names(runs):
        bars = []
        for k, r in enumerate(runs):
            h = ((r.report.get("wait_histogram") or {}).get("queues") or {}).get(q) or {}
            st = _style(k)
            zeros = [0] * len(edges)
            bars.append([Series(f"{r.label} answered", h.get("answered", zeros), Style(st.color)),
                         Series(f"{r.label} abandoned", h.get("abandoned", zeros), Style(st.color, hatch=True))])
        legend = [(r.label, Style(_style(k).color), "bar") for k, r in enumerate(runs)]
        legend.append(("abandoned", Style("#555555", hatch=True), "bar"))
        fig0 = next((_fig(r, q) for r in runs if _fig(r, q)), {})
        thr = fig0.get("sl_threshold")
        pos = sl_marker(edges, thr) if thr is not None else None
        markers = [Marker(pos, f"threshold {thr:g} s")] if pos is not None else []
        svg = bar_chart(cats, bars, title=q, kind="waits", legend=legend, markers=markers, x_label="wait (s)",
                        edge_labels=[f"{e:g}" for e in edges],
                        uid=page.uid(), attrs={"data-queue": q})
        figs.append(figure(svg))
    page.grid(figs)
    page.end_section()


def write_compare(path: str, runs: Sequence[Run], *, scenario: str, seed: int, title: str | None = None) -> int:
    """Write the HTML comparison to ``path``; returns its size in bytes."""
    title = title or f"Routing configs compared: {os.path.basename(scenario)}"
    data = render_compare(runs, title=title, scenario=scenario, seed=seed).encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# -- CLI glue -----------------------------------------------------------------------------------------------


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``acd compare``."""
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="routing configs; the first is the baseline")
    parser.add_argument("--scenario", "-s", required=True, metavar="S", help="the scenario to replay under each")
    parser.add_argument("--report", metavar="FILE", help="also write an HTML report with the charts overlaid")
    parser.add_argument("--json", action="store_true", help="print the reports, deltas and targets as one JSON object")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy, the same for every run (default 0)")
    parser.add_argument("--answer-delay", type=float, default=0.0, metavar="S",
                        help="seconds agents take to answer an offer (default 0)")
    parser.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                        help="processes at a time (default: one per config, at most the CPU count)")


def run_compare(args: argparse.Namespace) -> int:
    """``acd compare``: 0 done, 1 the report cannot be written, 2 bad input."""
    import json

    if args.answer_delay < 0:
        return _fail(f"--answer-delay: expected a number >= 0, got {args.answer_delay:g}")
    if args.jobs is not None and args.jobs < 1:
        return _fail(f"--jobs: expected an integer >= 1, got {args.jobs}")
    if args.report:
        where = os.path.dirname(os.path.abspath(args.report))
        if not os.path.isdir(where):  # say so now, not after the replays
            return _fail(f"{args.report}: No such directory {where}", 1)
    t0 = time.perf_counter()
    try:
        runs = compare(args.configs, args.scenario, seed=args.seed, answer_delay=args.answer_delay, jobs=args.jobs)
    except CompareError as exc:
        return _fail(str(exc))
    except WorkerError as exc:
        return _fail(str(exc), 1)
    wall = time.perf_counter() - t0
    if args.report:
        try:
            write_compare(args.report, runs, scenario=args.scenario, seed=args.seed)
        except OSError as exc:
            return _fail(f"{args.report}: {exc.strerror or exc}", 1)
    if args.json:
        sys.stdout.write(json.dumps(to_json(runs, args.scenario, args.seed), separators=(",", ":")) + "\n")
        return 0
    meta = runs[0].report["replay"]
    print(f"acd compare: {args.scenario} (seed {args.seed}), {len(runs)} configs, "
          f"{len({r.pid for r in runs})} processes, {wall:.2f} s")
    print(f"{meta['contacts']:,} contacts from {meta['start_iso']} to {_iso(meta['end'])}; "
          f"deltas against {runs[0].label} (percentage points for rates)")
    print()
    print(delta_table(runs))
    print()
    print("service-level target")
    print(sl_table(runs))
    print()
    print(group_table(runs))
    ok = meets_all(runs)
    print()
    print("meets every queue's target: " + (", ".join(ok) if ok else "none of them"))
    if args.report:
        print(f"report: {args.report}")
    return 0


def _fail(message: str, code: int = 2) -> int:
    print(f"acd: {message}", file=sys.stderr)
    return code
