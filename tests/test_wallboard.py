"""The live wallboard (``acd.wallboard``): its data against the routing
engine's own report, "today" in a time zone, the settled service level, the
event stream's protocol -- and a real headless Chromium against the page
served by a daemon: fed by a live replay over a real Mosquitto the figures
on the page match ``/wallboard.json`` and ``/state`` and follow events within
2 s; a screenshot (``docs/wallboard.png``); a daemon restart on the same
journal and port, which the page rides out by itself.

Chromium is driven over the DevTools protocol on ``--remote-debugging-pipe``
(NUL-separated JSON on file descriptors 3 and 4): no WebSocket client, no
driver, no new dependency.  The browser tests are skipped when Chromium is
not installed (``.ci/run`` installs Debian's ``chromium``).

Most scenarios run in virtual time: ``VirtualCentre`` is the telephony side
of a daemon on the in-process bus with a ``ManualClock`` (it answers offers,
hangs up after the handle time, abandons after the patience), so a morning
of traffic takes a second and the figures are exact.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import functools
import heapq
import json
import math
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

import msgspec
import pytest
import structlog

from acd.bus import Topics
from acd.bus.inproc import InProcessBus
from acd.core.events import (
    AgentLogout, AgentNotReady, AgentReady, ContactArrived, ContactEnded, CustomerAbandoned, OfferAccepted,
    Outbound,
)
from acd.core.spec import spec_from_obj
from acd.daemon import Daemon, ManualClock, Options
from acd.scenario import AgentLine, ContactLine, Scenario
from acd.wallboard import AGENT_STATES, PAGE, Wallboard, resolve_tz

from helpers import png_pixels
from conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
DOCS_PNG = ROOT / "docs" / "wallboard.png"
T0 = 1_767_600_000.0  # 2026-01-05T08:00:00Z (a Monday), the ManualClock's default start

SPEC = spec_from_obj({
    "queues": [
        {"name": "support", "skills": {"s": 1}, "service_level": {"threshold": 20, "target": 0.8}, "wrap_up": 2},
        {"name": "sales", "skills": {"x": 1}, "service_level": {"threshold": 15, "target": 0.85}},
    ],
    "agents": [
        {"group": "a", "count": 3, "skills": {"s": 1}},
        {"group": "b", "count": 2, "skills": {"x": 1, "s": 1}},
    ],
})

#: for live replays: the daemon's durations are wall-clock seconds, the player's scenario ones are scaled
LIVE_SPEC = spec_from_obj({**msgspec.to_builtins(SPEC), "queues": [
    {**q, "wrap_up": 0} for q in msgspec.to_builtins(SPEC)["queues"]]})

_decode_out = msgspec.json.Decoder(Outbound)
_decode_stream = msgspec.json.Decoder(list[Outbound])


def bounded(seconds: float):
    """Fail a test that runs longer than ``seconds`` (cancelling it, so its
    ``async with`` blocks still stop the daemon and the browser)."""
    def deco(fn):
        @functools.wraps(fn)
        async def run(*args: Any, **kw: Any) -> Any:
            return await asyncio.wait_for(fn(*args, **kw), seconds)
        return run
    return deco


# --- HTTP --------------------------------------------------------------------------------------------------------


async def get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: acd\r\n\r\n".encode())
    await writer.drain()
    resp = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdrs = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split()[1]), hdrs, body


async def get_json(port: int, path: str) -> Any:
    status, _, body = await get(port, path)
    assert status == 200, body
    return json.loads(body)


class SseClient:
    """A raw event-stream reader: ``(event, id, data)`` per message."""

    def __init__(self, port: int, path: str = "/wallboard/events"):
        self.port, self.path = port, path

    async def __aenter__(self) -> "SseClient":
        self.reader, self.writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 5)
        self.writer.write(f"GET {self.path} HTTP/1.1\r\nHost: acd\r\n\r\n".encode())
        await self.writer.drain()
        self.head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), timeout)
        msg: dict[str, Any] = {}
        for line in raw.decode().splitlines():
            if not line:
                continue
            field, _, value = line.partition(": ")
            msg[field] = value
        return msg


# --- the telephony side, in virtual time --------------------------------------------------------------------------


class VirtualCentre:
    """A daemon on the in-process bus with a ``ManualClock`` and the
    telephony side around it: plays ``(time, line)`` items, answers offers
    after ``answer_delay``, hangs up after the handle time, abandons after
    the patience.  Time only moves in ``run``."""

    def __init__(self, config: Any, *, start: float = T0, answer_delay: float = 2.0, journal: Path | None = None,
                 **opts: Any):
        self.clock = ManualClock(start)
        self.bus = InProcessBus()
        options = Options(**{"watch_config": False, "fsync": "never", "http": "127.0.0.1:0", **opts})
        self.daemon = Daemon(config, self.bus, journal, options, clock=self.clock)
        self.sub = self.bus.subscribe(f"{self.daemon.topics.prefix}/out/#")
        self.answer_delay = answer_delay
        self.heap: list[tuple[float, int, str, Any]] = []
        self.n = 0
        self.handle: dict[str, float] = {}
        self.open: set[str] = set()
        self.connected: set[str] = set()

    async def __aenter__(self) -> "VirtualCentre":
        await self.daemon.start()
        await self.settle()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.daemon.status == "running":
            await self.daemon.stop()

    @property
    def port(self) -> int:
        return self.daemon.http.port

    @property
    def engine(self) -> Any:
        return self.daemon.state.engine

    def later(self, t: float, kind: str, data: Any) -> None:
        self.n += 1
        heapq.heappush(self.heap, (t, self.n, kind, data))

    async def settle(self) -> None:
        d = self.daemon
        for _ in range(10_000):
            await asyncio.sleep(0)
            if not d._outbox:
                break
        while not self.sub.empty():
            msg = self.sub.get_nowait()
            if msg.topic.endswith("/out/decision"):
                self.react(_decode_out.decode(msg.payload))
            elif msg.topic.endswith("/out/event"):
                for e in _decode_stream.decode(msg.payload):
                    self.react(e)

    def react(self, e: Any) -> None:
        tag = type(e).__struct_config__.tag
        t = self.clock.time()
        if tag == "contact.offered" and not e.auto_answer:
            self.later(t + self.answer_delay, "accept", (e.contact, e.agent))
        elif tag == "contact.connected" and e.contact not in self.connected:
            self.connected.add(e.contact)
            self.later(t + self.handle.get(e.contact, 60.0), "end", e.contact)
        elif tag in ("contact.abandoned", "contact.completed") or (tag == "contact.overflowed" and e.to_queue is None):
            self.open.discard(e.contact)

    def apply(self, ev: Any) -> list:
        return self.daemon.apply(ev)

    def line(self, line: Any) -> None:
        t = self.clock.time()
        if isinstance(line, AgentLine):
            ev = {"login": lambda: AgentReady(agent=line.agent), "ready": lambda: AgentReady(agent=line.agent),
                  "logout": lambda: AgentLogout(agent=line.agent),
                  "not_ready": lambda: AgentNotReady(agent=line.agent, reason=line.reason or "break")}[line.state]()
            self.apply(ev)
            return
        self.handle[line.id] = line.handle_time
        self.open.add(line.id)
        self.apply(ContactArrived(contact=line.id, queue=line.queue, channel=line.channel, priority=line.priority,
                                  skills=line.skills, attributes=line.attributes))
        if line.patience is not None:
            self.later(t + line.patience, "abandon", line.id)

    def act(self, kind: str, data: Any) -> None:
        if kind == "accept":
            contact, agent = data
            if contact in self.open and contact not in self.connected:
                self.apply(OfferAccepted(contact=contact, agent=agent))
        elif kind == "end":
            if data in self.open:
                self.apply(ContactEnded(contact=data))
        elif kind == "abandon":
            if data in self.open and data not in self.connected:
                self.apply(CustomerAbandoned(contact=data))

    async def run(self, items: Iterable[tuple[float, Any]], until: float) -> None:
        """Play ``items`` and everything they cause up to time ``until``."""
        it = iter(items)
        nxt = next(it, None)
        clock = self.clock
        while True:
            cands = [x for x in (nxt[0] if nxt is not None else None, self.heap[0][0] if self.heap else None,
                                 clock.next_timer) if x is not None]
            t = min(cands) if cands else None
            if t is None or t > until:
                break
            clock.set(max(t, clock.time()))
            if nxt is not None and nxt[0] <= t:
                self.line(nxt[1])
                nxt = next(it, None)
            elif self.heap and self.heap[0][0] <= t:
                _, _, kind, data = heapq.heappop(self.heap)
                self.act(kind, data)
            await self.settle()
        clock.set(max(until, clock.time()))
        await self.settle()


def contacts(n: int, every: float, queue: str = "support", handle: float = 50.0, start: float = T0,
             patience: float | None = None, prefix: str = "c") -> list[tuple[float, ContactLine]]:
    return [(start + i * every, ContactLine(id=f"{prefix}{i}", arrival=i * every, queue=queue, handle_time=handle,
                                            patience=patience)) for i in range(n)]


def merge(*streams: list) -> list:
    return sorted((x for s in streams for x in s), key=lambda x: x[0])


# --- the data ----------------------------------------------------------------------------------------------------


@bounded(60)
async def test_snapshot_figures_are_the_engines_report(tmp_path):
    """A morning in virtual time; once every contact is done, today's figures
    on the wallboard are the engine's own KPI report, and waiting and agent
    states are /state's."""
    traffic = merge(contacts(150, 15.0, "support", 70.0, patience=30.0),
                    contacts(50, 60.0, "sales", 120.0, prefix="s", patience=25.0),
                    contacts(3, 60.0, "support", 30.0, start=T0 + 2 * 3600 + 50 * 60, prefix="late"))
    async with VirtualCentre(SPEC) as vc:
        await vc.run(traffic, T0 + 3 * 3600 - 60)
        assert not vc.engine.contacts
        wb = await get_json(vc.port, "/wallboard.json")
        state = await get_json(vc.port, "/state")
        rep = vc.engine.report(intervals=False)
    assert wb["kind"] == "acd.wallboard" and wb["tz"] == "UTC" and wb["today"]["date"] == "2026-01-05"
    assert wb["seq"] == vc.daemon.state.seq and wb["state_time"] == state["time"]
    assert [q["name"] for q in wb["queues"]] == ["support", "sales"]
    for q in wb["queues"]:
        r = rep["queues"][q["name"]]
        for k in ("offered", "answered", "abandoned", "overflowed", "closed", "asa", "abandon_rate", "service_level",
                  "sl_met"):
            assert q["today"][k] == r[k], (q["name"], k)
        assert q["today"]["pending"] == 0 and q["today"]["answered"] > 0 and q["today"]["abandoned"] > 0
        assert (q["sl_threshold"], q["sl_target"]) == (r["sl_threshold"], r["sl_target"])
        assert q["waiting"] == state["queues"][q["name"]]["waiting"] == 0
    assert wb["total"]["today"]["offered"] == rep["total"]["offered"] == 203
    assert wb["total"]["today"]["answered"] == rep["total"]["answered"]
    for g in wb["groups"]:
        assert g["occupancy"]["today"] == rep["groups"][g["name"]]["occupancy"] > 0
    by_state = Counter(a["state"] for a in state["agents"].values())
    assert {s: n for s, n in wb["agents"].items() if n} == dict(by_state)
    assert set(wb["agents"]) == set(AGENT_STATES)
    # this interval: the report's last interval row
    rows = vc.engine.report()["intervals"]
    last = next(r for r in rows if r["start"] == wb["interval"]["start"])
    assert wb["queues"][0]["interval"]["answered"] == 3
    for q in wb["queues"]:
        want = last["queues"].get(q["name"])
        if want is None:
            assert q["interval"]["offered"] == 0 and q["interval"]["service_level"] is None
        else:
            assert q["interval"]["offered"] == want["offered"]
            assert q["interval"]["service_level"] == want["service_level"]
    for g in wb["groups"]:
        assert g["occupancy"]["interval"] == (last["groups"].get(g["name"]) or {}).get("occupancy")


