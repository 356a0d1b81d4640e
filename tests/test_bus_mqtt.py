"""MqttBus against a real Mosquitto (the ``mosquitto`` fixture, conftest.py).

The telephony side is played by plain aiomqtt clients.  Every wait is
bounded: a broken bus fails a test, it never hangs it.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest
from aiomqtt.exceptions import MqttConnectError

from acd.bus import Message, Topics
from acd.bus.mqtt import BusError, MqttBus, backoff_delay, parse_url

FAST = {"max_backoff": 0.3, "keepalive": 5}


# --- helpers: the telephony side -------------------------------------------


async def send(broker, topic: str, *payloads: bytes) -> None:
    """Publish at QoS 1 as an outside client."""
    async with aiomqtt.Client(broker.host, broker.port) as c:
        for p in payloads:
            await c.publish(topic, p, qos=1)


async def next_msg(bus: MqttBus, timeout: float = 5.0) -> Message:
    gen = bus.messages()
    try:
        return await asyncio.wait_for(anext(gen), timeout)
    finally:
        await gen.aclose()


async def take(bus: MqttBus, n: int, *, ack: bool = True) -> list[bytes]:
    out = []
    for _ in range(n):
        m = await next_msg(bus)
        if ack:
            await m.ack()
        out.append(m.payload)
    return out


async def assert_quiet(bus: MqttBus, wait: float = 0.5) -> None:
    with pytest.raises(asyncio.TimeoutError):
        m = await next_msg(bus, wait)
        pytest.fail(f"unexpected message {m}")


async def status_of(broker, topics: Topics, want: bytes | None = None, timeout: float = 5.0) -> aiomqtt.Message:
    """The (retained) status message; with ``want``, wait until it says that."""
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.subscribe(topics.status, qos=1)
        async with asyncio.timeout(timeout):
            async for m in c.messages:
                if want is None or m.payload == want:
                    return m
    raise AssertionError("unreachable")


async def session(broker, client_id: str, topic: str, wait: float = 0.5) -> list[bytes]:
    """Connect a persistent-session watcher, subscribe, return what arrives
    within ``wait`` seconds (the first call just creates the session)."""
    got: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id, clean_session=False) as c:
        await c.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(wait):
                async for m in c.messages:
                    got.append(m.payload)
        except TimeoutError:
            pass
    return got


# --- pure parts ---------------------------------------------------------------


def test_parse_url_accepts_mqtt_and_mqtts_with_credentials() -> None:
    assert parse_url("mqtt://broker") == {
        "scheme": "mqtt", "host": "broker", "port": 1883, "username": None, "password": None, "tls": False}
    assert parse_url("mqtts://broker.example:9000") == {
        "scheme": "mqtts", "host": "broker.example", "port": 9000, "username": None, "password": None, "tls": True}
    assert parse_url("mqtts://b")["port"] == 8883
    u = parse_url("mqtt://acd:p%40ss%3Aw@[::1]:1884/")
    assert (u["username"], u["password"], u["host"], u["port"]) == ("acd", "p@ss:w", "::1", 1884)


@pytest.mark.parametrize("url, why", [
    ("http://broker:1883", "scheme"),
    ("broker:1883", "scheme"),
    ("mqtt://:1883", "no host"),
    ("mqtt://broker:99999", "bad port"),
    ("mqtt://broker:port", "bad port"),
    ("mqtt://broker/acd", "path"),
    ("mqtt://broker?x=1", "query"),
])
def test_parse_url_rejects_bad_urls_with_reason(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_url(url)
    with pytest.raises(ValueError, match="bad MQTT URL"):
        MqttBus(url, Topics())


def test_backoff_grows_is_jittered_and_capped() -> None:
    firsts = {backoff_delay(0, 10.0) for _ in range(50)}
    assert all(0.05 <= d <= 0.1 for d in firsts) and len(firsts) > 1
    assert all(5.0 <= backoff_delay(n, 10.0) <= 10.0 for n in (7, 20, 1000))
    assert backoff_delay(3, 10.0) <= 0.8


# --- against a real broker ------------------------------------------------------


async def test_status_online_retained_at_qos1_and_offline_on_clean_exit(mosquitto) -> None:
    t = Topics("st")
    async with MqttBus(mosquitto.url, t, client_id="st-router", **FAST):
        m = await status_of(mosquitto, t)
        assert (m.payload, m.retain, m.qos) == (b"online", True, 1)
    m = await status_of(mosquitto, t)
    assert (m.payload, m.retain) == (b"offline", True)


async def test_messages_yield_every_inbound_topic_in_order_and_publish_is_qos1(mosquitto) -> None:
    t = Topics("io")
    async with asyncio.timeout(15):
        async with MqttBus(mosquitto.url, t, client_id="io-router", **FAST) as bus:
            await send(mosquitto, t.decision, b"not inbound")
            await send(mosquitto, t.inbound_for("contact.arrived"), b"1")
            await send(mosquitto, t.inbound_for("agent.login"), b"2")
            await send(mosquitto, f"{t.prefix}/in/x", b"3")
            got = [await next_msg(bus) for _ in range(3)]
            assert [(m.topic, m.payload) for m in got] == [
                (t.inbound_for("contact.arrived"), b"1"), (t.inbound_for("agent.login"), b"2"),
                (f"{t.prefix}/in/x", b"3")]
            for m in got:
                await m.ack()
            await assert_quiet(bus)

            async with aiomqtt.Client(mosquitto.host, mosquitto.port) as watcher:
                await watcher.subscribe(t.event, qos=1)
                await bus.publish(t.event, b'{"type":"contact.queued"}')
                async with asyncio.timeout(5):
                    m = await anext(watcher.messages)
                assert (m.payload, m.qos) == (b'{"type":"contact.queued"}', 1)


async def test_acked_messages_are_not_redelivered_unacked_ones_are(mosquitto) -> None:
    t = Topics("ack")
    async with asyncio.timeout(20):
        async with MqttBus(mosquitto.url, t, client_id="ack-router", **FAST) as bus:
            await send(mosquitto, t.inbound_for("contact.arrived"), b"a", b"b", b"c")
            first = await next_msg(bus)
            await first.ack()
            await first.ack()  # a second ack is a harmless no-op
            assert await take(bus, 2, ack=False) == [b"b", b"c"]
        # b and c were handed out but never acknowledged: the broker kept them
        async with MqttBus(mosquitto.url, t, client_id="ack-router", **FAST) as bus:
            assert await take(bus, 2) == [b"b", b"c"]
            await assert_quiet(bus)
        async with MqttBus(mosquitto.url, t, client_id="ack-router", **FAST) as bus:
            await assert_quiet(bus)


CRASHING_ROUTER = """
import asyncio, sys
from acd.bus import Topics
from acd.bus.mqtt import MqttBus

