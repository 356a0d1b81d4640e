"""Scenarios: recorded or generated traffic that ``acd replay`` plays through
the routing core in virtual time.

A scenario is a stream of *lines*, each a contact arriving (``ContactLine``) or
an agent changing state (``AgentLine``), in non-decreasing time order.  The
replay wants to push 200,000 contacts/s through the core, so reading is built
around one rule: the common case never touches a line in Python.  JSON Lines
are read in ~1 MiB chunks cut at the last newline and each chunk is decoded by
a single ``msgspec`` ``decode_lines`` call straight into frozen, untracked
(``gc=False``) structs; Python only adds the start time and checks the order.
Memory stays flat however long the file: one chunk and its structs at a time.

Everything unusual takes a slower path, and only for the chunk (or the part of
it) that needs it: a chunk holding agent lines, the header or comments is cut
around those lines, and a chunk that fails to decode is decoded again line by
line, which is also how an error learns its line number.  Errors are
``ScenarioError`` with file, line, field and value, because a replay that
stops with "invalid input" after two million lines is useless.

Formats (see ``Scenario``): JSON Lines (any suffix but ``.csv``/``.tsv``), with
an optional ``{"type": "scenario", ...}`` header line; CSV and TSV with the
same field names as header cells.  Times are seconds from the scenario start
or ISO-8601 timestamps; both become epoch seconds, the one unit of the core.

The second half of the module generates synthetic traffic (``TrafficSpec``,
``generate``) for ``acd scenario generate``.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import heapq
import math
import os
import random
import re
import sys
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta

from .core.events import Channel
from .core.spec import MinLevel, Name, SpecError

DEFAULT_START: float = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()
"""Offset 0 of a scenario without a header: Monday 2026-01-05 00:00 UTC, so
that day-of-week and time-of-day logic sees a plausible week start."""

DEFAULT_CHUNK_SIZE = 1 << 20

Offset = Annotated[float, Meta(ge=0)]
Time = Union[Offset, datetime]  # seconds from the start, or an ISO-8601 timestamp
Seconds = Annotated[float, Meta(ge=0)]
PositiveSeconds = Annotated[float, Meta(gt=0)]
AgentState = Literal["login", "logout", "ready", "not_ready"]


# --- the lines -------------------------------------------------------------


class ContactLine(
    msgspec.Struct,
    tag_field="type",
    tag="contact",
    forbid_unknown_fields=True,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    gc=False,
):
    """A contact arrives at ``queue`` and, once connected, talks for
    ``handle_time`` seconds; it abandons after ``patience`` seconds of waiting
    (None: never).

    The ``type`` tag is optional on input (contact is the default kind, which
    keeps recorded files small) but checked when present. ``arrival`` keeps
    the decoded form (float offset or datetime); ``Scenario`` yields the
    absolute time next to it. ``gc=False``: millions of these go through the
    replay and none can be part of a reference cycle worth collecting.
    """

    id: Name
    arrival: Time
    queue: Name
    handle_time: Seconds
    channel: Channel | None = None  # None: the queue's channel
    patience: Seconds | None = None  # None: waits forever
    priority: float = 0.0
    skills: dict[str, MinLevel] = {}  # extra required skills, skill -> minimum level
    attributes: dict[str, Any] = {}
    # Censored patience (recorded traffic): with no ``patience``, the replay
    # draws one from the header's ``patience_curves[patience_curve]``, given
    # that the customer waited at least ``patience_after`` seconds.
    patience_curve: str | None = None
    patience_after: Seconds | None = None


class AgentLine(
    msgspec.Struct,
    tag_field="type",
    tag="agent",
    forbid_unknown_fields=True,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
    gc=False,
):
    """Agent ``agent`` logs in or out, or becomes ready or not ready
    (``reason``, e.g. ``"lunch"``) at ``time``."""

    time: Time
    agent: Name
    state: AgentState
    reason: str | None = None


class ScenarioHeader(
    msgspec.Struct,
    tag_field="type",
    tag="scenario",
    forbid_unknown_fields=True,
    frozen=True,
    kw_only=True,
    omit_defaults=True,
):
    """Optional first line: ``start`` is the absolute time of offset 0 (a
    naive timestamp is UTC); default ``DEFAULT_START``."""

    start: datetime | None = None
    name: str | None = None
    description: str | None = None
    # name -> survival curve [[t, S(t)], ...]: times increasing, S from 1 down
    # (e.g. Kaplan-Meier of the recorded patience); see ``draw_patience``.
    patience_curves: dict[str, list[tuple[Seconds, Annotated[float, Meta(ge=0, le=1)]]]] = {}


Line = Union[ContactLine, AgentLine]

_CONTACT_DEC = msgspec.json.Decoder(ContactLine)
_ANY_DEC = msgspec.json.Decoder(Union[ContactLine, AgentLine, ScenarioHeader])
_MISSING_TAG = "Object missing required field `type`"


class ScenarioError(ValueError):
    """A bad scenario file or line. ``line`` is 1-based (None: the whole file);
    ``str()`` is ``FILE:LINE: message``, the format editors jump to."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


# --- times -----------------------------------------------------------------


