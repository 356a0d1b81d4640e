"""The MQTT bus: at-least-once delivery between acd and a real broker.

This is the only module in acd that imports aiomqtt.  What it guarantees and
why:

* **Nothing inbound is acknowledged before the daemon says so.**  With
  aiomqtt's defaults paho sends the QoS 1 PUBACK as soon as a message sits in
  memory; a crash then loses it.  Here paho runs with manual acks and the
  PUBACK leaves only when ``await msg.ack()`` runs.  aiomqtt (checked up to
  2.5.1) exposes neither switch, so this module uses its paho client,
  ``client._client``, for ``manual_ack_set`` and ``ack`` -- and, for
  ``publish_batch``, ``publish`` and a hook on ``on_publish`` that chains to
  aiomqtt's own: aiomqtt's ``publish`` waits for each PUBACK, so pipelining
  through it would cost an asyncio task per message.
* **The broker keeps what we have not taken.**  MQTT 5, a stable client id,
  ``clean_start`` off and a session expiry: the broker queues QoS 1 messages
  while the router is down and resends unacknowledged ones on reconnect.
* **Bounded memory without dropping.**  The connect packet's *Receive
  Maximum* (``max_unacked``) tells the broker how many unacknowledged QoS 1
  messages it may have in flight to us; it stops sending beyond that, so the
  local queue never holds more and never has to discard (aiomqtt's own
  queue is left unbounded: it is the one that drops when full).  When a
  connection is lost, messages still queued here are forgotten, not lost:
  they were never acked, so the broker resends them on the next connection.
* **The connection heals itself.**  After the first connection, a lost
  connection is retried forever with capped, jittered exponential back-off;
  ``publish`` waits for the next connection instead of dropping.  Only a
  refusal that retrying cannot fix (bad credentials, not authorised, no
  QoS 1, subscription refused) is fatal.  The *first* connection fails fast: a typo in the URL or password
  should stop ``acd run`` with a clear message, not hang it.
* **Cheap per message** (measured in bench/mqtt_load.py: from 350-400 us of
  CPU per inbound event to ~170).  paho's messages go straight into our
  queue (``_take_messages``), its socket is read 64 KiB at a time and every
  packet of a loop turn leaves in one ``send`` (``_Wire``), its per-packet
  debug logging is skipped (``_quiet_debug_log``).  These use paho's and
  aiomqtt's internals (``_sock``, ``_sock_send``, ``_sock_recv``,
  ``loop_read``, ``_easy_log``; ``_client``, ``_queue``, ``_disconnected``),
  so pyproject.toml pins both to the versions they were checked against.
* **Presence.**  ``status`` is retained: "online" after each connect, the
  last will "offline" if the process dies, "offline" again on a clean exit.

Delivery is at-least-once: after a reconnect the daemon may see again a
message it already took (its ack went to a dead connection, so the broker
resends it).  Inbound events carry an optional ``id`` for deduplication.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import ssl
import threading
from typing import Any, AsyncIterator, Awaitable, Callable, Sequence, TypeVar
from urllib.parse import unquote, urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.client import MQTT_ERR_SUCCESS, MQTT_LOG_DEBUG, topic_matches_sub
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from . import Message, Topics

__all__ = ["BusError", "MqttBus", "backoff_delay", "parse_url"]

T = TypeVar("T")

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_HEALTHY_AFTER = 10.0  # seconds a connection must last to reset the back-off
# CONNACK reason codes (MQTT 5) that no amount of retrying will fix.
_FATAL_CONNACK = {
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x8A: "banned",
    0x8C: "bad authentication method",
    0x9B: "QoS 1 not supported by the broker",
}


def _share_paho_property_tables() -> bool:
    """Make paho's MQTT 5 ``Properties`` cheap to create (a measured
    bottleneck: see bench/mqtt_load.py).

    paho-mqtt (2.x) decodes every PUBLISH and every PUBACK into a new
    ``Properties``, and each one builds its own copy of three constant
    lookup tables (27 property names, their types and packet kinds): ~12 us,
    plus ~6 us for the ``clear()`` that ``unpack()`` starts with (27 string
    replaces and hasattr calls).  A loaded router handles 3-4 packets per
    inbound event, so that was about a fifth of its CPU.  Here the tables
    are built once and shared (paho only ever reads them) and ``clear()``
    drops the instance's properties directly.  Behaviour is unchanged; if
    paho's ``Properties`` does not look as expected (another version), it is
    left alone."""
    from paho.mqtt import properties as pp

    cls = pp.Properties
    if getattr(cls, "_acd_shared_tables", False):
        return True
    private = ("packetType", "types", "names", "properties")
    try:
        proto = cls(PacketTypes.PUBLISH)
        shared = {k: getattr(proto, k) for k in private[1:]}
    except Exception:  # pragma: no cover - a paho we do not know
        return False
    if set(vars(proto)) != set(private):  # pragma: no cover
        return False

    def __init__(self: Any, packetType: int) -> None:
        d = self.__dict__
        d.update(shared)
        d["packetType"] = packetType

    def clear(self: Any) -> None:
        d = self.__dict__
        for k in [k for k in d if k not in private]:
            del d[k]

    cls.__init__ = __init__
    cls.clear = clear
    cls._acd_shared_tables = True
    return True


_share_paho_property_tables()


class BusError(Exception):
    """Any failure of the bus; ``__cause__`` holds the underlying error."""


def parse_url(url: str) -> dict[str, Any]:
    """``mqtt[s]://[user[:password]@]host[:port]`` -> its parts.

    Returns ``scheme``, ``host``, ``port``, ``username``, ``password`` (None
    when absent, percent-decoded) and ``tls`` (True for mqtts).  Raises
    ValueError naming what is wrong.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"bad MQTT URL {url!r}: {exc}") from None
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"bad MQTT URL {url!r}: bad port ({exc})") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"bad MQTT URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError(f"bad MQTT URL {url!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"bad MQTT URL {url!r}: no path, query or fragment allowed")
    return {
        "scheme": parts.scheme,
        "host": parts.hostname,
        "port": port or DEFAULT_PORTS[parts.scheme],
        "username": unquote(parts.username) if parts.username is not None else None,
        "password": unquote(parts.password) if parts.password is not None else None,
        "tls": parts.scheme == "mqtts",
    }


