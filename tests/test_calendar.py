"""Tests for acd.core.calendar: the config checks (with file, line, path and
reason), local-time parsing, transitions across DST changes and year ends,
holidays and exceptions, business hours, follow-the-sun, lazy expansion,
planning views, the shipped example and ``acd calendar``."""

from __future__ import annotations

import json
import random
import textwrap
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from acd.calendar_cli import main as calendar_main
from acd.cli import main as acd_main
from acd.config import ConfigError, load_config, load_config_text
from acd.core.calendar import (
    DAY, Calendar, CalendarError, ClosedRule, Kind, calendar_errors, parse_days, parse_ranges, parse_time,
)
from acd.core.spec import spec_from_obj
from acd.scenario import generate, load_traffic

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "follow-the-sun.yaml"
TRAFFIC = ROOT / "scenarios" / "follow-the-sun-traffic.yaml"

SK, SR, BS, BE = Kind.SHIFT_START, Kind.SHIFT_END, Kind.BREAK_START, Kind.BREAK_END


def utc(text: str) -> float:
    """'2026-03-29 01:00' (UTC) -> epoch seconds."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def hm(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def one_group(tz: str, shifts: dict, holidays=(), exceptions=(), shift=None, **extra) -> Calendar:
    """A calendar of one site ``x`` in ``tz`` and one group ``g`` working ``shifts``."""
    obj = {
        "queues": [{"name": "q", "skills": {"s": 1}}],
        "sites": [{"name": "x", "timezone": tz, "holidays": list(holidays)}],
        "shifts": shifts,
        "agents": [{"group": "g", "count": 2, "skills": {"s": 1}, "site": "x",
                    "shift": list(shifts) if shift is None else shift, "exceptions": list(exceptions)}],
        **extra,
    }
    return Calendar(spec_from_obj(obj))


def plain(cal: Calendar, t0: str, t1: str) -> list[tuple[str, str, str, object]]:
    return [(hm(tr.time), tr.kind.name, tr.subject, tr.detail) for tr in cal.transitions(utc(t0), utc(t1))]


def errors_of(text: str) -> list[ConfigError]:
    with pytest.raises(ConfigError) as info:
        load_config_text(textwrap.dedent(text), "cal.yaml")
    return info.value.errors


def only_error(text: str) -> ConfigError:
    errs = errors_of(text)
    assert len(errs) == 1, [str(e) for e in errs]
    return errs[0]


HEAD = """\
queues:
  - name: q
sites:
  - {name: krakow, timezone: Europe/Warsaw, hours: {daily: "08:00-16:00"}}
"""


# --- parsing ----------------------------------------------------------------------


def test_parse_time_strings_and_yaml_sexagesimal_ints():
    assert parse_time("08:30") == 8 * 3600 + 1800
    assert parse_time("8:05:07") == 8 * 3600 + 5 * 60 + 7
    assert parse_time("24:00", end=True) == DAY
    assert parse_time(1050) == 17 * 3600 + 1800  # YAML 1.1 reads unquoted 17:30 as 1050
    assert parse_time(63015) == 17 * 3600 + 30 * 60 + 15  # ... and 17:30:15 as 63015
    for bad in ("24:00", "25:00", "08:60", "8h", "", 45, 2000, True, 8.5):
        with pytest.raises(CalendarError):
            parse_time(bad)


def test_unquoted_times_in_yaml_mean_what_they_say():
    spec = load_config_text(HEAD + textwrap.dedent("""\
        shifts:
          day: {days: mon-fri, start: 08:00, end: 17:30, breaks: [{start: 12:00, end: 12:30}]}
        agents:
          - {group: g, count: 1, skills: {s: 1}, site: krakow, shift: day}
        """))
    trs = Calendar(spec).transitions(utc("2026-01-05 00:00"), utc("2026-01-06 00:00"))
    assert [(hm(t.time), t.kind) for t in trs] == [
        ("2026-01-05 07:00", SK), ("2026-01-05 11:00", BS), ("2026-01-05 11:30", BE), ("2026-01-05 16:30", SR)]


def test_parse_days():
    assert parse_days("mon-fri") == frozenset(range(5))
    assert parse_days("fri-mon") == frozenset({4, 5, 6, 0})
    assert parse_days(["Monday", "wed,sun"]) == frozenset({0, 2, 6})
    assert parse_days("daily") == frozenset(range(7))
    assert parse_days("weekends") == frozenset({5, 6})
    for bad in ("mon-xyz", "funday", [], ""):
        with pytest.raises(CalendarError):
            parse_days(bad)


def test_parse_ranges_merges_and_refuses_overlap_and_midnight():
    assert parse_ranges(["13:00-17:00", "08:00-13:00"]) == [(8 * 3600, 17 * 3600)]
    assert parse_ranges("closed") == []
    assert parse_ranges("00:00-24:00") == [(0, DAY)]
    with pytest.raises(CalendarError, match="overlap"):
        parse_ranges(["08:00-12:00", "11:00-13:00"])
    with pytest.raises(CalendarError, match="cannot cross midnight"):
        parse_ranges("22:00-06:00")
    with pytest.raises(CalendarError):
        parse_ranges("08:00")


# --- checks: acd check reports file, line, path and reason ------------------------


def test_shift_ending_before_it_starts_needs_overnight():
    err = only_error(HEAD + """\
shifts:
  night:
    days: daily
    start: "22:00"
    end: "06:00"