def _dt_epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def to_epoch(value: float | datetime, start: float) -> float:
    """Absolute epoch seconds of a line time: an offset from ``start``, or a
    timestamp (naive means UTC)."""
    if isinstance(value, datetime):
        return _dt_epoch(value)
    return start + value


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat().replace("+00:00", "Z")


# --- error messages --------------------------------------------------------

_TYPE_WORDS = {
    "float": "a number",
    "int": "an integer",
    "str": "a string",
    "bool": "true or false",
    "null": "null",
    "object": "an object",
    "array": "an array",
    "datetime": "an ISO-8601 timestamp",
}
_CHOICES = {
    "state": AgentState.__args__,  # type: ignore[attr-defined]
    "channel": ("voice", "chat", "email"),
    "type": ("contact", "agent", "scenario"),
}
_AT = re.compile(r"^(.*?) - at `\$(.*)`$", re.S)
_EXPECTED = re.compile(r"^Expected `([^`]*)`(.*?)(?:, got `[^`]*`)?$", re.S)
_QUOTED = re.compile(r"^(.*?) `([^`]*)`$")
_NOT_FOUND = object()


def _show(value: Any) -> str:
    try:
        text = msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _lookup(raw: Any, path: str) -> Any:
    value = raw
    for part in path.split("."):
        if not part:
            continue
        if not isinstance(value, dict) or part not in value:
            return _NOT_FOUND
        value = value[part]
    return value


def _explain(exc: msgspec.DecodeError, raw: Any) -> str:
    """Turn a msgspec error into ``field: expected ..., got VALUE``.

    msgspec names the path and the expected type but not the value; ``raw``
    (the line decoded without a schema, or the CSV row) supplies it.
    """
    msg = str(exc)
    if not isinstance(exc, msgspec.ValidationError):
        if msg.startswith("Input data was truncated"):
            return "invalid JSON (the line ends too early)"
        msg = msg.removeprefix("JSON is malformed: ")
        msg = re.sub(r"\(byte (\d+)\)", lambda m: f"at column {int(m.group(1)) + 1}", msg)
        return f"invalid JSON ({msg})"
    path = ""
    m = _AT.match(msg)
    if m:
        msg, path = m.group(1), m.group(2)
    path = path.replace("[...]", "").lstrip(".")  # skills[...] (a dict value) -> skills
    field = path.rsplit(".", 1)[-1]
    m = _QUOTED.match(msg)
    if msg.startswith("Object contains unknown field") and m:
        return _prefix(path, f'unknown field "{m.group(2)}"')
    if msg.startswith("Object missing required field") and m:
        return _prefix(path, f'missing required field "{m.group(2)}"')
    value = _lookup(raw, path) if raw is not None else _NOT_FOUND
    if msg.startswith(("Invalid enum value", "Invalid value")) and field in _CHOICES:
        text = "expected one of " + ", ".join(_CHOICES[field])
    elif msg.startswith("Invalid RFC3339 encoded datetime"):
        text = "expected seconds from the start or an ISO-8601 timestamp"
    elif (m := _EXPECTED.match(msg)) is not None:
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in m.group(1).split(" | "))
        rest = re.sub(r"(\d)\.0\b", r"\1", m.group(2))
        text = f"expected {words}{rest}"
    else:
        text = msg[:1].lower() + msg[1:]
    if value is not _NOT_FOUND:
        text += f", got {_show(value)}"
    return _prefix(path, text)


def _prefix(path: str, text: str) -> str:
    return f"{path}: {text}" if path else text


def _skippable(line: bytes) -> bool:
    s = line.strip()
    return not s or s.startswith(b"#") or s.startswith(b"//")


def _decode_one(line: bytes, file: str, lineno: int, header_ok: bool = False) -> Any:
    """Decode one JSONL line; None for a blank or comment line. The slow path:
    used for agent lines, comments and to locate errors."""
    s = line.strip()
    if not s or s.startswith(b"#") or s.startswith(b"//"):
        return None
    try:
        if b'"type"' in s:
            try:
                item = _ANY_DEC.decode(s)
            except msgspec.ValidationError as exc:
                if str(exc) != _MISSING_TAG:  # "type" was only inside a value
                    raise
                item = _CONTACT_DEC.decode(s)
        else:
            item = _CONTACT_DEC.decode(s)
    except msgspec.DecodeError as exc:
        try:
            raw = msgspec.json.decode(s)
        except msgspec.DecodeError:
            raw = None
        raise ScenarioError(file, lineno, _explain(exc, raw)) from None
    if item.__class__ is ScenarioHeader and not header_ok:
        raise ScenarioError(file, lineno, 'the {"type": "scenario"} header must be the first line')
    return item


def _special_lines(chunk: bytes) -> list[tuple[int, int]]:
    """(start, end) of the lines of ``chunk`` that may not be contacts: agent
    lines and the header (they contain ``"agent"``/``"scenario"``) and comment
    lines; then a sentinel ``(len, len)``. A contact that merely mentions
    "agent" lands here too, which costs speed, never correctness."""
    n = len(chunk)
    starts: set[int] = set()
    for needle in (b'"agent"', b'"scenario"'):
        i = chunk.find(needle)
        while i >= 0:
            starts.add(chunk.rfind(b"\n", 0, i) + 1)
            end = chunk.find(b"\n", i)
            if end < 0:
                break
            i = chunk.find(needle, end)
    for byte, needle in ((b"#", b"\n#"), (b"/", b"\n//")):
        if byte in chunk:  # a one-byte search is a memchr: nearly free
            if chunk.startswith(needle[1:]):
                starts.add(0)
            i = chunk.find(needle)
            while i >= 0:
                starts.add(i + 1)
                i = chunk.find(needle, i + 2)
    spans = []
    for s in sorted(starts):
        e = chunk.find(b"\n", s)
        spans.append((s, n if e < 0 else e + 1))
    spans.append((n, n))
    return spans


