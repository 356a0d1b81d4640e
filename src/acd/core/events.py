"""Typed messages in and out of the routing core.

The core speaks only these structs (the h11 habit: events in, events out).
*Inbound* events are what the telephony side (or the replay acting as it) tells
the router; *outbound* events are the router's decisions and state changes,
which the daemon publishes on its bus and the replay can write to a file.

Every struct is tagged with a ``type`` field (``"contact.arrived"``, ...), so a
single typed decoder built once at the edge turns JSON into the right class and
a bad payload fails there with the field and value named, before the core sees
it.  Times are float seconds since the Unix epoch, the one unit of the core.

Inbound events carry an optional ``id`` so a shell with at-least-once delivery
can drop duplicates; the core itself ignores it.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import msgspec

Channel = Literal["voice", "chat", "email"]
CHANNELS: tuple[str, ...] = ("voice", "chat", "email")


class _In(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True, gc=False):
    """Base of inbound events: frozen, keyword-only, unknown fields rejected."""

    id: str | None = None


# --- inbound: contacts -----------------------------------------------------


class ContactArrived(_In, tag="contact.arrived"):
    """A new contact (call, chat, email) asks to be routed to ``queue``."""

    contact: str
    queue: str
    channel: Channel | None = None  # None: the queue's channel
    priority: float = 0.0
    skills: dict[str, int] = {}  # extra required skills, skill -> minimum level
    attributes: dict[str, Any] = {}


class CustomerAbandoned(_In, tag="contact.abandoned"):
    """The customer hung up (or closed the chat) before being connected."""

    contact: str


class OfferAccepted(_In, tag="offer.accepted"):
    """The agent answered the offered contact: it is now connected."""

    contact: str
    agent: str | None = None


class OfferRejected(_In, tag="offer.rejected"):
    """The agent declined the offer; the contact goes back to its place."""

    contact: str
    agent: str | None = None
    reason: str = "rejected"


class ContactEnded(_In, tag="contact.ended"):
    """The conversation is over (hang-up, chat closed, email sent); wrap-up starts."""

    contact: str


# --- inbound: agents -------------------------------------------------------


class AgentLogin(_In, tag="agent.login"):
    """The agent logs in: ready, or not-ready when ``reason`` is given."""

    agent: str
    reason: str | None = None


class AgentLogout(_In, tag="agent.logout"):
    """The agent logs out. Work in progress finishes; no new offers."""

    agent: str


class AgentReady(_In, tag="agent.ready"):
    """The agent is available for work."""

    agent: str


class AgentNotReady(_In, tag="agent.not_ready"):
    """The agent takes a break (``reason``); work in progress finishes first."""

    agent: str
    reason: str = "break"


class WrapUpDone(_In, tag="agent.wrap_up_done"):
    """The agent ended after-contact work early (for one contact, or all)."""

    agent: str
    contact: str | None = None


Inbound = Union[
    ContactArrived,
    CustomerAbandoned,
    OfferAccepted,
    OfferRejected,
    ContactEnded,
    AgentLogin,
    AgentLogout,
    AgentReady,
    AgentNotReady,
    WrapUpDone,
]
INBOUND_TYPES: tuple[type, ...] = Inbound.__args__  # type: ignore[attr-defined]


# --- outbound ----------------------------------------------------------------


class _Out(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", array_like=False, gc=False):
    """Base of outbound events; ``time`` is when the core decided it."""

    time: float


class ContactQueued(_Out, tag="contact.queued"):
    """No eligible agent was free: the contact waits in ``queue``."""

    contact: str
    queue: str
    priority: float


class ContactOffered(_Out, tag="contact.offered", omit_defaults=True):
    """Decision: ring ``agent`` with ``contact``; the agent is reserved (with
    ``auto_answer``, the agent's phone answers at once: do not ring, connect).

    ``offer`` numbers the offers of one contact (1, 2, ...), so
    ``(contact, offer)`` identifies a decision for de-duplication.
    """

    contact: str
    queue: str
    agent: str
    channel: str
    offer: int
    timeout: float
    auto_answer: bool = False  # the agent's phone answered by itself: contact.connected follows at once


class ContactConnected(_Out, tag="contact.connected"):
    """The agent accepted: the contact is assigned and talking. ``wait`` is s."""

    contact: str
    queue: str
    agent: str
    wait: float


class ContactRequeued(_Out, tag="contact.requeued"):
    """An offer failed (rejected, ring time-out, withdrawn); the contact is back
    at its old place in the queue, not at the back."""

    contact: str
    queue: str
    agent: str
    reason: str


class ContactEscalated(_Out, tag="contact.escalated"):
    """The contact waited long enough for escalation ``step`` (1-based):
    its set of target agents widened."""

    contact: str
    queue: str
    step: int


class ContactOverflowed(_Out, tag="contact.overflowed"):
    """The contact left ``queue``: to ``to_queue``, or out of the system
    (``to_queue`` None, e.g. to voicemail) when there is nowhere to go."""

    contact: str
    queue: str
    to_queue: str | None
    reason: str
    wait: float


class ContactAbandoned(_Out, tag="contact.abandoned"):
    """The customer gave up after ``wait`` seconds."""

    contact: str
    queue: str
    wait: float


class ContactCompleted(_Out, tag="contact.completed"):
    """The contact is done: times in seconds, wrap-up included."""

    contact: str
    queue: str
    agent: str
    wait: float
    talk: float
    wrap_up: float


AgentStateName = Literal["offline", "ready", "not_ready", "offered", "busy", "wrap_up"]


class AgentStateChanged(_Out, tag="agent.state"):
    """The agent's visible state changed (see ``acd.core.agents``)."""

    agent: str
    state: str
    previous: str
    reason: str | None = None


class InputRejected(_Out, tag="input.rejected"):
    """An inbound event was refused (unknown contact, wrong state...). Nothing
    changed; the reason says why."""

    event: str
    reason: str
    contact: str | None = None
    agent: str | None = None


Outbound = Union[
    ContactQueued,
    ContactOffered,
    ContactConnected,
    ContactRequeued,
    ContactEscalated,
    ContactOverflowed,
    ContactAbandoned,
    ContactCompleted,
    AgentStateChanged,
    InputRejected,
]
OUTBOUND_TYPES: tuple[type, ...] = Outbound.__args__  # type: ignore[attr-defined]


def tag_of(event: msgspec.Struct) -> str:
    """The ``type`` tag of an event struct (e.g. ``"contact.arrived"``)."""
    return type(event).__struct_config__.tag  # type: ignore[return-value]


__all__ = [name for name in dir() if name[0].isupper()] + ["tag_of", "CHANNELS"]
