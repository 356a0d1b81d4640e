"""The in-process bus: the daemon's embedded default (no broker needed).

Publishers and the daemon share one process (tests, an embedding
application).  ``send`` injects an inbound message; ``subscribe`` gives a
queue of everything published on topics matching an MQTT-style filter.
Delivery is immediate and in order; ``ack`` is a no-op (nothing to
redeliver within one process).
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from . import Message


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT filter matching: ``+`` one level, ``#`` the rest."""
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


class InProcessBus:
    def __init__(self) -> None:
        self._inbound: asyncio.Queue[Message | None] = asyncio.Queue()
        self._subscribers: list[tuple[str, asyncio.Queue[Message]]] = []
        self.retained: dict[str, bytes] = {}
        self.closed = False

    async def __aenter__(self) -> "InProcessBus":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True
        self._inbound.put_nowait(None)

    # the daemon's side

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        if retain:
            self.retained[topic] = payload
        for pattern, q in self._subscribers:
            if topic_matches(pattern, topic):
                q.put_nowait(Message(topic, payload))

    async def messages(self) -> AsyncIterator[Message]:
        while True:
            msg = await self._inbound.get()
            if msg is None:
                return
            yield msg

    # the telephony side (tests, embedding code)

    def send(self, topic: str, payload: bytes) -> None:
        """Inject an inbound message."""
        self._inbound.put_nowait(Message(topic, payload))

    def subscribe(self, pattern: str) -> asyncio.Queue[Message]:
        """A queue receiving every published message matching ``pattern``
        (retained messages first)."""
        q: asyncio.Queue[Message] = asyncio.Queue()
        for topic, payload in self.retained.items():
            if topic_matches(pattern, topic):
                q.put_nowait(Message(topic, payload))
        self._subscribers.append((pattern, q))
        return q