def backoff_delay(attempt: int, cap: float, base: float = 0.1) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): exponential,
    capped at ``cap``, jittered into its upper half so that many routers
    restarted together do not reconnect in lock-step."""
    ceiling = min(cap, base * 2 ** min(attempt, 30))
    return random.uniform(ceiling / 2, ceiling)


class _Lost(Exception):
    """The connection an operation ran on went away."""


class _Refused(aiomqtt.MqttError):
    """The broker said no to something retrying will not change."""


class _Conn:
    """One live connection: its client and a flag raised when it is lost.
    Acks are bound to the connection the message came on.  Coroutines
    waiting for PUBACKs (``publish_batch``) park a future in ``waiters``;
    every PUBACK, and the loss of the connection, wakes them all."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.lost = asyncio.Event()
        self.waiters: list[asyncio.Future[None]] = []
        paho = client._client  # noqa: SLF001
        inner = paho.on_publish  # aiomqtt's own (it completes client.publish())
        waiters = self.waiters

        def on_publish(*args: Any) -> None:
            if inner is not None:
                inner(*args)
            if waiters:
                wake(waiters)

        paho.on_publish = on_publish

    def close(self) -> None:
        """The connection is gone: raise the flag and wake every waiter."""
        self.lost.set()
        wake(self.waiters)

    async def progress(self) -> None:
        """Wait for the next PUBACK (or the loss: check ``lost`` after)."""
        if self.lost.is_set():
            return
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        await fut

    async def guard(self, aw: Awaitable[T]) -> T:
        """Run ``aw``, abandoning it with ``_Lost`` if the connection drops
        (aiomqtt would otherwise wait for a PUBACK that can never come)."""
        task = asyncio.ensure_future(aw)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            raise _Lost
        return task.result()


