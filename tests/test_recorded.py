"""Tests for acd.recorded: importing recorded call logs (the Technion
"Anonymous Bank" files and generic CSV/TSV), Kaplan-Meier patience, the
inferred roster, recorded KPIs and the recorded-vs-replayed comparison.

The real files are read from ``../shared/data`` (next to the repository);
those tests skip, saying why, only when that folder is absent.  Every quirk
also has a small crafted file here, so the behaviour is pinned without it.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import date
from pathlib import Path

import pytest

from acd.config import load_config
from acd.recorded import (
    ANONYMOUS_BANK, ImportOptions, RecordError, RosterPolicy, add_compare_arguments, add_import_arguments,
    build_roster, compare_report, comparison, comparison_html, comparison_table, import_records, kaplan_meier,
    load_recorded, read_calls, recorded_for_replay, recorded_kpis, run_import, thin,
)
from acd.recorded.records import mapping_from_args
from acd.recorded.survival import interpolate
from acd.replay import Replay
from acd.scenario import AgentLine, ContactLine, Scenario, draw_patience

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FEB = DATA / "anonymous_bank_1999-02.tsv"
AUG = DATA / "anonymous_bank_1999-08_one_day.csv"
SUMMARY = DATA / "anonymous_bank_1999-02_summary.json"
EXCERPT = ROOT / "scenarios" / "anonymous-bank-1999-02-07.jsonl"
EXCERPT_CONFIG = ROOT / "config" / "anonymous-bank.yaml"

needs_data = pytest.mark.skipif(not FEB.exists(), reason=f"the shared data folder is absent ({DATA}); "
                                                         "the crafted-file tests below still cover every quirk")

HEADER = ("vru+line\tcall_id\tcustomer_id\tpriority\ttype\tdate\tvru_entry\tvru_exit\tvru_time\tq_start\tq_exit\t"
          "q_time\toutcome\tser_start\tser_exit\tser_time\tserver")


def bank(tmp_path: Path, *rows: str, name: str = "calls.tsv") -> Path:
    """A crafted log in the 17-column format; rows as space-separated cells."""
    p = tmp_path / name
    p.write_text(HEADER + "\n" + "".join("\t".join(r.split()) + "\n" for r in rows))
    return p


# A served call that queued 30 s, a served call straight from the IVR, an
# abandoned one, and one that hung up in the IVR.
QUEUED = "AA0101 1 111 2 PS 990201 10:00:00 10:00:10 10 10:00:10 10:00:40 30 AGENT 10:00:40 10:02:40 120 DORIT"
DIRECT = "AA0101 2 0 0 NW 990201 10:01:00 10:01:12 12 0:00:00 0:00:00 0 AGENT 10:01:11 10:02:11 60 TOVA"
HANG = "AA0101 3 222 1 PS 990201 10:03:00 10:03:05 5 10:03:05 10:04:05 60 HANG 0:00:00 0:00:00 0 NO_SERVER"
IVR_HANG = "AA0101 4 0 0 PS 990201 10:05:00 10:05:20 20 0:00:00 0:00:00 0 HANG 0:00:00 0:00:00 0 NO_SERVER"


# --- crafted files: every quirk --------------------------------------------


def test_plain_rows_become_contacts(tmp_path):
    calls, s = read_calls(bank(tmp_path, QUEUED, DIRECT, HANG))
    assert [c.id for c in calls] == ["990201-AA0101-1", "990201-AA0101-2", "990201-AA0101-3"]
    q, d, h = calls
    t0 = 917827200.0  # 1999-02-01T00:00:00Z: the local clock, kept as UTC
    assert q.arrival == t0 + 10 * 3600 + 10 and q.wait == 30 and q.queued and q.handle == 120
    assert q.service_start == t0 + 10 * 3600 + 40 and q.agent == "DORIT"
    assert q.priority == 1.5 and q.raw_priority == "2" and q.customer == "111"
    assert h.outcome == "abandoned" and h.wait == 60 and h.priority == 0.0
    assert s.rows == 3 and s.contacts == 3 and dict(s.outcomes) == {"served": 2, "abandoned": 1}


def test_never_queued_served_arrives_at_ivr_exit_with_no_wait(tmp_path):
    calls, s = read_calls(bank(tmp_path, DIRECT))
    (c,) = calls
    assert not c.queued and c.wait == 0
    assert c.arrival == 917827200.0 + 10 * 3600 + 60 + 12  # vru_exit, not ser_start (one second earlier)
    assert s.quirks["never_queued"] == 1


def test_never_queued_hang_is_left_out_and_counted(tmp_path):
    calls, s = read_calls(bank(tmp_path, QUEUED, IVR_HANG))
    assert len(calls) == 1
    assert s.excluded["ivr_abandoned"] == 1 and s.rows == 2


def test_phantom_is_left_out_and_counted(tmp_path):
    phantom = "AA0101 5 0 0 NW 990209 13:53:36 13:53:46 10 13:53:46 13:54:10 24 PHANTOM 13:54:09 13:54:13 4 NO_SERVER"
    calls, s = read_calls(bank(tmp_path, phantom, QUEUED))
    assert len(calls) == 1 and s.excluded["ignored_outcome"] == 1


def test_served_with_no_agent_is_kept_and_counted(tmp_path):
    row = "AA0101 6 0 0 PS 990201 7:31:45 7:31:55 10 0:00:00 0:00:00 0 AGENT 7:31:54 7:31:59 5 NO_SERVER"
    calls, s = read_calls(bank(tmp_path, row))
    (c,) = calls
    assert c.outcome == "served" and c.agent is None and c.handle == 5
    assert s.quirks["served_no_agent"] == 1
    roster = build_roster(calls, ["PS"])
    assert roster.agents == {}


def test_zero_service_time_and_missing_service_times(tmp_path):
    zero = "AA0101 7 1 1 PS 990201 9:00:00 9:00:05 5 9:00:05 9:00:20 15 AGENT 9:00:20 9:00:20 0 IDIT"
    none = "AA0101 8 1 2 PS 990202 13:44:47 13:44:53 6 13:44:53 13:45:06 13 AGENT 0:00:00 0:00:00 0 YIFAT"
    calls, s = read_calls(bank(tmp_path, zero, none))
    assert [c.handle for c in calls] == [0, 0]
    assert s.quirks["zero_service_time"] == 2
    assert s.quirks["served_without_service_times"] == 1
    assert calls[1].service_start is None  # not used for the roster


def test_times_wrapping_past_midnight_move_to_the_next_day(tmp_path):
    # queued before midnight, answered after it; and a service that ends after midnight
    a = "AA0102 9 5 1 PS 990220 23:59:32 23:59:44 12 23:59:44 0:00:30 46 AGENT 0:00:30 0:01:28 58 DARMON"
    b = "AA0103 10 0 0 PS 990217 23:59:21 23:59:32 11 0:00:00 0:00:00 0 AGENT 23:59:31 0:00:29 58 SHARON"
    calls, s = read_calls(bank(tmp_path, a, b))
    by = {c.id: c for c in calls}
    ca, cb = by["990220-AA0102-9"], by["990217-AA0103-10"]
    day20 = 917827200.0 + 19 * 86400
    assert ca.arrival == day20 + 86399 - 15 and ca.wait == 46
    assert ca.service_start == day20 + 86400 + 30 and ca.service_end == day20 + 86400 + 88
    assert cb.service_end - cb.service_start == 58
    assert s.quirks["wrapped_midnight"] == 2


def test_clock_jitter_is_not_a_wrap(tmp_path):
    # vru_exit a minute before vru_entry (negative vru_time in the records): no wrap, counted
    row = "AA0102 11 256 2 PS 990207 9:48:14 9:47:17 -57 9:47:17 9:50:11 174 AGENT 9:50:11 9:51:28 77 KAZAV"
    calls, s = read_calls(bank(tmp_path, row))
    (c,) = calls
    assert c.arrival == 917827200.0 + 6 * 86400 + 9 * 3600 + 47 * 60 + 17 and c.wait == 174
    assert s.quirks["negative_ivr_time"] == 1 and not s.quirks["wrapped_midnight"]


def test_abandoned_with_service_times_stays_abandoned(tmp_path):
    row = "AA0101 12 6 2 PS 990208 18:11:39 18:11:44 5 18:11:44 18:12:10 26 HANG 18:12:10 18:14:17 127 NO_SERVER"
    calls, s = read_calls(bank(tmp_path, row))
    assert calls[0].outcome == "abandoned" and calls[0].wait == 26
    assert s.quirks["abandoned_with_service_times"] == 1


def test_duplicate_ids_are_made_unique(tmp_path):
    calls, s = read_calls(bank(tmp_path, QUEUED, QUEUED))
    assert sorted(c.id for c in calls) == ["990201-AA0101-1", "990201-AA0101-1#2"]
    assert s.quirks["duplicate_id"] == 1


@pytest.mark.parametrize("row, line, message", [
    ("AA0101 20 0 0 PS 990201 10:00:00 10:00:10", 3, "8 cells, expected 17"),
    (QUEUED.replace("10:00:40 30", "10:0x:40 30", 1), 3,
     'q_exit: expected a time (H:MM:SS or ISO-8601), got "10:0x:40"'),
    (QUEUED.replace("AGENT", "TRANSFER"), 3, 'outcome: expected one of AGENT, HANG, PHANTOM, got "TRANSFER"'),
    (QUEUED.replace("990201", "99021"), 3, 'date: expected a date'),
    (QUEUED.replace(" 30 AGENT", " -3 AGENT"), 3, "q_time: expected seconds >= 0"),
    (QUEUED.replace(" 120 DORIT", " two DORIT"), 3, 'ser_time: expected seconds, got "two"'),
])
def test_malformed_rows_are_fatal_with_their_line_number(tmp_path, row, line, message):
    p = bank(tmp_path, DIRECT, row, HANG)
    with pytest.raises(RecordError) as exc:
        read_calls(p)
    assert exc.value.line == line
    assert message.replace('"', "'") in str(exc.value).replace('"', "'")
    assert str(exc.value).startswith(f"{p}:{line}: ")


def test_skip_bad_skips_and_counts_with_line_numbers(tmp_path):
    bad1 = "AA0101 20 0 0 PS 990201 10:00:00"
    bad2 = QUEUED.replace("AGENT", "??")
    calls, s = read_calls(bank(tmp_path, QUEUED, bad1, DIRECT, bad2, HANG), skip_bad=True)
    assert len(calls) == 3 and s.rows == 5
    assert s.excluded["bad_rows"] == 2
    assert [b["line"] for b in s.bad_rows] == [3, 5]
    assert "cells" in s.bad_rows[0]["error"] and "outcome" in s.bad_rows[1]["error"]


def test_missing_column_and_empty_file(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_text(HEADER.replace("server", "agent_name") + "\n")
    with pytest.raises(RecordError, match=r'x\.tsv:1: no column "server" \(mapped to agent\)'):
        read_calls(p)
    p.write_text("")
    with pytest.raises(RecordError, match="empty file"):
        read_calls(p)
    with pytest.raises(RecordError, match="cannot read"):
        read_calls(tmp_path / "nope.tsv")


def test_date_range(tmp_path):
    other = QUEUED.replace("990201", "990203").replace("AA0101 1 ", "AA0101 9 ")
    calls, s = read_calls(bank(tmp_path, QUEUED, other, IVR_HANG), date_from=date(1999, 2, 2))
    assert [c.day for c in calls] == [date(1999, 2, 3)]
    assert s.excluded["outside_dates"] == 2 and "ivr_abandoned" not in s.excluded  # counted only in range


def test_generic_mapping_iso_times_and_no_queue_columns(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text(
        "ref,start,answered,ended,result,skill,who\n"
        "a1,2024-03-04T09:00:00,2024-03-04T09:00:20,2024-03-04T09:03:20,answered,sales,ann\n"
        "a2,2024-03-04T09:01:00,,2024-03-04T09:01:45,abandoned,sales,\n"
        "a3,2024-03-04T09:02:00,2024-03-04T09:02:00,2024-03-04T09:02:30,answered,support,bob\n")
    m = mapping_from_args("generic", ["id=ref", "arrival=start", "service_start=answered", "service_end=ended",
                                      "outcome=result", "type=skill", "agent=who"])
    calls, s = read_calls(p, m)
    a1, a2, a3 = calls
    assert (a1.id, a1.wait, a1.handle, a1.agent, a1.type) == ("a1", 20, 180, "ann", "sales")
    assert (a2.outcome, a2.wait) == ("abandoned", 45)  # no queue end: the call's end is when it hung up
    assert a3.wait == 0 and a3.queued  # no queue_start column: every call queued on arrival
    calls, _ = read_calls(p, mapping_from_args("generic", ["arrival=start", "service_start=answered",
                                                           "service_end=ended"]))
    assert [c.outcome for c in calls] == ["served", "abandoned", "served"]  # no outcome column
    assert calls[0].id == "L2" and calls[0].type == "calls"


def test_generic_mapping_clock_times_need_a_date(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("t,ans,len\n9:00:00,9:00:05,60\n")
    m = mapping_from_args("generic", ["arrival=t", "service_start=ans", "service_time=len"])
    with pytest.raises(RecordError, match=r"log\.csv:2: t: a clock time needs a date"):
        read_calls(p, m)
    calls, _ = read_calls(p, mapping_from_args("generic", ["arrival=t", "service_start=ans", "service_time=len"],
                                               date="2024-03-04"))
    assert calls[0].wait == 5 and calls[0].handle == 60 and calls[0].type == "calls"


def test_mapping_errors():
    with pytest.raises(ValueError, match="needs --map"):
        mapping_from_args("generic", None)
    with pytest.raises(ValueError, match="unknown field 'queue'"):
        mapping_from_args("generic", ["queue=x"])
    with pytest.raises(ValueError, match="needs an arrival column"):
        mapping_from_args("generic", ["type=x"])
    with pytest.raises(ValueError, match="--priority-map"):
        mapping_from_args("anonymous-bank", None, priority_map="2:1")
    m = mapping_from_args("anonymous-bank", ["customer="], priority_map="2=3", delimiter="tab")
    assert "customer" not in m.columns and m.priority_map == {"2": 3.0} and m.delimiter == "\t"


# --- Kaplan-Meier ------------------------------------------------------------


def test_kaplan_meier_by_hand():
    # events at 2, 4, 4, 7; censored at 3, 4 (a tie: the events go first), 9
    obs = [(2, True), (3, False), (4, True), (4, True), (4, False), (7, True), (9, False)]
    km = kaplan_meier(obs)
    s1 = 1 - 1 / 7
    s2 = s1 * (1 - 2 / 5)
    s3 = s2 * (1 - 1 / 2)
    assert km == [(2.0, pytest.approx(s1)), (4.0, pytest.approx(s2)), (7.0, pytest.approx(s3))]
    assert kaplan_meier([(5, False), (6, False)]) == []  # nobody abandoned: no curve
    with pytest.raises(ValueError):
        kaplan_meier([(-1, True)])


def test_kaplan_meier_without_censoring_is_the_empirical_survival():
    km = kaplan_meier([(t, True) for t in (1, 2, 2, 3)])
    assert km == [(1.0, 0.75), (2.0, 0.25), (3.0, 0.0)]


def test_thin_keeps_the_curve_within_tolerance():
    km = kaplan_meier([(t, t % 3 != 0) for t in range(1, 1000)])
    short = thin(km, tolerance=0.002, max_points=1000)
    assert len(short) < len(km) and short[-1] == (km[-1][0], round(km[-1][1], 6))
    for t, s in km:
        assert abs(interpolate(short, t) - s) <= 0.002 + 1e-6
    assert len(thin(km, max_points=20)) <= 20


# --- the roster --------------------------------------------------------------


def _svc(agent, start, length, typ="PS", wait=0.0, outcome="served"):
    from acd.recorded.records import Call

    return Call(line=0, id=f"{agent}{start}", type=typ, outcome=outcome, arrival=start - wait, wait=wait,
                queued=wait > 0, handle=length, service_start=start if agent else None,
                service_end=start + length if agent else None, agent=agent, priority=0.0, raw_priority="0",
                customer=None, day=date(1999, 2, 1))


def test_roster_shifts_skills_and_lines():
    calls = [_svc("A", 1000, 100), _svc("A", 1200, 100, "NW"), _svc("A", 1400, 100), _svc("A", 1600, 100),
             _svc("A", 20000, 50),  # after a gap > 1 h: a new shift
             _svc("B", 1000, 300, "NE")]
    r = build_roster(calls, ["PS", "NW", "NE"], RosterPolicy(availability="shift"))
    a = r.agents["A"]
    assert a.shifts == [(1000, 1700), (20000, 20050)]
    assert a.skills == {"PS": 8, "NW": 2}  # 4 of 5 PS, 1 of 5 NW
    assert r.agents["B"].skills == {"NE": 10}
    assert [x[2:4] for x in r.lines if x[2] == "A"] == [
        ("A", "login"), ("A", "logout"), ("A", "login"), ("A", "logout")]
    assert [x[0] for x in r.lines] == sorted(x[0] for x in r.lines)


def test_roster_min_skill_share_and_types_nobody_served():
    calls = [_svc("A", 1000 + 200 * i, 100) for i in range(19)] + [_svc("A", 5000, 10, "NW")]
    r = build_roster(calls, ["PS", "NW", "TT"], RosterPolicy(min_skill_share=0.1))
    # NW is below the share, TT never served: no agent keeps them, so everyone gets them at level 1
    assert r.agents["A"].skills == {"PS": 10, "NW": 1, "TT": 1}
    assert r.types_without_agent == ["NW", "TT"]


def test_relative_availability_turns_waiting_time_into_wrap_up():
    # A ends a PS call at 1100 while a PS call has waited since 1050; A takes it only at 1160
    calls = [_svc("A", 1000, 100), _svc("A", 1160, 100, wait=110), _svc("A", 2000, 100)]
    r = build_roster(calls, ["PS"], RosterPolicy(availability="relative", grace=10))
    assert r.wrap_up() == {"PS": round(60 / 3, 1)}  # 60 s unavailable over 3 PS calls
    assert r.agents["A"].unavailable == []  # the idle gap 1260..2000 had nobody waiting
    r = build_roster(calls, ["PS"], RosterPolicy(availability="observed", grace=10))
    assert r.agents["A"].unavailable == [(1110, 1160)]  # from grace seconds after the service
    assert ("A", "not_ready") in [x[2:4] for x in r.lines]
    r = build_roster(calls, ["PS"], RosterPolicy(availability="exact", grace=0))
    assert r.agents["A"].unavailable == [(1100, 1160), (1260, 2000)]


def test_shift_skills_drop_a_type_clearly_not_served_in_a_shift():
    # day 1: half PS, half NW; day 2 (a new shift): 20 PS calls, no NW although 4 were expected
    day1 = [_svc("A", 1000 + 300 * i, 100, "PS" if i % 2 else "NW") for i in range(10)]
    day2 = [_svc("A", 90000 + 300 * i, 100) for i in range(20)]
    r = build_roster(day1 + day2, ["PS", "NW"], RosterPolicy(availability="shift", shift_skills=True))
    assert set(r.agents) == {"A", "A[PS]"}
    assert r.agents["A[PS]"].skills == {"PS": 8} and r.agents["A"].skills == {"PS": 8, "NW": 2}
    assert [x[2:4] for x in r.lines] == [("A", "login"), ("A", "logout"), ("A[PS]", "login"), ("A[PS]", "logout")]
    assert r.summary()["agents"] == 1 and r.summary()["agent_ids"] == 2


# --- the files: scenario, config, sidecar -------------------------------------


def test_import_writes_a_replayable_scenario_config_and_sidecar(tmp_path):
    p = bank(tmp_path, QUEUED, DIRECT, HANG, IVR_HANG,
             "AA0101 5 333 1 PS 990201 10:06:00 10:06:02 2 10:06:02 10:07:02 60 AGENT 10:07:02 10:08:02 60 DORIT")
    scen, cfg, side = tmp_path / "s.jsonl", tmp_path / "s.yaml", tmp_path / "s.recorded.json"
    res = import_records(p, ANONYMOUS_BANK, ImportOptions(), scenario=scen, config=cfg, sidecar=side)
    sc = Scenario(scen)
    assert "Technion" in sc.description and "Brown" in sc.description
    assert set(sc.patience_curves) == {"PS"}  # NW had no abandonment: waits forever
    items = [item for _, item in sc]
    contacts = {i.id: i for i in items if isinstance(i, ContactLine)}
    assert len(contacts) == 4
    hang = contacts["990201-AA0101-3"]
    assert hang.patience == 60 and hang.patience_curve is None  # observed patience
    assert hang.handle_time > 0  # drawn from the answered PS calls, used if the replay answers it
    q = contacts["990201-AA0101-1"]
    assert (q.patience, q.patience_curve, q.patience_after, q.priority) == (None, "PS", 30, 1.5)
    assert q.attributes == {"outcome": "answered", "customer": "111", "server": "DORIT"}
    assert contacts["990201-AA0101-2"].patience_curve is None and contacts["990201-AA0101-2"].patience is None
    agents = [i for i in items if isinstance(i, AgentLine)]
    assert {(a.agent, a.state) for a in agents} == {("DORIT", "login"), ("DORIT", "logout"),
                                                      ("TOVA", "login"), ("TOVA", "logout")}
    spec = load_config(cfg)
    assert [q.name for q in spec.queues] == ["PS", "NW"]
    assert {g.group: g.initial for g in spec.agents} == {"DORIT": "offline", "TOVA": "offline"}
    rep = Replay(spec, start=sc.start).run(Scenario(scen))
    assert rep["total"]["offered"] == 4 and rep["replay"]["in_system_at_end"] == 0
    data = load_recorded(str(side))
    assert data["import"]["excluded"] == {"ivr_abandoned": 1}
    assert data["recorded"]["total"]["offered"] == 4
    cmp = comparison(rep, data)
    assert cmp["total"]["recorded"]["offered"] == cmp["total"]["replayed"]["offered"] == 4
    assert res.summary["rows"] == 5


def test_curve_patience_option_for_abandoned_calls(tmp_path):
    p = bank(tmp_path, QUEUED, HANG)
    scen = tmp_path / "s.jsonl"
    import_records(p, ANONYMOUS_BANK, ImportOptions(abandoned_patience="curve"), scenario=scen)
    hang = next(i for _, i in Scenario(scen) if isinstance(i, ContactLine) and i.id.endswith("-3"))
    assert hang.patience is None and hang.patience_curve == "PS" and hang.patience_after == 0


def test_recorded_kpis_and_the_comparison_table():
    calls = [_svc("A", 1000, 100, wait=20), _svc("A", 1200, 50), _svc(None, 3700, 0, wait=40, outcome="abandoned")]
    rec = recorded_kpis(calls)
    assert rec["total"] == {"offered": 3, "answered": 2, "abandoned": 1, "waited": 2, "wait_answered_s": 20,
                            "talk_s": 150}
    assert set(rec["hours"]) == {"0", "3600"}
    fig = {"offered": 3, "answered": 3, "abandoned": 0, "p_wait": 1 / 3, "asa": 10.0, "avg_talk": 80.0,
           "completed": 3}
    report = {"total": fig, "queues": {"PS": fig},
              "intervals": [{"start": 0, "total": fig, "queues": {"PS": fig}}]}
    cmp = comparison(report, {"recorded": rec})
    t = cmp["total"]
    assert t["recorded"]["abandon_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert t["abandon_rate_diff_pp"] == pytest.approx(-33.33, abs=0.01)
    assert t["asa_ratio"] == 1.0
    assert [r["hour"] for r in cmp["hour_of_day"]] == [0, 1]
    assert [(r["start"], r["recorded"]["offered"], r["replayed"]["offered"]) for r in cmp["hours"]] == [
        (0, 2, 3), (3600, 1, 0)]
    table = comparison_table(report, {"recorded": rec})
    assert "TOTAL" in table and "per hour of the day" in table and "00:00" in table
    html = comparison_html(report, {"recorded": rec})
    assert html.startswith('<section id="recorded">') and '<tr class="total"><td>TOTAL</td>' in html


# --- CLI glue ---------------------------------------------------------------


def _import_args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_import_arguments(p)
    return p.parse_args(list(argv))


def test_run_import_cli(tmp_path, capsys):
    p = bank(tmp_path, QUEUED, DIRECT, HANG, IVR_HANG)
    out = tmp_path / "out.jsonl"
    assert run_import(_import_args(str(p), "-o", str(out), "--summary", str(tmp_path / "sum.json"))) == 0
    text = capsys.readouterr().out
    assert "ivr_abandoned" in text and "3 contacts imported" in text
    assert (tmp_path / "out.yaml").exists() and (tmp_path / "out.recorded.json").exists()
    assert json.loads((tmp_path / "sum.json").read_text())["excluded"] == {"ivr_abandoned": 1}
    # replay --compare-recorded glue: the sidecar next to the scenario
    rp = argparse.ArgumentParser()
    rp.add_argument("scenario")
    add_compare_arguments(rp)
    assert recorded_for_replay(rp.parse_args([str(out)])) is None
    recorded = recorded_for_replay(rp.parse_args([str(out), "--compare-recorded"]))
    spec = load_config(tmp_path / "out.yaml")
    sc = Scenario(out)
    rep = Replay(spec, start=sc.start).run(sc)
    table = compare_report(rep, recorded)
    assert "recorded vs replayed" in table and rep["recorded_comparison"]["total"]["recorded"]["offered"] == 3
    assert compare_report(rep, recorded, as_json=True) is None
    with pytest.raises(ValueError, match="no such file"):
        recorded_for_replay(rp.parse_args([str(out), "--compare-recorded", str(tmp_path / "x.json")]))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a recorded-KPI file"):
        load_recorded(str(tmp_path / "bad.json"))


def test_run_import_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    p = bank(tmp_path, QUEUED, "AA0101 20 0 0 PS 990201 10:00:00")
    assert run_import(_import_args(str(p), "-o", str(tmp_path / "o.jsonl"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{p}:3: 7 cells, expected 17" in err
    assert run_import(_import_args(str(p), "-o", str(tmp_path / "o.jsonl"), "--skip-bad", "--quiet")) == 0
    assert run_import(_import_args(str(p), "-o", "-")) == 2
    assert run_import(_import_args(str(p), "-o", str(tmp_path / "o.jsonl"), "--from", "Feb 1")) == 2
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert run_import(_import_args(str(other), "-o", str(tmp_path / "o.jsonl"))) == 2
    assert "--map" in capsys.readouterr().err


def test_draw_patience_is_conditional_on_the_recorded_wait():
    # the contract the importer relies on (acd.scenario.draw_patience)
    curve = [(10.0, 0.9), (60.0, 0.5), (300.0, 0.1)]
    for u in (0.0, 0.3, 0.7, 0.99):
        p = draw_patience(curve, 45.0, u)
        assert p is None or p >= 45.0


# --- the real files -----------------------------------------------------------


@needs_data
def test_february_counts_match_the_reference_summary():
    calls, s = read_calls(FEB)
    ref = json.loads(SUMMARY.read_text())
    assert s.rows == ref["rows_total"] == 33344
    assert s.excluded["ignored_outcome"] == ref["outcome_counts"]["PHANTOM"] == 278
    assert s.quirks["served_no_agent"] == ref["data_quirks"]["agent_outcome_with_NO_SERVER"] == 491
    assert s.quirks["zero_service_time"] == ref["data_quirks"]["agent_outcome_with_zero_ser_time"] == 85
    assert s.quirks["wrapped_midnight"] > 0 and s.quirks["negative_ivr_time"] > 0
    assert s.contacts + sum(s.excluded.values()) == s.rows
    # one call queued at exactly midnight (q_start 0:00:00, q_exit 0:00:27, q_time 27): we keep it
    # as queued; the reference summary took q_start 0:00:00 as "never queued"
    assert s.quirks["queued_at_midnight"] == 1
    queued = [c for c in calls if c.queued and c.id != "990215-AA0102-31056"]
    assert len(queued) == ref["queued_calls"]
    assert sum(c.outcome == "abandoned" for c in queued) / len(queued) == pytest.approx(
        ref["queued_abandon_fraction"], abs=5e-4)
    for t, fig in ref["by_type"].items():
        q = [c for c in queued if c.type == t]
        assert len(q) == fig["queued"]
        assert sum(c.wait for c in q) / len(q) == pytest.approx(fig["mean_q_time_queued_s"], abs=0.06)
    # Kaplan-Meier of the queued Sun-Thu calls equals the independent computation in the summary
    km_ref = ref["kaplan_meier_patience_survival_sun_thu"]
    for t in ("PS", "NW", "NE"):
        km = kaplan_meier([(c.wait, c.outcome == "abandoned") for c in queued
                           if c.type == t and c.day.weekday() in (6, 0, 1, 2, 3)])
        for x, want in km_ref[t].items():
            got = next((s for tt, s in reversed(km) if tt <= float(x)), 1.0)
            assert got == pytest.approx(want, abs=5e-4), (t, x)


@needs_data
def test_february_import_and_replay_meet_the_bars(tmp_path):
    scen = tmp_path / "feb.jsonl"
    opt = ImportOptions(queue_priority={"NW": -2.0})
    res = import_records(FEB, ANONYMOUS_BANK, opt, scenario=scen, config=tmp_path / "feb.yaml",
                         sidecar=tmp_path / "feb.recorded.json")
    assert res.summary["contacts"] == 31125
    spec = load_config(tmp_path / "feb.yaml")
    sc = Scenario(scen)
    rep = Replay(spec, start=sc.start).run(sc)
    assert rep["rejected_inputs"] == {} if "rejected_inputs" in rep else True
    cmp = comparison(rep, res.sidecar_dict())
    for name, pair in (("PS", cmp["queues"]["PS"]), ("NW", cmp["queues"]["NW"]), ("total", cmp["total"])):
        a, b = pair["recorded"], pair["replayed"]
        assert a["offered"] == b["offered"]
        assert abs(b["abandon_rate"] - a["abandon_rate"]) <= 0.05, name
        assert abs(b["asa"] / a["asa"] - 1) <= 0.30, name


@needs_data
def test_august_day_csv():
    calls, s = read_calls(AUG)
    assert s.rows == 2375 and s.format == "anonymous-bank"
    assert s.excluded["ignored_outcome"] == 18
    assert s.contacts + sum(s.excluded.values()) == s.rows
    assert {c.day for c in calls} == {date(2010, 8, 1)}  # the copy rewrote the date column
    assert all(math.isfinite(c.arrival) for c in calls)
    assert [c.arrival for c in calls] == sorted(c.arrival for c in calls)  # the file is not in time order


# --- the shipped excerpt ------------------------------------------------------


def test_shipped_excerpt_replays_with_its_config():
    assert EXCERPT.stat().st_size < 1.5e6
    sc = Scenario(EXCERPT)
    assert "Technion" in sc.description and "JASA" in sc.description
    spec = load_config(EXCERPT_CONFIG)
    rep = Replay(spec, start=sc.start).run(sc)
    recorded = load_recorded(str(EXCERPT.with_name(EXCERPT.name.replace(".jsonl", ".recorded.json"))))
    cmp = comparison(rep, recorded)
    assert cmp["total"]["recorded"]["offered"] == rep["total"]["offered"] > 7000
    assert not rep.get("rejected_inputs")
    assert abs(cmp["total"]["abandon_rate_diff_pp"]) <= 5 and 0.7 <= cmp["total"]["asa_ratio"] <= 1.3
