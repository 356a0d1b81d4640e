"""The daemon shell: routing through the bus, timers on a manual clock, bad
input, duplicates, the journal across restarts and crashes, reload, drain,
shutdown -- and a real ``kill -9`` of a daemon subprocess mid-traffic.

Most tests drive a ``Daemon`` on the in-process bus with a ``ManualClock``
(``H`` below), so timers fire exactly when the test moves the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from random import Random
from typing import Any

import msgspec
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acd.bus import Message, Topics
from acd.bus.inproc import InProcessBus
from acd.core.engine import Engine
from acd.core.events import (
    INBOUND_TYPES, ContactArrived, ContactEnded, CustomerAbandoned, OfferAccepted, OfferRejected,
)
from acd.core.spec import spec_from_obj
from acd.daemon import Daemon, ManualClock, Options, merge_streams, parse_hostport
from acd.journal import EventRecord, Journal, JournalError, ReloadRecord

from helpers import stream_bodies

QUEUES = [{"name": "support", "ring_timeout": 10, "wrap_up": 5, "service_level": {"threshold": 20}}]
AGENTS = [{"group": "a", "count": 2}]
SPEC = spec_from_obj({"queues": QUEUES, "agents": AGENTS})
T0 = 1_767_600_000.0  # the ManualClock's default start, a multiple of 900

CONFIG_YAML = """\
queues:
  - name: support
    ring_timeout: 10
agents:
  - group: a
    count: {count}
"""


class AckBus(InProcessBus):
    """In-process bus whose messages record their acknowledgement."""

    def __init__(self) -> None:
        super().__init__()
        self.acked: list[int] = []
        self.on_ack: Any = None
        self.n = 0

    def send(self, topic: str, payload: bytes) -> int:
        self.n += 1
        n = self.n

        async def ack() -> None:
            if self.on_ack is not None:
                self.on_ack(n, payload)
            self.acked.append(n)

        self._inbound.put_nowait(Message(topic, payload, ack))
        return n


class FlakyBus(AckBus):
    """Publishing on ``out/decision`` fails while ``fail`` is set (a broker away)."""

    fail = True

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if self.fail and topic.endswith("/out/decision"):
            raise ConnectionError("broker away")
        await super().publish(topic, payload, retain=retain)


class H:
    """A daemon on an in-process bus with a manual clock, and what it published."""

    def __init__(self, tmp_path: Path | None, spec: Any = SPEC, *, journal: bool = True, clock: Any = None,
                 bus: Any = None, **opts: Any):
        self.bus = bus if bus is not None else AckBus()
        self.clock = clock if clock is not None else ManualClock()
        self.journal = tmp_path / "journal" if journal and tmp_path is not None else None
        options = Options(**{"fsync": "never", "watch_config": False, **opts})
        self.daemon = Daemon(spec, self.bus, self.journal, options, clock=self.clock)
        self.sub = self.bus.subscribe("acd/#")
        self.msgs: list[tuple[str, Any]] = []
        self.raw: list[Message] = []  # every message as published
        self.sent = 0

    async def __aenter__(self) -> "H":
        await self.daemon.start()
        await self.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.daemon.status == "running":
            await self.daemon.stop()

    @property
    def engine(self) -> Engine:
        return self.daemon.state.engine

    def send(self, tag: str, payload: Any, topic: str | None = None) -> int:
        topic = topic if topic is not None else self.daemon.topics.inbound_for(tag)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.sent += 1
        return self.bus.send(topic, data)

    async def settle(self, timeout: float = 3.0) -> None:
        """Wait until every message sent is processed and everything is published."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        d = self.daemon
        while True:
            await asyncio.sleep(0)
            if d.stats.inbound_messages >= self.sent and not d._outbox and self.bus._inbound.empty() \
                    and d._ckpt_child is None:  # also a checkpoint being written by a child
                break
            if loop.time() > end:
                raise AssertionError(f"daemon did not settle: outbox {len(d._outbox)}, "
                                     f"{d.stats.inbound_messages}/{self.sent} messages")
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        while not self.sub.empty():
            m = self.sub.get_nowait()
            self.raw.append(m)
            try:
                body = json.loads(m.payload)
            except ValueError:
                body = m.payload.decode()
            topic = m.topic.split("/", 2)[2]
            bodies = stream_bodies(topic, body)
            assert isinstance(bodies, list) and bodies, body  # an array, never empty, on the streams
            self.msgs.extend((topic, b) for b in bodies)

    def out(self, kind: str) -> list[Any]:
        return [b for t, b in self.msgs if t == f"out/{kind}"]

    def events(self, type_: str | None = None) -> list[dict]:
        return [b for t, b in self.msgs if t in ("out/event", "out/decision")
                and (type_ is None or b["type"] == type_)]

    def seqs(self) -> list[int]:
        return [b["seq"] for t, b in self.msgs if isinstance(b, dict) and "seq" in b and t != "out/metrics"]


def arrive(h: H, contact: str, eid: str | None = None, **kw: Any) -> int:
    return h.send("contact.arrived", {"id": eid or f"arr-{contact}", "contact": contact, "queue": "support", **kw})


# --- routing end to end ---------------------------------------------------------------------------


async def test_routes_end_to_end(tmp_path):
    async with H(tmp_path) as h:
        assert h.bus.retained["acd/default/status"] == b"online"
        arrive(h, "c1")
        await h.settle()
        (dec,) = h.out("decision")
        assert dec == {"seq": 1, "type": "contact.offered", "contact": "c1", "queue": "support", "agent": "a-1",
                       "channel": "voice", "offer": 1, "timeout": 10.0, "time": T0}
        h.send("offer.accepted", {"id": "acc-1", "contact": "c1", "agent": "a-1"})
        await h.settle()
        (conn,) = h.events("contact.connected")
        assert conn["agent"] == "a-1" and conn["wait"] == 0.0
        h.clock.advance(30)
        h.send("contact.ended", {"id": "end-1", "contact": "c1"})
        await h.settle()
        assert h.events("contact.completed") == []  # 5 s of wrap-up first
        assert h.engine.snapshot()["agents"]["a-1"]["state"] == "wrap_up"
        h.clock.advance(5)  # the wrap-up deadline fires from the timer
        await h.settle()
        (done,) = h.events("contact.completed")
        assert (done["talk"], done["wrap_up"], done["time"]) == (30.0, 5.0, T0 + 35)
        (m,) = [x for x in h.out("metrics") if x["kind"] == "contact"]
        assert m == {"kind": "contact", "seq": done["seq"], "time": T0 + 35, "contact": "c1", "queue": "support",
                     "agent": "a-1", "wait": 0.0, "talk": 30.0, "wrap_up": 5.0, "handle": 35.0}
        assert h.seqs() == list(range(1, len(h.seqs()) + 1))  # every outbound event numbered, in order
        assert h.engine.snapshot()["agents"]["a-1"]["state"] == "ready"
        assert h.bus.acked == [1, 2, 3]