# --- reading ---------------------------------------------------------------


class Scenario:
    """A scenario file, read lazily: iterate it to get
    ``(absolute_epoch_seconds, line)`` in file order.

    Format by suffix: ``.csv`` (comma), ``.tsv`` (tab, no quoting), anything
    else JSON Lines.  JSONL: one object per line; blank lines and lines
    starting with ``#`` or ``//`` are skipped; a line without ``"type"`` is a
    contact; an optional ``{"type": "scenario", "start": ISO, "name": ...}``
    must be the first non-comment line.  CSV/TSV: a header row of field names
    (``id,arrival,queue,handle_time,channel,patience,priority,skills,
    attributes``, and ``type,time,agent,state,reason`` for agent rows), empty
    cells meaning absent, ``skills`` as ``support:3;english:1`` and
    ``attributes`` as JSON; comment rows as in JSONL; no header line, so the
    start is ``DEFAULT_START`` (ISO arrivals are absolute anyway).

    The header (JSONL) or header row (CSV) is read eagerly, so a bad one fails
    at construction; the rest is read on each iteration, chunk by chunk.
    Contact ids are not checked for uniqueness here (that needs memory growing
    with the file): the routing core rejects a second arrival of a live id.
    """

    def __init__(self, path: str | os.PathLike[str], *, chunk_size: int = DEFAULT_CHUNK_SIZE):
        self.path: str = os.fspath(path)
        self.start: float = DEFAULT_START
        self.name: str | None = None
        self.patience_curves: dict[str, list[tuple[float, float]]] = {}
        self.description: str | None = None
        self.chunk_size = max(1, int(chunk_size))
        suffix = os.path.splitext(self.path)[1].lower()
        self.format: str = {".csv": "csv", ".tsv": "tsv"}.get(suffix, "jsonl")
        self._body_offset = 0  # JSONL: where the lines after the header start
        self._body_line = 0  # lines before that offset
        self._columns: list[str] = []
        try:
            if self.format == "jsonl":
                self._read_header()
            else:
                self._read_columns()
        except OSError as exc:
            raise ScenarioError(self.path, None, f"cannot read: {exc.strerror or exc}") from None

    def __repr__(self) -> str:
        return f"Scenario({self.path!r}, start={_iso(self.start)!r}, name={self.name!r})"

    def __iter__(self) -> Iterator[tuple[float, ContactLine | AgentLine]]:
        """Yield ``(absolute_time_epoch_seconds, line)`` in file order; raise
        ``ScenarioError`` on a bad or out-of-order line (after yielding the
        lines before it)."""
        if self.format == "jsonl":
            return self._iter_jsonl()
        return self._iter_csv()

    # JSON Lines

    def _read_header(self) -> None:
        with open(self.path, "rb") as f:
            offset = lineno = 0
            while True:
                line = f.readline()
                if not line:
                    break
                body = line
                if lineno == 0 and line.startswith(b"\xef\xbb\xbf"):  # UTF-8 BOM
                    body = line[3:]
                    offset = 3
                lineno += 1
                if _skippable(body):
                    offset += len(body)
                    continue
                if b'"scenario"' in body:
                    item = _decode_one(body, self.path, lineno, header_ok=True)
                    if isinstance(item, ScenarioHeader):
                        if item.start is not None:
                            self.start = _dt_epoch(item.start)
                        self.name = item.name
                        self.description = item.description
                        for cname, curve in item.patience_curves.items():
                            problem = check_curve(curve)
                            if problem:
                                raise ScenarioError(self.path, lineno, f"patience_curves.{cname}: {problem}")
                        self.patience_curves = item.patience_curves
                        offset += len(body)
                        self._body_offset, self._body_line = offset, lineno
                        return
                self._body_offset, self._body_line = offset, lineno - 1
                return
            self._body_offset, self._body_line = offset, lineno

    def _chunks(self) -> Iterator[bytes]:
        """Chunks of whole lines (the last one may lack its newline)."""
        size = self.chunk_size
        with open(self.path, "rb") as f:
            f.seek(self._body_offset)
            carry = b""
            while True:
                data = f.read(size)
                if not data:
                    if carry:
                        yield carry
                    return
                buf = carry + data if carry else data
                cut = buf.rfind(b"\n") + 1
                if cut == 0:  # a line longer than the chunk: read on
                    carry = buf
                    continue
                if cut == len(buf):
                    carry = b""
                    yield buf
                else:
                    carry = buf[cut:]
                    yield buf[:cut]

    def _decode_slow(self, seg: bytes, lineno: int) -> Iterator[tuple[int, Any]]:
        """``(line number, item)`` of ``seg`` decoded line by line (``lineno``
        lines come before it): finds the bad line's number, or gets past
        comments and stray agent lines that made ``decode_lines`` fail."""
        path = self.path
        for i, line in enumerate(seg.split(b"\n"), lineno + 1):
            item = _decode_one(line, path, i)
            if item is not None:
                yield i, item

    def _lines_between(self, a: int, b: int) -> int:
        """Newlines between file offsets ``a`` and ``b``. Line numbers are only
        needed on the slow paths, so the fast path does not count them (a
        count costs a tenth of the decode); this catches up when needed."""
        n = 0
        with open(self.path, "rb") as f:
            f.seek(a)
            while a < b:
                data = f.read(min(DEFAULT_CHUNK_SIZE, b - a))
                if not data:
                    break
                n += data.count(b"\n")
                a += len(data)
        return n

    def _iter_jsonl(self) -> Iterator[tuple[float, ContactLine | AgentLine]]:
        start = self.start
        decode_lines = _CONTACT_DEC.decode_lines
        contact = ContactLine
        last = -math.inf
        off = self._body_offset  # file offset of the current chunk
        known_off, known_line = off, self._body_line  # lines before known_off
        mixed = False  # the last chunk held non-contact lines
        for chunk in self._chunks():
            n = len(chunk)
            if not mixed:
                try:
                    items = decode_lines(chunk)
                except msgspec.DecodeError:
                    pass
                else:  # the fast path: only contacts, no line counting
                    for item in items:
                        a = item.arrival
                        t = start + a if a.__class__ is float else _dt_epoch(a)
                        if t < last:
                            base = known_line + self._lines_between(known_off, off)
                            raise self._order_error(_item_line(chunk, base, items, item), item, a, last)
                        last = t
                        yield t, item
                    items = None  # do not hold two chunks' lines while decoding the next
                    off += n
                    continue
            # the slow path: cut the chunk around agent, header and comment lines
            lineno = known_line + self._lines_between(known_off, off)
            spans = _special_lines(chunk)
            mixed = len(spans) > 1
            pos = 0
            for s, e in spans:
                if s > pos:
                    seg = chunk if (pos == 0 and s == n) else chunk[pos:s]
                    try:
                        items = decode_lines(seg)
                    except msgspec.DecodeError:
                        items = None
                    if items is not None:
                        for item in items:
                            a = item.arrival if item.__class__ is contact else item.time
                            t = start + a if a.__class__ is float else _dt_epoch(a)
                            if t < last:
                                raise self._order_error(_item_line(seg, lineno, items, item), item, a, last)
                            last = t
                            yield t, item
                    else:  # a bad line, or comments and agent lines the cut missed
                        for i, item in self._decode_slow(seg, lineno):
                            a = item.arrival if item.__class__ is contact else item.time
                            t = start + a if a.__class__ is float else _dt_epoch(a)
                            if t < last:
                                raise self._order_error(i, item, a, last)
                            last = t
                            yield t, item
                    lineno += seg.count(b"\n")
                if e > s:
                    item = _decode_one(chunk[s:e], self.path, lineno + 1)
                    lineno += 1
                    if item is not None:
                        a = item.arrival if item.__class__ is contact else item.time
                        t = start + a if a.__class__ is float else _dt_epoch(a)
                        if t < last:
                            raise self._order_error(lineno, item, a, last)
                        last = t
                        yield t, item
                pos = e
            items = seg = None
            off += n
            known_off, known_line = off, lineno

    def _order_error(self, line: int, item: Any, value: Any, last: float) -> ScenarioError:
        field = "arrival" if isinstance(item, ContactLine) else "time"
        if isinstance(value, datetime):
            this, before = _iso(_dt_epoch(value)), _iso(last)
        else:
            this, before = f"{value:g}", f"{last - self.start:g}"
        return ScenarioError(
            self.path,
            line,
            f"{field}: {this} is earlier than the previous line's time {before}; lines must be in time order",
        )

    # CSV / TSV

    def _open_csv(self) -> tuple[IO[str], Any]:
        f = open(self.path, newline="", encoding="utf-8-sig")
        if self.format == "tsv":
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(f)
        return f, reader

    def _read_columns(self) -> None:
        f, reader = self._open_csv()
        with f:
            for row in _csv_rows(reader, self.path):
                cols = [c.strip() for c in row]
                known = set(ContactLine.__struct_fields__) | set(AgentLine.__struct_fields__) | {"type"}
                for c in cols:
                    if c not in known:
                        raise ScenarioError(self.path, reader.line_num, f'unknown column "{c}"')
                    if cols.count(c) > 1:
                        raise ScenarioError(self.path, reader.line_num, f'duplicate column "{c}"')
                self._columns = cols
                return

    def _iter_csv(self) -> Iterator[tuple[float, ContactLine | AgentLine]]:
        start = self.start
        last = -math.inf
        f, reader = self._open_csv()
        with f:
            rows = _csv_rows(reader, self.path)
            if next(rows, None) is None:  # the header row
                return
            for row in rows:
                lineno = reader.line_num
                item = self._csv_item(row, lineno)
                a = item.arrival if isinstance(item, ContactLine) else item.time
                t = start + a if a.__class__ is float else _dt_epoch(a)
                if t < last:
                    raise self._order_error(lineno, item, a, last)
                last = t
                yield t, item

    def _csv_item(self, row: list[str], lineno: int) -> ContactLine | AgentLine:
        cols = self._columns
        if len(row) > len(cols):
            raise ScenarioError(self.path, lineno, f"{len(row)} cells but {len(cols)} columns in the header row")
        rec: dict[str, Any] = {}
        for k, v in zip(cols, row):
            v = v.strip()
            if v:
                rec[k] = v
        kind = rec.pop("type", "contact")
        if kind == "contact":
            target: type = ContactLine
            tfield = "arrival"
        elif kind == "agent":
            target = AgentLine
            tfield = "time"
        else:
            raise ScenarioError(self.path, lineno, f'type: expected one of contact, agent, got "{kind}"')
        if tfield in rec:
            rec[tfield] = _csv_time(rec[tfield])
        if "skills" in rec:
            rec["skills"] = self._csv_skills(rec["skills"], lineno)
        if "attributes" in rec:
            try:
                rec["attributes"] = msgspec.json.decode(rec["attributes"])
            except msgspec.DecodeError as exc:
                raise ScenarioError(self.path, lineno, f"attributes: {_explain(exc, None)}") from None
        try:
            return msgspec.convert(rec, target, strict=False)
        except msgspec.ValidationError as exc:
            raise ScenarioError(self.path, lineno, _explain(exc, rec)) from None

    def _csv_skills(self, text: str, lineno: int) -> dict[str, Any]:
        skills: dict[str, Any] = {}
        for part in text.split(";"):
            if not part.strip():
                continue
            name, sep, level = part.partition(":")
            name, level = name.strip(), level.strip()
            if not sep or not name or not re.fullmatch(r"-?\d+", level):
                raise ScenarioError(self.path, lineno, f'skills: expected "skill:level;skill:level", got "{text}"')
            skills[name] = int(level)
        return skills


