"""``acd replay --live``: play a scenario onto a running daemon's bus.

The player is the telephony side: it publishes each scenario line as an
inbound event at its time (scaled by ``speed``: scenario seconds per wall
second), answers every offer the daemon decides (``offer.accepted``, after
``answer_delay``), hangs up after the contact's handle time, and abandons a
contact whose patience runs out before it is connected.  So a running
daemon is exercised end to end, and its KPIs can be compared with the
offline replay of the same scenario.

Every message carries an ``id`` (``arrived:c17``, ``accepted:c17:1``...) so
the daemon's de-duplication makes a resend after a reconnect harmless.
Times the daemon reports are wall-clock; ``wait`` figures are converted
back to scenario seconds (multiplied by ``speed``).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Iterable

import msgspec

from .bus import Topics
from .core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, ContactAbandoned, ContactArrived,
    ContactCompleted, ContactConnected, ContactEnded, ContactOffered, ContactOverflowed,
    CustomerAbandoned, OfferAccepted, Outbound,
)
from .scenario import AgentLine

_decode_out = msgspec.json.Decoder(Outbound)
_decode_stream = msgspec.json.Decoder(list[Outbound])  # out/event: an array per message
_enc = msgspec.json.Encoder()


class LivePlayer:
    """Plays ``items`` (``(time, line)`` pairs, e.g. a ``Scenario``) onto
    ``bus`` (an ``MqttBus`` subscribed to ``out/#``, or any ``Bus``)."""

    def __init__(self, bus: Any, topics: Topics, *, speed: float = 1.0, answer_delay: float = 0.0,
                 drain_timeout: float = 30.0):
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed!r}")
        self.bus = bus
        self.topics = topics
        self.speed = speed
        self.answer_delay = answer_delay
        self.drain_timeout = drain_timeout
        self.handle_time: dict[str, float] = {}
        self.open: set[str] = set()  # arrived, not yet ended
        self.connected: set[str] = set()
        self.waits: list[float] = []
        self.counts = {"offered": 0, "answered": 0, "abandoned": 0, "overflowed": 0, "completed": 0,
                       "rejected": 0, "agent_lines": 0}
        self._tasks: set[asyncio.Task] = set()
        self._t0 = 0.0
        self._wall0 = 0.0
        self._done = asyncio.Event()

    def _wall(self, t: float) -> float:
        return self._wall0 + (t - self._t0) / self.speed

    async def _send(self, tag: str, event: Any) -> None:
        await self.bus.publish(self.topics.inbound_for(tag), _enc.encode(event))

    def _later(self, delay: float, coro: Any) -> None:
        async def run() -> None:
            if delay > 0:
                await asyncio.sleep(delay)
            await coro

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self, items: Iterable[tuple[float, Any]], start: float) -> dict[str, Any]:
        self._t0 = start
        self._wall0 = time.monotonic()
        listener = asyncio.create_task(self._listen())
        try:
            for t, line in items:
                delay = self._wall(t) - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if line.__class__ is AgentLine:
                    await self._agent(line)
                    continue
                cid = line.id
                self.handle_time[cid] = line.handle_time
                self.open.add(cid)
                self.counts["offered"] += 1
                await self._send("contact.arrived", ContactArrived(
                    id=f"arrived:{cid}", contact=cid, queue=line.queue, channel=line.channel,
                    priority=line.priority, skills=line.skills, attributes=line.attributes))
                if line.patience is not None:
                    self._later(line.patience / self.speed, self._abandon(cid))
            # everything sent: wait until every contact has ended
            if self.open:
                self._done.clear()
                try:
                    await asyncio.wait_for(self._done.wait(), self.drain_timeout + 2 * max(
                        self.handle_time.values(), default=0) / self.speed)
                except asyncio.TimeoutError:
                    pass
        finally:
            listener.cancel()
            for task in list(self._tasks):
                task.cancel()
        answered = self.counts["answered"]
        offered = self.counts["offered"]
        return {
            **self.counts,
            "in_system_at_end": len(self.open),
            "abandon_rate": round(self.counts["abandoned"] / offered, 6) if offered else 0.0,
            "asa": round(sum(self.waits) / answered * self.speed, 3) if answered else 0.0,
            "p_wait_answered": round(sum(1 for w in self.waits if w > 0.05 / self.speed) / answered, 6)
            if answered else 0.0,
            "speed": self.speed,
        }

    async def _agent(self, line: AgentLine) -> None:
        self.counts["agent_lines"] += 1
        i = f"{line.state}:{line.agent}:{self.counts['agent_lines']}"
        ev = {"login": lambda: AgentLogin(id=i, agent=line.agent, reason=line.reason),
              "logout": lambda: AgentLogout(id=i, agent=line.agent),
              "ready": lambda: AgentReady(id=i, agent=line.agent),
              "not_ready": lambda: AgentNotReady(id=i, agent=line.agent, reason=line.reason or "break")}[line.state]()
        await self._send(f"agent.{line.state}", ev)

    async def _abandon(self, cid: str) -> None:
        if cid in self.open and cid not in self.connected:
            await self._send("contact.abandoned", CustomerAbandoned(id=f"abandoned:{cid}", contact=cid))

    async def _accept(self, e: ContactOffered) -> None:
        await self._send("offer.accepted", OfferAccepted(id=f"accepted:{e.contact}:{e.offer}",
                                                         contact=e.contact, agent=e.agent))

    async def _hang_up(self, cid: str) -> None:
        await self._send("contact.ended", ContactEnded(id=f"ended:{cid}", contact=cid))

    def _ended(self, cid: str) -> None:
        self.open.discard(cid)
        if not self.open:
            self._done.set()

    async def _listen(self) -> None:
        async for msg in self.bus.messages():
            try:
                if msg.topic == self.topics.decision:
                    self._react(_decode_out.decode(msg.payload))
                elif msg.topic == self.topics.event:
                    for e in _decode_stream.decode(msg.payload):
                        self._react(e)
                elif msg.topic == self.topics.error:
                    self.counts["rejected"] += 1
            except msgspec.DecodeError:
                pass
            finally:
                await msg.ack()

    def _react(self, e: Any) -> None:
        tp = type(e)
        if tp is ContactOffered:
            if e.auto_answer:
                return
            self._later(self.answer_delay / self.speed, self._accept(e))
        elif tp is ContactConnected:
            if e.contact in self.connected:
                return  # a resend
            self.connected.add(e.contact)
            self.counts["answered"] += 1
            self.waits.append(e.wait)
            self._later(self.handle_time.get(e.contact, 0.0) / self.speed, self._hang_up(e.contact))
        elif tp is ContactAbandoned:
            if e.contact in self.open:
                self.counts["abandoned"] += 1
                self._ended(e.contact)
        elif tp is ContactOverflowed and e.to_queue is None:
            if e.contact in self.open:
                self.counts["overflowed"] += 1
                self._ended(e.contact)
        elif tp is ContactCompleted:
            if e.contact in self.open:
                self.counts["completed"] += 1
                self._ended(e.contact)


async def play(url: str, items: Iterable[tuple[float, Any]], start: float, *, tenant: str = "default",
               speed: float = 1.0, answer_delay: float = 0.0) -> dict[str, Any]:
    """Connect to the broker at ``url`` as the telephony side and play."""
    from .bus.mqtt import MqttBus

    topics = Topics(tenant)
    bus = MqttBus(url, topics, client_id=f"acd-live-{os.getpid()}", subscribe=f"{topics.prefix}/out/#",
                  presence=False, session_expiry=60, max_unacked=1000)
    async with bus:
        return await LivePlayer(bus, topics, speed=speed, answer_delay=answer_delay).run(items, start)
