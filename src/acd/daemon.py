"""The daemon: an asyncio shell around the same routing core as the replay.

    daemon = Daemon("config/default.yaml", bus, journal="var/journal")
    await daemon.run()                      # until SIGTERM/SIGINT
    await daemon.run(shutdown_trigger=ev.wait())   # tests: no signals

``acd run`` (``add_run_arguments`` / ``run_command``) wires it to a bus
(in-process, stdio, MQTT), an HTTP API (``acd.http``) and a journal
directory (``acd.journal``).

**Time.**  The core's unit is float seconds since the Unix epoch.  The daemon
feeds it ``clock.time()`` clamped so it never goes backwards (``max(last,
now)``; a wall-clock step back just stalls time until it catches up).  One
timer is armed for ``min(engine.next_deadline(), next KPI interval edge)``
and re-armed after every ``handle``/``advance``; when it fires the daemon
calls ``advance(now)``.  ``Daemon(clock=ManualClock())`` makes that timer
testable without waiting.

**Inbound.**  The topic names the event (``Topics.tag_of``); the payload is
decoded by a msgspec decoder for that event type, built once (``type`` may be
left out).  A message that cannot be an event (unknown topic, bad JSON, wrong
field, too large) is answered on ``out/error`` as ``{"topic", "reason",
"detail", "payload"}`` (payload truncated), logged, counted in
``errors_total{reason}`` and acknowledged so it is not redelivered forever.
An event the core refuses (unknown agent, wrong state...) is journalled like
any other and its ``InputRejected`` goes to ``out/error`` (reason
``rejected``, with the core's words in ``detail``).

**Durability: the journal holds inputs; the pipeline holds the order.**
Every accepted event is appended to the journal (written to the OS) *before*
it is applied.  What it causes (decisions, acks, the HTTP answer) is queued
in one FIFO *outbox*, each item tagged with the journal position it depends
on; a publisher task releases items only once the fsync policy has made that
position durable: ``always`` = fsynced, ``batch`` = covered by the periodic
fsync, ``never`` = written to the OS.  So no decision ever leaves the process
before the event that caused it is safe, decisions leave in decision order,
and an event is acknowledged after its decisions are published.  Events keep
flowing while an fsync is pending (group commit).

**Decision ids.**  Every outbound event gets ``"seq"``: its number in the
core's output stream since the journal began.  The core is deterministic, so
replaying the journal re-numbers the same decisions identically: ``seq`` is
persisted by construction, and a decision published twice (see below) has
the same ``seq`` both times.  A ``ContactOffered`` is also identified by
``(contact, offer)``.  The per-contact metrics message repeats the ``seq`` of
its ``contact.completed``.

**Restart.**  The state is rebuilt by loading the newest usable checkpoint
and replaying the journal after it through the core with the recorded
times; nothing replayed is published again, except outputs that may never
have left the process: the publisher journals "published up to seq N"
markers, and whatever the replay computes beyond the last marker is
published again (at-least-once, same ``seq``).  Decisions that only a timer
would make (a ring time-out that fired after the last event) are simply made
again by the first ``advance`` after the restart, at the same deadline time
and with the same ``seq``.

**Checkpoints** (why pickle, and why it is safe enough): rotating the
journal "when the centre is idle" is not sound on its own, because even an
idle engine carries routing state (who has been idle longest, round-robin
order, the random stream, missed-offer counts, KPI accumulators) that a
fresh engine would not have, so a restart would decide differently from the
process that crashed.  The engine is plain Python objects, so a checkpoint
pickles it -- with its compiled target expressions (closures) swapped for
references and compiled afresh from the spec on load -- plus the daemon's own
state (decision counter, recent ids, KPI base, unpublished outputs).  Every
``snapshot_every`` records, and at a clean shutdown, the daemon writes one
and starts a new journal segment; restart cost is bounded by
unpickling plus at most ``snapshot_every`` records.  A pickle is tied to the
code that wrote it, so checkpoints carry a fingerprint of the core's
source: a different build refuses them, except a checkpoint taken with no
contact in the system and nothing journalled after it (a clean shutdown of
an idle centre), which is restored as a fresh engine with the agents'
presence carried over -- the safe way to upgrade is to drain first.

**Reload** (SIGHUP, ``POST /reload``, or the config file's mtime changing,
polled every second): the new file is parsed and checked first; a broken
one is rejected (logged, counted, the old config stays).  A good one is
applied at the first moment no contact is in the system -- at once if the
centre is idle, else it waits, and ``POST /reload {"drain": true}`` refuses
new arrivals until then.  Why not rebuild a new engine and replay the
journal into it: that re-decides history under rules that did not exist
when it happened (a contact already connected to A could be "offered" to B
in the replayed past), and why not migrate in-flight contacts: that needs
the core to re-home contacts into rebuilt pools, which it does not offer
(yet).  At an idle moment nothing in flight can be wrong: the new engine
starts with the agents' presence (ready / not ready + reason / offline)
carried over; agents added or removed get an ``agent.state`` event, and the
reload is journalled with the whole spec so a replay swaps at the same
point.  (Lost on a reload: idle-order fairness and missed-offer counts;
cumulative KPI counters survive through a base added to the new engine's.)

**Duplicates.**  Inbound events with an ``id`` are remembered (the last
``dedup_window`` ids, in checkpoints and replayed from the journal, so
across restarts too); a repeat is acknowledged, counted in
``duplicates_total`` and dropped.  Events without an id are accepted but can
not be de-duplicated (a hash of topic + payload would also drop legitimate
repeats, e.g. two ``agent.ready``) -- send ids.

**Drain** (``POST /drain``): new ``contact.arrived`` events are refused on
``out/error`` (reason ``draining``, with the contact id, so the telephony
side can route them elsewhere); everything else keeps flowing.

**Shutdown** (SIGTERM/SIGINT or the trigger): stop taking messages, fsync
the journal, publish what is queued, write a checkpoint, publish "offline"
(retained), close.  A second signal skips the waiting.  The consumer stops
between messages, so an event is either fully journalled and applied or
left to the bus to redeliver.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import hashlib
import io
import math
import os
import pickle
import signal
import sys
import threading
import time as _time
import warnings
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from heapq import heappop, heappush
from pathlib import Path
from random import Random
from typing import Any, Awaitable, Callable, Iterable

import msgspec

from . import __version__
from .bus import Bus, Message, Topics
from .config import ConfigError, load_config
from .core.agents import PRESENCE_NAMES
from .core.engine import Engine
from .core.events import (
    INBOUND_TYPES, AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged,
    ContactArrived, ContactCompleted, ContactOffered, InputRejected, tag_of,
)
from .core.rules import QueueRule, compile_rules
from .core.spec import Spec
from .journal import (
    FSYNC_POLICIES, Checkpoint, EventRecord, Journal, JournalError, PublishedRecord, ReloadRecord,
)
from .logs import get_logger

__all__ = [
    "Daemon", "ManualClock", "Options", "RouterState", "SystemClock", "add_run_arguments",
    "code_fingerprint", "main", "pickle_engine", "run_command", "unpickle_engine",
]

_INF = float("inf")
CHECKPOINT_FORMAT = 1
#: counters kept across config reloads (a new engine starts its KPIs at 0)
KPI_COUNTERS = ("offered", "answered", "abandoned", "overflowed", "completed")


# --- clocks -------------------------------------------------------------------------


class SystemClock:
    """Wall-clock time; timers on the running loop."""

    def time(self) -> float:
        return _time.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        loop = asyncio.get_running_loop()
        return loop.call_later(max(0.0, when - _time.time()), callback)


class _ManualHandle:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callable[[], None]):
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that only moves when told: ``advance(dt)`` / ``set(t)`` run the
    timers that fall due, in time order, synchronously.  For tests and
    embedding (``Daemon(clock=ManualClock())``)."""

    def __init__(self, start: float = 1_767_600_000.0):  # 2026-01-05T08:00:00Z
        self.t = float(start)
        self._heap: list[tuple[float, int, _ManualHandle]] = []
        self._n = 0

    def time(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Callable[[], None]) -> _ManualHandle:
        h = _ManualHandle(when, callback)
        self._n += 1
        heappush(self._heap, (when, self._n, h))
        return h

    def set(self, t: float) -> None:
        if t < self.t:
            raise ValueError("ManualClock only moves forward (the daemon would clamp anyway)")
        while self._heap and self._heap[0][0] <= t:
            when, _, h = heappop(self._heap)
            if h.cancelled:
                continue
            self.t = max(self.t, when)
            h.callback()
        self.t = t

    def advance(self, dt: float) -> None:
        self.set(self.t + dt)

    @property
    def next_timer(self) -> float | None:
        while self._heap and self._heap[0][2].cancelled:
            heappop(self._heap)
        return self._heap[0][0] if self._heap else None


# --- specs, presence, engine pickling -------------------------------------------------


def new_engine(spec: Spec, seed: int, start: float) -> Engine:
    """The daemon's engine: calendars *observe* (business hours and
    follow-the-sun route contacts, but presence comes from the telephony
    side's login events, not from the shift plan)."""
    return Engine(spec, rng=Random(seed), start=start, calendar="observe")


def spec_to_data(spec: Spec) -> Any:
    return msgspec.to_builtins(spec)


