"""The virtual-time shell: play a scenario through the routing core.

A discrete-event loop in the SimPy manner: the clock jumps to the earliest of
(1) the core's next deadline, (2) the next customer/agent behaviour scheduled
by this shell (a hang-up after the handle time, an abandon after the patience,
an answer after the answer delay), and (3) the next line of the scenario.
Same-time order is fixed: core deadlines, then shell events in the order they
were scheduled, then scenario lines.  No asyncio and no wall clock inside: the
replay runs as fast as the CPU allows and gives the same result every time.

The shell plays the telephony side the way a simple model of people would:
agents answer every offer after ``answer_delay`` seconds, talk for the
contact's ``handle_time``, and the core applies the queue's wrap-up; a
customer abandons when ``patience`` runs out before being connected.
"""

from __future__ import annotations

import time as _time
from itertools import chain as _chain
from itertools import count as _count
from heapq import heappop, heappush
from random import Random
from typing import Any, BinaryIO, Callable, Iterable

import msgspec

from .core.engine import Engine
from .core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, ContactAbandoned, ContactArrived,
    ContactCompleted, ContactConnected, ContactEnded, ContactEscalated, ContactOffered, ContactOverflowed,
    ContactQueued, ContactRequeued, CustomerAbandoned, InputRejected, OfferAccepted,
)
from .core.events import AgentStateChanged as _StateChanged
from .core.spec import Spec
from .scenario import AgentLine, PatienceCurve

_INF = float("inf")
# outputs the simulated people do not react to
_IDLE = frozenset({_StateChanged, ContactCompleted, ContactQueued, ContactRequeued, ContactEscalated,
                   InputRejected})
# shell event kinds
_END, _ABANDON, _ACCEPT = 0, 1, 2


