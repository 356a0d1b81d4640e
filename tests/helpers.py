"""A small harness for driving the routing engine in tests.

``Run`` wraps an ``Engine``: feed it events at times (``send``), let time pass
(``advance`` / ``run_until``), and it checks the engine's invariants after every
step and keeps a log of every outbound event.  The ``of``/``offers``/``states``
helpers pick outbound events apart so tests can state exact expectations.
"""

from __future__ import annotations

import struct
import zlib
from random import Random
from typing import Any, Iterable

from acd.core.engine import Engine
from acd.core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged, ContactArrived,
    ContactEnded, ContactOffered, CustomerAbandoned, OfferAccepted, OfferRejected, WrapUpDone,
)
from acd.core.spec import spec_from_obj


#: two UTC sites, north by day and south in the evening, and their shifts
#: (a day shift with a lunch break, an evening shift): calendar tests
TWO_SITES = [{"name": "north", "timezone": "UTC", "hours": {"daily": "08:00-16:00"}},
             {"name": "south", "timezone": "UTC", "hours": {"daily": "16:00-23:59"}}]
DAY_AND_EVENING = {"day": {"days": "mon-fri", "start": "08:00", "end": "16:00",
                           "breaks": [{"start": "12:00", "end": "12:30", "reason": "lunch"}]},
                   "eve": {"days": "mon-fri", "start": "15:00", "end": "23:00"}}


def stream_bodies(topic: str, body: Any) -> list:
    """The events of one outbound message: ``out/event`` and ``out/metrics``
    carry an array per message, every other topic one object."""
    return body if topic.endswith(("out/event", "out/metrics")) else [body]


def make_spec(queues: list[dict], agents: list[dict], **extra: Any):
    return spec_from_obj({"queues": queues, "agents": agents, **extra})


class Run:
    """An engine plus the log of everything it said."""

    def __init__(self, queues: list[dict], agents: list[dict], *, seed: int = 0, start: float = 0.0,
                 **extra: Any):
        self.engine = Engine(make_spec(queues, agents, **extra), rng=Random(seed), start=start)
        self.engine.check_invariants()
        self.log: list = []

    # -- driving -------------------------------------------------------------

    def send(self, event: Any, at: float) -> list:
        out = self.engine.handle(event, at)
        self.engine.check_invariants()
        self.log.extend(out)
        return out

    def advance(self, to: float) -> list:
        out = self.engine.advance(to)
        self.engine.check_invariants()
        self.log.extend(out)
        return out

    def run_until(self, to: float) -> list:
        """Fire deadlines one at a time (checking invariants in between) up to ``to``."""
        out: list = []
        while True:
            d = self.engine.next_deadline()
            if d is None or d > to:
                break
            out += self.advance(d)
        out += self.advance(to)
        return out

    # -- shorthands for inbound events ----------------------------------------

    def arrive(self, contact: str, queue: str, at: float, **kw: Any) -> list:
        return self.send(ContactArrived(contact=contact, queue=queue, **kw), at)

    def accept(self, contact: str, at: float, agent: str | None = None) -> list:
        return self.send(OfferAccepted(contact=contact, agent=agent), at)

    def reject(self, contact: str, at: float, agent: str | None = None, **kw: Any) -> list:
        return self.send(OfferRejected(contact=contact, agent=agent, **kw), at)

    def end(self, contact: str, at: float) -> list:
        return self.send(ContactEnded(contact=contact), at)

    def abandon(self, contact: str, at: float) -> list:
        return self.send(CustomerAbandoned(contact=contact), at)

    def handle_fully(self, contact: str, at: float, talk: float = 0.0) -> list:
        """Accept ``contact`` at ``at`` and end it ``talk`` seconds later."""
        out = self.accept(contact, at)
        out += self.end(contact, at + talk)
        return out

    def login(self, agent: str, at: float, reason: str | None = None) -> list:
        return self.send(AgentLogin(agent=agent, reason=reason), at)

    def logout(self, agent: str, at: float) -> list:
        return self.send(AgentLogout(agent=agent), at)

    def ready(self, agent: str, at: float) -> list:
        return self.send(AgentReady(agent=agent), at)

    def not_ready(self, agent: str, at: float, reason: str = "break") -> list:
        return self.send(AgentNotReady(agent=agent, reason=reason), at)

    def wrap_up_done(self, agent: str, at: float, contact: str | None = None) -> list:
        return self.send(WrapUpDone(agent=agent, contact=contact), at)

    # -- looking at state ------------------------------------------------------

    def agent_state(self, agent: str) -> str:
        return self.engine.snapshot()["agents"][agent]["state"]

    def waiting(self, queue: str) -> int:
        return self.engine.snapshot()["queues"][queue]["waiting"]


# -- picking outbound events apart -----------------------------------------------


def of(out: Iterable[Any], cls: type) -> list:
    """The events of type ``cls`` in ``out``, in order."""
    return [e for e in out if isinstance(e, cls)]


def offers(out: Iterable[Any]) -> list[tuple[str, str]]:
    """``(contact, agent)`` of every ContactOffered in ``out``."""
    return [(e.contact, e.agent) for e in out if isinstance(e, ContactOffered)]


def offered_to(out: Iterable[Any], contact: str) -> str:
    """The agent the single offer of ``contact`` in ``out`` went to."""
    (agent,) = [e.agent for e in out if isinstance(e, ContactOffered) and e.contact == contact]
    return agent


def states(out: Iterable[Any], agent: str | None = None) -> list[tuple[str, str]]:
    """``(previous, state)`` of the AgentStateChanged events (of ``agent``)."""
    return [(e.previous, e.state) for e in out
            if isinstance(e, AgentStateChanged) and (agent is None or e.agent == agent)]


def kinds(out: Iterable[Any]) -> list[str]:
    """Type tags of the events in ``out``."""
    return [type(e).__struct_config__.tag for e in out]


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, RGB rows) of an 8-bit RGB(A) PNG (all five filters undone)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, []
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(h):
        off = y * (stride + 1)
        f, line = raw[off], bytearray(raw[off + 1:off + 1 + stride])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(v for i in range(0, stride, 4) for v in line[i:i + 3]))
    return w, h, rows
