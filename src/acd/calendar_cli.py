"""``acd calendar CONFIG --from DATE --days N``: the staffing a config's
calendar implies, per interval and site, so a planner can check it before
replaying traffic against it.

Per interval: the mean number of agents *available* (on shift and not on a
break) at each site, the total, and for each queue with business hours or
follow-the-sun its state (``closed``, the share open, or the preferred site
for most of the interval).  Then every stretch when an open queue has no
available agent who can serve it (``uncovered``: contacts would wait for
nobody) or none at its preferred site (``preferred site``: they wait
``site_escalation`` seconds first).  ``--json`` prints all of it as one
object; ``--transitions`` lists every calendar transition instead.

Exit codes as the rest of ``acd``: 0 ok, 2 bad config or arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["add_calendar_arguments", "run_calendar"]


def add_calendar_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``acd calendar``."""
    parser.add_argument("config", metavar="CONFIG")
    parser.add_argument("--from", dest="start", metavar="DATE", required=True,
                        help="first day, YYYY-MM-DD (midnight in --tz)")
    parser.add_argument("--days", type=int, default=7, metavar="N", help="number of days (default 7)")
    parser.add_argument("--interval", type=float, default=3600, metavar="S",
                        help="interval length in seconds (default 3600)")
    parser.add_argument("--tz", default="UTC", metavar="ZONE",
                        help="time zone of --from and of the table's times (default UTC)")
    parser.add_argument("--queue", metavar="NAME",
                        help="count only the agents who can serve this queue (default: all agents)")
    parser.add_argument("--json", action="store_true", help="print everything as one JSON object")
    parser.add_argument("--transitions", action="store_true",
                        help="list every calendar transition (log-ins, breaks, log-outs, openings, hand-overs)")


def _fail(message: str) -> int:
    print(f"acd: {message}", file=sys.stderr)
    return 2


def eligible_groups(spec: Any) -> dict[str, list[str]]:
    """Queue -> the agent groups with at least one agent who can ever serve
    it (any escalation step, a slot on its channel)."""
    from .core.events import CHANNELS
    from .core.rules import compile_rules

    out: dict[str, list[str]] = {}
    for rule in compile_rules(spec):
        last = rule.rings[-1]
        ch = CHANNELS.index(rule.channel)
        groups = []
        for g in spec.agents:
            cap = (g.capacity.voice, g.capacity.chat, g.capacity.email)[ch]
            if cap > 0 and last(g.skills, g.attributes):
                groups.append(g.group)
        out[rule.name] = groups
    return out