def _csv_rows(reader: Any, path: str) -> Iterator[list[str]]:
    """Rows of a CSV reader without blank and comment rows."""
    try:
        for row in reader:
            if not row or not any(c.strip() for c in row):
                continue
            first = row[0].lstrip()
            if first.startswith("#") or first.startswith("//"):
                continue
            yield row
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ScenarioError(path, reader.line_num or None, f"invalid CSV ({exc})") from None


def _csv_time(text: str) -> Any:
    try:
        value = float(text)
    except ValueError:
        return text  # an ISO timestamp, or an error msgspec will name
    return value if math.isfinite(value) else text


def _item_line(seg: bytes, lineno: int, items: list[Any], item: Any) -> int:
    """Line number of ``item`` (decoded from ``seg``, which follows ``lineno``
    lines); only needed for an error, so it scans."""
    k = next(i for i, x in enumerate(items) if x is item)
    n = -1
    for i, line in enumerate(seg.split(b"\n"), lineno + 1):
        if not _skippable(line):
            n += 1
            if n == k:
                return i
    return lineno + 1  # not reached


# --- writing ---------------------------------------------------------------

_TAG_PREFIX = b'{"type":"contact",'


def write_scenario(
    path: str | os.PathLike[str],
    items: Iterable[ContactLine | AgentLine],
    *,
    start: float | None = None,
    name: str | None = None,
    description: str | None = None,
    patience_curves: dict[str, list[tuple[float, float]]] | None = None,
) -> int:
    """Write ``items`` as a JSONL scenario, header first; return the number of
    items written. ``start`` (epoch seconds) defaults to ``DEFAULT_START``.
    Path ``-`` is standard output."""
    p = os.fspath(path)
    if p.lower().endswith((".csv", ".tsv")):
        raise ValueError(f"{p}: write_scenario writes JSON Lines; use a .jsonl name")
    s = DEFAULT_START if start is None else start
    header = ScenarioHeader(start=datetime.fromtimestamp(s, timezone.utc), name=name, description=description,
                            patience_curves=patience_curves or {})
    if p == "-":
        return _write_jsonl(sys.stdout.buffer, items, header)
    with open(p, "wb") as f:
        return _write_jsonl(f, items, header)


