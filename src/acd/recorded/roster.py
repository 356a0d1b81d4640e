"""The roster a call log implies: who worked when, with which skills.

The records only show services (agent, start, end, call type), so presence
is inferred:

* **Shifts.** An agent's services, in time order, form one shift until a gap
  longer than ``shift_gap`` (default 1 h: lunch breaks of ~30 min stay inside
  a shift; the next day's work starts a new one).  The agent logs in
  ``login_lead`` seconds before the first service of a shift and logs out
  when the last one ends.
* **Not taking calls.** Inside a shift, the record shows when an agent was
  *not* available: in a gap between two of its services, a call of a type it
  serves (its main types: at least ``observed_share`` of its calls) had been
  waiting ``grace`` seconds and was still waiting, and the agent did not take
  it.  From that moment to its next service the agent was unavailable
  (after-call work, outbound calls, a break).  ``availability`` says what the
  replay makes of it:

  - ``relative`` (default): the unavailable time becomes *after-call work*:
    summed per call type of the service before it and divided by the served
    calls of that type, it is the queue's ``wrap_up`` (``Roster.wrap_up``).
    Pauses longer than ``break_gap`` (default: ``shift_gap``, so none) stay
    not-ready periods at their recorded times.  Agents are otherwise ready.
    Why: the replay's agents serve other calls, with other handle times,
    than the recorded ones.  Pinned to recorded clock times (``observed``),
    unavailability leaks capacity: an agent whose replayed call is shorter
    than its recorded one is idle and ready until the recorded pause begins,
    while a longer call is absorbed by the pause.  Tied to the calls, the
    unavailable time per call served is kept whatever the assignment.
  - ``observed``: not ready at the recorded times, from the moment a call
    waited to the next recorded service start; ready otherwise.
  - ``exact``: not ready in every gap, from ``grace`` seconds after each
    service to the next service start.
  - ``shift``: ready whenever not serving (an upper bound on capacity).

* **Skills**: the call types an agent served, with level
  ``round(10 * share)`` (at least 1) of its calls; types below
  ``min_skill_share`` of its calls are left out.  With ``shift_skills`` a
  shift drops a type the agent did not serve in it although its share
  predicted ``absent_expected`` calls or more; such a shift logs in a
  separate agent id ``NAME[TYPES]``.  A type no agent keeps (e.g. served only
  with NO_SERVER) goes to every agent at level 1, else its queue could never
  be served.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from .records import Call

AVAILABILITY = ("relative", "observed", "exact", "shift")


@dataclass
class RosterPolicy:
    shift_gap: float = 3600.0
    login_lead: float = 0.0
    availability: str = "relative"
    grace: float = 10.0
    observed_share: float = 0.05
    min_skill_share: float = 0.0
    shift_skills: bool = False
    absent_expected: float = 3.0
    break_gap: float | None = None  # None: shift_gap (every pause inside a shift is after-call time)


@dataclass
class AgentInfo:
    """One agent id of the config: a recorded agent, or (``shift_skills``)
    a recorded agent with the skills of some of its shifts."""

    name: str
    person: str
    calls: Counter = field(default_factory=Counter)  # type -> served calls (in its shifts)
    skills: dict[str, int] = field(default_factory=dict)
    shifts: list[tuple[float, float]] = field(default_factory=list)
    unavailable: list[tuple[float, float]] = field(default_factory=list)
    busy: float = 0.0


@dataclass
class Roster:
    agents: dict[str, AgentInfo]
    # (time, order, agent, state, reason): order 0 before contacts at the same time, 2 after
    lines: list[tuple[float, int, str, str, str | None]]
    types_without_agent: list[str]
    overlaps: int = 0
    people: int = 0
    # relative availability: call type -> [after-call seconds, served calls]
    after_call: dict[str, list[float]] = field(default_factory=dict)

    def wrap_up(self) -> dict[str, float]:
        """Mean after-call unavailability per call type (relative availability)."""
        return {t: round(v[0] / v[1], 1) for t, v in self.after_call.items() if v[1]}

    def summary(self) -> dict[str, Any]:
        shifts = sum(len(a.shifts) for a in self.agents.values())
        staffed = sum(t1 - t0 for a in self.agents.values() for t0, t1 in a.shifts)
        unavailable = sum(t1 - t0 for a in self.agents.values() for t0, t1 in a.unavailable)
        busy = sum(a.busy for a in self.agents.values())
        return {
            "agents": self.people,
            "agent_ids": len(self.agents),
            "shifts": shifts,
            "agent_lines": len(self.lines),
            "logged_in_hours": round(staffed / 3600, 1),
            "not_ready_hours": round(unavailable / 3600, 1),
            "talk_hours": round(busy / 3600, 1),
            "types_without_agent": self.types_without_agent,
        }


def _levels(calls: Counter, min_share: float) -> dict[str, int]:
    n = sum(calls.values())
    out: dict[str, int] = {}
    for t, k in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0])):
        share = k / n
        if share >= min_share or not out:
            out[t] = max(1, min(10, round(10 * share)))
    return out


def build_roster(calls: list[Call], types: list[str], policy: RosterPolicy | None = None) -> Roster:
    """Shifts, skills and agent lines of the agents named in ``calls``."""
    pol = policy or RosterPolicy()
    if pol.availability not in AVAILABILITY:
        raise ValueError(f"availability: expected one of {', '.join(AVAILABILITY)}, got {pol.availability!r}")
    services: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    month: dict[str, Counter] = defaultdict(Counter)
    for c in calls:
        if c.agent is None:
            continue
        month[c.agent][c.type] += 1
        if c.service_start is not None and c.service_end is not None:
            services[c.agent].append((c.service_start, c.service_end, c.type))
    skills_month = {p: _levels(cnt, pol.min_skill_share) for p, cnt in month.items()}
    # one agent id per (person, skill set): a person whose shifts differ in skills gets one per set
    agents: dict[str, AgentInfo] = {}
    plans: list[tuple[AgentInfo, list[list[float]], list[str]]] = []
    overlaps = 0
    for person in sorted(month):
        svc = sorted(services.get(person, ()))
        merged: list[list[Any]] = []
        for s, e, t in svc:
            if merged and s < merged[-1][1]:
                overlaps += 1
                merged[-1][1] = max(merged[-1][1], e)
                merged[-1][2].append(t)
            else:
                merged.append([s, e, [t]])
        shifts: list[list[list[Any]]] = []
        for m in merged:
            if shifts and m[0] - shifts[-1][-1][1] <= pol.shift_gap:
                shifts[-1].append(m)
            else:
                shifts.append([m])
        full = skills_month[person]
        n_month = sum(month[person].values())
        if not shifts:  # served, but never with service times: no shift to log in
            info = agents.setdefault(person, AgentInfo(person, person, skills=dict(full)))
            info.calls.update(month[person])
            continue
        for sh in shifts:
            cnt = Counter(t for m in sh for t in m[2])
            n = sum(cnt.values())
            if pol.shift_skills:
                # a type the person had but did not serve in this shift, though its share
                # predicted at least `absent_expected` calls: not its skill in this shift
                skills = {t: lv for t, lv in full.items()
                          if cnt[t] or month[person][t] / n_month * n < pol.absent_expected}
            else:
                skills = dict(full)
            if skills == full:
                aid = person
            else:
                aid = f"{person}[{'+'.join(sorted(skills))}]"
            info = agents.get(aid)
            if info is None:
                info = agents[aid] = AgentInfo(aid, person, skills=dict(skills))
            info.calls.update(cnt)
            main = [t for t in skills if month[person][t] / n_month >= pol.observed_share]
            plans.append((info, sh, main))
    kept = {t for a in agents.values() for t in a.skills}
    missing = [t for t in types if t not in kept]
    for t in missing:
        for a in agents.values():
            a.skills[t] = 1
    waits = _WaitIndex(calls, pol.grace) if pol.availability in ("observed", "relative") else None
    long_pause = pol.shift_gap if pol.break_gap is None else pol.break_gap
    after: dict[str, list[float]] = {}
    for a, sh, main in plans:
        a.busy += sum(m[1] - m[0] for m in sh)
        for m in sh:
            for t in m[2]:
                after.setdefault(t, [0.0, 0])[1] += 1
        login = sh[0][0] - pol.login_lead
        if a.shifts and login < a.shifts[-1][1]:
            login = a.shifts[-1][1]
        a.shifts.append((login, sh[-1][1]))
        for (s, e, types_), (nxt, _, _) in zip(sh, sh[1:]):
            if pol.availability == "relative":
                assert waits is not None
                t = waits.first_wait(main, e, nxt)
                if t is None:
                    continue
                if nxt - t > long_pause:  # a long break stays where it was
                    a.unavailable.append((t, nxt))
                else:  # not taking calls that waited: after-call time of the call that just ended
                    after[types_[-1]][0] += nxt - t
                continue
            t0 = e + pol.grace
            if pol.availability == "exact":
                if nxt - t0 > 0:
                    a.unavailable.append((t0, nxt))
            elif waits is not None:
                t = waits.first_wait(main, t0, nxt)
                if t is not None and nxt - t > 0:
                    a.unavailable.append((t, nxt))
    lines: list[tuple[float, int, str, str, str | None]] = []
    for name, a in agents.items():
        for t0, t1 in a.shifts:
            lines.append((t0, 0, name, "login", None))
            lines.append((t1, 2, name, "logout", None))
        for t0, t1 in a.unavailable:
            lines.append((t0, 2, name, "not_ready", "unavailable"))
            lines.append((t1, 0, name, "ready", None))
    lines.sort(key=lambda x: (x[0], x[1], x[2], x[3] != "logout"))
    return Roster(agents=agents, lines=lines, types_without_agent=missing, overlaps=overlaps, people=len(month),
                  after_call=after if pol.availability == "relative" else {})


class _WaitIndex:
    """When did a call of given types wait (for at least ``grace`` s)?

    Per type: the calls that waited longer than ``grace``, sorted by the
    moment their wait passed ``grace``; the running maximum of their queue
    exits answers "was one still waiting at time a" in O(log n)."""

    def __init__(self, calls: list[Call], grace: float):
        per: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for c in calls:
            if c.queued and c.wait > grace:
                per[c.type].append((c.arrival + grace, c.arrival + c.wait))
        self.idx: dict[str, tuple[list[float], list[float], list[float]]] = {}
        for t, iv in per.items():
            iv.sort()
            starts = [x[0] for x in iv]
            ends = [x[1] for x in iv]
            self.idx[t] = (starts, ends, list(accumulate(ends, max)))

    def first_wait(self, types: list[str], a: float, b: float) -> float | None:
        """The earliest t in [a, b) at which a call of ``types`` had waited
        ``grace`` s and still waited; None if there is none."""
        best: float | None = None
        for t in types:
            ix = self.idx.get(t)
            if ix is None:
                continue
            starts, ends, runmax = ix
            if a >= b:
                return None
            k = bisect_right(starts, a)
            if k and runmax[k - 1] > a:  # one passed grace before a and still waits at a
                return a
            # the first one passing grace inside (a, b) (its end is after its grace point)
            if k < len(starts) and starts[k] < b and (best is None or starts[k] < best):
                best = starts[k]
        return best