@bounded(60)
async def test_today_is_the_day_of_the_chosen_time_zone(tmp_path):
    """Kolkata is UTC+5:30: 18:30 UTC is its midnight.  A contact before and
    one after: UTC's today has both, Kolkata's only the second (and so has
    this interval), New York's both; ``?tz=`` picks the zone per display."""
    start = T0 + 10 * 3600  # 18:00 UTC = 23:30 in Kolkata
    traffic = [(start + 600, ContactLine(id="before", arrival=600, queue="support", handle_time=30)),
               (start + 35 * 60, ContactLine(id="after", arrival=35 * 60, queue="support", handle_time=30))]
    async with VirtualCentre(SPEC, start=start, wallboard_tz="Asia/Kolkata") as vc:
        await vc.run(traffic, start + 40 * 60)
        port = vc.port
        kol = await get_json(port, "/wallboard.json")
        utc = await get_json(port, "/wallboard.json?tz=UTC")
        ny = await get_json(port, "/wallboard.json?tz=America/New_York")
        status, _, body = await get(port, "/wallboard.json?tz=Mars/Olympus_Mons")
        assert status == 400 and "unknown time zone" in json.loads(body)["detail"]
        status, _, _ = await get(port, "/wallboard/events?tz=..%2Fetc")
        assert status == 400
    assert (kol["tz"], kol["today"]["date"], kol["today"]["start"]) == ("Asia/Kolkata", "2026-01-06", start + 1800)
    assert (utc["today"]["date"], ny["today"]["date"]) == ("2026-01-05", "2026-01-05")
    answered = {b["tz"]: b["queues"][0]["today"]["answered"] for b in (kol, utc, ny)}
    assert answered == {"Asia/Kolkata": 1, "UTC": 2, "America/New_York": 2}
    assert kol["interval"] == utc["interval"] == {"start": start + 1800, "end": start + 2700, "length": 900.0}
    assert kol["queues"][0]["interval"]["answered"] == 1
    # a day with a DST change is 23 or 25 hours long, and midnight stays midnight
    _, tz = resolve_tz("Europe/Warsaw")
    day, a, b = Wallboard.day_of(1_774_742_400.0, tz)  # 2026-03-29, the spring-forward Sunday
    assert (day, b - a) == ("2026-03-29", 23 * 3600)
    with pytest.raises(ValueError, match="unknown time zone"):
        resolve_tz("Not/AZone")