def check_curve(curve: list[tuple[float, float]]) -> str | None:
    """Why a survival curve is unusable, or None."""
    last_t, last_s = 0.0, 1.0
    for i, (t, surv) in enumerate(curve):
        if t < last_t or surv > last_s:
            return f"point {i} ({t:g}, {surv:g}): times must increase and survival must not"
        last_t, last_s = t, surv
    return None


class PatienceCurve:
    """A survival curve of patience, prepared once for many draws.

    S is read as piecewise linear through (0, 1) and the given points.
    ``draw(after, u)`` with ``u`` in [0, 1) returns the patience p solving
    S(p) = u * S(after), p >= after: a draw given that the customer already
    waited ``after`` seconds.  When that level lies below the curve's last
    point (the records never saw anyone wait that long) the customer never
    abandons: None.
    """

    __slots__ = ("times", "surv")

    def __init__(self, curve: list[tuple[float, float]]):
        self.times = [0.0] + [float(t) for t, _ in curve]
        self.surv = [1.0] + [float(v) for _, v in curve]

    def survival(self, t: float) -> float:
        times, surv = self.times, self.surv
        i = bisect.bisect_right(times, t)
        if i >= len(times):
            return surv[-1]
        t0, t1, s0, s1 = times[i - 1], times[i], surv[i - 1], surv[i]
        return s0 + (s1 - s0) * (t - t0) / (t1 - t0)

    def draw(self, after: float, u: float) -> float | None:
        times, surv = self.times, self.surv
        target = u * self.survival(after)
        # survival is non-increasing: find the first point at or below target
        i = max(1, bisect.bisect_right(times, after))
        while i < len(times) and surv[i] > target:
            i += 1
        if i >= len(times):
            return None
        t0, t1, s0, s1 = times[i - 1], times[i], surv[i - 1], surv[i]
        if s0 == s1:
            return max(after, t1)
        return max(after, t0 + (s0 - target) * (t1 - t0) / (s0 - s1))


