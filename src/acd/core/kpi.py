"""Streaming KPI accumulators: memory grows with queues x intervals, never
with contacts.

Definitions (vendors differ; these are ours, stated once):

* **offered**: contacts that entered the queue (overflow-ins included; the
  total counts each contact once).
* **answered**: connected to an agent.  **abandoned**: the customer left
  before being connected.  **overflowed**: left the queue by its max-wait rule
  (to another queue, or out of the system).  **closed**: handled by the
  queue's closed-hours rule (closed with a reason, or sent to another queue);
  not counted as overflowed.
* **wait**: seconds from the contact's arrival in acd (not in this queue) to
  the moment it was connected, abandoned or overflowed.
* **ASA**: mean wait of answered contacts.
* **service level**: answered within the queue's threshold / (offered - closed).
* **P(wait)**: share of offered contacts whose wait was above 0 s (in a
  total, a contact that waited and moved to another queue counts once).
* **abandon rate**: abandoned / (offered - closed).
* **AHT**: mean handle time of completed contacts, talk + wrap-up.
* **occupancy**: busy time (talk or wrap-up on at least one contact) / staffed
  time (ready, or busy), over the agents of the group (for a queue: of the
  groups that can serve it).

Per-interval figures (``interval`` s, 900 by default) file every contact
under the interval of its *arrival*; occupancy is split exactly at interval
boundaries.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Any


#: Edges (s) of the wait-time histogram: bin i is [edge i, edge i+1), the last open.
WAIT_EDGES = (0, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600)


class Acc:
    """Counters of one queue in one interval."""

    __slots__ = (
        "offered", "overflow_in", "answered", "answered_in_sl", "abandoned", "overflowed",
        "overflowed_out", "waited", "wait_answered", "wait_abandoned", "max_wait",
        "completed", "talk", "wrap", "hist_answered", "hist_abandoned", "closed", "closed_out", "by_site",
        "waited_moved",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0 if name not in ("wait_answered", "wait_abandoned", "max_wait", "talk", "wrap") else 0.0)
        self.hist_answered = [0] * len(WAIT_EDGES)
        self.hist_abandoned = [0] * len(WAIT_EDGES)
        self.by_site: dict[str, int] | None = None  # answered per site of the agent

    # One method per outcome: the engine calls these as contacts move.

    def offer(self, overflow_in: bool) -> None:
        self.offered += 1
        if overflow_in:
            self.overflow_in += 1

    def answer(self, wait: float, threshold: float) -> None:
        self.answered += 1
        self.wait_answered += wait
        if wait <= threshold:
            self.answered_in_sl += 1
        if wait == 0:  # the common case: answered at once (bin 0, no bisect)
            self.hist_answered[0] += 1
            return
        self.hist_answered[bisect_right(WAIT_EDGES, wait) - 1] += 1
        if wait > 0:
            self.waited += 1
            if wait > self.max_wait:
                self.max_wait = wait

    def abandon(self, wait: float) -> None:
        self.abandoned += 1
        self.wait_abandoned += wait
        self.hist_abandoned[bisect_right(WAIT_EDGES, wait) - 1] += 1
        if wait > 0:
            self.waited += 1
            if wait > self.max_wait:
                self.max_wait = wait

    def site_answered(self, site: str) -> None:
        d = self.by_site
        if d is None:
            d = self.by_site = {}
        d[site] = d.get(site, 0) + 1

    def overflow(self, wait: float, out: bool, closed: bool = False) -> None:
        """Left the queue by its max-wait rule (``overflowed``), or by its
        closed-hours rule (``closed``), to another queue or (``out``) out of
        acd."""
        if closed:
            self.closed += 1
            if out:
                self.closed_out += 1
        else:
            self.overflowed += 1
            if out:
                self.overflowed_out += 1
        if wait > 0:
            self.waited += 1
            if not out:  # the next queue counts it again: a total takes one off
                self.waited_moved += 1
            if wait > self.max_wait:
                self.max_wait = wait

    def complete(self, talk: float, wrap: float) -> None:
        self.completed += 1
        self.talk += talk
        self.wrap += wrap

    def add(self, other: "Acc") -> None:
        for name in self.__slots__:
            if name == "max_wait":
                self.max_wait = max(self.max_wait, other.max_wait)
            elif name == "by_site":
                if other.by_site:
                    d = self.by_site = self.by_site or {}
                    for site, n in other.by_site.items():
                        d[site] = d.get(site, 0) + n
            elif name.startswith("hist_"):
                mine = getattr(self, name)
                for i, n in enumerate(getattr(other, name)):
                    mine[i] += n
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))


class Kpi:
    """Collects KPIs as the engine routes.  The engine calls the ``on_*``
    methods; shells call ``report``."""

    def __init__(self, queue_names: list[str], thresholds: list[float], sl_targets: list[float],
                 group_names: list[str], interval: float, start: float,
                 group_sites: list[str | None] | None = None):
        self.queue_names = queue_names
        self.thresholds = thresholds
        self.sl_targets = sl_targets
        self.group_names = group_names
        self.group_sites = group_sites or [None] * len(group_names)
        self.interval = interval
        self.start = start
        self.by_queue: list[dict[int, Acc]] = [{} for _ in queue_names]
        # per group: interval -> [busy_s, staffed_s]
        self.by_group: list[dict[int, list[float]]] = [{} for _ in group_names]
        self.queue_groups: list[list[int]] = [[] for _ in queue_names]
        # per queue: [contacts waiting now, since when, the interval of that time];
        # interval -> [wait-seconds, max waiting]
        self.qlen_now: list[list[float]] = [[0, start, int(start // interval)] for _ in queue_names]
        self.by_queue_len: list[dict[int, list[float]]] = [{} for _ in queue_names]

    # -- contacts --------------------------------------------------------------

    def acc_for(self, qidx: int, iv: int) -> Acc:
        d = self.by_queue[qidx]
        acc = d.get(iv)
        if acc is None:
            acc = d[iv] = Acc()
        return acc

    def queue_len(self, qidx: int, now: float, delta: int, now_iv: int | None = None) -> None:
        """The number of contacts waiting in a queue changed by ``delta``
        (``now_iv``: ``int(now // interval)``, if the caller knows it)."""
        st = self.qlen_now[qidx]
        n, t0, iv = st  # iv: the interval of t0
        buckets = self.by_queue_len[qidx]
        iv_len = self.interval
        if now_iv is None:
            now_iv = int(now // iv_len)
        if n and now <= (iv + 1) * iv_len:  # the common case: within one interval
            b = buckets.get(iv)
            if b is None:
                b = buckets[iv] = [0.0, 0]
            b[0] += n * (now - t0)
            if n > b[1]:  # a level carried in from an earlier interval
                b[1] = n
            n = 0  # nothing left to split below
        while n and t0 < now:
            t1 = min(now, (iv + 1) * iv_len)
            b = buckets.get(iv)
            if b is None:
                b = buckets[iv] = [0.0, 0]
            b[0] += n * (t1 - t0)
            if n > b[1]:  # every interval the backlog spans saw it
                b[1] = n
            t0 = t1
            iv += 1
        n = st[0] + delta
        st[0], st[1], st[2] = n, now, now_iv
        if delta > 0:
            b = buckets.get(now_iv)
            if b is None:
                b = buckets[now_iv] = [0.0, 0]
            if n > b[1]:
                b[1] = n

    # -- agents ----------------------------------------------------------------

    def add_span(self, group: int, kind: int, t0: float, t1: float, iv: int | None = None) -> None:
        """An agent of ``group`` was busy (``kind`` 0), staffed (1),
        scheduled to work (2) or adherent (3, scheduled and staffed) from
        ``t0`` to ``t1``: add it to the interval buckets, split at edges
        (``iv``: ``int(t0 // interval)``, if the caller knows it)."""
        iv_len = self.interval
        buckets = self.by_group[group]
        if iv is None:
            iv = int(t0 // iv_len)
        while True:
            edge = (iv + 1) * iv_len
            b = buckets.get(iv)
            if b is None:
                b = buckets[iv] = [0.0, 0.0, 0.0, 0.0]
            if t1 <= edge:
                b[kind] += t1 - t0
                return
            b[kind] += edge - t0
            t0 = edge
            iv += 1

    # -- reporting -------------------------------------------------------------

    def report(self, open_spans: list[tuple[int, int, float, float]] = (), intervals: bool = True,
               now: float | None = None) -> dict[str, Any]:
        """``{"total": {...}, "queues": {name: {...}}, "groups": {...},
        "intervals": [...]}`` with the figures defined in the module doc.
        ``open_spans`` are agent periods still running and ``now`` the time
        up to which queue lengths count: included, but not kept."""
        saved = [{iv: list(b) for iv, b in d.items()} for d in self.by_group]
        saved_len = ([{iv: list(b) for iv, b in d.items()} for d in self.by_queue_len],
                     [list(st) for st in self.qlen_now])
        for group, kind, t0, t1 in open_spans:
            self.add_span(group, kind, t0, t1)
        if now is not None:
            for q, st in enumerate(self.qlen_now):
                if now > st[1]:
                    self.queue_len(q, now, 0)
        try:
            return self._report(intervals)
        finally:
            self.by_group = saved
            self.by_queue_len, self.qlen_now = saved_len

    def _report(self, intervals: bool) -> dict[str, Any]:
        queue_tot = []
        all_ivs: set[int] = set()
        for d in self.by_queue:
            acc = Acc()
            for a in d.values():
                acc.add(a)
            queue_tot.append(acc)
            all_ivs.update(d)
        group_tot = []
        adherence = []
        for d in self.by_group:
            busy = sum(b[0] for b in d.values())
            staffed = sum(b[1] for b in d.values())
            group_tot.append((busy, staffed))
            adherence.append((sum(b[2] for b in d.values()), sum(b[3] for b in d.values())))
            all_ivs.update(d)
        out: dict[str, Any] = {
            "total": self._figures(queue_tot, list(range(len(queue_tot))), group_tot, None),
            "queues": {
                name: self._figures([queue_tot[i]], [i], group_tot, self.queue_groups[i])
                for i, name in enumerate(self.queue_names)
            },
            "wait_histogram": {
                "edges": list(WAIT_EDGES),
                "queues": {name: {"answered": list(queue_tot[i].hist_answered),
                                  "abandoned": list(queue_tot[i].hist_abandoned)}
                           for i, name in enumerate(self.queue_names)},
            },
            "groups": {
                name: {"busy_s": round(b, 3), "staffed_s": round(s, 3), "occupancy": _ratio(b, s)}
                for name, (b, s) in zip(self.group_names, group_tot)
            },
        }
        # schedule adherence of the calendar-driven groups: the share of the
        # scheduled time (on shift, not on a break) the agents were ready or busy
        for name, (sched, adh) in zip(self.group_names, adherence):
            if sched:
                out["groups"][name].update(scheduled_s=round(sched, 3), adherent_s=round(adh, 3),
                                           adherence=_ratio(adh, sched))
        if intervals:
            rows = []
            for d in self.by_queue_len:
                all_ivs.update(d)
            iv_len = self.interval
            for iv in sorted(all_ivs):
                accs = [d.get(iv) or Acc() for d in self.by_queue]
                gt = [tuple((d.get(iv) or (0.0, 0.0))[:2]) for d in self.by_group]
                qlen = [d.get(iv) or (0.0, 0) for d in self.by_queue_len]
                queues = {}
                for i, name in enumerate(self.queue_names):
                    if accs[i].offered or qlen[i][1]:
                        fig = self._figures([accs[i]], [i], gt, self.queue_groups[i])
                        fig["avg_queue_len"] = round(qlen[i][0] / iv_len, 4)
                        fig["max_queue_len"] = qlen[i][1]
                        queues[name] = fig
                total = self._figures(accs, list(range(len(accs))), gt, None)
                total["avg_queue_len"] = round(sum(q[0] for q in qlen) / iv_len, 4)
                row = {
                    "start": iv * iv_len,
                    "total": total,
                    "queues": queues,
                    # agents on average staffed and busy in the interval
                    "groups": {name: {"staffed": round(s / iv_len, 3), "busy": round(b / iv_len, 3),
                                      "occupancy": _ratio(b, s)}
                               for name, (b, s) in zip(self.group_names, gt) if s or b},
                }
                if any(self.group_sites):
                    row["sites"] = self._sites(accs, gt, iv_len)
                rows.append(row)
            out["intervals"] = rows
        return out

    def _sites(self, accs: list[Acc], groups: list[tuple[float, float]], iv_len: float) -> dict[str, Any]:
        """Per site: contacts answered by its agents, agents staffed and busy
        (averages over the interval): the follow-the-sun hand-over."""
        sites: dict[str, dict[str, float]] = {}
        for site, (b, s) in zip(self.group_sites, groups):
            if site is not None:
                d = sites.setdefault(site, {"answered": 0, "staffed": 0.0, "busy": 0.0})
                d["staffed"] = round(d["staffed"] + s / iv_len, 3)
                d["busy"] = round(d["busy"] + b / iv_len, 3)
        for a in accs:
            for site, n in (a.by_site or {}).items():
                sites.setdefault(site, {"answered": 0, "staffed": 0.0, "busy": 0.0})["answered"] += n
        return sites

    def _figures(self, accs: list[Acc], qidx: list[int], groups: list[tuple[float, float]],
                 only_groups: list[int] | None) -> dict[str, Any]:
        tot = Acc()
        in_sl = 0
        for a in accs:
            tot.add(a)
        in_sl = tot.answered_in_sl
        # a contact counted in several queues (overflow) counts once in a total
        offered = tot.offered - tot.overflow_in if len(accs) > 1 else tot.offered
        waited = tot.waited - tot.waited_moved if len(accs) > 1 else tot.waited
        overflowed = tot.overflowed_out if len(accs) > 1 else tot.overflowed
        # contacts the queue's closed-hours rule handled never had a chance to
        # be answered: service level and abandon rate count the others
        closed = tot.closed_out if len(accs) > 1 else tot.closed
        offered_open = offered - closed
        gsel = range(len(groups)) if only_groups is None else only_groups
        busy = sum(groups[g][0] for g in gsel)
        staffed = sum(groups[g][1] for g in gsel)
        handled = tot.completed
        fig: dict[str, Any] = {
            "offered": offered,
            "answered": tot.answered,
            "abandoned": tot.abandoned,
            "overflowed": overflowed,
            "closed": closed,
            "waiting_at_end": offered - tot.answered - tot.abandoned - overflowed - closed,
            "abandon_rate": _ratio(tot.abandoned, offered_open),
            "asa": _ratio(tot.wait_answered, tot.answered),
            "p_wait": _ratio(waited, offered),
            "service_level": _ratio(in_sl, offered_open),
            "aht": _ratio(tot.talk + tot.wrap, handled),
            "avg_talk": _ratio(tot.talk, handled),
            "avg_wrap_up": _ratio(tot.wrap, handled),
            "completed": handled,
            "max_wait": round(tot.max_wait, 3),
            "occupancy": _ratio(busy, staffed),
        }
        if tot.by_site:
            fig["answered_by_site"] = dict(sorted(tot.by_site.items()))
        if len(qidx) == 1:
            i = qidx[0]
            fig["sl_threshold"] = self.thresholds[i]
            fig["sl_target"] = self.sl_targets[i]
            fig["sl_met"] = bool(offered_open) and fig["service_level"] >= self.sl_targets[i]
        return fig


def _ratio(a: float, b: float) -> float:
    return round(a / b, 6) if b else 0.0
