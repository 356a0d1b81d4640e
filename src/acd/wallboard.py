"""The live wallboard: a page for a wall display, its data, and a live stream.

Served by the daemon's HTTP API (``acd.http``)::

    GET /                    the page (one self-contained HTML file: inline CSS
                             and JS, no font, script or image from anywhere)
    GET /wallboard.json      the snapshot the page shows (``?tz=Area/City``)
    GET /wallboard/events    server-sent events: snapshots as things change

**What it shows.**  Per queue: contacts waiting, the longest wait (the page
ticks it every second between updates, from the arrival time of the oldest
waiting contact), service level today and in the current KPI interval
against the queue's target (colour *and* a symbol: ``✓`` met, ``✗`` below),
contacts answered and abandoned today, and the agents who can serve the
queue by state.  Per agent group: agents by state and occupancy today and
in this interval.  Figures follow ``acd.core.kpi`` (contacts are filed under
the interval of their arrival; occupancy = busy / staffed time, periods
still running counted up to the routing state's time, as ``report()`` does).

**Service level, live.**  The report's SL is answered within the threshold
/ offered (closed-hours contacts left out).  On a live board a contact that
is still waiting, or ringing, and has waited less than the threshold may
yet be answered in time: it is ``pending``, counted neither in nor out, and
it becomes a miss the moment its wait passes the threshold (answered or
not).  So the interval's SL does not flash 0 % when its first call arrives,
and once no contact is undecided it is exactly the report's figure.
``service_level`` is ``null`` (the page shows a dash) while nothing is
decided.

**Today** is the calendar day in the wallboard's time zone: ``UTC`` unless
the daemon runs with ``--wallboard-tz Area/City`` (``Options.wallboard_tz``),
and a display can pick its own with ``/?tz=Area/City`` (a Kraków screen
showing Kraków's day).  "Today" sums the KPI intervals that start at or
after local midnight (intervals are aligned to the epoch; every real UTC
offset is a multiple of 15 minutes, so with the default 900 s interval the
day boundary is exact).  "This interval" is the KPI interval the daemon's
clock is in.  The figures come from the routing engine's KPI accumulators,
so after a restart (state rebuilt from the journal) they are the same; after
a config *reload* the engine and its KPIs start afresh, so today's counts
restart at the reload.

**The stream** (``GET /wallboard/events``, ``text/event-stream``)::

    retry: 1000                          reconnect after 1 s
    event: snapshot                      at once on (re)connect: the full snapshot,
    id: <seq>                            the same JSON as /wallboard.json
    data: {...}

    event: snapshot                      when something changed (anything the daemon
    id: <seq>                            published; a contact passing its SL threshold,
    data: {...}                          a new interval or day, drain on or off: looked
                                         at every second): at most one per ``throttle``
                                         (0.25 s), a burst of events coalesced

    event: heartbeat                     after ``heartbeat`` s (5) without a snapshot
    data: {"now": t, "seq": n, "boot": "..."}

Every message is a whole snapshot (a few KB: counts, no per-agent detail),
so a client never needs history: the first message after a reconnect is
the whole truth, whichever daemon process answers.  ``boot`` changes when the
daemon restarts.  The page's ``EventSource`` reconnects by itself; the page
also reopens the stream when no message came for three heartbeats (a daemon
that died without closing the connection) and says so on screen.

Snapshots are made on demand from the engine and cached per
``(engine, seq, time, day, interval)``, so many displays cost one
computation per change; what depends on the clock alone (``now``, the
longest waits, the pending contacts of the SL) is stamped per message.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from bisect import bisect_left
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, AsyncIterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from .core.kpi import Acc
from .core.queues import OFFERED, WAITING

__all__ = ["AGENT_STATES", "Wallboard", "add_routes", "resolve_tz", "PAGE"]

#: Visible agent states, in the order the page shows them.
AGENT_STATES = ("ready", "busy", "wrap_up", "offered", "not_ready", "offline")
THROTTLE = 0.25   # s between two snapshots on the stream (at most 4/s)
HEARTBEAT = 5.0   # s of silence before a heartbeat
RETRY_MS = 1000   # the EventSource reconnection delay the stream asks for

_enc = msgspec.json.Encoder()


def resolve_tz(name: str | None) -> tuple[str, tzinfo]:
    """``(name, tzinfo)`` of an IANA zone name (``UTC`` when empty);
    ValueError for a name that is no zone."""
    name = (name or "UTC").strip() or "UTC"
    if name.upper() in ("UTC", "Z", "ETC/UTC"):
        return "UTC", timezone.utc
    if ".." in name or name.startswith("/"):
        raise ValueError(f"unknown time zone {name!r}")
    try:
        return name, ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Warsaw)") from None


def _ratio(a: float, b: float) -> float | None:
    """As ``acd.core.kpi`` rounds its ratios; None where undefined."""
    return round(a / b, 6) if b else None


def _figures(acc: Acc, multi: bool) -> dict[str, Any]:
    """The wallboard's subset of ``acd.core.kpi`` figures for summed counters
    (``multi``: of several queues, where an overflowed contact counts once).
    ``answered_in_sl`` / ``sl_base`` are the service level's numerator and
    denominator before the contacts still undecided are taken out (``_settle``)."""
    offered = acc.offered - acc.overflow_in if multi else acc.offered
    closed = acc.closed_out if multi else acc.closed
    overflowed = acc.overflowed_out if multi else acc.overflowed
    offered_open = offered - closed
    return {
        "offered": offered,
        "answered": acc.answered,
        "abandoned": acc.abandoned,
        "overflowed": overflowed,
        "closed": closed,
        "abandon_rate": _ratio(acc.abandoned, offered_open),
        "asa": _ratio(acc.wait_answered, acc.answered),
        "answered_in_sl": acc.answered_in_sl,
        "sl_base": offered_open,
    }


def _settle(fig: dict[str, Any], arrivals: list[float], now: float, threshold: float,
            target: float) -> dict[str, Any]:
    """``fig`` with the service level at ``now``: contacts not yet answered
    whose wait is still within the threshold (``arrivals``, sorted) may yet
    be answered in time, so they are ``pending``, neither in nor out."""
    pending = len(arrivals) - bisect_left(arrivals, now - threshold)
    out = dict(fig)
    base = out.pop("sl_base") - pending
    sl = _ratio(out["answered_in_sl"], base)
    out["pending"] = pending
    out["service_level"] = sl
    out["sl_met"] = None if sl is None else sl >= target
    return out


class Wallboard:
    """The wallboard of one daemon: snapshots and the event stream."""

    def __init__(self, daemon: Any, tz: str | None = None, *, throttle: float | None = None,
                 heartbeat: float | None = None):
        self.daemon = daemon
        opts = getattr(daemon, "options", None)
        self.tz_name, self.tz = resolve_tz(tz if tz is not None else getattr(opts, "wallboard_tz", None))
        self.throttle = THROTTLE if throttle is None else throttle
        self.heartbeat = HEARTBEAT if heartbeat is None else heartbeat
        self.boot = uuid.uuid4().hex[:12]
        self._zones: dict[str, tuple[str, tzinfo]] = {self.tz_name: (self.tz_name, self.tz)}
        self._cache: dict[str, tuple[tuple, dict[str, Any]]] = {}

    # -- time ---------------------------------------------------------------------------

    def zone(self, name: str | None) -> tuple[str, tzinfo]:
        """The zone a request asks for (``?tz=``), else the default; ValueError if unknown."""
        if not name:
            return self.tz_name, self.tz
        got = self._zones.get(name)
        if got is None:
            got = resolve_tz(name)
            if len(self._zones) < 64:
                self._zones[name] = got
        return got

    def now(self) -> float:
        """The daemon's clock (never behind the routing state's time)."""
        d = self.daemon
        t = d.clock.time()
        eng = d.state.engine
        return t if t > eng.now else eng.now

    @staticmethod
    def day_of(t: float, tz: tzinfo) -> tuple[str, float, float]:
        """(local date, its start, its end) of the day holding ``t``."""
        day = datetime.fromtimestamp(t, tz).date()
        nxt = day + timedelta(days=1)
        # midnight in a DST gap (a few zones) means the moment the clocks jump
        start = datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp()
        return day.isoformat(), start, end

    # -- the snapshot -------------------------------------------------------------------

    def snapshot(self, tz_name: str | None = None) -> dict[str, Any]:
        """The wallboard's data (``GET /wallboard.json``)."""
        now = self.now()
        _, body = self._body(tz_name, now)
        return self._stamp(body, now)

    def _body(self, tz_name: str | None, now: float) -> tuple[tuple, dict[str, Any]]:
        """(version, the snapshot less what depends on the clock), cached."""
        name, tz = self.zone(tz_name)
        d = self.daemon
        state = d.state
        eng = state.engine
        day, day_start, day_end = self.day_of(now, tz)
        iv = int(now // eng.interval)
        key = (id(eng), state.seq, eng.now, len(eng.contacts), day_start, iv, d.draining, d.status)
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            return hit
        body = self._build(name, day, day_start, day_end, iv)
        if len(self._cache) > 16:
            self._cache.clear()
        self._cache[name] = (key, body)
        return key, body

    def version(self, tz_name: str | None = None) -> tuple:
        """Changes whenever the snapshot's figures would (not with ``now``
        and the ticking longest waits alone)."""
        now = self.now()
        key, body = self._body(tz_name, now)
        pending = tuple(len(a) - bisect_left(a, now - q["sl_threshold"])
                        for q in body["queues"] for a in q["_undecided"])
        return key, pending

    def _stamp(self, body: dict[str, Any], now: float) -> dict[str, Any]:
        """A copy of a cached body with what depends on the clock: ``now``,
        the longest waits and the service levels (see ``_settle``)."""
        out = dict(body)
        out["now"] = round(now, 3)
        queues = []
        for q in body["queues"]:
            q = dict(q)
            pend = q.pop("_undecided")
            thr, target = q["sl_threshold"], q["sl_target"]
            q["longest_wait"] = round(max(0.0, now - q["oldest"]), 3) if q["oldest"] is not None else 0.0
            q["today"] = _settle(q["today"], pend[0], now, thr, target)
            q["interval"] = _settle(q["interval"], pend[1], now, thr, target)
            queues.append(q)
        out["queues"] = queues
        tot = dict(body["total"])
        tot["longest_wait"] = max((q["longest_wait"] for q in queues), default=0.0)
        for k in ("today", "interval"):
            fig = tot[k] = dict(tot[k])
            fig.pop("sl_base")
            fig.pop("answered_in_sl")
        out["total"] = tot
        return out

    def _build(self, tz_name: str, day: str, day_start: float, day_end: float, iv_now: int) -> dict[str, Any]:
        d = self.daemon
        state = d.state
        eng = state.engine
        kpi = eng.kpi
        spec = eng.spec
        iv_len = eng.interval
        iv0 = math.ceil(day_start / iv_len - 1e-9)  # the first interval of the day
        ivs_today = range(iv0, iv_now + 1)
        w_day = iv0 * iv_len
        w_iv = iv_now * iv_len

        # agents: visible state per group (by index in the spec), open spans
        n_groups = len(spec.agents)
        by_group = [dict.fromkeys(AGENT_STATES, 0) for _ in range(n_groups)]
        busy_day = [0.0] * n_groups
        staffed_day = [0.0] * n_groups
        busy_iv = [0.0] * n_groups
        staffed_iv = [0.0] * n_groups
        t_end = eng.now  # spans still running count up to the routing state's time, as in report()
        for a in eng.agent_list:
            g = a.group
            counts = by_group[g]
            counts[a.state] = counts.get(a.state, 0) + 1
            if a.busy:
                busy_day[g] += max(0.0, t_end - max(a.busy_since, w_day))
                busy_iv[g] += max(0.0, t_end - max(a.busy_since, w_iv))
            if a.staffed:
                staffed_day[g] += max(0.0, t_end - max(a.staffed_since, w_day))
                staffed_iv[g] += max(0.0, t_end - max(a.staffed_since, w_iv))
        for g in range(n_groups):
            buckets = kpi.by_group[g]
            for i in ivs_today:
                b = buckets.get(i)
                if b is not None:
                    busy_day[g] += b[0]
                    staffed_day[g] += b[1]
                    if i == iv_now:
                        busy_iv[g] += b[0]
                        staffed_iv[g] += b[1]

        groups = []
        for g, ag in enumerate(spec.agents):
            counts = by_group[g]
            groups.append({
                "name": ag.group,
                "site": ag.site,
                "agents": counts,
                "size": sum(counts.values()),
                "staffed": sum(n for s, n in counts.items() if s != "offline"),
                "occupancy": {"today": _ratio(busy_day[g], staffed_day[g]),
                              "interval": _ratio(busy_iv[g], staffed_iv[g])},
            })

        # contacts waiting, per queue; those not answered yet (waiting or
        # ringing), by the interval they are filed under
        oldest: dict[int, float] = {}
        waiting: dict[int, int] = {}
        undecided: dict[int, tuple[list[float], list[float]]] = {}
        for c in eng.contacts.values():
            st = c.state
            if (st == WAITING or st == OFFERED) and c.queue is not None:
                qi = c.queue.idx
                if st == WAITING:
                    waiting[qi] = waiting.get(qi, 0) + 1
                    if qi not in oldest or c.arrival < oldest[qi]:
                        oldest[qi] = c.arrival
                if iv0 <= c.iv <= iv_now:
                    lists = undecided.setdefault(qi, ([], []))
                    lists[0].append(c.arrival)
                    if c.iv == iv_now:
                        lists[1].append(c.arrival)
        for lists in undecided.values():
            lists[0].sort()
            lists[1].sort()

        queues = []
        tot_day, tot_iv = Acc(), Acc()
        for r in eng.rules:
            qi = r.idx
            accs = kpi.by_queue[qi]
            day_acc, iv_acc = Acc(), Acc()
            for i in ivs_today:
                a = accs.get(i)
                if a is not None:
                    day_acc.add(a)
                    if i == iv_now:
                        iv_acc.add(a)
            tot_day.add(day_acc)
            tot_iv.add(iv_acc)
            gidx = kpi.queue_groups[qi]
            agents = dict.fromkeys(AGENT_STATES, 0)
            for g in gidx:
                for s, n in by_group[g].items():
                    agents[s] = agents.get(s, 0) + n
            queues.append({
                "name": r.name,
                "channel": r.channel,
                "sl_threshold": r.threshold,
                "sl_target": r.sl_target,
                "open": getattr(r, "open", True),
                "waiting": waiting.get(qi, 0),
                "oldest": oldest.get(qi),
                "longest_wait": 0.0,
                "today": _figures(day_acc, False),
                "interval": _figures(iv_acc, False),
                "_undecided": undecided.get(qi, ((), ())),
                "agents": agents,
                "groups": [spec.agents[g].group for g in gidx],
            })

        all_agents = dict.fromkeys(AGENT_STATES, 0)
        for counts in by_group:
            for s, n in counts.items():
                all_agents[s] = all_agents.get(s, 0) + n
        total = {
            "waiting": sum(waiting.values()),
            "longest_wait": 0.0,
            "today": _figures(tot_day, True),
            "interval": _figures(tot_iv, True),
        }
        return {
            "kind": "acd.wallboard",
            "version": 1,
            "tenant": d.options.tenant,
            "status": "draining" if d.draining and d.status == "running" else d.status,
            "boot": self.boot,
            "seq": state.seq,
            "now": 0.0,
            "state_time": eng.now,
            "tz": tz_name,
            "today": {"date": day, "start": day_start, "end": day_end},
            "interval": {"start": w_iv, "end": w_iv + iv_len, "length": iv_len},
            "heartbeat": self.heartbeat,
            "total": total,
            "queues": queues,
            "groups": groups,
            "agents": all_agents,
        }

    # -- the stream ---------------------------------------------------------------------

    def _message(self, tz_name: str) -> bytes:
        snap = self.snapshot(tz_name)
        return b"event: snapshot\nid: %d\ndata: " % snap["seq"] + _enc.encode(snap) + b"\n\n"

    async def stream(self, tz_name: str | None = None) -> AsyncIterator[bytes]:
        """The event stream of one client (see the module docstring)."""
        name, _ = self.zone(tz_name)
        d = self.daemon
        loop = asyncio.get_running_loop()
        q = d.subscribe()
        try:
            yield b"retry: %d\n\n" % RETRY_MS
            version = self.version(name)
            yield self._message(name)
            last_sent = last_msg = loop.time()
            dirty = False
            while True:
                now = loop.time()
                if dirty:  # something changed: send when the throttle allows
                    wait = self.throttle - (now - last_sent)
                else:  # look again at least every second: time alone changes figures too
                    wait = min(1.0, self.heartbeat - (now - last_msg))
                if wait > 0:
                    try:
                        item = await asyncio.wait_for(q.get(), wait)
                    except asyncio.TimeoutError:
                        item = False
                    if item is None:
                        return  # the daemon is shutting down
                    if item is not False:
                        dirty = True
                while not q.empty():  # a burst counts once
                    if q.get_nowait() is None:
                        return
                    dirty = True
                if d.status not in ("running", "stopping"):
                    return
                if not dirty and self.version(name) != version:
                    dirty = True  # a contact passed its SL threshold, a new interval or day, drain on/off
                now = loop.time()
                if dirty and now - last_sent >= self.throttle:
                    version = self.version(name)
                    dirty = False
                    last_sent = last_msg = now
                    yield self._message(name)
                elif not dirty and now - last_msg >= self.heartbeat:
                    last_msg = now
                    hb = {"now": round(self.now(), 3), "seq": d.state.seq, "boot": self.boot}
                    yield b"event: heartbeat\ndata: " + _enc.encode(hb) + b"\n\n"
        finally:
            d.unsubscribe(q)


# --- routes ----------------------------------------------------------------------------


def add_routes(router: Any, daemon: Any) -> Wallboard:
    """``GET /``, ``/wallboard.json`` and ``/wallboard/events`` on ``router``."""
    from .http import HttpError, Response, StreamResponse, json_response

    wb = Wallboard(daemon)
    page = PAGE.encode()

    def _tz(req: Any) -> str | None:
        name = req.query.get("tz") or None
        if name is not None:
            try:
                wb.zone(name)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
        return name

    def index(req: Any) -> Response:
        return Response(200, page, "text/html; charset=utf-8", {
            "Cache-Control": "no-cache",
            # the page is self-contained: forbid anything from elsewhere
            "Content-Security-Policy": "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
                                       "style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
                                       "form-action 'none'",
            "X-Content-Type-Options": "nosniff",
        })

    def data(req: Any) -> Response:
        return json_response(wb.snapshot(_tz(req)), headers={"Cache-Control": "no-store"})

    def events(req: Any) -> StreamResponse:
        name = _tz(req)
        return StreamResponse(wb.stream(name), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    router.get("/", index)
    router.get("/wallboard.json", data)
    router.get("/wallboard/events", events)
    return wb


# --- the page --------------------------------------------------------------------------

_CSS = r"""
:root{--bg:#0a0d12;--card:#141a23;--card2:#1b2330;--line:#2a3444;--ink:#f3f6fa;--muted:#a3b1c2;
--ok:#37d67a;--okbg:#0f3a24;--bad:#ff5f56;--badbg:#4a1512;--warn:#ffb547;
--ready:#37d67a;--busy:#4ea8ff;--wrap_up:#c08bff;--offered:#2fd5e6;--not_ready:#ffb547;--offline:#6c7a8c}
*{box-sizing:border-box}
html{font-size:clamp(11px,0.94vw,40px);background:var(--bg);color:var(--ink)}
body{margin:0;font-family:"DejaVu Sans","Liberation Sans",Arial,Helvetica,sans-serif;line-height:1.15;
font-variant-numeric:tabular-nums;min-height:100vh;display:flex;flex-direction:column}
header{display:flex;align-items:center;gap:1.4rem;padding:.45rem 1.4rem;background:#0f141c;border-bottom:2px solid var(--line)}
header h1{font-size:1.6rem;margin:0;font-weight:700;letter-spacing:.02em}
header h1 small{color:var(--muted);font-weight:400;font-size:1.1rem;margin-left:.6rem}
#conn{font-weight:700;font-size:1.05rem;padding:.3rem .8rem;border-radius:2rem;border:2px solid currentColor;white-space:nowrap}
#conn.live{color:var(--ok)}#conn.wait{color:var(--warn)}#conn.down{color:var(--bad)}
#conn.down,#conn.wait{animation:blink 1.2s steps(2,start) infinite}
@keyframes blink{to{opacity:.45}}
.spacer{flex:1}
#day{color:var(--muted);font-size:1.2rem;text-align:right}
#clock{font-size:2.5rem;font-weight:700;letter-spacing:.03em}
#banner{display:none;background:var(--badbg);color:#fff;font-size:1.3rem;font-weight:700;padding:.5rem 1.4rem}
#banner.on{display:block}
main{flex:1;padding:.8rem 1.4rem 0;display:flex;flex-direction:column;gap:.8rem}
.strip{display:grid;grid-template-columns:repeat(6,minmax(0,1fr));gap:.8rem}
.stat{background:var(--card);border:1px solid var(--line);border-radius:.6rem;padding:.45rem 1rem .5rem}
.stat .k,.lbl{color:var(--muted);font-size:.9rem;text-transform:uppercase;letter-spacing:.05em;font-weight:600;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.stat .v{font-size:2.7rem;font-weight:700;margin-top:.05rem;white-space:nowrap}
.stat .v small{font-size:1.3rem;color:var(--muted);font-weight:400;margin-left:.4rem}
#queues{display:grid;grid-template-columns:repeat(auto-fit,minmax(22rem,1fr));gap:.8rem}
.q{background:var(--card);border:1px solid var(--line);border-radius:.8rem;padding:.9rem 1.1rem 1rem;
display:flex;flex-direction:column;gap:.55rem;border-top:.45rem solid var(--ok);min-width:0}
.q.missed{border-top-color:var(--bad)}.q.none{border-top-color:var(--offline)}
.qh{display:flex;align-items:baseline;gap:.7rem;white-space:nowrap;overflow:hidden}
.qh h2{margin:0;font-size:2rem;font-weight:700}
.qh .meta{color:var(--muted);font-size:1rem;overflow:hidden;text-overflow:ellipsis}
.qh .closed{color:var(--warn);font-weight:700;font-size:1.05rem}
.big{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1.45fr);gap:.6rem}
.big .v{font-size:5.3rem;font-weight:800;line-height:1;margin-top:.1rem;white-space:nowrap}
.big .v.hot{color:var(--warn)}
.over{display:none;color:var(--bg);background:var(--warn);border-radius:.3rem;padding:0 .35rem;margin-left:.4rem;letter-spacing:0}
.over.on{display:inline}
.big .v.zero{color:var(--muted)}
.sls{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:.6rem}
.sl{border-radius:.5rem;padding:.35rem .7rem .4rem;background:var(--card2);border:2px solid transparent;min-width:0}
.sl .v{font-size:2.6rem;font-weight:800;line-height:1.05;white-space:nowrap}
.sl .v .sym{font-size:.6em;margin-right:.2em;vertical-align:.14em}
.sl.met{border-color:#1e6b40}.sl.met .v{color:var(--ok)}
.sl.missed{background:var(--badbg);border-color:var(--bad)}.sl.missed .v{color:#ff8a83}
.sl.none .v{color:var(--muted)}
.counts{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:.6rem;white-space:nowrap}
.counts .n{font-size:2.2rem;font-weight:700;line-height:1.1}
.counts .n small{font-size:.55em;color:var(--muted);font-weight:400;margin-left:.4rem}
.bar{display:flex;height:.8rem;border-radius:.4rem;overflow:hidden;background:#222b38}
.bar i{display:block;height:100%}
.states{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:.15rem .8rem;font-size:1.05rem;color:var(--muted);white-space:nowrap}
.states span b{color:var(--ink);font-size:1.45rem;margin-right:.3rem}
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:.2rem;margin-right:.35rem;vertical-align:.05rem}
.s-ready{background:var(--ready)}.s-busy{background:var(--busy)}.s-wrap_up{background:var(--wrap_up)}
.s-offered{background:var(--offered)}.s-not_ready{background:var(--not_ready)}.s-offline{background:var(--offline)}
section.groups{background:var(--card);border:1px solid var(--line);border-radius:.8rem;padding:.4rem 1.1rem .5rem}
section.groups h3{margin:.1rem 0 .2rem;font-size:1.05rem;color:var(--muted);text-transform:uppercase;letter-spacing:.08em}
table{width:100%;border-collapse:collapse;font-size:1.4rem}
th{color:var(--muted);font-weight:600;font-size:1rem;text-transform:uppercase;letter-spacing:.06em;text-align:right;padding:.2rem .6rem;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td{padding:.22rem .6rem;text-align:right;border-top:1px solid var(--line);white-space:nowrap}
td.name{font-weight:700}td.name small{color:var(--muted);font-weight:400;margin-left:.5rem;font-size:.8em}
td.z{color:#5d6b7c}
td.occ{width:16%}
.occ .ob{display:inline-block;width:6rem;height:.7rem;background:#222b38;border-radius:.35rem;margin-right:.6rem;vertical-align:.1rem;overflow:hidden}
.occ .ob i{display:block;height:100%;background:var(--busy)}
footer{color:var(--muted);font-size:.95rem;padding:.5rem 1.4rem .6rem;display:flex;gap:1.5rem;flex-wrap:wrap}
.empty{color:var(--muted);font-size:1.6rem;padding:2rem}
/* more than four queues: smaller cards, so a 1080p screen still holds them */
main.dense .big .v{font-size:3.6rem}main.dense .sl .v{font-size:2rem}main.dense .qh h2{font-size:1.6rem}
main.dense .states{display:none}main.dense .counts .n{font-size:1.6rem}main.dense .q{gap:.4rem;padding:.6rem .9rem}
main.dense #queues{grid-template-columns:repeat(auto-fit,minmax(18rem,1fr))}
"""

_JS = r"""
"use strict";
const STATES = ["ready", "busy", "wrap_up", "offered", "not_ready", "offline"];
const LABEL = {ready: "ready", busy: "busy", wrap_up: "wrap-up", offered: "offered", not_ready: "not ready",
               offline: "offline"};
const params = new URLSearchParams(location.search);
const QS = params.get("tz") ? "?tz=" + encodeURIComponent(params.get("tz")) : "";
const $ = (s, el) => (el || document).querySelector(s);
let snap = null, recvAt = 0, lastMsg = 0, es = null, shape = "", backoff = 1000, everLive = false;
let lastBoot = null;

function fmtInt(n) { return (n == null) ? "\u2014" : Number(n).toLocaleString("en-US"); }
function fmtPct(x) { return (x == null) ? "\u2014" : Math.floor(x * 100 + 1e-9) + "%"; }
function fmtWait(s) {
  s = Math.max(0, Math.floor(s));
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(r).padStart(2, "0");
}
function tzOpt() { return snap && snap.tz !== "UTC" ? {timeZone: snap.tz} : {timeZone: "UTC"}; }
function fmtClock(t, secs) {
  return new Date(t * 1000).toLocaleTimeString("en-GB", Object.assign({hour: "2-digit", minute: "2-digit",
    second: secs ? "2-digit" : undefined, hour12: false}, tzOpt()));
}
function fmtDate(t) {
  return new Date(t * 1000).toLocaleDateString("en-GB", Object.assign({weekday: "short", day: "numeric",
    month: "short", year: "numeric"}, tzOpt()));
}
function nowEst() { return snap ? snap.now + (performance.now() - recvAt) / 1000 : Date.now() / 1000; }
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]); }
function pctTarget(q) { return Math.round(q.sl_target * 100) + "% in " + q.sl_threshold + " s"; }

function setConn(cls, text) { const c = $("#conn"); c.className = cls; c.textContent = text; }

function build(s) {
  const qs = s.queues.map(q => `
  <article class="q" data-queue="${esc(q.name)}">
    <div class="qh"><h2>${esc(q.name)}</h2><span class="meta">${esc(q.channel)} \u00b7 SL ${pctTarget(q)}</span>
      <span class="closed" data-f="closed"></span></div>
    <div class="big">
      <div><div class="lbl">Waiting</div><div class="v" data-f="waiting"></div></div>
      <div><div class="lbl">Longest wait<span class="over" data-f="over">\u25B2 &gt;${q.sl_threshold} s</span></div>
        <div class="v" data-f="longest"></div></div>
    </div>
    <div class="sls">
      <div class="sl" data-sl="today"><div class="lbl">SL today</div><div class="v" data-f="sl-today"></div></div>
      <div class="sl" data-sl="interval"><div class="lbl">SL <span data-f="iv-label"></span></div>
        <div class="v" data-f="sl-interval"></div></div>
    </div>
    <div class="counts"><div><div class="lbl">Answered today</div><div class="n" data-f="answered"></div></div>
      <div><div class="lbl">Abandoned today</div><div class="n"><span data-f="abandoned"></span><small
        data-f="abandon-rate"></small></div></div></div>
    <div><div class="bar" data-f="bar"></div>
      <div class="states" style="margin-top:.4rem">${STATES.map(st =>
        `<span><i class="dot s-${st}"></i><b data-f="agents-${st}"></b>${LABEL[st]}</span>`).join("")}</div></div>
  </article>`).join("");
  $("#queues").innerHTML = qs || '<div class="empty">No queues configured.</div>';
  const head = "<tr><th>Agent group</th>" + STATES.map(st => `<th><i class="dot s-${st}"></i>${LABEL[st]}</th>`).join("")
    + "<th>Occupancy today</th><th>This interval</th></tr>";
  const rows = s.groups.map(g => `<tr data-group="${esc(g.name)}"><td class="name">${esc(g.name)}${g.site ?
    `<small>${esc(g.site)}</small>` : ""}</td>` + STATES.map(st => `<td data-f="agents-${st}"></td>`).join("")
    + '<td class="occ"><span class="ob"><i data-f="occ-bar"></i></span><span data-f="occ-today"></span></td>'
    + '<td data-f="occ-interval"></td></tr>').join("");
  $("#groups").innerHTML = head + rows;
}

function slBox(box, v, met) {
  box.className = "sl " + (v == null ? "none" : met ? "met" : "missed");
  const sym = v == null ? "" : met ? "\u2713" : "\u2717";
  const el = box.querySelector(".v");
  el.innerHTML = (sym ? `<span class="sym">${sym}</span>` : "") + `<span data-f="${el.dataset.f}-value">${fmtPct(v)}</span>`;
  el.title = v == null ? "nothing offered yet" : met ? "target met" : "below target";
}

function render(s) {
  const k = s.queues.map(q => q.name + "/" + q.channel + "/" + q.sl_target + "/" + q.sl_threshold).join("|") + "#"
    + s.groups.map(g => g.name + "/" + g.site).join("|");
  if (k !== shape) { build(s); shape = k; $("main").classList.toggle("dense", s.queues.length > 4); }
  const ivLabel = fmtClock(s.interval.start) + "\u2013" + fmtClock(s.interval.end);
  let missed = 0, withTraffic = 0;
  for (const q of s.queues) {
    const el = $(`[data-queue="${CSS.escape(q.name)}"]`);
    $('[data-f="waiting"]', el).textContent = fmtInt(q.waiting);
    $('[data-f="waiting"]', el).classList.toggle("zero", q.waiting === 0);
    $('[data-f="iv-label"]', el).textContent = ivLabel;
    $('[data-f="closed"]', el).textContent = q.open === false ? "CLOSED" : "";
    slBox($('[data-sl="today"]', el), q.today.service_level, q.today.sl_met);
    slBox($('[data-sl="interval"]', el), q.interval.service_level, q.interval.sl_met);
    el.className = "q " + (q.today.service_level == null ? "none" : q.today.sl_met ? "met" : "missed");
    if (q.today.service_level != null) { withTraffic++; if (!q.today.sl_met) missed++; }
    $('[data-f="answered"]', el).textContent = fmtInt(q.today.answered);
    $('[data-f="abandoned"]', el).textContent = fmtInt(q.today.abandoned);
    $('[data-f="abandon-rate"]', el).textContent = q.today.abandon_rate == null ? "" :
      (q.today.abandon_rate * 100).toFixed(1) + "%";
    const total = STATES.reduce((a, st) => a + q.agents[st], 0) || 1;
    $('[data-f="bar"]', el).innerHTML = STATES.map(st => q.agents[st] ?
      `<i class="s-${st}" style="width:${(100 * q.agents[st] / total).toFixed(2)}%"></i>` : "").join("");
    for (const st of STATES) $(`[data-f="agents-${st}"]`, el).textContent = fmtInt(q.agents[st]);
  }
  for (const g of s.groups) {
    const row = $(`[data-group="${CSS.escape(g.name)}"]`);
    for (const st of STATES) {
      const td = $(`[data-f="agents-${st}"]`, row);
      td.textContent = fmtInt(g.agents[st]);
      td.classList.toggle("z", g.agents[st] === 0);
    }
    $('[data-f="occ-today"]', row).textContent = fmtPct(g.occupancy.today);
    $('[data-f="occ-bar"]', row).style.width = ((g.occupancy.today || 0) * 100).toFixed(1) + "%";
    $('[data-f="occ-interval"]', row).textContent = fmtPct(g.occupancy.interval);
  }
  const t = s.total;
  $("#t-waiting").textContent = fmtInt(t.waiting);
  $("#t-answered").textContent = fmtInt(t.today.answered);
  $("#t-abandoned").textContent = fmtInt(t.today.abandoned);
  $("#t-abandon-rate").textContent = t.today.abandon_rate == null ? "" : (t.today.abandon_rate * 100).toFixed(1) + "%";
  $("#t-staffed").textContent = fmtInt(s.groups.reduce((a, g) => a + g.staffed, 0));
  $("#t-ready").textContent = fmtInt(s.agents.ready);
  $("#t-sl").textContent = withTraffic ? (withTraffic - missed) + " of " + withTraffic : "\u2014";
  $("#tenant").textContent = s.tenant;
  $("#day").innerHTML = esc(fmtDate(s.now)) + "<br>" + esc(s.tz === "UTC" ? "UTC" : s.tz);
  $("#f-today").textContent = "today = " + s.today.date + " from 00:00 " + s.tz;
  $("#f-interval").textContent = "interval " + ivLabel + " (" + Math.round(s.interval.length / 60) + " min)";
  $("#f-seq").textContent = "seq " + s.seq;
  $("#banner").className = s.status === "draining" ? "on" : "";
  $("#banner").textContent = s.status === "draining" ? "DRAINING \u2014 new contacts are refused" : "";
  document.body.dataset.seq = s.seq;
  document.body.dataset.boot = s.boot;
  document.body.dataset.now = s.now;
  tick();
}

function tick() {
  const now = nowEst();
  $("#clock").textContent = fmtClock(now, true);
  if (!snap) return;
  let longest = 0;
  for (const q of snap.queues) {
    const el = $(`[data-queue="${CSS.escape(q.name)}"] [data-f="longest"]`);
    if (!el) continue;
    const w = q.oldest == null ? 0 : Math.max(0, now - q.oldest);
    longest = Math.max(longest, w);
    el.textContent = fmtWait(w);
    el.classList.toggle("hot", w > q.sl_threshold);
    el.parentNode.querySelector('[data-f="over"]').classList.toggle("on", w > q.sl_threshold);
    el.classList.toggle("zero", q.oldest == null);
    el.title = w > q.sl_threshold ? "over the " + q.sl_threshold + " s threshold" : "";
  }
  $("#t-longest").textContent = fmtWait(longest);
  const quiet = (performance.now() - lastMsg) / 1000;
  const limit = 3 * (snap.heartbeat || 5);
  if (es && quiet > limit) {  // a daemon gone without closing the stream
    setConn("down", "NO DATA \u2014 reconnecting");
    reconnect();
  } else if ($("#conn").className !== "live" && es && es.readyState === 1 && quiet < limit) {
    setConn("live", "\u25CF LIVE");
  }
  $("#f-updated").textContent = "updated " + fmtClock(snap.now, true) + (quiet > limit ? " (stale)" : "");
}

function apply(s) {
  if (lastBoot && s.boot !== lastBoot) document.body.dataset.restarts = (+(document.body.dataset.restarts || 0) + 1);
  lastBoot = s.boot;
  snap = s; recvAt = performance.now(); lastMsg = recvAt;
  render(s);
}

function connect() {
  es = new EventSource("/wallboard/events" + QS);
  es.addEventListener("snapshot", e => { apply(JSON.parse(e.data)); backoff = 1000; setConn("live", "\u25CF LIVE"); });
  es.addEventListener("heartbeat", e => {
    lastMsg = performance.now();
    if (snap) { const h = JSON.parse(e.data); snap.now = h.now; recvAt = lastMsg; }
  });
  es.onopen = () => { lastMsg = performance.now(); };
  es.onerror = () => {
    setConn(everLive || snap ? "wait" : "down", "RECONNECTING\u2026");
    if (es.readyState === 2) reconnect();  // closed for good (an HTTP error): retry ourselves
  };
}
let reconnecting = false;
function reconnect() {
  if (reconnecting) return;
  reconnecting = true;
  if (es) { es.close(); es = null; }
  setTimeout(() => { reconnecting = false; lastMsg = performance.now(); connect(); }, backoff);
  backoff = Math.min(backoff * 2, 10000);
}

setConn("wait", "CONNECTING\u2026");
setInterval(tick, 250);
fetch("/wallboard.json" + QS, {cache: "no-store"})
  .then(r => r.ok ? r.json() : r.json().then(e => {  // e.g. an unknown ?tz=
    $("#banner").className = "on"; $("#banner").textContent = e.detail || ("HTTP " + r.status); return null; }))
  .then(s => { if (s) apply(s); }).catch(() => {}).finally(connect);
"""

PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>acd wallboard</title>
<style>{_CSS}</style></head>
<body>
<header><h1>acd wallboard<small id="tenant"></small></h1><span id="conn" class="wait">CONNECTING\u2026</span>
<span class="spacer"></span><div id="day"></div><div id="clock">--:--:--</div></header>
<div id="banner"></div>
<main>
<div class="strip">
 <div class="stat"><div class="k">Waiting now</div><div class="v" id="t-waiting">\u2014</div></div>
 <div class="stat"><div class="k">Longest wait</div><div class="v" id="t-longest">\u2014</div></div>
 <div class="stat"><div class="k">Queues on SL target</div><div class="v" id="t-sl">\u2014</div></div>
 <div class="stat"><div class="k">Answered today</div><div class="v" id="t-answered">\u2014</div></div>
 <div class="stat"><div class="k">Abandoned today</div><div class="v"><span id="t-abandoned">\u2014</span><small id="t-abandon-rate"></small></div></div>
 <div class="stat"><div class="k">Ready / logged in</div><div class="v"><span id="t-ready">\u2014</span><small>/</small> <span id="t-staffed">\u2014</span></div></div>
</div>
<div id="queues"></div>
<section class="groups"><h3>Agent groups</h3><table id="groups"></table></section>
</main>
<footer><span id="f-today"></span><span id="f-interval"></span><span>\u2713 SL target met \u00b7 \u2717 below target \u00b7
\u25B2 waiting longer than the SL threshold</span><span class="spacer"></span><span id="f-updated"></span><span id="f-seq"></span></footer>
<script>{_JS}</script>
</body></html>
"""
