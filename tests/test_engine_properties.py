"""Property-based tests of the routing core's invariants (hypothesis).

A random small centre (queues on several channels, escalation, overflow,
strategies, capacities, blocking) is driven by random telephony behaviour:
arrivals, answers, rejections, hang-ups, abandons, presence changes, time
passing, and deliberately invalid events.  An independent model, built only
from the outbound events and the spec (not from the engine's internals),
checks after every step that:

* no contact is lost, assigned twice, or ended twice; every end is final;
* an offer only goes to an agent who has the target skills at the level the
  contact's queue and escalation step demand (and the contact's own skills),
  is ready, has capacity on the channel, and is not blocked by another channel;
* the offered contact is the best one waiting for that agent: highest
  effective priority, then earliest arrival (FIFO within a priority);
* no input the model considers valid is rejected, and every invalid one is;
* ``engine.check_invariants()`` (the engine's own audit) holds;
* the replay's fast entry points (``Engine.arrive`` / ``Engine.end``, which
  inline ``handle``'s common path) say exactly what ``handle`` says: a twin
  engine fed the same inputs through them must produce equal outputs and
  end in an equal state, after every step.
"""

from __future__ import annotations

import heapq
from random import Random

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from acd.core.engine import Engine
from acd.core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged, ContactAbandoned,
    ContactArrived, ContactCompleted, ContactConnected, ContactEnded, ContactEscalated,
    ContactOffered, ContactOverflowed, ContactQueued, ContactRequeued, CustomerAbandoned,
    InputRejected, OfferAccepted, OfferRejected, WrapUpDone,
)
from acd.core.spec import spec_from_obj

CHANNELS = ("voice", "chat", "email")
SKILLS = ("s1", "s2", "s3")


@st.composite
def centres(draw):
    """A random but valid routing config (skills only, exact-float-friendly)."""
    n_queues = draw(st.integers(1, 3))
    queues = []
    for i in range(n_queues):
        q = {
            "name": f"q{i}",
            "channel": draw(st.sampled_from(CHANNELS)),
            "skills": {draw(st.sampled_from(SKILLS)): draw(st.sampled_from([0, 1, 2, 4, 6]))},
            "priority": draw(st.integers(0, 2)),
            "aging": draw(st.sampled_from([0, 0, 60, 120])),
            "strategy": draw(st.sampled_from(
                ["longest-idle", "most-skilled", "round-robin", "least-occupied", "random"])),
            "wrap_up": draw(st.sampled_from([0, 0, 5])),
            "ring_timeout": draw(st.sampled_from([3, 10, 60, 60])),
        }
        steps = []
        after = 0
        for _ in range(draw(st.integers(0, 2))):
            after += draw(st.integers(1, 8))
            steps.append({"after": after, "skills": {draw(st.sampled_from(SKILLS)): draw(st.integers(0, 4))},
                          "priority": draw(st.integers(0, 2))})
        if steps:
            q["escalation"] = steps
        queues.append(q)
    for i, q in enumerate(queues):
        if draw(st.booleans()):
            q["max_wait"] = draw(st.integers(5, 30))
            others = [o["name"] for o in queues if o["name"] != q["name"] and o["channel"] == q["channel"]]
            if others and draw(st.booleans()):
                q["overflow"] = draw(st.sampled_from(others))
    groups = []
    for gi in range(draw(st.integers(1, 3))):
        skills = {s: draw(st.integers(1, 8)) for s in SKILLS if draw(st.integers(0, 3))} or {"s1": 1}
        g = {
            "group": f"g{gi}",
            "count": draw(st.integers(1, 3)),
            "skills": skills,
            "capacity": {"voice": draw(st.sampled_from([1, 1, 1, 0])), "chat": draw(st.sampled_from([3, 1, 2, 0])),
                         "email": draw(st.sampled_from([1, 2, 0]))},
            "max_missed_offers": draw(st.integers(1, 3)),
            "initial": draw(st.sampled_from(["ready", "ready", "ready", "offline", "not_ready"])),
        }
        if draw(st.booleans()):
            g["blocking"] = draw(st.sampled_from([{}, {"chat": ["voice"]}, {"voice": ["chat", "email"], "email": ["chat"]}]))
        if not draw(st.integers(0, 3)):
            g["auto_answer"] = True
        groups.append(g)
    # every skill used by a queue must exist in some group (config check)
    have = {s for g in groups for s in g["skills"]}
    for q in queues:
        q["skills"] = {k: v for k, v in q["skills"].items() if k in have}
        for step in q.get("escalation", []):
            step["skills"] = {k: v for k, v in step["skills"].items() if k in have}
            if not step["skills"]:
                del step["skills"]  # a pure priority step (skills {} would mean "everyone")
                step["priority"] = step["priority"] or 1
    return {"queues": queues, "agents": groups}