def test_merge_streams_one_array_per_stream_decisions_untouched():
    ev, met, dec, st = "t/out/event", "t/out/metrics", "t/out/decision", "t/status"
    pubs = [(ev, b'{"seq":1}', False), (dec, b'{"seq":2}', False), (ev, b'{"seq":3}', False),
            (met, b'{"seq":3,"kind":"contact"}', False), (st, b"online", True), (dec, b'{"seq":4}', False),
            (ev, b'{"seq":5}', False)]
    # arrays run between the messages that are not merged, which keep their place
    assert merge_streams(pubs, (ev, met)) == [
        (ev, b'[{"seq":1}]', False), (dec, b'{"seq":2}', False),
        (ev, b'[{"seq":3}]', False), (met, b'[{"seq":3,"kind":"contact"}]', False),
        (st, b"online", True), (dec, b'{"seq":4}', False), (ev, b'[{"seq":5}]', False)]
    run = [(ev, b'{"seq":%d}' % i, False) for i in range(1, 6)] + [(met, b'{"m":1}', False), (ev, b'{"seq":6}', False)]
    assert merge_streams(run, (ev, met)) == [
        (ev, b'[{"seq":1},{"seq":2},{"seq":3},{"seq":4},{"seq":5},{"seq":6}]', False), (met, b'[{"m":1}]', False)]
    # an array closes before it would pass the byte limit
    assert merge_streams(run[:5], (ev, met), limit=31) == [  # 31: exactly the first array
        (ev, b'[{"seq":1},{"seq":2},{"seq":3}]', False), (ev, b'[{"seq":4},{"seq":5}]', False)]
    assert merge_streams([(dec, b"{}", False)], (ev, met)) == [(dec, b"{}", False)]
    assert merge_streams([], (ev, met)) == []


async def test_one_publish_round_makes_one_event_message(tmp_path):
    """What one inbound event causes leaves as one array on out/event, in
    seq order; the decision stays alone on out/decision."""
    async with H(tmp_path) as h:
        arrive(h, "c1")
        arrive(h, "c2")
        await h.settle()
        assert [json.loads(m.payload)["contact"] for m in h.raw if m.topic.endswith("/out/decision")] == ["c1", "c2"]
        h.raw.clear()
        h.send("offer.accepted", {"id": "acc-1", "contact": "c1", "agent": "a-1"})
        await h.settle()
        (msg,) = h.raw
        assert msg.topic.endswith("/out/event")
        body = json.loads(msg.payload)
        assert [(e["type"], e["seq"]) for e in body] == [("contact.connected", 5), ("agent.state", 6)]


async def test_merged_events_never_overtake_a_decision(tmp_path):
    """A reject re-offers c1 to a-2, then c1 hangs up, in one round: the new
    offer is published before the events that come after it (found in
    review: arrays placed at their first element let the abandon overtake it)."""
    async with H(tmp_path) as h:
        arrive(h, "c1")
        await h.settle()
        h.send("offer.rejected", {"id": "rej-1", "contact": "c1", "agent": "a-1"})
        h.send("contact.abandoned", {"id": "ab-1", "contact": "c1"})
        await h.settle()
        assert h.seqs() == list(range(1, len(h.seqs()) + 1))
        types = [b["type"] for t, b in h.msgs if isinstance(b, dict) and "seq" in b and t != "out/metrics"]
        assert types.index("contact.offered", 1) < types.index("contact.abandoned")


async def test_waiting_contact_offered_when_an_agent_gets_ready(tmp_path):
    spec = spec_from_obj({"queues": QUEUES, "agents": [{"group": "a", "count": 1, "initial": "offline"}]})
    async with H(tmp_path, spec) as h:
        arrive(h, "c1")
        await h.settle()
        assert [e["type"] for e in h.events()] == ["contact.queued"]
        h.clock.advance(12)
        h.send("agent.login", {"id": "l1", "agent": "a-1"})
        await h.settle()
        (dec,) = h.out("decision")
        assert dec["contact"] == "c1" and dec["agent"] == "a-1" and dec["time"] == T0 + 12


