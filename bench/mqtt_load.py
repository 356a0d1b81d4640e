"""Load test of ``acd run`` through a real Mosquitto on loopback.

Three processes, so that no CPU-bound event loop is shared (the machine may
have only 2 cores):

* a private **Mosquitto** on a free port of 127.0.0.1 (never the machine's
  broker on 1883), started and killed by this script;
* the **daemon**: ``python -m acd run --bus mqtt://... --journal DIR --fsync
  POLICY`` in a subprocess, one fresh daemon, journal and tenant per step;
* the **load generator** (``mqtt_load.py gen``, a subprocess): the telephony
  side, on plain paho-mqtt without threads.  It publishes inbound events at a
  fixed rate, each with a unique ``id`` -- ``contact.arrived`` (95 % of the
  events are contact lifecycles: arrived, then ``offer.accepted`` for each
  decision after a 0-20 ms ring, then ``contact.ended`` after a 100-300 ms
  handle time; the queue has 100 ms of wrap-up, ended by the daemon's timer)
  and 5 % agent state changes (``agent.not_ready`` of an idle agent, then
  ``agent.ready`` 0.5 s later) -- and measures, for every arrival, the time
  from its publish to the ``out/decision`` ``ContactOffered`` for that
  contact (``time.monotonic``, which is one clock for every process of the
  machine).  The centre has enough agents (3000) that an arrival never
  waits for one: the latency is the daemon's, not the queue's.

Each step sends for ``--seconds`` (the first ``--warmup`` seconds are left out
of the figures), then waits for the decisions still due (at most
``--drain`` s) and stops; everything stops by itself.  Traffic is 127.0.0.1
only.

    python bench/mqtt_load.py                      # 1k, 5k, then ramp to the max (fsync batch)
    python bench/mqtt_load.py --fsync batch,always # both policies
    python bench/mqtt_load.py --rates 5000 --stages --profile   # where the time goes

A step *keeps up* when the generator kept to its schedule (never 20 ms late),
every arrival got its decision by the end of the step (no backlog left)
and the latency did not grow during the step (median of the last second
under 2x that of the first second after the warm-up, plus 1 ms).  After 1k
and 5k the bench looks for the max: up the ``--ramp`` rates if 5k kept up,
then ``--refine`` bisection steps between the best rate that kept up and
the first that did not.

Columns: ``sent/s`` what the generator published (all event kinds), ``daemon
in/s`` what the daemon took in the same window (its ``/metrics``), latency of
arrival -> decision, fsyncs per second, CPU of each process (100 % = one
core) and ``other CPU``: the rest of the machine meanwhile.  The three
processes share the cores, so a busy neighbour shows up as latency: read
the ``other CPU`` column before the latency ones.

``--stages`` runs the daemon with timestamps taken at every stage of an
arrival (received by paho, taken by the consumer, journal written, engine
done, fsync done, decision handed to paho) and prints where the time goes;
``--profile`` runs it under cProfile and prints its own time by component
(paho, asyncio, the routing core...) and the functions that cost the most.
Both slow the daemon down a little: the plain rows are measured without
them.  At a rate the daemon keeps up with (``--probe-rate 1000``) the stage
table shows the latency path; above its capacity it shows where the backlog
waits.

Bar (issue 4): p99 under 5 ms at 5k events/s.  On a 2-vCPU VM, with
``--fsync never`` (the journal written to the OS before anything leaves:
what survives ``kill -9``): 5k events/s at p50 0.5 ms, p99 2.1-3.2 ms, the
daemon at ~85 % of a core (~170 us of CPU per inbound event); the machine
saturates (daemon, broker and generator share the 2 cores) between 6k and
8k events/s.  With a durable policy the disk adds its fsync: ``always``
p99 ~8 ms, ``batch`` its window (``--batch-ms``, 5 ms) plus ~3 ms.

Where the time goes (``--stages``, 5k events/s): decoding, journalling,
routing and rendering an arrival take ~45 us of its ~0.5 ms; the rest is
the broker's two hops and the MQTT client.  By CPU (``--profile``) paho
is still the largest part (~1/3), then the daemon shell, the bus, the
engine.  What made the difference (from 350-400 us of CPU per event):
paho's inbound messages go straight to the bus's queue (aiomqtt's message
iterator cost a task and an ``asyncio.wait`` per message), every packet of
a loop turn leaves in one ``send`` and reads come 64 KiB at a time (paho
does 2-3 ``recv`` and one ``send`` per packet), ``out/event`` and
``out/metrics`` carry an array per publish round (one inbound event made
~2.6 outbound messages, each a PUBLISH and a PUBACK through paho; now
~0.6), and size checkpoints are written by a forked child (pickling 3,000
agents stalled the loop ~300 ms every 50,000 records).

Broker settings: ``set_tcp_nodelay true`` (as a deployment should) and
``max_queued_messages 1000000``: Mosquitto's default of 1000 queued messages
per client *drops* QoS 1 messages for an overloaded (or stopped) router, which
would turn a backlog into lost contacts; the bench wants to see the backlog.
"""

