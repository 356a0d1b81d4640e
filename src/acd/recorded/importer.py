"""``import_records``: a call log -> scenario + config + recorded-KPI sidecar.

What the scenario holds, per contact: ``arrival`` = entry into the ACD queue
(``queue_start``; the IVR exit for calls answered straight from the IVR),
``queue`` = the call type, ``handle_time`` = the recorded service time,
``priority`` from the priority column (mapped), and the customer's patience:

* abandoned calls: ``patience`` = the recorded queue wait, the patience
  actually observed (``abandoned_patience="observed"``, the default).  Drawn
  afresh from the curve instead (``"curve"``), a caller who hung up after
  20 s could be given 10 minutes, and one who hung up after 10 minutes 20 s:
  the month's total would match on average, but the link between the caller,
  the hour and the moment of hanging up would be lost.  With the observed
  value, a replay whose queues match the record's abandons exactly the
  recorded callers at the recorded moments.
* answered calls: ``patience_curve`` = the call type and ``patience_after`` =
  the recorded wait: the record only says the caller would have waited at
  least that long, so the replay draws the patience from the type's
  Kaplan-Meier curve given that it exceeds the recorded wait.

The header carries the Kaplan-Meier curves (``patience_curves``), the roster
adds agent login/logout/not-ready/ready lines, and the config
(``config_yaml``) has one queue per type and one agent group per agent
(``ids: [NAME]``, ``initial: offline``).
"""

from __future__ import annotations

import heapq
import json
import os
import random
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import date as Date, datetime, timezone
from typing import Any

from ..scenario import AgentLine, ContactLine, write_scenario
from .compare import recorded_kpis
from .records import ABANDONED, ANONYMOUS_BANK, EXPLAIN, SERVED, Call, Mapping, read_calls
from .roster import Roster, RosterPolicy, build_roster
from .survival import kaplan_meier, median, thin

STRATEGIES = ("longest-idle", "most-skilled", "round-robin", "least-occupied", "random")

ATTRIBUTION = (
    "Call records of the Technion 'Anonymous Bank' call centre (Israel, 1999), Technion SEE Center "
    "(ie.technion.ac.il/serveng/callcenterdata; organised by Ilan Guedj and Avi Mandelbaum); studied in "
    "Brown, Gans, Mandelbaum, Sakov, Shen, Zeltyn and Zhao (2005), 'Statistical Analysis of a Telephone "
    "Call Center: A Queueing-Science Perspective', JASA 100:36-50. Converted by acd scenario import; when "
    "using the data, acknowledge the Technion SEE Center and cite Brown et al. (2005)."
)


@dataclass
class ImportOptions:
    """Everything ``import_records`` decides besides the column mapping.
    The routing-policy assumptions (``aging``, ``wrap_up``, ``strategy``,
    ``roster``) go into the config and the agent lines."""

    skip_bad: bool = False
    date_from: Date | None = None
    date_to: Date | None = None
    roster: RosterPolicy = field(default_factory=RosterPolicy)
    abandoned_patience: str = "observed"  # observed | curve
    aging: float = 1.0  # priority points per minute: FIFO by time in queue, priority as a head start
    wrap_up: float = 0.0
    strategy: str = "longest-idle"
    queue_priority: dict[str, float] = field(default_factory=dict)  # call type -> queue priority
    interval: float = 3600.0
    service_level_threshold: float = 20.0
    attributes: bool = True
    curve_points: int = 64
    seed: int = 1  # handle times of abandoned calls (drawn from the answered ones of their type)
    name: str | None = None
    description: str | None = None


@dataclass
class ImportResult:
    summary: dict[str, Any]
    calls: list[Call]
    roster: Roster
    curves: dict[str, list[tuple[float, float]]]
    recorded: dict[str, Any]
    types: list[str]
    start: float
    scenario: str | None = None
    config: str | None = None
    sidecar: str | None = None
    seconds: float = 0.0

    def sidecar_dict(self) -> dict[str, Any]:
        return {
            "about": "Recorded KPIs and import summary of an imported call log (acd scenario import); "
                     "used by acd replay --compare-recorded.",
            "scenario": self.scenario,
            "config": self.config,
            "import": self.summary,
            "recorded": self.recorded,
        }


