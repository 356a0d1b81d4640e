"""The stdio bus: JSON lines on stdin and stdout, for pipes, scripts and tests.

``acd run --bus stdio`` reads one inbound message per stdin line and writes
everything it publishes, and every acknowledgement, as lines on stdout::

    stdin:  {"topic": "acd/default/in/contact/arrived", "payload": {"id": "a1", "contact": "c1", "queue": "support"}}
    stdout: {"topic": "acd/default/out/decision", "payload": "{\\"seq\\":1,...}", "retain": false}
    stdout: {"ack": 1}

An inbound ``payload`` that is a JSON string is taken as the raw payload text
(so malformed payloads can be sent); any other JSON value is re-encoded.
Outbound payloads are always the raw text.  ``{"ack": n}`` acknowledges the
n-th stdin line (1-based; blank lines count): a driver that restarts the
daemon after a crash re-sends the lines never acknowledged (at-least-once,
like an MQTT broker would).  A stdin line that is not such an object is
handed on with topic ``""`` (the daemon answers it on ``out/error``).

stdin is read by a daemon thread with ``os.read`` (works for pipes, FIFOs and
regular files alike); stdout lines are written whole with one ``write`` each, so a reader
never sees half a line even if the process is killed.  End of stdin ends
``messages()``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from typing import AsyncIterator

from . import Message

__all__ = ["StdioBus"]


class StdioBus:
    def __init__(self, stdin_fd: int | None = None, stdout_fd: int | None = None):
        self._in = stdin_fd if stdin_fd is not None else sys.stdin.fileno()
        self._fd = stdout_fd if stdout_fd is not None else sys.stdout.fileno()
        self._queue: asyncio.Queue[Message | None] | None = None
        self._thread: threading.Thread | None = None
        self.closed = False

    async def __aenter__(self) -> "StdioBus":
        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Message | None] = asyncio.Queue()
        self._queue = q

        def put(item: Message | None) -> None:
            q.put_nowait(item)

        def reader() -> None:
            # os.read, not sys.stdin: a thread blocked in a BufferedReader
            # holds its lock and makes interpreter shutdown abort
            n = 0
            buf = b""
            try:
                while True:
                    chunk = os.read(self._in, 1 << 16)
                    if not chunk:
                        break
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        n += 1
                        msg = self._parse(line, n)
                        if msg is not None:
                            loop.call_soon_threadsafe(put, msg)
                if buf.strip():
                    msg = self._parse(buf, n + 1)
                    if msg is not None:
                        loop.call_soon_threadsafe(put, msg)
            except (OSError, RuntimeError):  # closed under us, or the loop is gone
                pass
            finally:
                try:
                    loop.call_soon_threadsafe(put, None)
                except RuntimeError:  # loop already closed
                    pass

        self._thread = threading.Thread(target=reader, name="acd-stdio-bus", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.closed = True
        if self._queue is not None:
            self._queue.put_nowait(None)

    def _parse(self, line: bytes, n: int) -> Message | None:
        if not line.strip():
            return None
        ack = self._acker(n)
        try:
            obj = json.loads(line)
        except ValueError:
            return Message("", line.rstrip(b"\r\n"), ack)
        if not isinstance(obj, dict) or not isinstance(obj.get("topic"), str):
            return Message("", line.rstrip(b"\r\n"), ack)
        payload = obj.get("payload", "")
        if isinstance(payload, str):
            data = payload.encode("utf-8", "surrogateescape")
        else:
            data = json.dumps(payload, separators=(",", ":")).encode()
        return Message(obj["topic"], data, ack)

    def _acker(self, n: int):  # noqa: ANN202
        async def ack() -> None:
            self._write({"ack": n})

        return ack

    def _write(self, obj: dict) -> None:
        line = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        view = memoryview(line)
        while view:
            try:
                k = os.write(self._fd, view)
            except BrokenPipeError:
                return  # nobody listens any more; the daemon keeps its journal
            view = view[k:]

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._write({"topic": topic, "payload": payload.decode("utf-8", "replace"), "retain": retain})

    async def messages(self) -> AsyncIterator[Message]:
        if self._queue is None:
            raise RuntimeError("StdioBus: use 'async with' first")
        while True:
            msg = await self._queue.get()
            if msg is None:
                return
            yield msg