@bounded(60)
async def test_service_level_counts_a_contact_once_it_is_decided(tmp_path):
    """A contact still waiting within the threshold may yet be answered in
    time: it is ``pending``, in neither side of the service level.  Past the
    threshold it counts as a miss even before it is answered."""
    spec = spec_from_obj({"queues": [{"name": "q", "service_level": {"threshold": 20, "target": 0.8}}],
                          "agents": [{"group": "a", "count": 1, "initial": "not_ready"}]})
    async with VirtualCentre(spec) as vc:
        await vc.run([(T0 + 1, ContactLine(id="c1", arrival=1, queue="q", handle_time=30))], T0 + 10)
        q = (await get_json(vc.port, "/wallboard.json"))["queues"][0]
        assert (q["waiting"], q["today"]["pending"], q["today"]["service_level"], q["today"]["sl_met"]) == \
            (1, 1, None, None)
        assert q["longest_wait"] == pytest.approx(9.0) and q["oldest"] == T0 + 1
        vc.clock.set(T0 + 30)  # no event: only time passes
        q = (await get_json(vc.port, "/wallboard.json"))["queues"][0]
        assert (q["today"]["pending"], q["today"]["service_level"], q["today"]["sl_met"]) == (0, 0.0, False)
        assert q["longest_wait"] == pytest.approx(29.0)
        vc.apply(AgentReady(agent="a-1"))
        await vc.settle()
        await vc.run([(T0 + 60, ContactLine(id="c2", arrival=60, queue="q", handle_time=30))], T0 + 200)
        q = (await get_json(vc.port, "/wallboard.json"))["queues"][0]
        assert (q["today"]["answered"], q["today"]["answered_in_sl"], q["today"]["service_level"]) == (2, 1, 0.5)
        assert q["waiting"] == 0 and q["oldest"] is None and q["longest_wait"] == 0.0