class Replay:
    """One replay run.  ``run(items)`` consumes ``(time, line)`` pairs in time
    order (``acd.scenario.Scenario`` yields them) and returns the KPI report."""

    def __init__(self, spec: Spec, *, seed: int = 0, start: float | None = None, answer_delay: float = 0.0,
                 events: BinaryIO | None = None, progress: Callable[[int, float], None] | None = None,
                 progress_every: int = 50_000):
        self.spec = spec
        self.seed = seed
        self.start = start
        self.engine: Engine | None = None
        self.answer_delay = answer_delay
        self.events = events
        self._enc = msgspec.json.Encoder()
        self.progress = progress
        self.progress_every = progress_every
        self.contacts = 0
        self.agent_lines = 0
        self._heap: list[tuple] = []
        self._seq = _count(1)  # tie-breaker of same-time shell events: the order they were scheduled
        self._pending: dict[str, Any] = {}  # contact id -> scenario line, until connected

    # -- the loop ----------------------------------------------------------

    def run(self, items: Iterable[tuple[float, Any]]) -> dict[str, Any]:
        """Play ``items``; the clock starts at ``start``, else at the
        scenario's own start (``items.start``), else at the first line."""
        wall0 = _time.perf_counter()
        if self.start is None:
            self.start = getattr(items, "start", None)
        if self.start is None:
            it = iter(items)
            first = next(it, None)
            self.start = first[0] if first is not None else 0.0
            items = it if first is None else _chain([first], it)
        eng = self.engine = Engine(self.spec, rng=Random(self.seed), start=self.start)
        self.patience_curves = {name: PatienceCurve(curve)
                                for name, curve in (getattr(items, "patience_curves", None) or {}).items()}
        self._patience_rng = Random(f"patience-{self.seed}")
        n = self._loop(items)
        self.contacts = n
        report = eng.report()
        report["replay"] = {
            "contacts": n,
            "agent_lines": self.agent_lines,
            "start": self.start,
            "end": eng.now,
            "wall_s": round(_time.perf_counter() - wall0, 3),
            "in_system_at_end": len(eng.contacts),
        }
        return report

    def _loop(self, items: Iterable[tuple[float, Any]]) -> int:
        eng = self.engine
        heap = self._heap
        next_deadline = eng.next_deadline
        pending = self._pending
        process = self._process
        react = self._react
        seq = self._seq
        handle = eng.handle
        arrive, end = eng.arrive, eng.end
        contacts = eng.contacts
        log = self._log_in if self.events is not None else None
        progress, every = self.progress, self.progress_every
        n = 0
        deadlines = eng._deadlines  # peeked only to skip a call when empty
        for t, item in items:
            # everything due before (or at) this line's time, then the line
            # itself; each one's outputs go through the same reaction below
            line = False
            while not line:
                td = next_deadline() if deadlines else None
                if td is None:
                    td = _INF
                ts = heap[0][0] if heap else _INF
                if td <= ts and td <= t:
                    out = eng.advance(td)
                elif ts < td and ts <= t:
                    entry = heappop(heap)
                    kind = entry[2]
                    if kind == _END and not log:  # the common case, inlined
                        out = end(ts, entry[3])
                    elif kind == _ABANDON and pending.get(entry[3].id) is not entry[3]:
                        continue  # connected (or gone) before its patience ran out
                    else:
                        out = self._fire(entry)
                elif item.__class__ is not AgentLine:
                    line = True
                    cid = item.id
                    # a line whose id is still in the system is refused by
                    # the core; it must not take over the first one's place
                    # in ``pending`` (its patience, its handle time)
                    known = cid in contacts
                    if not known:
                        pending[cid] = item
                    if log:
                        ev = ContactArrived(contact=cid, queue=item.queue, channel=item.channel,
                                            priority=item.priority, skills=item.skills, attributes=item.attributes)
                        log(ev, t)
                        out = handle(ev, t)
                    else:  # the same, without building the event
                        out = arrive(t, cid, item.queue, item.channel, item.priority, item.skills, item.attributes)
                    if not known:
                        patience = item.patience
                        if patience is None and item.patience_curve is not None:
                            patience = self._censored_patience(item)
                        if patience is not None:  # the line itself: its id may come again later
                            heappush(heap, (t + patience, next(seq), _ABANDON, item))
                    n += 1
                    if progress is not None and n % every == 0:
                        progress(n, t)
                else:
                    line = True
                    ev = _agent_event(item)
                    self.agent_lines += 1
                    if log:
                        log(ev, t)
                    out = handle(ev, t)
                if log:
                    process(out)
                    continue
                for e in out:  # process(out), inlined
                    cls = e.__class__
                    if cls in _IDLE:
                        continue
                    if cls is ContactConnected:
                        cid = e.contact
                        heappush(heap, (e.time + pending.pop(cid).handle_time, next(seq), _END, cid))
                    elif cls is not ContactOffered or not e.auto_answer:
                        react(e, cls)
        # 3. drain: let every contact in progress finish.  A calendar has
        # deadlines for ever: stop once nobody is left in the system (or, if
        # some contact can never be served, a week after the last line).
        horizon = eng.now + 7 * 86400.0
        while True:
            td = next_deadline()
            if td is None:
                td = _INF
            ts = heap[0][0] if heap else _INF
            if td == _INF and ts == _INF:
                break
            if not heap and (not eng.contacts or td > horizon):
                break
            out = eng.advance(td) if td <= ts else self._fire(heappop(heap))
            if out:
                process(out)
        return n

    def _censored_patience(self, item: Any) -> float | None:
        """Recorded traffic: the customer's patience is only known to exceed
        what the record shows; draw the rest from the scenario's curve, from
        a random stream of its own (seeded, apart from the strategy's)."""
        curve = self.patience_curves.get(item.patience_curve)
        if curve is None:
            raise ValueError(f"contact {item.id}: unknown patience_curve {item.patience_curve!r}")
        return curve.draw(item.patience_after or 0.0, self._patience_rng.random())

    def _fire(self, entry: tuple) -> list:
        when, _, kind, cid = entry
        if kind == _END:
            ev: Any = ContactEnded(contact=cid)
        elif kind == _ABANDON:  # cid: the scenario line (a later contact may reuse its id)
            if self._pending.get(cid.id) is not cid:
                return []  # connected (or gone) before its patience ran out
            ev = CustomerAbandoned(contact=cid.id)
        else:
            ev = OfferAccepted(contact=cid[0], agent=cid[1])
        if self.events is not None:
            self._log_in(ev, when)
        return self.engine.handle(ev, when)

    def _process(self, out: list) -> None:
        """React to the core's decisions as the simulated people would."""
        if self.events is not None:
            self._log_out(out)
        for e in out:
            cls = e.__class__
            if cls in _IDLE:  # the most common outputs: nobody needs to act
                continue
            if cls is ContactConnected:
                cid = e.contact
                heappush(self._heap, (e.time + self._pending.pop(cid).handle_time, next(self._seq), _END, cid))
            else:
                self._react(e, cls)

    def _react(self, e: Any, cls: type) -> None:
        """``_process`` for an output other than ``contact.connected`` (and
        those nobody acts on)."""
        if cls is ContactOffered:
            if e.auto_answer:  # already connected: the next event says so
                return
            if self.answer_delay > 0:
                heappush(self._heap, (e.time + self.answer_delay, next(self._seq), _ACCEPT, (e.contact, e.agent)))
                return
            ev = OfferAccepted(contact=e.contact, agent=e.agent)
            if self.events is not None:
                self._log_in(ev, e.time)
            self._process(self.engine.handle(ev, e.time))
        elif cls is ContactAbandoned or (cls is ContactOverflowed and e.to_queue is None):
            # abandoned, or overflowed out of acd: the customer is gone
            self._pending.pop(e.contact, None)

    # -- the event log (--events) -------------------------------------------

    def _log_in(self, ev: Any, t: float) -> None:
        self.events.write(b'{"time":%s,"in":%s}\n' % (repr(t).encode(), self._enc.encode(ev)))

    def _log_out(self, out: list) -> None:
        enc = self._enc
        w = self.events.write
        for e in out:
            w(enc.encode(e) + b"\n")


def _agent_event(line: Any) -> Any:
    state = line.state
    if state == "login":
        return AgentLogin(agent=line.agent, reason=line.reason)
    if state == "logout":
        return AgentLogout(agent=line.agent)
    if state == "ready":
        return AgentReady(agent=line.agent)
    if state == "not_ready":
        return AgentNotReady(agent=line.agent, reason=line.reason or "break")
    raise ValueError(f"unknown agent state {state!r}")


def replay(spec: Spec, items: Iterable[tuple[float, Any]], **kwargs: Any) -> dict[str, Any]:
    """Convenience: ``Replay(spec, **kwargs).run(items)``."""
    return Replay(spec, **kwargs).run(items)