class Model:
    """What the outside world can know, rebuilt from outbound events."""

    def __init__(self, raw: dict):
        self.raw = raw
        self.queues = {q["name"]: q for q in raw["queues"]}
        self.agents: dict[str, dict] = {}
        for g in raw["agents"]:
            for i in range(1, g["count"] + 1):
                self.agents[f"{g['group']}-{i}"] = {
                    "skills": g["skills"], "cap": g["capacity"],
                    "blocking": g.get("blocking", {"voice": ["chat", "email"]}),
                    "presence": {"ready": "ready", "offline": "offline", "not_ready": "not_ready"}[g["initial"]],
                    "held": {},  # contact id -> phase (offered/talking/wrap)
                }
        self.contacts: dict[str, dict] = {}
        self.ended: set[str] = set()
        self.connected_once: set[str] = set()
        self.seq = 0

    # eligibility from the spec alone (escalation rings are unions)
    def eligible(self, agent_id: str, c: dict) -> bool:
        a = self.agents[agent_id]
        q = self.queues[c["queue"]]
        if a["cap"][q["channel"]] <= 0:
            return False
        rings = [q.get("skills", {})] + [s["skills"] for s in q.get("escalation", [])[: c["step"]] if "skills" in s]
        ok = any(all(a["skills"].get(k, 0) >= v for k, v in ring.items()) for ring in rings)
        return ok and all(a["skills"].get(k, 0) >= v for k, v in c["skills"].items())

    def available(self, agent_id: str, ch: str) -> bool:
        a = self.agents[agent_id]
        if a["presence"] != "ready":
            return False
        used = {x: 0 for x in CHANNELS}
        for cid in a["held"]:
            used[self.contacts[cid]["channel"]] += 1
        if used[ch] >= a["cap"][ch]:
            return False
        for b, blocked in a["blocking"].items():
            if b != ch and ch in blocked and used[b]:
                return False
        return True

    def eff(self, c: dict, now: float) -> float:
        q = self.queues[c["queue"]]
        boost = sum(s["priority"] for s in q.get("escalation", [])[: c["step"]])
        return c["priority"] + q["priority"] + boost + q["aging"] / 60.0 * (now - c["entered"])


class Twin:
    """Two engines fed the same inputs: ``main`` through ``handle``, ``fast``
    through the replay's entry points (``arrive``/``end``) where they apply.
    Every call compares what the two say and, after, their visible state."""

    def __init__(self, spec, seed: int, start: float):
        self.main = Engine(spec, rng=Random(seed), start=start)
        self.fast = Engine(spec, rng=Random(seed), start=start)

    def __getattr__(self, name):
        return getattr(self.main, name)

    def handle(self, ev, now):
        out = self.main.handle(ev, now)
        if type(ev) is ContactArrived:
            twin = self.fast.arrive(now, ev.contact, ev.queue, ev.channel, ev.priority, ev.skills, ev.attributes)
        elif type(ev) is ContactEnded:
            twin = self.fast.end(now, ev.contact)
        else:
            twin = self.fast.handle(ev, now)
        assert twin == out, f"fast path differs on {ev}:\n handle: {out}\n fast:   {twin}"
        self.same()
        return out

    def advance(self, now):
        out = self.main.advance(now)
        assert self.fast.advance(now) == out
        self.same()
        return out

    def same(self):
        a, b = self.main, self.fast
        assert a.snapshot() == b.snapshot()
        assert a.report() == b.report()

    def check_invariants(self):
        self.main.check_invariants()
        self.fast.check_invariants()