@bounded(60)
async def test_event_stream_protocol(tmp_path, monkeypatch):
    """First a reconnection delay and a full snapshot; a burst of events gives
    at most 4 snapshots a second, the last one complete; a heartbeat when
    quiet; time passing a threshold or an interval edge is a change too; the
    stream ends when the daemon stops."""
    import acd.wallboard as wallboard

    monkeypatch.setattr(wallboard, "HEARTBEAT", 0.6)
    async with VirtualCentre(SPEC) as vc:
        port = vc.port
        status, hdrs, _ = await get(port, "/wallboard/events", "HEAD")
        assert status == 200 and hdrs["content-type"] == "text/event-stream"
        async with SseClient(port) as sse:
            assert "200 OK" in sse.head and "text/event-stream" in sse.head
            assert await sse.next() == {"retry": "1000"}
            first = await sse.next()
            assert first["event"] == "snapshot" and int(first["id"]) == vc.daemon.state.seq
            snap = json.loads(first["data"])
            api = await get_json(port, "/wallboard.json")
            for k in ("now", "queues", "total"):  # the clock-dependent parts aside, the same JSON
                snap.pop(k), api.pop(k)
            assert snap == api
            # a burst: 60 arrivals over ~1.2 s of real time
            loop = asyncio.get_running_loop()
            got: list[tuple[float, dict]] = []

            async def collect(until: float) -> None:
                while loop.time() < until:
                    try:
                        m = await sse.next(max(0.01, until - loop.time()))
                    except asyncio.TimeoutError:
                        return
                    got.append((loop.time(), m))

            t0 = loop.time()
            reader = asyncio.create_task(collect(t0 + 2.0))
            for i in range(60):
                vc.apply(ContactArrived(contact=f"b{i}", queue="sales"))
                await asyncio.sleep(0.02)
            await reader
            snaps = [(t, m) for t, m in got if m.get("event") == "snapshot"]
            assert 2 <= len(snaps) <= 4 * 2.0 + 1
            gaps = [b[0] - a[0] for a, b in zip(snaps, snaps[1:])]
            assert min(gaps) >= 0.2
            last = json.loads(snaps[-1][1]["data"])
            assert sum(q["today"]["offered"] for q in last["queues"]) == 60 and last["seq"] == vc.daemon.state.seq
            # quiet: heartbeats
            hb = await sse.next(3)
            assert hb["event"] == "heartbeat"
            beat = json.loads(hb["data"])
            assert beat["seq"] == last["seq"] and beat["boot"] == last["boot"]
            # time alone: contacts waiting pass the SL threshold -> a new snapshot
            vc.clock.set(vc.clock.time() + 16)
            for _ in range(5):
                m = await sse.next(3)
                if m.get("event") == "snapshot":
                    break
            else:
                raise AssertionError("no snapshot after the threshold passed")
            sales = json.loads(m["data"])["queues"][1]
            assert sales["today"]["pending"] < 60 and sales["today"]["sl_met"] is False

            async def next_snapshot() -> dict:
                for _ in range(10):
                    m = await sse.next(3)
                    if m.get("event") == "snapshot":
                        return json.loads(m["data"])
                raise AssertionError("no snapshot")

            # a new interval; drain on (neither publishes anything a wallboard would see)
            edge = (math.floor(vc.clock.time() / 900) + 1) * 900
            vc.clock.set(edge + 1)
            snap = await next_snapshot()
            while snap["interval"]["start"] != edge:
                snap = await next_snapshot()
            assert snap["queues"][1]["interval"]["offered"] == 0 and snap["queues"][1]["waiting"] > 0
            vc.daemon.set_drain(True)
            snap = await next_snapshot()
            assert snap["status"] == "draining"
            await vc.daemon.stop()
            with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
                for _ in range(10):
                    await sse.next(3)


@bounded(60)
async def test_page_route_is_self_contained(tmp_path):
    async with VirtualCentre(SPEC) as vc:
        status, hdrs, body = await get(vc.port, "/")
        assert status == 200 and hdrs["content-type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in hdrs["content-security-policy"]
        assert body == PAGE.encode()
        status, hdrs, body = await get(vc.port, "/", "HEAD")
        assert status == 200 and body == b""
        # the old API is still there
        assert (await get(vc.port, "/state"))[0] == 200
    html = PAGE
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html and "url(" not in html and "<link" not in html
    assert html.count("<script>") == 1 and "<script src" not in html
    assert "/wallboard.json" in html and "/wallboard/events" in html and "EventSource" in html


def test_cli_rejects_an_unknown_wallboard_zone(tmp_path, capsys):
    from acd.daemon import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text("queues: [{name: q}]\nagents: [{group: a, count: 1}]\n")
    try:
        assert main(["--config", str(cfg), "--wallboard-tz", "Nowhere/Land"]) == 2
    finally:
        structlog.reset_defaults()  # run_command configured logging onto the captured stderr
    assert "--wallboard-tz" in capsys.readouterr().err
    assert resolve_tz("utc")[0] == "UTC" and resolve_tz("Europe/Warsaw")[0] == "Europe/Warsaw"


# --- a real browser -----------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for cand in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if cand and os.path.exists(cand):
            return cand
    return None


class Chromium:
    """Headless Chromium driven over the DevTools protocol on
    ``--remote-debugging-pipe``: the browser reads commands on fd 3 and
    writes answers and events on fd 4, one JSON message per NUL."""

    def __init__(self, binary: str, profile: Path, width: int = 1920, height: int = 1080):
        self.binary, self.profile, self.width, self.height = binary, profile, width, height
        self.proc: subprocess.Popen[bytes] | None = None
        self._n = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "Chromium":
        r_in, w_in = os.pipe()    # we write, chromium reads on fd 3
        r_out, w_out = os.pipe()  # chromium writes on fd 4, we read

        def child_fds() -> None:  # in the child, before exec: the pipe ends to fds 3 and 4
            a = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.profile.mkdir(parents=True, exist_ok=True)
        cmd = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               "--disable-extensions", "--mute-audio", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
               f"--window-size={self.width},{self.height}", f"--user-data-dir={self.profile}",
               "--remote-debugging-pipe", "about:blank"]
        self._stderr = open(self.profile / "stderr.log", "wb")
        self.proc = subprocess.Popen(cmd, pass_fds=(3, 4), preexec_fn=child_fds, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        os.close(r_in)
        os.close(w_out)
        loop = asyncio.get_running_loop()
        self._reader = asyncio.StreamReader(limit=1 << 27)
        self._rt, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(self._reader),
                                                  os.fdopen(r_out, "rb", 0))
        self._wt, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(w_in, "wb", 0))
        self._task = asyncio.create_task(self._read())
        try:
            await self.send("Browser.getVersion", timeout=30)
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        try:
            await self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            await asyncio.wait_for(asyncio.to_thread(self.proc.wait), 10)
        except asyncio.TimeoutError:
            self.proc.kill()
            self.proc.wait(5)
        if self._task is not None:
            self._task.cancel()
        self._wt.close()
        self._rt.close()
        self._stderr.close()
        self.proc = None

    async def _read(self) -> None:
        try:
            while True:
                raw = await self._reader.readuntil(b"\0")
                msg = json.loads(raw[:-1])
                fut = self._pending.pop(msg["id"], None) if "id" in msg else None
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                else:
                    self.events.append(msg)
        except (asyncio.IncompleteReadError, ConnectionError):
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("chromium closed its end of the pipe"))

    async def send(self, method: str, params: dict | None = None, session: str | None = None,
                   timeout: float = 10.0) -> dict[str, Any]:
        self._n += 1
        n = self._n
        msg: dict[str, Any] = {"id": n, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        fut = asyncio.get_running_loop().create_future()
        self._pending[n] = fut
        self._wt.write(json.dumps(msg).encode() + b"\0")
        res = await asyncio.wait_for(fut, timeout)
        if "error" in res:
            raise RuntimeError(f"{method}: {res['error']}")
        return res.get("result", {})

    async def open(self, url: str) -> "Tab":
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        tab = Tab(self, session)
        for domain in ("Page", "Runtime", "Log"):
            await tab.send(f"{domain}.enable")
        await tab.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                             "deviceScaleFactor": 1, "mobile": False})
        await tab.send("Page.navigate", {"url": url})
        return tab


