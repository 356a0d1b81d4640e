"""Crashes of ``acd run`` on the MQTT bus, against a real Mosquitto (the
``mosquitto`` fixture): the daemon runs as a subprocess (``python -m acd run
--bus mqtt://...``) and is killed with SIGKILL -- no cleanup, no goodbye.

* Killed between receipt and journal: the daemon has taken an inbound event
  from the broker but not yet written it (``ACD_TEST_CRASH_BEFORE_JOURNAL``,
  a test hook in ``acd.daemon``, makes it SIGKILL itself at exactly that
  point).  It was never acknowledged (manual acks, after the journal), and
  the session is persistent (stable client id, clean start off), so the
  broker redelivers it to the restarted daemon -- nobody publishes it again --
  and it is applied exactly once: one journal record, one decision, one
  lifecycle.
* Killed with traffic in flight, twice: offers ringing, calls connected,
  events published while the daemon is down (the broker queues them for its
  session).  After the restarts every contact ends exactly once, none is
  connected twice, no decision number is lost, and a decision published
  again after a restart is the very same message (same ``seq``).

The telephony side is an aiomqtt client in the test; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import aiomqtt
import pytest

from acd.bus import Topics
from acd.bus.inproc import InProcessBus
from acd.daemon import Daemon, Options
from acd.journal import EventRecord, Journal

from helpers import stream_bodies

CONFIG = """\
queues:
  - name: support
    ring_timeout: 10
agents:
  - group: a
    count: 2
"""

# Short rings so that offers left ringing by a kill time out during the
# restart; a contact is never offered twice to an agent who missed it, and
# only first offers are ever ignored, so with 5 agents none runs out of them.
TRAFFIC_CONFIG = """\
queues:
  - name: q
    ring_timeout: 0.4
agents:
  - group: a
    count: 5
    max_missed_offers: 1000
