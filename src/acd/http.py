"""The daemon's HTTP API: small and dependency-free (asyncio streams).

Bound to 127.0.0.1 unless told otherwise.  Routes (``api_router``)::

    GET  /health                200, JSON: status, versions, counts, journal
    GET  /state                 the engine's snapshot: queues and agents
    GET  /metrics               Prometheus text exposition format (0.0.4)
    GET  /events                Server-Sent Events: everything published on the bus
    GET  /                      the live wallboard page (``acd.wallboard``)
    GET  /wallboard.json        its data: queues, agents, SL today / this interval
    GET  /wallboard/events      Server-Sent Events: wallboard snapshots as they change
    POST /reload                {"drain": bool}?  re-read the config file
    POST /drain                 {"drain": bool}?  refuse new contacts (default true)
    POST /agents/<id>/state     {"state": "login"|"ready"|"not_ready"|"logout", "reason": str?}

The POST routes change the router, so they need ``Authorization: Bearer
<token>``; the token is read from the environment variable named by the
daemon's ``api_token_env`` (default ``ACD_API_TOKEN``) at each request.
With no token configured they are refused (403) with a message saying how
to enable them; a missing or wrong token gets 401.

The server is deliberately minimal: HTTP/1.1, one request per connection
(``Connection: close``), ``Content-Length`` bodies only (no chunked uploads),
16 KiB of headers, 64 KiB of body, 10 s to send a request.  ``Router`` is a
route table (method + path pattern with ``{name}`` parts -> handler), so a
wallboard page at ``/`` is one ``router.get("/", ...)`` away; ``sse_stream``
turns an async iterator into an event stream for it.
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import json
import math
import os
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl, unquote

import msgspec

from .logs import get_logger

__all__ = [
    "HttpError", "HttpServer", "Request", "Response", "Router", "StreamResponse", "api_router",
    "json_response", "render_prometheus", "sse_event", "sse_stream", "start_api",
]

MAX_HEADER = 16 << 10
MAX_BODY = 64 << 10
READ_TIMEOUT = 10.0

REASONS = {
    200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 411: "Length Required",
    413: "Payload Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Entity",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 501: "Not Implemented",
    503: "Service Unavailable",
}
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_json = msgspec.json.Encoder()


# --- requests and responses ---------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # from the route pattern

    def json(self, default: Any = None) -> Any:
        """The body as JSON (``default`` when empty); HttpError 400 if bad."""
        if not self.body.strip():
            return default
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    """A response written as ``chunks`` come (SSE); ends with the iterator."""

    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=lambda: {"Cache-Control": "no-cache"})


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, _json.encode(obj) + b"\n", "application/json", headers or {})


def _error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"error": REASONS.get(status, "error").lower(), "detail": message}, status, headers)


# --- routing ----------------------------------------------------------------------------------

Handler = Callable[[Request], "Response | StreamResponse | Awaitable[Response | StreamResponse]"]


@dataclass
class Route:
    method: str
    pattern: str
    regex: re.Pattern[str]
    handler: Handler
    auth: bool


class Router:
    """Method + path pattern -> handler.  ``{name}`` matches one path
    segment (percent-decoded into ``request.params[name]``); ``auth=True``
    routes need the bearer token."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, auth: bool = False) -> None:
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        self.routes.append(Route(method.upper(), pattern, re.compile(regex), handler, auth))

    def get(self, pattern: str, handler: Handler, **kw: Any) -> None:
        self.add("GET", pattern, handler, **kw)

    def post(self, pattern: str, handler: Handler, **kw: Any) -> None:
        self.add("POST", pattern, handler, **kw)

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], list[str]]:
        """(route, params, []) or (None, {}, methods allowed on that path)."""
        allowed = []
        for r in self.routes:
            m = r.regex.match(path)
            if m is None:
                continue
            if r.method == method or (method == "HEAD" and r.method == "GET"):
                return r, {k: unquote(v) for k, v in m.groupdict().items()}, []
            allowed.append(r.method)
        return None, {}, allowed


# --- the server -----------------------------------------------------------------------------


