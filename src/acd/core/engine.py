"""The routing engine: a deterministic, sans-IO state machine.

    engine = Engine(spec, rng=random.Random(seed), start=t0)
    decisions = engine.handle(event, now)     # an inbound event at time now
    t = engine.next_deadline()                # when time alone changes something
    decisions = engine.advance(t)             # let that happen

It imports no asyncio, sockets or clock and keeps no global state: the daemon
feeds it wall-clock time, the replay virtual time, and both get the same
decisions for the same inputs (same seed).

**Contact lifecycle** (``CONTACT_TRANSITIONS``)::

    arrive -> waiting -> offered -> connected -> wrap_up -> completed
                 ^          |  (reject / ring time-out / agent leaves:
                 +----------+   back to its old place in the queue)
    waiting|offered --abandon--> abandoned
    waiting --max_wait--> overflowed (to another queue, or out)

**Routing** happens at two moments only, each O(pools x log n):

* a contact enters a pool (arrival, requeue, escalation, overflow): the
  pool's strategy index yields the best free agent, or the contact waits;
* an agent gets free capacity (ready, end of wrap-up, end of a chat...): it
  takes the best waiting contact across every pool it belongs to, by effective
  priority, then earliest arrival in acd (so queues that share agents are
  served in one deterministic order); only if there is none does it enter the
  idle indexes.

Hence the invariant checked by the tests: after every call, no free agent is
eligible for a contact that waits (and has not refused it).

**Time** is float seconds since the Unix epoch.  Deadlines (ring time-outs,
wrap-up ends, escalation steps, max-wait) sit in one heap keyed by
``(time, sequence)``, so same-time events run in a fixed order; entries are
checked when they fire instead of being cancelled.  Deadlines due at or before
``now`` run before the event given to ``handle``.

**Errors**: a bad inbound event (unknown contact or agent, wrong state)
changes nothing and yields ``InputRejected`` with the reason; misuse by the
caller (time going backwards) raises ``ValueError``.
"""

from __future__ import annotations

import math
from math import isfinite as _isfinite
from heapq import heappop, heappush
from random import Random
from typing import Any, Callable

from .agents import (
    NOT_READY, PRESENCE, PRESENCE_NAMES, PRESENCE_REFUSALS, READY, Agent,
)
from .events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged, ContactAbandoned,
    ContactArrived, ContactCompleted, ContactConnected, ContactEnded, ContactEscalated,
    ContactOffered, ContactOverflowed, ContactQueued, ContactRequeued, CustomerAbandoned,
    InputRejected, OfferAccepted, OfferRejected, WrapUpDone, tag_of,
)
from .kpi import Kpi
from .queues import CONNECTED, ENDED, NEW, OFFERED, WAITING, WRAP_UP, Contact, Pool
from .rules import QueueRule, compile_rules, pool_target, proficiency
from .spec import Spec, known_names, uses_calendar
from .strategies import make_index

# deadline kinds
_RING, _WRAP, _ESCALATE, _MAX_WAIT, _CALENDAR = 0, 1, 2, 3, 4

#: Which inbound contact events are legal in which contact state.
CONTACT_TRANSITIONS: dict[str, tuple[int, ...]] = {
    "contact.abandoned": (WAITING, OFFERED),
    "offer.accepted": (OFFERED,),
    "offer.rejected": (OFFERED,),
    "contact.ended": (CONNECTED,),
}
_STATE_WORDS = ("new", "waiting", "offered", "connected", "in wrap-up", "ended")


_INF = float("inf")
_new = object.__new__


def _live(entry: tuple) -> bool:
    """Can this deadline still act?  (Deadlines are never cancelled: a
    contact that moved on simply makes its old deadlines dead.)"""
    _, _, kind, c, token = entry
    if kind == _RING:
        return c.state == OFFERED and c.offers == token
    if kind == _WRAP:
        return c.state == WRAP_UP
    if kind == _ESCALATE:
        return c.state == WAITING and c.entry == token[0] and c.step < token[1]
    if kind == _MAX_WAIT:
        return c.state == WAITING and c.entry == token
    return True  # _CALENDAR: the next shift, break or hours change