class Tab:
    def __init__(self, browser: Chromium, session: str):
        self.browser, self.session = browser, session

    async def send(self, method: str, params: dict | None = None, timeout: float = 10.0) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session, timeout)

    async def eval(self, expr: str, timeout: float = 10.0) -> Any:
        res = await self.send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True},
                              timeout)
        if "exceptionDetails" in res:
            raise RuntimeError(f"{expr[:80]}: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait_for(self, expr: str, timeout: float = 10.0) -> Any:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                v = await self.eval(expr)
            except RuntimeError as exc:  # the page is still loading (no body yet...)
                v, why = None, exc
            else:
                why = None
            if v:
                return v
            if loop.time() > end:
                raise AssertionError(f"timed out after {timeout} s waiting for {expr}" + (f": {why}" if why else ""))
            await asyncio.sleep(0.03)

    async def figures(self) -> dict[str, Any]:
        return await self.eval(READ_PAGE)

    async def screenshot(self) -> bytes:
        res = await self.send("Page.captureScreenshot", {"format": "png"}, timeout=30)
        return base64.b64decode(res["data"])

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and failed loads on this page."""
        out = []
        for e in self.browser.events:
            if e.get("sessionId") != self.session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append(json.dumps(p["exceptionDetails"])[:300])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                out.append(json.dumps(p.get("args"))[:300])
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out.append(p["entry"].get("text", "")[:300])
        return out


#: What a viewer sees: the text of every figure on the page.
READ_PAGE = """(() => {
  const S = %s;
  const txt = (el, f) => { const x = el.querySelector('[data-f="' + f + '"]'); return x ? x.textContent : null; };
  const out = {seq: +document.body.dataset.seq, boot: document.body.dataset.boot || null,
               conn: document.getElementById('conn').className, queues: {}, groups: {},
               total: {waiting: document.getElementById('t-waiting').textContent,
                       answered: document.getElementById('t-answered').textContent,
                       abandoned: document.getElementById('t-abandoned').textContent,
                       longest: document.getElementById('t-longest').textContent}};
  for (const el of document.querySelectorAll('[data-queue]')) {
    const sym = k => { const s = el.querySelector('[data-sl="' + k + '"] .sym'); return s ? s.textContent : ''; };
    out.queues[el.dataset.queue] = {
      waiting: txt(el, 'waiting'), longest: txt(el, 'longest'), answered: txt(el, 'answered'),
      abandoned: txt(el, 'abandoned'), sl_today: txt(el, 'sl-today-value'), sl_interval: txt(el, 'sl-interval-value'),
      sl_today_sym: sym('today'), sl_interval_sym: sym('interval'),
      sl_today_class: el.querySelector('[data-sl="today"]').className,
      agents: Object.fromEntries(S.map(s => [s, txt(el, 'agents-' + s)]))};
  }
  for (const el of document.querySelectorAll('[data-group]')) {
    out.groups[el.dataset.group] = {occ_today: txt(el, 'occ-today'), occ_interval: txt(el, 'occ-interval'),
      agents: Object.fromEntries(S.map(s => [s, txt(el, 'agents-' + s)]))};
  }
  return out;
})()""" % json.dumps(list(AGENT_STATES))


def fmt_int(n: int | None) -> str:
    return "\u2014" if n is None else f"{n:,}"


def fmt_pct(x: float | None) -> str:
    return "\u2014" if x is None else f"{math.floor(x * 100 + 1e-9)}%"


def sl_symbol(met: bool | None) -> str:
    return "" if met is None else "\u2713" if met else "\u2717"


def parse_wait(text: str) -> int:
    parts = [int(p) for p in text.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def expected_page(wb: dict[str, Any]) -> dict[str, Any]:
    """The texts the page must show for a snapshot (longest waits aside: they tick)."""
    return {
        "queues": {q["name"]: {
            "waiting": fmt_int(q["waiting"]), "answered": fmt_int(q["today"]["answered"]),
            "abandoned": fmt_int(q["today"]["abandoned"]),
            "sl_today": fmt_pct(q["today"]["service_level"]), "sl_interval": fmt_pct(q["interval"]["service_level"]),
            "sl_today_sym": sl_symbol(q["today"]["sl_met"]), "sl_interval_sym": sl_symbol(q["interval"]["sl_met"]),
            "agents": {s: fmt_int(n) for s, n in q["agents"].items()},
        } for q in wb["queues"]},
        "groups": {g["name"]: {
            "occ_today": fmt_pct(g["occupancy"]["today"]), "occ_interval": fmt_pct(g["occupancy"]["interval"]),
            "agents": {s: fmt_int(n) for s, n in g["agents"].items()},
        } for g in wb["groups"]},
        "total": {"waiting": fmt_int(wb["total"]["waiting"]), "answered": fmt_int(wb["total"]["today"]["answered"]),
                  "abandoned": fmt_int(wb["total"]["today"]["abandoned"])},
    }


def shown(page: dict[str, Any]) -> dict[str, Any]:
    """The page's figures in the shape of ``expected_page``."""
    return {
        "queues": {n: {k: v for k, v in q.items() if k not in ("longest", "sl_today_class")}
                   for n, q in page["queues"].items()},
        "groups": page["groups"],
        "total": {k: v for k, v in page["total"].items() if k != "longest"},
    }


def check_against_state(wb: dict[str, Any], state: dict[str, Any]) -> None:
    """``/wallboard.json`` against ``/state``, taken with no event between."""
    assert wb["state_time"] == state["time"]
    for q in wb["queues"]:
        s = state["queues"][q["name"]]
        assert q["waiting"] == s["waiting"]
        if q["waiting"]:  # both from the oldest arrival: /state at the state's time, ours at now
            assert q["longest_wait"] == pytest.approx(s["longest_wait"] + wb["now"] - state["time"], abs=0.01)
    by_state = Counter(a["state"] for a in state["agents"].values())
    assert {s: n for s, n in wb["agents"].items() if n} == dict(by_state)
    for g in wb["groups"]:
        members = Counter(a["state"] for aid, a in state["agents"].items() if aid.rsplit("-", 1)[0] == g["name"])
        assert {s: n for s, n in g["agents"].items() if n} == dict(members)


@pytest.fixture
def chromium_bin() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium is not installed and could not be: .ci/run installs it "
                    "(apt-get install -y chromium); the wallboard's browser tests need it")
    return path


