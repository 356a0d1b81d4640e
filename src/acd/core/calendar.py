"""Shift calendars, business hours and follow-the-sun: who is expected when.

    cal = Calendar(spec)                       # once; checks and compiles
    cal.transitions(t0, t1)                    # sorted changes in [t0, t1)
    cur = cal.cursor(t0)                       # the same, lazily, for a run
    cur.next_time; cur.pop_due(now)            #   (a deadline for the core)
    cal.group_state(group, t)                  # initial presence at t
    cal.queue_open(queue, t); cal.preferred_sites(queue, t)
    cal.expected_staff(t0, t1, step)           # planning, adherence

Sans-IO like the rest of the core: times are float seconds since the Unix
epoch, nothing here reads a clock.  ``zoneinfo`` converts local wall times to
instants only when a *local day* is expanded (each (subject, date) once,
cached), never per routing event: the core keeps the state it is told by the
transitions, and ``queue_open``/``preferred_sites`` keep the constant stretch
around the last time asked, so a run of increasing times costs one compare.

**Local times** (shifts, breaks, hours, windows) are wall-clock times of the
subject's time zone (a group's site, a queue's hours, a schedule's zone):

* a time that does not exist (the spring-forward gap, e.g. 02:30 on
  2026-03-29 in Europe/Warsaw) means the first valid instant after the gap
  (03:00 CEST): a shift starting then starts when the clocks have jumped, a
  break wholly inside the gap vanishes;
* a time that exists twice (fall-back, e.g. 01:30 on 2026-11-01 in
  America/Chicago) means its *first* occurrence (01:30 CDT);
* everything else follows the wall clock, so a 22:00-06:00 shift lasts 7 h
  on a 23-hour night and 9 h on a 25-hour one.

**Shifts** belong to the local date they start on: an overnight shift from
2026-12-31 22:00 runs into 2027-01-01 even if that is a holiday.  A site
holiday drops the shifts that would start that day; a group's ``exceptions``
drop (``day_off``) or add (``shift``) shifts on a date, holiday or not.
Shifts of one group may touch (end 14:00, next starts 14:00: the agents stay
logged in) but never overlap; ``check`` rejects that.

**Transitions** ``(time, kind, subject, detail)`` are sorted by time, then
kind in ``Kind`` order, then the subject's position in the config.  Groups are
the subject of agent transitions (every agent of the group does the same):

==============  ==========  =========================================
kind            subject     detail
==============  ==========  =========================================
SHIFT_START     group       None: log in ready; a reason: log in not
                            ready with it (only when a break starts
                            exactly as the shift does, e.g. after a
                            DST gap)
BREAK_START     group       the reason (a break right after another
                            changes the reason only)
BREAK_END       group       None: ready again
SHIFT_END       group       None: log out (work in progress finishes)
QUEUE_OPEN      queue       None
QUEUE_CLOSE     queue       the ``ClosedRule`` (overflow, reason)
SITES           queue       the new ``preferred_sites`` tuple
==============  ==========  =========================================

Only real changes are emitted: two shifts that touch make no logout/login,
two adjacent hour ranges no close/open.

**Follow-the-sun**: ``preferred_sites(queue, t)`` is, for ``sites:
daytime``, the sites whose business ``hours`` are open at ``t`` (holidays
close them), in the order of the top-level ``sites`` list -- possibly empty
(no site has daytime: no preference); for a list, that list; for a schedule,
the sites of the window in force (each window runs from its ``start`` on its
``days`` until the next window starts, round the week).  The *preferred site*
is the first one; its agents are targeted first, every site's after
``site_escalation`` seconds.

**Planning**: ``expected_staff``, ``queue_status`` and ``gaps`` (an open queue
with nobody available who can serve it, or nobody at its preferred site) are
what ``acd calendar`` prints.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import deque
from datetime import date, datetime, timedelta
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

if TYPE_CHECKING:  # no runtime import: spec imports this module
    from .spec import uses_calendar, Spec

__all__ = [
    "Calendar", "CalendarError", "ClosedRule", "Cursor", "Gap", "Kind", "QueueStatus", "Staffing",
    "Transition", "calendar_errors", "parse_days", "parse_ranges", "parse_time",
]

DAY = 86_400
WEEK = 7 * DAY
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class Kind(IntEnum):
    """Transition kinds, in their same-time order: agents come on before
    anything else changes and leave before the queues close."""

    SHIFT_START = 0
    BREAK_START = 1
    BREAK_END = 2
    SHIFT_END = 3
    QUEUE_OPEN = 4
    QUEUE_CLOSE = 5
    SITES = 6


class Transition(NamedTuple):
    time: float
    kind: Kind
    subject: str
    detail: Any


class ClosedRule(NamedTuple):
    """The closed-hours rule of a queue: overflow to ``overflow`` (a queue
    name) or, when it is None, close the contact with ``reason``."""

    overflow: str | None
    reason: str


class Staffing(NamedTuple):
    """One interval of ``expected_staff``: mean agent counts per site over
    [start, end) -- ``on_shift`` (logged in, breaks included) and
    ``available`` (on shift and not on a break).  Site ``"-"``: groups with
    no site."""

    start: float
    end: float
    available: dict[str, float]
    on_shift: dict[str, float]


class QueueStatus(NamedTuple):
    """One interval of ``queue_status``: per queue, the share of the interval
    it is open, and its preferred site for most of the interval."""

    start: float
    end: float
    open: dict[str, float]
    preferred: dict[str, str | None]


class Gap(NamedTuple):
    """A stretch when a queue is open but ``kind`` = ``"uncovered"``: no
    agent who can serve it is available, or ``"preferred_site"``: none at its
    preferred ``site`` (contacts wait for the site escalation)."""

    queue: str
    start: float
    end: float
    kind: str
    site: str | None


class CalendarError(ValueError):
    """A bad calendar value (the message says why; the caller adds the path)."""


# --- parsing local times, days and ranges ----------------------------------------

_DAY_NAMES = {
    "mon": 0, "monday": 0, "tue": 1, "tues": 1, "tuesday": 1, "wed": 2, "wednesday": 2,
    "thu": 3, "thur": 3, "thurs": 3, "thursday": 3, "fri": 4, "friday": 4,
    "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}
_DAY_SETS = {
    "daily": frozenset(range(7)), "weekdays": frozenset(range(5)),
    "weekend": frozenset((5, 6)), "weekends": frozenset((5, 6)),
}
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def _q(value: Any) -> str:
    return json.dumps(value, default=str)


def parse_time(value: Any, *, end: bool = False) -> int:
    """A local time of day -> seconds after midnight.  ``"HH:MM"`` or
    ``"HH:MM:SS"``; ``"24:00"`` only as an ``end``.  An int is YAML 1.1's
    reading of an unquoted time (17:30 -> 1050 = 17*60+30, 17:30:15 ->
    63015), read back as that time."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise CalendarError(f'expected a time "HH:MM", got {_q(value)}')
    if isinstance(value, int):
        if 60 <= value <= 1440:  # H:MM, as YAML 1.1 sexagesimal
            secs = value * 60
        elif 3600 <= value <= DAY:  # H:MM:SS
            secs = value
        else:
            raise CalendarError(f'expected a time "HH:MM", got {value} (write times in quotes, e.g. "08:30")')
    else:
        m = _TIME_RE.fullmatch(value.strip())
        if not m:
            raise CalendarError(f'expected a time "HH:MM", got {_q(value)}')
        h, mi, s = int(m[1]), int(m[2]), int(m[3] or 0)
        if mi > 59 or s > 59 or h > 24 or (h == 24 and (mi or s)):
            raise CalendarError(f"not a time of day: {_q(value)}")
        secs = h * 3600 + mi * 60 + s
    if secs == DAY and not end:
        raise CalendarError("24:00 is only valid as an end time")
    return secs