class Engine:
    """Routes contacts to agents.  See the module docstring."""

    def __init__(self, spec: Spec, *, rng: Random | None = None, start: float = 0.0,
                 calendar: str = "drive"):
        """``calendar``: ``"drive"`` (the replay) logs agents in and out, and
        sends them on breaks, as their shifts say; ``"observe"`` (the daemon,
        where the telephony side's login events are the truth) leaves
        presence alone.  Either way, business hours and follow-the-sun
        preferences route contacts."""
        if calendar not in ("drive", "observe"):
            raise ValueError(f"calendar must be 'drive' or 'observe', got {calendar!r}")
        if not math.isfinite(start):
            raise ValueError(f"start must be a finite time, got {start!r}")
        self.spec = spec
        self.rng = rng if rng is not None else Random(0)
        self.now = start
        self.interval = spec.interval
        self.rules: list[QueueRule] = compile_rules(spec)
        self.queues: dict[str, QueueRule] = {r.name: r for r in self.rules}
        self.skill_names, self.attribute_names = known_names(spec)
        self.agents: dict[str, Agent] = {}
        self.agent_list: list[Agent] = []
        group_names = []
        for gi, g in enumerate(spec.agents):
            group_names.append(g.group)
            cap = (g.capacity.voice, g.capacity.chat, g.capacity.email)
            for aid in g.agent_ids():
                a = Agent(len(self.agent_list), aid, gi, g.skills, g.attributes, cap, g.blocking,
                          g.max_missed_offers, g.site)
                a.auto_answer = g.auto_answer
                self.agents[aid] = a
                self.agent_list.append(a)
        self.kpi = Kpi([r.name for r in self.rules], [r.threshold for r in self.rules],
                       [r.sl_target for r in self.rules], group_names, self.interval, start,
                       group_sites=[g.site for g in spec.agents])
        self.group_agents: dict[str, list[Agent]] = {}
        for a in self.agent_list:
            self.group_agents.setdefault(spec.agents[a.group].group, []).append(a)
        # The calendar (shifts, business hours, follow-the-sun), if any.
        self.calendar_mode = calendar
        self.calendar: Any = None  # acd.core.calendar.Calendar
        self._cursor: Any = None
        if uses_calendar(spec):
            from .calendar import Calendar  # only configs with calendars pay for loading it

            cal = self.calendar = Calendar(spec)
            for r in self.rules:
                if cal.has_hours(r.name):
                    r.open = cal.queue_open(r.name, start)
                    r.closed_rule = cal.closed_rule(r.name)
                if r.fts:
                    r.pref = cal.preferred_sites(r.name, start)
        self.contacts: dict[str, Contact] = {}
        self.pools: dict[tuple, Pool] = {}
        self.rejected: dict[str, int] = {}
        self._deadlines: list[tuple] = []
        self._seq = 0
        self._offer_seq = 0
        self._out: list = []
        self._handlers: dict[type, Callable[[Any], None]] = {
            ContactArrived: self._on_arrived,
            CustomerAbandoned: self._on_abandoned,
            OfferAccepted: self._on_accepted,
            OfferRejected: self._on_rejected,
            ContactEnded: self._on_ended,
            AgentLogin: self._on_login,
            AgentLogout: self._on_logout,
            AgentReady: self._on_ready,
            AgentNotReady: self._on_not_ready,
            WrapUpDone: self._on_wrap_up_done,
        }
        # Base pools exist from the start so free agents are indexed at once.
        for r in self.rules:
            for step in range(len(r.rings)):
                self._pool(r, step, None)
            r.base_pool = self._pool(r, 0, None)
        for r in self.rules:
            groups = {a.group for step in range(len(r.rings)) for a in self._pool(r, step, None).agents}
            self.kpi.queue_groups[r.idx] = sorted(groups)
        # Initial presence from the config, or from the calendar for the
        # groups it drives; no events (nothing happened yet).
        driven = set(self.calendar.groups) if self.calendar and calendar == "drive" else set()
        for gi, g in enumerate(spec.agents):
            if g.group in driven:
                on, reason = self.calendar.group_state(g.group, start)
                presence = (NOT_READY if reason else READY) if on else None
            else:
                presence = {"ready": READY, "not_ready": NOT_READY, "offline": None}[g.initial]
                reason = "initial" if presence == NOT_READY else None
            if presence is None:
                continue
            for a in self.group_agents[g.group]:
                a.presence = presence
                a.reason = reason
                a.state = a.visible_state()
                self._refresh(a)
        if self.calendar is not None:
            for g in self.calendar.groups:
                on, reason = self.calendar.group_state(g, start)
                for a in self.group_agents.get(g, ()):
                    a.expected = False
                    self._expect(a, on and not reason)
            self._cursor = self.calendar.cursor(start)
            self._schedule_calendar()
        self._out = []

    # ------------------------------------------------------------------ API

    def handle(self, event: Any, now: float) -> list:
        """Apply one inbound event at time ``now``; return the decisions and
        state changes it caused (deadlines due by ``now`` first; each output
        carries its own time)."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise TypeError(f"not an inbound event: {event!r}")
        out = self._step(now)
        handler(event)
        return out

    def _step(self, now: float) -> list:
        """The start of every call that moves time (``handle``, ``advance``,
        ``arrive``, ``end``): refuse a ``now`` before the engine's time or
        not finite, fire the deadlines due by ``now``, move the clock; the
        list returned collects the call's outputs."""
        if not now >= self.now or now == _INF:  # also refuses NaN
            raise self._time_error(now)
        out = self._out = []
        d = self._deadlines
        if d and d[0][0] <= now:
            self._run_deadlines(now)
        self.now = now
        return out

    def _time_error(self, now: float) -> ValueError:
        return ValueError(f"time went backwards: {now!r} < {self.now!r}"
                          if now < self.now else f"time must be finite, got {now!r}")

    def arrive(self, now: float, contact: str, queue: str, channel: str | None, priority: float,
               skills: dict[str, int], attributes: dict[str, Any]) -> list:
        """``handle(ContactArrived(contact=..., ...), now)`` without building
        the event: the replay's hot path, with the same decisions and outputs.
        Anything but a valid arrival in an open queue takes ``handle``'s path."""
        # _step(now), inlined: this is the replay's hot path
        if not now >= self.now or now == _INF:  # also refuses NaN
            raise self._time_error(now)
        out = self._out = []
        d = self._deadlines
        if d and d[0][0] <= now:
            self._run_deadlines(now)
        self.now = now
        rule = self.queues.get(queue)
        if (rule is None or skills or not rule.open or contact in self.contacts
                or (channel is not None and channel != rule.channel) or not _isfinite(priority)):
            self._on_arrived(ContactArrived(contact=contact, queue=queue, channel=channel, priority=priority,
                                            skills=skills, attributes=attributes))
            return out
        # _on_arrived and _enter_queue, inlined for a new contact; the
        # Contact built field by field (its __init__ and what _enter_queue sets)
        self._seq += 1
        iv = int(now // self.interval)
        c = _new(Contact)
        c.id = contact
        c.seq = self._seq
        c.ch = ch = rule.ch
        c.base_priority = priority
        c.skills = skills
        c.skill_key = None  # no extra skills
        c.attributes = attributes
        c.arrival = now
        c.iv = iv
        c.excluded = None
        self.contacts[contact] = c
        c.queue = rule
        c.entered = now
        c.entry = 1
        c.step = 0
        c.priority = priority = priority + rule.priority
        c.key = rule.aging_per_s * now - priority
        acc = self.kpi.by_queue[rule.idx].get(iv)
        if acc is None:
            acc = self.kpi.acc_for(rule.idx, iv)
        c.acc = acc
        acc.offered += 1
        if rule.step_after:
            for i, after in enumerate(rule.step_after):
                self._schedule(now + after, _ESCALATE, c, (1, i + 1))
        if rule.max_wait is not None:
            self._schedule(now + rule.max_wait, _MAX_WAIT, c, 1)
        pool = c.pool = rule.base_pool
        a = pool.idle.pop(None, iv)  # _route_contact
        if a is None:
            c.ver = 0
            c.state = NEW
            c.agent = None
            c.offers = 0
            self._wait(c)
            out.append(ContactQueued(time=now, contact=contact, queue=rule.name, priority=priority))
            return out
        if not a.auto_answer:
            c.ver = 0
            c.state = NEW
            c.agent = None
            c.offers = 0
            self._offer(c, a)
            self._refresh(a)
            return out
        # _offer and _connect, inlined: offered and answered at once (no wait)
        c.ver = 1
        c.agent = a
        c.offers = 1
        a.used[ch] += 1
        a.keyver += 1  # its idle-index keys (load, last offer) changed
        a.contacts[contact] = c
        self._offer_seq += 1
        a.last_offer = self._offer_seq
        if a.iv != iv:
            a.iv = iv
            a.iv_count = 0
        a.iv_count += 1
        out.append(ContactOffered(time=now, contact=contact, queue=rule.name, agent=a.id,
                                  channel=rule.channel, offer=1, timeout=0.0, auto_answer=True))
        a.n_talking += 1
        a.missed = 0
        c.state = CONNECTED
        c.connected_at = now
        acc.answer(0.0, rule.threshold)
        if a.site is not None:
            acc.site_answered(a.site)
        out.append(ContactConnected(time=now, contact=contact, queue=rule.name, agent=a.id, wait=0.0))
        if a.only_ch != ch or a.used[ch] < a.cap[ch] or a.presence != READY:
            self._refresh(a)
            return out
        # _refresh, inlined for a ready one-channel agent now full: nothing
        # to feed it; out of the idle indexes; busy
        if a.pushed[ch] is not None:
            a.ver[ch] += 1
            a.pushed[ch] = None
        state = "offered" if a.n_offered else "busy"
        if state != a.state:
            out.append(AgentStateChanged(time=now, agent=a.id, state=state, previous=a.state))
            a.state = state
        if not a.staffed:
            self._account(a, True, True)
        elif not a.busy:
            a.busy = True
            a.busy_since = now
            a.busy_iv = iv
        return out

    def end(self, now: float, contact: str) -> list:
        """``handle(ContactEnded(contact=contact), now)`` without building the
        event (the replay's hot path); same decisions and outputs."""
        # _step(now), inlined: this is the replay's hot path
        if not now >= self.now or now == _INF:  # also refuses NaN
            raise self._time_error(now)
        out = self._out = []
        d = self._deadlines
        if d and d[0][0] <= now:
            self._run_deadlines(now)
        self.now = now
        c = self.contacts.get(contact)
        if c is None or c.state != CONNECTED or c.queue.wrap_up > 0:
            self._on_ended(ContactEnded(contact=contact))
            return out
        # _on_ended and _finish, inlined for a queue without wrap-up
        a = c.agent
        ch = c.ch
        a.n_talking -= 1
        c.talk = talk = now - c.connected_at
        c.ended_at = now
        a.used[ch] -= 1
        a.keyver += 1  # its idle-index keys (load, last offer) changed
        del a.contacts[contact]
        c.state = ENDED
        del self.contacts[contact]
        acc = c.acc
        acc.completed += 1
        acc.talk += talk
        acc.wrap += 0.0
        out.append(ContactCompleted(time=now, contact=contact, queue=c.queue.name, agent=a.id,
                                    wait=c.connected_at - c.arrival, talk=talk, wrap_up=0.0))
        self._refresh(a)
        return out

    def next_deadline(self) -> float | None:
        """The earliest time at which something happens without an event
        (deadlines that can no longer act are dropped first)."""
        d = self._deadlines
        while d:
            entry = d[0]
            if _live(entry):
                return entry[0]
            heappop(d)
        return None

    def advance(self, now: float) -> list:
        """Let time pass to ``now``: fire every deadline due by then."""
        return self._step(now)

    def report(self, intervals: bool = True) -> dict[str, Any]:
        """KPI report up to the current time (see ``acd.core.kpi``)."""
        rep = self.kpi.report(self._open_spans(), intervals, now=self.now)
        rep["rejected_inputs"] = dict(sorted(self.rejected.items()))
        return rep

    def _open_spans(self) -> list[tuple[int, int, float, float]]:
        """Busy and staffed periods still running, cut at ``now``."""
        spans = []
        for a in self.agent_list:
            if a.busy:
                spans.append((a.group, 0, a.busy_since, self.now))
            if a.staffed:
                spans.append((a.group, 1, a.staffed_since, self.now))
            if a.expected:
                spans.append((a.group, 2, a.expected_since, self.now))
            if a.adherent:
                spans.append((a.group, 3, a.adherent_since, self.now))
        return spans

    def snapshot(self) -> dict[str, Any]:
        """Current queues and agents, for APIs and wallboards."""
        queues = {}
        for r in self.rules:
            waiting = [c for c in self.contacts.values() if c.queue is r and c.state == WAITING]
            queues[r.name] = {
                "waiting": len(waiting),
                "longest_wait": max((self.now - c.arrival for c in waiting), default=0.0),
            }
        agents = {a.id: {"state": a.state, "reason": a.reason, "contacts": sorted(a.contacts)}
                  for a in self.agent_list}
        return {"time": self.now, "queues": queues, "agents": agents}

    # -------------------------------------------------------------- deadlines

    def _schedule(self, when: float, kind: int, contact: Contact, token: Any) -> None:
        self._seq += 1
        heappush(self._deadlines, (when, self._seq, kind, contact, token))

    def _run_deadlines(self, now: float) -> None:
        d = self._deadlines
        while d and d[0][0] <= now:
            entry = heappop(d)
            if not _live(entry):
                continue
            when, _, kind, c, token = entry
            self.now = when
            if kind == _RING:
                self._offer_failed(c, "timeout", missed=True)
            elif kind == _WRAP:
                self._finish(c)
            elif kind == _ESCALATE:
                self._escalate(c, token[1])
            elif kind == _MAX_WAIT:
                self._overflow(c, "max_wait")
            else:
                self._calendar_step()

    # ----------------------------------------------------------- the pools

    def _pool(self, rule: QueueRule, step: int, skill_key: Any) -> Pool:
        # a follow-the-sun queue's step 0 keeps to its first preferred site
        site = rule.pref[0] if rule.fts and step == 0 and rule.pref else None
        key = (rule.idx, step, skill_key, site)
        pool = self.pools.get(key)
        if pool is not None:
            return pool
        target = pool_target(rule, step, skill_key)
        ch = rule.ch
        agents = [a for a in self.agent_list if a.cap[ch] > 0 and target(a.skills, a.attributes)
                  and (site is None or a.site == site)]
        score = {a.idx: proficiency(target, a.skills) for a in agents} if rule.strategy == "most-skilled" else {}
        pool = Pool(rule, step, skill_key, ch, agents, make_index(rule.strategy, ch, agents, self.rng, score))
        self.pools[key] = pool
        iv = int(self.now // self.interval)
        for a in agents:
            a.add_pool(ch, pool)
            if a.pushed[ch] is not None:  # free right now: index it
                pool.idle.add(a, iv)
        return pool

    # ------------------------------------------------------------- calendar

    def _schedule_calendar(self) -> None:
        t = self._cursor.next_time
        if t != _INF:
            self._seq += 1
            heappush(self._deadlines, (t, self._seq, _CALENDAR, None, None))

    def _calendar_step(self) -> None:
        """Apply the calendar's transitions due now (see acd.core.calendar)."""
        from .calendar import Kind

        drive = self.calendar_mode == "drive"
        for tr in self._cursor.pop_due(self.now):
            kind = tr.kind
            if kind in (Kind.SHIFT_START, Kind.BREAK_START, Kind.BREAK_END, Kind.SHIFT_END):
                # what the calendar expects (adherence), in either mode
                expected = kind == Kind.BREAK_END or (kind == Kind.SHIFT_START and not tr.detail)
                for a in self.group_agents.get(tr.subject, ()):
                    self._expect(a, expected)
                if not drive:
                    continue
                command, reason = {
                    Kind.SHIFT_START: ("login", tr.detail),
                    Kind.BREAK_START: ("not_ready", tr.detail),
                    Kind.BREAK_END: ("ready", None),
                    Kind.SHIFT_END: ("logout", None),
                }[kind]
                for a in self.group_agents.get(tr.subject, ()):
                    new = PRESENCE.get((a.presence, command))
                    if new is not None:  # e.g. an agent already logged out by hand stays out
                        self._set_presence(a, command, new, reason)
            else:
                rule = self.queues[tr.subject]
                if kind == Kind.QUEUE_OPEN:
                    rule.open = True
                elif kind == Kind.QUEUE_CLOSE:
                    rule.open = False
                    rule.closed_rule = tr.detail
                    for c in self._waiting_in(rule):
                        self._closed(c)
                elif kind == Kind.SITES:
                    rule.pref = tuple(tr.detail)
                    rule.base_pool = self._pool(rule, 0, None)
        self._schedule_calendar()

    def _waiting_in(self, rule: QueueRule) -> list[Contact]:
        """Contacts waiting in a queue, in routing order (O(waiting): only
        for rare events such as a queue closing)."""
        found = [c for pool in self.pools.values() if pool.queue is rule for c in pool.waiting_contacts()]
        return sorted(found, key=lambda c: c.seq)

    # --------------------------------------------------------- contact side

    def _reject(self, event: Any, reason: str, contact: str | None = None, agent: str | None = None) -> None:
        tag = tag_of(event)
        self.rejected[tag] = self.rejected.get(tag, 0) + 1
        self._out.append(InputRejected(time=self.now, event=tag, reason=reason, contact=contact, agent=agent))

    def _on_arrived(self, ev: ContactArrived) -> None:
        rule = self.queues.get(ev.queue)
        if rule is None:
            return self._reject(ev, f"unknown queue {ev.queue!r}", contact=ev.contact)
        if ev.contact in self.contacts:
            return self._reject(ev, f"contact {ev.contact!r} is already in the system", contact=ev.contact)
        if ev.channel is not None and ev.channel != rule.channel:
            return self._reject(ev, f"queue {rule.name!r} takes {rule.channel}, not {ev.channel}",
                                contact=ev.contact)
        if ev.skills:
            unknown = sorted(set(ev.skills) - self.skill_names)
            if unknown:
                return self._reject(ev, f"unknown skill {unknown[0]!r} (no agent has it)", contact=ev.contact)
        if not math.isfinite(ev.priority):
            return self._reject(ev, f"priority must be finite, got {ev.priority!r}", contact=ev.contact)
        now = self.now
        self._seq += 1
        c = Contact(ev.contact, self._seq, rule.ch, ev.priority, ev.skills, ev.attributes, now,
                    int(now // self.interval))
        self.contacts[c.id] = c
        self._enter_queue(c, rule, overflow_in=False)

    def _enter_queue(self, c: Contact, rule: QueueRule, overflow_in: bool) -> None:
        now = self.now
        c.queue = rule
        c.entered = now
        c.entry += 1
        c.step = 0
        c.priority = c.base_priority + rule.priority
        c.key = rule.aging_per_s * now - c.priority
        acc = c.acc = self.kpi.acc_for(rule.idx, c.iv)
        acc.offer(overflow_in)
        if not rule.open:
            return self._closed(c)
        if rule.step_after:
            for i, after in enumerate(rule.step_after):
                self._schedule(now + after, _ESCALATE, c, (c.entry, i + 1))
        if rule.max_wait is not None:
            self._schedule(now + rule.max_wait, _MAX_WAIT, c, c.entry)
        c.pool = rule.base_pool if c.skill_key is None else self._pool(rule, 0, c.skill_key)
        if not self._route_contact(c):
            self._out.append(ContactQueued(time=now, contact=c.id, queue=rule.name, priority=c.priority))

    def _route_contact(self, c: Contact) -> bool:
        """Offer ``c`` to the best free agent of its pool, or make it wait.
        Returns True when offered."""
        agent = c.pool.idle.pop(c.excluded, int(self.now // self.interval))
        if agent is None:
            self._wait(c)
            return False
        self._offer(c, agent)
        self._refresh(agent)
        return True

    def _wait(self, c: Contact) -> None:
        """Put ``c`` in its pool's waiting heap."""
        c.state = WAITING
        c.ver += 1
        c.pool.push(c)
        self.kpi.queue_len(c.queue.idx, self.now, 1)

    def _offer(self, c: Contact, a: Agent) -> None:
        now = self.now
        if c.state == WAITING:
            c.pool.n_waiting -= 1
            self.kpi.queue_len(c.queue.idx, now, -1)
        c.ver += 1
        c.state = OFFERED
        c.agent = a
        c.offers += 1
        ch = c.ch
        a.used[ch] += 1
        a.keyver += 1  # its idle-index keys (load, last offer) changed
        a.n_offered += 1
        a.contacts[c.id] = c
        self._offer_seq += 1
        a.last_offer = self._offer_seq
        iv = int(now // self.interval)
        if a.iv != iv:
            a.iv = iv
            a.iv_count = 0
        a.iv_count += 1
        rule = c.queue
        if a.auto_answer:  # the phone answers by itself: no ring, no time-out
            self._out.append(ContactOffered(time=now, contact=c.id, queue=rule.name, agent=a.id,
                                            channel=rule.channel, offer=c.offers, timeout=0.0, auto_answer=True))
            self._connect(c)
            return
        self._seq += 1
        heappush(self._deadlines, (now + rule.ring_timeout, self._seq, _RING, c, c.offers))
        self._out.append(ContactOffered(time=now, contact=c.id, queue=rule.name, agent=a.id,
                                        channel=rule.channel, offer=c.offers, timeout=rule.ring_timeout))

    def _leave_pool(self, c: Contact) -> None:
        if c.state == WAITING:
            c.pool.n_waiting -= 1
            self.kpi.queue_len(c.queue.idx, self.now, -1)
        c.ver += 1

    def _escalate(self, c: Contact, step: int) -> None:
        """A waiting contact reached escalation ``step``: a wider pool."""
        self._leave_pool(c)
        self._set_step(c, step)
        c.state = NEW
        self._route_contact(c)

    def _set_step(self, c: Contact, step: int) -> None:
        rule = c.queue
        c.step = step
        c.priority = c.base_priority + rule.priority + rule.step_priority[step]
        c.key = rule.aging_per_s * c.entered - c.priority
        c.pool = self._pool(rule, step, c.skill_key)
        c.excluded = None  # a wider ring: agents who refused it get another chance
        self._out.append(ContactEscalated(time=self.now, contact=c.id, queue=rule.name, step=step))

    def _closed(self, c: Contact) -> None:
        """The queue is closed (business hours): its closed-hours rule sends
        the contact to another queue or closes it with a reason."""
        cr = c.queue.closed_rule
        target = self.queues[cr.overflow] if cr is not None and cr.overflow else None
        self._overflow(c, cr.reason if cr is not None else "closed", target, closed=True)

    def _overflow(self, c: Contact, reason: str, target: QueueRule | None = None, closed: bool = False) -> None:
        self._leave_pool(c)
        rule = c.queue
        wait = self.now - c.arrival
        if not closed:
            target = rule.overflow
        c.acc.overflow(wait, target is None, closed)
        self._out.append(ContactOverflowed(time=self.now, contact=c.id, queue=rule.name,
                                           to_queue=target.name if target else None, reason=reason, wait=wait))
        if target is None:
            c.state = ENDED
            del self.contacts[c.id]
            return
        c.state = NEW
        c.excluded = None
        self._enter_queue(c, target, overflow_in=True)

    def _requeue(self, c: Contact, agent: Agent, reason: str, route: bool = True) -> None:
        """An offer failed: back to the old place (same key and sequence),
        at the escalation step its time in the queue has reached.  With
        ``route=False`` it only takes its place; the caller routes it after
        the agent who let it go has had its turn (see ``_offer_failed``)."""
        rule = c.queue
        self._out.append(ContactRequeued(time=self.now, contact=c.id, queue=rule.name, agent=agent.id,
                                         reason=reason))
        waited = self.now - c.entered
        c.state = NEW
        if not rule.open:
            return self._closed(c)
        if rule.max_wait is not None and waited >= rule.max_wait:
            return self._overflow(c, "max_wait")
        step = rule.step_at(waited)
        if step > c.step:  # escalation steps passed while it was ringing
            self._set_step(c, step)
        if route:
            self._route_contact(c)
        else:
            self._wait(c)

    def _release_offer(self, c: Contact) -> Agent:
        a = c.agent
        ch = c.ch
        a.used[ch] -= 1
        a.keyver += 1  # its idle-index keys (load, last offer) changed
        a.n_offered -= 1
        del a.contacts[c.id]
        c.agent = None
        return a

    def _offer_failed(self, c: Contact, reason: str, missed: bool) -> None:
        a = self._release_offer(c)
        # The contact takes its place first; then the freed agent takes the
        # best waiting contact for it (never this one: it just let it go);
        # only then is this contact offered to some other free agent.
        # Routing the contact first would let it jump ahead of better
        # contacts waiting for this agent.
        queue = c.queue
        self._requeue(c, a, reason, route=False)
        if missed and c.queue is queue:  # (not if it overflowed or closed meanwhile)
            # after the requeue: an escalation there gives earlier refusers
            # a new chance, but not the agent who refused just now
            if c.excluded is None:
                c.excluded = set()
            c.excluded.add(a.id)
        if missed:
            a.missed += 1
        placed = [c]
        if missed and a.missed >= a.max_missed and a.presence == READY:
            a.presence = NOT_READY
            a.reason = "missed_offers"
            self._unindex(a)
            placed += self._withdraw_offers(a)
        self._refresh(a)
        self._route_placed(placed)

    def _lookup(self, ev: Any) -> Contact | None:
        c = self.contacts.get(ev.contact)
        if c is None:
            self._reject(ev, f"unknown contact {ev.contact!r}", contact=ev.contact)
            return None
        allowed = CONTACT_TRANSITIONS[tag_of(ev)]
        if c.state not in allowed:
            self._reject(ev, f"contact {c.id!r} is {_STATE_WORDS[c.state]}", contact=c.id)
            return None
        agent = getattr(ev, "agent", None)
        if agent is not None and c.state == OFFERED and c.agent.id != agent:
            self._reject(ev, f"contact {c.id!r} is offered to {c.agent.id!r}, not {agent!r}",
                         contact=c.id, agent=agent)
            return None
        return c

    def _on_abandoned(self, ev: CustomerAbandoned) -> None:
        c = self._lookup(ev)
        if c is None:
            return
        now = self.now
        wait = now - c.arrival
        agent = self._release_offer(c) if c.state == OFFERED else None
        self._leave_pool(c)
        c.state = ENDED
        del self.contacts[c.id]
        c.acc.abandon(wait)
        self._out.append(ContactAbandoned(time=now, contact=c.id, queue=c.queue.name, wait=wait))
        if agent is not None:
            self._refresh(agent)

    def _on_accepted(self, ev: OfferAccepted) -> None:
        c = self.contacts.get(ev.contact)
        if c is None or c.state != OFFERED or (ev.agent is not None and ev.agent != c.agent.id):
            self._lookup(ev)  # rejects with the precise reason
            return
        d = self._deadlines
        if d and d[0][3] is c:  # its ring time-out is next: drop it now
            heappop(d)
        self._connect(c)
        # Slots used are unchanged, so availability is too: only the visible
        # state moves (to busy, unless other offers still ring) and the busy
        # period starts.  (The state part of _refresh, inlined for the hot path.)
        a = c.agent
        state = "offered" if a.n_offered else "busy"
        if state != a.state:
            self._out.append(AgentStateChanged(time=self.now, agent=a.id, state=state, previous=a.state, reason=None))
            a.state = state
        if not a.busy or not a.staffed:
            self._account(a, True, True)

    def _connect(self, c: Contact) -> None:
        """The offer is answered (by the agent, or by auto-answer): talking."""
        now = self.now
        a = c.agent
        a.n_offered -= 1
        a.n_talking += 1
        a.missed = 0
        c.state = CONNECTED
        c.connected_at = now
        wait = now - c.arrival
        rule = c.queue
        acc = c.acc
        acc.answer(wait, rule.threshold)
        if a.site is not None:
            acc.site_answered(a.site)
        self._out.append(ContactConnected(time=now, contact=c.id, queue=rule.name, agent=a.id, wait=wait))

    def _on_rejected(self, ev: OfferRejected) -> None:
        c = self._lookup(ev)
        if c is not None:
            self._offer_failed(c, ev.reason or "rejected", missed=True)

    def _on_ended(self, ev: ContactEnded) -> None:
        c = self.contacts.get(ev.contact)
        if c is None or c.state != CONNECTED:
            self._lookup(ev)  # rejects with the precise reason
            return
        now = self.now
        a = c.agent
        ch = c.ch
        a.n_talking -= 1
        c.talk = now - c.connected_at
        c.ended_at = now
        wrap = c.queue.wrap_up
        if wrap > 0:
            c.state = WRAP_UP
            a.n_wrapping += 1
            self._schedule(now + wrap, _WRAP, c, None)
            self._refresh(a)  # the slot stays taken until wrap-up ends: only its state moves
        else:
            a.n_wrapping += 1  # _finish takes it off again
            self._finish(c)

    def _finish(self, c: Contact) -> None:
        """End of wrap-up: the contact is complete and the slot is free."""
        a = c.agent
        ch = c.ch
        a.n_wrapping -= 1
        a.used[ch] -= 1
        a.keyver += 1  # its idle-index keys (load, last offer) changed
        del a.contacts[c.id]
        c.state = ENDED
        del self.contacts[c.id]
        now = self.now
        wrap = now - c.ended_at
        c.acc.complete(c.talk, wrap)
        self._out.append(ContactCompleted(time=now, contact=c.id, queue=c.queue.name, agent=a.id,
                                          wait=c.connected_at - c.arrival, talk=c.talk, wrap_up=wrap))
        self._refresh(a)

    # ----------------------------------------------------------- agent side

    def _agent(self, ev: Any) -> Agent | None:
        a = self.agents.get(ev.agent)
        if a is None:
            self._reject(ev, f"unknown agent {ev.agent!r}", agent=ev.agent)
        return a

    def _presence(self, ev: Any, command: str, reason: str | None = None) -> None:
        a = self._agent(ev)
        if a is None:
            return
        new = PRESENCE.get((a.presence, command))
        if new is None:
            return self._reject(ev, PRESENCE_REFUSALS[(a.presence, command)], agent=a.id)
        self._set_presence(a, command, new, reason)

    def _set_presence(self, a: Agent, command: str, new: int, reason: str | None) -> None:
        """Apply a valid presence change (from an event or the calendar)."""
        if command == "login" and reason is not None:
            new = NOT_READY
        old_reason = a.reason
        if new == READY and a.presence != READY:
            a.missed = 0  # a fresh start after a break, not a way to dodge the count
        a.presence = new
        a.reason = reason if new == NOT_READY else None
        placed = []
        if new != READY:
            self._unindex(a)
            placed = self._withdraw_offers(a)
        if new == NOT_READY and a.state == "not_ready" and reason != old_reason:
            # same state, new reason (break -> lunch): say so
            self._out.append(AgentStateChanged(time=self.now, agent=a.id, state="not_ready",
                                               previous="not_ready", reason=reason))
        self._refresh(a)
        self._route_placed(placed)

    def _withdraw_offers(self, a: Agent) -> list[Contact]:
        """No new work once not ready: ringing offers go back to their place
        in the queue (no miss counted).  They are only placed: the caller
        routes them (``_route_placed``) once every change is made."""
        placed = []
        if a.n_offered:
            for c in [c for c in a.contacts.values() if c.state == OFFERED]:
                self._release_offer(c)
                self._requeue(c, a, "withdrawn", route=False)
                placed.append(c)
        return placed

    def _route_placed(self, contacts: list[Contact]) -> None:
        """Offer contacts that were put back in their queues to free agents,
        best first (effective priority, then arrival), so none jumps ahead
        of a better one."""
        now = self.now
        iv = int(now // self.interval)
        waiting = [c for c in contacts if c.state == WAITING]
        waiting.sort(key=lambda c: (c.pool.rate * now - c.key, -c.seq), reverse=True)
        for c in waiting:
            if c.state != WAITING:
                continue
            agent = c.pool.idle.pop(c.excluded, iv)
            if agent is not None:
                self._offer(c, agent)
                self._refresh(agent)

    def _on_login(self, ev: AgentLogin) -> None:
        self._presence(ev, "login", ev.reason)

    def _on_logout(self, ev: AgentLogout) -> None:
        self._presence(ev, "logout")

    def _on_ready(self, ev: AgentReady) -> None:
        self._presence(ev, "ready")

    def _on_not_ready(self, ev: AgentNotReady) -> None:
        self._presence(ev, "not_ready", ev.reason or "break")

    def _on_wrap_up_done(self, ev: WrapUpDone) -> None:
        a = self._agent(ev)
        if a is None:
            return
        wrapping = [c for c in a.contacts.values() if c.state == WRAP_UP]
        if ev.contact is not None:
            wrapping = [c for c in wrapping if c.id == ev.contact]
        if not wrapping:
            what = f"contact {ev.contact!r}" if ev.contact else "any contact"
            return self._reject(ev, f"agent {a.id!r} is not in wrap-up for {what}", agent=a.id,
                                contact=ev.contact)
        for c in wrapping:
            self._finish(c)

    def _unindex(self, a: Agent) -> None:
        """Invalidate every idle-index entry of ``a`` (it is no longer free)."""
        for ch in a.chans:
            if a.pushed[ch] is not None:
                a.ver[ch] += 1
                a.pushed[ch] = None

    def _refresh(self, a: Agent) -> None:
        """After any change to agent ``a``: give it work while it has free
        capacity and someone waits for it, then re-index what stays free,
        then publish its visible state and account its time."""
        now = self.now
        ready = a.presence == READY
        if ready:
            for pool in a.pool_list:
                if pool.n_waiting:
                    self._feed(a)
                    break
        ch = a.only_ch
        if ch >= 0:  # the common case: one channel, which nothing else can block
            self._index(a, ch, ready and a.used[ch] < a.cap[ch], now)
        else:
            for ch in a.chans:
                self._index(a, ch, ready and a.available(ch), now)
        # publish the visible state if it changed; account busy and staffed time
        if a.n_offered:
            state = "offered"
        elif a.n_talking:
            state = "busy"
        elif a.n_wrapping:
            state = "wrap_up"
        else:
            state = PRESENCE_NAMES[a.presence]
        if state != a.state:
            if state == "not_ready":
                self._out.append(AgentStateChanged(time=now, agent=a.id, state=state, previous=a.state,
                                                   reason=a.reason))
            else:
                self._out.append(AgentStateChanged(time=now, agent=a.id, state=state, previous=a.state))
            a.state = state
        busy = a.n_talking + a.n_wrapping > 0
        staffed = busy or ready
        if staffed != a.staffed:
            self._account(a, busy, staffed)
        elif busy != a.busy:  # only the busy period moves (_account's common case, inlined)
            a.busy = busy
            if busy:
                a.busy_since = now
                a.busy_iv = int(now // self.interval)
            else:  # kpi.add_span(a.group, 0, a.busy_since, now, a.busy_iv), its common case inlined
                iv = a.busy_iv
                b = self.kpi.by_group[a.group].get(iv)
                if b is not None and now <= (iv + 1) * self.interval:
                    b[0] += now - a.busy_since
                else:
                    self.kpi.add_span(a.group, 0, a.busy_since, now, iv)

    def _index(self, a: Agent, ch: int, free: bool, now: float) -> None:
        """Keep ``a`` in its channel-``ch`` pools' idle indexes exactly while
        it is ``free`` there, keyed on its current load and idle time."""
        pushed = a.pushed[ch]
        if free:
            if pushed is None:
                a.since[ch] = now
            if pushed != a.keyver:  # newly free, or its keys changed: (re)index
                a.ver[ch] += 1
                a.pushed[ch] = a.keyver
                iv = int(now // self.interval)
                for pool in a.pools[ch]:
                    pool.idle.add(a, iv)
        elif pushed is not None:
            a.ver[ch] += 1
            a.pushed[ch] = None

    def _account(self, a: Agent, busy: bool, staffed: bool) -> None:
        """Close or open the agent's busy and staffed periods (occupancy)."""
        now = self.now
        if busy != a.busy:
            a.busy = busy
            if busy:
                a.busy_since = now
                a.busy_iv = int(now // self.interval)
            else:
                self.kpi.add_span(a.group, 0, a.busy_since, now, a.busy_iv)
        if staffed != a.staffed:
            a.staffed = staffed
            if staffed:
                a.staffed_since = now
            else:
                self.kpi.add_span(a.group, 1, a.staffed_since, now)
            if a.expected is not None:
                self._adhere(a)

    def _adhere(self, a: Agent) -> None:
        """Schedule adherence: the agent is *adherent* while the calendar
        expects it to work (on shift, not on a break) and it does (ready or
        busy).  Spans of both go to the KPIs (kinds 2 and 3)."""
        now = self.now
        adherent = a.expected and a.staffed
        if adherent != a.adherent:
            a.adherent = adherent
            if adherent:
                a.adherent_since = now
            else:
                self.kpi.add_span(a.group, 3, a.adherent_since, now)

    def _expect(self, a: Agent, expected: bool) -> None:
        """The calendar now expects ``a`` to work, or not."""
        if expected != a.expected:
            if a.expected:
                self.kpi.add_span(a.group, 2, a.expected_since, self.now)
            a.expected = expected
            if expected:
                a.expected_since = self.now
        self._adhere(a)

    def _feed(self, a: Agent) -> None:
        """Offer waiting contacts to ``a`` while it has free capacity: each
        time the best head across all its pools (effective priority, then
        earliest arrival)."""
        now = self.now
        aid = a.id
        # one channel and ready: available() is just a free slot on it
        only = a.only_ch >= 0 and a.presence == READY
        used, cap = a.used, a.cap
        while True:
            best = None
            for pool in a.pool_list:
                if not pool.n_waiting:
                    continue
                ch = pool.ch
                if not (used[ch] < cap[ch] if only else a.available(ch)):
                    continue
                heap = pool.waiting
                entry = heap[0] if heap else None  # pool.peek_for(aid), its common case inlined
                if entry is None or entry[2] != entry[3].ver or entry[3].excluded is not None:
                    entry = pool.peek_for(aid)
                    if entry is None:
                        continue
                eff = pool.rate * now - entry[0]
                if best is None or eff > best[0] or (eff == best[0] and entry[1] < best[1]):
                    best = (eff, entry[1], entry[3])
            if best is None:
                return
            self._offer(best[2], a)

    # --------------------------------------------------------------- checks

    def check_invariants(self) -> None:
        """O(n) audit of the routing state; raises AssertionError.  For tests."""
        for a in self.agent_list:
            for ch in range(3):
                assert a.used[ch] == sum(1 for c in a.contacts.values() if c.ch == ch), a
                assert 0 <= a.used[ch] <= a.cap[ch], a
            held = list(a.contacts.values())
            assert sum(1 for c in held if c.state == OFFERED) == a.n_offered
            assert sum(1 for c in held if c.state == CONNECTED) == a.n_talking
            assert sum(1 for c in held if c.state == WRAP_UP) == a.n_wrapping
            for c in held:
                assert c.agent is a and self.contacts.get(c.id) is c
            assert a.state == a.visible_state()
        for c in self.contacts.values():
            assert c.state in (WAITING, OFFERED, CONNECTED, WRAP_UP), c
            if c.state == WAITING:
                assert c.agent is None
                assert c in c.pool.waiting_contacts(), c
                # no free agent of its pool could take it
                for a in c.pool.agents:
                    if a.available(c.ch):
                        assert c.excluded is not None and a.id in c.excluded, (c, a)
        for pool in self.pools.values():
            live = pool.waiting_contacts()
            assert len(live) == pool.n_waiting, pool
            idle = pool.idle.valid_agents()
            assert len({a.id for a in idle}) == len(idle), pool
            for a in pool.agents:
                if a.available(pool.ch):
                    assert a in idle, (pool, a)
            for a in idle:
                assert a.available(pool.ch), (pool, a)