def spec_from_data(data: Any) -> Spec:
    return msgspec.convert(data, Spec)


def spec_hash(spec: Spec) -> str:
    return hashlib.sha256(msgspec.json.encode(spec)).hexdigest()[:16]


def presence_of(engine: Engine) -> dict[str, tuple[str, str | None]]:
    """Every agent's presence (not the visible state): ready / not_ready / offline."""
    return {a.id: (PRESENCE_NAMES[a.presence], a.reason) for a in engine.agent_list}


def apply_presence(engine: Engine, presence: dict[str, tuple[str, str | None]]) -> None:
    """Bring the agents of an *idle* engine to the given presence, through
    ordinary inbound events (their outputs are dropped: the world already
    knows these states)."""
    now = engine.now
    for a in engine.agent_list:
        want = presence.get(a.id)
        if want is None:
            continue
        state, reason = want
        cur = PRESENCE_NAMES[a.presence]
        evs: list[Any] = []
        if state == "offline":
            if cur != "offline":
                evs.append(AgentLogout(agent=a.id))
        elif state == "ready":
            if cur == "offline":
                evs.append(AgentLogin(agent=a.id))
            elif cur == "not_ready":
                evs.append(AgentReady(agent=a.id))
        elif state == "not_ready":
            if cur == "offline":
                evs.append(AgentLogin(agent=a.id, reason=reason or "break"))
            elif cur == "ready" or a.reason != reason:
                evs.append(AgentNotReady(agent=a.id, reason=reason or "break"))
        for ev in evs:
            engine.handle(ev, now)


class _EnginePickler(pickle.Pickler):
    """Pickles an engine with its compiled target expressions (closures,
    which pickle cannot write) replaced by references ``("ring", queue,
    step)``, and the spec by ``("spec",)``.  Everything else -- queue rules
    with their runtime state, pools, indexes, contacts, the calendar cursor,
    the random generator -- is written as it is."""

    def __init__(self, f: Any, engine: Engine):
        super().__init__(f, protocol=pickle.HIGHEST_PROTOCOL)
        self._spec = engine.spec
        self._refs: dict[int, tuple] = {}
        self._keep = []  # the objects whose id() is a key: alive while pickling
        for r in engine.rules:
            for k, target in enumerate(r.rings):
                self._refs[id(target)] = ("ring", r.idx, k)
                self._keep.append(target)

    def persistent_id(self, obj: Any) -> Any:
        if obj is self._spec:
            return ("spec",)
        return self._refs.get(id(obj))