""")
    assert (err.line, err.path) == (9, "shifts.night.end")
    assert "before it starts" in err.message and "overnight: true" in err.message


def test_overnight_shift_must_end_the_next_day():
    err = only_error(HEAD + 'shifts:\n  x: {days: daily, start: "08:00", end: "17:00", overnight: true}\n')
    assert err.path == "shifts.x.overnight" and "must be before its start" in err.message


def test_unknown_time_zone_with_a_suggestion():
    err = only_error('queues: [{name: q}]\nsites:\n  - name: k\n    timezone: Europe/Krakow\n')
    assert (err.file, err.line, err.path) == ("cal.yaml", 4, "sites[0].timezone")
    assert err.message.startswith('unknown time zone "Europe/Krakow"')
    err = only_error('queues: [{name: q}]\nsites: [{name: k, timezone: europe/warsaw}]\n')
    assert 'did you mean "Europe/Warsaw"' in err.message


def test_overlapping_shifts_of_one_group():
    err = only_error(HEAD + textwrap.dedent("""\
        shifts:
          early: {days: mon-fri, start: "06:00", end: "14:00"}
          late: {days: mon-fri, start: "13:00", end: "21:00"}
        agents:
          - group: g
            count: 1
            skills: {s: 1}
            site: krakow
            shift: [early, late]
        """))
    assert (err.line, err.path) == (13, "agents[0].shift")
    assert err.message == 'shifts "early" (Mon 06:00-14:00) and "late" (Mon 13:00-21:00) overlap'


def test_overnight_sunday_shift_overlaps_monday_morning_across_the_week_end():
    err = only_error(HEAD + textwrap.dedent("""\
        shifts:
          night: {days: sun, start: "22:00", end: "07:00", overnight: true}
          early: {days: mon, start: "06:00", end: "14:00"}
        agents: [{group: g, count: 1, skills: {s: 1}, site: krakow, shift: [night, early]}]
        """))
    assert err.path == "agents[0].shift" and "overlap" in err.message


def test_touching_shifts_are_fine_and_make_no_logout():
    cal = one_group("Europe/Warsaw", {
        "day": {"days": "mon", "start": "08:00", "end": "14:00"},
        "late": {"days": "mon", "start": "14:00", "end": "20:00"},
    })
    assert [(t, k) for t, k, _, _ in plain(cal, "2026-01-05 00:00", "2026-01-06 00:00")] == [
        ("2026-01-05 07:00", "SHIFT_START"), ("2026-01-05 19:00", "SHIFT_END")]


def test_break_outside_its_shift():
    err = only_error(HEAD + textwrap.dedent("""\
        shifts:
          day:
            days: mon-fri
            start: "08:00"
            end: "12:30"
            breaks:
              - {start: "10:00", minutes: 15}
              - {start: "12:00", end: "13:00", reason: lunch}
        """))
    assert (err.line, err.path) == (12, "shifts.day.breaks[1]")
    assert err.message.startswith("the break 12:00-13:00 is outside its shift (08:00-12:30)")


@pytest.mark.parametrize("brk, why", [
    ({"start": "08:00", "minutes": 15}, "outside"),          # at the very start: not inside
    ({"start": "16:50", "minutes": 10}, "outside"),          # ends with the shift: not inside
    ({"start": "07:00", "end": "07:30"}, "outside"),         # before the shift
    ({"start": "10:00"}, "exactly one of end and minutes"),
    ({"start": "10:00", "end": "10:15", "minutes": 15}, "exactly one of end and minutes"),
])
def test_bad_breaks(brk, why):
    errs = calendar_errors(spec_obj_unchecked({"day": {"days": "mon", "start": "08:00", "end": "17:00",
                                                       "breaks": [brk]}}))
    assert len(errs) == 1 and why in errs[0][1] and errs[0][0] == "shifts.day.breaks[0]"


def spec_obj_unchecked(shifts: dict, **group):
    import msgspec

    from acd.core.spec import Spec

    return msgspec.convert({
        "queues": [{"name": "q", "skills": {"s": 1}}],
        "sites": [{"name": "x", "timezone": "Europe/Warsaw"}],
        "shifts": shifts,
        "agents": [{"group": "g", "count": 1, "skills": {"s": 1}, "site": "x", "shift": list(shifts), **group}],
    }, Spec)


def test_overlapping_breaks_and_breaks_after_midnight_in_an_overnight_shift():
    errs = calendar_errors(spec_obj_unchecked({"n": {
        "days": "daily", "start": "22:00", "end": "06:00", "overnight": True,
        "breaks": [{"start": "02:00", "end": "02:30"}, {"start": "02:15", "minutes": 10}]}}))
    assert errs == [("shifts.n.breaks[1]", "the break at 02:15 overlaps the one at 02:00")]
    cal = one_group("UTC", {"n": {"days": "mon", "start": "22:00", "end": "06:00", "overnight": True,
                                  "breaks": [{"start": "23:45", "end": "00:15", "reason": "lunch"},
                                             {"start": "03:00", "minutes": 15}]}})
    assert plain(cal, "2026-01-05 00:00", "2026-01-07 00:00") == [
        ("2026-01-05 22:00", "SHIFT_START", "g", None), ("2026-01-05 23:45", "BREAK_START", "g", "lunch"),
        ("2026-01-06 00:15", "BREAK_END", "g", None), ("2026-01-06 03:00", "BREAK_START", "g", "break"),
        ("2026-01-06 03:15", "BREAK_END", "g", None), ("2026-01-06 06:00", "SHIFT_END", "g", None)]


def test_unknown_names_are_reported_with_suggestions():
    errs = errors_of(HEAD + textwrap.dedent("""\
        shifts:
          early: {days: mon-fri, start: "06:00", end: "14:00"}
        agents:
          - {group: g, count: 1, skills: {s: 1}, site: krakw, shift: erly}
          - {group: h, count: 1, skills: {s: 1}, shift: early}
        """))
    got = {(e.path, e.message) for e in errs}
    assert ("agents[0].site", 'unknown site "krakw" (did you mean "krakow"?)') in got
    assert ("agents[0].shift", 'unknown shift "erly" (did you mean "early"?)') in got
    assert ("agents[1].site", "a group with shifts needs a site (its time zone and holidays)") in got
    assert all(e.line is not None for e in errs)


def test_bad_dates():
    err = only_error(HEAD.replace('hours: {daily: "08:00-16:00"}}', 'holidays: ["2026-02-30"]}'))
    assert err.path == "sites[0].holidays[0]" and "2026-02-30" in err.message
    errs = errors_of(HEAD + textwrap.dedent("""\
        shifts:
          day: {days: mon-fri, start: "08:00", end: "16:00"}
        agents:
          - group: g
            count: 1
            skills: {s: 1}
            site: krakow
            shift: day
            exceptions:
              - {date: 2026-12-24, day_off: true}
              - {date: 2026-12-24, shift: day}
              - {date: 2026-12-28}
              - {dates: [], day_off: true}
              - {day_off: true}
        """))
    got = [(e.path, e.message) for e in errs]
    assert got == [
        ("agents[0].exceptions[1].date", "2026-12-24 has two exceptions: merge them"),
        ("agents[0].exceptions[2]", "give day_off: true, shift (an extra shift that day), or both (a swap)"),
        ("agents[0].exceptions[3].dates", "needs at least one date"),
        ("agents[0].exceptions[4]", "give exactly one of date and dates"),
    ]


def test_an_extra_shift_overlapping_the_regular_one_is_an_error():
    err = only_error(HEAD + textwrap.dedent("""\
        shifts:
          day: {days: mon-fri, start: "08:00", end: "16:00"}
          evening: {start: "15:00", end: "20:00"}
        agents:
          - {group: g, count: 1, skills: {s: 1}, site: krakow, shift: day,
             exceptions: [{date: 2026-01-07, shift: evening}]}
        """))
    assert err.path == "agents[0].exceptions[0]"
    assert 'shift "day" (2026-01-07 08:00-16:00) overlaps shift "evening" (2026-01-07 15:00-20:00)' == err.message


def test_a_shift_without_days_serves_only_exceptions():
    err = only_error(HEAD + textwrap.dedent("""\
        shifts:
          extra: {start: "08:00", end: "16:00"}
        agents: [{group: g, count: 1, skills: {s: 1}, site: krakow, shift: extra}]
        """))
    assert err.path == "agents[0].shift" and "can only be added by exceptions" in err.message


def test_queue_hours_and_closed_rule_checks():
    errs = errors_of(textwrap.dedent("""\
        queues:
          - {name: a, skills: {s: 1}, hours: {weekly: {mon-fri: "08:00-18:00"}}}
          - {name: b, skills: {s: 1}, hours: {site: krakow}}
          - {name: c, skills: {s: 1}, closed: {reason: x}}
          - {name: d, skills: {s: 1}, hours: {timezone: UTC, weekly: {mon: "08:00-12:00", mon-fri: "09:00-17:00"}},
             closed: {overflow: d}}
          - {name: e, channel: chat, skills: {s: 1}, hours: {timezone: Mars/Base}, closed: {overflow: a}}
          - {name: f, skills: {s: 1}, hours: {timezone: UTC, weekly: {daily: "22:00-06:00"}}, closed: {overflow: g}}
          - {name: g, skills: {s: 1}, hours: {timezone: UTC, weekly: {daily: "08:00-16:00"}}, closed: {overflow: f}}
        sites:
          - {name: krakow, timezone: Europe/Warsaw}
        agents: [{group: x, count: 1, skills: {s: 1}}]
        """))
    got = [(e.line, e.path, e.message) for e in errs]
    assert (2, "queues[0].hours", "give exactly one of site (its time zone and holidays) and timezone") in got
    assert (3, "queues[1].hours.weekly", 'site "krakow" has no hours: give weekly hours here') in got
    assert (4, "queues[2].closed", "the closed-hours rule needs hours (when the queue is open)") in got
    assert (5, "queues[3].hours.weekly.mon-fri", 'Mon is already given by "mon"') in got
    assert (6, "queues[3].closed.overflow", "a queue cannot overflow to itself") in got
    assert any(p == "queues[4].hours.timezone" and m.startswith('unknown time zone "Mars/Base"') for _, p, m in got)
    assert (7, "queues[4].closed.overflow", 'queue "a" takes voice, not chat: a contact keeps its channel') in got
    assert any(p == "queues[5].hours.weekly.daily" and "cannot cross midnight" in m for _, p, m in got)
    assert (9, "queues[6].closed.overflow", "closed-hours overflow goes round in a loop: g -> f -> g") in got


def test_follow_the_sun_checks():
    errs = errors_of(textwrap.dedent("""\
        queues:
          - {name: a, skills: {s: 1}, sites: nighttime, site_escalation: 60}
          - {name: b, skills: {s: 1}, sites: [krakow, manila, krakow], site_escalation: 60}
          - {name: c, skills: {s: 1}, sites: daytime}
          - {name: d, skills: {s: 1}, site_escalation: 30}
          - name: e
            skills: {s: 1}
            site_escalation: 60
            sites:
              timezone: UTC
              windows:
                - {start: "00:00", sites: [krakow]}
                - {start: "00:00", days: mon, sites: [krakow]}
        sites:
          - {name: krakow, timezone: Europe/Warsaw}
        agents: [{group: x, count: 1, skills: {s: 1}, site: krakow}]
        """))
    got = [(e.path, e.message) for e in errs]
    assert ("queues[0].sites", 'expected "daytime", a list of sites or {timezone, windows}, got "nighttime"') in got
    assert ("queues[1].sites[1]", 'unknown site "manila" (known: "krakow")') in got
    assert ("queues[1].sites[2]", 'site "krakow" is listed twice') in got
    assert any(p == "queues[2].sites" and m.startswith("follow-the-sun needs site_escalation") for p, m in got)
    assert ("queues[2].sites", '"daytime" means the sites whose business hours are open: no site has hours') in got
    assert ("queues[3].site_escalation", "applies only with sites (follow-the-sun)") in got
    assert ("queues[4].sites.windows[1]", "windows[0] also starts on Mon at 00:00") in got


def test_the_example_passes_acd_check(capsys):
    assert acd_main(["check", str(EXAMPLE)]) == 0
    assert ": ok (" in capsys.readouterr().out


def test_calendar_refuses_an_unchecked_bad_spec():
    with pytest.raises(ValueError, match="bad calendar"):
        Calendar(spec_obj_unchecked({"n": {"days": "daily", "start": "22:00", "end": "06:00"}}))


def test_a_config_without_calendar_has_no_transitions_and_is_always_open():
    cal = Calendar(spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "g", "count": 2}]}))
    assert cal.transitions(0, 10 * DAY) == []
    assert cal.queue_open("q", 123.0) and cal.preferred_sites("q", 123.0) == ()
    cur = cal.cursor(0.0)
    assert cur.next_time == float("inf") and cur.pop_due(1e12) == []
    (row,) = cal.expected_staff(0, 3600, 3600)
    assert row.available == {"-": 2} and row.on_shift == {"-": 2}


# --- DST, 23- and 25-hour days, year ends ---------------------------------------


def test_warsaw_spring_forward_gap_starts_at_the_first_valid_instant():
    # 2026-03-29: 02:00 CET -> 03:00 CEST (01:00 UTC); 02:00-03:00 does not exist
    cal = one_group("Europe/Warsaw", {
        "gap": {"days": "sun", "start": "02:30", "end": "09:00",
                "breaks": [{"start": "02:40", "end": "02:50"}, {"start": "04:00", "minutes": 15}]},
    })
    assert plain(cal, "2026-03-28 00:00", "2026-03-30 00:00") == [
        ("2026-03-29 01:00", "SHIFT_START", "g", None),   # 03:00 CEST: the first instant after the gap
        ("2026-03-29 02:00", "BREAK_START", "g", "break"),  # the break inside the gap vanished
        ("2026-03-29 02:15", "BREAK_END", "g", None),
        ("2026-03-29 07:00", "SHIFT_END", "g", None)]


def test_warsaw_spring_forward_130_and_a_7_hour_night():
    cal = one_group("Europe/Warsaw", {
        "early": {"days": "sun", "start": "01:30", "end": "09:30"},
        "night": {"days": "sat", "start": "22:00", "end": "01:00", "overnight": True},
    })
    got = plain(cal, "2026-03-28 00:00", "2026-03-30 00:00")
    assert got == [("2026-03-28 21:00", "SHIFT_START", "g", None), ("2026-03-29 00:00", "SHIFT_END", "g", None),
                   ("2026-03-29 00:30", "SHIFT_START", "g", None), ("2026-03-29 07:30", "SHIFT_END", "g", None)]
    night = one_group("Europe/Warsaw", {"n": {"days": "sat", "start": "22:00", "end": "06:00", "overnight": True}})
    (a, b) = night.transitions(utc("2026-03-28 00:00"), utc("2026-03-30 00:00"))
    assert b.time - a.time == 7 * 3600


def test_warsaw_fall_back_ambiguous_time_is_the_first_occurrence_and_the_night_lasts_9_hours():
    # 2026-10-25: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:00-03:00 happens twice
    cal = one_group("Europe/Warsaw", {"x": {"days": "sun", "start": "02:30", "end": "04:00"}})
    assert plain(cal, "2026-10-24 00:00", "2026-10-26 00:00") == [
        ("2026-10-25 00:30", "SHIFT_START", "g", None),   # 02:30 CEST, not 02:30 CET
        ("2026-10-25 03:00", "SHIFT_END", "g", None)]
    night = one_group("Europe/Warsaw", {"n": {"days": "sat", "start": "22:00", "end": "06:00", "overnight": True}})
    (a, b) = night.transitions(utc("2026-10-24 00:00"), utc("2026-10-26 00:00"))
    assert (hm(a.time), hm(b.time)) == ("2026-10-24 20:00", "2026-10-25 05:00")


def test_chicago_spring_forward():
    # 2026-03-08: 02:00 CST -> 03:00 CDT (08:00 UTC)
    cal = one_group("America/Chicago", {"a": {"days": "sun", "start": "01:30", "end": "02:00"},
                                        "b": {"days": "sun", "start": "02:30", "end": "06:00"}})
    # 01:30 CST exists; "a" ends at 02:00, which does not: 03:00 CDT, the instant "b" (02:30, in
    # the gap too) starts -- so the two shifts touch and the agents stay logged in
    assert plain(cal, "2026-03-07 00:00", "2026-03-09 00:00") == [
        ("2026-03-08 07:30", "SHIFT_START", "g", None), ("2026-03-08 11:00", "SHIFT_END", "g", None)]
    assert one_group("America/Chicago", {"b": {"days": "sun", "start": "02:30", "end": "06:00"}}) \
        .transitions(utc("2026-03-08 00:00"), utc("2026-03-09 00:00"))[0].time == utc("2026-03-08 08:00")


def test_chicago_fall_back_130_is_the_first_occurrence():
    # 2026-11-01: 02:00 CDT -> 01:00 CST (07:00 UTC); 01:30 happens at 06:30 and 07:30 UTC
    cal = one_group("America/Chicago", {
        "late": {"days": "sat", "start": "22:00", "end": "01:00", "overnight": True},
        "x": {"days": "sun", "start": "01:30", "end": "03:00"},
    })
    assert plain(cal, "2026-10-31 00:00", "2026-11-02 00:00") == [
        ("2026-11-01 03:00", "SHIFT_START", "g", None), ("2026-11-01 06:00", "SHIFT_END", "g", None),
        ("2026-11-01 06:30", "SHIFT_START", "g", None), ("2026-11-01 09:00", "SHIFT_END", "g", None)]
    assert one_group("America/Chicago", {"x": {"days": "sun", "start": "01:30", "end": "03:00"}}) \
        .group_state("g", utc("2026-11-01 06:45")) == (True, None)


@pytest.mark.parametrize("tz, day, hours", [
    ("Europe/Warsaw", "2026-03-29", 23), ("Europe/Warsaw", "2026-10-25", 25),
    ("America/Chicago", "2026-03-08", 23), ("America/Chicago", "2026-11-01", 25),
    ("Asia/Manila", "2026-03-29", 24),
])
def test_a_whole_local_day_shift_lasts_23_24_or_25_hours(tz, day, hours):
    cal = one_group(tz, {"all": {"days": "sun", "start": "00:00", "end": "24:00"}})
    d = date.fromisoformat(day)
    (a, b) = cal.transitions(utc(f"{d - timedelta(days=1)} 00:00"), utc(f"{d + timedelta(days=1)} 12:00"))
    assert (a.kind, b.kind) == (SK, SR) and b.time - a.time == hours * 3600
    staff = cal.expected_staff(a.time, b.time, 3600)
    assert len(staff) == hours and all(s.available == {"x": 2.0} for s in staff)


def test_daily_round_the_clock_shifts_touch_across_dst_and_never_log_out():
    cal = one_group("Europe/Warsaw", {"all": {"days": "daily", "start": "00:00", "end": "24:00"}})
    assert cal.transitions(utc("2026-03-27 12:00"), utc("2026-10-30 00:00")) == []
    assert cal.group_state("g", utc("2026-03-29 01:30")) == (True, None)


def test_overnight_shift_across_the_year_end_in_manila():
    cal = one_group("Asia/Manila", {"n": {"days": "thu", "start": "22:00", "end": "06:00", "overnight": True,
                                          "breaks": [{"start": "01:00", "minutes": 30, "reason": "lunch"}]}},
                    holidays=["2027-01-01"])
    assert plain(cal, "2026-12-31 00:00", "2027-01-02 00:00") == [
        ("2026-12-31 14:00", "SHIFT_START", "g", None),   # Thu 2026-12-31 22:00 PHT
        ("2026-12-31 17:00", "BREAK_START", "g", "lunch"),
        ("2026-12-31 17:30", "BREAK_END", "g", None),
        ("2026-12-31 22:00", "SHIFT_END", "g", None)]    # Fri 2027-01-01 06:00 PHT: a holiday, worked anyway


def test_weekly_pattern_across_the_year_end():
    cal = one_group("Europe/Warsaw", {"d": {"days": "mon-fri", "start": "09:00", "end": "17:00"}},
                    holidays=["2026-12-25", "2027-01-01"])
    starts = [hm(t.time)[:10] for t in cal.transitions(utc("2026-12-21 00:00"), utc("2027-01-09 00:00"))
              if t.kind == SK]
    assert starts == ["2026-12-21", "2026-12-22", "2026-12-23", "2026-12-24", "2026-12-28", "2026-12-29",
                      "2026-12-30", "2026-12-31", "2027-01-04", "2027-01-05", "2027-01-06", "2027-01-07",
                      "2027-01-08"]


# --- holidays, exceptions, same-time order -------------------------------------


def test_holidays_day_off_extra_shift_and_swap():
    shifts = {"day": {"days": "mon-fri", "start": "08:00", "end": "16:00"},
              "late": {"start": "12:00", "end": "20:00"}}
    cal = one_group("UTC", shifts, shift="day", holidays=["2026-01-06", "2026-01-08"], exceptions=[
        {"date": "2026-01-07", "day_off": True},
        {"date": "2026-01-08", "shift": "late"},                  # works a holiday
        {"date": "2026-01-09", "day_off": True, "shift": "late"},  # a swap
        {"dates": ["2026-01-10", "2026-01-11"], "shift": "day"},  # weekend cover
    ])
    got = [(t, k) for t, k, _, _ in plain(cal, "2026-01-05 00:00", "2026-01-12 00:00") if k == "SHIFT_START"]
    assert got == [("2026-01-05 08:00", "SHIFT_START"), ("2026-01-08 12:00", "SHIFT_START"),
                   ("2026-01-09 12:00", "SHIFT_START"), ("2026-01-10 08:00", "SHIFT_START"),
                   ("2026-01-11 08:00", "SHIFT_START")]


def test_adjacent_breaks_change_the_reason_only():
    cal = one_group("UTC", {"d": {"days": "mon", "start": "08:00", "end": "16:00", "breaks": [
        {"start": "12:00", "minutes": 15}, {"start": "12:15", "end": "12:45", "reason": "lunch"}]}})
    assert plain(cal, "2026-01-05 11:00", "2026-01-05 13:00") == [
        ("2026-01-05 12:00", "BREAK_START", "g", "break"), ("2026-01-05 12:15", "BREAK_START", "g", "lunch"),
        ("2026-01-05 12:45", "BREAK_END", "g", None)]
    assert cal.group_state("g", utc("2026-01-05 12:20")) == (True, "lunch")
    assert cal.group_state("g", utc("2026-01-05 07:59")) == (False, None)


def test_same_time_order_logins_first_then_breaks_then_logouts_then_queues_then_sites():
    spec = spec_from_obj({
        "queues": [{"name": "q", "skills": {"s": 1}, "sites": "daytime", "site_escalation": 30,
                    "hours": {"site": "b"}}],
        "sites": [{"name": "a", "timezone": "UTC", "hours": {"daily": "00:00-12:00"}},
                  {"name": "b", "timezone": "UTC", "hours": {"daily": "12:00-20:00"}}],
        "shifts": {"am": {"days": "daily", "start": "04:00", "end": "12:00"},
                   "pm": {"days": "daily", "start": "12:00", "end": "20:00"},
                   "mid": {"days": "daily", "start": "08:00", "end": "16:00",
                           "breaks": [{"start": "11:00", "end": "12:00"},
                                      {"start": "12:00", "minutes": 30, "reason": "lunch"}]}},
        "agents": [{"group": "a1", "count": 1, "skills": {"s": 1}, "site": "a", "shift": "am"},
                   {"group": "b1", "count": 1, "skills": {"s": 1}, "site": "b", "shift": "pm"},
                   {"group": "m", "count": 1, "skills": {"s": 1}, "site": "b", "shift": "mid"}],
    })
    got = [(k, s, d) for t, k, s, d in plain(Calendar(spec), "2026-01-05 12:00", "2026-01-05 12:01")]
    assert got == [("SHIFT_START", "b1", None), ("BREAK_START", "m", "lunch"), ("SHIFT_END", "a1", None),
                   ("QUEUE_OPEN", "q", None), ("SITES", "q", ("b",))]


# --- queues: hours, closed rule, follow-the-sun ---------------------------------


def sun_spec(**queue):
    return spec_from_obj({
        "queues": [{"name": "support", "skills": {"s": 1}, **queue}, {"name": "other", "skills": {"s": 1}}],
        "sites": [
            {"name": "manila", "timezone": "Asia/Manila", "hours": {"daily": "07:00-15:00"}},
            {"name": "krakow", "timezone": "Europe/Warsaw", "hours": {"daily": "08:00-16:00"},
             "holidays": ["2026-01-06"]},
            {"name": "austin", "timezone": "America/Chicago", "hours": {"mon-fri": "08:00-17:00"}},
        ],
        "agents": [{"group": "m", "count": 3, "skills": {"s": 1}, "site": "manila"},
                   {"group": "k", "count": 3, "skills": {"s": 1}, "site": "krakow"},
                   {"group": "a", "count": 3, "skills": {"s": 1}, "site": "austin"}],
    })


def test_daytime_is_the_open_sites_in_list_order():
    cal = Calendar(sun_spec(sites="daytime", site_escalation=60))
    p = cal.preferred_sites
    assert p("support", utc("2026-01-05 03:00")) == ("manila",)
    assert p("support", utc("2026-01-05 10:00")) == ("krakow",)
    assert p("support", utc("2026-01-05 14:30")) == ("krakow", "austin")   # both open: list order
    assert cal.preferred_site("support", utc("2026-01-05 14:30")) == "krakow"
    assert p("support", utc("2026-01-05 18:00")) == ("austin",)
    assert p("support", utc("2026-01-05 22:30")) == ("austin",)
    assert p("support", utc("2026-01-05 23:30")) == ("manila",)
    assert p("support", utc("2026-01-06 10:00")) == ()                      # Kraków's holiday: nobody's daytime
    assert cal.preferred_site("support", utc("2026-01-06 10:00")) is None
    assert p("support", utc("2026-01-10 18:00")) == ()                      # Austin: weekdays only
    assert p("other", utc("2026-01-05 10:00")) == ()
    sites = [(t, d) for t, k, s, d in plain(cal, "2026-01-05 00:00", "2026-01-06 00:00")]
    assert sites == [("2026-01-05 07:00", ("krakow",)), ("2026-01-05 14:00", ("krakow", "austin")),
                     ("2026-01-05 15:00", ("austin",)), ("2026-01-05 23:00", ("manila",))]


def test_static_and_windowed_site_preferences():
    cal = Calendar(sun_spec(sites=["austin", "krakow"], site_escalation=30))
    assert cal.preferred_sites("support", 0.0) == ("austin", "krakow")
    assert cal.site_escalation("support") == 30
    assert cal.transitions(utc("2026-01-05 00:00"), utc("2026-01-12 00:00")) == []
    cal = Calendar(sun_spec(site_escalation=60, sites={"timezone": "UTC", "windows": [
        {"start": "23:00", "sites": ["manila", "krakow"]},
        {"start": "07:00", "sites": ["krakow", "austin"]},
        {"start": "15:00", "days": "mon-fri", "sites": ["austin", "manila"]},
    ]}))
    p = cal.preferred_sites
    assert p("support", utc("2026-01-05 06:59")) == ("manila", "krakow")    # from Sunday 23:00
    assert p("support", utc("2026-01-05 07:00")) == ("krakow", "austin")
    assert p("support", utc("2026-01-09 16:00")) == ("austin", "manila")
    assert p("support", utc("2026-01-10 16:00")) == ("krakow", "austin")    # no Saturday 15:00 window
    sat = [(t, d) for t, k, s, d in plain(cal, "2026-01-10 00:00", "2026-01-11 00:00")]
    assert sat == [("2026-01-10 07:00", ("krakow", "austin")), ("2026-01-10 23:00", ("manila", "krakow"))]


def test_a_weekly_window_found_days_back_and_the_cache_holds():
    cal = Calendar(sun_spec(site_escalation=60, sites={"timezone": "Europe/Warsaw", "windows": [
        {"start": "09:00", "days": "mon", "sites": ["krakow"]},
        {"start": "09:00", "days": "thu", "sites": ["austin"]},
    ]}))
    assert cal.preferred_sites("support", utc("2026-01-07 12:00")) == ("krakow",)
    assert cal.preferred_sites("support", utc("2026-01-11 12:00")) == ("austin",)   # since Thursday


def test_queue_hours_closed_rule_and_holidays():
    cal = Calendar(sun_spec(hours={"site": "krakow", "weekly": {"mon-fri": ["08:00-12:00", "12:00-18:00"]}},
                            closed={"overflow": "other", "reason": "after_hours"}))
    assert cal.closed_rule("support") == ClosedRule("other", "after_hours")
    assert cal.closed_rule("other") is None and cal.has_hours("support") and not cal.has_hours("other")
    got = plain(cal, "2026-01-05 00:00", "2026-01-08 00:00")
    assert got == [("2026-01-05 07:00", "QUEUE_OPEN", "support", None),  # 12:00 joins the two ranges
                   ("2026-01-05 17:00", "QUEUE_CLOSE", "support", ClosedRule("other", "after_hours")),
                   ("2026-01-07 07:00", "QUEUE_OPEN", "support", None),  # 06 Jan: Kraków's holiday
                   ("2026-01-07 17:00", "QUEUE_CLOSE", "support", ClosedRule("other", "after_hours"))]
    assert cal.queue_open("support", utc("2026-01-05 07:00"))
    assert not cal.queue_open("support", utc("2026-01-05 06:59:59"))
    assert not cal.queue_open("support", utc("2026-01-06 10:00"))
    assert cal.queue_open("other", utc("2026-01-06 10:00"))
    default = Calendar(sun_spec(hours={"timezone": "UTC", "weekly": {"daily": "08:00-09:00"}}))
    assert default.closed_rule("support") == ClosedRule(None, "outside_hours")


def test_queue_hours_from_the_site_and_own_holidays():
    cal = Calendar(sun_spec(hours={"site": "manila", "holidays": ["2026-01-07"]}))
    opens = [t for t, k, _, _ in plain(cal, "2026-01-04 00:00", "2026-01-09 00:00") if k == "QUEUE_OPEN"]
    # 07:00 PHT is 23:00 UTC the day before: the local 7 January opens on 6 January UTC
    assert opens == ["2026-01-04 23:00", "2026-01-05 23:00", "2026-01-07 23:00", "2026-01-08 23:00"]


# --- laziness, cursor, chunking ---------------------------------------------------


def test_queue_open_and_preferred_sites_are_cached_per_constant_stretch():
    cal = Calendar(sun_spec(sites="daytime", site_escalation=60, hours={"site": "krakow"}))
    t = utc("2026-01-05 08:00")
    cal.queue_open("support", t)
    cal.preferred_sites("support", t)
    before = cal.conversions
    for i in range(10_000):  # 10,000 "routing events" within one stretch
        assert cal.queue_open("support", t + i * 0.5)
        assert cal.preferred_sites("support", t + i * 0.5) == ("krakow",)
    assert cal.conversions == before


def test_a_week_expands_about_a_week_of_days():
    spec = load_config(EXAMPLE)
    cal = Calendar(spec)
    t0 = utc("2026-01-05 00:00")
    cur = cal.cursor(t0)
    n = sum(1 for _ in iter_until(cur, t0 + 7 * DAY))
    assert n > 500
    subjects = len(cal.groups) + 1 + 3  # groups, billing hours, three sites' hours
    assert cal.expanded_days <= subjects * 10  # 7 days plus the neighbours, not per event


def iter_until(cur, t1):
    while cur.next_time <= t1:
        yield from cur.pop_due(min(cur.next_time, t1))


def test_cursor_matches_transitions_and_skips_the_start_instant():
    cal = Calendar(load_config(EXAMPLE))
    t0 = utc("2026-01-05 07:00")   # Kraków's shift start, the queue opening, a hand-over: all at t0
    whole = [tr for tr in cal.transitions(t0, t0 + 7 * DAY) if tr.time > t0]
    assert whole and whole[0].time > t0
    cur = cal.cursor(t0, chunk=5000)
    assert list(iter_until(cur, t0 + 7 * DAY - 1)) == whole
    cur = cal.cursor(t0)
    assert cur.pop_due(t0) == [] and cur.next_time == whole[0].time


def test_transitions_do_not_depend_on_how_the_range_is_cut():
    cal = Calendar(load_config(EXAMPLE))
    t0, t1 = utc("2026-01-04 00:00"), utc("2026-01-12 00:00")
    whole = cal.transitions(t0, t1)
    rng = random.Random(7)
    for _ in range(5):
        cuts = sorted({t0, t1, *(rng.uniform(t0, t1) for _ in range(rng.randint(1, 30))),
                       *(tr.time for tr in rng.sample(whole, 5))})
        pieces = [tr for a, b in zip(cuts, cuts[1:]) for tr in cal.transitions(a, b)]
        assert pieces == whole
    fresh = Calendar(load_config(EXAMPLE))  # and not on what was asked before
    assert fresh.transitions(t0, t1) == whole


# --- planning views -------------------------------------------------------------


def test_expected_staff_means_over_the_interval_with_breaks():
    cal = one_group("UTC", {"d": {"days": "mon", "start": "08:00", "end": "16:00", "breaks": [
        {"start": "12:00", "minutes": 15}]}})
    rows = cal.expected_staff(utc("2026-01-05 07:00"), utc("2026-01-05 17:00"), 3600)
    assert [(hm(r.start)[11:], r.available["x"], r.on_shift["x"]) for r in rows] == [
        ("07:00", 0, 0), ("08:00", 2, 2), ("09:00", 2, 2), ("10:00", 2, 2), ("11:00", 2, 2),
        ("12:00", 1.5, 2), ("13:00", 2, 2), ("14:00", 2, 2), ("15:00", 2, 2), ("16:00", 0, 0)]


def test_expected_staff_of_the_example_and_by_queue():
    spec = load_config(EXAMPLE)
    cal = Calendar(spec)
    t0 = utc("2026-01-05 00:00")
    rows = cal.expected_staff(t0, t0 + DAY, 3600)
    assert len(rows) == 24 and list(rows[0].available) == ["manila", "krakow", "austin"]
    at = {hm(r.start)[11:]: r for r in rows}
    assert at["02:00"].on_shift == {"manila": 28, "krakow": 0, "austin": 0}   # 4 groups x 7
    assert at["10:00"].on_shift["krakow"] == 36 + 18                          # support + billing
    assert at["18:00"].on_shift["austin"] == 40
    from acd.calendar_cli import eligible_groups

    elig = eligible_groups(spec)
    assert "billing-early" in elig["billing"] and "billing-early" not in elig["support"]
    only = cal.expected_staff(t0, t0 + DAY, 3600, groups=elig["support"])
    assert {hm(r.start)[11:]: r for r in only}["10:00"].on_shift["krakow"] == 36


def test_the_example_week_leaves_no_open_queue_uncovered():
    """The bar, on the calendar side: over the 7-day example week every open
    queue always has an available agent who can serve it, at the preferred
    site too, and the sun goes round Manila -> Kraków -> Austin."""
    from acd.calendar_cli import eligible_groups

    spec = load_config(EXAMPLE)
    cal = Calendar(spec)
    t0 = utc("2026-01-05 00:00")
    assert cal.gaps(t0, t0 + 7 * DAY, eligible_groups(spec)) == []
    st = cal.queue_status(t0, t0 + DAY, 3600)
    assert [st[h].preferred["support"] for h in (3, 10, 18, 23)] == ["manila", "krakow", "austin", "manila"]
    assert [st[h].open["billing"] for h in (6, 7, 16, 17)] == [0, 1, 1, 0]
    tue = cal.queue_status(t0 + DAY, t0 + 2 * DAY, 3600)   # Epiphany in Kraków
    assert tue[10].preferred["support"] is None and all(r.open["billing"] == 0 for r in tue)
    on_holiday = cal.expected_staff(t0 + DAY, t0 + 2 * DAY, 3600)[10].on_shift["krakow"]
    assert on_holiday == 32   # the holiday rota, no billing


def test_gaps_find_uncovered_and_preferred_site_stretches():
    spec = spec_from_obj({
        "queues": [{"name": "q", "skills": {"s": 1}, "sites": ["b", "a"], "site_escalation": 60,
                    "hours": {"timezone": "UTC", "weekly": {"daily": "06:00-20:00"}}}],
        "sites": [{"name": "a", "timezone": "UTC"}, {"name": "b", "timezone": "UTC"}],
        "shifts": {"d": {"days": "daily", "start": "08:00", "end": "18:00",
                         "breaks": [{"start": "12:00", "minutes": 30}]}},
        "agents": [{"group": "g", "count": 2, "skills": {"s": 1}, "site": "a", "shift": "d"}],
    })
    gaps = Calendar(spec).gaps(utc("2026-01-05 00:00"), utc("2026-01-06 00:00"), {"q": ["g"]})
    assert [(g.kind, hm(g.start)[11:], hm(g.end)[11:], g.site) for g in gaps] == [
        ("uncovered", "06:00", "08:00", None), ("preferred_site", "08:00", "12:00", "b"),
        ("uncovered", "12:00", "12:30", None), ("preferred_site", "12:30", "18:00", "b"),
        ("uncovered", "18:00", "20:00", None)]


# --- acd calendar -----------------------------------------------------------------


def test_acd_calendar_table(capsys):
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--days", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    head = next(i for i, x in enumerate(lines) if x.startswith("interval (UTC)"))
    assert lines[head].split() == ["interval", "(UTC)", "manila", "krakow", "austin", "total", "support", "billing"]
    rows = lines[head + 2: head + 2 + 48]
    assert rows[2].split() == ["2026-01-05", "02:00", "24.5", "0.0", "0.0", "24.5", "manila", "closed"]
    assert rows[10].split()[-2:] == ["krakow", "open"]
    assert "every open queue has an available agent" in out


def test_acd_calendar_json_in_a_local_time_zone(capsys):
    args = [str(EXAMPLE), "--from", "2026-01-05", "--days", "1", "--interval", "1800", "--tz", "Europe/Warsaw",
            "--json", "--queue", "support"]
    assert calendar_main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["intervals"]) == 48 and doc["gaps"] == [] and doc["queue"] == "support"
    first = doc["intervals"][0]
    assert first["start"] == utc("2026-01-04 23:00") and first["start_local"] == "2026-01-05 00:00"
    assert first["queues"]["support"] == {"open": 1.0, "preferred_site": "manila"}
    assert set(first["available"]) == {"manila", "krakow", "austin"}


def test_acd_calendar_transitions(capsys):
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--days", "1", "--transitions"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "2026-01-05 07:00  sites        support              krakow" in out
    assert any("queue_close  billing" in x and "close contacts: billing_closed" in x for x in out)
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--days", "1", "--transitions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["transitions"]
    assert {r["kind"] for r in rows} == {"shift_start", "break_start", "break_end", "shift_end", "queue_open",
                                         "queue_close", "sites"}


def test_acd_calendar_bad_input(tmp_path, capsys):
    assert calendar_main([str(EXAMPLE), "--from", "5 Jan", "--days", "1"]) == 2
    assert "--from: expected a date" in capsys.readouterr().err
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--days", "0"]) == 2
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--tz", "Mars/Base"]) == 2
    assert calendar_main([str(EXAMPLE), "--from", "2026-01-05", "--queue", "nope"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + 'shifts:\n  n: {days: daily, start: "22:00", end: "06:00"}\n')
    assert calendar_main([str(bad), "--from", "2026-01-05"]) == 2
    assert f"{bad}:6: shifts.n.end: the shift ends (06:00) before it starts (22:00)" in capsys.readouterr().err


# --- the example traffic ----------------------------------------------------------


def test_the_example_traffic_is_a_modest_week_from_a_monday():
    spec = load_traffic(TRAFFIC)
    assert spec.start == datetime(2026, 1, 5, tzinfo=timezone.utc) and spec.start.weekday() == 0
    assert spec.duration == 7 * DAY
    assert all(len(q.rates) == 168 and q.interval == 3600 for q in spec.queues)
    expected = sum(sum(q.rates) for q in spec.queues)
    assert 20_000 <= expected <= 40_000
    queues = {q.name for q in load_config(EXAMPLE).queues}
    assert {q.queue for q in spec.queues} <= queues
    n = sum(1 for _ in generate(spec))
    assert abs(n - expected) < 5 * expected ** 0.5