def run_calendar(args: argparse.Namespace) -> int:
    from .config import ConfigError, load_config
    from .core.calendar import Calendar

    try:
        spec = load_config(args.config)
    except ConfigError as exc:
        print("\n".join(str(e) for e in exc.errors), file=sys.stderr)
        return 2
    try:
        tz = ZoneInfo(args.tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return _fail(f"--tz: unknown time zone {args.tz!r}")
    try:
        first = date.fromisoformat(args.start)
    except ValueError:
        return _fail(f"--from: expected a date YYYY-MM-DD, got {args.start!r}")
    if not 1 <= args.days <= 366:
        return _fail(f"--days: expected 1 to 366, got {args.days}")
    if not 60 <= args.interval <= 86400:
        return _fail(f"--interval: expected 60 to 86400 seconds, got {args.interval:g}")
    t0 = datetime(first.year, first.month, first.day, tzinfo=tz).timestamp()
    last = first + timedelta(days=args.days)
    t1 = datetime(last.year, last.month, last.day, tzinfo=tz).timestamp()
    cal = Calendar(spec)

    def when(t: float) -> str:
        return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")

    if args.transitions:
        trs = cal.transitions(t0, t1)
        if args.json:
            rows = [{"time": tr.time, "local": when(tr.time), "kind": tr.kind.name.lower(), "subject": tr.subject,
                     "detail": tr.detail._asdict() if hasattr(tr.detail, "_asdict") else tr.detail} for tr in trs]
            sys.stdout.write(json.dumps({"timezone": args.tz, "transitions": rows}) + "\n")
            return 0
        for tr in trs:
            detail = "" if tr.detail is None else tr.detail
            if hasattr(detail, "_asdict"):
                detail = f"overflow to {detail.overflow}" if detail.overflow else f"close contacts: {detail.reason}"
            elif isinstance(detail, tuple):
                detail = " > ".join(detail) or "(no site has daytime)"
            print(f"{when(tr.time)}  {tr.kind.name.lower():<12} {tr.subject:<20} {detail}".rstrip())
        return 0

    eligible = eligible_groups(spec)
    if args.queue is not None and args.queue not in eligible:
        return _fail(f"--queue: no queue {args.queue!r} in {args.config} (queues: {', '.join(eligible)})")
    staff = cal.expected_staff(t0, t1, args.interval, None if args.queue is None else eligible[args.queue])
    status = cal.queue_status(t0, t1, args.interval)
    gaps = cal.gaps(t0, t1, eligible)
    sites = list(staff[0].available) if staff else []
    shown = [q.name for q in spec.queues if cal.has_hours(q.name) or cal.follows_the_sun(q.name)]

    if args.json:
        out = {
            "config": args.config, "queue": args.queue, "from": first.isoformat(), "days": args.days, "interval": args.interval,
            "timezone": args.tz, "sites": sites,
            "intervals": [
                {"start": s.start, "start_local": when(s.start), "end": s.end,
                 "available": {k: round(v, 3) for k, v in s.available.items()},
                 "on_shift": {k: round(v, 3) for k, v in s.on_shift.items()},
                 "total_available": round(sum(s.available.values()), 3),
                 "queues": {q: {"open": round(st.open[q], 3), "preferred_site": st.preferred[q]} for q in shown}}
                for s, st in zip(staff, status)
            ],
            "gaps": [{"queue": g.queue, "kind": g.kind, "site": g.site, "start": g.start, "end": g.end,
                      "start_local": when(g.start), "end_local": when(g.end)} for g in gaps],
        }
        sys.stdout.write(json.dumps(out) + "\n")
        return 0

    step = args.interval
    step_txt = f"{step / 3600:g}-hour" if step % 3600 == 0 else f"{step / 60:g}-minute"
    print(f"acd calendar: {args.config}, {first} to {last - timedelta(days=1)} ({args.tz}), {step_txt} intervals")
    who = "agents" if args.queue is None else f"agents who can serve {args.queue}"
    print(f"{who} available (on shift, not on a break; mean over the interval)")
    print()
    head = [f"interval ({args.tz})"] + sites + ["total"] + shown
    rows = [head]
    for s, st in zip(staff, status):
        cells = [when(s.start)] + [f"{s.available[x]:.1f}" for x in sites] + [f"{sum(s.available.values()):.1f}"]
        for q in shown:
            share = st.open[q]
            if cal.has_hours(q) and share == 0:
                cells.append("closed")
            elif cal.follows_the_sun(q):
                cells.append(st.preferred[q] or "any site")
            else:
                cells.append("open" if share >= 1 else f"open {share:.0%}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for n, r in enumerate(rows):
        print("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    hours = {x: sum(s.available[x] * (s.end - s.start) for s in staff) / 3600 for x in sites}
    print("available agent-hours: " + ", ".join(f"{x} {h:,.0f}" for x, h in hours.items()))
    uncovered = [g for g in gaps if g.kind == "uncovered"]
    pref = [g for g in gaps if g.kind == "preferred_site"]
    if not gaps:
        print("coverage: every open queue has an available agent at all times, at its preferred site too")
    if uncovered:
        print(f"\nUNCOVERED: open queue, nobody available who can serve it ({len(uncovered)}):")
        for g in uncovered:
            print(f"  {g.queue:<12} {when(g.start)} - {when(g.end)}  ({(g.end - g.start) / 60:g} min)")
    if pref:
        print(f"\npreferred site without an available agent (contacts wait for the site escalation) ({len(pref)}):")
        for g in pref:
            print(f"  {g.queue:<12} {g.site:<10} {when(g.start)} - {when(g.end)}  ({(g.end - g.start) / 60:g} min)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m acd.calendar_cli``) until ``acd`` wires it."""
    p = argparse.ArgumentParser(prog="acd calendar", description=__doc__.split("\n\n")[0])
    add_calendar_arguments(p)
    return run_calendar(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