class EngineMachine(RuleBasedStateMachine):
    @initialize(raw=centres(), seed=st.integers(0, 2**16))
    def setup(self, raw, seed):
        self.spec = spec_from_obj(raw)
        self.engine = Twin(self.spec, seed, 1000.0)
        self.model = Model(raw)
        self.now = 1000.0
        self.n = 0

    # -- feeding ----------------------------------------------------------------

    def feed(self, event, valid: bool) -> None:
        out = self.engine.handle(event, self.now)
        self.check_batch(out, event if valid else None, expect_reject=not valid)

    def check_batch(self, out, event, expect_reject: bool) -> None:
        m = self.model
        rejected = [e for e in out if isinstance(e, InputRejected)]
        if expect_reject:
            assert rejected, f"invalid input accepted: {out}"
        elif event is not None:
            assert not rejected, f"valid input {event} rejected: {rejected}"
        for e in out:
            self.apply(e)
        self.engine.check_invariants()

    def apply(self, e) -> None:
        m = self.model
        now = e.time
        event(type(e).__name__ + (f":{e.reason}" if isinstance(e, ContactRequeued) else ""))
        if isinstance(e, ContactQueued):
            assert m.contacts[e.contact]["state"] == "waiting"
        elif isinstance(e, ContactOffered):
            c = m.contacts[e.contact]
            assert e.contact not in m.ended and c["state"] == "waiting", (e, c)
            assert m.eligible(e.agent, c), f"{e.agent} lacks the skills for {c}"
            assert m.available(e.agent, c["channel"]), f"{e.agent} has no capacity/presence for {e}"
            assert e.agent not in c["excluded"], "re-offered to an agent who refused it"
            assert e.channel == c["channel"]
            # best waiting contact for this agent: effective priority, then arrival
            mine = (m.eff(c, now), -c["seq"])
            for cid, y in m.contacts.items():
                if cid == e.contact or y["state"] != "waiting" or e.agent in y["excluded"]:
                    continue
                if m.eligible(e.agent, y) and m.available(e.agent, y["channel"]):
                    assert (m.eff(y, now), -y["seq"]) < mine, f"{cid} {y} should go before {e.contact} {c}"
            c["state"] = "offered"
            c["agent"] = e.agent
            m.agents[e.agent]["held"][e.contact] = "offered"
        elif isinstance(e, ContactRequeued):
            c = m.contacts[e.contact]
            assert c["state"] == "offered" and c["agent"] == e.agent
            del m.agents[e.agent]["held"][e.contact]
            c["state"] = "waiting"
            c["agent"] = None
            if e.reason != "withdrawn":
                c["excluded"].add(e.agent)
                c["refused"] = (e.agent, now)
        elif isinstance(e, ContactConnected):
            c = m.contacts[e.contact]
            assert c["state"] == "offered" and c["agent"] == e.agent
            assert e.contact not in m.connected_once, "assigned twice"
            m.connected_once.add(e.contact)
            c["state"] = "connected"
            m.agents[e.agent]["held"][e.contact] = "talking"
            assert abs(e.wait - (now - c["arrival"])) < 1e-9
        elif isinstance(e, ContactEscalated):
            c = m.contacts[e.contact]
            assert c["state"] == "waiting" and e.step > c["step"]
            q = m.queues[c["queue"]]
            assert e.step == sum(1 for s in q.get("escalation", []) if now - c["entered"] >= s["after"])
            c["step"] = e.step
            # a wider ring gives everyone another chance, except the agent
            # whose failed offer (at this very moment) brought it back
            refused = c.get("refused")
            c["excluded"] = {refused[0]} if refused and refused[1] == now else set()
        elif isinstance(e, ContactOverflowed):
            c = m.contacts[e.contact]
            assert c["state"] == "waiting" and c["queue"] == e.queue
            q = m.queues[e.queue]
            assert now - c["entered"] >= q["max_wait"] - 1e-9
            assert e.to_queue == q.get("overflow")
            if e.to_queue is None:
                self.end(e.contact)
            else:
                m.seq += 0
                c.update(queue=e.to_queue, entered=now, step=0, excluded=set(),
                         channel=m.queues[e.to_queue]["channel"])
        elif isinstance(e, ContactAbandoned):
            c = m.contacts[e.contact]
            assert c["state"] in ("waiting", "offered")
            if c["state"] == "offered":
                del m.agents[c["agent"]]["held"][e.contact]
            self.end(e.contact)
        elif isinstance(e, ContactCompleted):
            c = m.contacts[e.contact]
            assert c["state"] in ("connected", "wrap") and c["agent"] == e.agent
            del m.agents[e.agent]["held"][e.contact]
            self.end(e.contact)
        elif isinstance(e, AgentStateChanged):
            a = m.agents[e.agent]
            if e.state in ("ready", "not_ready", "offline"):
                a["presence"] = e.state
                assert not a["held"], f"{e.agent} {e.state} while holding {a['held']}"

    def end(self, cid: str) -> None:
        m = self.model
        assert cid not in m.ended, "ended twice"
        m.ended.add(cid)
        m.contacts[cid]["state"] = "ended"

    # -- rules: the telephony side ------------------------------------------------

    @rule(q=st.integers(0, 2), prio=st.integers(0, 3), need=st.sampled_from([{}, {}, {"s1": 2}, {"s2": 1}]))
    def arrive(self, q, prio, need):
        m = self.model
        names = list(m.queues)
        name = names[q % len(names)]
        have = {s for a in m.agents.values() for s in a["skills"]}
        need = {k: v for k, v in need.items() if k in have}
        self.n += 1
        cid = f"c{self.n}"
        m.seq += 1
        m.contacts[cid] = {"queue": name, "channel": m.queues[name]["channel"], "priority": prio,
                           "skills": need, "arrival": self.now, "entered": self.now, "step": 0,
                           "seq": m.seq, "state": "waiting", "agent": None, "excluded": set()}
        self.feed(ContactArrived(contact=cid, queue=name, priority=prio, skills=need), True)

    def _any(self, states) -> bool:
        return hasattr(self, "model") and any(c["state"] in states for c in self.model.contacts.values())

    def _pick(self, data, states):
        cids = [cid for cid, c in self.model.contacts.items() if c["state"] in states]
        return data.draw(st.sampled_from(cids)) if cids else None

    def _sync_time(self):
        # deadlines due now run first inside handle(); apply them to the model
        out = self.engine.advance(self.now)
        self.check_batch(out, None, expect_reject=False)

    @precondition(lambda self: self._any(("offered",)))
    @rule(data=st.data())
    def accept(self, data):
        self._sync_time()
        cid = self._pick(data, ("offered",))
        if cid:
            self.feed(OfferAccepted(contact=cid, agent=self.model.contacts[cid]["agent"]), True)

    @precondition(lambda self: self._any(("offered",)))
    @rule(data=st.data())
    def reject(self, data):
        self._sync_time()
        cid = self._pick(data, ("offered",))
        if cid:
            self.feed(OfferRejected(contact=cid), True)

    @precondition(lambda self: self._any(("connected",)))
    @rule(data=st.data())
    def hang_up(self, data):
        self._sync_time()
        cid = self._pick(data, ("connected",))
        if cid:
            c = self.model.contacts[cid]
            wrap = self.model.queues[c["queue"]]["wrap_up"]
            out = self.engine.handle(ContactEnded(contact=cid), self.now)
            if wrap:
                c["state"] = "wrap"
                self.model.agents[c["agent"]]["held"][cid] = "wrap"
            self.check_batch(out, ContactEnded(contact=cid), expect_reject=False)

    @precondition(lambda self: self._any(("waiting", "offered")))
    @rule(data=st.data())
    def abandon(self, data):
        self._sync_time()
        cid = self._pick(data, ("waiting", "offered"))
        if cid:
            self.feed(CustomerAbandoned(contact=cid), True)

    @precondition(lambda self: self._any(("wrap",)))
    @rule(data=st.data())
    def wrap_done(self, data):
        self._sync_time()
        cid = self._pick(data, ("wrap",))
        if cid:
            self.feed(WrapUpDone(agent=self.model.contacts[cid]["agent"], contact=cid), True)

    @rule(data=st.data(), cmd=st.sampled_from(["login", "logout", "ready", "not_ready"]))
    def presence(self, data, cmd):
        self._sync_time()
        aid = data.draw(st.sampled_from(sorted(self.model.agents)))
        p = self.model.agents[aid]["presence"]
        valid = {"login": p == "offline", "logout": p != "offline",
                 "ready": p != "offline", "not_ready": p != "offline"}[cmd]
        ev = {"login": AgentLogin, "logout": AgentLogout, "ready": AgentReady,
              "not_ready": AgentNotReady}[cmd](agent=aid)
        out = self.engine.handle(ev, self.now)
        if valid:
            a = self.model.agents[aid]
            a["presence"] = {"login": "ready", "logout": "offline", "ready": "ready", "not_ready": "not_ready"}[cmd]
        self.check_batch(out, ev if valid else None, expect_reject=not valid)

    @rule(dt=st.sampled_from([0, 1, 2, 5, 13, 40]))
    def tick(self, dt):
        self.now += dt
        out = self.engine.advance(self.now)
        self.check_batch(out, None, expect_reject=False)

    @rule(kind=st.sampled_from(["contact", "agent", "queue", "dup", "ended"]))
    def bad_input(self, kind):
        self._sync_time()
        m = self.model
        if kind == "contact":
            ev = OfferAccepted(contact="nobody")
        elif kind == "agent":
            ev = AgentReady(agent="ghost")
        elif kind == "queue":
            ev = ContactArrived(contact="zz", queue="no-such-queue")
        elif kind == "dup":
            live = [cid for cid, c in m.contacts.items() if c["state"] != "ended"]
            if not live:
                return
            ev = ContactArrived(contact=live[0], queue=next(iter(m.queues)))
        else:
            gone = sorted(m.ended)
            if not gone:
                return
            ev = ContactEnded(contact=gone[0])
        self.feed(ev, False)

    @invariant()
    def nothing_lost(self):
        if not hasattr(self, "engine"):
            return
        m = self.model
        live = {cid for cid, c in m.contacts.items() if c["state"] != "ended"}
        assert live == set(self.engine.contacts), (live ^ set(self.engine.contacts))
        for cid in live:
            assert m.contacts[cid]["state"] == {1: "waiting", 2: "offered", 3: "connected", 4: "wrap"}[
                self.engine.contacts[cid].state], cid


EngineMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=80, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineProperties = EngineMachine.TestCase


def test_everything_ends_once_when_people_behave():
    """Drive a random centre to the end with well-behaved people: every
    contact that arrived ends exactly once (completed, abandoned, or
    overflowed out) or is still waiting because nobody can serve it."""
    rng = Random(7)
    raw = {
        "queues": [
            {"name": "a", "skills": {"s1": 3}, "max_wait": 60, "overflow": "b",
             "escalation": [{"after": 20, "skills": {"s1": 1}}]},
            {"name": "b", "channel": "voice", "skills": {"s2": 1}, "wrap_up": 7},
            {"name": "c", "channel": "chat", "skills": {"s1": 1}, "aging": 60},
        ],
        "agents": [
            {"group": "x", "count": 4, "skills": {"s1": 5, "s2": 2}},
            {"group": "y", "count": 3, "skills": {"s1": 1}},
        ],
    }
    eng = Engine(spec_from_obj(raw), rng=Random(1), start=0.0)
    now = 0.0
    ends: dict[str, int] = {}
    talking: list[tuple[float, str]] = []
    for i in range(3000):
        now += rng.expovariate(1 / 4)
        # due hang-ups first, in time order
        while talking and talking[0][0] <= now:
            t, cid = heapq.heappop(talking)
            out = eng.handle(ContactEnded(contact=cid), t)
            for item in _react(eng, out, rng, ends):
                heapq.heappush(talking, item)
        q = rng.choice("abc")
        out = eng.handle(ContactArrived(contact=f"k{i}", queue=q), now)
        for item in _react(eng, out, rng, ends):
            heapq.heappush(talking, item)
        if rng.random() < 0.05:
            waiting = sorted(c.id for c in eng.contacts.values() if c.state == 1)
            if waiting:
                out = eng.handle(CustomerAbandoned(contact=rng.choice(waiting)), now)
                for item in _react(eng, out, rng, ends):
                    heapq.heappush(talking, item)
    while talking or eng.next_deadline() is not None:
        nd = eng.next_deadline()
        if talking and (nd is None or talking[0][0] <= nd):
            t, cid = heapq.heappop(talking)
            out = eng.handle(ContactEnded(contact=cid), t)
        else:
            out = eng.advance(nd)
        for item in _react(eng, out, rng, ends):
            heapq.heappush(talking, item)
    eng.check_invariants()
    assert all(n == 1 for n in ends.values())
    assert len(ends) + len(eng.contacts) == 3000
    assert not eng.contacts  # everything could be served in the end
    rep = eng.report()
    tot = rep["total"]
    assert tot["offered"] == 3000
    assert tot["answered"] + tot["abandoned"] + tot["overflowed"] == 3000


def _react(eng, out, rng, ends):
    """Accept every offer at once; schedule hang-ups; count ends."""
    new = []
    queue = list(out)
    while queue:
        e = queue.pop(0)
        if isinstance(e, ContactOffered):
            queue.extend(eng.handle(OfferAccepted(contact=e.contact), eng.now))
        elif isinstance(e, ContactConnected):
            new.append((eng.now + rng.expovariate(1 / 20), e.contact))
        elif isinstance(e, (ContactCompleted, ContactAbandoned)) or (
                isinstance(e, ContactOverflowed) and e.to_queue is None):
            ends[e.contact] = ends.get(e.contact, 0) + 1
        assert not isinstance(e, InputRejected), e
    return new
