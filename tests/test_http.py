"""The HTTP API: health, state, Prometheus metrics, SSE, and the
state-changing routes behind a bearer token."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from acd.http import HttpServer, Request, Router, json_response, render_prometheus, sse_event
from test_daemon import CONFIG_YAML, H, _write, arrive

TOKEN = "s3cret-token"


async def call(port: int, method: str, path: str, body: object = None, headers: dict | None = None,
               raw: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if raw is None:
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else b"")
        head = f"{method} {path} HTTP/1.1\r\nHost: acd\r\nContent-Length: {len(data)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        raw = head.encode() + b"\r\n" + data
    writer.write(raw)
    await writer.drain()
    resp = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, payload = resp.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, hdrs, payload


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def no_token(monkeypatch):
    monkeypatch.delenv("ACD_API_TOKEN", raising=False)


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("ACD_API_TOKEN", TOKEN)


async def test_health_and_state(tmp_path, no_token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        assert h.daemon.http.host == "127.0.0.1"
        arrive(h, "c1")
        await h.settle()
        status, hdrs, body = await call(port, "GET", "/health")
        assert status == 200 and hdrs["content-type"] == "application/json"
        health = json.loads(body)
        assert (health["status"], health["contacts"], health["tenant"]) == ("ok", 1, "default")
        assert health["journal"]["fsync"] == "never"
        status, _, body = await call(port, "GET", "/state")
        assert status == 200 and json.loads(body) == json.loads(json.dumps(h.engine.snapshot()))
        status, hdrs, body = await call(port, "HEAD", "/health")
        assert status == 200 and body == b"" and int(hdrs["content-length"]) > 0


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (\S+)$')


def parse_prometheus(text: str) -> dict[str, float]:
    """Strict enough a reader of the text format: HELP and TYPE before the
    samples of a family, counters named *_total, no series twice."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge") and name not in types
            assert kind != "counter" or name.endswith("_total"), name
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        assert m[1] in types, f"sample before its TYPE: {line!r}"
        key = line.rsplit(" ", 1)[0]
        assert key not in samples, f"series twice: {key}"
        samples[key] = float(m[5])
    return samples


