"""A small harness for driving the routing engine in tests.

``Run`` wraps an ``Engine``: feed it events at times (``send``), let time pass
(``advance`` / ``run_until``), and it checks the engine's invariants after every
step and keeps a log of every outbound event.  The ``of``/``offers``/``states``
helpers pick outbound events apart so tests can state exact expectations.
"""

from __future__ import annotations

from random import Random
from typing import Any, Iterable

from acd.core.engine import Engine
from acd.core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged, ContactArrived,
    ContactEnded, ContactOffered, CustomerAbandoned, OfferAccepted, OfferRejected, WrapUpDone,
)
from acd.core.spec import spec_from_obj


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