def import_records(
    path: str | os.PathLike[str],
    mapping: Mapping = ANONYMOUS_BANK,
    options: ImportOptions | None = None,
    *,
    scenario: str | os.PathLike[str] | None = None,
    config: str | os.PathLike[str] | None = None,
    sidecar: str | os.PathLike[str] | None = None,
) -> ImportResult:
    """Read ``path`` and write whichever of ``scenario`` (JSONL), ``config``
    (YAML) and ``sidecar`` (JSON) are given.  Raises ``RecordError`` for a
    bad log, ``ValueError`` for bad options, ``OSError`` when writing fails."""
    t0 = time.perf_counter()
    opt = options or ImportOptions()
    if opt.abandoned_patience not in ("observed", "curve"):
        raise ValueError(f"abandoned_patience: expected observed or curve, got {opt.abandoned_patience!r}")
    if opt.strategy not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, got {opt.strategy!r}")
    calls, summ = read_calls(path, mapping, skip_bad=opt.skip_bad, date_from=opt.date_from, date_to=opt.date_to)
    if not calls:
        raise ValueError(f"{os.fspath(path)}: no call reached the ACD (nothing to replay)")
    counts: dict[str, int] = {}
    for c in calls:
        counts[c.type] = counts.get(c.type, 0) + 1
    types = sorted(counts, key=lambda t: (-counts[t], t))
    # patience
    curves: dict[str, list[tuple[float, float]]] = {}
    patience_info: dict[str, Any] = {}
    for t in types:
        obs = [(c.wait, c.outcome == ABANDONED) for c in calls if c.type == t]
        km = kaplan_meier(obs)
        events = sum(1 for _, e in obs if e)
        if km:
            curves[t] = thin(km, max_points=opt.curve_points)
        patience_info[t] = {
            "abandoned": events,
            "answered_censored": len(obs) - events,
            "km_points": len(km),
            "curve_points": len(curves.get(t, ())),
            "median_s": None if not km else (round(m, 1) if (m := median(km)) is not None else None),
            "survival_at": {str(x): round(_step(km, x), 3) for x in (30, 60, 120, 300, 600)} if km else {},
        }
    roster = build_roster(calls, types, opt.roster)
    for key, n in (("abandoned_handle_drawn", _draw_abandoned_handles(calls, opt.seed)),
                   ("agent_overlap", roster.overlaps)):
        if n:
            summ.quirks[key] = n
    first_day = min(c.day for c in calls)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=timezone.utc).timestamp()
    first = min(calls[0].arrival, roster.lines[0][0] if roster.lines else calls[0].arrival)
    if first < start:  # a login lead before the first day: start at that hour (offsets must be >= 0)
        start = first // 3600 * 3600
    result = ImportResult(
        summary={},
        calls=calls,
        roster=roster,
        curves=curves,
        recorded=recorded_kpis(calls),
        types=types,
        start=start,
    )
    summary = summ.as_dict()
    summary["roster"] = roster.summary()
    summary["patience"] = patience_info
    summary["policy"] = {
        "abandoned_patience": opt.abandoned_patience,
        "aging_per_minute": opt.aging,
        "priority_map": mapping.priority_map,
        "wrap_up_s": opt.wrap_up,
        "strategy": opt.strategy,
        "queue_priority": dict(opt.queue_priority),
        **{f"roster_{k}": v for k, v in asdict(opt.roster).items()},
    }
    summary["explain"] = {k: EXPLAIN[k] for k in (*summary["excluded"], *summary["quirks"]) if k in EXPLAIN}
    result.summary = summary
    if scenario is not None:
        result.scenario = os.fspath(scenario)
        name = opt.name or os.path.splitext(os.path.basename(result.scenario))[0]
        desc = opt.description
        if desc is None and mapping.name == "anonymous-bank":
            desc = ATTRIBUTION
        write_scenario(result.scenario, scenario_lines(result, opt), start=start, name=name, description=desc,
                       patience_curves=curves)
    if config is not None:
        result.config = os.fspath(config)
        with open(result.config, "w", encoding="utf-8") as f:
            f.write(config_yaml(result, opt, source=os.fspath(path)))
    result.seconds = round(time.perf_counter() - t0, 3)
    summary["import_seconds"] = result.seconds
    if sidecar is not None:
        result.sidecar = os.fspath(sidecar)
        with open(result.sidecar, "w", encoding="utf-8") as f:
            json.dump(result.sidecar_dict(), f, indent=1)
            f.write("\n")
    return result