async def test_metrics_in_prometheus_format(tmp_path, no_token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        arrive(h, "c1")
        arrive(h, "c2")
        arrive(h, "c3")  # waits: two agents
        arrive(h, "c1")  # same id: a duplicate
        h.send("contact.arrived", b"{oops")
        h.send("agent.ready", {"agent": "ghost"})
        await h.settle()
        status, hdrs, body = await call(h.daemon.http.port, "GET", "/metrics")
        assert status == 200 and hdrs["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        m = parse_prometheus(body.decode())
        assert m['acd_contacts_offered_total{queue="support"}'] == 3
        assert m['acd_contacts_answered_total{queue="support"}'] == 0
        assert m['acd_contacts_waiting{queue="support"}'] == 1
        assert m['acd_agents{state="offered"}'] == 2 and m['acd_agents{state="ready"}'] == 0
        assert m['acd_errors_total{reason="bad_json"}'] == 1
        assert m['acd_errors_total{reason="rejected"}'] == 1
        assert m["acd_duplicates_total"] == 1
        assert m["acd_inbound_messages_total"] == 6
        assert m['acd_inbound_events_total{type="contact.arrived"}'] == 4
        assert m["acd_journal_records_total"] >= 4
        assert m["acd_decision_seq"] == h.daemon.state.seq
        assert "acd_deadline_lag_seconds" in m and m["acd_up"] == 1


async def test_state_changing_routes_are_refused_without_a_token(tmp_path, no_token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        for path, body in (("/drain", {}), ("/reload", {}), ("/agents/a-1/state", {"state": "logout"})):
            status, _, resp = await call(port, "POST", path, body)
            assert status == 403
            assert "ACD_API_TOKEN" in json.loads(resp)["detail"]
        assert not h.daemon.draining and h.engine.snapshot()["agents"]["a-1"]["state"] == "ready"


async def test_a_wrong_or_missing_token_is_refused(tmp_path, token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        for headers in ({}, auth("wrong"), {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN}):
            status, hdrs, _ = await call(port, "POST", "/drain", {}, headers)
            assert status == 401 and hdrs["www-authenticate"].startswith("Bearer")
        assert not h.daemon.draining
        status, _, body = await call(port, "POST", "/drain", {}, auth())
        assert status == 200 and json.loads(body) == {"draining": True, "contacts": 0}


async def test_token_from_a_named_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("ACD_API_TOKEN", raising=False)
    monkeypatch.setenv("MY_ACD_TOKEN", "other")
    async with H(tmp_path, http="127.0.0.1:0", api_token_env="MY_ACD_TOKEN") as h:
        status, _, _ = await call(h.daemon.http.port, "POST", "/drain", {}, auth("other"))
        assert status == 200


async def test_agent_state_route(tmp_path, token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        status, _, body = await call(port, "POST", "/agents/a-2/state", {"state": "not_ready", "reason": "lunch"},
                                     auth())
        res = json.loads(body)
        assert status == 200 and (res["state"], res["reason"]) == ("not_ready", "lunch")
        assert [e["type"] for e in res["events"]] == ["agent.state"]
        await h.settle()
        (ev,) = h.events("agent.state")  # published on the bus like any event
        assert (ev["agent"], ev["state"], ev["reason"]) == ("a-2", "not_ready", "lunch")
        assert h.daemon.state.seen(res["id"])  # journalled with an id
        status, _, body = await call(port, "POST", "/agents/a-2/state", {"state": "login"}, auth())
        assert status == 409 and json.loads(body)["detail"] == "agent is already logged in"
        status, _, body = await call(port, "POST", "/agents/a-2/state", {"state": "logout"}, auth())
        assert status == 200 and json.loads(body)["state"] == "offline"
        status, _, _ = await call(port, "POST", "/agents/nobody/state", {"state": "ready"}, auth())
        assert status == 404
        status, _, body = await call(port, "POST", "/agents/a-1/state", {"state": "asleep"}, auth())
        assert status == 400 and "login, ready, not_ready, logout" in json.loads(body)["detail"]
        status, _, _ = await call(port, "POST", "/agents/a-1/state", b"{nope", auth())
        assert status == 400
        status, _, _ = await call(port, "POST", "/agents/a-1/state", ["ready"], auth())
        assert status == 400


async def test_drain_and_reload_routes(tmp_path, token):
    cfg = tmp_path / "acd.yaml"
    _write(cfg, CONFIG_YAML.format(count=2))
    async with H(tmp_path, cfg, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        assert (await call(port, "POST", "/drain", None, auth()))[0] == 200
        arrive(h, "c1")
        await h.settle()
        assert [e["reason"] for e in h.out("error")] == ["draining"]
        status, _, body = await call(port, "POST", "/drain", {"drain": False}, auth())
        assert status == 200 and json.loads(body)["draining"] is False
        status, _, body = await call(port, "POST", "/reload", None, auth())
        assert status == 200 and json.loads(body)["status"] == "unchanged"
        _write(cfg, CONFIG_YAML.format(count=3))
        status, _, body = await call(port, "POST", "/reload", {}, auth())
        assert status == 200 and json.loads(body)["status"] == "applied"
        assert len(h.engine.agents) == 3
        _write(cfg, "queues: []\n")
        status, _, body = await call(port, "POST", "/reload", {}, auth())
        res = json.loads(body)
        assert status == 422 and res["status"] == "rejected" and "queues" in res["errors"][0]
        assert len(h.engine.agents) == 3
        _write(cfg, CONFIG_YAML.format(count=3))
        status, _, body = await call(port, "POST", "/reload?drain=yes", None, auth())
        assert status == 200 and json.loads(body)["status"] == "unchanged"
        status, _, _ = await call(port, "POST", "/reload", {"drain": "maybe"}, auth())
        assert status == 400


async def test_bad_requests(tmp_path, no_token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        port = h.daemon.http.port
        status, _, body = await call(port, "GET", "/nowhere")
        assert status == 404 and json.loads(body)["error"] == "not found"
        status, hdrs, _ = await call(port, "DELETE", "/health")
        assert status == 405 and hdrs["allow"] == "GET"
        status, hdrs, _ = await call(port, "GET", "/drain")
        assert status == 405 and hdrs["allow"] == "POST"
        assert (await call(port, "", "", raw=b"HELLO\r\n\r\n"))[0] == 400
        assert (await call(port, "", "", raw=b"GET /health SPDY/3\r\n\r\n"))[0] == 400
        assert (await call(port, "", "", raw=b"GET /health HTTP/1.1\r\nbroken\r\n\r\n"))[0] == 400
        assert (await call(port, "", "", raw=b"POST /drain HTTP/1.1\r\nContent-Length: 9999999\r\n\r\n"))[0] == 413
        assert (await call(port, "", "", raw=b"POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"))[0] == 411
        assert (await call(port, "", "", raw=b"GET / HTTP/1.1\r\nX: " + b"y" * 20000 + b"\r\n\r\n"))[0] == 431
        status, _, _ = await call(port, "GET", "/health")  # and it still serves
        assert status == 200


async def test_server_sent_events(tmp_path, no_token):
    async with H(tmp_path, http="127.0.0.1:0") as h:
        reader, writer = await asyncio.open_connection("127.0.0.1", h.daemon.http.port)
        writer.write(b"GET /events HTTP/1.1\r\nHost: acd\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert b"200 OK" in head and b"text/event-stream" in head
        assert await asyncio.wait_for(reader.readuntil(b"\n\n"), 5) == b": acd event stream\n\n"
        arrive(h, "c1")
        await h.settle()
        chunk = await asyncio.wait_for(reader.readuntil(b"\n\n"), 5)
        lines = chunk.decode().splitlines()
        assert lines[0] == "event: decision" and json.loads(lines[1][len("data: "):])["contact"] == "c1"
        writer.close()


def test_render_prometheus_escapes():
    text = render_prometheus([
        ("x_total", "counter", "a help\nwith a newline \\ backslash", [({"q": 'a "quoted"\\ \nname'}, 3)]),
        ("y", "gauge", "odd values", [({}, float("nan")), ({"k": "inf"}, float("inf")), ({"k": "b"}, True)]),
    ])
    assert text == (
        "# HELP x_total a help\\nwith a newline \\\\ backslash\n"
        "# TYPE x_total counter\n"
        'x_total{q="a \\"quoted\\"\\\\ \\nname"} 3\n'
        "# HELP y odd values\n"
        "# TYPE y gauge\n"
        "y NaN\n"
        'y{k="inf"} +Inf\n'
        'y{k="b"} 1\n'
    )
    assert sse_event("a\nb", event="e", id=4) == b"event: e\nid: 4\ndata: a\ndata: b\n\n"


async def test_the_route_table_takes_a_wallboard_page(no_token):
    router = Router()
    router.get("/", lambda req: json_response({"page": "wallboard"}))

    async def hello(req: Request):
        return json_response({"hello": req.params["name"], "q": req.query.get("x")})

    router.get("/hello/{name}", hello)
    server = await HttpServer(router).start()
    try:
        status, _, body = await call(server.port, "GET", "/")
        assert status == 200 and json.loads(body) == {"page": "wallboard"}
        status, _, body = await call(server.port, "GET", "/hello/J%C3%B3zef?x=1")
        assert json.loads(body) == {"hello": "Józef", "q": "1"}
    finally:
        await server.close()