def draw_patience(curve: list[tuple[float, float]], after: float, u: float) -> float | None:
    """One draw from ``curve`` given the patience exceeds ``after`` (see
    ``PatienceCurve``; prepare one of those for many draws)."""
    return PatienceCurve(curve).draw(after, u)


def _write_jsonl(f: IO[bytes], items: Iterable[Any], header: ScenarioHeader) -> int:
    enc = msgspec.json.Encoder()
    f.write(enc.encode(header) + b"\n")
    buf = bytearray()
    n = 0
    cut = len(_TAG_PREFIX)
    for item in items:
        b = enc.encode(item)
        if b.startswith(_TAG_PREFIX):  # contact is the default kind: leave the tag out
            buf += b"{"
            buf += memoryview(b)[cut:]
        else:
            buf += b
        buf += b"\n"
        n += 1
        if len(buf) >= DEFAULT_CHUNK_SIZE:
            f.write(buf)
            buf.clear()
    f.write(buf)
    f.flush()
    return n


# --- generating ------------------------------------------------------------


class _TBase(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class HandleTime(_TBase, kw_only=True):
    """Handle-time distribution: exponential with ``mean``, or lognormal with
    the ``mean`` and ``sd`` of the handle time itself (not of its log), the
    numbers a WFM report gives."""

    distribution: Literal["exponential", "lognormal"] = "exponential"
    mean: PositiveSeconds
    sd: Seconds | None = None


class QueueTraffic(_TBase, kw_only=True):
    """Poisson arrivals to one queue: ``rate`` contacts per hour, or a profile
    ``rates`` of per-``interval`` rates (contacts per hour) that repeats."""

    queue: Name
    channel: Channel | None = None
    rate: Annotated[float, Meta(ge=0)] | None = None
    rates: list[Annotated[float, Meta(ge=0)]] | None = None
    interval: PositiveSeconds = 900.0
    handle: HandleTime
    patience: PositiveSeconds | None = None  # mean of an exponential; None: never abandons
    priority: float = 0.0
    skills: dict[str, MinLevel] = {}
    attributes: dict[str, Any] = {}


class TrafficSpec(_TBase, kw_only=True):
    """Synthetic traffic: stops after ``duration`` seconds or ``contacts``
    contacts in total, whichever comes first (at least one is needed)."""

    queues: Annotated[list[QueueTraffic], Meta(min_length=1)]
    start: datetime | None = None
    duration: PositiveSeconds | None = None
    contacts: Annotated[int, Meta(ge=1)] | None = None
    seed: int = 1
    name: str | None = None


def check_traffic(spec: TrafficSpec) -> list[SpecError]:
    """Cross-field checks the types cannot express. Returns every error."""
    errors: list[SpecError] = []
    if spec.duration is None and spec.contacts is None:
        errors.append(SpecError("duration", "give duration or contacts (or both)"))
    for i, q in enumerate(spec.queues):
        p = f"queues[{i}]"
        if (q.rate is None) == (q.rates is None):
            errors.append(SpecError(p, "give exactly one of rate and rates"))
        elif q.rates is not None and not q.rates:
            errors.append(SpecError(f"{p}.rates", "needs at least one rate"))
        h = q.handle
        if h.distribution == "lognormal" and h.sd is None:
            errors.append(SpecError(f"{p}.handle.sd", "a lognormal handle time needs sd"))
        if h.distribution == "exponential" and h.sd is not None:
            errors.append(SpecError(f"{p}.handle.sd", "sd applies only to distribution: lognormal"))
    if spec.duration is None and not errors:
        if not any(q.rate or any(q.rates or ()) for q in spec.queues):
            errors.append(SpecError("queues", "every rate is 0 and there is no duration: no contact would ever arrive"))
    return errors


def traffic_from_obj(obj: Any) -> TrafficSpec:
    """A checked TrafficSpec from plain data; raises msgspec.ValidationError
    or SpecError."""
    spec = msgspec.convert(obj, TrafficSpec)
    errs = check_traffic(spec)
    if errs:
        raise errs[0]
    return spec


def load_traffic(path: str | os.PathLike[str]) -> TrafficSpec:
    """Read a TrafficSpec from YAML; raises ValueError naming file and field."""
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"{p}: cannot read: {exc.strerror or exc}") from None
    # Plain YAML first, then convert: msgspec.yaml.decode would refuse a
    # quoted ISO timestamp for a datetime field (it only takes YAML's own).
    try:
        spec = msgspec.convert(msgspec.yaml.decode(data), TrafficSpec)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{p}: {_explain_yaml(exc)}") from None
    errs = check_traffic(spec)
    if errs:
        raise ValueError(f"{p}: {errs[0]}")
    return spec