"""


class Router:
    """``python -m acd run`` on the broker, as a subprocess (same journal and
    client id across restarts: one persistent MQTT session)."""

    def __init__(self, tmp_path: Path, broker: Any, config: str, fsync: str = "batch"):
        self.dir = tmp_path
        self.cfg = tmp_path / "acd.yaml"
        self.cfg.write_text(config)
        self.journal = tmp_path / "journal"
        self.broker = broker
        self.fsync = fsync
        self.proc: subprocess.Popen | None = None
        self.gen = 0

    def start(self, **env: str) -> None:
        self.gen += 1
        log = open(self.dir / f"daemon-{self.gen}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "acd", "run", "--config", str(self.cfg), "--bus", self.broker.url,
             "--journal", str(self.journal), "--fsync", self.fsync, "--client-id", "acd-crash-test",
             "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != "ACD_TEST_CRASH_BEFORE_JOURNAL"}, **env})
        log.close()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.dir.glob("daemon-*.log")))


def journal_ids(path: Path) -> list[str]:
    j = Journal(path)
    segs = j.segments()
    if not segs:
        return []
    return [r.e.id for r in j.iter_records(segs[0]) if isinstance(r, EventRecord)]


class Telephony:
    """The other side of the bus: publishes inbound events, reads every
    outbound message once (by ``seq``: a message published again after a
    restart must be identical), and can answer offers and hang up."""

    def __init__(self, broker: Any, *, answer: bool = False, seed: int = 1):
        self.broker = broker
        self.topics = Topics()
        self.answer = answer
        self.rng = random.Random(seed)
        self.by_seq: dict[int, tuple[str, bytes]] = {}
        self.resent = 0
        self.offers: dict[tuple[str, int], int] = {}  # (contact, offer) -> seq
        self.decisions: list[dict] = []
        self.connected: Counter = Counter()
        self.ended: Counter = Counter()
        self.status: list[str] = []
        self.problems: list[str] = []  # broken promises seen by the reader (checked by every wait)
        self.tasks: set[asyncio.Task] = set()
        self.client: aiomqtt.Client | None = None

    async def __aenter__(self) -> "Telephony":
        self.client = aiomqtt.Client(self.broker.host, self.broker.port, identifier=f"tel-{os.getpid()}")
        await self.client.__aenter__()
        await self.client.subscribe(f"{self.topics.prefix}/out/#", qos=1)
        await self.client.subscribe(self.topics.status, qos=1)
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        for t in [*self.tasks, self.reader]:
            t.cancel()
        await asyncio.gather(*self.tasks, self.reader, return_exceptions=True)
        await self.client.__aexit__(None, None, None)

    async def send(self, tag: str, payload: dict) -> None:
        await self.client.publish(self.topics.inbound_for(tag), json.dumps(payload).encode(), qos=1)

    def later(self, delay: float, tag: str, payload: dict) -> None:
        async def go() -> None:
            await asyncio.sleep(delay)
            await self.send(tag, payload)

        t = asyncio.create_task(go())
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _read(self) -> None:
        async for m in self.client.messages:
            topic, payload = str(m.topic), bytes(m.payload)
            if topic == self.topics.status:
                self.status.append(payload.decode())
                continue
            if topic.endswith("/out/metrics"):
                continue
            for b in stream_bodies(topic, json.loads(payload)):
                self._on_message(topic, b)

    def _on_message(self, topic: str, body: dict) -> None:
        seq = body.get("seq")
        if seq is None:
            return
        if seq in self.by_seq:  # published again after a restart: must be the very same event
            if self.by_seq[seq] != (topic, body):
                self.problems.append(f"seq {seq} published as {self.by_seq[seq]} and as {(topic, body)}")
            self.resent += 1
            return
        self.by_seq[seq] = (topic, body)
        self._on_event(body)

    def _on_event(self, body: dict) -> None:
        kind, c = body.get("type"), body.get("contact")
        if kind == "contact.offered":
            key = (c, body["offer"])
            if key in self.offers:
                self.problems.append(f"offer {key} decided twice: seq {self.offers[key]} and {body['seq']}")
            self.offers[key] = body["seq"]
            self.decisions.append(body)
            if self.answer and (key[1] > 1 or self.rng.random() < 0.85):  # some first offers ring out
                self.later(self.rng.uniform(0, 0.05), "offer.accepted",
                           {"id": f"acc-{c}-{key[1]}", "contact": c, "agent": body["agent"]})
        elif kind == "contact.connected":
            self.connected[c] += 1
            if self.answer:
                self.later(self.rng.uniform(0, 0.1), "contact.ended", {"id": f"end-{c}", "contact": c})
        elif kind in ("contact.completed", "contact.abandoned") or (
                kind == "contact.overflowed" and body["to_queue"] is None):
            self.ended[c] += 1

    async def until(self, cond: Callable[[], bool], what: str, timeout: float = 15.0,
                    router: Router | None = None) -> None:
        end = time.monotonic() + timeout
        while not cond():
            assert not self.problems, self.problems
            assert not self.reader.done(), f"the telephony reader died: {self.reader!r}"
            if time.monotonic() > end:
                raise AssertionError(f"timed out waiting for {what}" + (f"\n{router.logs()}" if router else ""))
            await asyncio.sleep(0.01)

    async def online(self, router: Router) -> None:
        """Wait until the daemon just started says "online" (retained status)."""
        mark = len(self.status)
        await self.until(lambda: "online" in self.status[mark:] or router.proc.poll() is not None,
                         "the daemon to come online", router=router)
        assert router.proc.poll() is None, f"the daemon exited with {router.proc.returncode}\n{router.logs()}"

    def offers_of(self, contact: str) -> list[dict]:
        return [d for d in self.decisions if d["contact"] == contact]


async def test_killed_between_receipt_and_journal_the_event_is_redelivered_and_applied_once(tmp_path, mosquitto):
    router = Router(tmp_path, mosquitto, CONFIG)
    async with Telephony(mosquitto) as tel:
        router.start(ACD_TEST_CRASH_BEFORE_JOURNAL="arr-c2")
        await tel.online(router)
        await tel.send("contact.arrived", {"id": "arr-c1", "contact": "c1", "queue": "support"})
        await tel.until(lambda: tel.offers_of("c1"), "the decision for c1", router=router)

        await tel.send("contact.arrived", {"id": "arr-c2", "contact": "c2", "queue": "support"})
        assert router.proc.wait(10) == -signal.SIGKILL  # the hook fired: c2 was received ...
        ids = journal_ids(router.journal)
        assert ids == ["arr-c1"]  # ... and not journalled
        assert tel.offers_of("c2") == []

        router.start()  # same journal, same client id: the broker still holds c2, unacknowledged
        await tel.online(router)
        await tel.until(lambda: tel.offers_of("c2"), "c2 redelivered by the broker and decided", router=router)
        (d2,) = tel.offers_of("c2")  # nobody published c2 again: the broker redelivered it
        (d1,) = tel.offers_of("c1")
        assert d2["offer"] == 1 and d2["agent"] != d1["agent"] and d2["seq"] > d1["seq"]

        # a resend by the telephony side (same id) is a duplicate: not applied again
        await tel.send("contact.arrived", {"id": "arr-c2", "contact": "c2", "queue": "support"})
        for c, d in (("c1", d1), ("c2", d2)):
            await tel.send("offer.accepted", {"id": f"acc-{c}", "contact": c, "agent": d["agent"]})
            await tel.send("contact.ended", {"id": f"end-{c}", "contact": c})
        await tel.until(lambda: set(tel.ended) == {"c1", "c2"}, "both lifecycles to complete", router=router)
        await asyncio.sleep(0.5)  # room for any duplicate to show up
        assert router.stop() == 0

    assert tel.problems == []
    assert tel.offers_of("c2") == [d2]  # decided once, with one seq
    assert tel.connected == {"c1": 1, "c2": 1} and tel.ended == {"c1": 1, "c2": 1}
    assert sorted(tel.by_seq) == list(range(1, max(tel.by_seq) + 1))
    ids = journal_ids(router.journal)
    assert ids.count("arr-c2") == 1 and ids.count("arr-c1") == 1  # applied exactly once
    assert "Traceback" not in router.logs()


@pytest.mark.parametrize("fsync", ["batch", "always"])
async def test_kill_9_with_traffic_in_flight_every_contact_ends_exactly_once(tmp_path, mosquitto, fsync):
    n = 40
    router = Router(tmp_path, mosquitto, TRAFFIC_CONFIG, fsync)
    rng = random.Random(7)
    async with Telephony(mosquitto, answer=True) as tel:

        async def arrivals(ids: range) -> None:
            for i in ids:
                await tel.send("contact.arrived", {"id": f"arr-{i}", "contact": f"c{i}", "queue": "q"})
                if rng.random() < 0.1:
                    tel.later(rng.uniform(0.01, 0.3), "contact.abandoned", {"id": f"ab-{i}", "contact": f"c{i}"})
                await asyncio.sleep(rng.uniform(0.005, 0.03))

        router.start()
        await tel.online(router)
        await arrivals(range(0, 15))
        await asyncio.sleep(0.05)
        router.kill()  # mid-traffic: offers ringing, calls connected, answers and hang-ups on their way
        assert len(tel.ended) < 15
        await arrivals(range(15, 18))  # published while the daemon is down: the broker queues them
        router.start()
        await tel.online(router)
        await arrivals(range(18, 30))
        await asyncio.sleep(0.05)
        router.kill()  # and once more
        router.start()
        await tel.online(router)
        await arrivals(range(30, n))
        contacts = {f"c{i}" for i in range(n)}
        try:
            await tel.until(lambda: set(tel.ended) == contacts, "every contact to end", timeout=30)
        except AssertionError:
            stuck = sorted(contacts - set(tel.ended))
            raise AssertionError(f"never ended: {stuck}\n{router.logs()}") from None
        await asyncio.sleep(0.3)  # room for any duplicate to show up
        assert router.stop() == 0

    assert tel.problems == []  # no offer decided twice, no seq reused for another message
    assert all(v == 1 for v in tel.ended.values()), tel.ended  # every contact ends exactly once
    assert all(v == 1 for v in tel.connected.values()), tel.connected  # none is assigned twice
    assert sorted(tel.by_seq) == list(range(1, max(tel.by_seq) + 1))  # no decision number lost
    assert "Traceback" not in router.logs()
    ids = journal_ids(router.journal)
    assert len(ids) == len(set(ids))  # no inbound event applied twice

    d = Daemon(router.cfg, InProcessBus(), router.journal, Options(watch_config=False))
    await d.start()
    snap = d.state.engine.snapshot()
    await d.stop()
    assert all(q["waiting"] == 0 for q in snap["queues"].values())  # no waiting contact lost
    assert all(a["contacts"] == [] for a in snap["agents"].values())


async def test_a_batch_of_publishes_survives_a_broker_restart_complete_and_in_order(mosquitto_factory, caplog):
    """``MqttBus.publish_batch`` (the daemon's pipelined publishing): the
    broker stops in the middle of a batch and comes back; the batch resumes
    on the new connection from the first message not acknowledged, so every
    message arrives, in order (a message whose PUBACK died with the old
    connection may arrive twice: at-least-once)."""
    import logging

    from acd.bus.mqtt import MqttBus

    # Mosquitto's default max_queued_messages (1000 per client) would drop
    # what the observer has not taken yet: not what is tested here
    mosquitto = mosquitto_factory("max_queued_messages 100000")
    caplog.set_level(logging.INFO, logger="acd.bus.mqtt")
    topics = Topics("pb")
    fast = {"max_backoff": 0.3, "keepalive": 5}
    n = 5000
    seen: list[int] = []
    async with MqttBus(mosquitto.url, topics, client_id="pb-observer", subscribe=f"{topics.prefix}/out/#",
                       presence=False, max_unacked=1000, **fast) as observer, \
            MqttBus(mosquitto.url, topics, client_id="pb-router", **fast) as router:

        async def observe() -> None:
            async for m in observer.messages():
                seen.append(int(m.payload))
                await m.ack()

        reader = asyncio.create_task(observe())
        batch = asyncio.create_task(router.publish_batch([(topics.decision, b"%d" % i, False) for i in range(n)]))
        await asyncio.sleep(0.02)
        assert not batch.done()
        mosquitto.stop()  # graceful: the broker saves its sessions (persistence true)
        mosquitto.start()
        await asyncio.wait_for(batch, 30)
        end = time.monotonic() + 30
        while len(set(seen)) < n and time.monotonic() < end:
            await asyncio.sleep(0.05)
        reader.cancel()
    assert set(seen) == set(range(n))
    firsts = list(dict.fromkeys(seen))  # first arrival of each message
    assert firsts == sorted(firsts)  # in order
    assert "publishes interrupted" in caplog.text  # the resume path did run