from __future__ import annotations

import argparse
import getpass
import heapq
import json
import math
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
AGENTS = 3000
AGENT_SHARE = 0.05  # of inbound events: agent state changes (not_ready + ready)


# --- the broker ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_mosquitto() -> str:
    path = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None)
    if path is None:
        sys.exit("mosquitto is not installed (apt-get install mosquitto)")
    return path


class Broker:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 1000000\n"  # see the module docstring
            f"log_dest file {workdir / 'mosquitto.log'}\n"
            "log_type error\nlog_type warning\n"
            f"listener {self.port} 127.0.0.1\n")
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=open(workdir / "mosquitto.err", "wb"))
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"mosquitto exited: {(workdir / 'mosquitto.err').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    sys.exit("mosquitto did not start")
                time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- process CPU -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def system_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat)."""
    try:
        f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return float("nan")


def scrape(http: str) -> dict[str, float]:
    """The daemon's Prometheus metrics, label-less ones and sums over labels."""
    with urllib.request.urlopen(f"http://{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name, _, value = line.rpartition(" ")
        base = name.split("{", 1)[0]
        try:
            out[base] = out.get(base, 0.0) + float(value)
        except ValueError:
            pass
    return out


# --- the load generator (subprocess) ------------------------------------------------------------


def generator(a: argparse.Namespace) -> None:
    """The telephony side; prints ``mark warm`` / ``mark end`` when the
    measured window starts and ends, then one JSON line of results."""
    import msgspec
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    class Decision(msgspec.Struct):
        seq: int
        contact: str
        agent: str
        offer: int
        auto_answer: bool = False

    dec = msgspec.json.Decoder(Decision)
    prefix = f"acd/{a.tenant}"
    t_arrived, t_accepted, t_ended = (f"{prefix}/in/contact/arrived", f"{prefix}/in/offer/accepted",
                                      f"{prefix}/in/contact/ended")
    t_nr, t_rd = f"{prefix}/in/agent/not_ready", f"{prefix}/in/agent/ready"
    decision_topic, error_topic = f"{prefix}/out/decision", f"{prefix}/out/error"
    rng = random.Random(a.seed)
    mono = time.monotonic

    published: dict[int, float] = {}      # contact number -> publish time (undecided arrivals)
    lat: list[tuple[float, float]] = []   # (publish time, latency) of first decisions
    stages: dict[str, list[float]] = {}   # contact -> [publish, decision] (--times)
    seqs: set[int] = set()
    later: list[tuple[float, int, str, bytes, Any]] = []
    current: dict[str, int] = {}          # contact -> its latest offer (an ended is for that one only)
    busy: dict[str, float] = {}           # agent -> until (offered/talking, from our view)
    on_break: set[str] = set()
    counts = {"arrived": 0, "accepted": 0, "ended": 0, "not_ready": 0, "ready": 0}
    got = {"decisions": 0, "duplicate_seq": 0, "errors": 0, "requeued_offers": 0}
    error_samples: list[str] = []
    k = 0

    def push(due: float, topic: str, payload: bytes, offer: tuple[str, int] | None = None) -> None:
        nonlocal k
        k += 1
        heapq.heappush(later, (due, k, topic, payload, offer))

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        now = mono()
        if msg.topic == error_topic:
            got["errors"] += 1
            if len(error_samples) < 5:
                error_samples.append(msg.payload[:300].decode(errors="replace"))
            return
        d = dec.decode(msg.payload)
        got["decisions"] += 1
        if d.seq in seqs:
            got["duplicate_seq"] += 1
            return
        seqs.add(d.seq)
        n = int(d.contact[1:])
        t = published.pop(n, None)
        if t is not None:
            lat.append((t, now - t))
            if a.times:
                stages[d.contact] = [t, now]
        else:
            got["requeued_offers"] += 1  # offer > 1 (an offer withdrawn by a break)
        ring = rng.uniform(0.0, 0.020)
        talk = rng.uniform(0.100, 0.300)
        busy[d.agent] = now + ring + talk + 0.2
        current[d.contact] = d.offer
        push(now + ring, t_accepted, b'{"id":"acc-%s-%d","contact":"%s","agent":"%s"}' % (
            d.contact.encode(), d.offer, d.contact.encode(), d.agent.encode()))
        push(now + ring + talk, t_ended, b'{"id":"end-%s","contact":"%s"}' % (
            d.contact.encode(), d.contact.encode()), (d.contact, d.offer))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"acd-bench-gen-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(20)  # Mosquitto's Receive Maximum
    client.max_queued_messages_set(0)
    client.on_message = on_message
    client.connect(a.host, a.port, keepalive=60, clean_start=True)
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while not client.is_connected():
        client.loop(0.05)
    client.subscribe([(decision_topic, 1), (error_topic, 1)])
    for _ in range(20):
        client.loop(0.01)

    # the generator's own garbage collections would show up as daemon latency
    # (it holds thousands of objects); it makes no reference cycles worth
    # collecting during a bounded step
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()
    rate = a.rate
    arr_rate = rate * (1 - AGENT_SHARE) / 3
    brk_rate = rate * AGENT_SHARE / 2
    t0 = mono() + 0.05
    t_warm = t0 + a.warmup
    t_end = t0 + a.seconds
    next_arr, next_brk = t0, t0 + 0.5 / brk_rate
    n_arr = n_brk = 0
    lag_max = 0.0
    warm_marked = False
    sent_in_window = 0
    pub = client.publish

    sending = True
    t_stop = math.inf
    while True:
        now = mono()
        if sending and now >= t_end:
            sending = False
            print("mark end", flush=True)
            t_stop = now + a.drain
        if sending:
            while next_arr <= now:
                lag_max = max(lag_max, now - next_arr)
                n_arr += 1
                published[n_arr] = mono()
                pub(t_arrived, b'{"id":"arr-%d","contact":"c%d","queue":"q"}' % (n_arr, n_arr), 1)
                counts["arrived"] += 1
                sent_in_window += now >= t_warm
                next_arr += 1 / arr_rate
            while next_brk <= now:
                next_brk += 1 / brk_rate
                for _ in range(10):
                    ag = f"a-{rng.randrange(1, a.agents + 1)}"
                    if ag not in on_break and busy.get(ag, 0.0) < now:
                        break
                else:
                    continue
                n_brk += 1
                on_break.add(ag)
                pub(t_nr, b'{"id":"nr-%d","agent":"%s","reason":"break"}' % (n_brk, ag.encode()), 1)
                counts["not_ready"] += 1
                sent_in_window += now >= t_warm
                push(now + 0.5, t_rd, b'{"id":"rd-%d","agent":"%s"}' % (n_brk, ag.encode()))
            if not warm_marked and now >= t_warm:
                warm_marked = True
                print("mark warm", flush=True)
        while later and later[0][0] <= now:
            _, _, topic, payload, offer = heapq.heappop(later)
            if offer is not None:  # an ended: only for the contact's latest offer
                if current.get(offer[0]) != offer[1]:
                    continue
                del current[offer[0]]
            pub(topic, payload, 1)
            if topic == t_rd:
                on_break.discard(payload.split(b'"agent":"')[1].split(b'"')[0].decode())
                counts["ready"] += 1
            else:
                counts["accepted" if topic == t_accepted else "ended"] += 1
            sent_in_window += sending and now >= t_warm
        if not sending and ((not published and not later) or now > t_stop):
            break
        due = min(next_arr, next_brk) if sending else now + 0.005
        if later:
            due = min(due, later[0][0])
        client.loop(max(0.0, min(due - mono(), 0.002)))
    for _ in range(10):  # let the last PUBACKs and errors in
        client.loop(0.01)
    client.disconnect()

    window = a.seconds - a.warmup
    measured = [(t, v) for t, v in lat if t >= t_warm]
    vals = sorted(v for _, v in measured)

    def pct(xs: list[float], p: float) -> float | None:
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else None

    buckets = []
    for i in range(math.ceil(window)):
        xs = sorted(v for t, v in measured if t_warm + i <= t < t_warm + i + 1)
        buckets.append({"n": len(xs), "p50": pct(xs, 0.5), "p99": pct(xs, 0.99)})
    res = {
        "rate": rate, "seconds": a.seconds, "warmup": a.warmup,
        "sent_per_s": sent_in_window / window,
        "counts": counts, "received": got, "undecided": len(published),
        "latency_ms": {"n": len(vals), "p50": pct(vals, 0.5), "p90": pct(vals, 0.9), "p99": pct(vals, 0.99),
                       "p999": pct(vals, 0.999), "max": vals[-1] * 1000 if vals else None},
        "per_second": buckets, "generator_lag_max_ms": lag_max * 1000, "error_samples": error_samples,
    }
    if a.times:
        Path(a.times).write_text(json.dumps(stages))
    print(json.dumps(res), flush=True)


# --- the daemon with probes (subprocess, for --stages / --profile) --------------------------------


def instrumented_daemon(a: argparse.Namespace, argv: list[str]) -> int:
    """``acd run ARGV`` with timestamps at each stage of every arrival
    (``--stages FILE``) and/or under cProfile (``--cprofile FILE``)."""
    import msgspec

    mono = time.monotonic
    if a.stages:
        import paho.mqtt.client as paho

        from acd import daemon as dmod
        from acd import journal as jmod
        from acd.core import engine as emod
        from acd.core.events import ContactArrived

        class C(msgspec.Struct):
            contact: str
            offer: int = 0

        cdec = msgspec.json.Decoder(C)
        T: dict[str, dict[str, float]] = {}
        mids: dict[int, str] = {}
        syncs: list[tuple[float, int]] = []
        pos: dict[str, int] = {}

        def stamp(c: str, key: str) -> None:
            T.setdefault(c, {})[key] = mono()

        orig_on_message = paho.Client._handle_on_message  # paho's hand-over to the bus's callback

        def on_message(self: Any, message: Any) -> None:
            if message.topic.endswith("/in/contact/arrived"):
                c = cdec.decode(message.payload).contact
                stamp(c, "recv")
                mids[message.mid] = c
            orig_on_message(self, message)

        paho.Client._handle_on_message = on_message

        orig_ack = paho.Client.ack

        def ack(self: Any, mid: int, qos: int) -> Any:
            c = mids.pop(mid, None)
            if c is not None:
                stamp(c, "acked")
            return orig_ack(self, mid, qos)

        paho.Client.ack = ack

        orig_publish = paho.Client.publish

        def publish(self: Any, topic: str, payload: Any = None, *args: Any, **kw: Any) -> Any:
            if topic.endswith("/out/decision"):
                d = cdec.decode(payload)
                if d.offer == 1:
                    stamp(d.contact, "published")
            return orig_publish(self, topic, payload, *args, **kw)

        paho.Client.publish = publish

        orig_on_msg = dmod.Daemon._on_message

        def d_on_message(self: Any, msg: Any) -> None:
            c = None
            if msg.topic.endswith("/in/contact/arrived"):
                c = cdec.decode(msg.payload).contact
                stamp(c, "consumed")
            orig_on_msg(self, msg)
            if c is not None:
                stamp(c, "handled")

        dmod.Daemon._on_message = d_on_message

        orig_append = jmod.Journal.append

        def append(self: Any, rec: Any) -> int:
            n = orig_append(self, rec)
            e = getattr(rec, "e", None)
            if type(e) is ContactArrived:
                stamp(e.contact, "journalled")
                pos[e.contact] = n
            return n

        jmod.Journal.append = append

        orig_handle = emod.Engine.handle

        def handle(self: Any, ev: Any, t: float) -> Any:
            out = orig_handle(self, ev, t)
            if type(ev) is ContactArrived:
                stamp(ev.contact, "engine")
            return out

        emod.Engine.handle = handle

        # whatever raises ``synced``: the journal's sync(s) set it
        orig_setattr = jmod.Journal.__setattr__

        def j_setattr(self: Any, name: str, value: Any) -> None:
            if name == "synced" and self.policy != "never" and value > getattr(self, "synced", 0):
                syncs.append((mono(), value))
            orig_setattr(self, name, value)

        jmod.Journal.__setattr__ = j_setattr

        def dump() -> None:
            from bisect import bisect_left
            keys = [p for _, p in syncs]
            for c, rec in T.items():
                p = pos.get(c)
                if p is None:
                    continue
                i = bisect_left(keys, p)  # the first sync that covered it
                if i < len(syncs):
                    rec["synced"] = syncs[i][0]
            Path(a.stages).write_text(json.dumps(T))

    from acd.daemon import main

    prof = None
    if a.cprofile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
    try:
        return main(argv)
    finally:
        if prof is not None:
            prof.disable()
            import io
            import pstats

            buf = io.StringIO()
            st = pstats.Stats(prof, stream=buf)
            groups: dict[str, float] = {}
            total = 0.0
            for (file, _, func), (_, _, tt, _, _) in st.stats.items():  # type: ignore[attr-defined]
                g = profile_group(file, func)
                groups[g] = groups.get(g, 0.0) + tt
                total += tt
            buf.write("Own time by component (cProfile tottime; the profiler inflates Python calls):\n")
            for g, tt in sorted(groups.items(), key=lambda x: -x[1]):
                buf.write(f"  {tt / total * 100:5.1f} %  {tt:7.2f} s  {g}\n")
            buf.write("\n")
            st.sort_stats("tottime").print_stats(25)
            Path(a.cprofile).write_text(buf.getvalue())
        if a.stages:
            dump()


def profile_group(file: str, func: str) -> str:
    """A component name for a cProfile entry."""
    if file == "~":  # built-ins: name the system calls
        for key, name in (("fsync", "fsync (journal; a worker thread, not the loop)"),
                          ("'send'", "socket send (one per loop turn)"), ("'recv'", "socket recv (64 KiB reads)"),
                          ("posix.write", "journal write (os.write)"), ("run_until_complete", "uvloop (C)"),
                          ("select", "event loop poll"), ("Pickler", "the exit checkpoint (pickle)")):
            if key in func:
                return name
        return "other built-ins"
    for key, name in (("/paho/", "paho-mqtt (packet encode/decode, its queues)"),
                      ("/aiomqtt/", "aiomqtt (glue, message queue)"), ("/acd/core/", "acd routing core (engine)"),
                      ("/acd/bus/", "acd MQTT bus"), ("/acd/journal", "acd journal"),
                      ("/acd/daemon", "acd daemon (decode, outbox, timers; its exit checkpoint)"),
                      ("asyncio/runners.py", "event loop (uvloop's C code is billed to Runner.run)"),
                      ("/asyncio/", "asyncio (Python part: queues, events, tasks)"),
                      ("/msgspec/", "msgspec"), ("threading.py", "threading (paho's Conditions, executor)"),
                      ("/concurrent/", "thread pool (fsync hand-off)")):
        if key in file:
            return name
    return "other Python"


# --- one step --------------------------------------------------------------------------------


CONFIG = f"""\
queues:
  - name: q
    ring_timeout: 30
    wrap_up: 0.1
agents:
  - group: a
    count: {AGENTS}
"""


def wait_http(http: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://{http}/health", timeout=1) as r:
                if json.load(r).get("status") == "ok":
                    return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not come up")
        time.sleep(0.05)


def run_step(a: argparse.Namespace, broker: Broker, work: Path, k: int, rate: float, fsync: str, *,
             stages: bool = False, profile: bool = False) -> dict[str, Any]:
    tenant = f"bench{k}"
    sdir = work / f"step{k}"
    sdir.mkdir()
    cfg = sdir / "acd.yaml"
    cfg.write_text(CONFIG)
    http = f"127.0.0.1:{free_port()}"
    acd_args = ["run", "--config", str(cfg), "--bus", broker.url, "--journal", str(sdir / "journal"),
                "--fsync", fsync, "--tenant", tenant, "--client-id", f"acd-bench-{k}", "--http", http,
                "--log-level", "warning", *a.daemon_arg]
    if stages or profile:
        cmd = [sys.executable, str(HERE), "_daemon"]
        if stages:
            cmd += ["--stages", str(sdir / "stages.json")]
        if profile:
            cmd += ["--cprofile", str(sdir / "profile.txt")]
        cmd += ["--", *acd_args[1:]]
    else:
        cmd = [sys.executable, "-m", "acd", *acd_args]
    dlog = open(sdir / "daemon.log", "wb")
    daemon = subprocess.Popen(cmd, stdout=dlog, stderr=subprocess.STDOUT)
    gen = None
    try:
        wait_http(http, daemon)
        gcmd = [sys.executable, str(HERE), "gen", "--host", "127.0.0.1", "--port", str(broker.port),
                "--tenant", tenant, "--rate", str(rate), "--seconds", str(a.seconds), "--warmup", str(a.warmup),
                "--drain", str(a.drain), "--agents", str(AGENTS), "--seed", str(k)]
        if stages:
            gcmd += ["--times", str(sdir / "gen-times.json")]
        gen = subprocess.Popen(gcmd, stdout=subprocess.PIPE, stderr=open(sdir / "gen.err", "wb"), text=True)
        marks: dict[str, dict[str, float]] = {}
        result = None
        pids = {"daemon": daemon.pid, "broker": broker.proc.pid, "generator": gen.pid}
        for line in gen.stdout:
            if line.startswith("mark "):
                m = line.split()[1]
                marks[m] = {"t": time.monotonic(), "system": system_busy_seconds(),
                            **{p: cpu_seconds(pid) for p, pid in pids.items()}}
                try:
                    marks[m].update(scrape(http))
                except OSError:
                    pass
            elif line.startswith("{"):
                result = json.loads(line)
        gen.wait(30)
        if result is None:
            raise RuntimeError(f"the generator failed: {(sdir / 'gen.err').read_text()[-2000:]}")
        w, e = marks.get("warm"), marks.get("end")
        if w and e:
            dt = e["t"] - w["t"]
            result["cpu"] = {p: (e[p] - w[p]) / dt for p in pids}
            # CPU used by anything else on the machine meanwhile: a noisy neighbour spoils a step
            result["cpu"]["other"] = max(0.0, (e["system"] - w["system"]) / dt - sum(result["cpu"].values()))
            result["daemon"] = {
                "inbound_per_s": (e.get("acd_inbound_messages_total", 0) - w.get("acd_inbound_messages_total", 0)) / dt,
                "published_per_s": (e.get("acd_published_seq", 0) - w.get("acd_published_seq", 0)) / dt,
                "fsyncs_per_s": (e.get("acd_journal_fsyncs_total", 0) - w.get("acd_journal_fsyncs_total", 0)) / dt,
                "outbox_at_end": e.get("acd_outbox_items"),
                "errors": e.get("acd_errors_total", 0),
                "duplicates": e.get("acd_duplicates_total", 0),
            }
    finally:
        if gen is not None and gen.poll() is None:
            gen.kill()
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    result["fsync"] = fsync
    result["kept_up"], result["why"] = kept_up(result)
    if stages:
        result["stages"] = stage_table(sdir / "stages.json", sdir / "gen-times.json", result)
    if profile and (sdir / "profile.txt").exists():
        result["profile"] = (sdir / "profile.txt").read_text()
    return result


def kept_up(r: dict[str, Any]) -> tuple[bool, str]:
    if r["generator_lag_max_ms"] > 20:
        return False, f"the generator fell {r['generator_lag_max_ms']:.0f} ms behind its schedule"
    if r["undecided"]:
        return False, f"{r['undecided']} arrivals without a decision at the end (backlog)"
    b = [x for x in r["per_second"] if x["n"]]
    if len(b) >= 2 and b[-1]["p50"] > 2 * b[0]["p50"] + 1.0:
        return False, f"latency grew ({b[0]['p50']:.2f} -> {b[-1]['p50']:.2f} ms median)"
    return True, ""


STAGES = [
    ("broker in (generator -> paho callback)", "pub", "recv"),
    ("bus queue (paho -> consumer)", "recv", "consumed"),
    ("decode + journal write", "consumed", "journalled"),
    ("engine", "journalled", "engine"),
    ("render + outbox", "engine", "handled"),
    ("wait for fsync", "handled", "synced"),
    ("outbox -> paho publish", "ready", "published"),
    ("broker out (publish -> generator)", "published", "dec"),
]


def stage_table(stages_path: Path, gen_path: Path, result: dict[str, Any]) -> dict[str, Any]:
    T = json.loads(stages_path.read_text())
    G = json.loads(gen_path.read_text())
    rows: dict[str, list[float]] = {name: [] for name, _, _ in STAGES}
    rows["total (generator publish -> decision received)"] = []
    rows["(ack to the broker after receipt)"] = []
    t_first = min((g[0] for g in G.values()), default=0.0)
    for c, (tp, td) in G.items():
        if tp < t_first + result["warmup"]:
            continue
        r = T.get(c)
        if r is None or not {"recv", "consumed", "journalled", "engine", "handled", "published"} <= r.keys():
            continue
        r = dict(r, pub=tp, dec=td)
        r.setdefault("synced", r["handled"])  # fsync never
        r["ready"] = max(r["handled"], r["synced"])
        for name, x, y in STAGES:
            rows[name].append((r[y] - r[x]) * 1000)
        rows["total (generator publish -> decision received)"].append((td - tp) * 1000)
        if "acked" in r:
            rows["(ack to the broker after receipt)"].append((r["acked"] - r["recv"]) * 1000)
    out = {}
    for name, xs in rows.items():
        xs.sort()
        if xs:
            out[name] = {"n": len(xs), "mean": statistics.fmean(xs), "p50": xs[len(xs) // 2],
                         "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))]}
    return out


# --- reporting ---------------------------------------------------------------------------------


def fmt(x: Any, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def print_row(label: str, r: dict[str, Any]) -> None:
    lat = r["latency_ms"]
    d = r.get("daemon", {})
    cpu = r.get("cpu", {})
    print(f"| {label:<9} | {r['fsync']:<6} | {r['rate']:>7.0f} | {r['sent_per_s']:>7.0f} | "
          f"{d.get('inbound_per_s', float('nan')):>7.0f} | {fmt(lat['p50'])} | {fmt(lat['p99'])} | "
          f"{fmt(lat['max'], 1)} | {d.get('fsyncs_per_s', float('nan')):>5.0f} | "
          f"{cpu.get('daemon', float('nan')) * 100:>3.0f}% / {cpu.get('broker', float('nan')) * 100:>3.0f}% / "
          f"{cpu.get('generator', float('nan')) * 100:>3.0f}% | {cpu.get('other', float('nan')) * 100:>4.0f}% | "
          f"{'yes' if r['kept_up'] else 'NO: ' + r['why']} |",
          flush=True)


HEADER = ("| step      | fsync  | target/s | sent/s | daemon in/s | p50 ms | p99 ms | max ms | fsync/s "
          "| CPU daemon/broker/gen | other CPU | kept up |\n"
          "|-----------|--------|---------:|-------:|------------:|-------:|-------:|-------:|--------:"
          "|-----------------------|----------:|---------|")


def print_stages(st: dict[str, Any]) -> None:
    print("\nWhere the time of an arrival goes (ms, from its publish by the generator to the decision "
          "received by it):")
    print(f"| {'stage':<48} | {'mean':>6} | {'p50':>6} | {'p99':>6} |")
    print(f"|{'-' * 50}|{'-' * 8}|{'-' * 8}|{'-' * 8}|")
    for name, v in st.items():
        print(f"| {name:<48} | {v['mean']:>6.3f} | {v['p50']:>6.3f} | {v['p99']:>6.3f} |")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["gen"]:
        g = argparse.ArgumentParser(prog="mqtt_load.py gen")
        g.add_argument("--host", default="127.0.0.1")
        g.add_argument("--port", type=int, required=True)
        g.add_argument("--tenant", required=True)
        g.add_argument("--rate", type=float, required=True)
        g.add_argument("--seconds", type=float, default=8)
        g.add_argument("--warmup", type=float, default=1)
        g.add_argument("--drain", type=float, default=5)
        g.add_argument("--agents", type=int, default=AGENTS)
        g.add_argument("--seed", type=int, default=1)
        g.add_argument("--times")
        generator(g.parse_args(argv[1:]))
        return 0
    if argv[:1] == ["_daemon"]:
        d = argparse.ArgumentParser(prog="mqtt_load.py _daemon")
        d.add_argument("--stages")
        d.add_argument("--cprofile")
        rest = argv[1:]
        cut = rest.index("--")
        return instrumented_daemon(d.parse_args(rest[:cut]), rest[cut + 1:])

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fsync", default="batch", help="comma-separated policies (default batch)")
    p.add_argument("--rates", help="comma-separated events/s to run instead of 1000,5000 + ramp")
    p.add_argument("--no-ramp", action="store_true", help="skip the search for the max")
    p.add_argument("--ramp", default="7500,10000,15000,20000,25000,30000,40000",
                   help="rates tried above 5000 when 5000 keeps up (default %(default)s)")
    p.add_argument("--refine", type=int, default=3,
                   help="bisection steps between the best kept-up rate and the first failed one (default 3)")
    p.add_argument("--seconds", type=float, default=8.0, help="sending time per step (default 8)")
    p.add_argument("--warmup", type=float, default=1.0, help="first seconds left out of the figures (default 1)")
    p.add_argument("--drain", type=float, default=5.0, help="max wait for outstanding decisions (default 5)")
    p.add_argument("--stages", action="store_true", help="also run --probe-rate with stage timestamps: where time goes")
    p.add_argument("--profile", action="store_true", help="also run --probe-rate under cProfile")
    p.add_argument("--probe-rate", type=float, default=5000,
                   help="events/s of the --stages/--profile runs (default 5000)")
    p.add_argument("--daemon-arg", action="append", default=[], metavar="ARG",
                   help="extra argument for acd run (repeat), e.g. --daemon-arg=--batch-ms=2")
    p.add_argument("--json", metavar="FILE", help="write all results there")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, journals)")
    a = p.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="acd-mqtt-load-"))
    broker = Broker(work)
    results: list[dict[str, Any]] = []
    k = 0
    print(f"mosquitto on {broker.url}, {os.cpu_count()} CPUs, work dir {work}", flush=True)
    try:
        for fsync in a.fsync.split(","):
            print(f"\nfsync {fsync}:\n{HEADER}", flush=True)

            def step(rate: float, label: str, **kw: Any) -> dict[str, Any]:
                nonlocal k
                k += 1
                r = run_step(a, broker, work, k, rate, fsync, **kw)
                r["label"] = label
                results.append(r)
                print_row(label, r)
                return r

            if a.rates:
                for rate in (float(x) for x in a.rates.split(",")):
                    step(rate, f"{rate / 1000:g}k")
            else:
                lo = 1000.0 if step(1000, "1k")["kept_up"] else None
                hi = None
                if step(5000, "5k")["kept_up"]:
                    lo = 5000.0
                    if not a.no_ramp:
                        for rate in (float(x) for x in a.ramp.split(",")):
                            if rate <= lo:
                                continue
                            if step(rate, "ramp")["kept_up"]:
                                lo = rate
                            else:
                                hi = rate
                                break
                else:
                    hi = 5000.0
                if not a.no_ramp and lo is not None and hi is not None:
                    for _ in range(a.refine):  # bisect between the best kept-up and the first failed rate
                        mid = round((lo + hi) / 2 / 250) * 250
                        if not lo < mid < hi or hi - lo <= 0.1 * lo:
                            break
                        if step(mid, "ramp")["kept_up"]:
                            lo = mid
                        else:
                            hi = mid
                if not a.no_ramp:
                    best = f"{lo:.0f}" if lo is not None else "< 1000"
                    print(f"max sustained (kept up): {best} events/s, fsync {fsync}"
                          + (f" (failed at {hi:.0f})" if hi is not None else ""), flush=True)
            if a.stages:
                r = step(a.probe_rate, f"{a.probe_rate / 1000:g}k+stages", stages=True)
                print_stages(r["stages"])
            if a.profile:
                r = step(a.probe_rate, f"{a.probe_rate / 1000:g}k+prof", profile=True)
                print(f"\ncProfile of the daemon at {a.probe_rate:g} events/s "
                      "(the whole run: start, load, drain, stop):")
                print(r["profile"])
    finally:
        broker.close()
        if a.json:
            Path(a.json).write_text(json.dumps(results, indent=1))
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