class HttpServer:
    """Serves a ``Router``.  ``token()`` returns the API token (None: the
    auth routes are refused); ``token_hint`` names where it comes from."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0, *,
                 token: Callable[[], str | None] = lambda: None, token_hint: str = "ACD_API_TOKEN",
                 log: Any = None):
        self.router = router
        self.host = host
        self.port = port
        self.token = token
        self.token_hint = token_hint
        self.log = log if log is not None else get_logger("acd.http")
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task] = set()

    async def start(self) -> "HttpServer":
        self._server = await asyncio.start_server(self._connection, self.host, self.port, limit=MAX_HEADER)
        self.port = self._server.sockets[0].getsockname()[1]
        self.log.info("http api listening", host=self.host, port=self.port)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            try:
                req = await asyncio.wait_for(read_request(reader), READ_TIMEOUT)
            except HttpError as exc:
                await self._write(writer, _error_response(exc.status, exc.message, exc.headers), head_only=False)
                return
            except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            resp = await self.dispatch(req)
            await self._write(writer, resp, head_only=req.method == "HEAD")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            try:
                writer.close()
            except Exception:  # pragma: no cover
                pass

    async def dispatch(self, req: Request) -> Response | StreamResponse:
        route, params, allowed = self.router.match(req.method, req.path)
        if route is None:
            if allowed:
                return _error_response(405, f"{req.method} is not allowed on {req.path}",
                                       {"Allow": ", ".join(sorted(set(allowed)))})
            return _error_response(404, f"no such resource: {req.path}")
        req.params = params
        if route.auth:
            refused = self._check_auth(req)
            if refused is not None:
                return refused
        try:
            resp = route.handler(req)
            if inspect.isawaitable(resp):
                resp = await resp
            return resp
        except HttpError as exc:
            return _error_response(exc.status, exc.message, exc.headers)
        except Exception as exc:
            self.log.error("http handler failed", path=req.path, error=str(exc), exc_info=exc)
            return _error_response(500, f"internal error: {exc}")

    def _check_auth(self, req: Request) -> Response | None:
        token = self.token()
        if not token:
            return _error_response(403, f"{req.method} {req.path} changes the router and is disabled: no API token "
                                        f"is configured (set the {self.token_hint} environment variable)")
        scheme, _, cred = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(cred.strip().encode(), token.encode()):
            self.log.warning("http auth refused", path=req.path, method=req.method)
            return _error_response(401, "missing or wrong bearer token",
                                   {"WWW-Authenticate": 'Bearer realm="acd"'})
        return None

    async def _write(self, writer: asyncio.StreamWriter, resp: Response | StreamResponse, head_only: bool) -> None:
        reason = REASONS.get(resp.status, "Unknown")
        lines = [f"HTTP/1.1 {resp.status} {reason}", f"Content-Type: {resp.content_type}", "Connection: close"]
        if isinstance(resp, StreamResponse):
            lines += [f"{k}: {v}" for k, v in resp.headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            await writer.drain()
            if head_only:
                return
            try:
                async for chunk in resp.chunks:
                    writer.write(chunk)
                    await writer.drain()
            finally:
                aclose = getattr(resp.chunks, "aclose", None)
                if aclose is not None:
                    await aclose()
            return
        lines.append(f"Content-Length: {len(resp.body)}")
        lines += [f"{k}: {v}" for k, v in resp.headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else resp.body))
        await writer.drain()


async def read_request(reader: asyncio.StreamReader) -> Request:
    """Parse one request; HttpError for what the client got wrong."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, f"request headers are over {MAX_HEADER} bytes") from None
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise
        raise HttpError(400, "incomplete request") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"bad request line {lines[0][:100]!r}")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, f"bad header line {line[:100]!r}")
        name = name.lower()
        value = value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if "transfer-encoding" in headers:
        raise HttpError(411, "chunked request bodies are not supported: send Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HttpError(400, "bad Content-Length") from None
    if length < 0:
        raise HttpError(400, "bad Content-Length")
    if length > MAX_BODY:
        raise HttpError(413, f"request body is over {MAX_BODY} bytes")
    body = await reader.readexactly(length) if length else b""
    path, _, query = target.partition("?")
    if not path.startswith("/"):
        raise HttpError(400, "the request target must be a path")
    return Request(method.upper(), path, dict(parse_qsl(query)), headers, body)


# --- Server-Sent Events -------------------------------------------------------------------------


def sse_event(data: str | bytes, event: str | None = None, id: str | int | None = None) -> bytes:
    """One SSE message (multi-line data is split into ``data:`` lines)."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    out = []
    if event:
        out.append(f"event: {event}")
    if id is not None:
        out.append(f"id: {id}")
    out += [f"data: {line}" for line in text.split("\n")]
    return ("\n".join(out) + "\n\n").encode()


async def sse_stream(source: AsyncIterator[bytes], keepalive: float = 15.0) -> AsyncIterator[bytes]:
    """Pass SSE chunks on, with a comment line every ``keepalive`` s of
    silence so proxies keep the connection open."""
    it = source.__aiter__()
    yield b": acd event stream\n\n"
    while True:
        try:
            chunk = await asyncio.wait_for(it.__anext__(), keepalive)
        except asyncio.TimeoutError:
            yield b": keepalive\n\n"
            continue
        except StopAsyncIteration:
            return
        yield chunk


# --- Prometheus -----------------------------------------------------------------------------


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(v: float) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def render_prometheus(metrics: Iterable[tuple[str, str, str, list[tuple[dict[str, str], float]]]]) -> str:
    """``(name, type, help, [(labels, value)])`` -> text exposition format."""
    lines = []
    for name, kind, help_, samples in metrics:
        lines.append(f"# HELP {name} " + help_.replace("\\", "\\\\").replace("\n", "\\n"))
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                lbl = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{lbl}}} {_value(value)}")
            else:
                lines.append(f"{name} {_value(value)}")
    return "\n".join(lines) + "\n"


# --- the daemon's API -------------------------------------------------------------------------

AGENT_STATES = ("login", "ready", "not_ready", "logout")


def api_router(daemon: Any) -> Router:
    """The routes of the daemon's API (see the module docstring)."""
    from .core.events import AgentLogin, AgentLogout, AgentNotReady, AgentReady, InputRejected

    r = Router()

    def health(req: Request) -> Response:
        h = daemon.health()
        return json_response(h, 200 if daemon.status == "running" else 503)

    def state(req: Request) -> Response:
        return json_response(daemon.state.engine.snapshot())

    def metrics(req: Request) -> Response:
        return Response(200, render_prometheus(daemon.metrics()).encode(), PROMETHEUS_TYPE)

    def events(req: Request) -> StreamResponse:
        q = daemon.subscribe()

        async def source() -> AsyncIterator[bytes]:
            try:
                while True:
                    item = await q.get()
                    if item is None:
                        return
                    topic, payload = item
                    yield sse_event(payload, event=topic.rsplit("/", 1)[-1])
            finally:
                daemon.unsubscribe(q)

        return StreamResponse(sse_stream(source()))

    def _flag(req: Request, name: str, default: bool) -> bool:
        body = req.json({})
        if not isinstance(body, dict):
            raise HttpError(400, "body must be a JSON object")
        value = body.get(name, req.query.get(name, default))
        if isinstance(value, str):
            value = {"1": True, "true": True, "yes": True, "on": True,
                     "0": False, "false": False, "no": False, "off": False}.get(value.lower(), value)
        if not isinstance(value, bool):
            raise HttpError(400, f"{name!r} must be true or false")
        return value

    def reload(req: Request) -> Response:
        res = daemon.reload(drain=_flag(req, "drain", False))
        return json_response(res, 422 if res["status"] == "rejected" else 200)

    def drain(req: Request) -> Response:
        return json_response(daemon.set_drain(_flag(req, "drain", True)))

    async def agent_state(req: Request) -> Response:
        agent = req.params["agent"]
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, 'body must be a JSON object like {"state": "ready"}')
        want = body.get("state")
        reason = body.get("reason")
        if want not in AGENT_STATES:
            raise HttpError(400, f"state must be one of {', '.join(AGENT_STATES)}, got {want!r}")
        if reason is not None and not isinstance(reason, str):
            raise HttpError(400, "reason must be a string")
        if agent not in daemon.state.engine.agents:
            raise HttpError(404, f"unknown agent {agent!r}")
        eid = f"http-{uuid.uuid4().hex}"
        if want == "login":
            ev: Any = AgentLogin(agent=agent, reason=reason, id=eid)
        elif want == "ready":
            ev = AgentReady(agent=agent, id=eid)
        elif want == "not_ready":
            ev = AgentNotReady(agent=agent, reason=reason or "break", id=eid)
        else:
            ev = AgentLogout(agent=agent, id=eid)
        try:
            res = await daemon.submit(ev)
        except RuntimeError as exc:
            raise HttpError(503, str(exc)) from None
        outputs = res.get("outputs", [])
        for o in outputs:
            if isinstance(o, InputRejected):
                return json_response({"error": "conflict", "detail": o.reason, "agent": agent}, 409)
        snap = daemon.state.engine.snapshot()["agents"].get(agent, {})
        return json_response({"agent": agent, "state": snap.get("state"), "reason": snap.get("reason"),
                              "id": eid, "events": msgspec.to_builtins(outputs)})

    r.get("/health", health)
    r.get("/state", state)
    r.get("/metrics", metrics)
    r.get("/events", events)
    r.post("/reload", reload, auth=True)
    r.post("/drain", drain, auth=True)
    r.post("/agents/{agent}/state", agent_state, auth=True)
    from .wallboard import add_routes

    add_routes(r, daemon)
    return r


async def start_api(daemon: Any, host: str = "127.0.0.1", port: int = 0) -> HttpServer:
    """Serve ``api_router(daemon)``; the token is read at each request from
    ``daemon.options.api_token`` or the environment variable it names."""
    opts = daemon.options

    def token() -> str | None:
        return opts.api_token or os.environ.get(opts.api_token_env) or None

    server = HttpServer(api_router(daemon), host, port, token=token, token_hint=opts.api_token_env,
                        log=get_logger("acd.http", tenant=opts.tenant))
    return await server.start()
