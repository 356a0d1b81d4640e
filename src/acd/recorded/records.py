"""Reading recorded call logs (CSV/TSV, one row per call) into ``Call``s.

A ``Mapping`` says which column holds which field and how the values read;
``ANONYMOUS_BANK`` is the ready mapping for the Technion "Anonymous Bank"
files (17 columns).  ``read_calls`` turns rows into ``Call``s and counts every
row it does not turn into a plain contact in an ``ImportSummary``: nothing is
dropped without a count.

Fields (``Mapping.columns`` keys; only ``arrival`` is required):

=============== =============================================================
``arrival``     when the call reached the centre (IVR/VRU entry)
``ivr_exit``    when it left the IVR (to the queue, to an agent, or away)
``queue_start`` when it joined the agent queue; a "no time" value (empty,
                ``0:00:00``) means it never queued
``queue_end``   when it left the queue (answered or abandoned); without it,
                an abandoned call's ``service_end`` (the end of the call)
``queue_time``  the queue wait in seconds (else ``queue_end - queue_start``)
``service_start``/``service_end``/``service_time``  the talk, likewise
``outcome``     served / abandoned / ignored values (``Mapping.served`` ...);
                absent: served when there is a service start
``type``        the call type: one acd queue per type
``priority``    a number, or mapped through ``Mapping.priority_map``
``agent``       who served it (``Mapping.no_agent`` values: nobody)
``customer``    kept in the contact's attributes for traceability
``id``          one or more columns (joined with ``-``); default ``L<line>``
``date``        the day of ``arrival`` when times are clock times
=============== =============================================================

Times are clock times (``H:MM:SS``, with the ``date`` column or a fixed
date) or ISO-8601 timestamps.  Clock times are the centre's local
clock, kept as they are (written as UTC).  A clock time earlier than the one
before it in the chain arrival <= ivr_exit <= queue_start <= queue_end <=
service_start <= service_end by more than 12 hours wrapped past midnight and
moves to the next day (a few seconds or minutes earlier is clock jitter in
the records and is left alone).

The acd arrival of a contact is the moment it entered the agent queue:
``queue_start`` for queued calls, ``ivr_exit`` (else ``arrival``) for calls
answered straight from the IVR.  Calls abandoned in the IVR never reached the
ACD and are left out (counted); so are ``ignored`` outcomes (PHANTOM).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date as Date, datetime, timezone
from typing import Any

FIELDS = (
    "id", "date", "arrival", "ivr_exit", "queue_start", "queue_end", "queue_time",
    "service_start", "service_end", "service_time", "outcome", "type", "priority", "agent", "customer",
)
_TIME_FIELDS = ("arrival", "ivr_exit", "queue_start", "queue_end", "service_start", "service_end")
_DAY = 86400.0
_WRAP = 43200.0  # a clock time more than 12 h before the previous one wrapped past midnight

SERVED, ABANDONED = "served", "abandoned"


class RecordError(ValueError):
    """A bad call log or row: ``str()`` is ``FILE:LINE: message``."""

    def __init__(self, file: str, line: int | None, message: str):
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class Mapping:
    """How to read one call-log format. See the module doc for the fields."""

    columns: dict[str, str]
    name: str = "generic"
    delimiter: str | None = None  # None: tab for .tsv, else comma
    served: tuple[str, ...] = ("AGENT", "ANSWERED", "SERVED", "HANDLED")
    abandoned: tuple[str, ...] = ("HANG", "ABANDONED", "ABANDON", "HANGUP")
    ignored: tuple[str, ...] = ("PHANTOM",)
    no_agent: tuple[str, ...] = ("", "NO_SERVER")
    no_time: tuple[str, ...] = ("", "0:00:00", "00:00:00")  # queue/service cells: "did not happen"
    priority_map: dict[str, float] | None = None  # raw cell -> acd priority; None: the number
    default_type: str = "calls"
    date: str | None = None  # a fixed date (YYYY-MM-DD) for clock times when there is no date column

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown mapping field {unknown[0]!r} (fields: {', '.join(FIELDS)})")
        if "arrival" not in self.columns:
            raise ValueError("the mapping needs an arrival column (--map arrival=COLUMN)")


ANONYMOUS_BANK = Mapping(
    name="anonymous-bank",
    columns={
        "id": "date,vru+line,call_id",
        "date": "date",
        "arrival": "vru_entry",
        "ivr_exit": "vru_exit",
        "queue_start": "q_start",
        "queue_end": "q_exit",
        "queue_time": "q_time",
        "service_start": "ser_start",
        "service_end": "ser_exit",
        "service_time": "ser_time",
        "outcome": "outcome",
        "type": "type",
        "priority": "priority",
        "agent": "server",
        "customer": "customer_id",
    },
    served=("AGENT",),
    abandoned=("HANG",),
    ignored=("PHANTOM",),
    no_agent=("NO_SERVER", ""),
    # Technion's documentation: priority-2 customers get 1.5 minutes of
    # waiting time at the outset; 0 is treated as 1.  With the queues' aging
    # of 1 point per minute, 1.5 points are exactly that head start.
    priority_map={"0": 0.0, "1": 0.0, "2": 1.5},
)

FORMATS = {"anonymous-bank": ANONYMOUS_BANK}


@dataclass(slots=True)
class Call:
    """One call that reached the ACD (a contact of the scenario)."""

    line: int
    id: str
    type: str
    outcome: str  # SERVED | ABANDONED
    arrival: float  # epoch: entered the agent queue (or reached an agent straight from the IVR)
    wait: float  # seconds in the queue (0: never queued)
    queued: bool
    handle: float  # talk seconds (served)
    service_start: float | None  # epoch (served with service times)
    service_end: float | None
    agent: str | None
    priority: float
    raw_priority: str
    customer: str | None
    day: Date  # the record's date (of its arrival in the IVR)


@dataclass
class ImportSummary:
    """What happened to every row.  ``rows`` = ``contacts`` + the excluded
    counts; the quirk counts overlap the contacts (a contact can have
    several)."""

    source: str
    format: str
    rows: int = 0
    contacts: int = 0
    excluded: Counter = field(default_factory=Counter)
    quirks: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    types: Counter = field(default_factory=Counter)
    bad_rows: list[dict[str, Any]] = field(default_factory=list)
    first_day: str | None = None
    last_day: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    MAX_BAD_LISTED = 50

    def bad(self, line: int, message: str) -> None:
        self.excluded["bad_rows"] += 1
        if len(self.bad_rows) < self.MAX_BAD_LISTED:
            self.bad_rows.append({"line": line, "error": message})

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "rows": self.rows,
            "contacts": self.contacts,
            "days": [self.first_day, self.last_day],
            "excluded": dict(sorted(self.excluded.items())),
            "quirks": dict(sorted(self.quirks.items())),
            "outcomes": dict(sorted(self.outcomes.items())),
            "types": dict(self.types.most_common()),
            "bad_rows": list(self.bad_rows),
            **self.extra,
        }


# what each counter means (the printed summary uses these words)
EXPLAIN = {
    "ivr_abandoned": "abandoned in the IVR before queueing (never reached the ACD): left out",
    "ignored_outcome": "ignored outcome (PHANTOM: 'a virtual call to be ignored'): left out",
    "bad_rows": "malformed rows skipped (--skip-bad)",
    "outside_dates": "outside --from/--to: left out",
    "never_queued": "served straight from the IVR (queue start 0:00:00): arrival = IVR exit, wait 0",
    "wrapped_midnight": "a time wrapped past midnight: moved to the next day",
    "served_no_agent": "served, no agent recorded (NO_SERVER): kept; any agent may take it in the replay",
    "zero_service_time": "served with a service time of 0 s: kept with handle_time 0",
    "served_without_service_times": "served, no service start/end: kept (handle 0), not used for the roster",
    "abandoned_with_service_times": "abandoned, yet service times recorded: kept as abandoned",
    "negative_ivr_time": "IVR exit before IVR entry (clock jitter): harmless, arrival is the queue start",
    "queue_time_mismatch": "queue time differs from queue end - start: the queue time column wins",
    "service_time_mismatch": "service time differs from service end - start: the service time column wins",
    "queued_at_midnight": "queue start 0:00:00 but a queue time: queued at midnight",
    "duplicate_id": "id seen before: made unique with a #n suffix",
    "agent_overlap": "an agent's services overlap (merged for the roster)",
    "abandoned_handle_drawn": "abandoned: handle_time drawn (seeded) from the recorded service times of its type, "
                              "used only if the replay answers it",
}


# --- cells -----------------------------------------------------------------

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?$")


def _date(text: str) -> Date:
    t = text.strip()
    if re.fullmatch(r"\d{6}", t):  # YYMMDD
        yy = int(t[:2])
        return Date(1900 + yy if yy >= 70 else 2000 + yy, int(t[2:4]), int(t[4:6]))
    if re.fullmatch(r"\d{8}", t):
        return Date(int(t[:4]), int(t[4:6]), int(t[6:8]))
    return Date.fromisoformat(t[:10])


def _day_epoch(d: Date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp()


def _time(text: str) -> tuple[bool, float]:
    """``(is_clock, value)``: seconds of the day for a clock time, epoch
    seconds for an ISO timestamp; raises ValueError."""
    parts = text.split(":")
    if len(parts) == 3 and len(parts[1]) == 2 and len(parts[2]) == 2 and parts[0].isdigit() \
            and parts[1].isdigit() and parts[2].isdigit():  # H:MM:SS, the common case
        h, mi, sec = int(parts[0]), int(parts[1]), int(parts[2])
        if h <= 23 and mi <= 59 and sec <= 60:
            return True, h * 3600.0 + mi * 60.0 + sec
        raise ValueError("not a clock time")
    m = _CLOCK.match(text)
    if m:
        h, mi = int(m.group(1)), int(m.group(2))
        s = int(m.group(3) or 0) + (float(m.group(4)) if m.group(4) else 0.0)
        if h > 23 or mi > 59 or s >= 61:
            raise ValueError("not a clock time")
        return True, h * 3600.0 + mi * 60.0 + s
    if len(text) >= 10 and text[4] == "-":
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return False, dt.timestamp()
    raise ValueError("not a time")


def _seconds(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError("not finite")
    return v


# --- reading ---------------------------------------------------------------


def sniff_delimiter(path: str, mapping: Mapping) -> str:
    if mapping.delimiter is not None:
        return mapping.delimiter
    if path.lower().endswith(".tsv"):
        return "\t"
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            head = f.readline()
    except OSError:
        return ","
    return "\t" if head.count("\t") > head.count(",") else ","


def read_calls(
    path: str | os.PathLike[str],
    mapping: Mapping = ANONYMOUS_BANK,
    *,
    skip_bad: bool = False,
    date_from: Date | None = None,
    date_to: Date | None = None,
) -> tuple[list[Call], ImportSummary]:
    """The calls of a log that reached the ACD, sorted by acd arrival, and the
    summary of the whole file.  A malformed row raises ``RecordError`` with
    its line number, or with ``skip_bad`` is skipped and counted (its line
    number listed in ``summary.bad_rows``).  A file that cannot be read, or
    lacks a mapped column, always raises."""
    p = os.fspath(path)
    summary = ImportSummary(source=p, format=mapping.name)
    delim = sniff_delimiter(p, mapping)
    try:
        f = open(p, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise RecordError(p, None, f"cannot read: {exc.strerror or exc}") from None
    calls: list[Call] = []
    with f:
        if delim == "\t":
            reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(f, delimiter=delim)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise RecordError(p, 1, f"invalid {'TSV' if delim == chr(9) else 'CSV'} ({exc})") from None
        if header is None:
            raise RecordError(p, None, "empty file (no header row)")
        header = [h.strip() for h in header]
        index = {h: i for i, h in enumerate(header)}
        cols: dict[str, list[int]] = {}
        for fld, spec in mapping.columns.items():
            names = [spec] if fld != "id" else [s for s in spec.split(",") if s]
            for name in names:
                if name not in index:
                    raise RecordError(p, 1, f'no column "{name}" (mapped to {fld}); the header has: '
                                            f"{', '.join(header)}")
            cols[fld] = [index[n] for n in names]
        row_reader = _RowReader(p, mapping, cols, len(header), summary)
        row_reader.date_from, row_reader.date_to = date_from, date_to
        seen: dict[str, int] = {}
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as exc:
                raise RecordError(p, reader.line_num or None, f"invalid CSV ({exc})") from None
            lineno = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if row[0].lstrip().startswith("#"):
                continue
            summary.rows += 1
            try:
                call = row_reader.read(row, lineno)
            except RecordError as exc:
                if not skip_bad:
                    raise
                summary.bad(lineno, exc.message)
                continue
            if call is None:
                continue
            n = seen.get(call.id, 0)
            seen[call.id] = n + 1
            if n:
                summary.quirks["duplicate_id"] += 1
                call.id = f"{call.id}#{n + 1}"
            row_reader.count(call)
            calls.append(call)
    calls.sort(key=lambda c: (c.arrival, c.line))
    summary.contacts = len(calls)
    if calls:
        days = sorted({c.day for c in calls})
        summary.first_day, summary.last_day = days[0].isoformat(), days[-1].isoformat()
    return calls, summary


class _RowReader:
    """Reads one row; holds the column indexes and the summary."""

    def __init__(self, path: str, mapping: Mapping, cols: dict[str, list[int]], ncols: int, summary: ImportSummary):
        self.path = path
        self.m = mapping
        self.cols = cols
        self.ncols = ncols
        self.summary = summary
        self.served = {v.upper() for v in mapping.served}
        self.abandoned = {v.upper() for v in mapping.abandoned}
        self.ignored = {v.upper() for v in mapping.ignored}
        self.no_agent = set(mapping.no_agent)
        self.no_time = set(mapping.no_time)
        self.fixed_day = _date(mapping.date) if mapping.date else None
        self.fixed_epoch = _day_epoch(self.fixed_day) if self.fixed_day else 0.0
        self.days: dict[str, tuple[Date, float]] = {}
        self.date_from: Date | None = None
        self.date_to: Date | None = None

    def _cell(self, row: list[str], fld: str) -> str | None:
        idx = self.cols.get(fld)
        if idx is None:
            return None
        return row[idx[0]].strip()

    def _fail(self, lineno: int, fld: str, value: Any, what: str) -> RecordError:
        col = self.m.columns.get(fld, fld)
        return RecordError(self.path, lineno, f"{col}: expected {what}, got {value!r}")

    def count(self, call: Call) -> None:
        s = self.summary
        s.outcomes[call.outcome] += 1
        s.types[call.type] += 1

    def read(self, row: list[str], lineno: int) -> Call | None:
        s = self.summary
        if len(row) != self.ncols:
            raise RecordError(self.path, lineno, f"{len(row)} cells, expected {self.ncols} (as in the header row)")
        cell = self._cell
        # the day
        day = self.fixed_day
        day0 = self.fixed_epoch
        dcell = cell(row, "date")
        if dcell is not None:
            hit = self.days.get(dcell)
            if hit is None:
                try:
                    d = _date(dcell)
                except ValueError:
                    raise self._fail(lineno, "date", dcell, "a date (YYMMDD, YYYYMMDD or YYYY-MM-DD)") from None
                hit = self.days[dcell] = (d, _day_epoch(d))
            day, day0 = hit
        # the times, resolved along the chain
        times: dict[str, float | None] = {}
        prev: float | None = None
        wrapped = False
        for fld in _TIME_FIELDS:
            text = cell(row, fld)
            if text is None or (fld != "arrival" and fld != "ivr_exit" and text in self.no_time):
                times[fld] = None
                continue
            if text == "":
                raise self._fail(lineno, fld, text, "a time")
            try:
                is_clock, v = _time(text)
            except ValueError:
                raise self._fail(lineno, fld, text, "a time (H:MM:SS or ISO-8601)") from None
            if is_clock:
                if day is None:
                    raise RecordError(self.path, lineno, f"{self.m.columns[fld]}: a clock time needs a date "
                                                         "column or a fixed date")
                v += day0
                if prev is not None:
                    while v < prev - _WRAP:
                        v += _DAY
                        wrapped = True
            times[fld] = v
            prev = v
        arrival = times["arrival"]
        assert arrival is not None
        if day is None:
            day = datetime.fromtimestamp(arrival, timezone.utc).date()
        if (self.date_from is not None and day < self.date_from) or (self.date_to is not None and day > self.date_to):
            s.excluded["outside_dates"] += 1
            return None
        # outcome
        out_raw = cell(row, "outcome")
        has_service = bool(cell(row, "service_start") not in (None, *self.no_time))
        if out_raw is None:
            outcome = SERVED if has_service else ABANDONED
        else:
            up = out_raw.upper()
            if up in self.served:
                outcome = SERVED
            elif up in self.abandoned:
                outcome = ABANDONED
            elif up in self.ignored:
                s.excluded["ignored_outcome"] += 1
                return None
            else:
                known = ", ".join(dict.fromkeys(self.m.served + self.m.abandoned + self.m.ignored))
                raise self._fail(lineno, "outcome", out_raw, f"one of {known}")
        ivr_exit = times["ivr_exit"]
        if ivr_exit is not None and ivr_exit < arrival:
            s.quirks["negative_ivr_time"] += 1
        # queue
        q0, q1 = times["queue_start"], times["queue_end"]
        qt_text = cell(row, "queue_time")
        qtime: float | None = None
        if qt_text not in (None, ""):
            try:
                qtime = _seconds(qt_text)
            except ValueError:
                raise self._fail(lineno, "queue_time", qt_text, "seconds") from None
            if qtime < 0:
                raise self._fail(lineno, "queue_time", qt_text, "seconds >= 0")
        queued = q0 is not None
        if "queue_start" in self.cols and q0 is None and (q1 is not None or (qtime or 0) > 0):
            # "0:00:00" was a real queue start at midnight
            s.quirks["queued_at_midnight"] += 1
            queued = True
            if q1 is not None and qtime is not None:
                q0 = q1 - qtime
            elif q1 is not None:
                q0 = _day_epoch(day) + _DAY
            else:
                raise RecordError(self.path, lineno, "queue start 0:00:00 with a queue time but no queue end")
        if "queue_start" not in self.cols:
            queued = True  # no IVR/queue split in this log: the call queued on arrival
            q0 = ivr_exit if ivr_exit is not None else arrival
        # service
        sv0, sv1 = times["service_start"], times["service_end"]
        st_text = cell(row, "service_time")
        stime: float | None = None
        if st_text not in (None, ""):
            try:
                stime = _seconds(st_text)
            except ValueError:
                raise self._fail(lineno, "service_time", st_text, "seconds") from None
            if stime < 0:
                raise self._fail(lineno, "service_time", st_text, "seconds >= 0")
        if queued:
            assert q0 is not None
            t_acd = q0
            if qtime is not None:
                wait = qtime
                if q1 is not None and abs((q1 - q0) - qtime) > 1.0:
                    s.quirks["queue_time_mismatch"] += 1
            elif q1 is not None:
                wait = q1 - q0
            elif outcome == SERVED and sv0 is not None:
                wait = max(0.0, sv0 - q0)
            elif outcome == ABANDONED and times["service_end"] is not None and sv0 is None:
                wait = times["service_end"] - q0  # no queue end: the call's end is when the caller hung up
            else:
                raise RecordError(self.path, lineno, "cannot tell the queue wait: map queue_end or queue_time")
            if wait < 0:
                raise RecordError(self.path, lineno, f"queue end before queue start ({wait:g} s)")
        else:
            if outcome == ABANDONED:
                s.excluded["ivr_abandoned"] += 1
                return None
            s.quirks["never_queued"] += 1
            t_acd = ivr_exit if ivr_exit is not None else arrival
            wait = 0.0
        if wrapped:
            s.quirks["wrapped_midnight"] += 1
        # agent and handle time
        agent_cell = cell(row, "agent")
        agent = None if agent_cell is None or agent_cell in self.no_agent else agent_cell
        handle = 0.0
        sstart = send = None
        if outcome == SERVED:
            if stime is not None:
                handle = stime
                if sv0 is not None and sv1 is not None and abs((sv1 - sv0) - stime) > 1.0:
                    s.quirks["service_time_mismatch"] += 1
            elif sv0 is not None and sv1 is not None:
                handle = sv1 - sv0
                if handle < 0:
                    raise RecordError(self.path, lineno, f"service end before service start ({handle:g} s)")
            if sv0 is None:
                s.quirks["served_without_service_times"] += 1
            else:
                sstart = sv0
                send = sv0 + handle
            if handle == 0:
                s.quirks["zero_service_time"] += 1
            if agent is None:
                s.quirks["served_no_agent"] += 1
        else:
            if sv0 is not None:
                s.quirks["abandoned_with_service_times"] += 1
            agent = None
        # type, priority, customer, id
        ctype = cell(row, "type")
        if ctype is None:
            ctype = self.m.default_type
        elif not ctype:
            raise self._fail(lineno, "type", ctype, "a call type")
        raw_pri = cell(row, "priority") or ""
        if self.m.priority_map is not None and raw_pri in self.m.priority_map:
            priority = self.m.priority_map[raw_pri]
        elif raw_pri == "":
            priority = 0.0
        else:
            try:
                priority = _seconds(raw_pri)
            except ValueError:
                raise self._fail(lineno, "priority", raw_pri, "a number") from None
        customer = cell(row, "customer")
        idx = self.cols.get("id")
        cid = "-".join(row[i].strip() for i in idx) if idx else f"L{lineno}"
        if not cid.strip("-"):
            cid = f"L{lineno}"
        return Call(line=lineno, id=cid, type=ctype, outcome=outcome, arrival=t_acd, wait=wait, queued=queued,
                    handle=handle, service_start=sstart, service_end=send, agent=agent, priority=priority,
                    raw_priority=raw_pri, customer=customer or None, day=day)


def mapping_from_args(fmt: str, pairs: list[str] | None, *, delimiter: str | None = None,
                      priority_map: str | None = None, date: str | None = None) -> Mapping:
    """A Mapping from ``--format`` and ``--map FIELD=COLUMN`` pairs (which
    override the preset's columns); raises ValueError."""
    if fmt == "generic":
        base = Mapping(columns={"arrival": "arrival"}) if pairs else None
        if base is None:
            raise ValueError("--format generic needs --map FIELD=COLUMN for at least arrival")
        columns: dict[str, str] = {}
    elif fmt in FORMATS:
        base = FORMATS[fmt]
        columns = dict(base.columns)
    else:
        raise ValueError(f"--format: expected one of generic, {', '.join(FORMATS)}, got {fmt!r}")
    for pair in pairs or []:
        fld, sep, col = pair.partition("=")
        fld, col = fld.strip(), col.strip()
        if not sep or not fld:
            raise ValueError(f"--map: expected FIELD=COLUMN, got {pair!r}")
        if fld not in FIELDS:
            raise ValueError(f"--map: unknown field {fld!r} (fields: {', '.join(FIELDS)})")
        if col:
            columns[fld] = col
        else:
            columns.pop(fld, None)  # FIELD= removes a preset's column
    changes: dict[str, Any] = {"columns": columns}
    if delimiter is not None:
        changes["delimiter"] = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";"}.get(delimiter, delimiter)
    if priority_map is not None:
        pm: dict[str, float] = {}
        for part in priority_map.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            try:
                pm[k.strip()] = float(v)
            except ValueError:
                raise ValueError(f"--priority-map: expected RAW=NUMBER,..., got {priority_map!r}") from None
            if not sep:
                raise ValueError(f"--priority-map: expected RAW=NUMBER,..., got {priority_map!r}")
        changes["priority_map"] = pm
    if date is not None:
        try:
            _date(date)
        except ValueError:
            raise ValueError(f"--date: expected YYYY-MM-DD, got {date!r}") from None
        changes["date"] = date
    return replace(base, **changes)