async def main(url, client_id, tenant):
    async with MqttBus(url, Topics(tenant), client_id=client_id) as bus:
        print("up", flush=True)
        async for m in bus.messages():
            print("got", m.payload.decode(), flush=True)  # ...and die before m.ack()
            await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_crash_before_ack_fires_the_will_and_the_broker_redelivers(mosquitto) -> None:
    t = Topics("crash")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_ROUTER, mosquitto.url, "crash-router", t.tenant,
        stdout=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(20):
            assert await proc.stdout.readline() == b"up\n"
            assert (await status_of(mosquitto, t)).payload == b"online"
            await send(mosquitto, t.inbound_for("contact.arrived"), b"journal-me")
            assert await proc.stdout.readline() == b"got journal-me\n"
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            m = await status_of(mosquitto, t, want=b"offline")  # the last will
            assert m.retain
            async with MqttBus(mosquitto.url, t, client_id="crash-router", **FAST) as bus:
                m = await next_msg(bus)
                assert m.payload == b"journal-me"
                await m.ack()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_persistent_session_queues_messages_while_the_router_is_down(mosquitto) -> None:
    t = Topics("ps")
    async with asyncio.timeout(20):
        async with MqttBus(mosquitto.url, t, client_id="ps-router", **FAST):
            pass  # the session (and its subscription) now exists
        await send(mosquitto, t.inbound_for("contact.arrived"), *[f"m{i}".encode() for i in range(5)])
        async with MqttBus(mosquitto.url, t, client_id="ps-router", **FAST) as bus:
            assert await take(bus, 5) == [f"m{i}".encode() for i in range(5)]


async def test_broker_holds_back_beyond_max_unacked_and_nothing_is_dropped(mosquitto) -> None:
    t = Topics("bp")
    payloads = [f"m{i}".encode() for i in range(8)]
    async with asyncio.timeout(20):
        async with MqttBus(mosquitto.url, t, client_id="bp-router", max_unacked=3, **FAST) as bus:
            await send(mosquitto, t.inbound_for("contact.arrived"), *payloads)
            held = [await next_msg(bus) for _ in range(3)]
            await assert_quiet(bus)  # the broker stops at 3 unacknowledged
            assert bus._queue.qsize() == 0
            await held[0].ack()
            fourth = await next_msg(bus)
            assert fourth.payload == b"m3"
            for m in (*held[1:], fourth):
                await m.ack()
            rest = await take(bus, 4)
            assert [m.payload for m in held] + [fourth.payload] + rest == payloads


async def test_reconnects_after_broker_restart_and_publish_waits_instead_of_dropping(mosquitto) -> None:
    t = Topics("rc")
    out = f"{t.prefix}/out/#"
    async with asyncio.timeout(30):
        await session(mosquitto, "rc-watcher", out, wait=0)
        async with MqttBus(mosquitto.url, t, client_id="rc-router", **FAST) as bus:
            await asyncio.to_thread(mosquitto.stop)
            pending = asyncio.create_task(bus.publish(t.event, b"made while down"))
            await asyncio.sleep(0.5)
            assert not pending.done()  # waiting for the broker, not dropped or failed
            await asyncio.to_thread(mosquitto.start)
            await asyncio.wait_for(pending, 10)
            # the session survived the restart: the subscription is still there
            await send(mosquitto, t.inbound_for("agent.ready"), b"after restart")
            m = await next_msg(bus)
            assert m.payload == b"after restart"
            await m.ack()
            assert (await status_of(mosquitto, t)).payload == b"online"
        assert b"made while down" in await session(mosquitto, "rc-watcher", out)