def fmt_time(secs: float) -> str:
    """Seconds after local midnight -> ``"HH:MM"`` (``"+1d HH:MM"`` past 24:00)."""
    secs = int(secs)
    days, secs = divmod(secs, DAY)
    if days == 1 and secs == 0:
        return "24:00"
    text = f"{secs // 3600:02d}:{secs // 60 % 60:02d}" + (f":{secs % 60:02d}" if secs % 60 else "")
    return f"+{days}d {text}" if days else text


def parse_days(value: Any) -> frozenset[int]:
    """``"mon-fri"``, ``"sat,sun"``, ``["mon", "thu-sat"]``, ``"daily"``,
    ``"weekdays"``, ``"weekends"`` -> weekday numbers (Monday 0).  Ranges may
    wrap (``fri-mon``)."""
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise CalendarError("needs at least one day")
    out: set[int] = set()
    for item in items:
        if not isinstance(item, str):
            raise CalendarError(f"expected a day name, got {_q(item)}")
        for tok in item.split(","):
            tok = tok.strip().lower()
            if tok in _DAY_SETS:
                out |= _DAY_SETS[tok]
                continue
            a, sep, b = (x.strip() for x in tok.partition("-"))
            if a not in _DAY_NAMES or (sep and b not in _DAY_NAMES):
                bad = a if a not in _DAY_NAMES else b
                raise CalendarError(f"unknown day {_q(bad)} (use mon .. sun, a range like mon-fri, daily, "
                                    f"weekdays or weekends)")
            i = _DAY_NAMES[a]
            j = _DAY_NAMES[b] if sep else i
            while True:
                out.add(i)
                if i == j:
                    break
                i = (i + 1) % 7
    return frozenset(out)


def parse_ranges(value: Any) -> list[tuple[int, int]]:
    """``"08:00-17:00"``, a list of such ranges, or ``"closed"`` -> sorted,
    merged (start, end) seconds of one day.  A range cannot cross midnight."""
    items = [value] if isinstance(value, str) else list(value)
    out: list[tuple[int, int]] = []
    for item in items:
        if not isinstance(item, str):
            raise CalendarError(f'expected a range "HH:MM-HH:MM" or "closed", got {_q(item)}')
        if item.strip().lower() == "closed":
            if len(items) > 1:
                raise CalendarError('"closed" cannot be mixed with ranges')
            continue
        a, sep, b = item.partition("-")
        if not sep:
            raise CalendarError(f'expected a range "HH:MM-HH:MM" or "closed", got {_q(item)}')
        s, e = parse_time(a.strip()), parse_time(b.strip(), end=True)
        if e <= s:
            raise CalendarError(f"{_q(item)} ends before it starts: a range cannot cross midnight "
                                f'(split it: "{fmt_time(s)}-24:00" and "00:00-{fmt_time(e)}" the next day)')
        out.append((s, e))
    out.sort()
    merged: list[tuple[int, int]] = []
    for s, e in out:
        if merged and s < merged[-1][1]:
            raise CalendarError(f"ranges {fmt_time(merged[-1][0])}-{fmt_time(merged[-1][1])} and "
                                f"{fmt_time(s)}-{fmt_time(e)} overlap")
        if merged and s == merged[-1][1]:
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


# --- time zones -------------------------------------------------------------------


