"""The routing specification: what a YAML config decodes into.

These msgspec Structs are the typed contract between the config file and the
core.  ``acd.config`` reads files into them and turns errors into messages
with file, line and field; this module holds the shapes, their defaults and the
cross-field checks (``check``), and does no IO.

All structs share ``_Base``: ``forbid_unknown_fields`` (a misspelt key is an
error, not a silently ignored setting), ``frozen`` (a loaded config is a value;
reload builds a new one) and ``kw_only`` (field order never matters).

Units: durations in seconds; ``aging`` in priority points per minute of wait.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from .expr import ExprError, compile_expression

Channel = Literal["voice", "chat", "email"]
Strategy = Literal["longest-idle", "most-skilled", "round-robin", "least-occupied", "random"]
Seconds = Annotated[float, Meta(ge=0)]
PositiveSeconds = Annotated[float, Meta(gt=0)]
Level = Annotated[int, Meta(ge=1, le=10)]
MinLevel = Annotated[int, Meta(ge=0, le=10)]
Name = Annotated[str, Meta(min_length=1)]
#: A local time of day: "HH:MM" or "HH:MM:SS" ("24:00" as an end).  An int is
#: what YAML 1.1 makes of an unquoted 17:30 (17*60+30); ``acd.core.calendar``
#: reads it back as that time, so quoting is optional.
TimeOfDay = str | int
#: Days of the week: "mon-fri", "sat,sun", ["mon", "wed"], "daily", "weekdays", "weekends".
Days = str | list[str]
#: Weekly hours: days -> "HH:MM-HH:MM", a list of such ranges, or "closed".
WeeklyHours = dict[str, str | list[str]]


class _Base(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    pass


class ServiceLevel(_Base):
    """Service-level goal: ``target`` share answered within ``threshold`` s."""

    threshold: PositiveSeconds = 20.0
    target: Annotated[float, Meta(ge=0, le=1)] = 0.8


class EscalationStep(_Base):
    """After ``after`` seconds in the queue, more agents become targets.

    The step's target (``skills`` and/or ``target``) is added to the rings
    before it (Genesys-style bullseye: a step only ever widens the set), and
    ``priority`` is added to the contact's priority.
    """

    after: PositiveSeconds
    skills: dict[str, MinLevel] | None = None
    target: str | None = None
    priority: float = 0.0


class Hours(_Base):
    """A queue's business hours: ``weekly`` ranges in the time zone of
    ``site`` (whose holidays close it too) or of an explicit ``timezone``.
    Without ``weekly``, the site's own ``hours``.  ``holidays``: more dates
    (local) on which it is closed all day."""

    site: Name | None = None
    timezone: Name | None = None
    weekly: WeeklyHours | None = None
    holidays: list[date] = []


class Closed(_Base):
    """What happens to a contact while its queue is closed: overflow to
    another queue (same channel) or, without ``overflow``, the contact is
    closed (ends in acd) with ``reason``."""

    overflow: Name | None = None
    reason: Name = "outside_hours"


class SiteWindow(_Base):
    """From ``start`` (local time of the schedule's zone) on ``days``, the
    queue prefers ``sites`` in this order, until the next window starts."""

    start: TimeOfDay
    sites: Annotated[list[Name], Meta(min_length=1)]
    days: Days = "daily"


class SiteSchedule(_Base):
    """Follow-the-sun by the clock: windows, each valid from its start until
    the next one's (they repeat every week)."""

    windows: Annotated[list[SiteWindow], Meta(min_length=1)]
    timezone: Name = "UTC"


class Queue(_Base):
    """A queue: who may serve it, in what order, and what happens on long waits.

    Calendar fields: ``hours`` and ``closed`` (business hours and the
    closed-hours rule); ``sites`` and ``site_escalation`` (follow-the-sun:
    the preferred site's agents are targeted first, every site's after
    ``site_escalation`` seconds).  ``sites`` is ``"daytime"`` (the sites whose
    business hours are open now, in the order of the top-level ``sites``), a
    fixed list, or a ``SiteSchedule``.
    """

    name: Name
    channel: Channel = "voice"
    skills: dict[str, MinLevel] = {}
    target: str | None = None
    priority: float = 0.0
    aging: Annotated[float, Meta(ge=0)] = 0.0
    strategy: Strategy = "longest-idle"
    service_level: ServiceLevel = ServiceLevel()
    wrap_up: Seconds = 0.0
    ring_timeout: PositiveSeconds = 20.0
    max_wait: PositiveSeconds | None = None
    overflow: str | None = None
    escalation: list[EscalationStep] = []
    hours: Hours | None = None
    closed: Closed | None = None
    sites: str | list[str] | SiteSchedule | None = None
    site_escalation: Seconds | None = None


class Capacity(_Base):
    """How many contacts of each channel an agent handles at once."""

    voice: Annotated[int, Meta(ge=0)] = 1
    chat: Annotated[int, Meta(ge=0)] = 3
    email: Annotated[int, Meta(ge=0)] = 1


class ShiftException(_Base):
    """A date (local to the group's site; or several: ``dates``) that differs
    from the pattern: ``day_off`` drops the shifts that would start that day,
    ``shift`` adds shifts (both together: a swap).  An added shift also works
    on holidays."""

    date: date | None = None
    dates: list[date] | None = None
    day_off: bool = False
    shift: Name | list[Name] | None = None


class AgentGroup(_Base):
    """Agents sharing skills and settings: ``count`` agents named
    ``<group>-1`` .. ``<group>-<count>``, or the explicit ``ids``.

    ``blocking`` maps a channel to the channels it blocks while the agent has
    any contact on it.  The default lets a voice call block chat and email, but
    chats never block voice: a chat backlog cannot lock an agent out of calls.
    """

    group: Name
    count: Annotated[int, Meta(ge=1, le=100_000)] | None = None
    ids: Annotated[list[Name], Meta(min_length=1, max_length=100_000)] | None = None
    skills: dict[str, Level] = {}
    attributes: dict[str, str | bool | int | float] = {}
    capacity: Capacity = Capacity()
    blocking: dict[Channel, list[Channel]] = msgspec.field(default_factory=lambda: {"voice": ["chat", "email"]})
    max_missed_offers: Annotated[int, Meta(ge=1)] = 2
    initial: Literal["ready", "not_ready", "offline"] = "ready"
    auto_answer: bool = False  # the phone answers by itself: an offer connects at once, no ring
    site: Name | None = None
    shift: Name | list[Name] | None = None
    exceptions: list[ShiftException] = []

    def agent_ids(self) -> list[str]:
        if self.ids is not None:
            return list(self.ids)
        return [f"{self.group}-{i}" for i in range(1, (self.count or 0) + 1)]


class Site(_Base):
    """A contact-centre site: its IANA time zone, its holidays (local dates:
    no shift starts, its hours are closed) and its business hours (what
    "daytime" means for follow-the-sun queues)."""

    name: Name
    timezone: Name
    holidays: list[date] = []
    hours: WeeklyHours | None = None


class Break(_Base):
    """A break inside a shift, from ``start`` to ``end`` or for ``minutes``
    (local times; in an overnight shift a time before the shift's start is
    on the next day).  The agents are not ready with ``reason`` meanwhile."""

    start: TimeOfDay
    end: TimeOfDay | None = None
    minutes: Annotated[float, Meta(gt=0)] | None = None
    reason: Name = "break"


class Shift(_Base):
    """A weekly shift pattern: on ``days``, from ``start`` to ``end`` local
    time of the group's site.  A shift crossing midnight needs
    ``overnight: true`` (it belongs to the day it starts).  Without ``days``
    a shift is only worked where a group's ``exceptions`` add it."""

    start: TimeOfDay
    end: TimeOfDay
    days: Days | None = None
    overnight: bool = False
    breaks: list[Break] = []


class Spec(_Base):
    """A whole routing configuration."""

    queues: Annotated[list[Queue], Meta(min_length=1)]
    agents: list[AgentGroup] = []
    interval: PositiveSeconds = 900.0
    sites: list[Site] = []
    shifts: dict[str, Shift] = {}


class SpecError(ValueError):
    """One semantic error: ``path`` like ``queues[2].overflow``."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SpecErrors(ValueError):
    """Several SpecErrors at once (``errors``), one per line in str()."""

    def __init__(self, errors: list[SpecError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def known_names(spec: Spec) -> tuple[set[str], set[str]]:
    """Skill names and attribute names that some agent group defines."""
    skills: set[str] = set()
    attrs: set[str] = set()
    for g in spec.agents:
        skills.update(g.skills)
        attrs.update(g.attributes)
    return skills, attrs


def check(spec: Spec) -> list[SpecError]:
    """Cross-field checks the types cannot express. Returns every error found."""
    errors: list[SpecError] = []
    skills, attrs = known_names(spec)
    names = [q.name for q in spec.queues]
    seen: set[str] = set()
    for i, q in enumerate(spec.queues):
        p = f"queues[{i}]"
        if q.name in seen:
            errors.append(SpecError(f"{p}.name", f"duplicate queue name {_q(q.name)}"))
        seen.add(q.name)
        for skill in q.skills:
            if skill not in skills:
                errors.append(SpecError(f"{p}.skills.{skill}", f"no agent group has skill {_q(skill)}"))
        if q.target is not None:
            _check_expr(errors, f"{p}.target", q.target, skills, attrs)
        if q.overflow is not None:
            if q.overflow not in names:
                errors.append(SpecError(f"{p}.overflow", f"unknown queue {_q(q.overflow)}"))
            elif q.overflow == q.name:
                errors.append(SpecError(f"{p}.overflow", "a queue cannot overflow to itself"))
            else:
                other = spec.queues[names.index(q.overflow)]
                if other.channel != q.channel:
                    errors.append(SpecError(f"{p}.overflow", f"queue {_q(other.name)} takes {other.channel}, "
                                            f"not {q.channel}: a contact keeps its channel"))
            if q.max_wait is None:
                errors.append(SpecError(f"{p}.overflow", "overflow needs max_wait (when to overflow)"))
        last = 0.0
        for j, step in enumerate(q.escalation):
            sp = f"{p}.escalation[{j}]"
            if step.after <= last:
                errors.append(SpecError(f"{sp}.after", f"must be later than the step before ({last:g} s), got {step.after:g}"))
            last = step.after
            if not step.skills and step.target is None and step.priority == 0:
                errors.append(SpecError(sp, "a step needs skills, target or priority"))
            for skill in step.skills or {}:
                if skill not in skills:
                    errors.append(SpecError(f"{sp}.skills.{skill}", f"no agent group has skill {_q(skill)}"))
            if step.target is not None:
                _check_expr(errors, f"{sp}.target", step.target, skills, attrs)
    groups: set[str] = set()
    ids: dict[str, str] = {}
    for i, g in enumerate(spec.agents):
        p = f"agents[{i}]"
        if g.group in groups:
            errors.append(SpecError(f"{p}.group", f"duplicate group name {_q(g.group)}"))
        groups.add(g.group)
        if (g.count is None) == (g.ids is None):
            errors.append(SpecError(p, "give exactly one of count and ids"))
        clash = set(g.skills) & set(g.attributes)
        for name in sorted(clash):
            errors.append(SpecError(f"{p}.attributes.{name}", f"{_q(name)} is also a skill name"))
        mine: set[str] = set()
        for aid in g.agent_ids():
            if aid in mine:
                errors.append(SpecError(f"{p}.ids", f"agent id {_q(aid)} appears twice"))
                break
            if aid in ids:
                errors.append(SpecError(p, f"agent id {_q(aid)} is also in group {_q(ids[aid])}"))
                break
            ids[aid] = g.group
            mine.add(aid)
    # sites, shifts, hours, follow-the-sun: acd.core.calendar knows the rules
    if uses_calendar(spec) or spec.sites or any(q.closed is not None or q.site_escalation is not None
                                                or g.site is not None for q in spec.queues for g in spec.agents):
        from .calendar import calendar_errors

        errors.extend(SpecError(path, message) for path, message in calendar_errors(spec))
    return errors


def _q(value: Any) -> str:
    """Quote a value the way every error message does (JSON style)."""
    return json.dumps(value)


def _check_expr(errors: list[SpecError], path: str, text: str, skills: set[str], attrs: set[str]) -> None:
    try:
        compile_expression(text, skills, attrs)
    except ExprError as exc:
        errors.append(SpecError(path, f"{exc} in {_q(text)}"))


def spec_from_obj(obj: Any) -> Spec:
    """Build a Spec from plain Python data (dicts and lists); raises
    msgspec.ValidationError or SpecError."""
    spec = msgspec.convert(obj, Spec)
    errs = check(spec)
    if errs:
        raise SpecErrors(errs)
    return spec


def uses_calendar(spec: Spec) -> bool:
    """Does this config have anything a calendar drives (shifts, business
    hours, follow-the-sun)?  Without, the engine skips the calendar entirely."""
    return bool(spec.shifts or any(g.shift is not None or g.exceptions for g in spec.agents)
                or any(q.hours is not None or q.sites is not None for q in spec.queues))