async def page_matches(tab: Tab, port: int, timeout: float = 5.0) -> tuple[dict, dict]:
    """Wait for the page to show the snapshot ``/wallboard.json`` gives now
    (same seq), then check every figure; returns (page, snapshot)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        wb = await get_json(port, "/wallboard.json")
        page = await tab.figures()
        if page["seq"] == wb["seq"] and shown(page) == expected_page(wb):
            break
        if loop.time() > end:
            assert page["seq"] == wb["seq"]
            assert shown(page) == expected_page(wb)
        await asyncio.sleep(0.05)
    for q in wb["queues"]:  # the ticking longest wait: the snapshot's, plus the time since
        if q["oldest"] is not None:
            assert abs(parse_wait(page["queues"][q["name"]]["longest"]) - q["longest_wait"]) <= 2.0
        else:
            assert page["queues"][q["name"]]["longest"] == "0:00"
    return page, wb


@bounded(150)
async def test_page_follows_a_live_replay_over_mqtt(tmp_path, mosquitto, chromium_bin):
    """A daemon on a real Mosquitto, its wallboard in a real Chromium, a live
    replay (the telephony side over MQTT) at 100x: the page keeps up within
    2 s all along; when the traffic stops, every figure on the page is the
    one in /wallboard.json, which agrees with /state; an agent going not
    ready and a call arriving show within 2 s, and the longest wait ticks on
    the page with no new data."""
    from acd.bus.mqtt import MqttBus
    from acd.live import play

    topics = Topics("wall")
    port = free_port()
    daemon = Daemon(LIVE_SPEC, MqttBus(mosquitto.url, topics, client_id="acd-wall-test"), tmp_path / "journal",
                    Options(watch_config=False, fsync="never", tenant="wall", http=f"127.0.0.1:{port}"))
    await daemon.start()
    try:
        async with Chromium(chromium_bin, tmp_path / "profile") as browser:
            tab = await browser.open(f"http://127.0.0.1:{port}/")
            await tab.wait_for("document.body.dataset.seq !== undefined && "
                               "document.getElementById('conn').className === 'live'", 15)
            # support: a call every 4 s of scenario, 10 s each, on 3 + 2 agents; sales: a few on
            # the 2; some callers hang up early
            traffic = merge(
                [(i * 4.0, ContactLine(id=f"c{i}", arrival=i * 4.0, queue="support", handle_time=10.0,
                                       patience=3.0 if i % 7 == 3 else None)) for i in range(150)],
                [(i * 30.0, ContactLine(id=f"s{i}", arrival=i * 30.0, queue="sales", handle_time=45.0))
                 for i in range(20)])
            replay = asyncio.create_task(play(mosquitto.url, traffic, 0.0, tenant="wall", speed=100.0))
            lags = []
            loop = asyncio.get_running_loop()
            while not replay.done():
                wb = await get_json(port, "/wallboard.json")
                t0 = loop.time()
                await tab.wait_for(f"+document.body.dataset.seq >= {wb['seq']}", 2.0)
                lags.append(loop.time() - t0)
                await asyncio.sleep(0.2)
            result = await asyncio.wait_for(replay, 60)
            assert result["offered"] == 170 and result["in_system_at_end"] == 0
            assert len(lags) >= 5 and max(lags) < 2.0
            await asyncio.sleep(0.5)
            page, wb = await page_matches(tab, port)
            state = await get_json(port, "/state")
            wb2 = await get_json(port, "/wallboard.json")
            check_against_state(wb2, state)
            sup = wb["queues"][0]
            assert sup["today"]["offered"] == 150 and sup["today"]["answered"] + sup["today"]["abandoned"] == 150
            assert page["queues"]["support"]["answered"] == fmt_int(sup["today"]["answered"])
            assert page["total"]["answered"] == fmt_int(result["answered"])

            # events on the bus, as the telephony side sends them
            async with MqttBus(mosquitto.url, topics, client_id="acd-wall-tel", subscribe=topics.status,
                               presence=False, session_expiry=60) as tel:
                enc = msgspec.json.Encoder()
                for aid in ("b-1", "b-2"):
                    t0 = loop.time()
                    await tel.publish(topics.inbound_for("agent.not_ready"),
                                      enc.encode(AgentNotReady(id=f"nr-{aid}", agent=aid, reason="meeting")))
                    want = 2 if aid == "b-2" else 1
                    await tab.wait_for("document.querySelector('[data-group=\"b\"] [data-f=\"agents-not_ready\"]')"
                                       f".textContent === '{want}'", 2.0)
                    assert loop.time() - t0 < 2.0
                t0 = loop.time()
                await tel.publish(topics.inbound_for("contact.arrived"),
                                  enc.encode(ContactArrived(id="arr-late", contact="late", queue="sales")))
                await tab.wait_for("document.querySelector('[data-queue=\"sales\"] [data-f=\"waiting\"]')"
                                   ".textContent === '1'", 2.0)
                assert loop.time() - t0 < 2.0
                page, wb = await page_matches(tab, port)
                assert wb["queues"][1]["waiting"] == 1 and page["total"]["waiting"] == "1"
                # nothing happens on the server, yet the longest wait ticks on the page
                seq = page["seq"]
                w0 = parse_wait(page["queues"]["sales"]["longest"])
                await asyncio.sleep(2.3)
                page = await tab.figures()
                assert page["seq"] == seq and parse_wait(page["queues"]["sales"]["longest"]) >= w0 + 2
                check_against_state(await get_json(port, "/wallboard.json"), await get_json(port, "/state"))
            assert tab.problems() == []
    finally:
        await daemon.stop()


# --- the screenshot ----------------------------------------------------------------------------------------------


def morning(until: float) -> list:
    """The default day's scenario from its start to ``until``, with a few
    agents on a break or logged out, as a real morning has."""
    scen = Scenario(ROOT / "scenarios" / "default.jsonl")
    items = [(t, line) for t, line in scen if t <= until]
    start = scen.start
    extra = [(until - 900, AgentLine(time=0.0, agent=a, state="not_ready", reason="break"))
             for a in ("tier1-9", "billing-2")]
    extra += [(start + 6, AgentLine(time=6.0, agent=a, state="logout")) for a in ("tier1-22", "sales-6")]
    extra += [(until - 400, AgentLine(time=0.0, agent="chat-4", state="not_ready", reason="lunch"))]
    return merge(items, extra)


@bounded(150)
async def test_screenshot_of_a_busy_morning(tmp_path, chromium_bin):
    """The shipped config through the default day's morning in virtual time
    (the 10:00 peak, an agent or two on a break), the page shot at 1920x1080
    into docs/wallboard.png: it renders, fits one screen, is not blank and
    is small; a missed target and a wait over the threshold have their
    symbols; nothing went wrong in the browser."""
    config = ROOT / "config" / "default.yaml"
    until = T0 + 2 * 3600 + 40 * 60  # 10:40 UTC, 11:40 in Warsaw
    async with VirtualCentre(str(config), wallboard_tz="Europe/Warsaw", answer_delay=3.0) as vc:
        await vc.run(morning(until), until)
        wb = await get_json(vc.port, "/wallboard.json")
        assert wb["today"]["date"] == "2026-01-05" and wb["tz"] == "Europe/Warsaw"
        assert any(q["waiting"] for q in wb["queues"])
        assert any(q["today"]["sl_met"] is False for q in wb["queues"])
        async with Chromium(chromium_bin, tmp_path / "profile") as browser:
            tab = await browser.open(f"http://127.0.0.1:{vc.port}/")
            await tab.wait_for(f"+document.body.dataset.seq === {wb['seq']} && "
                               "document.getElementById('conn').className === 'live'", 15)
            page, wb = await page_matches(tab, vc.port)
            missed = [q["name"] for q in wb["queues"] if q["today"]["sl_met"] is False]
            assert missed and len(missed) < len(wb["queues"])
            for q in wb["queues"]:
                sym, cls = page["queues"][q["name"]]["sl_today_sym"], page["queues"][q["name"]]["sl_today_class"]
                assert (sym, cls) == (("\u2717", "sl missed") if q["name"] in missed else ("\u2713", "sl met"))
            hot = [q["name"] for q in wb["queues"] if q["longest_wait"] > q["sl_threshold"]]
            assert hot and await tab.eval("[...document.querySelectorAll('[data-f=longest].hot')]"
                                          ".map(e => e.closest('[data-queue]').dataset.queue)") == hot
            # legible from across the room: the waiting figures are big
            px = await tab.eval("parseFloat(getComputedStyle(document.querySelector('[data-f=waiting]')).fontSize)")
            assert px >= 80
            # everything fits on one 1080p screen
            assert await tab.eval("document.documentElement.scrollHeight") <= 1080
            # the picture at the snapshot's own time (the page ticks from when data came), so the
            # file only changes when the page does
            await tab.eval("recvAt = performance.now(); tick(); true")
            png = await tab.screenshot()
            assert tab.problems() == []
    assert len(png) < 400_000
    w, h, rows = png_pixels(png)
    assert (w, h) == (1920, 1080)
    pixels = Counter(row[i:i + 3] for row in rows[::4] for i in range(0, len(row), 12))
    assert len(pixels) > 200  # text, colours, bars: not a blank page
    dark = sum(n for px, n in pixels.items() if max(px) < 60) / sum(pixels.values())
    bright = sum(n for px, n in pixels.items() if min(px) > 200) / sum(pixels.values())
    assert dark > 0.5 and bright > 0.01  # a dark board with light figures on it: high contrast
    # keep the committed picture unless the page changed: Chromium's anti-aliasing of a
    # rounded corner may differ by a pixel from one run to the next
    if DOCS_PNG.exists():
        ow, oh, old_rows = png_pixels(DOCS_PNG.read_bytes())
        if (ow, oh) == (w, h):
            changed = sum(1 for a, b in zip(rows, old_rows) if a != b
                          for i in range(0, len(a), 3) if a[i:i + 3] != b[i:i + 3])
            if changed < 200:
                return
    DOCS_PNG.parent.mkdir(exist_ok=True)
    DOCS_PNG.write_bytes(png)


# --- restarts ------------------------------------------------------------------------------------------------------


@bounded(150)
async def test_page_rides_out_a_daemon_restart(tmp_path, mosquitto, chromium_bin):
    """Stop the daemon: the page says it is reconnecting; start a new one on
    the same journal and port: the page reconnects by itself, its first
    message is a full snapshot of the state rebuilt from the journal -- the
    same figures as before -- and it goes on following events."""
    from acd.bus.mqtt import MqttBus
    from acd.live import play

    topics = Topics("rs")
    port = free_port()
    journal = tmp_path / "journal"

    def make() -> Daemon:
        return Daemon(LIVE_SPEC, MqttBus(mosquitto.url, topics, client_id="acd-rs-test"), journal,
                      Options(watch_config=False, fsync="always", tenant="rs", http=f"127.0.0.1:{port}"))

    daemon = make()
    await daemon.start()
    try:
        async with Chromium(chromium_bin, tmp_path / "profile") as browser:
            tab = await browser.open(f"http://127.0.0.1:{port}/")
            await tab.wait_for("document.getElementById('conn').className === 'live'", 15)
            # a call every 10 s of scenario, and a burst of 8 at 100 s: 5 agents, so some of those hang up
            traffic = merge(
                [(i * 10.0, ContactLine(id=f"c{i}", arrival=i * 10.0, queue="support", handle_time=25.0))
                 for i in range(40)],
                [(100.0, ContactLine(id=f"b{i}", arrival=100.0, queue="support", handle_time=25.0, patience=5.0))
                 for i in range(8)])
            result = await asyncio.wait_for(play(mosquitto.url, traffic, 0.0, tenant="rs", speed=100.0), 60)
            assert result["in_system_at_end"] == 0
            before, wb_before = await page_matches(tab, port)
            assert wb_before["queues"][0]["today"]["answered"] > 0 and wb_before["queues"][0]["today"]["abandoned"] > 0

            await daemon.stop()
            await tab.wait_for("document.getElementById('conn').className !== 'live'", 5)
            conn = await tab.eval("document.getElementById('conn').textContent")
            assert "RECONNECTING" in conn or "NO DATA" in conn
            await asyncio.sleep(1.5)  # down for a while: the browser's retries are refused

            daemon = make()
            await daemon.start()
            await tab.wait_for(f"document.body.dataset.boot !== '{before['boot']}' && "
                               "document.getElementById('conn').className === 'live'", 10)
            after, wb_after = await page_matches(tab, port)
            # the same figures; occupancy aside, which idle staffed time lowers as time passes
            a, b = shown(after), shown(before)
            occ = [(g["occ_today"], g2["occ_today"]) for g, g2 in zip(a["groups"].values(), b["groups"].values())]
            for g in (*a["groups"].values(), *b["groups"].values()):
                del g["occ_today"], g["occ_interval"]
            assert a == b
            assert all(int(x[:-1]) <= int(y[:-1]) for x, y in occ)
            for qa, qb in zip(wb_after["queues"], wb_before["queues"]):
                assert qa["today"] == qb["today"] and qa["agents"] == qb["agents"]
            assert [g["agents"] for g in wb_after["groups"]] == [g["agents"] for g in wb_before["groups"]]
            assert wb_after["seq"] >= wb_before["seq"] and wb_after["boot"] != wb_before["boot"]
            assert await tab.eval("+document.body.dataset.restarts") == 1

            # and it goes on: a new call after the restart shows within 2 s
            async with MqttBus(mosquitto.url, topics, client_id="acd-rs-tel", subscribe=topics.status,
                               presence=False, session_expiry=60) as tel:
                for aid in ("a-1", "a-2", "a-3", "b-1", "b-2"):
                    await tel.publish(topics.inbound_for("agent.not_ready"),
                                      msgspec.json.encode(AgentNotReady(id=f"nr-{aid}", agent=aid)))
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await tel.publish(topics.inbound_for("contact.arrived"),
                                  msgspec.json.encode(ContactArrived(id="arr-x", contact="x", queue="support")))
                await tab.wait_for("document.querySelector('[data-queue=\"support\"] [data-f=\"waiting\"]')"
                                   ".textContent === '1'", 2.0)
                assert loop.time() - t0 < 2.0
            await page_matches(tab, port)
            # the refused reconnections while the daemon was down are the only complaints
            assert all(p == "Failed to load resource: net::ERR_CONNECTION_REFUSED" for p in tab.problems()), \
                tab.problems()
    finally:
        await daemon.stop()