async def test_ring_timeout_fires_from_the_timer(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1")
        await h.settle()
        assert h.daemon._armed == T0 + 10  # the one timer, armed for the ring time-out
        h.clock.advance(9.9)
        await h.settle()
        assert len(h.out("decision")) == 1
        h.clock.advance(0.1)
        await h.settle()
        (req,) = h.events("contact.requeued")
        assert req["reason"] == "timeout" and req["agent"] == "a-1" and req["time"] == T0 + 10
        first, second = h.out("decision")
        assert (second["agent"], second["offer"], second["time"]) == ("a-2", 2, T0 + 10)
        assert h.daemon.stats.timer_fires == 1
        assert h.daemon.stats.deadline_lag == 0.0


async def test_time_never_goes_backwards(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1")
        await h.settle()
        h.clock.t -= 100  # the wall clock steps back (NTP)
        arrive(h, "c2")
        await h.settle()
        offers = h.out("decision")
        assert [o["time"] for o in offers] == [T0, T0]
        assert h.engine.now == T0


async def test_interval_metrics_at_each_boundary(tmp_path):
    spec = spec_from_obj({"queues": QUEUES, "agents": AGENTS, "interval": 60})
    async with H(tmp_path, spec) as h:
        h.clock.advance(5)
        arrive(h, "c1")
        await h.settle()
        h.clock.advance(4)
        h.send("offer.accepted", {"id": "x1", "contact": "c1"})
        await h.settle()
        h.clock.advance(60)  # crosses T0 + 60
        await h.settle()
        (iv,) = [m for m in h.out("metrics") if m["kind"] == "interval"]
        assert (iv["start"], iv["end"]) == (T0, T0 + 60)
        q = iv["queues"]["support"]
        assert (q["offered"], q["answered"], q["abandoned"], q["asa"], q["service_level"]) == (1, 1, 0, 4.0, 1.0)
        assert 0 < q["occupancy"] <= 1
        h.clock.advance(60)
        await h.settle()
        ivs = [m for m in h.out("metrics") if m["kind"] == "interval"]
        assert [m["start"] for m in ivs] == [T0, T0 + 60]


async def test_daemon_decides_like_the_core_fed_directly(tmp_path):
    """The same scenario through the daemon (manual clock, timers) and fed to
    an engine directly gives identical decisions."""
    script = [
        (0.0, ContactArrived(contact="c1", queue="support", id="1")),
        (1.0, ContactArrived(contact="c2", queue="support", id="2")),
        (2.0, ContactArrived(contact="c3", queue="support", id="3")),
        (3.0, OfferAccepted(contact="c1", id="4")),
        (15.0, OfferRejected(contact="c3", id="5")),  # c2's ring time-out (11 s) fired in between
        (40.0, ContactEnded(contact="c1", id="6")),
        (41.0, CustomerAbandoned(contact="c3", id="7")),
    ]
    eng = Engine(SPEC, rng=Random(0), start=T0)
    direct = []
    for dt, ev in script:
        direct += eng.handle(ev, T0 + dt)
    direct += eng.advance(T0 + 100)
    expected = [msgspec.to_builtins(o) for o in direct]
    async with H(tmp_path) as h:
        for dt, ev in script:
            h.clock.set(T0 + dt)
            await h.settle()
            tag = type(ev).__struct_config__.tag
            h.send(tag, msgspec.json.encode(ev))
            await h.settle()
        h.clock.set(T0 + 100)
        await h.settle()
        got = sorted((b for t, b in h.msgs if t in ("out/event", "out/decision", "out/error")), key=lambda b: b["seq"])
        for b in got:
            del b["seq"]
        assert got == expected


# --- bad input ----------------------------------------------------------------------------------------

BAD = [
    # (tag or full topic, payload, reason)
    ("contact.arrived", b"{not json", "bad_json"),
    ("contact.arrived", b"\xff\xfe\x00", "bad_json"),
    ("contact.arrived", {"contact": 5, "queue": "support"}, "invalid"),
    ("contact.arrived", {"contact": "x"}, "invalid"),
    ("contact.arrived", {"contact": "x", "queue": "support", "colour": "red"}, "invalid"),
    ("contact.arrived", {"type": "agent.login", "agent": "a-1"}, "invalid"),
    ("contact.arrived", [], "invalid"),
    ("acd/default/in/contact/teleported", {"contact": "x"}, "unknown_topic"),
    ("acd/other/in/contact/arrived", {"contact": "x", "queue": "support"}, "unknown_topic"),
    ("acd/default/out/decision", {}, "unknown_topic"),
    ("agent.ready", {"id": "r1", "agent": "ghost"}, "rejected"),
    ("offer.accepted", {"id": "r2", "contact": "nobody"}, "rejected"),
    ("contact.arrived", {"contact": "big", "queue": "support", "attributes": {"x": "y" * 3000}}, "too_large"),
]


async def test_malformed_messages_are_answered_counted_and_survived(tmp_path):
    async with H(tmp_path, max_payload=2048) as h:
        for where, payload, _ in BAD:
            if "/" in where:
                h.send("", payload, topic=where)
            else:
                h.send(where, payload)
        arrive(h, "good")
        await h.settle()
        errors = h.out("error")
        assert [e["reason"] for e in errors] == [r for _, _, r in BAD]
        for (where, payload, _), e in zip(BAD, errors):
            topic = where if "/" in where else h.daemon.topics.inbound_for(where)
            assert e["topic"] == topic and e["detail"]
            assert len(e["payload"]) <= 256 + 3
        assert "unknown agent 'ghost'" in errors[10]["detail"] and errors[10]["seq"] >= 1
        assert "Expected `str`, got `int`" in errors[2]["detail"]
        assert h.daemon.stats.errors == Counter({"invalid": 5, "unknown_topic": 3, "bad_json": 2, "rejected": 2,
                                                 "too_large": 1})
        (dec,) = h.out("decision")  # still routing
        assert dec["contact"] == "good"
        assert sorted(h.bus.acked) == list(range(1, len(BAD) + 2))  # everything acked: no redelivery loop
        assert h.daemon.status == "running"


_TOPICS = [Topics().inbound_for(cls.__struct_config__.tag) for cls in INBOUND_TYPES] + [
    "acd/default/in/nope", "acd/default/in/", "acd/default/out/decision", "elsewhere", "acd/default/in/contact"]
_DECODERS = {cls.__struct_config__.tag: msgspec.json.Decoder(cls) for cls in INBOUND_TYPES}
_names = st.sampled_from(["a-1", "a-2", "c1", "c2", "support", "ghost", ""])
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=8) | _names,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6) | _names, inner, max_size=3),
    max_leaves=8)
_plausible = st.dictionaries(
    st.sampled_from(["id", "contact", "queue", "agent", "reason", "priority", "channel", "skills", "type"]),
    _names | st.integers(-5, 5) | st.floats(allow_nan=True) | st.sampled_from(["voice", "chat", {"support": 3}]),
    max_size=5)
_payloads = st.one_of(
    st.binary(max_size=40),
    _json_values.map(lambda v: json.dumps(v).encode()),
    _plausible.map(lambda v: json.dumps(v).encode()),
)


def _bad(topic: str, payload: bytes) -> bool:
    tag = Topics().tag_of(topic)
    if tag not in _DECODERS:
        return True
    try:
        _DECODERS[tag].decode(payload)
    except msgspec.DecodeError:
        return True
    return False


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_TOPICS), _payloads), min_size=1, max_size=12))
def test_fuzzed_inbound_never_crashes_and_bad_input_is_answered(msgs):
    async def run() -> None:
        async with H(None, journal=False) as h:
            for topic, payload in msgs:
                h.send("", payload, topic=topic)
            arrive(h, "sentinel", eid="sentinel-id")
            await h.settle()
            d = h.daemon
            assert d.status == "running"
            errors = h.out("error")
            refused = [e for e in errors if e["reason"] not in ("rejected",)]
            expected = [t for t, p in msgs if _bad(t, p)]
            assert [e["topic"] for e in refused] == expected
            assert all(e["reason"] in ("bad_json", "invalid", "unknown_topic") for e in refused)
            assert sum(d.stats.errors.values()) == len(errors)
            assert "internal" not in d.stats.errors
            assert sorted(h.bus.acked) == list(range(1, len(msgs) + 2))
            assert any(e.get("contact") == "sentinel" for e in h.events())
            h.engine.check_invariants()

    asyncio.run(run())


# --- duplicates -------------------------------------------------------------------------------------