def wake(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve and forget every parked future."""
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


class _Wire:
    """paho's socket, driven by the event loop directly, in bulk.

    **Reads.**  paho reads a packet with two or three ``recv`` calls (its
    first byte, the length bytes one at a time, then the rest).  On a plain
    TCP socket, ``recv`` here takes up to 64 KiB from the kernel and serves
    paho's small reads from that, and ``loop_read`` goes on until what was
    taken is used up (the loop's reader only fires for data still in the
    kernel).

    **Writes.**

    aiomqtt hands paho's "I have something to write" to the loop with
    ``call_soon_threadsafe(add_writer)``; the packets then leave one
    ``send`` each, two loop turns later, and the writer is removed again:
    per outbound batch a self-pipe write and two ``epoll_ctl`` calls, per
    packet a syscall.  Here, on the loop's thread, a write is one
    ``call_soon`` for everything queued in the same turn, and on a plain
    TCP socket the packets paho writes in that turn leave in one ``send``
    (what the kernel does not take is kept, in order, and sent when the
    socket is writable again).  From another thread (paho's connect runs in
    an executor) it falls back to ``call_soon_threadsafe``.  Over TLS paho
    writes each packet itself (an ``SSLSocket`` has its own rules for
    partial writes); only the scheduling changes.
    """

    def __init__(self, paho: Any, loop: asyncio.AbstractEventLoop, coalesce: bool) -> None:
        self.paho = paho
        self.loop = loop
        self.thread = threading.get_ident()
        self.coalesce = coalesce
        self.scheduled = False
        self.chunks: list[bytes] = []
        self.backlog = bytearray()  # taken from paho, not yet taken by the kernel
        self.fd = -1  # the writer registered with the loop, if any
        self.rbuf = b""  # taken from the kernel, not yet read by paho
        self.rpos = 0
        if coalesce:
            paho._sock_recv = self._recv  # noqa: SLF001
            inner_read = paho.loop_read

            def loop_read(max_packets: int = 1) -> Any:
                while True:
                    rc = inner_read(max_packets)
                    if rc or self.rpos >= len(self.rbuf) or paho._sock is None:  # noqa: SLF001
                        return rc

            paho.loop_read = loop_read
        paho.on_socket_register_write = self._register
        paho.on_socket_unregister_write = self._unregister
        inner_close = paho.on_socket_close  # aiomqtt's: removes its reader

        def on_socket_close(client: Any, userdata: Any, sock: Any) -> None:
            # paho closes the socket right after handing over the last
            # packet (a DISCONNECT, so the broker must not fire the will):
            # one last try to send what is pending, then forget it
            if self.coalesce and (self.backlog or self.chunks):
                try:
                    sock.send(bytes(self.backlog) + b"".join(self.chunks))
                except OSError:
                    pass
            self.chunks.clear()
            self.rbuf, self.rpos = b"", 0
            self.backlog.clear()
            self._stop_writer()
            if inner_close is not None:
                inner_close(client, userdata, sock)

        paho.on_socket_close = on_socket_close

    def _register(self, _client: Any, _userdata: Any, _sock: Any) -> None:
        if self.scheduled:
            return
        self.scheduled = True
        if threading.get_ident() == self.thread:
            self.loop.call_soon(self._write)
        else:
            self.loop.call_soon_threadsafe(self._write)

    def _unregister(self, _client: Any, _userdata: Any, sock: Any) -> None:
        if self.fd >= 0 and not self.backlog:
            self._stop_writer()

    def _recv(self, bufsize: int) -> bytes:
        sock = self.paho._sock  # noqa: SLF001
        if sock is None:
            raise ConnectionError("self._sock is None")
        buf, pos = self.rbuf, self.rpos
        if pos >= len(buf):
            buf = sock.recv(65536)  # BlockingIOError: nothing there; b"": the peer closed
            if not buf:
                return buf
            self.rbuf, pos = buf, 0
        end = min(pos + bufsize, len(buf))
        self.rpos = end
        return buf if pos == 0 and end == len(buf) else buf[pos:end]

    def _collect(self, buf: bytes | bytearray) -> int:
        self.chunks.append(bytes(buf))
        return len(buf)

    def _write(self) -> None:
        self.scheduled = False
        paho = self.paho
        sock = paho._sock  # noqa: SLF001
        if sock is None:
            return
        if not self.coalesce:
            paho.loop_write()
            if paho.want_write():
                self._start_writer(sock)
            return
        paho._sock_send = self._collect  # noqa: SLF001 (shadows the method for this call)
        try:
            paho.loop_write()
        finally:
            del paho._sock_send  # noqa: SLF001
        if paho._sock is not sock:  # noqa: SLF001 - closed meanwhile (on_socket_close sent the rest)
            return
        if self.chunks:
            for c in self.chunks:
                self.backlog += c
            self.chunks.clear()
        if self.backlog and self.fd < 0:
            self._send(sock)

    def _send(self, sock: Any) -> None:
        try:
            n = sock.send(self.backlog)
        except BlockingIOError:
            n = 0
        except OSError:
            # the connection is going: the reader sees it and paho reports
            # the loss; unacknowledged QoS 1 messages are resent after it
            self.backlog.clear()
            self._stop_writer()
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        del self.backlog[:n]
        if self.backlog:
            self._start_writer(sock)
        else:
            self._stop_writer()

    def _on_writable(self) -> None:
        sock = self.paho._sock  # noqa: SLF001
        if sock is None:
            self.backlog.clear()
            self._stop_writer()
        elif self.coalesce:
            self._send(sock)
        else:
            self.paho.loop_write()
            if not self.paho.want_write():
                self._stop_writer()

    def _start_writer(self, sock: Any) -> None:
        if self.fd < 0:
            self.fd = sock.fileno()
            self.loop.add_writer(self.fd, self._on_writable)

    def _stop_writer(self) -> None:
        if self.fd >= 0:
            try:
                self.loop.remove_writer(self.fd)
            except (OSError, ValueError):  # pragma: no cover - fd already closed
                pass
            self.fd = -1


def _quiet_debug_log(paho: Any) -> None:
    """paho logs every packet at DEBUG through ``logging`` (a ``log()`` call
    and a level check each: ~3 % of a loaded router's CPU).  Debug lines are
    dropped before any of that unless its logger is enabled for DEBUG (asked
    at each line, so turning it on later works) or an ``on_log`` is set;
    warnings and errors always go through."""
    logger = getattr(paho, "_logger", None)
    if logger is None:
        return
    inner = paho._easy_log  # noqa: SLF001
    enabled = logger.isEnabledFor

    def easy_log(level: int, fmt: str, *args: Any) -> None:
        if level != MQTT_LOG_DEBUG or paho.on_log is not None or enabled(logging.DEBUG):
            inner(level, fmt, *args)

    paho._easy_log = easy_log  # noqa: SLF001


class MqttBus:
    """The ``Bus`` over MQTT 5 (see the module docstring for the guarantees).

    ``max_unacked`` (the MQTT 5 Receive Maximum) bounds the inbound messages
    queued here or handed to the daemon but not yet acknowledged: the broker
    sends no more until one is acked, so it is also the daemon's window.
    ``session_expiry`` is how long (seconds) the broker keeps the session,
    and so keeps queueing messages, while the router is away.
    """

    def __init__(
        self,
        url: str,
        topics: Topics,
        *,
        client_id: str = "acd-router",
        username: str | None = None,
        password: str | None = None,
        tls: bool | ssl.SSLContext = False,
        keepalive: int = 30,
        max_backoff: float = 10.0,
        log: Any = None,
        max_unacked: int = 32,
        session_expiry: int = 86400,
        subscribe: str | None = None,
        presence: bool = True,
    ) -> None:
        """``subscribe``: the topic filter of ``messages()`` (default: the
        router's inbound topics; the telephony side of ``acd replay --live``
        subscribes to ``out/#``).  ``presence``: publish the retained
        ``status`` and the last will (the router does; a player must not)."""
        parts = parse_url(url)
        if not client_id:
            raise ValueError("client_id must not be empty (a persistent session needs a stable id)")
        if not 1 <= max_unacked <= 65535:
            raise ValueError("max_unacked must be between 1 and 65535")
        if session_expiry < 1:
            raise ValueError("session_expiry must be at least 1 s (0 means no persistent session)")
        self.url = url
        self.topics = topics
        self.client_id = client_id
        self.filter = subscribe or topics.inbound
        self.presence = presence
        self._host, self._port = parts["host"], parts["port"]
        self._username = username if username is not None else parts["username"]
        self._password = password if password is not None else parts["password"]
        if isinstance(tls, ssl.SSLContext):
            self._tls: ssl.SSLContext | None = tls
        elif tls or parts["tls"]:
            self._tls = ssl.create_default_context()
        else:
            self._tls = None
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._max_unacked = max_unacked
        self._session_expiry = session_expiry
        self._log = log if log is not None else logging.getLogger("acd.bus.mqtt")
        # unbounded, but the Receive Maximum keeps it to max_unacked messages
        self._queue: asyncio.Queue[Message | None] = asyncio.Queue()
        self._conn: _Conn | None = None
        self._up = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._error: BusError | None = None
        self._closed = False
        self._up_since: float | None = None  # loop time the last connection came up

    # --- lifecycle ------------------------------------------------------

    async def __aenter__(self) -> "MqttBus":
        """Connect (failing fast with ``BusError``), then keep connected."""
        if self._runner is not None:
            raise BusError("MqttBus is not reusable; make a new one")
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._runner = asyncio.create_task(self._run(first), name=f"mqtt-bus {self.client_id}")
        try:
            await first
        except BaseException:
            await self._stop_runner()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Publish "offline" (retained) if connected, then disconnect cleanly
        (a clean disconnect does not fire the will)."""
        self._closed = True
        conn = self._conn
        if conn is not None and self.presence:
            try:
                await asyncio.wait_for(conn.guard(self._publish_on(conn, self.topics.status, b"offline", True)), 5)
            except (aiomqtt.MqttError, _Lost, asyncio.TimeoutError) as err:
                self._log.warning(f"mqtt: could not publish offline status: {err!r}")
        await self._stop_runner()

    async def _stop_runner(self) -> None:
        try:
            if self._runner is not None and not self._runner.done():
                self._runner.cancel()
                await asyncio.wait({self._runner})  # its own CancelledError stays inside
        finally:
            self._up.set()  # wake waiting publishers: they see the bus closed
            self._end_stream()

    # --- the Bus interface ------------------------------------------------

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Publish at QoS 1 and return once the broker has acknowledged it.

        While disconnected this waits for the next connection and retries, so
        nothing is dropped (a message whose PUBACK was lost with the
        connection is sent again: at-least-once).  Raises ``BusError`` if the
        bus is closed or has failed for good.
        """
        while True:
            conn = await self._connected()
            try:
                await conn.guard(self._publish_on(conn, topic, payload, retain))
                return
            except (aiomqtt.MqttError, _Lost) as err:
                self._log.info(f"mqtt: publish to {topic} interrupted ({err!r}); retrying")
                # normally the connection is going down: wait for the runner to
                # notice; the cap guards against an error that was not a loss
                try:
                    await asyncio.wait_for(conn.lost.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    async def publish_batch(self, items: Sequence[tuple[str, bytes, bool]]) -> None:
        """Publish ``(topic, payload, retain)`` items at QoS 1, in order,
        pipelined: all are handed to the connection at once and this returns
        when the broker has acknowledged every one.  ``publish`` waits for
        each PUBACK before the next message (one round trip per message);
        this takes one round trip for the lot.

        Same guarantees as ``publish``: while disconnected it waits and
        retries, resending in order the items not yet acknowledged (those
        may reach subscribers twice: at-least-once)."""
        todo = list(items)
        while todo:
            conn = await self._connected()
            done = [0]  # items acknowledged so far, in order
            try:
                await self._batch_on(conn, todo, done)
                return
            except (aiomqtt.MqttError, _Lost) as err:
                del todo[:done[0]]
                self._log.info(f"mqtt: batch of {len(todo)} publishes interrupted ({err!r}); retrying")
                try:
                    await asyncio.wait_for(conn.lost.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass

    @staticmethod
    async def _batch_on(conn: _Conn, todo: list[tuple[str, bytes, bool]], done: list[int]) -> None:
        # paho's own publish (aiomqtt's would need a task per message to
        # pipeline); paho keeps at most its max_inflight_messages on the wire
        # and sends the rest as PUBACKs come back, in order.
        paho = conn.client._client  # noqa: SLF001
        infos = []
        for topic, payload, retain in todo:
            info = paho.publish(topic, payload, 1, retain)
            if info.rc != MQTT_ERR_SUCCESS:
                raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
            infos.append(info)
        n = len(infos)
        k = 0
        while True:
            while k < n and infos[k].is_published():
                k += 1
            done[0] = k
            if k == n:
                return
            if conn.lost.is_set():
                raise _Lost
            await conn.progress()

    async def messages(self) -> AsyncIterator[Message]:
        """Every message on ``topics.inbound``, in arrival order, across
        reconnects.  Call ``await msg.ack()`` once it is journalled: until
        then the broker keeps it and resends it after a reconnect.  Ends when
        the bus is closed; raises ``BusError`` if the bus failed for good.
        """
        while True:
            msg = await self._queue.get()
            if msg is None:
                self._end_stream()  # leave the end mark for other readers
                if self._error is not None:
                    raise self._error
                return
            yield msg

    # --- internals ------------------------------------------------------

    async def _connected(self) -> _Conn:
        while True:
            if self._error is not None:
                raise self._error
            if self._closed:
                raise BusError("the MQTT bus is closed")
            if self._conn is not None and not self._conn.lost.is_set():
                return self._conn
            await self._up.wait()

    @staticmethod
    async def _publish_on(conn: _Conn, topic: str, payload: bytes, retain: bool) -> None:
        await conn.client.publish(topic, payload, qos=1, retain=retain, timeout=math.inf)

    def _new_client(self) -> aiomqtt.Client:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry
        props.ReceiveMaximum = self._max_unacked
        client = aiomqtt.Client(
            self._host,
            self._port,
            identifier=self.client_id,
            username=self._username,
            password=self._password,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
            keepalive=self._keepalive,
            tls_context=self._tls,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True) if self.presence else None,
            # paho leaves Nagle on: a small QoS 1 message then waits ~40 ms for
            # the peer's delayed ACK.  Decisions are small and urgent.
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )
        # aiomqtt has no public switch for this (checked up to 2.5.1).
        paho = client._client  # noqa: SLF001
        paho.manual_ack_set(True)
        _Wire(paho, asyncio.get_running_loop(), coalesce=self._tls is None)
        _quiet_debug_log(paho)
        return client

    async def _run(self, first: asyncio.Future[None]) -> None:
        """Own the connection: connect, pump inbound messages into the queue,
        and reconnect with back-off when the connection is lost."""
        attempt = -1
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    await self._session(first)
                    err: Exception = aiomqtt.MqttError("connection ended")
                except aiomqtt.MqttError as exc:
                    err = exc
                except Exception as exc:  # a bug, not weather: stop loudly
                    err = exc
                    self._log.exception("mqtt: unexpected error in the connection loop")
                fatal = self._fatal(err)
                if not first.done() or fatal:
                    wrapped = BusError(f"cannot use MQTT broker {self._where()}: {fatal or err}")
                    wrapped.__cause__ = err
                    if not first.done():
                        first.set_exception(wrapped)
                        return
                    self._log.error(f"mqtt: {wrapped}; giving up")
                    self._error = wrapped
                    self._up.set()  # wake publishers so they see the error
                    return
                # back-off restarts only after a connection that held: one that
                # drops at once (two routers sharing a client id take the
                # session from each other) must not reconnect in a tight loop
                held = self._up_since is not None and loop.time() - self._up_since >= _HEALTHY_AFTER
                attempt = 0 if held else attempt + 1
                delay = backoff_delay(attempt, self._max_backoff)
                self._log.warning(f"mqtt: connection to {self._where()} lost ({err}); retrying in {delay:.2f}s")
                await asyncio.sleep(delay)
        finally:
            if not first.done():  # cancelled or crashed before the first connection
                first.set_exception(self._error or BusError("the MQTT bus stopped before connecting"))
            self._end_stream()

    async def _session(self, first: asyncio.Future[None]) -> None:
        """One connection, from CONNECT to its loss (raises ``MqttError``)."""
        self._up_since = None
        client = self._new_client()
        async with client:
            conn = _Conn(client)
            try:
                self._take_messages(client, conn)
                granted = await client.subscribe(self.filter, qos=1)
                self._check_granted(granted[0])
                if self.presence:
                    await client.publish(self.topics.status, b"online", qos=1, retain=True)
                self._conn = conn
                self._up_since = asyncio.get_running_loop().time()
                self._up.set()
                if not first.done():
                    first.set_result(None)
                self._log.info(f"mqtt: connected to {self._where()} as {self.client_id}")
                await asyncio.wait({client._disconnected})  # noqa: SLF001 (never cancels it)
                exc = client._disconnected.exception()  # noqa: SLF001
                raise aiomqtt.MqttError("disconnected") from exc
            finally:
                self._up.clear()
                conn.close()
                self._conn = None
                self._purge()

    def _take_messages(self, client: aiomqtt.Client, conn: _Conn) -> None:
        """Route paho's inbound messages straight into our queue.

        aiomqtt's ``client.messages`` costs an asyncio task and an
        ``asyncio.wait`` per message and a second queue hop (measured: about
        a tenth of the router's CPU under load).  The Receive Maximum
        already bounds what can arrive unacknowledged, so paho's callback
        puts each message into our queue directly.  Messages paho delivered
        before this ran (a persistent session resends at once) wait in
        aiomqtt's queue: they are moved first, so the order holds."""
        paho = client._client  # noqa: SLF001
        queue = self._queue
        flt = self.filter
        if flt.endswith("/#") and "+" not in flt and flt.count("#") == 1:
            head, exact = flt[:-1], flt[:-2]

            def ours(topic: str) -> bool:
                return topic.startswith(head) or topic == exact
        else:

            def ours(topic: str) -> bool:
                return topic_matches_sub(flt, topic)

        acker = self._acker
        ack = paho.ack

        lost = conn.lost

        def take(topic: str, payload: bytes, mid: int, qos: int) -> None:
            if lost.is_set():
                return  # after the purge: unacked, so the broker resends it
            if not ours(topic):
                # a leftover subscription of this session: not ours to keep
                ack(mid, qos)
                return
            queue.put_nowait(Message(topic, payload, acker(conn, mid, qos)))

        old = client._queue  # noqa: SLF001
        while not old.empty():
            m = old.get_nowait()
            take(str(m.topic), bytes(m.payload), m.mid, m.qos)

        def on_message(_client: Any, _userdata: Any, m: Any) -> None:
            take(m.topic, m.payload, m.mid, m.qos)

        paho.on_message = on_message

    def _check_granted(self, code: Any) -> None:
        """A SUBACK is not an exception in aiomqtt: read it.  Refused (e.g. by
        an ACL) is fatal; QoS 0 instead of 1 would lose messages silently."""
        value = getattr(code, "value", code)
        if value >= 0x80:
            raise _Refused(f"subscription to {self.filter} refused: {code}")
        if value < 1:
            raise _Refused(f"broker granted QoS {value} for {self.filter}; at-least-once needs QoS 1")

    def _acker(self, conn: _Conn, mid: int, qos: int) -> Callable[[], Awaitable[None]]:
        """The ack of one message: a single PUBACK on the connection it came
        on; a no-op once that connection is gone (the broker resends the
        message, and that copy's ack is the one that counts) or if already
        acked (packet ids are reused, a second PUBACK could ack another
        message)."""
        done = False
        lost = conn.lost
        paho_ack = conn.client._client.ack  # noqa: SLF001

        async def ack() -> None:
            nonlocal done
            if done or lost.is_set():
                return
            done = True
            paho_ack(mid, qos)

        return ack

    def _purge(self) -> None:
        """Forget queued messages of a lost connection: they were never acked,
        so the broker resends them; keeping them would only make duplicates."""
        while not self._queue.empty():
            self._queue.get_nowait()

    def _end_stream(self) -> None:
        """Put the end mark that stops ``messages()``."""
        self._queue.put_nowait(None)

    @staticmethod
    def _fatal(err: Exception) -> str | None:
        """Why ``err`` is beyond retrying, or None if it is worth a retry."""
        if isinstance(err, MqttConnectError):
            rc = getattr(err.rc, "value", err.rc)
            return _FATAL_CONNACK.get(rc)  # type: ignore[arg-type]
        if isinstance(err, _Refused):
            return str(err)
        if not isinstance(err, aiomqtt.MqttError):
            return f"internal error {err!r}"
        return None

    def _where(self) -> str:
        return f"{'mqtts' if self._tls else 'mqtt'}://{self._host}:{self._port}"
