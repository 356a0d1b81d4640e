"""The event bus: how the daemon talks to the telephony side.

One small interface, two implementations:

* ``InProcessBus`` (``acd.bus.inproc``): the embedded default; ``acd run``
  works with no broker, and tests drive the daemon through it.
* ``MqttBus`` (``acd.bus.mqtt``): aiomqtt against a real broker; the only
  module that imports aiomqtt.

**Topics** (``Topics``): everything lives under ``acd/<tenant>/``::

    in/<kind>          inbound events, kind = the event tag with '/' for '.'
                       (in/contact/arrived, in/offer/accepted, in/agent/login ...)
    out/decision       ContactOffered: what the telephony side must do
    out/event          every other outbound event (queued, connected, state...):
                       a JSON array per message, one publish round's worth
    out/metrics        handle-time metrics, per contact and per interval: an
                       array per message, like out/event
    out/error          inbound messages refused, with the reason
    status             retained: "online" / "offline" (also the MQTT last will)

Payloads are JSON of the msgspec structs in ``acd.core.events`` (the
``type`` field may be omitted inbound: the topic names it).

**Acknowledgement.** ``Message.ack()`` tells the bus the message is safe (the
daemon calls it after journalling); a bus with at-least-once delivery (MQTT
QoS 1 with manual acks and a persistent session) redelivers what was not
acknowledged before a crash.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, Protocol


async def _no_ack() -> None:
    return None


@dataclass
class Message:
    """One inbound message; call ``await msg.ack()`` once it is journalled."""

    topic: str
    payload: bytes
    ack: Callable[[], Awaitable[None]] = field(default=_no_ack, repr=False)


class Bus(Protocol):
    """What the daemon needs from a bus (an async context manager)."""

    async def __aenter__(self) -> "Bus": ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish (QoS 1 where the transport has QoS)."""

    def messages(self) -> AsyncIterator[Message]:
        """Inbound messages on the subscribed topics, in arrival order."""


@dataclass(frozen=True)
class Topics:
    """Topic names of one tenant."""

    tenant: str = "default"
    root: str = "acd"

    @property
    def prefix(self) -> str:
        return f"{self.root}/{self.tenant}"

    @property
    def inbound(self) -> str:
        """The subscription filter for every inbound topic."""
        return f"{self.prefix}/in/#"

    def inbound_for(self, tag: str) -> str:
        """``contact.arrived`` -> ``acd/<tenant>/in/contact/arrived``."""
        return f"{self.prefix}/in/{tag.replace('.', '/')}"

    def tag_of(self, topic: str) -> str | None:
        """The event tag an inbound topic names, or None if it is not one."""
        head = f"{self.prefix}/in/"
        if not topic.startswith(head) or len(topic) == len(head):
            return None
        return topic[len(head):].replace("/", ".")

    @property
    def decision(self) -> str:
        return f"{self.prefix}/out/decision"

    @property
    def event(self) -> str:
        return f"{self.prefix}/out/event"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}/out/metrics"

    @property
    def error(self) -> str:
        return f"{self.prefix}/out/error"

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"