def _draw_abandoned_handles(calls: list[Call], seed: int) -> int:
    """An abandoned call has no service time, but a replay that answers it
    must give it one: a recorded service time of an answered call of the same
    type, drawn with a seeded RNG (the same import gives the same scenario).
    Returns how many were drawn."""
    pool: dict[str, list[float]] = {}
    for c in calls:
        if c.outcome == SERVED and c.service_start is not None:
            pool.setdefault(c.type, []).append(c.handle)
    everyone = [h for v in pool.values() for h in v] or [0.0]
    rng = random.Random(f"abandoned-handle-{seed}")
    n = 0
    for c in calls:
        if c.outcome == ABANDONED:
            c.handle = rng.choice(pool.get(c.type) or everyone)
            n += 1
    return n


def _step(km: list[tuple[float, float]], t: float) -> float:
    s = 1.0
    for ti, si in km:
        if ti > t:
            break
        s = si
    return s


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else round(x, 3)


def scenario_lines(result: ImportResult, opt: ImportOptions):
    """Contacts and agent lines in time order (agent logins and ready lines
    before contacts at the same second, not-ready and logouts after)."""
    start = result.start
    curves = result.curves
    observed = opt.abandoned_patience == "observed"
    attrs = opt.attributes

    def contacts():
        for c in result.calls:
            kw: dict[str, Any] = {}
            if c.priority:
                kw["priority"] = c.priority
            if attrs:
                a: dict[str, Any] = {"outcome": "answered" if c.outcome == SERVED else "abandoned"}
                if c.customer and c.customer != "0":
                    a["customer"] = c.customer
                if c.agent:
                    a["server"] = c.agent  # not "agent": that word sends a line to the slow decode path
                kw["attributes"] = a
            if c.outcome == ABANDONED and observed:
                kw["patience"] = _num(c.wait)
            elif c.type in curves:
                kw["patience_curve"] = c.type
                kw["patience_after"] = _num(c.wait) if c.outcome == SERVED else 0
            yield c.arrival, 1, ContactLine(id=c.id, arrival=_num(c.arrival - start), queue=c.type,
                                            handle_time=_num(c.handle), **kw)

    def agents():
        for t, order, agent, state, reason in result.roster.lines:
            yield t, order, AgentLine(time=_num(t - start), agent=agent, state=state, reason=reason)

    for _, _, item in heapq.merge(agents(), contacts(), key=lambda x: (x[0], x[1])):
        yield item


def _yaml_str(s: str) -> str:
    return s if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", s) and s.lower() not in (
        "yes", "no", "true", "false", "on", "off", "null", "y", "n") else json.dumps(s)


def _flow(d: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{_yaml_str(k)}: {v}" for k, v in d.items()) + "}"


