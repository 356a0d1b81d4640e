"""Recorded KPIs of an imported log, and the recorded-vs-replayed comparison.

The recorded figures use the replay's definitions (README, "KPI
definitions") over the same contacts, so the two columns compare like for
like:

* offered: contacts of the scenario (calls that reached the ACD queue, or an
  agent straight from the IVR);
* answered / abandoned: outcome AGENT / HANG;
* abandon rate: abandoned / offered;
* ASA: mean queue wait of answered contacts (0 for those answered straight
  from the IVR);
* P(wait): share of offered contacts whose wait was above 0 s;
* talk: mean service time of answered contacts (the replay's ``avg_talk``).

Figures are kept as sums (``offered``, ``answered``, ``abandoned``,
``waited``, ``wait_answered_s``, ``talk_s``) so hours and days add up; the
ratios are derived when shown.  Hours are filed by the contact's acd arrival,
like the replay's interval rows.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .records import SERVED, Call
from ..tables import render_rows as _render

SUMS = ("offered", "answered", "abandoned", "waited", "wait_answered_s", "talk_s")
HOUR = 3600


def _new() -> dict[str, float]:
    return dict.fromkeys(SUMS, 0)


def _add(acc: dict[str, float], c: Call) -> None:
    acc["offered"] += 1
    if c.wait > 0:
        acc["waited"] += 1
    if c.outcome == SERVED:
        acc["answered"] += 1
        acc["wait_answered_s"] += c.wait
        acc["talk_s"] += c.handle
    else:
        acc["abandoned"] += 1


def recorded_kpis(calls: list[Call]) -> dict[str, Any]:
    """``{"total": sums, "queues": {type: sums}, "hours": {epoch_hour_start:
    {"total": sums, "queues": {type: sums}}}}`` of the recorded contacts
    (``hours`` keys are strings in JSON; ``figures`` turns sums into KPIs)."""
    total = _new()
    queues: dict[str, dict[str, float]] = defaultdict(_new)
    hours: dict[int, dict[str, Any]] = {}
    for c in calls:
        _add(total, c)
        _add(queues[c.type], c)
        h = int(c.arrival // HOUR) * HOUR
        row = hours.get(h)
        if row is None:
            row = hours[h] = {"total": _new(), "queues": defaultdict(_new)}
        _add(row["total"], c)
        _add(row["queues"][c.type], c)
    return {
        "interval": HOUR,
        "total": _clean(total),
        "queues": {t: _clean(v) for t, v in sorted(queues.items(), key=lambda kv: -kv[1]["offered"])},
        "hours": {str(h): {"total": _clean(r["total"]),
                           "queues": {t: _clean(v) for t, v in sorted(r["queues"].items())}}
                  for h, r in sorted(hours.items())},
    }


def _clean(acc: dict[str, float]) -> dict[str, float]:
    return {k: (int(v) if float(v).is_integer() else round(v, 3)) for k, v in acc.items()}


def figures(s: dict[str, float]) -> dict[str, Any]:
    """KPIs from sums: offered, answered, abandoned, abandon_rate, asa,
    p_wait, talk."""
    off, ans = s.get("offered", 0), s.get("answered", 0)
    return {
        "offered": int(off),
        "answered": int(ans),
        "abandoned": int(s.get("abandoned", 0)),
        "abandon_rate": _r(s.get("abandoned", 0), off),
        "asa": _r(s.get("wait_answered_s", 0), ans),
        "p_wait": _r(s.get("waited", 0), off),
        "talk": _r(s.get("talk_s", 0), ans),
    }


def _r(a: float, b: float) -> float:
    return round(a / b, 6) if b else 0.0


# --- the replay's side ----------------------------------------------------


def _sums_of(fig: dict[str, Any]) -> dict[str, float]:
    """Sums back from a replay report's figures (ratios are rounded to 1e-6,
    plenty for a comparison)."""
    off, ans = fig.get("offered", 0), fig.get("answered", 0)
    return {
        "offered": off,
        "answered": ans,
        "abandoned": fig.get("abandoned", 0),
        "waited": round(fig.get("p_wait", 0.0) * off),
        "wait_answered_s": fig.get("asa", 0.0) * ans,
        "talk_s": fig.get("avg_talk", 0.0) * fig.get("completed", ans),
    }


def replay_sums(report: dict[str, Any]) -> dict[str, Any]:
    """The replay report in the recorded shape (hours from its interval rows,
    which must divide an hour; else ``hours`` is empty)."""
    out: dict[str, Any] = {
        "total": _sums_of(report["total"]),
        "queues": {q: _sums_of(f) for q, f in report.get("queues", {}).items()},
        "hours": {},
    }
    rows = report.get("intervals") or []
    if rows:
        starts = [r["start"] for r in rows]
        steps = {b - a for a, b in zip(starts, starts[1:])}
        step = min(steps) if steps else HOUR
        if HOUR % step == 0 or not steps:
            hours: dict[str, Any] = {}
            for r in rows:
                h = str(int(r["start"] // HOUR) * HOUR)
                row = hours.setdefault(h, {"total": _new(), "queues": defaultdict(_new)})
                for k, v in _sums_of(r["total"]).items():
                    row["total"][k] += v
                for q, f in r.get("queues", {}).items():
                    for k, v in _sums_of(f).items():
                        row["queues"][q][k] += v
            out["hours"] = hours
    return out


# --- the comparison -------------------------------------------------------


def _pair(rec: dict[str, float] | None, rep: dict[str, float] | None) -> dict[str, Any]:
    a = figures(rec or {})
    b = figures(rep or {})
    return {
        "recorded": a,
        "replayed": b,
        "abandon_rate_diff_pp": round(100 * (b["abandon_rate"] - a["abandon_rate"]), 2),
        "asa_ratio": round(b["asa"] / a["asa"], 4) if a["asa"] else None,
    }


def comparison(report: dict[str, Any], recorded: dict[str, Any]) -> dict[str, Any]:
    """Recorded vs replayed, per call type, in total, per hour of the day
    (all days together) and per hour: the dict form of ``comparison_table``
    (``--json``).  ``recorded`` is the sidecar's ``recorded`` part (or the
    whole sidecar)."""
    rec = recorded.get("recorded", recorded)
    rep = replay_sums(report)
    queues = list(rec["queues"])
    queues += [q for q in rep["queues"] if q not in rec["queues"]]
    out: dict[str, Any] = {
        "total": _pair(rec["total"], rep["total"]),
        "queues": {q: _pair(rec["queues"].get(q), rep["queues"].get(q)) for q in queues},
    }
    # hour of the day: add the days up
    if rep["hours"]:
        by_hod_rec: dict[int, Any] = {}
        by_hod_rep: dict[int, Any] = {}
        for src, dst in ((rec["hours"], by_hod_rec), (rep["hours"], by_hod_rep)):
            for h, row in src.items():
                hod = (int(h) % 86400) // HOUR
                d = dst.setdefault(hod, {"total": _new(), "queues": defaultdict(_new)})
                for k in SUMS:
                    d["total"][k] += row["total"].get(k, 0)
                for q, s in row["queues"].items():
                    for k in SUMS:
                        d["queues"][q][k] += s.get(k, 0)
        out["hour_of_day"] = [
            {"hour": hod,
             **_pair(by_hod_rec.get(hod, {}).get("total"), by_hod_rep.get(hod, {}).get("total")),
             "queues": {q: _pair(by_hod_rec.get(hod, {}).get("queues", {}).get(q),
                                 by_hod_rep.get(hod, {}).get("queues", {}).get(q)) for q in queues}}
            for hod in sorted(set(by_hod_rec) | set(by_hod_rep))
        ]
        rows = []
        for h in sorted(set(rec["hours"]) | set(rep["hours"]), key=int):
            a, b = rec["hours"].get(h, {}), rep["hours"].get(h, {})
            qa, qb = a.get("queues", {}), b.get("queues", {})
            rows.append({"start": int(h), **_pair(a.get("total"), b.get("total")),
                         "queues": {q: _pair(qa.get(q), qb.get(q)) for q in queues if q in qa or q in qb}})
        out["hours"] = rows
    else:
        out["hour_of_day"] = []
        out["hours"] = []
        out["note"] = "the config's interval does not divide an hour: no hourly rows"
    return out


def comparison_table(report: dict[str, Any], recorded: dict[str, Any], *, hours: bool = True) -> str:
    """The recorded and replayed KPIs side by side: one row per call type and
    the total, then (``hours``) one row per hour of the day, all days added."""
    cmp = comparison(report, recorded)

    def row(label: str, p: dict[str, Any]) -> list[str]:
        a, b = p["recorded"], p["replayed"]
        ratio = p["asa_ratio"]
        return [
            label,
            f"{a['offered']:,}",
            f"{b['offered']:,}" if b["offered"] != a["offered"] else "=",
            f"{a['answered']:,}", f"{b['answered']:,}",
            f"{a['abandon_rate']:.1%}", f"{b['abandon_rate']:.1%}", f"{p['abandon_rate_diff_pp']:+.1f}",
            f"{a['asa']:.1f}", f"{b['asa']:.1f}", "-" if ratio is None else f"{ratio:.2f}",
            f"{a['p_wait']:.1%}", f"{b['p_wait']:.1%}",
            f"{a['talk']:.1f}", f"{b['talk']:.1f}",
        ]

    head = ["", "offered", "replay", "answered", "replay", "aband%", "replay", "diff pp", "ASA s", "replay",
            "ratio", "P(wait)", "replay", "talk s", "replay"]
    rows = [["queue"] + head[1:]]
    for q, p in cmp["queues"].items():
        rows.append(row(q, p))
    rows.append(row("TOTAL", cmp["total"]))
    parts = ["recorded vs replayed (recorded first, then the replay)", _render(rows, sep_before_last=True)]
    if hours and cmp["hour_of_day"]:
        hrows = [["hour"] + head[1:]]
        for r in cmp["hour_of_day"]:
            if r["recorded"]["offered"] or r["replayed"]["offered"]:
                hrows.append(row(f"{r['hour']:02d}:00", r))
        parts += ["", "per hour of the day (all days)", _render(hrows)]
    return "\n".join(parts)


def comparison_html(report: dict[str, Any], recorded: dict[str, Any], *, hours: bool = True) -> str:
    """The comparison as an HTML ``<section id="recorded">`` for the replay's
    HTML report (``acd.report``): its ``table.kpi`` style, a ``tr.total``
    row, the per-hour-of-day table under it."""
    from html import escape

    cmp = comparison(report, recorded)
    head = ("<thead><tr><th>{first}</th><th>offered</th><th>answered<small>recorded</small></th>"
            "<th>answered<small>replayed</small></th><th>aband.<small>recorded</small></th>"
            "<th>aband.<small>replayed</small></th><th>diff<small>pp</small></th>"
            "<th>ASA<small>s recorded</small></th><th>ASA<small>s replayed</small></th><th>ratio</th>"
            "<th>P(wait)<small>recorded</small></th><th>P(wait)<small>replayed</small></th>"
            "<th>talk<small>s recorded</small></th><th>talk<small>s replayed</small></th></tr></thead>")

    def row(label: str, p: dict[str, Any], cls: str = "") -> str:
        a, b = p["recorded"], p["replayed"]
        ratio = "&ndash;" if p["asa_ratio"] is None else f"{p['asa_ratio']:.2f}"
        c = f' class="{cls}"' if cls else ""
        return (f"<tr{c}><td>{escape(label)}</td><td>{a['offered']:,}</td><td>{a['answered']:,}</td>"
                f"<td>{b['answered']:,}</td><td>{a['abandon_rate']:.1%}</td><td>{b['abandon_rate']:.1%}</td>"
                f"<td>{p['abandon_rate_diff_pp']:+.1f}</td><td>{a['asa']:.1f}</td><td>{b['asa']:.1f}</td>"
                f"<td>{ratio}</td><td>{a['p_wait']:.1%}</td><td>{b['p_wait']:.1%}</td><td>{a['talk']:.1f}</td>"
                f"<td>{b['talk']:.1f}</td></tr>")

    rows = [row(q, p) for q, p in cmp["queues"].items()] + [row("TOTAL", cmp["total"], "total")]
    parts = ['<section id="recorded"><h2>Recorded vs replayed</h2>',
             '<p class="note">The recorded KPIs of the imported call log beside the replay of the same '
             "contacts (acd scenario import; same definitions). ASA = mean queue wait of answered contacts; "
             "talk = mean service time.</p>",
             f'<table class="kpi">{head.format(first="queue")}<tbody>{"".join(rows)}</tbody></table>']
    if hours and cmp["hour_of_day"]:
        hrows = [row(f"{r['hour']:02d}:00", r) for r in cmp["hour_of_day"]
                 if r["recorded"]["offered"] or r["replayed"]["offered"]]
        parts += ['<p class="note">Per hour of the day, all days added.</p>',
                  f'<table class="kpi">{head.format(first="hour")}<tbody>{"".join(hrows)}</tbody></table>']
    parts.append("</section>")
    return "\n".join(parts)