async def test_resubscribes_when_the_broker_lost_the_session(mosquitto) -> None:
    t = Topics("rs")
    async with asyncio.timeout(20):
        async with MqttBus(mosquitto.url, t, client_id="rs-router", **FAST) as bus:
            await asyncio.to_thread(mosquitto.kill)  # SIGKILL: nothing persisted, session gone
            await asyncio.to_thread(mosquitto.start)
            await bus.publish(t.event, b"reconnected")  # waits for the new connection
            await send(mosquitto, t.inbound_for("agent.ready"), b"to a fresh session")
            m = await next_msg(bus)
            assert m.payload == b"to a fresh session"
            await m.ack()


async def test_close_releases_a_publisher_waiting_for_the_broker(mosquitto) -> None:
    t = Topics("cl")
    async with asyncio.timeout(15):
        bus = MqttBus(mosquitto.url, t, client_id="cl-router", **FAST)
        async with bus:
            await asyncio.to_thread(mosquitto.stop)
            pending = asyncio.create_task(bus.publish(t.event, b"x"))
            reader = asyncio.create_task(anext(bus.messages(), "ended"))
            await asyncio.sleep(0.3)
        with pytest.raises(BusError, match="closed"):
            await pending
        assert await reader == "ended"
        with pytest.raises(BusError, match="closed"):
            await bus.publish(t.event, b"y")


async def test_unreachable_broker_fails_fast_with_bus_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with asyncio.timeout(10):
        with pytest.raises(BusError, match=f"127.0.0.1:{port}") as err:
            async with MqttBus(f"mqtt://127.0.0.1:{port}", Topics(), **FAST):
                pass
    assert isinstance(err.value.__cause__, aiomqtt.MqttError)


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed")
    path = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(path), "router", "s3cret"], check=True)
    return path


async def test_credentials_from_url_or_arguments_and_wrong_password_is_a_clear_error(
        mosquitto_factory, password_file: Path) -> None:
    broker = mosquitto_factory(f"password_file {password_file}", anonymous=False)
    t = Topics("pw")
    async with asyncio.timeout(20):
        async with MqttBus(f"mqtt://router:s3cret@{broker.host}:{broker.port}", t, **FAST) as bus:
            await bus.publish(t.event, b"ok")
        async with MqttBus(broker.url, t, username="router", password="s3cret", **FAST) as bus:
            await bus.publish(t.event, b"ok")
        for kw in ({"username": "router", "password": "wrong"}, {}):
            with pytest.raises(BusError, match="not authorised|bad user name") as err:
                async with MqttBus(broker.url, t, **kw, **FAST):
                    pass
            assert isinstance(err.value.__cause__, MqttConnectError)


async def test_refusal_after_reconnect_is_fatal_not_an_endless_retry(mosquitto) -> None:
    t = Topics("fa")
    async with asyncio.timeout(20):
        async with MqttBus(mosquitto.url, t, client_id="fa-router", **FAST) as bus:
            await asyncio.to_thread(mosquitto.stop)
            conf = mosquitto.conf_path.read_text()
            mosquitto.conf_path.write_text(conf.replace("allow_anonymous true", "allow_anonymous false"))
            await asyncio.to_thread(mosquitto.start)
            with pytest.raises(BusError, match="not authorised"):
                await next_msg(bus, 10)
            with pytest.raises(BusError, match="not authorised"):
                await bus.publish(t.event, b"x")


async def test_a_broker_without_qos1_is_a_clear_error(mosquitto_factory) -> None:
    broker = mosquitto_factory("max_qos 0")  # at-least-once is impossible there
    async with asyncio.timeout(10):
        with pytest.raises(BusError, match="QoS 1 not supported"):
            async with MqttBus(broker.url, Topics("q0"), **FAST):
                pass


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True)
    return cert, key


async def test_tls_with_a_trusted_context_works_and_an_untrusted_cert_is_refused(
        mosquitto_factory, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    broker = mosquitto_factory(f"certfile {cert}\nkeyfile {key}")
    url = f"mqtts://{broker.host}:{broker.port}"
    t = Topics("tls")
    async with asyncio.timeout(20):
        ctx = ssl.create_default_context(cafile=str(cert))
        async with MqttBus(url, t, tls=ctx, **FAST) as bus:
            await bus.publish(t.inbound_for("contact.arrived"), b"over tls")  # loops back to us
            m = await next_msg(bus)
            assert m.payload == b"over tls"
            await m.ack()
        with pytest.raises(BusError, match="CERTIFICATE_VERIFY_FAILED"):
            async with MqttBus(url, t, **FAST):  # mqtts implies TLS; the system CAs do not know this cert
                pass