async def test_duplicate_ids_are_dropped_also_after_restart(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1", eid="e1")
        arrive(h, "c1", eid="e1")
        h.send("agent.not_ready", {"id": "e2", "agent": "a-2", "reason": "lunch"})
        h.send("agent.not_ready", {"id": "e2", "agent": "a-2", "reason": "lunch"})
        await h.settle()
        assert len(h.out("decision")) == 1 and h.out("error") == []
        assert h.daemon.stats.duplicates == 2
        assert sorted(h.bus.acked) == [1, 2, 3, 4]
    async with H(tmp_path) as h:  # clean restart
        arrive(h, "c1", eid="e1")
        await h.settle()
        assert h.daemon.stats.duplicates == 1 and h.out("decision") == [] and h.out("error") == []
        arrive(h, "c2", eid="e3")
        await h.settle()
        await h.daemon.abort()  # crash: e3 is only in the journal, not in a checkpoint
    async with H(tmp_path) as h:
        arrive(h, "c2", eid="e3")
        h.send("agent.not_ready", {"id": "e2", "agent": "a-2", "reason": "lunch"})
        await h.settle()
        assert h.daemon.stats.duplicates == 2 and h.out("error") == []


async def test_events_without_id_are_accepted_but_not_deduplicated(tmp_path):
    async with H(tmp_path) as h:
        h.send("agent.not_ready", {"agent": "a-2", "reason": "lunch"})
        h.send("agent.not_ready", {"agent": "a-2", "reason": "break"})
        h.send("agent.not_ready", {"agent": "a-2", "reason": "break"})
        await h.settle()
        assert h.daemon.stats.duplicates == 0
        assert h.daemon.stats.inbound["agent.not_ready"] == 3


# --- the journal: restart, crash, replay -----------------------------------------------------------------


async def _traffic(h: H) -> None:
    """A bit of everything: offers, accepts, a reject, a time-out, an
    abandon, wrap-up, presence changes."""
    for i in range(1, 7):
        arrive(h, f"c{i}")
        h.clock.advance(1)
        await h.settle()
    h.send("offer.accepted", {"id": "x1", "contact": "c1"})
    h.send("offer.rejected", {"id": "x2", "contact": "c2", "reason": "busy"})
    await h.settle()
    h.clock.advance(12)  # ring time-outs
    await h.settle()
    h.send("contact.abandoned", {"id": "x3", "contact": "c5"})
    h.send("contact.ended", {"id": "x4", "contact": "c1"})
    h.send("agent.not_ready", {"id": "x5", "agent": "a-2", "reason": "lunch"})
    await h.settle()
    h.clock.advance(3)
    await h.settle()


def _view(d: Daemon) -> Any:
    """The state, at the clock's time (advancing an engine with nothing due
    only moves its clock)."""
    eng = d.state.engine
    assert eng.advance(max(eng.now, d.clock.time())) == []
    eng.check_invariants()
    return eng.snapshot(), eng.report(), d.state.seq, list(d.state.ids), eng.next_deadline()


@pytest.mark.parametrize("crash", [True, False], ids=["crash", "clean"])
async def test_restart_rebuilds_the_same_state(tmp_path, crash):
    async with H(tmp_path) as h:
        await _traffic(h)
        before = _view(h.daemon)
        published = h.seqs()
        if crash:
            await h.daemon.abort()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert _view(h2.daemon) == before
        # nothing that was published is published again
        assert published and h2.seqs() == [] and h2.msgs == [("status", "online")]
        if not crash:
            assert h2.daemon.stats.replayed_records == 0  # the shutdown checkpoint covers everything
        # and it goes on deciding as the first one would have
        h2.clock.advance(20)
        h2.send("offer.accepted", {"id": "y1", "contact": "c3"})
        await h2.settle()
        assert h2.seqs()[0] == before[2] + 1


async def test_checkpoints_rotate_and_prune(tmp_path):
    async with H(tmp_path, snapshot_every=7) as h:
        await _traffic(h)
        before = _view(h.daemon)
        j = Journal(tmp_path / "journal")
        assert len(j.checkpoints()) == 2 and j.segments()[0] == j.checkpoints()[0]
        assert h.daemon.journal.checkpoints_written >= 2
        await h.daemon.abort()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert _view(h2.daemon) == before
        assert h2.daemon.stats.replayed_records < 7 + 3


async def test_a_size_checkpoint_is_written_by_a_child_and_its_failure_counted(tmp_path, monkeypatch):
    """Size checkpoints come from a forked child (the router does not stall
    while the engine is pickled).  A child that fails is reported and
    counted, nothing is pruned, and a restart still recovers everything."""
    async with H(tmp_path, snapshot_every=7) as h:
        await _traffic(h)
        assert h.daemon._ckpt_future is not None and h.daemon._ckpt_future.result()[0] == 0  # a child wrote it
        assert h.daemon.journal.checkpoints_written >= 2  # the first one (fresh journal) and the child's
        assert h.daemon.stats.snapshot_errors == 0
        segments = len(Journal(tmp_path / "journal").segments())

        def broken(self, cp):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(Journal, "write_checkpoint", broken)  # the child inherits it
        written = h.daemon.journal.checkpoints_written
        for i in range(12):  # enough records for more size checkpoints
            arrive(h, f"d{i}")
            h.send("contact.abandoned", {"id": f"ab-d{i}", "contact": f"d{i}"})
            h.clock.advance(1)
            await h.settle()
        assert h.daemon.stats.snapshot_errors >= 1
        assert h.daemon.journal.checkpoints_written == written
        assert len(Journal(tmp_path / "journal").segments()) > segments  # nothing pruned meanwhile
        before = _view(h.daemon)
        await h.daemon.abort()
    monkeypatch.undo()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert _view(h2.daemon) == before


@pytest.mark.parametrize("force", [False, True])
async def test_shutdown_does_not_wait_for_ever_on_a_stuck_checkpoint_child(tmp_path, monkeypatch, force):
    """A checkpoint child that hangs (a stuck disk) is killed once the
    shutdown timeout is over, at once on a forced stop; the daemon stops,
    and a restart recovers everything from the previous checkpoint and the
    segments after it."""
    parent = os.getpid()
    real = Journal.write_checkpoint

    def stuck(self, cp):
        if os.getpid() != parent:
            time.sleep(60)
        return real(self, cp)

    monkeypatch.setattr(Journal, "write_checkpoint", stuck)
    h = H(tmp_path, snapshot_every=5, shutdown_timeout=0.5)
    await h.__aenter__()
    d = h.daemon
    for i in range(10):
        arrive(h, f"c{i}")
        h.clock.advance(1)
        await _until(lambda: d.stats.inbound_messages == i + 1)
        if d._ckpt_child is not None:
            break
    assert d._ckpt_child is not None
    pid, fut = d._ckpt_child, d._ckpt_future
    before = _view(d)
    t0 = time.monotonic()
    if force:
        d.request_stop(force=True)
    await d.stop()
    assert time.monotonic() - t0 < (3 if force else 5)
    assert fut.done() and os.WIFSIGNALED(fut.result()[0])  # killed, and reaped
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    monkeypatch.undo()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert _view(h2.daemon) == before


async def test_unpublished_outputs_are_republished_after_a_crash(tmp_path):
    bus = FlakyBus()
    async with H(tmp_path, bus=bus) as h:
        arrive(h, "c1")
        await asyncio.sleep(0.2)  # the publisher retries the decision, in vain
        assert h.bus._inbound.empty() and h.daemon._outbox
        await h.daemon.abort()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        dec = h2.out("decision")
        assert [(d["seq"], d["contact"], d["agent"]) for d in dec] == [(1, "c1", "a-1")]
        assert [e["seq"] for e in h2.events("agent.state")] == [2]
        assert h2.daemon.stats.republished == 2
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h3:  # and not a third time
        assert h3.seqs() == []


async def test_timer_decisions_are_not_lost_nor_repeated_across_a_crash(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1")
        await h.settle()
        h.clock.advance(10)  # ring time-out: requeued + offered to a-2, published
        await h.settle()
        published = h.seqs()
        await h.daemon.abort()  # no journal record for the time-out: only the 'published' marker
    async with H(tmp_path, clock=ManualClock(h.clock.t + 1)) as h2:
        assert h2.seqs() == []  # re-derived by the first advance, but known to be published
        assert h2.engine.contacts["c1"].agent.id == "a-2"
        assert h2.daemon.state.seq == published[-1]

    bus = FlakyBus()
    async with H(tmp_path / "b", bus=bus) as h:
        arrive(h, "c1")
        await _until(lambda: h.daemon.stats.inbound_messages == 1)
        h.clock.advance(10)
        await asyncio.sleep(0.1)
        await h.daemon.abort()  # neither decision made it out
    async with H(tmp_path / "b", clock=ManualClock(h.clock.t + 1)) as h2:
        offers = [(d["seq"], d["agent"], d["offer"]) for d in h2.out("decision")]
        assert offers == [(1, "a-1", 1), (5, "a-2", 2)]  # 3 requeued, 4 a-1 ready again, 5 the new offer
        assert h2.seqs() == list(range(1, 7))


async def test_a_torn_journal_tail_is_cut_and_the_rest_replayed(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1")
        arrive(h, "c2")
        await h.settle()
        await h.daemon.abort()
    seg = sorted((tmp_path / "journal").glob("seg-*.acdj"))[-1]
    with open(seg, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x12\x34")  # half a record header and nothing more
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert sorted(h2.engine.contacts) == ["c1", "c2"]
        assert h2.daemon.journal.repaired is not None


async def test_journal_is_locked_against_a_second_daemon(tmp_path):
    async with H(tmp_path):
        with pytest.raises(JournalError, match="in use by another acd"):
            await Daemon(SPEC, InProcessBus(), tmp_path / "journal", Options(watch_config=False)).start()


@pytest.mark.parametrize("policy", ["always", "batch", "never"])
async def test_fsync_policies(tmp_path, policy):
    bus = AckBus()
    async with H(tmp_path, bus=bus, fsync=policy, batch_ms=20) as h:
        j = h.daemon.journal
        pos: dict[str, int] = {}
        orig = j.append

        def append(rec: Any) -> int:
            n = orig(rec)
            if isinstance(rec, EventRecord):
                pos[rec.e.contact] = n
            return n

        j.append = append  # type: ignore[method-assign]
        at_ack: dict[str, int] = {}
        bus.on_ack = lambda n, payload: at_ack.__setitem__(json.loads(payload)["contact"], j.synced)
        at_publish: dict[str, int] = {}
        real_publish = bus.publish

        async def publish(topic: str, payload: bytes, *, retain: bool = False) -> None:
            if topic.endswith("out/decision"):
                at_publish[json.loads(payload)["contact"]] = j.synced
            await real_publish(topic, payload, retain=retain)

        bus.publish = publish  # type: ignore[method-assign]
        fsyncs0 = j.fsyncs
        for i in range(20):
            arrive(h, f"c{i}")
        await h.settle()
        assert len(at_ack) == 20
        for c, p in pos.items():
            assert at_ack[c] >= p  # acknowledged only once durable (by the policy)
        for c, s in at_publish.items():
            assert s >= pos[c]  # nor a decision published before its cause is
        if policy == "never":
            assert j.fsyncs == fsyncs0 == 0
        else:
            assert 1 <= j.fsyncs - fsyncs0 < 20  # group commit: one fsync covers many events
        await h.daemon.abort()
    events = [r for r in Journal(tmp_path / "journal").iter_records(1) if isinstance(r, EventRecord)]
    assert [r.e.contact for r in events] == [f"c{i}" for i in range(20)]


async def test_restart_after_100k_events_is_fast(tmp_path):
    spec = spec_from_obj({"queues": [{"name": "support", "ring_timeout": 20}], "agents": [{"group": "a", "count": 20}]})
    async with H(tmp_path, spec) as h:
        d = h.daemon
        rng = Random(7)
        n = i = 0
        connected: list[str] = []
        while n < 100_000:
            h.clock.advance(rng.expovariate(1.0))
            out = d.apply(ContactArrived(id=f"a{i}", contact=f"c{i}", queue="support"))
            n += 1
            for o in out:
                if type(o).__name__ == "ContactOffered":
                    d.apply(OfferAccepted(id=f"acc-{o.contact}", contact=o.contact))
                    connected.append(o.contact)
                    n += 1
            if len(connected) > 15:
                c = connected.pop(0)
                d.apply(ContactEnded(id=f"end-{c}", contact=c))
                n += 1
            i += 1
            if i % 1000 == 0:
                await asyncio.sleep(0)
        before = _view(d)
        assert d.journal.checkpoints_written >= 2  # every 50,000 records by default
        await d.abort()
    t0 = time.perf_counter()
    async with H(tmp_path, spec, clock=ManualClock(h.clock.t)) as h2:
        elapsed = time.perf_counter() - t0
        assert _view(h2.daemon) == before
    assert elapsed < 2.0, elapsed


async def test_checkpoint_from_another_build(tmp_path, monkeypatch):
    import acd.daemon as daemon_mod

    async with H(tmp_path, snapshot_every=1) as h:
        arrive(h, "c1")
        await h.settle()
        await h.daemon.abort()  # a pickled checkpoint with a contact in the system
    monkeypatch.setattr(daemon_mod, "code_fingerprint", lambda: "another-build")
    with pytest.raises(JournalError, match="another acd build"):
        async with H(tmp_path, clock=ManualClock(h.clock.t)):
            pass
    monkeypatch.undo()
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h:  # the old build finishes the work
        h.send("contact.abandoned", {"id": "ab", "contact": "c1"})
        h.send("agent.not_ready", {"id": "nr", "agent": "a-2", "reason": "training"})
        await h.settle()
    monkeypatch.setattr(daemon_mod, "code_fingerprint", lambda: "another-build")
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h:  # idle + clean stop: the upgrade goes through
        assert h.daemon.state.upgraded
        assert h.engine.snapshot()["agents"]["a-2"] == {"state": "not_ready", "reason": "training", "contacts": []}
        arrive(h, "c1", eid="again")
        await h.settle()
        assert h.out("decision")[0]["seq"] == h.daemon.state.seq - 1  # seq goes on


# --- reload, drain, shutdown ----------------------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))  # a visible mtime change


async def _until(cond: Any, timeout: float = 3.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_reload_on_config_change_and_bad_config_rejected(tmp_path):
    cfg = tmp_path / "acd.yaml"
    _write(cfg, CONFIG_YAML.format(count=2))
    async with H(tmp_path, cfg, watch_config=True, poll_interval=0.02) as h:
        h.send("agent.not_ready", {"id": "n1", "agent": "a-2", "reason": "lunch"})
        await h.settle()
        _write(cfg, CONFIG_YAML.format(count=3))
        await _until(lambda: len(h.engine.agents) == 3)
        await h.settle()
        assert h.engine.snapshot()["agents"]["a-2"]["reason"] == "lunch"  # presence carried over
        (new,) = [e for e in h.events("agent.state") if e["agent"] == "a-3"]
        assert (new["previous"], new["state"]) == ("offline", "ready")
        assert h.daemon.stats.reloads["applied"] == 1
        with structlog.testing.capture_logs() as logs:
            _write(cfg, CONFIG_YAML.format(count="many"))
            await _until(lambda: h.daemon.stats.reloads["rejected"] == 1)
        (err,) = [e for e in logs if e["log_level"] == "error"]
        assert "keeping the running config" in err["event"] and "acd.yaml:6: agents[0].count" in err["errors"][0]
        assert len(h.engine.agents) == 3  # the old config stays
        assert h.daemon.health()["reload"]["last_error"] == err["errors"]
        arrive(h, "c1")
        await h.settle()
        assert h.out("decision")


async def test_reload_waits_until_no_contact_is_in_the_system(tmp_path):
    cfg = tmp_path / "acd.yaml"
    _write(cfg, CONFIG_YAML.format(count=2))
    async with H(tmp_path, cfg) as h:
        arrive(h, "c1")
        await h.settle()
        _write(cfg, CONFIG_YAML.format(count=1))
        res = h.daemon.reload(drain=True)
        assert res["status"] == "pending" and res["contacts"] == 1
        arrive(h, "c2")  # draining: refused
        await h.settle()
        (refused,) = h.out("error")
        assert (refused["reason"], refused["contact"]) == ("draining", "c2")
        assert len(h.engine.agents) == 2
        h.send("offer.accepted", {"id": "x1", "contact": "c1"})
        h.send("contact.ended", {"id": "x2", "contact": "c1"})
        await h.settle()
        assert list(h.engine.agents) == ["a-1"]  # applied once idle
        assert not h.daemon.draining  # and the drain ended with it
        gone = [e for e in h.events("agent.state") if e["agent"] == "a-2"][-1]
        assert (gone["state"], gone["reason"]) == ("offline", "removed by reload")
        assert h.daemon.reload()["status"] == "unchanged"
        arrive(h, "c3")
        await h.settle()
        assert h.out("decision")[-1]["contact"] == "c3"
        before = _view(h.daemon)
        await h.daemon.abort()
    reloads = [r for r in Journal(tmp_path / "journal").iter_records(1) if isinstance(r, ReloadRecord)]
    assert len(reloads) == 1
    _write(cfg, CONFIG_YAML.format(count=1))
    async with H(tmp_path, cfg, clock=ManualClock(h.clock.t)) as h2:  # the replay swaps at the same point
        assert _view(h2.daemon)[:3] == before[:3]


async def test_config_changed_while_stopped_is_applied_at_start(tmp_path):
    cfg = tmp_path / "acd.yaml"
    _write(cfg, CONFIG_YAML.format(count=2))
    async with H(tmp_path, cfg):
        pass
    _write(cfg, CONFIG_YAML.format(count=4))
    async with H(tmp_path, cfg) as h:
        assert len(h.engine.agents) == 4


async def test_drain_refuses_new_contacts_only(tmp_path):
    async with H(tmp_path) as h:
        arrive(h, "c1")
        await h.settle()
        assert h.daemon.set_drain(True) == {"draining": True, "contacts": 1}
        assert h.daemon.health()["status"] == "draining"
        arrive(h, "c2")
        h.send("offer.accepted", {"id": "x1", "contact": "c1"})
        await h.settle()
        assert [e["reason"] for e in h.out("error")] == ["draining"]
        assert h.events("contact.connected")
        h.daemon.set_drain(False)
        arrive(h, "c3")
        await h.settle()
        assert h.out("decision")[-1]["contact"] == "c3"


async def test_graceful_shutdown_publishes_offline(tmp_path):
    h = H(tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(h.daemon.run(shutdown_trigger=stop.wait()))
    await h.daemon.started.wait()
    arrive(h, "c1")
    await h.settle()
    stop.set()
    await asyncio.wait_for(task, 5)
    assert h.daemon.status == "stopped"
    assert h.bus.retained["acd/default/status"] == b"offline"
    assert h.bus.closed
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:
        assert h2.daemon.stats.replayed_records == 0  # the shutdown checkpoint has it all
        assert "c1" in h2.engine.contacts


async def test_signals_stop_and_reload_and_are_restored(tmp_path):
    cfg = tmp_path / "acd.yaml"
    _write(cfg, CONFIG_YAML.format(count=2))
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    h = H(tmp_path, cfg, install_signals=True)
    task = asyncio.create_task(h.daemon.run())
    await h.daemon.started.wait()
    _write(cfg, CONFIG_YAML.format(count=3))
    os.kill(os.getpid(), signal.SIGHUP)
    await _until(lambda: len(h.engine.agents) == 3)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)
    assert h.bus.retained["acd/default/status"] == b"offline"
    assert {s: signal.getsignal(s) for s in before} == before


async def test_no_journal_mode_still_routes(tmp_path):
    async with H(None, journal=False) as h:
        arrive(h, "c1")
        await h.settle()
        assert h.out("decision") and h.daemon.health()["journal"] is None


def test_parse_hostport():
    assert parse_hostport("8080") == ("127.0.0.1", 8080)
    assert parse_hostport(":8080") == ("127.0.0.1", 8080)
    assert parse_hostport("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_hostport("[::1]:9") == ("::1", 9)
    with pytest.raises(ValueError):
        parse_hostport("host:http")


# --- kill -9 ---------------------------------------------------------------------------------------------

KILL_CONFIG = """\
queues:
  - name: q
    ring_timeout: 0.4
agents:
  - group: a
    count: 5
    max_missed_offers: 1000
"""
# A contact is never offered again to an agent who missed it, and every kill
# makes the ringing offers time out while the daemon is down: with only first
# offers ever ignored and two kills, a contact misses at most 3 of 5 agents.


class Telephony:
    """Plays the telephony side against ``python -m acd.daemon --bus stdio``:
    answers most offers, hangs up soon after connecting, abandons a few; it
    keeps its own log of what it sent and re-sends it all to a restarted
    daemon (the daemon drops what it already has)."""

    def __init__(self, tmp_path: Path, n: int, fsync: str, seed: int = 1):
        self.dir = tmp_path
        self.cfg = tmp_path / "acd.yaml"
        self.cfg.write_text(KILL_CONFIG)
        self.n = n
        self.fsync = fsync
        self.rng = random.Random(seed)
        self.topics = Topics()
        self.sent: list[bytes] = []
        self.lines: queue.Queue = queue.Queue()
        self.later: list[tuple[float, int, str, dict]] = []
        self.k = 0
        self.by_seq: dict[int, tuple[str, str]] = {}
        self.offers: dict[tuple[str, int], str] = {}
        self.connected: Counter = Counter()
        self.ended: Counter = Counter()
        self.online = 0
        self.proc: subprocess.Popen | None = None
        self.gen = 0

    def start(self) -> None:
        self.gen += 1
        self.stderr = open(self.dir / f"daemon-{self.gen}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "acd.daemon", "--config", str(self.cfg), "--bus", "stdio",
             "--journal", str(self.dir / "journal"), "--fsync", self.fsync, "--log-level", "warning"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        gen, out = self.gen, self.proc.stdout

        def read() -> None:
            for line in out:
                self.lines.put((gen, line))

        threading.Thread(target=read, daemon=True).start()
        for line in self.sent:  # at-least-once: everything again; duplicates are dropped
            self._write(line)

    def _write(self, line: bytes) -> None:
        try:
            self.proc.stdin.write(line)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # dead: re-sent on restart

    def send(self, tag: str, payload: dict) -> None:
        line = json.dumps({"topic": self.topics.inbound_for(tag), "payload": payload}).encode() + b"\n"
        self.sent.append(line)
        self._write(line)

    def later_send(self, delay: float, tag: str, payload: dict) -> None:
        self.k += 1
        heapq.heappush(self.later, (time.monotonic() + delay, self.k, tag, payload))

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def pump(self, duration: float) -> None:
        end = time.monotonic() + duration
        while True:
            now = time.monotonic()
            while self.later and self.later[0][0] <= now:
                _, _, tag, payload = heapq.heappop(self.later)
                self.send(tag, payload)
            if now >= end:
                return
            try:
                gen, line = self.lines.get(timeout=0.005)
            except queue.Empty:
                continue
            self.on_line(json.loads(line))  # also what a killed daemon wrote before dying

    def on_line(self, obj: dict) -> None:
        if "ack" in obj:
            return
        topic, payload = obj["topic"], obj["payload"]
        if topic.endswith("/status"):
            self.online += payload == "online"
            return
        if topic.endswith("out/metrics"):
            return
        for b in stream_bodies(topic, json.loads(payload)):
            self.on_event(topic, b)

    def on_event(self, topic: str, body: dict) -> None:
        seq = body.get("seq")
        if seq is None:
            return
        if seq in self.by_seq:  # re-published after a restart: must be the very same decision
            assert self.by_seq[seq] == (topic, body), (seq, self.by_seq[seq], body)
            return
        self.by_seq[seq] = (topic, body)
        kind = body.get("type")
        if kind == "contact.offered":
            key = (body["contact"], body["offer"])
            assert key not in self.offers, f"offer {key} decided twice"
            self.offers[key] = body["agent"]
            if key[1] > 1 or self.rng.random() < 0.85:
                self.later_send(self.rng.uniform(0, 0.05), "offer.accepted",
                                {"id": f"acc-{key[0]}-{key[1]}", "contact": key[0], "agent": body["agent"]})
        elif kind == "contact.connected":
            self.connected[body["contact"]] += 1
            self.later_send(self.rng.uniform(0, 0.1), "contact.ended",
                            {"id": f"end-{body['contact']}", "contact": body["contact"]})
        elif kind in ("contact.completed", "contact.abandoned") or (
                kind == "contact.overflowed" and body["to_queue"] is None):
            self.ended[body["contact"]] += 1

    def arrivals(self, ids: range) -> None:
        for i in ids:
            self.send("contact.arrived", {"id": f"arr-{i}", "contact": f"c{i}", "queue": "q"})
            if self.rng.random() < 0.1:
                self.later_send(self.rng.uniform(0.01, 0.3), "contact.abandoned", {"id": f"ab-{i}", "contact": f"c{i}"})
            self.pump(self.rng.uniform(0.005, 0.03))


@pytest.mark.parametrize("fsync", ["batch", "never"])
def test_kill_9_mid_traffic_loses_nothing_and_doubles_nothing(tmp_path, fsync):
    tel = Telephony(tmp_path, n=50, fsync=fsync)
    tel.start()
    tel.arrivals(range(0, 25))
    tel.pump(0.05)
    tel.kill()  # mid-traffic: offers ringing, calls connected, ends queued
    assert sum(tel.ended.values()) < tel.n
    tel.arrivals(range(25, 27))  # sent to a dead process: re-sent on restart
    tel.start()
    tel.arrivals(range(27, 40))
    tel.pump(0.05)
    tel.kill()  # and once more
    tel.start()
    tel.arrivals(range(40, 50))
    end = time.monotonic() + 30
    while len(tel.ended) < tel.n and time.monotonic() < end:
        tel.pump(0.05)
    contacts = {f"c{i}" for i in range(tel.n)}
    if set(tel.ended) != contacts:
        logs = "".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("daemon-*.log")))
        stuck = sorted(contacts - set(tel.ended))
        seen = [v for v in tel.by_seq.values() if any(f'"{c}"' in v[1] for c in stuck)]
        raise AssertionError(f"never ended: {stuck}\nwhat was seen of them: {seen[-20:]}\nlogs: {logs}")
    assert all(n == 1 for n in tel.ended.values()), tel.ended  # every contact ends exactly once
    assert all(n == 1 for n in tel.connected.values()), tel.connected  # none is assigned twice
    assert sorted(tel.by_seq) == list(range(1, max(tel.by_seq) + 1))  # no decision number lost
    tel.proc.send_signal(signal.SIGTERM)
    assert tel.proc.wait(10) == 0
    tel.pump(0.1)
    logs = b"".join(p.read_bytes() for p in tmp_path.glob("daemon-*.log"))
    assert b"Traceback" not in logs, logs.decode()[-3000:]

    async def final_state() -> dict:
        d = Daemon(tel.cfg, InProcessBus(), tmp_path / "journal", Options(watch_config=False))
        await d.start()
        snap = d.state.engine.snapshot()
        await d.stop()
        return snap

    snap = asyncio.run(final_state())
    assert all(q["waiting"] == 0 for q in snap["queues"].values())  # no waiting contact lost
    assert all(a["contacts"] == [] for a in snap["agents"].values())


# --- over a real broker ---------------------------------------------------------------------------------


async def test_routes_over_mqtt_and_survives_a_restart(tmp_path, mosquitto):
    """The daemon on the MQTT bus (``acd.bus.mqtt``): an arrival published by
    a client gets its decision; the status is retained; a restarted daemon
    (same journal, same persistent session) goes on from the same state."""
    import aiomqtt

    from acd.bus.mqtt import MqttBus

    topics = Topics()

    def daemon() -> Daemon:
        return Daemon(SPEC, MqttBus(mosquitto.url, topics, client_id="acd-test"), tmp_path / "journal",
                      Options(watch_config=False, fsync="always"))

    async def next_json(client: aiomqtt.Client, topic_end: str) -> dict:
        async def first() -> dict:
            async for m in client.messages:
                if str(m.topic).endswith(topic_end):
                    return json.loads(m.payload)
        return await asyncio.wait_for(first(), 10)

    async def next_event(client: aiomqtt.Client, type_: str) -> dict:
        async def first() -> dict:
            async for m in client.messages:
                if str(m.topic).endswith("out/event"):
                    for e in json.loads(m.payload):
                        if e["type"] == type_:
                            return e
        return await asyncio.wait_for(first(), 10)

    d = daemon()
    await d.start()
    try:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe(f"{topics.prefix}/out/#", qos=1)
            await c.publish(topics.inbound_for("contact.arrived"), qos=1,
                            payload=json.dumps({"id": "m1", "contact": "c1", "queue": "support"}))
            dec = await next_json(c, "out/decision")
            assert (dec["seq"], dec["contact"], dec["agent"]) == (1, "c1", "a-1")
    finally:
        await d.stop()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await c.subscribe(topics.status, qos=1)
        msg = await asyncio.wait_for(anext(aiter(c.messages)), 10)
        assert msg.payload == b"offline" and msg.retain
    d = daemon()
    await d.start()
    try:
        assert "c1" in d.state.engine.contacts and d.state.seq == 2
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.subscribe(f"{topics.prefix}/out/#", qos=1)
            await c.publish(topics.inbound_for("contact.arrived"), qos=1,  # a redelivery: dropped
                            payload=json.dumps({"id": "m1", "contact": "c1", "queue": "support"}))
            await c.publish(topics.inbound_for("offer.accepted"), qos=1,
                            payload=json.dumps({"id": "m2", "contact": "c1"}))
            conn = await next_event(c, "contact.connected")
            assert conn["seq"] == 3 and conn["agent"] == "a-1"
            assert d.stats.duplicates == 1
    finally:
        await d.stop()


async def test_the_timer_also_runs_the_calendar(tmp_path):
    """Business hours close the queue at 09:00 UTC: the daemon's one timer
    wakes for calendar transitions like for any other deadline."""
    spec = spec_from_obj({
        "queues": [{"name": "support", "hours": {"timezone": "UTC", "weekly": {"daily": "08:00-09:00"}},
                    "closed": {"reason": "call_back_tomorrow"}}],
        "agents": [{"group": "a", "count": 1, "initial": "not_ready"}]})
    async with H(tmp_path, spec) as h:  # the clock starts on 2026-01-05 at 08:00 UTC
        arrive(h, "c1")
        await h.settle()
        assert [e["type"] for e in h.events()] == ["contact.queued"]
        h.clock.advance(3600)
        await h.settle()
        (gone,) = h.events("contact.overflowed")
        assert (gone["time"], gone["reason"], gone["to_queue"]) == (T0 + 3600, "call_back_tomorrow", None)
        assert [m["start"] for m in h.out("metrics") if m["kind"] == "interval"] == [T0, T0 + 900, T0 + 1800,
                                                                                  T0 + 2700]
        await h.daemon.abort()
    async with H(tmp_path, spec, clock=ManualClock(h.clock.t)) as h2:  # and the replay agrees
        assert h2.engine.contacts == {} and h2.daemon.state.seq == h.daemon.state.seq


async def test_a_second_stop_request_forces_exit(tmp_path):
    bus = FlakyBus()  # decisions cannot be published: a graceful stop would wait for them
    h = H(tmp_path, bus=bus, shutdown_timeout=60)
    task = asyncio.create_task(h.daemon.run(shutdown_trigger=asyncio.Event().wait))
    await h.daemon.started.wait()
    arrive(h, "c1")
    await _until(lambda: h.daemon.stats.inbound_messages == 1)
    h.daemon.request_stop()
    await asyncio.sleep(0.2)
    assert not task.done() and h.daemon.status == "stopping"
    h.daemon.request_stop()  # like a second Ctrl-C
    await asyncio.wait_for(task, 3)
    assert bus.retained["acd/default/status"] == b"offline"
    bus.fail = False
    async with H(tmp_path, clock=ManualClock(h.clock.t)) as h2:  # nothing lost: the journal has it
        assert [d["contact"] for d in h2.out("decision")] == ["c1"]


def test_logs_are_json_lines_off_a_tty_and_console_on_demand():
    import io

    from acd import logs

    try:
        out = io.StringIO()
        logs.configure("info", stream=out)  # a StringIO is no TTY: JSON lines
        log = logs.get_logger("acd.test", tenant="t")
        log.debug("hidden")
        log.warning("refused", reason="bad_json")
        (line,) = out.getvalue().splitlines()
        rec = json.loads(line)
        assert (rec["event"], rec["level"], rec["logger"], rec["tenant"], rec["reason"]) == \
            ("refused", "warning", "acd.test", "t", "bad_json")
        assert rec["timestamp"].endswith("Z")
        out = io.StringIO()
        logs.configure("debug", stream=out, json=False)
        logs.get_logger("acd.test").debug("shown", n=1)
        assert "shown" in out.getvalue() and "n=1" in out.getvalue() and not out.getvalue().startswith("{")
        with pytest.raises(ValueError, match="log level"):
            logs.configure("loud")
    finally:
        structlog.reset_defaults()


def test_run_command_exit_codes(tmp_path, capsys):
    from acd.daemon import main

    good = tmp_path / "good.yaml"
    good.write_text(CONFIG_YAML.format(count=1))
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues: []\n")
    try:
        assert main(["--config", str(bad), "--log-level", "error"]) == 2
        assert "bad.yaml" in capsys.readouterr().err
        assert main(["--config", str(tmp_path / "missing.yaml"), "--log-level", "error"]) == 2
        assert "cannot read file" in capsys.readouterr().err
        assert main(["--config", str(good), "--bus", "carrier-pigeon://loft"]) == 2
        assert "unknown bus" in capsys.readouterr().err
        assert main(["--config", str(good), "--http", "localhost:http"]) == 2
        held = Journal(tmp_path / "j")
        held.lock()
        try:
            assert main(["--config", str(good), "--journal", str(tmp_path / "j"), "--log-level", "critical"]) == 1
            assert "in use by another acd" in capsys.readouterr().err
        finally:
            held.close()
    finally:
        structlog.reset_defaults()