def _explain_yaml(exc: msgspec.DecodeError) -> str:
    if isinstance(exc, msgspec.ValidationError):
        return _explain(exc, None)
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return "invalid YAML: " + "; ".join(lines) if lines else "invalid YAML"


def _handle_sampler(h: HandleTime, rng: random.Random):
    if h.distribution == "lognormal":
        sd = h.sd or 0.0
        sigma2 = math.log1p((sd / h.mean) ** 2)
        mu = math.log(h.mean) - sigma2 / 2
        sigma = math.sqrt(sigma2)
        return lambda: rng.lognormvariate(mu, sigma)
    lam = 1.0 / h.mean
    return lambda: rng.expovariate(lam)


def _queue_stream(q: QueueTraffic, qi: int, rng: random.Random, duration: float | None):
    """(time, queue index, handle, patience) of one queue's arrivals.

    Piecewise-constant rate by the memoryless trick: draw the next gap at the
    current interval's rate; if it crosses the interval end, restart at the end
    with the next rate. Exact for a non-homogeneous Poisson process."""
    if q.rates is not None:
        rates = [r / 3600.0 for r in q.rates]
        interval = q.interval
    else:
        rates = [(q.rate or 0.0) / 3600.0]
        interval = math.inf
    if not any(rates):
        return
    handle = _handle_sampler(q.handle, rng)
    expo = rng.expovariate
    pat = 1.0 / q.patience if q.patience is not None else None
    limit = math.inf if duration is None else duration
    n = len(rates)
    k = 0
    t = 0.0
    end = interval
    while True:
        lam = rates[k % n]
        nxt = t + expo(lam) if lam > 0 else math.inf
        if nxt >= end:
            k += 1
            t = end
            end = (k + 1) * interval
            if t >= limit:
                return
            continue
        t = nxt
        if t >= limit:
            return
        h = handle()
        p = expo(pat) if pat is not None else None
        yield (t, qi, h, p)


def generate(spec: TrafficSpec) -> Iterator[ContactLine]:
    """Contacts ``c1``, ``c2``, ... in arrival order (times offsets from the
    start, rounded to 1 ms). Each queue has its own RNG derived from
    ``random.Random(seed)``, so adding a queue leaves the others' traffic as it
    was; the queue streams merge by time. Raises SpecError on a bad spec."""
    errs = check_traffic(spec)
    if errs:
        raise errs[0]
    master = random.Random(spec.seed)
    streams = [
        _queue_stream(q, i, random.Random(master.getrandbits(64)), spec.duration) for i, q in enumerate(spec.queues)
    ]
    return _contacts(spec, heapq.merge(*streams))


def _contacts(spec: TrafficSpec, merged: Iterator[tuple[float, int, float, float | None]]) -> Iterator[ContactLine]:
    limit = spec.contacts if spec.contacts is not None else math.inf
    queues = spec.queues
    n = 0
    for t, qi, h, p in merged:
        n += 1
        if n > limit:
            return
        q = queues[qi]
        yield ContactLine(
            id=f"c{n}",
            arrival=round(t, 3),
            queue=q.queue,
            handle_time=round(h, 3),
            channel=q.channel,
            patience=None if p is None else round(p, 3),
            priority=q.priority,
            skills=dict(q.skills),
            attributes=dict(q.attributes),
        )


def mmc_traffic(
    *,
    agents: int,
    load: float,
    aht: float,
    contacts: int,
    patience: float | None,
    seed: int,
    queue: str = "support",
) -> TrafficSpec:
    """The M/M/c (M/M/c+M with ``patience``) case: Poisson arrivals at
    ``load * agents * 3600 / aht`` per hour, exponential handle times with
    mean ``aht``."""
    if agents < 1:
        raise ValueError(f"agents: expected an integer >= 1, got {agents}")
    if not load > 0:
        raise ValueError(f"load: expected a number > 0, got {load}")
    if not aht > 0:
        raise ValueError(f"aht: expected a number > 0, got {aht}")
    if contacts < 1:
        raise ValueError(f"contacts: expected an integer >= 1, got {contacts}")
    if patience is not None and not patience > 0:
        raise ValueError(f"patience: expected a number > 0, got {patience}")
    return TrafficSpec(
        contacts=contacts,
        seed=seed,
        queues=[
            QueueTraffic(
                queue=queue,
                rate=load * agents * 3600.0 / aht,
                handle=HandleTime(distribution="exponential", mean=aht),
                patience=patience,
            )
        ],
    )


# --- CLI glue --------------------------------------------------------------