class _Zone:
    """One IANA zone: local (date, seconds) -> epoch, with the gap and fold
    rules of the module docstring; local midnights cached."""

    __slots__ = ("name", "tz", "_midnight", "conversions")

    def __init__(self, name: str):
        self.name = name
        self.tz = ZoneInfo(name)
        self._midnight: dict[date, int] = {}
        self.conversions = 0

    def date_of(self, t: float) -> date:
        self.conversions += 1
        return datetime.fromtimestamp(t, self.tz).date()

    def instant(self, d: date, secs: int) -> int:
        """Epoch of local wall time ``secs`` after midnight of ``d`` (may be
        >= one day: the next day's wall time)."""
        if not 0 <= secs < DAY:
            days, secs = divmod(secs, DAY)
            d = d + timedelta(days=days)
        if secs == 0:
            t = self._midnight.get(d)
            if t is None:
                t = self._midnight[d] = self._wall(datetime(d.year, d.month, d.day))
            return t
        return self._wall(datetime(d.year, d.month, d.day, secs // 3600, secs // 60 % 60, secs % 60))

    def _wall(self, naive: datetime) -> int:
        self.conversions += 1
        tz = self.tz
        t0 = int(naive.replace(tzinfo=tz).timestamp())  # fold=0: first occurrence if ambiguous
        if datetime.fromtimestamp(t0, tz).replace(tzinfo=None) == naive:
            return t0
        # In a gap: fold=0 used the offset before the jump (t0 is after it),
        # fold=1 the one after (t1 is before it).  The jump is the first
        # instant in (t1, t0] with t0's offset.
        t1 = int(naive.replace(tzinfo=tz, fold=1).timestamp())
        lo, hi = min(t0, t1), max(t0, t1)
        off = datetime.fromtimestamp(hi, tz).utcoffset()
        while lo < hi:
            mid = (lo + hi) // 2
            if datetime.fromtimestamp(mid, tz).utcoffset() == off:
                hi = mid
            else:
                lo = mid + 1
        return lo


# --- compiled subjects ----------------------------------------------------------


class _ShiftDef(NamedTuple):
    name: str
    days: frozenset[int]
    start: int  # seconds after the start day's midnight
    end: int  # may be > DAY (overnight)
    breaks: tuple[tuple[int, int, str], ...]  # same clock as start/end

    def label(self) -> str:
        return f"{fmt_time(self.start)}-{fmt_time(self.end % DAY if self.end > DAY else self.end)}"


class _Instance(NamedTuple):
    start: int
    end: int
    shift: str
    breaks: tuple[tuple[int, int, str], ...]


_OFF, _READY = 0, 1  # group states; a str is "on a break with this reason"


def _dates(zone: _Zone, t0: float, t1: float, back: int) -> Iterator[date]:
    d = zone.date_of(t0) - timedelta(days=back)
    last = zone.date_of(t1)
    while d <= last:
        yield d
        d += timedelta(days=1)


class _GroupCal:
    """A calendar-driven agent group."""

    def __init__(self, idx: int, name: str, count: int, site: str, zone: _Zone, holidays: frozenset[date],
                 shifts: list[_ShiftDef], exceptions: dict[date, tuple[bool, list[_ShiftDef]]]):
        self.idx, self.name, self.count, self.site, self.zone = idx, name, count, site, zone
        self.holidays, self.shifts, self.exceptions = holidays, shifts, exceptions
        self._days: dict[date, tuple[_Instance, ...]] = {}
        self.expanded = 0

    def shifts_on(self, d: date) -> list[_ShiftDef]:
        """The shifts that start on local date ``d``."""
        ex = self.exceptions.get(d)
        if ex is None:
            return [] if d in self.holidays else [s for s in self.shifts if d.weekday() in s.days]
        day_off, extra = ex
        base = [] if day_off or d in self.holidays else [s for s in self.shifts if d.weekday() in s.days]
        return base + extra

    def day(self, d: date) -> tuple[_Instance, ...]:
        got = self._days.get(d)
        if got is None:
            self.expanded += 1
            z = self.zone
            got = tuple(
                _Instance(z.instant(d, s.start), z.instant(d, s.end), s.name,
                          tuple((z.instant(d, a), z.instant(d, b), r) for a, b, r in s.breaks))
                for s in self.shifts_on(d)
            )
            self._days[d] = got
        return got

    def instances(self, t0: float, t1: float) -> list[_Instance]:
        """Every shift instance that can touch [t0, t1] (a shift lasts at
        most a day, so from the day before t0's on)."""
        return [i for d in _dates(self.zone, t0, t1, 1) for i in self.day(d)]


def _gstate(instances: Iterable[_Instance], t: float, before: bool) -> Any:
    """A group's state at ``t`` (``before``: just before ``t``)."""
    for a, b, _, brks in instances:
        if (a < t <= b) if before else (a <= t < b):
            for c, d, reason in brks:
                if (c < t <= d) if before else (c <= t < d):
                    return reason
            return _READY
    return _OFF


def _points(instances: Iterable[_Instance], t0: float, t1: float) -> list[int]:
    pts = set()
    for a, b, _, brks in instances:
        pts.add(a)
        pts.add(b)
        for c, d, _ in brks:
            pts.add(c)
            pts.add(d)
    return sorted(p for p in pts if t0 <= p < t1)


def _group_change(before: Any, after: Any) -> tuple[Kind, Any] | None:
    if before == after:
        return None
    if before == _OFF:
        return Kind.SHIFT_START, None if after == _READY else after
    if after == _OFF:
        return Kind.SHIFT_END, None
    if after == _READY:
        return Kind.BREAK_END, None
    return Kind.BREAK_START, after


class _HoursCal:
    """Weekly open ranges in a zone, closed on holidays."""

    def __init__(self, zone: _Zone, weekly: tuple[list[tuple[int, int]], ...], holidays: frozenset[date]):
        self.zone, self.weekly, self.holidays = zone, weekly, holidays
        self._days: dict[date, tuple[tuple[int, int], ...]] = {}
        self.expanded = 0

    def day(self, d: date) -> tuple[tuple[int, int], ...]:
        got = self._days.get(d)
        if got is None:
            self.expanded += 1
            z = self.zone
            ranges = () if d in self.holidays else self.weekly[d.weekday()]
            got = tuple((a, b) for a, b in ((z.instant(d, s), z.instant(d, e)) for s, e in ranges) if a < b)
            self._days[d] = got
        return got

    def intervals(self, t0: float, t1: float) -> list[tuple[int, int]]:
        return [iv for d in _dates(self.zone, t0, t1, 1) for iv in self.day(d)]


def _open(intervals: Iterable[tuple[int, int]], t: float, before: bool) -> bool:
    if before:
        return any(a < t <= b for a, b in intervals)
    return any(a <= t < b for a, b in intervals)


def _ipoints(intervals: Iterable[tuple[int, int]], t0: float, t1: float) -> set[int]:
    return {p for iv in intervals for p in iv if t0 <= p < t1}


class _WindowsCal:
    """Weekly change points ``(weekday, seconds) -> sites`` in a zone."""

    def __init__(self, zone: _Zone, points: tuple[list[tuple[int, tuple[str, ...]]], ...]):
        self.zone, self.points = zone, points  # per weekday, sorted by seconds
        self._days: dict[date, tuple[tuple[int, tuple[str, ...]], ...]] = {}
        self.expanded = 0

    def day(self, d: date) -> tuple[tuple[int, tuple[str, ...]], ...]:
        got = self._days.get(d)
        if got is None:
            self.expanded += 1
            got = self._days[d] = tuple((self.zone.instant(d, s), sites) for s, sites in self.points[d.weekday()])
        return got

    def value(self, t: float, before: bool) -> tuple[str, ...]:
        """The sites of the latest change at (``before``: strictly before) ``t``."""
        d = self.zone.date_of(t)
        for back in range(9):
            for inst, sites in reversed(self.day(d - timedelta(days=back))):
                if inst < t or (inst == t and not before):
                    return sites
        return ()

    def changes(self, t0: float, t1: float) -> list[int]:
        return sorted({inst for d in _dates(self.zone, t0, t1, 0) for inst, _ in self.day(d) if t0 <= inst < t1})


class _QueueCal:
    def __init__(self, idx: int, name: str, hours: _HoursCal | None, closed: ClosedRule | None,
                 mode: str | None, static: tuple[str, ...], windows: _WindowsCal | None,
                 site_escalation: float | None):
        self.idx, self.name, self.hours, self.closed = idx, name, hours, closed
        self.mode, self.static, self.windows, self.site_escalation = mode, static, windows, site_escalation
        self.open_cache = (0.0, -1.0, True)  # [lo, hi) -> value
        self.sites_cache: tuple[float, float, tuple[str, ...]] = (0.0, -1.0, ())


# --- compiling and checking a Spec ----------------------------------------------


class _Compiler:
    """Spec -> calendar subjects, collecting ``(path, message)`` errors."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.errors: list[tuple[str, str]] = []
        self.zones: dict[str, _Zone | None] = {}
        self.sites: dict[str, Any] = {}
        self.site_zone: dict[str, _Zone | None] = {}
        self.site_hours: dict[str, _HoursCal | None] = {}
        self.shifts: dict[str, _ShiftDef | None] = {}
        self.groups: list[_GroupCal] = []
        self.group_site: dict[str, str | None] = {}
        self.queues: list[_QueueCal] = []
        self._sites()
        self._shifts()
        self._groups()
        self._queues()

    def err(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def zone(self, path: str, name: str) -> _Zone | None:
        if name in self.zones:
            z = self.zones[name]
            if z is None:
                self.err(path, f"unknown time zone {_q(name)}")
            return z
        try:
            z = _Zone(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            z = None
            names = available_timezones()
            lower = {n.lower(): n for n in names}
            close = [lower[name.lower()]] if name.lower() in lower else \
                difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.75)
            hint = f" (did you mean {_q(close[0])}?)" if close else ' (an IANA name like "Europe/Warsaw")'
            self.err(path, f"unknown time zone {_q(name)}{hint}")
        self.zones[name] = z
        return z

    def weekly(self, path: str, mapping: Mapping[str, Any]) -> tuple[list[tuple[int, int]], ...] | None:
        week: list[list[tuple[int, int]] | None] = [None] * 7
        owner: dict[int, str] = {}
        ok = True
        for key, value in mapping.items():
            p = f"{path}.{key}"
            try:
                days = parse_days(key)
                ranges = parse_ranges(value)
            except CalendarError as exc:
                self.err(p, str(exc))
                ok = False
                continue
            for w in sorted(days):
                if w in owner:
                    self.err(p, f"{WEEKDAYS[w]} is already given by {_q(owner[w])}")
                    ok = False
                    break
                owner[w] = key
                week[w] = ranges
        return tuple(w or [] for w in week) if ok else None

    def site_ref(self, path: str, name: str) -> bool:
        if name in self.sites:
            return True
        close = difflib.get_close_matches(name, list(self.sites), n=1)
        hint = f" (did you mean {_q(close[0])}?)" if close else \
            f" (known: {', '.join(_q(s) for s in self.sites)})" if self.sites else " (there is no sites: list)"
        self.err(path, f"unknown site {_q(name)}{hint}")
        return False

    # -- sites, shifts ------------------------------------------------------

    def _sites(self) -> None:
        for i, s in enumerate(self.spec.sites):
            p = f"sites[{i}]"
            if s.name in self.sites:
                self.err(f"{p}.name", f"duplicate site name {_q(s.name)}")
                continue
            self.sites[s.name] = s
            z = self.site_zone[s.name] = self.zone(f"{p}.timezone", s.timezone)
            hours = None
            if s.hours is not None:
                weekly = self.weekly(f"{p}.hours", s.hours)
                if weekly is not None and z is not None:
                    hours = _HoursCal(z, weekly, frozenset(s.holidays))
            self.site_hours[s.name] = hours

    def _shifts(self) -> None:
        for name, sh in self.spec.shifts.items():
            self.shifts[name] = self._shift(f"shifts.{name}", name, sh)

    def _shift(self, p: str, name: str, sh: Any) -> _ShiftDef | None:
        errs = len(self.errors)
        days: frozenset[int] = frozenset()
        if sh.days is not None:
            try:
                days = parse_days(sh.days)
            except CalendarError as exc:
                self.err(f"{p}.days", str(exc))
        try:
            start = parse_time(sh.start)
        except CalendarError as exc:
            self.err(f"{p}.start", str(exc))
            return None
        try:
            end = parse_time(sh.end, end=True)
        except CalendarError as exc:
            self.err(f"{p}.end", str(exc))
            return None
        if sh.overnight:
            if end >= start:
                self.err(f"{p}.overnight", f"an overnight shift ends the next day, so its end ({fmt_time(end)}) "
                                           f"must be before its start ({fmt_time(start)})")
                return None
            end += DAY
        elif end <= start:
            self.err(f"{p}.end", f"the shift ends ({fmt_time(end)}) before it starts ({fmt_time(start)}): "
                                 f"set overnight: true for a shift that crosses midnight")
            return None
        breaks: list[tuple[int, int, str, int]] = []
        for j, br in enumerate(sh.breaks):
            bp = f"{p}.breaks[{j}]"
            try:
                b0 = parse_time(br.start)
            except CalendarError as exc:
                self.err(f"{bp}.start", str(exc))
                continue
            if (br.end is None) == (br.minutes is None):
                self.err(bp, "give exactly one of end and minutes")
                continue
            if b0 < start:
                b0 += DAY  # only inside an overnight shift; else caught below
            if br.minutes is not None:
                b1 = b0 + round(br.minutes * 60)
            else:
                try:
                    b1 = parse_time(br.end, end=True)
                except CalendarError as exc:
                    self.err(f"{bp}.end", str(exc))
                    continue
                while b1 <= b0:
                    b1 += DAY
            if not start < b0 < b1 < end:
                self.err(bp, f"the break {fmt_time(b0 % DAY)}-{fmt_time(b1 % DAY or DAY)} is outside its shift "
                             f"({fmt_time(start)}-{fmt_time(end % DAY if end > DAY else end)}): a break starts "
                             f"after the shift starts and ends before it ends")
                continue
            breaks.append((b0, b1, br.reason, j))
        breaks.sort()
        for (a0, a1, _, _), (b0, _, _, j) in zip(breaks, breaks[1:]):
            if b0 < a1:
                self.err(f"{p}.breaks[{j}]", f"the break at {fmt_time(b0 % DAY)} overlaps the one at "
                                             f"{fmt_time(a0 % DAY)}")
        if len(self.errors) > errs:
            return None
        return _ShiftDef(name, days, start, end, tuple((a, b, r) for a, b, r, _ in breaks))

    def shift_ref(self, path: str, name: str) -> _ShiftDef | None:
        if name not in self.shifts:
            close = difflib.get_close_matches(name, list(self.shifts), n=1)
            hint = f" (did you mean {_q(close[0])}?)" if close else \
                "" if self.shifts else " (there is no shifts: mapping)"
            self.err(path, f"unknown shift {_q(name)}{hint}")
            return None
        return self.shifts[name]

    # -- groups -------------------------------------------------------------

    def _groups(self) -> None:
        for i, g in enumerate(self.spec.agents):
            p = f"agents[{i}]"
            self.group_site[g.group] = g.site
            if g.site is not None:
                self.site_ref(f"{p}.site", g.site)
            names = [] if g.shift is None else [g.shift] if isinstance(g.shift, str) else list(g.shift)
            if g.shift is not None and not names:
                self.err(f"{p}.shift", "needs at least one shift")
            defs: list[_ShiftDef] = []
            ok = True
            for k, n in enumerate(names):
                sp = f"{p}.shift" if isinstance(g.shift, str) else f"{p}.shift[{k}]"
                if n in names[:k]:
                    self.err(sp, f"shift {_q(n)} is given twice")
                    ok = False
                    continue
                d = self.shift_ref(sp, n)
                if d is None:
                    ok = False
                elif self.spec.shifts[n].days is None:
                    self.err(sp, f"shift {_q(n)} has no days: it can only be added by exceptions")
                    ok = False
                else:
                    defs.append(d)
            exceptions: dict[date, tuple[bool, list[_ShiftDef]]] = {}
            for j, ex in enumerate(g.exceptions):
                ep = f"{p}.exceptions[{j}]"
                if (ex.date is None) == (ex.dates is None):
                    self.err(ep, "give exactly one of date and dates")
                    ok = False
                    continue
                days = [(f"{ep}.date", ex.date)] if ex.date is not None else \
                    [(f"{ep}.dates[{k}]", d) for k, d in enumerate(ex.dates)]
                if not days:
                    self.err(f"{ep}.dates", "needs at least one date")
                    ok = False
                    continue
                clash = next(((dp, d) for dp, d in days if d in exceptions or
                              sum(1 for _, d2 in days if d2 == d) > 1), None)
                if clash is not None:
                    self.err(clash[0], f"{clash[1].isoformat()} has two exceptions: merge them")
                    ok = False
                    continue
                extra_names = [] if ex.shift is None else [ex.shift] if isinstance(ex.shift, str) else list(ex.shift)
                if not ex.day_off and not extra_names:
                    self.err(ep, "give day_off: true, shift (an extra shift that day), or both (a swap)")
                    ok = False
                    continue
                extra = []
                for k, n in enumerate(extra_names):
                    sp = f"{ep}.shift" if isinstance(ex.shift, str) else f"{ep}.shift[{k}]"
                    d = self.shift_ref(sp, n)
                    if d is None:
                        ok = False
                    else:
                        extra.append(d)
                for _, d in days:
                    exceptions[d] = (ex.day_off, extra)
            if not names and not g.exceptions:
                continue  # not calendar-driven: presence from `initial` and the telephony side
            if g.site is None:
                self.err(f"{p}.site", "a group with shifts needs a site (its time zone and holidays)")
                continue
            if not ok or g.site not in self.sites:
                continue
            zone = self.site_zone[g.site]
            if zone is None:
                continue
            gc = _GroupCal(i, g.group, len(g.agent_ids()), g.site, zone, frozenset(self.sites[g.site].holidays),
                           defs, exceptions)
            if self._overlaps(p, gc, g):
                self.groups.append(gc)

    def _overlaps(self, p: str, gc: _GroupCal, g: Any) -> bool:
        """Shifts of one group must not overlap: in the weekly pattern (on the
        wall clock, wrapping round the week) and around every exception date."""
        occ = [(w * DAY + s.start, w * DAY + s.end, w, s) for s in gc.shifts for w in sorted(s.days)]
        for x in range(len(occ)):
            for y in range(x + 1, len(occ)):
                a0, a1, wa, sa = occ[x]
                b0, b1, wb, sb = occ[y]
                if any(max(a0, b0 + k) < min(a1, b1 + k) for k in (-WEEK, 0, WEEK)):
                    self.err(f"{p}.shift", f"shifts {_q(sa.name)} ({WEEKDAYS[wa]} {sa.label()}) and {_q(sb.name)} "
                                           f"({WEEKDAYS[wb]} {sb.label()}) overlap")
                    return False
        for j, ex in enumerate(g.exceptions):
            for e in [ex.date] if ex.date is not None else ex.dates:
                near = [(off * DAY + s.start, off * DAY + s.end, e + timedelta(days=off), s)
                        for off in (-1, 0, 1) for s in gc.shifts_on(e + timedelta(days=off))]
                for x in range(len(near)):
                    for y in range(x + 1, len(near)):
                        a0, a1, da, sa = near[x]
                        b0, b1, db, sb = near[y]
                        if max(a0, b0) < min(a1, b1):
                            self.err(f"{p}.exceptions[{j}]",
                                     f"shift {_q(sa.name)} ({da.isoformat()} {sa.label()}) overlaps shift "
                                     f"{_q(sb.name)} ({db.isoformat()} {sb.label()})")
                            return False
        return True

    # -- queues -------------------------------------------------------------

    def _queues(self) -> None:
        spec = self.spec
        names = [q.name for q in spec.queues]
        by_name = {q.name: q for q in spec.queues}
        any_site = any(g.site is not None for g in spec.agents)
        for i, q in enumerate(spec.queues):
            p = f"queues[{i}]"
            hours = self._hours(f"{p}.hours", q.hours) if q.hours is not None else None
            closed = None
            if q.closed is not None:
                cp = f"{p}.closed"
                if q.hours is None:
                    self.err(cp, "the closed-hours rule needs hours (when the queue is open)")
                o = q.closed.overflow
                if o is not None:
                    if o not in names:
                        self.err(f"{cp}.overflow", f"unknown queue {_q(o)}")
                    elif o == q.name:
                        self.err(f"{cp}.overflow", "a queue cannot overflow to itself")
                    elif by_name[o].channel != q.channel:
                        self.err(f"{cp}.overflow", f"queue {_q(o)} takes {by_name[o].channel}, not {q.channel}: "
                                                   f"a contact keeps its channel")
                closed = ClosedRule(o, q.closed.reason)
            elif q.hours is not None:
                closed = ClosedRule(None, "outside_hours")
            mode, static, windows = self._sites_of(p, q, any_site)
            self.queues.append(_QueueCal(i, q.name, hours, closed, mode, static, windows, q.site_escalation))
        # a closed queue overflowing to a closed queue ... must end somewhere
        nxt = {q.name: q.closed.overflow for q in spec.queues if q.closed is not None and q.closed.overflow in by_name}
        for i, q in enumerate(spec.queues):
            chain, cur = [q.name], nxt.get(q.name)
            while cur is not None and cur not in chain:
                chain.append(cur)
                cur = nxt.get(cur)
            if cur == q.name:
                self.err(f"queues[{i}].closed.overflow",
                         "closed-hours overflow goes round in a loop: " + " -> ".join(chain + [q.name]))

    def _hours(self, p: str, h: Any) -> _HoursCal | None:
        if (h.site is None) == (h.timezone is None):
            self.err(p, "give exactly one of site (its time zone and holidays) and timezone")
            return None
        holidays = set(h.holidays)
        if h.site is not None:
            if not self.site_ref(f"{p}.site", h.site):
                return None
            zone = self.site_zone[h.site]
            holidays |= set(self.sites[h.site].holidays)
        else:
            zone = self.zone(f"{p}.timezone", h.timezone)
        if h.weekly is not None:
            weekly = self.weekly(f"{p}.weekly", h.weekly)
        elif h.site is not None:
            site_hours = self.site_hours.get(h.site)
            if self.sites[h.site].hours is None:
                self.err(f"{p}.weekly", f"site {_q(h.site)} has no hours: give weekly hours here")
                return None
            weekly = site_hours.weekly if site_hours is not None else None
        else:
            self.err(f"{p}.weekly", "give the weekly hours, e.g. {mon-fri: \"08:00-18:00\"}")
            return None
        if weekly is None or zone is None:
            return None
        return _HoursCal(zone, weekly, frozenset(holidays))

    def _sites_of(self, p: str, q: Any, any_site: bool) -> tuple[str | None, tuple[str, ...], _WindowsCal | None]:
        sp = f"{p}.sites"
        if q.sites is None:
            if q.site_escalation is not None:
                self.err(f"{p}.site_escalation", "applies only with sites (follow-the-sun)")
            return None, (), None
        if q.site_escalation is None:
            self.err(sp, "follow-the-sun needs site_escalation: the seconds after which every site's agents "
                         "are targeted, not only the preferred site's")
        if not any_site:
            self.err(sp, "no agent group has a site: give the groups site: ...")
        if isinstance(q.sites, str):
            if q.sites != "daytime":
                self.err(sp, f'expected "daytime", a list of sites or {{timezone, windows}}, got {_q(q.sites)}')
            elif not any(s.hours is not None for s in self.spec.sites):
                self.err(sp, '"daytime" means the sites whose business hours are open: no site has hours')
            return "daytime", (), None
        if isinstance(q.sites, list):
            if not q.sites:
                self.err(sp, "needs at least one site")
            ok = self._site_list(sp, q.sites)
            return "static", tuple(q.sites) if ok else (), None
        sched = q.sites
        zone = self.zone(f"{sp}.timezone", sched.timezone)
        points: list[list[tuple[int, tuple[str, ...]]]] = [[] for _ in range(7)]
        seen: dict[tuple[int, int], int] = {}
        ok = zone is not None
        for j, w in enumerate(sched.windows):
            wp = f"{sp}.windows[{j}]"
            try:
                start = parse_time(w.start)
            except CalendarError as exc:
                self.err(f"{wp}.start", str(exc))
                ok = False
                continue
            try:
                days = parse_days(w.days)
            except CalendarError as exc:
                self.err(f"{wp}.days", str(exc))
                ok = False
                continue
            ok = self._site_list(f"{wp}.sites", w.sites) and ok
            for d in sorted(days):
                if (d, start) in seen:
                    self.err(wp, f"windows[{seen[d, start]}] also starts on {WEEKDAYS[d]} at {fmt_time(start)}")
                    ok = False
                    break
                seen[d, start] = j
                points[d].append((start, tuple(w.sites)))
        if not ok:
            return "windows", (), None
        return "windows", (), _WindowsCal(zone, tuple(sorted(x) for x in points))

    def _site_list(self, path: str, sites: list[str]) -> bool:
        ok = True
        for k, s in enumerate(sites):
            if s in sites[:k]:
                self.err(f"{path}[{k}]", f"site {_q(s)} is listed twice")
                ok = False
            elif not self.site_ref(f"{path}[{k}]", s):
                ok = False
        return ok


def calendar_errors(spec: Spec) -> list[tuple[str, str]]:
    """Every problem of the calendar parts of ``spec`` as ``(path, message)``:
    unknown time zones, sites and shifts, shifts ending before they start
    without ``overnight``, breaks outside their shift, overlapping shifts of
    a group, bad days/times/ranges, closed-hours rules, follow-the-sun."""
    if not (spec.sites or spec.shifts or any(g.site or g.shift or g.exceptions for g in spec.agents)
            or any(q.hours or q.closed or q.sites is not None or q.site_escalation is not None
                   for q in spec.queues)):
        return []
    return _Compiler(spec).errors


# --- the calendar -----------------------------------------------------------------


class Calendar:
    """The calendar of a checked ``Spec``: see the module docstring.

    ``groups``: the calendar-driven agent groups (a ``shift`` or
    ``exceptions``), in config order; their presence comes from here, not from
    their ``initial``.  Other groups keep ``initial`` and are always there as
    far as the calendar knows.
    """

    def __init__(self, spec: Spec):
        c = _Compiler(spec)
        if c.errors:
            raise ValueError("bad calendar: " + "; ".join(f"{p}: {m}" for p, m in c.errors))
        self.spec = spec
        self._groups = c.groups
        self._group = {g.name: g for g in c.groups}
        self.groups: tuple[str, ...] = tuple(g.name for g in c.groups)
        self.site_of: dict[str, str | None] = dict(c.group_site)
        self.sites: tuple[str, ...] = tuple(c.sites)
        self._site_hours = [(name, h) for name, h in c.site_hours.items() if h is not None]
        self._queues = c.queues
        self._queue = {q.name: q for q in c.queues}
        self._timed = [q for q in c.queues if q.hours is not None]
        self._sun = [q for q in c.queues if q.mode in ("daytime", "windows")]
        self._zones = [z for z in c.zones.values() if z is not None]
        # groups the calendar does not drive: (site, count, on_shift, available)
        self._fixed = []
        for g in spec.agents:
            if g.group not in self._group:
                n = len(g.agent_ids())
                self._fixed.append((g.group, g.site or "-", n if g.initial != "offline" else 0,
                                    n if g.initial == "ready" else 0))

    # -- facts --------------------------------------------------------------

    def closed_rule(self, queue: str) -> ClosedRule | None:
        """The closed-hours rule of a queue with hours (None: always open)."""
        return self._queue[queue].closed

    def site_escalation(self, queue: str) -> float | None:
        return self._queue[queue].site_escalation

    def has_hours(self, queue: str) -> bool:
        return self._queue[queue].hours is not None

    def follows_the_sun(self, queue: str) -> bool:
        return self._queue[queue].mode is not None

    @property
    def expanded_days(self) -> int:
        """How many (subject, local day) expansions ran (for tests and benches)."""
        subs = [*self._groups, *(q.hours for q in self._queues if q.hours), *(h for _, h in self._site_hours),
                *(q.windows for q in self._queues if q.windows)]
        return sum(s.expanded for s in subs)

    @property
    def conversions(self) -> int:
        """How many zoneinfo conversions ran (for tests and benches)."""
        return sum(z.conversions for z in self._zones)

    # -- state at a time ----------------------------------------------------

    def group_state(self, group: str, t: float) -> tuple[bool, str | None]:
        """(on shift, break reason or None) of a calendar-driven group at
        ``t`` (changes at ``t`` included): log its agents in at the start of a
        run if on shift, not ready with the reason if on a break."""
        g = self._group[group]
        s = _gstate(g.instances(t, t), t, False)
        return (s != _OFF, s if isinstance(s, str) else None)

    def queue_open(self, queue: str, t: float) -> bool:
        """Is the queue within its business hours at ``t``?  (Always, without
        hours.)  Cached per constant stretch: increasing times cost a compare."""
        q = self._queue[queue]
        if q.hours is None:
            return True
        lo, hi, value = q.open_cache
        if lo <= t < hi:
            return value
        ivs = q.hours.intervals(t - DAY, t + DAY)
        value = _open(ivs, t, False)
        pts = _ipoints(ivs, t - DAY, t + DAY)
        lo = max((x for x in pts if x <= t), default=t - DAY)
        hi = min((x for x in pts if x > t), default=t + DAY)
        q.open_cache = (lo, hi, value)
        return value

    def preferred_sites(self, queue: str, t: float) -> tuple[str, ...]:
        """The queue's sites in preference order at ``t`` (empty: no
        preference, or not a follow-the-sun queue).  Cached like
        ``queue_open``."""
        q = self._queue[queue]
        if q.mode is None:
            return ()
        if q.mode == "static":
            return q.static
        lo, hi, value = q.sites_cache
        if lo <= t < hi:
            return value
        value = self._sites_value(q, t, False)
        pts = self._sites_points(q, t - DAY, t + DAY)
        lo = max((x for x in pts if x <= t), default=t - DAY)
        hi = min((x for x in pts if x > t), default=t + DAY)
        q.sites_cache = (lo, hi, value)
        return value

    def preferred_site(self, queue: str, t: float) -> str | None:
        """The site whose agents a contact of ``queue`` arriving at ``t``
        targets first (None: no preference)."""
        sites = self.preferred_sites(queue, t)
        return sites[0] if sites else None

    def _daytime(self, t: float, before: bool) -> tuple[str, ...]:
        return tuple(name for name, h in self._site_hours if _open(h.intervals(t, t), t, before))

    def _sites_value(self, q: _QueueCal, t: float, before: bool) -> tuple[str, ...]:
        if q.mode == "daytime":
            return self._daytime(t, before)
        return q.windows.value(t, before)

    def _sites_points(self, q: _QueueCal, t0: float, t1: float) -> list[int]:
        if q.mode == "daytime":
            pts: set[int] = set()
            for _, h in self._site_hours:
                pts |= _ipoints(h.intervals(t0, t1), t0, t1)
            return sorted(pts)
        return q.windows.changes(t0, t1)

    # -- transitions --------------------------------------------------------

    def transitions(self, t0: float, t1: float) -> list[Transition]:
        """Every change in [t0, t1), sorted by (time, kind, config order)."""
        if not t1 > t0:
            return []
        if t1 - t0 > 2 * DAY:  # a day at a time: the work per call grows with its instances squared
            out: list[Transition] = []
            a = t0
            while a < t1:
                b = min(a + DAY, t1)
                out.extend(self._transitions(a, b))
                a = b
            return out
        return self._transitions(t0, t1)

    def _transitions(self, t0: float, t1: float) -> list[Transition]:
        out: list[tuple[float, int, int, Transition]] = []
        for g in self._groups:
            inst = g.instances(t0, t1)
            for p in _points(inst, t0, t1):
                ch = _group_change(_gstate(inst, p, True), _gstate(inst, p, False))
                if ch is not None:
                    out.append((p, ch[0], g.idx, Transition(float(p), ch[0], g.name, ch[1])))
        for q in self._timed:
            ivs = q.hours.intervals(t0, t1)
            for p in sorted(_ipoints(ivs, t0, t1)):
                before, after = _open(ivs, p, True), _open(ivs, p, False)
                if before != after:
                    kind = Kind.QUEUE_OPEN if after else Kind.QUEUE_CLOSE
                    out.append((p, kind, q.idx, Transition(float(p), kind, q.name, None if after else q.closed)))
        if self._sun:
            daytime_pts = None
            for q in self._sun:
                if q.mode == "daytime":
                    if daytime_pts is None:
                        daytime_pts = [(p, self._daytime(p, True), self._daytime(p, False))
                                       for p in self._sites_points(q, t0, t1)]
                    changes = daytime_pts
                else:
                    changes = [(p, q.windows.value(p, True), q.windows.value(p, False))
                               for p in q.windows.changes(t0, t1)]
                for p, before, after in changes:
                    if before != after:
                        out.append((p, Kind.SITES, q.idx, Transition(float(p), Kind.SITES, q.name, after)))
        out.sort(key=lambda x: x[:3])
        return [x[3] for x in out]

    def cursor(self, t0: float, chunk: float = DAY) -> Cursor:
        """Transitions strictly after ``t0``, fetched a ``chunk`` at a time
        (the state at ``t0`` itself is ``group_state``/``queue_open``/
        ``preferred_sites`` at ``t0``)."""
        return Cursor(self, t0, chunk)

    # -- planning -----------------------------------------------------------

    def _sweep(self, t0: float, t1: float) -> Iterator[tuple[float, float, dict, dict, dict]]:
        """Constant stretches [a, b) of [t0, t1) with the group states,
        queue open flags and preferred sites in force (the dicts are live:
        read them before the next step)."""
        gstate = {}
        for g in self._groups:
            on, reason = self.group_state(g.name, t0)
            gstate[g.name] = reason if reason is not None else (_READY if on else _OFF)
        qopen = {q.name: self.queue_open(q.name, t0) for q in self._queues}
        pref = {q.name: self.preferred_sites(q.name, t0) for q in self._queues}
        cur = t0
        for tr in self.transitions(t0, t1):
            if tr.time > cur:
                yield cur, tr.time, gstate, qopen, pref
                cur = tr.time
            k = tr.kind
            if k == Kind.SHIFT_START:
                gstate[tr.subject] = _READY if tr.detail is None else tr.detail
            elif k == Kind.BREAK_START:
                gstate[tr.subject] = tr.detail
            elif k == Kind.BREAK_END:
                gstate[tr.subject] = _READY
            elif k == Kind.SHIFT_END:
                gstate[tr.subject] = _OFF
            elif k == Kind.QUEUE_OPEN:
                qopen[tr.subject] = True
            elif k == Kind.QUEUE_CLOSE:
                qopen[tr.subject] = False
            else:
                pref[tr.subject] = tr.detail
        if t1 > cur:
            yield cur, t1, gstate, qopen, pref

    def _site_names(self) -> list[str]:
        names = list(self.sites)
        if any(site == "-" for _, site, _, _ in self._fixed):
            names.append("-")
        return names

    def expected_staff(self, t0: float, t1: float, step: float,
                       groups: Iterable[str] | None = None) -> list[Staffing]:
        """Per interval of ``step`` seconds from ``t0`` (the last may be
        shorter) and per site, the mean number of agents on shift and
        available, as the calendar implies (only of ``groups``, if given).
        Groups it does not drive count by their ``initial`` presence, all the
        time."""
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        keep = None if groups is None else set(groups)
        sites = self._site_names()
        rows = []
        s = t0
        while s < t1:
            e = min(s + step, t1)
            rows.append(Staffing(s, e, dict.fromkeys(sites, 0.0), dict.fromkeys(sites, 0.0)))
            s = e
        fixed_on: dict[str, float] = {}
        fixed_av: dict[str, float] = {}
        for name, site, on, av in self._fixed:
            if keep is None or name in keep:
                fixed_on[site] = fixed_on.get(site, 0) + on
                fixed_av[site] = fixed_av.get(site, 0) + av
        driven = [g for g in self._groups if keep is None or g.name in keep]
        for a, b, gstate, _, _ in self._sweep(t0, t1):
            on: dict[str, float] = dict(fixed_on)
            av: dict[str, float] = dict(fixed_av)
            for g in driven:
                st = gstate[g.name]
                if st != _OFF:
                    on[g.site] = on.get(g.site, 0) + g.count
                    if st == _READY:
                        av[g.site] = av.get(g.site, 0) + g.count
            for row, w in _spread(rows, t0, step, a, b):
                for site, n in on.items():
                    row.on_shift[site] += n * w
                for site, n in av.items():
                    row.available[site] += n * w
        return rows

    def queue_status(self, t0: float, t1: float, step: float) -> list[QueueStatus]:
        """Per interval: each queue's open share, and its preferred site for
        most of the interval."""
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step!r}")
        names = [q.name for q in self._queues]
        rows, pref_time = [], []
        s = t0
        while s < t1:
            e = min(s + step, t1)
            rows.append(QueueStatus(s, e, dict.fromkeys(names, 0.0), dict.fromkeys(names)))
            pref_time.append({})
            s = e
        for a, b, _, qopen, pref in self._sweep(t0, t1):
            for row, w in _spread(rows, t0, step, a, b):
                k = int((row.start - t0) // step)
                for name in names:
                    if qopen[name]:
                        row.open[name] += w
                    site = pref[name][0] if pref[name] else None
                    acc = pref_time[k].setdefault(name, {})
                    acc[site] = acc.get(site, 0.0) + w
        for row, acc in zip(rows, pref_time):
            for name, by_site in acc.items():
                row.preferred[name] = max(by_site.items(), key=lambda kv: kv[1])[0]
        return rows

    def gaps(self, t0: float, t1: float, eligible: Mapping[str, Iterable[str]]) -> list[Gap]:
        """Stretches of [t0, t1) when a queue is open and no agent of the
        groups ``eligible[queue]`` (who can serve it) is available
        (``"uncovered"``), or none at its preferred site
        (``"preferred_site"``).  Groups the calendar does not drive count as
        available when their ``initial`` is ready."""
        elig = {q: set(gs) for q, gs in eligible.items()}
        always = {g.group for g in self.spec.agents if g.group not in self._group and g.initial == "ready"}
        site_of = self.site_of
        out: list[Gap] = []
        open_gap: dict[tuple[str, str], list] = {}
        for a, b, gstate, qopen, pref in self._sweep(t0, t1):
            for q in self._queues:
                gs = elig.get(q.name, ())
                avail = [g for g in gs if g in always or gstate.get(g) == _READY]
                found = []
                if qopen[q.name]:
                    if not avail:
                        found.append(("uncovered", None))
                    elif pref[q.name]:
                        site = pref[q.name][0]
                        if not any(site_of.get(g) == site for g in avail):
                            found.append(("preferred_site", site))
                for kind in ("uncovered", "preferred_site"):
                    hit = next((f for f in found if f[0] == kind), None)
                    key = (q.name, kind)
                    cur = open_gap.get(key)
                    if hit is not None and cur is not None and cur[2] == a and cur[4] == hit[1]:
                        cur[2] = b
                        continue
                    if cur is not None:
                        out.append(Gap(*cur))
                        del open_gap[key]
                    if hit is not None:
                        open_gap[key] = [q.name, a, b, kind, hit[1]]
        out.extend(Gap(*g) for g in open_gap.values())
        out.sort(key=lambda g: (g.start, g.queue, g.kind))
        return out


def _spread(rows: list, t0: float, step: float, a: float, b: float) -> Iterator[tuple[Any, float]]:
    """(row, weight) for the rows [a, b) overlaps; weight = overlap / row length."""
    k = max(int((a - t0) // step), 0)
    while k < len(rows) and rows[k].start < b:
        row = rows[k]
        ov = min(b, row.end) - max(a, row.start)
        if ov > 0:
            yield row, ov / (row.end - row.start)
        k += 1


class Cursor:
    """Transitions after ``t0`` in order, fetched lazily a chunk at a time.

    ``next_time`` is the time of the next transition (or, after eight empty
    chunks, the time to look again; ``inf`` when the calendar drives
    nothing).  ``pop_due(now)`` returns every transition at or before ``now``.
    A core keeps ``next_time`` among its deadlines: one float compare per
    event."""

    def __init__(self, cal: Calendar, t0: float, chunk: float = DAY):
        self._cal = cal
        self._chunk = chunk
        self._buf: deque[Transition] = deque()
        self._t0 = t0
        self._next = t0
        self._idle = not (cal._groups or cal._timed or cal._sun)
        self.next_time = float("inf")
        self._fill()

    def _fill(self) -> None:
        if self._idle:
            self.next_time = float("inf")
            return
        tries = 0
        while not self._buf and tries < 8:
            lo, hi = self._next, self._next + self._chunk
            self._buf.extend(tr for tr in self._cal.transitions(lo, hi) if tr.time > self._t0)
            self._next = hi
            tries += 1
        self.next_time = self._buf[0].time if self._buf else self._next

    def pop_due(self, now: float) -> list[Transition]:
        out: list[Transition] = []
        while self.next_time <= now:
            buf = self._buf
            while buf and buf[0].time <= now:
                out.append(buf.popleft())
            if buf:
                self.next_time = buf[0].time
                break
            self._fill()
        return out

    def __iter__(self) -> Iterator[Transition]:
        """Every transition, for ever (stop on your own)."""
        while self.next_time != float("inf"):
            yield from self.pop_due(self.next_time)