#: globals an engine checkpoint may name besides ``acd.core.*``
_SAFE_GLOBALS = {
    ("builtins", "getattr"), ("builtins", "set"), ("builtins", "frozenset"), ("random", "Random"),
    ("msgspec._utils", "rebuild"), ("datetime", "date"), ("datetime", "datetime"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("zoneinfo", "ZoneInfo"),
    ("zoneinfo._zoneinfo", "ZoneInfo"), ("collections", "OrderedDict"), ("collections", "defaultdict"),
    ("collections", "deque"), ("copyreg", "_reconstructor"), ("builtins", "object"), ("enum", "Enum"),
}


class _EngineUnpickler(pickle.Unpickler):
    def __init__(self, f: Any, spec: Spec, rules: list[QueueRule]):
        super().__init__(f)
        self._spec = spec
        self._rules = rules

    def persistent_load(self, pid: Any) -> Any:
        if pid == ("spec",):
            return self._spec
        if isinstance(pid, tuple) and len(pid) == 3 and pid[0] == "ring":
            return self._rules[pid[1]].rings[pid[2]]
        raise pickle.UnpicklingError(f"unknown reference {pid!r} in an engine checkpoint")

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("acd.core.") or (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} has no business in an engine checkpoint")


def pickle_engine(engine: Engine) -> bytes:
    """The engine's whole state (see ``_EnginePickler``).  Raises
    ``pickle.PicklingError`` (or TypeError...) if the core grew state that
    pickle cannot write: the daemon then skips checkpoints and says so."""
    f = io.BytesIO()
    saved, engine._out = engine._out, []
    try:
        _EnginePickler(f, engine).dump(engine)
    finally:
        engine._out = saved
    return f.getvalue()


def unpickle_engine(data: bytes, spec: Spec) -> Engine:
    """Inverse of ``pickle_engine``; the target expressions are compiled
    afresh from ``spec`` (the spec the engine was built with)."""
    rules = compile_rules(spec)
    engine = _EngineUnpickler(io.BytesIO(data), spec, rules).load()
    if not isinstance(engine, Engine):
        raise pickle.UnpicklingError("checkpoint does not hold an Engine")
    return engine


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Identifies the code a pickled engine belongs to: the core's source,
    the Python version and the checkpoint format."""
    h = hashlib.sha256(f"acd-checkpoint-{CHECKPOINT_FORMAT} py{sys.version_info[0]}.{sys.version_info[1]}".encode())
    core = Path(sys.modules[Engine.__module__].__file__).parent
    for p in sorted(core.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:32]


class CheckpointUnusable(Exception):
    pass


# --- the router state: engine + what must survive with it --------------------------------


class RouterState:
    """The engine plus the daemon state that is a function of the journal:
    the decision counter ``seq``, recent inbound ids, the KPI base carried
    across reloads.  Synchronous and IO-free except for appending to
    ``journal`` (None while replaying)."""

    def __init__(self, engine: Engine, spec: Spec, seed: int, *, seq: int = 0, ids: Iterable[str] = (),
                 kpi_base: dict[str, dict[str, float]] | None = None, window: int = 100_000,
                 journal: Journal | None = None):
        self.engine = engine
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        self.seed = seed
        self.seq = seq
        self.window = window
        self.ids: OrderedDict[str, None] = OrderedDict()
        for i in ids:
            self.remember(i)
        self.kpi_base = {q: dict(v) for q, v in (kpi_base or {}).items()}
        self.journal = journal
        self.last_exception: BaseException | None = None
        self.internal_errors = 0

    @classmethod
    def fresh(cls, spec: Spec, seed: int, start: float, presence: dict | None = None, **kw: Any) -> "RouterState":
        engine = new_engine(spec, seed, start)
        if presence:
            apply_presence(engine, presence)
        return cls(engine, spec, seed, **kw)

    # -- ids

    def seen(self, event_id: str) -> bool:
        return event_id in self.ids

    def remember(self, event_id: str) -> None:
        ids = self.ids
        if event_id in ids:
            return
        ids[event_id] = None
        if len(ids) > self.window:
            ids.popitem(last=False)

    # -- the three things that change the engine

    def handle(self, ev: Any, t: float) -> tuple[int, list]:
        """Journal ``ev`` at ``t``, apply it; returns (seq of the first
        output, outputs)."""
        if self.journal is not None:
            self.journal.append(EventRecord(t, ev))
        if ev.id is not None:
            self.remember(ev.id)
        self.last_exception = None
        try:
            out = self.engine.handle(ev, t)
        except Exception as exc:  # a core bug: deterministic, so replay does the same
            self.last_exception = exc
            self.internal_errors += 1
            out = []
        first = self.seq + 1
        self.seq += len(out)
        return first, out

    def advance(self, t: float) -> tuple[int, list]:
        out = self.engine.advance(t)
        first = self.seq + 1
        self.seq += len(out)
        return first, out

    def swap(self, spec: Spec, t: float) -> tuple[int, list]:
        """Replace the engine by one built from ``spec`` (only when no
        contact is in the system); agents keep their presence."""
        old = self.engine
        if old.contacts:  # checked before journalling: the replay must be able to do the same
            raise RuntimeError("swap needs an idle engine")
        if self.journal is not None:
            self.journal.append(ReloadRecord(t, spec_to_data(spec)))
        pre = old.advance(t)
        for q, fig in old.report(intervals=False)["queues"].items():
            base = self.kpi_base.setdefault(q, {})
            for k in KPI_COUNTERS:
                base[k] = base.get(k, 0) + fig.get(k, 0)
        states = {a.id: a.state for a in old.agent_list}
        new = new_engine(spec, self.seed, t)
        apply_presence(new, presence_of(old))
        out = list(pre)
        for a in new.agent_list:
            prev = states.get(a.id, "offline")
            if a.state != prev:
                out.append(AgentStateChanged(time=t, agent=a.id, state=a.state, previous=prev,
                                             reason=a.reason if a.state == "not_ready" else None))
        for aid, st in states.items():
            if aid not in new.agents and st != "offline":
                out.append(AgentStateChanged(time=t, agent=aid, state="offline", previous=st,
                                             reason="removed by reload"))
        self.engine = new
        self.spec = spec
        self.spec_hash = spec_hash(spec)
        first = self.seq + 1
        self.seq += len(out)
        return first, out

    # -- checkpoints

    def to_checkpoint(self, segment: int, published: int, unpublished: list[tuple[int, str, bytes]]) -> Checkpoint:
        eng = self.engine
        return Checkpoint(
            format=CHECKPOINT_FORMAT, segment=segment, time=eng.now, seed=self.seed, spec=spec_to_data(self.spec),
            seq=self.seq, published=published, ids=list(self.ids), kpi_base=self.kpi_base,
            presence=presence_of(eng), contacts=len(eng.contacts), fingerprint=code_fingerprint(),
            engine=pickle_engine(eng), unpublished=unpublished,
        )

    @classmethod
    def from_checkpoint(cls, cp: Checkpoint, *, records_follow: bool, window: int) -> "RouterState":
        if cp.format != CHECKPOINT_FORMAT:
            raise CheckpointUnusable(f"checkpoint {cp.segment} has format {cp.format}, this acd reads {CHECKPOINT_FORMAT}")
        try:
            spec = spec_from_data(cp.spec)
        except msgspec.ValidationError as exc:
            raise CheckpointUnusable(f"checkpoint {cp.segment}: its config no longer loads: {exc}") from None
        kw = dict(seq=cp.seq, ids=cp.ids, kpi_base=cp.kpi_base, window=window)
        same_build = cp.fingerprint == code_fingerprint()
        if cp.engine is None and (same_build or not records_follow):
            return cls.fresh(spec, cp.seed, cp.time, cp.presence, **kw)
        if same_build:
            try:
                engine = unpickle_engine(cp.engine, spec)
            except Exception as exc:
                raise CheckpointUnusable(f"checkpoint {cp.segment}: cannot load the engine: {exc}") from None
            return cls(engine, spec, cp.seed, **kw)
        if cp.contacts == 0 and not records_follow:
            # a clean shutdown of an idle centre: nothing to replay, so a fresh
            # engine with the same presence is a sound continuation (upgrades)
            state = cls.fresh(spec, cp.seed, cp.time, cp.presence, **kw)
            state.upgraded = True
            return state
        raise CheckpointUnusable(
            f"checkpoint {cp.segment} was written by another acd build (fingerprint {cp.fingerprint[:12]}, "
            f"this build {code_fingerprint()[:12]}) with {cp.contacts} contacts in the system"
            + (" and journal records after it" if records_follow else "")
            + "; its state cannot be replayed safely. Run the previous version, drain it (POST /drain) until no "
              "contact is in the system and stop it cleanly, or move the journal directory aside to start empty")

    upgraded = False


# --- rendering outputs into bus messages ---------------------------------------------------


class Renderer:
    """Outbound events -> ``(seq, topic, payload)`` messages.  Pure, so the
    replay renders exactly what the live daemon published."""

    def __init__(self, topics: Topics, payload_limit: int = 256):
        self.topics = topics
        self.limit = payload_limit
        self._enc = msgspec.json.Encoder()

    def truncate(self, payload: bytes) -> str:
        text = payload[: self.limit * 4].decode("utf-8", "replace")
        return text if len(text) <= self.limit else text[: self.limit] + "..."

    def render(self, first: int, out: list, ev: Any = None) -> list[tuple[int, str, bytes]]:
        t = self.topics
        enc = self._enc.encode
        items = []
        for i, o in enumerate(out):
            seq = first + i
            cls = type(o)
            if cls is InputRejected:
                items.append((seq, t.error, enc({
                    "seq": seq, "type": "input.rejected", "time": o.time,
                    "topic": t.inbound_for(o.event), "reason": "rejected", "detail": o.reason,
                    "event": o.event, "id": getattr(ev, "id", None), "contact": o.contact, "agent": o.agent,
                    "payload": self.truncate(enc(ev)) if ev is not None else None,
                })))
                continue
            body = b'{"seq":%d,' % seq + enc(o)[1:]
            items.append((seq, t.decision if cls is ContactOffered else t.event, body))
            if cls is ContactCompleted:
                items.append((seq, t.metrics, enc({
                    "kind": "contact", "seq": seq, "time": o.time, "contact": o.contact, "queue": o.queue,
                    "agent": o.agent, "wait": o.wait, "talk": o.talk, "wrap_up": o.wrap_up,
                    "handle": o.talk + o.wrap_up,
                })))
        return items

    def error(self, topic: str, reason: str, detail: str, payload: bytes, time: float, **extra: Any) -> bytes:
        return enc_json({"topic": topic, "reason": reason, "detail": detail, "payload": self.truncate(payload),
                         "time": time, **extra})


_json_enc = msgspec.json.Encoder()


def enc_json(obj: Any) -> bytes:
    return _json_enc.encode(obj)


def _is_json(payload: bytes) -> bool:
    try:
        msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return False
    return True


# --- options ----------------------------------------------------------------------------


@dataclass
class Options:
    """Daemon settings (``acd run`` flags in brackets)."""

    tenant: str = "default"            # [--tenant] topic prefix acd/<tenant>/
    fsync: str = "batch"               # [--fsync] always | batch | never
    batch_ms: float = 5.0              # [--batch-ms] batch policy: at most one fsync per batch_ms
    seed: int = 0                      # [--seed] of the random strategy (fresh journals only)
    snapshot_every: int = 50_000       # [--snapshot-every] records between checkpoints
    checkpoint_fork: bool = hasattr(os, "fork")  # write size checkpoints in a forked child (see _checkpoint)
    dedup_window: int = 100_000        # recent inbound ids remembered
    http: str | None = None            # [--http HOST:PORT] None: no HTTP API
    api_token: str | None = None       # explicit token; else from the env var below
    api_token_env: str = "ACD_API_TOKEN"  # [--api-token-env] where the token is read from
    wallboard_tz: str = "UTC"          # [--wallboard-tz] what "today" means on the wallboard (IANA zone)
    watch_config: bool = True          # reload when the config file changes
    poll_interval: float = 1.0         # seconds between config mtime polls
    max_pending: int = 10_000          # outbox items before inbound is paused
    max_payload: int = 1 << 16         # bigger inbound payloads are refused
    error_payload_limit: int = 256     # characters of a bad payload echoed on out/error
    shutdown_timeout: float = 10.0     # for publishing what is queued at shutdown
    install_signals: bool | None = None  # None: only when run() has no shutdown trigger


@dataclass
class Stats:
    inbound_messages: int = 0
    duplicates: int = 0
    timer_fires: int = 0
    deadline_lag: float = 0.0
    deadline_lag_max: float = 0.0
    snapshot_errors: int = 0
    recovery_seconds: float = 0.0
    replayed_records: int = 0
    republished: int = 0

    def __post_init__(self) -> None:
        self.inbound: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.outbound: Counter[str] = Counter()
        self.reloads: Counter[str] = Counter()


# TEST HOOK, for tests/test_crash_mqtt.py only: ``ACD_TEST_CRASH_BEFORE_JOURNAL=<event
# id>`` in the environment makes the daemon kill itself (SIGKILL, no cleanup) when the
# inbound event with that id has been received and is about to be journalled -- the
# crash the MQTT bus's manual acknowledgement exists for.  Unset (always, outside that
# test) it costs one comparison per event and does nothing.
_CRASH_BEFORE_JOURNAL: str | None = os.environ.get("ACD_TEST_CRASH_BEFORE_JOURNAL") or None


def _test_crash() -> None:  # pragma: no cover - the process dies here
    os.kill(os.getpid(), signal.SIGKILL)


# outbox item kinds: (pos, kind, a, b, c, seq)
_PUB, _ACK, _FUT = 0, 1, 2
_BATCH = 1024  # most publishes handed to the bus at once


_MERGED_MAX = 64 * 1024  # bytes of one merged array (brokers cap packet sizes)


def merge_streams(pubs: list[tuple[str, bytes, bool]], streams: tuple[str, ...],
                  limit: int = _MERGED_MAX) -> list[tuple[str, bytes, bool]]:
    """Merge the stream topics' messages (``out/event``, ``out/metrics``) of
    a publish round into JSON arrays, in ``seq`` order.

    A run of stream messages between two others becomes one array per
    stream topic; every other message (a decision, an error, a retained
    one) stays as it is and closes the open arrays, so nothing overtakes a
    decision and a decision overtakes nothing: the telephony side sees
    them in ``seq`` order as before.  An array is also closed at ``limit``
    bytes (brokers cap packet sizes; a message over the cap would be
    refused again at every retry).

    Why: under load one inbound event makes ~2.6 outbound ones, and on MQTT
    each message costs a PUBLISH and a PUBACK through paho (measured: the
    largest part of the router's CPU at 5k events/s).  A round holds what
    became ready since the last one, so arrays stay short when traffic is
    light (often one element) and grow with the load.  Decisions are not
    merged: the telephony side acts on each one as it comes."""
    out: list[tuple[str, Any, bool]] = []
    open_: dict[str, list] = {}  # stream topic -> [payloads, size] of its open array
    for topic, payload, retain in pubs:
        if topic in streams and not retain:
            g = open_.get(topic)
            if g is None or g[1] + len(payload) + 1 > limit:
                g = open_[topic] = [[], 1]
                out.append((topic, g[0], False))
            g[0].append(payload)
            g[1] += len(payload) + 1
        else:
            open_.clear()
            out.append((topic, payload, retain))
    return [(t, b"[" + b",".join(p) + b"]" if type(p) is list else p, r) for t, p, r in out]


# --- the daemon -------------------------------------------------------------------------


class Daemon:
    """See the module docstring.  ``config`` is a YAML path (reloadable) or
    a ``Spec``; ``bus`` defaults to an ``InProcessBus``; ``journal`` is a
    directory (None: no durability, state lost on restart)."""

    def __init__(self, config: str | os.PathLike[str] | Spec, bus: Bus | None = None,
                 journal: str | os.PathLike[str] | None = None, options: Options | None = None, *,
                 clock: Any = None, log: Any = None):
        self.options = opts = options or Options()
        if opts.fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync must be one of {', '.join(FSYNC_POLICIES)}, got {opts.fsync!r}")
        if isinstance(config, Spec):
            self.config_path: Path | None = None
            self._initial_spec: Spec | None = config
        else:
            self.config_path = Path(config)
            self._initial_spec = None
        if bus is None:
            from .bus.inproc import InProcessBus

            bus = InProcessBus()
        self.bus = bus
        self.journal_dir = Path(journal) if journal is not None else None
        self.clock = clock if clock is not None else SystemClock()
        self.topics = Topics(opts.tenant)
        self.log = log if log is not None else get_logger("acd.daemon", tenant=opts.tenant)
        self.renderer = Renderer(self.topics, opts.error_payload_limit)
        self._decoders = {cls.__struct_config__.tag: msgspec.json.Decoder(cls) for cls in INBOUND_TYPES}
        self.state: RouterState | None = None
        self.journal: Journal | None = None
        self.stats = Stats()
        self.status = "new"
        self.draining = False
        self.started = asyncio.Event()
        self.http: Any = None
        self.last_reload_error: list[str] | None = None
        self._pending_spec: Spec | None = None
        self._drain_for_reload = False
        self._last = 0.0
        self._need = 0  # journal position the next outputs depend on
        self._published = 0
        self._outbox: deque[tuple] = deque()
        self._outbox_event = asyncio.Event()
        self._dirty = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._stop_event = asyncio.Event()
        self._force = False
        self._fatal: BaseException | None = None
        self._tasks: list[asyncio.Task] = []
        self._consumer: asyncio.Task | None = None
        self._timer: Any = None
        self._armed: float | None = None
        self._boundary: float | None = None
        self._config_stamp: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._listeners: set[asyncio.Queue] = set()
        self._ckpt_child: int | None = None  # pid of the child writing a checkpoint
        self._ckpt_future: asyncio.Future | None = None
        self._streams = (self.topics.event, self.topics.metrics)  # see merge_streams
        self._checkpoint_retry_at = 0
        self._started_wall = _time.time()

    # -- time ----------------------------------------------------------------------------

    def _now(self) -> float:
        t = self.clock.time()
        if t < self._last:
            t = self._last
        self._last = t
        return t

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, shutdown_trigger: Awaitable[Any] | Callable[[], Awaitable[Any]] | None = None) -> None:
        """Start, serve until the trigger completes (or SIGTERM/SIGINT when
        there is no trigger), then shut down gracefully."""
        install = self.options.install_signals
        if install is None:
            install = shutdown_trigger is None
        await self.start()
        restore = self._install_signals() if install else None
        waiters = [asyncio.ensure_future(self._stop_event.wait())]
        try:
            if shutdown_trigger is not None:
                aw = shutdown_trigger() if callable(shutdown_trigger) else shutdown_trigger
                waiters.append(asyncio.ensure_future(aw))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            await self.stop()
            if restore is not None:
                restore()
        if self._fatal is not None:
            raise self._fatal

    async def start(self) -> None:
        """Recover the state, connect the bus, start the tasks and the API."""
        if self.status != "new":
            raise RuntimeError("a Daemon starts once; make a new one")
        self.status = "starting"
        try:
            await self._start()
        except BaseException:
            self.status = "stopped"
            await self._teardown()
            raise

    async def _start(self) -> None:
        opts = self.options
        spec = self._initial_spec if self._initial_spec is not None else load_config(self.config_path)
        self._config_stamp = self._stat_config()
        t0 = _time.perf_counter()
        pending: list[tuple[int, str, bytes]] = []
        if self.journal_dir is not None:
            self.journal = Journal(self.journal_dir, opts.fsync)
            self.journal.lock()
            self.state, pending = self._recover(spec)
            self.state.journal = self.journal
        else:
            self.log.warning("no journal: the routing state is lost on restart (use --journal DIR)")
            self.state = RouterState.fresh(spec, opts.seed, self._now(), window=opts.dedup_window)
        eng = self.state.engine
        self._last = max(self._last, eng.now)
        self.stats.recovery_seconds = _time.perf_counter() - t0
        for seq, topic, payload in pending:
            self._outbox.append((0, _PUB, topic, payload, False, seq))
        self.stats.republished = len(pending)
        if self.journal is not None:
            self._need = self.journal.written
        await self._stack.enter_async_context(self.bus)  # type: ignore[arg-type]
        self._spawn(self._publisher, "publisher")
        if self.journal is not None and opts.fsync != "never":
            self._spawn(self._syncer, "syncer")
        if self.state.spec_hash != spec_hash(spec):
            self.log.info("the config differs from the journal's: reloading", config=str(self.config_path))
            self.reload(spec)
        self._enqueue(_PUB, self.topics.status, b"online", True)
        now = self._now()
        self._boundary = (math.floor(now / eng.interval) + 1) * eng.interval
        self.status = "running"
        self._on_timer()  # what fell due while we were away
        if opts.http:
            from .http import start_api

            host, port = parse_hostport(opts.http)
            self.http = await start_api(self, host, port)
        self._consumer = self._spawn(self._consume, "consumer")
        if self.config_path is not None and opts.watch_config:
            self._spawn(self._watch, "watcher")
        self.log.info("acd running", engine_time=eng.now, contacts=len(eng.contacts), agents=len(eng.agents),
                      seq=self.state.seq, journal=str(self.journal_dir) if self.journal_dir else None,
                      fsync=opts.fsync if self.journal else None, republished=len(pending),
                      recovery_s=round(self.stats.recovery_seconds, 3), replayed=self.stats.replayed_records,
                      http=f"{self.http.host}:{self.http.port}" if self.http else None)
        self.started.set()

    def _spawn(self, fn: Callable[[], Awaitable[Any]], name: str) -> asyncio.Task:
        task = asyncio.ensure_future(self._guard(fn, name))
        self._tasks.append(task)
        return task

    async def _guard(self, fn: Callable[[], Awaitable[Any]], name: str) -> None:
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc, name)

    def _fail(self, exc: BaseException, where: str) -> None:
        if self._fatal is None:
            self._fatal = exc
        self.log.critical("fatal error: stopping", where=where, error=str(exc), exc_info=exc)
        self._stop_event.set()

    def request_stop(self, force: bool = False) -> None:
        """Ask ``run`` to shut down (a second request, or ``force``, skips
        the waiting)."""
        if self._stop_event.is_set() or force:
            self._force = True
        self._stop_event.set()

    async def stop(self) -> None:
        """Graceful shutdown (see the module docstring)."""
        if self.status in ("stopping", "stopped", "new"):
            return
        self.status = "stopping"
        self.log.info("shutting down", force=self._force)
        self._stop_event.set()
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(BaseException):
                await self._consumer
        self._cancel_timer()
        j = self.journal
        if j is not None and self._fatal is None:
            try:
                j.sync()
            except JournalError as exc:
                self._fail(exc, "shutdown")
            self._outbox_event.set()
        if not self._force and self._fatal is None:
            deadline = _time.monotonic() + self.options.shutdown_timeout
            while self._outbox and not self._force and _time.monotonic() < deadline:
                self._outbox_event.set()
                await asyncio.sleep(0.005)
            if self._outbox:
                self.log.warning("shutdown: unpublished outputs left (they are journalled)", left=len(self._outbox))
        await self._wait_checkpoint_child()
        if j is not None and self._fatal is None and not self._force:
            self._checkpoint(reason="shutdown")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.bus.publish(self.topics.status, b"offline", retain=True), 2.0)
        except Exception as exc:
            self.log.warning("could not publish offline status", error=str(exc))
        await self._teardown()
        self.status = "stopped"
        self.log.info("stopped", seq=self.state.seq if self.state else None)

    async def abort(self) -> None:
        """Stop like a crash would (tests): no fsync, no publishing, no
        checkpoint, no status."""
        self.status = "stopped"
        self._cancel_timer()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._teardown()

    async def _teardown(self) -> None:
        if self.http is not None:
            with contextlib.suppress(Exception):
                await self.http.close()
        for q in list(self._listeners):
            q.put_nowait(None)
        with contextlib.suppress(Exception):
            await self._stack.aclose()
        if self.journal is not None:
            self.journal.close()

    def _install_signals(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        loop = asyncio.get_running_loop()
        installed = []
        for sig, fn in ((signal.SIGINT, self._on_stop_signal), (signal.SIGTERM, self._on_stop_signal),
                        (getattr(signal, "SIGHUP", None), self._on_hup)):
            if sig is None:
                continue
            prev = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, fn, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append((sig, prev))

        def restore() -> None:
            for sig, prev in installed:
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
                with contextlib.suppress(Exception):
                    signal.signal(sig, prev if prev is not None else signal.SIG_DFL)

        return restore

    def _on_stop_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        if self._stop_event.is_set():
            self.log.warning("second signal: forcing exit", signal=name)
            self._force = True
        else:
            self.log.info("signal received: shutting down (again to force)", signal=name)
        self._stop_event.set()

    def _on_hup(self, sig: int) -> None:
        self.log.info("SIGHUP: reloading the config")
        self.reload()

    # -- recovery ------------------------------------------------------------------------

    def _recover(self, spec: Spec) -> tuple[RouterState, list[tuple[int, str, bytes]]]:
        j = self.journal
        opts = self.options
        cps, segs = j.checkpoints(), j.segments()
        if not cps:
            if segs:
                raise JournalError(f"journal {j.path} has segments but no checkpoint: not a complete acd journal")
            t = self._now()
            state = RouterState.fresh(spec, opts.seed, t, window=opts.dedup_window)
            j.write_checkpoint(Checkpoint(segment=1, time=t, seed=opts.seed, spec=spec_to_data(spec),
                                          fingerprint=code_fingerprint()))
            j.open_segment(1)
            self.log.info("new journal", path=str(j.path))
            return state, []
        problems = []
        for n in reversed(cps):
            try:
                cp = j.read_checkpoint(n)
                follow = [s for s in segs if s >= n]
                if follow and follow != list(range(n, follow[-1] + 1)):
                    raise JournalError(f"segments after checkpoint {n} are missing ({follow})")
                records: list = []
                last_count = 0
                for s in follow:
                    recs = j.read_segment(s, last=s == follow[-1])
                    records.extend(recs)
                    last_count = len(recs)
                changes = any(type(r) is not PublishedRecord for r in records)
                state = RouterState.from_checkpoint(cp, records_follow=changes, window=opts.dedup_window)
            except (JournalError, CheckpointUnusable) as exc:
                problems.append(str(exc))
                self.log.warning("checkpoint unusable", checkpoint=n, error=str(exc))
                continue
            if j.repaired is not None:
                path, good, cut, why = j.repaired
                self.log.warning("journal tail cut (a crash tore the last record)", file=str(path), kept=good,
                                 cut_bytes=cut, reason=why)
            if state.upgraded:
                self.log.warning("checkpoint from another acd build: restored the idle centre with a fresh engine",
                                 checkpoint=n)
            pending = self._replay(state, cp, records)
            self.stats.replayed_records = len(records)
            j.open_segment(follow[-1] if follow else n)
            j.segment_records = last_count
            return state, pending
        raise JournalError(f"cannot rebuild the routing state from {j.path}: " + "; ".join(problems))

    def _replay(self, state: RouterState, cp: Checkpoint, records: list) -> list[tuple[int, str, bytes]]:
        """Apply the records; return the outputs that may not have been
        published (beyond the last 'published' marker)."""
        published = cp.published
        ready: deque = deque((s, s, [(s, tp, p)], None) for s, tp, p in cp.unpublished)  # rendered
        raw: deque = deque()  # (first, last, outputs, event): rendered lazily
        for i, rec in enumerate(records):
            cls = type(rec)
            try:
                if cls is EventRecord:
                    first, out = state.handle(rec.e, rec.t)
                    if out:
                        raw.append((first, first + len(out) - 1, out, rec.e))
                elif cls is PublishedRecord:
                    if rec.seq > published:
                        published = rec.seq
                        while ready and ready[0][1] <= published:
                            ready.popleft()
                        while raw and raw[0][1] <= published:
                            raw.popleft()
                else:  # ReloadRecord
                    first, out = state.swap(spec_from_data(rec.spec), rec.t)
                    if out:
                        raw.append((first, first + len(out) - 1, out, None))
            except Exception as exc:  # time going backwards, a swap while busy: not our journal's history
                raise JournalError(f"replaying record {i + 1} after checkpoint {cp.segment} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
        self._published = published
        items = [it for _, _, its, _ in ready for it in its if it[0] > published]
        for first, _, out, ev in raw:
            items.extend(it for it in self.renderer.render(first, out, ev) if it[0] > published)
        return items

    # -- the outbox ----------------------------------------------------------------------

    def _enqueue(self, kind: int, a: Any, b: Any = None, c: Any = None, seq: int | None = None) -> None:
        self._outbox.append((self._need, kind, a, b, c, seq))
        j = self.journal
        if j is None or self._need <= j.synced:
            self._outbox_event.set()
        else:
            self._dirty.set()
        if len(self._outbox) > self.options.max_pending:
            self._space.clear()

    def _emit(self, first: int, out: list, ev: Any = None) -> None:
        if not out:
            return
        items = self.renderer.render(first, out, ev)
        ob = self._outbox
        need = self._need
        published = self._published
        for seq, topic, payload in items:
            if seq <= published:
                # re-derived after a restart (a deadline that fired before the
                # crash fires again): the journal says it already left
                continue
            ob.append((need, _PUB, topic, payload, False, seq))
        counts = self.stats.outbound
        for o in out:
            counts[tag_of(o)] += 1
            if type(o) is InputRejected:
                self.stats.errors["rejected"] += 1
        j = self.journal
        if j is None or need <= j.synced:
            self._outbox_event.set()
        else:
            self._dirty.set()
        if len(ob) > self.options.max_pending:
            self._space.clear()

    async def _publisher(self) -> None:
        ev = self._outbox_event
        while True:
            await ev.wait()
            ev.clear()
            await self._flush()

    async def _flush(self) -> None:
        ob = self._outbox
        j = self.journal
        top = self._published
        backoff = 0.05
        batch = getattr(self.bus, "publish_batch", None) or self._publish_each
        present = 0  # publishes at the head of the outbox already sent by a batch
        while ob:
            item = ob[0]
            if j is not None and item[0] > j.synced:
                break
            kind = item[1]
            if kind == _PUB:
                if present <= 0:
                    try:
                        present = await self._publish_ready(batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        if self._force:
                            ob.popleft()
                            continue
                        self.log.warning("publish failed; retrying", topic=item[2], error=str(exc))
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 2.0)
                        continue
                present -= 1
                seq = item[5]
                if seq is not None and seq > top:
                    top = seq
                if self._listeners:
                    for q in list(self._listeners):
                        if q.qsize() < 1000:
                            q.put_nowait((item[2], item[3]))
            elif kind == _ACK:
                try:
                    await item[2]()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.log.warning("ack failed (the bus may redeliver; duplicates are dropped)", error=str(exc))
            else:  # _FUT
                fut = item[2]
                if not fut.done():
                    fut.set_result(item[3])
            ob.popleft()
        if top > self._published:
            self._published = top
            if j is not None and self.status in ("running", "stopping"):
                j.append(PublishedRecord(top))
        if len(ob) <= self.options.max_pending // 2:
            self._space.set()

    async def _publish_ready(self, batch: Callable[[list], Awaitable[None]]) -> int:
        """Publish every message of the outbox's ready part (durable by the
        fsync policy) in one pipelined batch (``publish_batch`` of the MQTT
        bus: one round trip to the broker for the lot instead of one per
        message); returns how many.  ``_flush`` then releases the acks and
        answers in between in order: an inbound event is still acknowledged
        only after its decisions are published."""
        j = self.journal
        synced = j.synced if j is not None else None
        pubs = []
        for it in self._outbox:
            if synced is not None and it[0] > synced:
                break
            if it[1] == _PUB:
                pubs.append((it[2], it[3], it[4]))
                if len(pubs) >= _BATCH:
                    break
        await batch(merge_streams(pubs, self._streams))
        return len(pubs)

    async def _publish_each(self, items: list[tuple[str, bytes, bool]]) -> None:
        """``publish_batch`` for a bus without one: in order, one by one."""
        for topic, payload, retain in items:
            await self.bus.publish(topic, payload, retain=retain)

    async def _syncer(self) -> None:
        """Group commit.  The fsync runs in a worker thread, so the loop
        keeps receiving, journalling and deciding while the disk works (an
        fsync can take milliseconds); what was written meanwhile is covered
        by the next one.  ``batch``: at most one fsync per ``batch_ms``
        (counted from the previous one's start, so the first write after a
        quiet spell is fsynced at once); ``always``: the next fsync starts
        as soon as the previous one is done."""
        j = self.journal
        loop = asyncio.get_running_loop()
        window = self.options.batch_ms / 1000.0 if self.options.fsync == "batch" else 0.0
        last = -_INF
        while True:
            await self._dirty.wait()
            if window:
                wait = last + window - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            self._dirty.clear()
            last = loop.time()
            job = j.begin_sync()
            if job is not None:
                fd, pos = job
                await loop.run_in_executor(None, j.fsync_and_close, fd)
                j.end_sync(pos)
            self._outbox_event.set()

    # -- inbound -------------------------------------------------------------------------

    async def _consume(self) -> None:
        n = 0
        async for msg in self.bus.messages():
            if self.status != "running":
                break
            try:
                self._on_message(msg)
            except JournalError:
                raise
            except Exception as exc:  # a bug in the shell: answer, count, carry on
                self.stats.errors["internal"] += 1
                self.log.error("internal error on a message", topic=msg.topic, error=str(exc), exc_info=exc)
                self._refuse(msg, "internal", f"internal error: {exc}")
            n += 1
            if not self._space.is_set():
                await self._space.wait()
            elif n % 64 == 0:
                await asyncio.sleep(0)
        if self.status == "running":
            self.log.warning("the bus closed its inbound stream: shutting down")
            self._stop_event.set()

    def _on_message(self, msg: Message) -> None:
        self.stats.inbound_messages += 1
        payload = msg.payload
        if len(payload) > self.options.max_payload:
            return self._refuse(msg, "too_large", f"payload of {len(payload)} bytes is over the "
                                                  f"{self.options.max_payload} byte limit")
        tag = self.topics.tag_of(msg.topic) if msg.topic else None
        dec = self._decoders.get(tag) if tag is not None else None
        if dec is None:
            what = f"inbound topic {msg.topic!r} names no event" if tag is not None else \
                f"topic {msg.topic!r} is not an inbound topic of tenant {self.topics.tenant!r}"
            return self._refuse(msg, "unknown_topic", what)
        try:
            ev = dec.decode(payload)
        except msgspec.ValidationError as exc:
            code = "invalid" if _is_json(payload) else "bad_json"
            return self._refuse(msg, code, str(exc))
        except msgspec.DecodeError as exc:
            return self._refuse(msg, "bad_json", str(exc))
        self.stats.inbound[tag] += 1
        self._accept(ev, msg.ack)

    def _refuse(self, msg: Message, reason: str, detail: str, **extra: Any) -> None:
        self.stats.errors[reason] += 1
        self.log.warning("inbound message refused", topic=msg.topic, reason=reason, detail=detail)
        body = self.renderer.error(msg.topic, reason, detail, msg.payload, self._last, **extra)
        self._enqueue(_PUB, self.topics.error, body, False)
        self._enqueue(_ACK, msg.ack)

    def _accept(self, ev: Any, ack: Callable[[], Awaitable[None]] | None, fut: asyncio.Future | None = None) -> list:
        state = self.state
        if self.draining and type(ev) is ContactArrived:
            self.stats.errors["draining"] += 1
            self.log.info("arrival refused: draining", contact=ev.contact)
            body = self.renderer.error(self.topics.inbound_for("contact.arrived"), "draining",
                                       "acd is draining: new contacts are refused", enc_json(ev), self._last,
                                       contact=ev.contact, id=ev.id)
            self._enqueue(_PUB, self.topics.error, body, False)
            if ack is not None:
                self._enqueue(_ACK, ack)
            if fut is not None:
                self._enqueue(_FUT, fut, {"refused": "draining"})
            return []
        if ev.id is not None and state.seen(ev.id):
            self.stats.duplicates += 1
            self.log.debug("duplicate dropped", id=ev.id, type=tag_of(ev))
            if ack is not None:
                self._enqueue(_ACK, ack)
            if fut is not None:
                self._enqueue(_FUT, fut, {"duplicate": True})
            return []
        if _CRASH_BEFORE_JOURNAL is not None and ev.id == _CRASH_BEFORE_JOURNAL:
            _test_crash()  # TEST HOOK (tests/test_crash_mqtt.py): received, not journalled
        first, out = state.handle(ev, self._now())
        if self.journal is not None:
            self._need = self.journal.written
        if state.last_exception is not None:
            exc = state.last_exception
            self.stats.errors["internal"] += 1
            self.log.error("the routing core failed on an event", type=tag_of(ev), id=ev.id, error=str(exc),
                           exc_info=exc)
            body = self.renderer.error(self.topics.inbound_for(tag_of(ev)), "internal",
                                       f"the routing core failed: {type(exc).__name__}: {exc}", enc_json(ev),
                                       self._last, id=ev.id)
            self._enqueue(_PUB, self.topics.error, body, False)
        self._emit(first, out, ev)
        if ack is not None:
            self._enqueue(_ACK, ack)
        if fut is not None:
            self._enqueue(_FUT, fut, {"outputs": out})
        self._after_change()
        return out

    def _after_change(self) -> None:
        if self._pending_spec is not None and not self.state.engine.contacts:
            self._apply_reload()
        j = self.journal
        if j is not None and j.segment_records >= self.options.snapshot_every \
                and j.written >= self._checkpoint_retry_at:
            self._checkpoint(reason="size")
        self._rearm()

    def apply(self, ev: Any) -> list:
        """Take an inbound event synchronously, as if it came from the bus
        (embedding code, benchmarks): de-duplicated, journalled, applied; its
        outputs are queued for publishing and returned."""
        if self.status != "running":
            raise RuntimeError(f"acd is {self.status}")
        self.stats.inbound[tag_of(ev)] += 1
        return self._accept(ev, None)

    async def submit(self, ev: Any) -> dict[str, Any]:
        """Apply an event from another source (the HTTP API) like a bus
        message; returns once its outputs are published:
        ``{"outputs": [...]}``, ``{"duplicate": True}`` or ``{"refused": reason}``."""
        if self.status != "running":
            raise RuntimeError(f"acd is {self.status}")
        fut = asyncio.get_running_loop().create_future()
        self.stats.inbound[tag_of(ev)] += 1
        try:
            self._accept(ev, None, fut)
        except JournalError as exc:
            self._fail(exc, "submit")
            raise RuntimeError(f"journal failure: {exc}") from None
        return await fut

    # -- timers --------------------------------------------------------------------------

    def _rearm(self) -> None:
        nd = self.state.engine.next_deadline()
        wake = _INF if nd is None else nd
        b = self._boundary
        if b is not None and b < wake:
            wake = b
        if wake == self._armed:
            return
        self._cancel_timer()
        if wake < _INF:
            self._timer = self.clock.call_at(wake, self._on_timer)
            self._armed = wake

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._armed = None

    def _on_timer(self) -> None:
        self._cancel_timer()
        if self.status != "running":
            return
        try:
            now = self._now()
            state = self.state
            nd = state.engine.next_deadline()
            if nd is not None and nd <= now:
                lag = now - nd
                self.stats.timer_fires += 1
                self.stats.deadline_lag = lag
                if lag > self.stats.deadline_lag_max:
                    self.stats.deadline_lag_max = lag
            first, out = state.advance(now)
            self._emit(first, out)
            if self._boundary is not None and now >= self._boundary:
                self._publish_intervals(now)
            self._after_change()
        except JournalError as exc:
            self._fail(exc, "timer")

    def _publish_intervals(self, now: float) -> None:
        eng = self.state.engine
        iv = eng.interval
        rep = eng.report(intervals=True)
        rows = {r["start"]: r for r in rep.get("intervals", [])}
        if now - self._boundary > 96 * iv:  # long sleep: report the last closed interval only
            self._boundary = math.floor(now / iv) * iv
        while self._boundary <= now:
            start = self._boundary - iv
            row = rows.get(start) or {}
            body = enc_json({"kind": "interval", "start": start, "end": self._boundary, "interval": iv,
                             "queues": row.get("queues", {}), "total": row.get("total", {}),
                             "groups": row.get("groups", {})})
            self._enqueue(_PUB, self.topics.metrics, body, False)
            self._boundary += iv

    # -- checkpoints ---------------------------------------------------------------------

    def _checkpoint(self, reason: str) -> bool:
        """Write a checkpoint of the state as it is now and start a new
        journal segment after it.

        Pickling the engine is the slow part: ~250 ms for 3,000 agents,
        during which the loop would take no message (measured: p99 of 330 ms
        at 7,500 events/s, one stall every 50,000 records).  So a *size*
        checkpoint is written by a forked child, from its copy-on-write
        image of this very moment (how Redis writes its snapshots): the
        router only pays the fork, opens the new segment and goes on; when
        the child is done the old segments are pruned.  Until then the
        previous checkpoint and every segment after it stay, so a crash
        meanwhile recovers as before.  The shutdown checkpoint is written
        in process (nothing else runs then)."""
        j = self.journal
        t0 = _time.perf_counter()
        if self._ckpt_child is not None:
            return False  # one in flight: the next size check comes soon enough
        try:
            j.sync()
            unpublished = [(it[5], it[2], it[3]) for it in self._outbox if it[1] == _PUB and it[5] is not None]
            if reason == "size" and self.options.checkpoint_fork:
                try:
                    return self._checkpoint_in_child(reason, unpublished, t0)
                except OSError as exc:  # fork refused (memory, process limit): write it here instead
                    self.log.warning("cannot fork for a checkpoint; writing it in process", error=str(exc))
            cp = self.state.to_checkpoint(j.segment + 1, self._published, unpublished)
        except JournalError:
            raise
        except Exception as exc:
            self._checkpoint_failed(error=str(exc), exc_info=exc)
            return False
        size = j.write_checkpoint(cp)
        j.open_segment(cp.segment)
        self._outbox_event.set()
        self._checkpoint_written(reason, cp.segment, size, cp.contacts, t0, prune=True, seq=cp.seq)
        return True

    def _checkpoint_written(self, reason: str, segment: int, size: int, contacts: int, t0: float,
                            prune: bool, **extra: Any) -> None:
        removed = self.journal.prune() if prune else []
        self.log.info("checkpoint written", reason=reason, checkpoint=segment, bytes=size, contacts=contacts,
                      ms=round((_time.perf_counter() - t0) * 1000, 1), removed=removed, **extra)

    def _checkpoint_failed(self, **why: Any) -> None:
        """Count and log it; the next size checkpoint is tried only after
        another ``snapshot_every`` records (the journal keeps everything)."""
        self.stats.snapshot_errors += 1
        self._checkpoint_retry_at = self.journal.written + self.options.snapshot_every
        self.log.error("checkpoint failed; the journal keeps growing", **why)

    def _checkpoint_in_child(self, reason: str, unpublished: list, t0: float) -> bool:
        """Fork; the child writes checkpoint ``segment`` and reports on a pipe
        ("ok SIZE CONTACTS" or the error); the parent opens the new segment
        and waits for the child in a worker thread.  Raises OSError if it
        cannot fork (the caller then writes the checkpoint itself)."""
        j = self.journal
        segment = j.segment + 1
        rfd, wfd = os.pipe()
        try:
            with warnings.catch_warnings():  # 3.12+ warns of fork beside threads: the child uses none
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except BaseException:
            os.close(rfd)
            os.close(wfd)
            raise
        if pid == 0:  # the child: write the checkpoint, say why not if it cannot, and go
            code = 1
            try:
                gc.disable()  # no finaliser may touch the router's objects (nor copy its pages)
                signal.set_wakeup_fd(-1)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                # hold nothing of the router's: not the journal lock, not its
                # sockets (a router restarted after a crash must get them)
                os.closerange(3, wfd)
                os.closerange(wfd + 1, max(os.sysconf("SC_OPEN_MAX"), 1 << 16))
                cp = self.state.to_checkpoint(segment, self._published, unpublished)
                size = j.write_checkpoint(cp)
                os.write(wfd, b"ok %d %d" % (size, cp.contacts))
                code = 0
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                with contextlib.suppress(BaseException):
                    os.write(wfd, f"{type(exc).__name__}: {exc}".encode()[:4000])
            finally:
                os._exit(code)
        os.close(wfd)
        paused = (_time.perf_counter() - t0) * 1000

        def wait() -> tuple[int, bytes]:
            try:
                chunks = []
                while True:
                    b = os.read(rfd, 4096)
                    if not b:
                        break
                    chunks.append(b)
            finally:
                os.close(rfd)
            _, status = os.waitpid(pid, 0)
            return status, b"".join(chunks)

        def done(fut: asyncio.Future) -> None:
            self._ckpt_child = None
            try:
                status, said = fut.result()
            except Exception as exc:  # noqa: BLE001
                status, said = -1, str(exc).encode()
            if status == 0 and said.startswith(b"ok "):
                size, contacts = (int(x) for x in said.split()[1:3])
                j.checkpoints_written += 1
                self._checkpoint_written(reason, segment, size, contacts, t0, prune=self.status == "running",
                                         paused_ms=round(paused, 1), child=pid)
            else:
                self._checkpoint_failed(child=pid, status=status,
                                        error=said.decode("utf-8", "replace") or "the child died")

        # from here on the child is always reaped: by ``wait`` in a worker thread
        self._ckpt_child = pid
        self._ckpt_future = fut = asyncio.get_running_loop().run_in_executor(None, wait)
        fut.add_done_callback(done)
        j.open_segment(segment)  # what follows goes after the checkpoint the child writes
        self._outbox_event.set()
        return True

    async def _wait_checkpoint_child(self) -> None:
        """At shutdown: let a checkpoint child finish (bounded); a forced
        stop, or one that takes too long, kills it (the previous checkpoint
        and the segments after it are all still there)."""
        fut, pid = self._ckpt_future, self._ckpt_child
        if fut is None or pid is None:
            return
        if not self._force:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(fut), self.options.shutdown_timeout)
        if not fut.done():
            self.log.warning("killing the checkpoint child", child=pid, force=self._force)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await fut

    # -- reload and drain ------------------------------------------------------------------

    def _stat_config(self) -> Any:
        if self.config_path is None:
            return None
        try:
            st = os.stat(self.config_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self, spec: Spec | None = None, *, drain: bool = False) -> dict[str, Any]:
        """Load the config file again (or take ``spec``) and apply it as soon
        as no contact is in the system.  Returns ``{"status": "applied" |
        "pending" | "unchanged" | "rejected", ...}``."""
        if spec is None:
            if self.config_path is None:
                return {"status": "rejected", "errors": ["the daemon was given a spec, not a config file"]}
            try:
                spec = load_config(self.config_path)
            except ConfigError as exc:
                errors = [str(e) for e in exc.errors]
                self.last_reload_error = errors
                self.stats.reloads["rejected"] += 1
                self.log.error("config reload rejected; keeping the running config", errors=errors)
                return {"status": "rejected", "errors": errors}
        self.last_reload_error = None
        h = spec_hash(spec)
        if h == self.state.spec_hash:
            if self._pending_spec is not None:
                self.log.info("pending reload cancelled: the config is back to the running one")
                self._pending_spec = None
                self._end_reload_drain()
            return {"status": "unchanged"}
        self._pending_spec = spec
        if drain:
            self._drain_for_reload = True
            self.draining = True
        if self.status == "running" and not self.state.engine.contacts:
            self._apply_reload()
            self._rearm()
            return {"status": "applied", "config": h}
        n = len(self.state.engine.contacts)
        self.stats.reloads["pending"] += 1
        self.log.info("config reload pending until no contact is in the system", contacts=n, drain=self.draining)
        return {"status": "pending", "config": h, "contacts": n, "draining": self.draining,
                "reason": f"{n} contacts in the system; the new config applies when there are none"}

    def _apply_reload(self) -> None:
        spec, self._pending_spec = self._pending_spec, None
        t = self._now()
        old_interval = self.state.engine.interval
        first, out = self.state.swap(spec, t)
        if self.journal is not None:
            self._need = self.journal.written
        self._emit(first, out)
        self.stats.reloads["applied"] += 1
        self._end_reload_drain()
        if self.state.engine.interval != old_interval:
            iv = self.state.engine.interval
            self._boundary = (math.floor(t / iv) + 1) * iv
        self.log.info("config reloaded", config=self.state.spec_hash, agents=len(self.state.engine.agents),
                      queues=len(self.state.engine.queues))

    def _end_reload_drain(self) -> None:
        if self._drain_for_reload:
            self._drain_for_reload = False
            self.draining = False

    def set_drain(self, on: bool = True) -> dict[str, Any]:
        self.draining = bool(on)
        if not on:
            self._drain_for_reload = False
        self.log.info("drain " + ("on: new contacts are refused" if on else "off"))
        return {"draining": self.draining, "contacts": len(self.state.engine.contacts)}

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            stamp = self._stat_config()
            if stamp != self._config_stamp:
                self._config_stamp = stamp
                if stamp is None:
                    self.log.warning("config file disappeared; keeping the running config",
                                     config=str(self.config_path))
                else:
                    self.log.info("config file changed", config=str(self.config_path))
                    self.reload()
            nd = self.state.engine.next_deadline()
            if nd is not None and nd <= self.clock.time() and self._armed is not None and self._armed <= nd:
                self._on_timer()  # a wall-clock step made the loop's timer late

    # -- views for the API ------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue:
        """A queue of ``(topic, payload)`` for everything published (SSE);
        ``None`` at shutdown.  ``unsubscribe`` when done."""
        q: asyncio.Queue = asyncio.Queue()
        self._listeners.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._listeners.discard(q)

    def health(self) -> dict[str, Any]:
        state = self.state
        eng = state.engine if state else None
        j = self.journal
        return {
            "status": ("draining" if self.draining else "ok") if self.status == "running" else self.status,
            "version": __version__,
            "tenant": self.options.tenant,
            "time": eng.now if eng else None,
            "uptime_s": round(_time.time() - self._started_wall, 3),
            "contacts": len(eng.contacts) if eng else 0,
            "agents": len(eng.agents) if eng else 0,
            "draining": self.draining,
            "seq": state.seq if state else 0,
            "published": self._published,
            "outbox": len(self._outbox),
            "config": state.spec_hash if state else None,
            "reload": {"pending": self._pending_spec is not None, "last_error": self.last_reload_error},
            "journal": None if j is None else {
                "path": str(j.path), "fsync": j.policy, "segment": j.segment, "written": j.written,
                "synced": j.synced, "segment_records": j.segment_records,
            },
        }

    def metrics(self) -> list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
        """Prometheus metrics as ``(name, type, help, [(labels, value)])``."""
        state = self.state
        eng = state.engine
        rep = eng.report(intervals=False)["queues"]
        snap = eng.snapshot()
        st = self.stats
        m: list = []

        def add(name: str, kind: str, help_: str, samples: list) -> None:
            m.append((name, kind, help_, samples))

        for key, help_ in (("offered", "Contacts that entered the queue (overflow-ins included)."),
                           ("answered", "Contacts connected to an agent."),
                           ("abandoned", "Contacts whose customer left before being connected."),
                           ("overflowed", "Contacts that left the queue by its max-wait rule."),
                           ("completed", "Contacts completed (wrap-up done).")):
            add(f"acd_contacts_{key}_total", "counter", help_,
                [({"queue": q}, fig.get(key, 0) + state.kpi_base.get(q, {}).get(key, 0)) for q, fig in rep.items()])
        add("acd_contacts_waiting", "gauge", "Contacts waiting in the queue now.",
            [({"queue": q}, v["waiting"]) for q, v in snap["queues"].items()])
        add("acd_longest_wait_seconds", "gauge", "Wait of the longest-waiting contact of the queue.",
            [({"queue": q}, v["longest_wait"]) for q, v in snap["queues"].items()])
        add("acd_contacts_in_system", "gauge", "Contacts in the system (waiting, offered, connected, wrap-up).",
            [({}, len(eng.contacts))])
        by_state = Counter({s: 0 for s in ("offline", "ready", "not_ready", "offered", "busy", "wrap_up")})
        for a in eng.agent_list:
            by_state[a.state] += 1
        add("acd_agents", "gauge", "Agents by visible state.", [({"state": s}, n) for s, n in sorted(by_state.items())])
        add("acd_inbound_messages_total", "counter", "Inbound messages received (any, valid or not).",
            [({}, st.inbound_messages)])
        add("acd_inbound_events_total", "counter", "Inbound events decoded, by type.",
            [({"type": t}, n) for t, n in sorted(st.inbound.items())])
        add("acd_outbound_events_total", "counter", "Outbound events emitted by the core, by type.",
            [({"type": t}, n) for t, n in sorted(st.outbound.items())])
        add("acd_errors_total", "counter", "Inbound messages answered on out/error, by reason.",
            [({"reason": r}, n) for r, n in sorted(st.errors.items())])
        add("acd_duplicates_total", "counter", "Inbound events dropped as duplicates (same id).", [({}, st.duplicates)])
        add("acd_decision_seq", "gauge", "Number of the last outbound event (seq).", [({}, state.seq)])
        add("acd_published_seq", "gauge", "Highest seq published on the bus.", [({}, self._published)])
        add("acd_outbox_items", "gauge", "Outputs and acks waiting for durability or the bus.",
            [({}, len(self._outbox))])
        add("acd_deadline_lag_seconds", "gauge", "How late the last timer-driven deadline ran.",
            [({}, st.deadline_lag)])
        add("acd_deadline_lag_max_seconds", "gauge", "Worst deadline lag since start.", [({}, st.deadline_lag_max)])
        add("acd_timer_fires_total", "counter", "Deadlines run by the timer.", [({}, st.timer_fires)])
        add("acd_reloads_total", "counter", "Config reloads by result.",
            [({"result": r}, n) for r, n in sorted(st.reloads.items())])
        add("acd_reload_pending", "gauge", "1 while a new config waits for an idle moment.",
            [({}, int(self._pending_spec is not None))])
        add("acd_draining", "gauge", "1 while new contacts are refused.", [({}, int(self.draining))])
        add("acd_core_errors_total", "counter", "Exceptions raised by the routing core (bugs).",
            [({}, state.internal_errors)])
        j = self.journal
        if j is not None:
            add("acd_journal_records_total", "counter", "Journal records written by this process.", [({}, j.written)])
            add("acd_journal_synced_records", "gauge", "Journal records known durable.", [({}, j.synced)])
            add("acd_journal_bytes_total", "counter", "Journal bytes written by this process.", [({}, j.bytes_written)])
            add("acd_journal_fsyncs_total", "counter", "fsync calls on the journal.", [({}, j.fsyncs)])
            add("acd_journal_segment", "gauge", "Number of the open journal segment.", [({}, j.segment)])
            add("acd_journal_segment_records", "gauge", "Records in the open segment.", [({}, j.segment_records)])
            add("acd_checkpoints_total", "counter", "Checkpoints written by this process.",
                [({}, j.checkpoints_written)])
            add("acd_checkpoint_errors_total", "counter", "Checkpoints that failed.", [({}, st.snapshot_errors)])
        add("acd_recovery_seconds", "gauge", "Time the last start took to rebuild the state.",
            [({}, round(st.recovery_seconds, 6))])
        add("acd_replayed_records", "gauge", "Journal records replayed at the last start.",
            [({}, st.replayed_records)])
        add("acd_start_time_seconds", "gauge", "Unix time the daemon started.", [({}, self._started_wall)])
        add("acd_up", "gauge", "1 while the daemon is running.", [({}, int(self.status == "running"))])
        return m


# --- helpers for the command line ----------------------------------------------------------


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (127.0.0.1); ``[::1]:PORT``."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"expected [HOST]:PORT, got {text!r}")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    else:
        host, port = "", text
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"expected HOST:PORT with a numeric port, got {text!r}") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host or default_host, p


def make_bus(url: str, topics: Topics, client_id: str | None = None) -> Any:
    """``inproc`` (no broker: the HTTP API is the only input), ``stdio``
    (JSON lines, see ``acd.bus.stdio``) or ``mqtt[s]://...``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else url.lower()
    if scheme == "inproc":
        from .bus.inproc import InProcessBus

        return InProcessBus()
    if scheme == "stdio":
        from .bus.stdio import StdioBus

        return StdioBus()
    if scheme in ("mqtt", "mqtts"):
        from .bus.mqtt import MqttBus

        return MqttBus(url, topics, client_id=client_id or f"acd-{topics.tenant}")
    raise ValueError(f"unknown bus {url!r}: expected inproc, stdio or mqtt[s]://host[:port]")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``acd run``."""
    p.add_argument("--config", required=True, metavar="FILE", help="routing config (YAML); reloaded on change and SIGHUP")
    p.add_argument("--bus", default="inproc", metavar="URL",
                   help="inproc (default, no broker), stdio (JSON lines on stdin/stdout) or mqtt[s]://[user[:pw]@]host[:port]")
    p.add_argument("--http", metavar="HOST:PORT", help="serve the HTTP API (health, state, metrics...) there; "
                                                       "HOST defaults to 127.0.0.1")
    p.add_argument("--journal", metavar="DIR", help="journal directory: the state survives restarts and crashes")
    p.add_argument("--tenant", default="default", help="topic prefix acd/<tenant>/ (default: default)")
    p.add_argument("--fsync", choices=FSYNC_POLICIES, default="batch",
                   help="when the journal is fsynced: before each ack, every --batch-ms, or never (default batch)")
    p.add_argument("--batch-ms", type=float, default=5.0, metavar="MS",
                   help="--fsync batch: at most one fsync per MS milliseconds (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random strategy for a new journal (default 0)")
    p.add_argument("--snapshot-every", type=int, default=50_000, metavar="N",
                   help="journal records between checkpoints (default 50000)")
    p.add_argument("--api-token-env", default="ACD_API_TOKEN", metavar="VAR",
                   help="environment variable holding the bearer token of the POST endpoints (default ACD_API_TOKEN)")
    p.add_argument("--wallboard-tz", default="UTC", metavar="ZONE",
                   help="IANA time zone whose day is 'today' on the wallboard at / (default UTC)")
    p.add_argument("--client-id", metavar="ID", help="MQTT client id (default acd-<tenant>)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error", "critical"))


def run_command(args: argparse.Namespace) -> int:
    """``acd run``: 0 after a clean shutdown, 1 on a failure at run time
    (bus, journal), 2 on bad input (config, arguments)."""
    from . import logs

    logs.configure(args.log_level)
    log = get_logger("acd.run")
    if args.snapshot_every < 1:
        print("acd: --snapshot-every must be at least 1", file=sys.stderr)
        return 2
    if args.batch_ms <= 0:
        print("acd: --batch-ms must be > 0", file=sys.stderr)
        return 2
    if args.http:
        try:
            parse_hostport(args.http)
        except ValueError as exc:
            print(f"acd: --http: {exc}", file=sys.stderr)
            return 2
    try:
        from .wallboard import resolve_tz

        resolve_tz(args.wallboard_tz)
    except ValueError as exc:
        print(f"acd: --wallboard-tz: {exc}", file=sys.stderr)
        return 2
    opts = Options(tenant=args.tenant, fsync=args.fsync, batch_ms=args.batch_ms, seed=args.seed,
                   snapshot_every=args.snapshot_every, http=args.http, api_token_env=args.api_token_env,
                   wallboard_tz=args.wallboard_tz)
    try:
        bus = make_bus(args.bus, Topics(args.tenant), args.client_id)
    except (ValueError, ImportError) as exc:
        print(f"acd: --bus: {exc}", file=sys.stderr)
        return 2
    daemon = Daemon(args.config, bus, args.journal, opts)

    async def main() -> None:
        freezer = asyncio.ensure_future(_freeze_gc_when_started(daemon))
        try:
            await daemon.run()
        finally:
            freezer.cancel()

    try:
        _run_loop(main)
    except ConfigError as exc:
        print("\n".join(str(e) for e in exc.errors), file=sys.stderr)
        return 2
    except JournalError as exc:
        log.critical("journal error", error=str(exc))
        print(f"acd: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # bus refused the connection, port in use...
        log.critical("acd run failed", error=str(exc), exc_info=exc)
        print(f"acd: {exc}", file=sys.stderr)
        return 1
    return 0


async def _freeze_gc_when_started(daemon: Daemon) -> None:
    """Once ``acd run`` is up, move everything built so far (the engine,
    config, recovered state: long-lived) out of the garbage collector's
    sight (``gc.freeze``).  Otherwise every full collection walks it all
    again, which stalls the loop for tens of milliseconds with a few
    thousand agents (measured: 40 ms pauses -> 2-8 ms; bench/mqtt_load.py).
    Only the process of ``acd run`` does this: it is process-wide."""
    await daemon.started.wait()
    gc.collect()
    gc.freeze()


def _run_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on uvloop when it is installed."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def main(argv: list[str] | None = None) -> int:
    """``python -m acd.daemon --config FILE ...`` (same as ``acd run``)."""
    p = argparse.ArgumentParser(prog="acd run", description="Run the routing daemon.")
    add_run_arguments(p)
    return run_command(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