_QUICK = ("queue", "agents", "load", "aht", "rate", "patience", "lognormal_sd", "channel")


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``acd scenario generate``."""
    parser.add_argument("--spec", metavar="TRAFFIC.yaml", help="traffic spec (YAML); or the quick flags for one queue")
    g = parser.add_argument_group("one queue (instead of --spec)")
    g.add_argument("--queue", metavar="NAME", help="queue name (default: support)")
    g.add_argument("--agents", type=int, metavar="N", help="agents; with --load gives the rate")
    g.add_argument("--load", type=float, metavar="L", help="offered load per agent (0.9 = 90%%)")
    g.add_argument("--aht", type=float, metavar="S", help="mean handle time, s")
    g.add_argument("--rate", type=float, metavar="PER_HOUR", help="arrival rate per hour (instead of --agents/--load)")
    g.add_argument("--patience", type=float, metavar="S", help="mean patience, s (default: never abandons)")
    g.add_argument("--lognormal-sd", type=float, metavar="S", help="lognormal handle times with this sd (default exponential)")
    g.add_argument("--channel", choices=("voice", "chat", "email"), help="channel (default: the queue's)")
    parser.add_argument("--contacts", type=int, metavar="N", help="stop after N contacts")
    parser.add_argument("--hours", type=float, metavar="H", help="stop after H hours")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default 1, or the spec's)")
    parser.add_argument("--start", metavar="ISO", help="absolute time of offset 0 (default 2026-01-05T00:00:00Z)")
    parser.add_argument("-o", "--output", metavar="FILE", default="-", help="output JSONL file (default: stdout)")


def _positive(name: str, value: float | None, integer: bool = False) -> None:
    if value is not None and not value > 0:
        kind = "an integer >= 1" if integer else "a number > 0"
        raise ValueError(f"--{name}: expected {kind}, got {value:g}")


def _spec_from_args(args: argparse.Namespace) -> TrafficSpec:
    _positive("contacts", args.contacts, integer=True)
    _positive("hours", args.hours)
    duration = args.hours * 3600.0 if args.hours is not None else None
    start = None
    if args.start is not None:
        try:
            start = msgspec.convert(args.start, datetime)
        except msgspec.ValidationError:
            raise ValueError(f"--start: expected an ISO-8601 timestamp, got {args.start!r}") from None
    quick = [f"--{k.replace('_', '-')}" for k in _QUICK if getattr(args, k, None) is not None]
    if args.spec is not None:
        if quick:
            raise ValueError(f"--spec cannot be combined with {', '.join(quick)}")
        spec = load_traffic(args.spec)
        changes: dict[str, Any] = {}
        if args.contacts is not None:
            changes["contacts"] = args.contacts
        if duration is not None:
            changes["duration"] = duration
        if args.seed is not None:
            changes["seed"] = args.seed
        if start is not None:
            changes["start"] = start
        return msgspec.structs.replace(spec, **changes) if changes else spec
    if args.aht is None:
        raise ValueError("give --spec, or --aht with --rate or --agents and --load")
    _positive("aht", args.aht)
    _positive("agents", args.agents, integer=True)
    _positive("load", args.load)
    _positive("rate", args.rate)
    _positive("patience", args.patience)
    if args.lognormal_sd is not None and args.lognormal_sd < 0:
        raise ValueError(f"--lognormal-sd: expected a number >= 0, got {args.lognormal_sd:g}")
    if args.rate is not None:
        if args.agents is not None or args.load is not None:
            raise ValueError("give --rate or --agents with --load, not both")
        rate = args.rate
    elif args.agents is None or args.load is None:
        raise ValueError("give --rate, or both --agents and --load")
    else:
        rate = args.load * args.agents * 3600.0 / args.aht
    if args.contacts is None and duration is None:
        raise ValueError("give --contacts or --hours")
    if args.lognormal_sd is not None:
        handle = HandleTime(distribution="lognormal", mean=args.aht, sd=args.lognormal_sd)
    else:
        handle = HandleTime(mean=args.aht)
    spec = TrafficSpec(
        start=start,
        duration=duration,
        contacts=args.contacts,
        seed=1 if args.seed is None else args.seed,
        queues=[
            QueueTraffic(
                queue=args.queue or "support",
                channel=args.channel,
                rate=rate,
                handle=handle,
                patience=args.patience,
            )
        ],
    )
    errs = check_traffic(spec)
    if errs:
        raise errs[0]
    return spec


def run_generate(args: argparse.Namespace) -> int:
    """``acd scenario generate``: 0 on success, 2 on bad arguments or spec,
    1 when the output cannot be written."""
    try:
        spec = _spec_from_args(args)
        items = generate(spec)
    except ValueError as exc:  # SpecError is a ValueError
        print(f"acd scenario generate: error: {exc}", file=sys.stderr)
        return 2
    start = _dt_epoch(spec.start) if spec.start is not None else None
    output = getattr(args, "output", "-") or "-"
    try:
        write_scenario(output, items, start=start, name=spec.name)
    except BrokenPipeError:  # piped into head: not an error; keep the exit quiet
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except ValueError as exc:
        print(f"acd scenario generate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"acd scenario generate: error: {output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


__all__ = [
    "DEFAULT_START",
    "AgentLine",
    "ContactLine",
    "HandleTime",
    "QueueTraffic",
    "Scenario",
    "ScenarioError",
    "ScenarioHeader",
    "TrafficSpec",
    "add_generate_arguments",
    "check_curve",
    "check_traffic",
    "draw_patience",
    "PatienceCurve",
    "generate",
    "load_traffic",
    "mmc_traffic",
    "run_generate",
    "to_epoch",
    "traffic_from_obj",
    "write_scenario",
]