def config_yaml(result: ImportResult, opt: ImportOptions, *, source: str = "") -> str:
    """The routing config of an import, as commented YAML."""
    s = result.summary
    lines = [
        f"# Routing config generated by `acd scenario import` from {os.path.basename(source) or 'a call log'}",
        f"# ({s.get('days', [None, None])[0]} .. {s.get('days', [None, None])[1]}: {s.get('contacts', 0):,} contacts, "
        f"{len(result.roster.agents)} agents).",
        "#",
        "# One queue per call type; one group per recorded agent, skills = the types it served",
        "# (level = 10 x its share of the agent's calls), offline until the scenario logs it in.",
        f"# Contacts are served by time in queue: aging {opt.aging:g} point/minute on every queue, and a",
        "# contact's priority is a head start (1.5 points = the 1.5 minutes Technion documents for",
        "# priority-2 customers of the Anonymous Bank).",
        *(["# wrap_up: the time agents left waiting calls untaken after a call of the type, per call",
           "# (--availability relative; see acd.recorded.roster)."] if result.roster.after_call else []),
        f"interval: {_num(opt.interval)}                    # KPI interval, s (hourly rows for --compare-recorded)",
        "",
        "queues:",
    ]
    for t in result.types:
        lines += [
            f"  - name: {_yaml_str(t)}",
            "    channel: voice",
            f"    skills: {_flow({t: 1})}",
            *([f"    priority: {_num(opt.queue_priority[t])}                  # --queue-priority (an assumption)"]
              if opt.queue_priority.get(t) else []),
            f"    aging: {_num(opt.aging)}",
            f"    strategy: {opt.strategy}",
            f"    service_level: {{threshold: {_num(opt.service_level_threshold)}, target: 0.8}}",
            f"    wrap_up: {_num(round(opt.wrap_up + result.roster.wrap_up().get(t, 0.0), 1))}"
            + ("                 # after-call time seen in the record, per call" if result.roster.after_call else ""),
        ]
    lines += ["", "agents:"]
    for name in sorted(result.roster.agents):
        a = result.roster.agents[name]
        order = sorted(a.skills, key=lambda t: (-a.skills[t], t))
        n = sum(a.calls.values())
        lines += [
            f"  - group: {_yaml_str(name):<21} # {n:,} calls, {len(a.shifts)} shifts",
            f"    ids: [{_yaml_str(name)}]",
            f"    skills: {_flow({t: a.skills[t] for t in order})}",
            "    initial: offline",
        ]
    return "\n".join(lines) + "\n"


def default_paths(scenario: str) -> tuple[str, str]:
    """``(config, sidecar)`` next to a scenario: ``X.jsonl`` -> ``X.yaml``,
    ``X.recorded.json``."""
    stem = scenario[:-6] if scenario.endswith(".jsonl") else os.path.splitext(scenario)[0]
    return stem + ".yaml", stem + ".recorded.json"


def summary_text(result: ImportResult) -> str:
    """The import summary for people: where every row went."""
    s = result.summary
    out = [f"{s['source']}: {s['rows']:,} rows ({s['format']}), days {s['days'][0]} .. {s['days'][1]}",
           f"  {s['contacts']:,} contacts imported: "
           + ", ".join(f"{v:,} {k}" for k, v in s["outcomes"].items())
           + "; by type " + ", ".join(f"{k} {v:,}" for k, v in s["types"].items())]
    if s["excluded"]:
        out.append("  left out:")
        for k, v in s["excluded"].items():
            out.append(f"    {v:>7,}  {k}: {EXPLAIN.get(k, '')}")
    if s["quirks"]:
        out.append("  kept, handled:")
        for k, v in s["quirks"].items():
            out.append(f"    {v:>7,}  {k}: {EXPLAIN.get(k, '')}")
    for b in s["bad_rows"][:10]:
        out.append(f"  bad row: {s['source']}:{b['line']}: {b['error']}")
    if len(s["bad_rows"]) > 10 or s["excluded"].get("bad_rows", 0) > len(s["bad_rows"]):
        out.append(f"  ... {s['excluded'].get('bad_rows', 0) - 10:,} more bad rows (see the JSON summary)")
    r = s["roster"]
    out.append(f"  roster: {r['agents']} agents, {r['shifts']} shifts, {r['logged_in_hours']:,} h logged in, "
               f"{r['not_ready_hours']:,} h not ready (availability {s['policy']['roster_availability']}), "
               f"{r['talk_hours']:,} h talking; {r['agent_lines']:,} agent lines")
    if r["types_without_agent"]:
        out.append(f"  types no agent served (given to every agent at level 1): {', '.join(r['types_without_agent'])}")
    wrap = result.roster.wrap_up()
    if wrap:
        out.append("  after-call time (queue wrap_up, s per call): " + ", ".join(f"{t} {v:g}" for t, v in wrap.items()))
    meds = []
    for t, p in s["patience"].items():
        if not p["abandoned"]:
            continue
        if p["median_s"] is not None:
            meds.append(f"{t} {p['median_s']:g} s")
        else:  # the curve stays above 1/2: the median is beyond the longest recorded wait
            meds.append(f"{t} > {result.curves[t][-1][0]:g} s")
    if meds:
        out.append("  patience (Kaplan-Meier; abandoned = observed, answered = censored), median: " + ", ".join(meds))
    return "\n".join(out)
