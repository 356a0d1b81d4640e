"""The calendar inside the routing core and the replay: shifts log agents in
and out, breaks make them not ready, business hours close queues, and
follow-the-sun queues prefer the site where it is daytime."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from random import Random

import pytest

from acd.config import load_config
from acd.core.engine import Engine
from acd.core.events import (
    AgentLogin, AgentLogout, AgentStateChanged, ContactArrived, ContactConnected, ContactEnded, ContactOffered,
    ContactOverflowed, OfferAccepted,
)
from acd.core.spec import spec_from_obj
from acd.replay import Replay

from helpers import DAY_AND_EVENING, TWO_SITES
from acd.scenario import ContactLine, Scenario

ROOT = Path(__file__).resolve().parents[1]
MON = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()  # a Monday, 00:00 UTC
H = 3600.0


def centre(**queue):
    return spec_from_obj({
        "sites": TWO_SITES,
        "shifts": DAY_AND_EVENING,
        "queues": [dict({"name": "q", "skills": {"s": 1}}, **queue),
                   {"name": "backup", "skills": {"s": 1}}],
        "agents": [{"group": "n", "count": 2, "skills": {"s": 1}, "site": "north", "shift": "day"},
                   {"group": "s", "count": 1, "skills": {"s": 1}, "site": "south", "shift": "eve"}],
    })


def feed(eng: Engine, now: float, event=None) -> list:
    out = eng.advance(now) if event is None else eng.handle(event, now)
    eng.check_invariants()
    return out


def test_shifts_and_breaks_drive_presence():
    eng = Engine(centre(), rng=Random(1), start=MON)
    assert {a.id: a.state for a in eng.agent_list} == {"n-1": "offline", "n-2": "offline", "s-1": "offline"}
    out = feed(eng, MON + 8 * H)
    assert sorted(e.agent for e in out if isinstance(e, AgentStateChanged) and e.state == "ready") == ["n-1", "n-2"]
    out = feed(eng, MON + 12 * H)
    lunch = [e for e in out if isinstance(e, AgentStateChanged)]
    assert {(e.agent, e.state, e.reason) for e in lunch} == {("n-1", "not_ready", "lunch"), ("n-2", "not_ready", "lunch")}
    out = feed(eng, MON + 12.5 * H)
    assert {e.state for e in out if isinstance(e, AgentStateChanged)} == {"ready"}
    feed(eng, MON + 16 * H)
    assert eng.agents["n-1"].state == "offline" and eng.agents["s-1"].state == "ready"


def test_a_shift_ending_mid_call_lets_the_call_finish_and_offers_nothing_more():
    eng = Engine(centre(), rng=Random(1), start=MON + 15.5 * H)
    out = feed(eng, MON + 15.5 * H, ContactArrived(contact="c1", queue="q"))
    agent = next(e.agent for e in out if isinstance(e, ContactOffered))
    feed(eng, MON + 15.5 * H, OfferAccepted(contact="c1"))
    feed(eng, MON + 16 * H)  # the north shift ends while c1 talks
    a = eng.agents[agent]
    assert a.state == "busy" and a.presence == 0  # offline presence, still busy
    out = feed(eng, MON + 16.1 * H, ContactArrived(contact="c2", queue="q"))
    assert all(e.agent == "s-1" for e in out if isinstance(e, ContactOffered))
    out = feed(eng, MON + 16.2 * H, ContactEnded(contact="c1"))
    assert any(isinstance(e, AgentStateChanged) and e.agent == agent and e.state == "offline" for e in out)


def test_closed_queue_closes_contacts_with_its_reason_at_arrival_and_at_closing_time():
    spec = centre(hours={"site": "north"}, closed={"reason": "after_hours"})
    eng = Engine(spec, rng=Random(1), start=MON + 7 * H)
    out = feed(eng, MON + 7 * H, ContactArrived(contact="early", queue="q"))
    ov = [e for e in out if isinstance(e, ContactOverflowed)]
    assert len(ov) == 1 and ov[0].to_queue is None and ov[0].reason == "after_hours"
    # at 15:59 everyone is busy: two calls wait and are closed at 16:00
    t = MON + 15.9 * H
    for cid in ("a", "b", "c", "d", "e"):
        out = feed(eng, t, ContactArrived(contact=cid, queue="q"))
        for e in out:
            if isinstance(e, ContactOffered):
                feed(eng, t, OfferAccepted(contact=e.contact))
    waiting = [c.id for c in eng.contacts.values() if c.state == 1]
    assert len(waiting) == 2
    out = feed(eng, MON + 16 * H)
    closed = sorted(e.contact for e in out if isinstance(e, ContactOverflowed))
    assert closed == sorted(waiting)
    rep = eng.report()["queues"]["q"]
    assert rep["closed"] == 3 and rep["waiting_at_end"] == 0


def test_closed_queue_can_overflow_to_another_queue():
    spec = centre(hours={"site": "north"}, closed={"overflow": "backup"})
    eng = Engine(spec, rng=Random(1), start=MON + 17 * H)
    out = feed(eng, MON + 17 * H, ContactArrived(contact="late", queue="q"))
    ov = next(e for e in out if isinstance(e, ContactOverflowed))
    assert ov.to_queue == "backup"
    assert any(isinstance(e, ContactOffered) and e.agent == "s-1" for e in out)


def test_closed_hours_moves_count_once_in_the_totals():
    # q is closed at 17:00 and sends its contacts to backup, served by s-1
    spec = centre(hours={"site": "north"}, closed={"overflow": "backup"})
    eng = Engine(spec, rng=Random(1), start=MON + 17 * H)
    t = MON + 17 * H
    feed(eng, t, ContactArrived(contact="x", queue="backup"))    # s-1 takes x at once
    feed(eng, t, OfferAccepted(contact="x"))
    feed(eng, t + 10, ContactArrived(contact="c", queue="q"))    # closed -> backup: waits for s-1
    feed(eng, t + 40, ContactEnded(contact="x"))                 # c offered after 30 s
    feed(eng, t + 40, OfferAccepted(contact="c"))
    feed(eng, t + 100, ContactEnded(contact="c"))
    rep = eng.report()
    q, total = rep["queues"]["q"], rep["total"]
    assert (q["offered"], q["closed"], q["overflowed"], q["waiting_at_end"]) == (1, 1, 0, 0)
    assert (total["offered"], total["answered"], total["closed"], total["overflowed"]) == (2, 2, 0, 0)
    assert total["waiting_at_end"] == 0
    assert total["p_wait"] == 0.5  # x waited 0 s, c 30 s
    # a contact that waits in q and is moved on at closing time counts once too
    eng = Engine(spec, rng=Random(1), start=MON + 15.9 * H)
    t = MON + 15.9 * H
    agent_of = {}
    for cid in ("a", "b", "c", "w"):                             # three agents: w waits
        for e in feed(eng, t, ContactArrived(contact=cid, queue="q")):
            if isinstance(e, ContactOffered):
                agent_of[e.agent] = e.contact
                feed(eng, t, OfferAccepted(contact=e.contact))
    out = feed(eng, MON + 16 * H)                                # w moves to backup and waits
    assert any(isinstance(e, ContactOverflowed) and e.contact == "w" and e.to_queue == "backup" for e in out)
    out = feed(eng, MON + 16 * H + 20, ContactEnded(contact=agent_of["s-1"]))
    assert any(isinstance(e, ContactOffered) and e.contact == "w" for e in out)
    feed(eng, MON + 16 * H + 20, OfferAccepted(contact="w"))
    rep = eng.report()
    total = rep["total"]
    assert rep["queues"]["q"]["p_wait"] == 0.25 and rep["queues"]["backup"]["p_wait"] == 1.0
    assert (total["offered"], total["answered"], total["closed"]) == (4, 4, 0)
    assert total["p_wait"] == 0.25  # w, once


def test_follow_the_sun_prefers_the_daytime_site_then_escalates():
    spec = centre(sites="daytime", site_escalation=60)
    eng = Engine(spec, rng=Random(1), start=MON + 15.5 * H)  # north daytime; south on shift too
    out = feed(eng, MON + 15.5 * H, ContactArrived(contact="c1", queue="q"))
    assert next(e.agent for e in out if isinstance(e, ContactOffered)).startswith("n-")
    feed(eng, MON + 15.5 * H, OfferAccepted(contact="c1"))
    out = feed(eng, MON + 15.5 * H, ContactArrived(contact="c2", queue="q"))
    feed(eng, MON + 15.5 * H, OfferAccepted(contact=next(e.contact for e in out if isinstance(e, ContactOffered))))
    # both north agents busy: c3 waits for north although south is free ...
    out = feed(eng, MON + 15.5 * H, ContactArrived(contact="c3", queue="q"))
    assert not any(isinstance(e, ContactOffered) for e in out)
    # ... until site_escalation, when every site's agents are targets
    out = feed(eng, MON + 15.5 * H + 60)
    assert [e.agent for e in out if isinstance(e, ContactOffered)] == ["s-1"]
    # at 16:00 daytime moves south: new contacts go there first
    feed(eng, MON + 16 * H)
    assert eng.queues["q"].pref == ("south",)


def test_observe_mode_leaves_presence_to_the_telephony_side():
    eng = Engine(centre(), rng=Random(1), start=MON, calendar="observe")
    # presence starts as the config's `initial` (ready) and the calendar does
    # not touch it: no lunch at 12:00, no logout at 16:00
    for t in (MON + 9 * H, MON + 12.2 * H, MON + 16.5 * H):
        feed(eng, t)
        assert all(a.state == "ready" for a in eng.agent_list)
    # but business hours and follow-the-sun still route: the queue state moves
    spec = centre(sites="daytime", site_escalation=60)
    eng = Engine(spec, rng=Random(1), start=MON + 9 * H, calendar="observe")
    assert eng.queues["q"].pref == ("north",)
    feed(eng, MON + 17 * H)
    assert eng.queues["q"].pref == ("south",)


def test_replay_of_a_calendar_ends_once_everyone_is_served():
    spec = centre()
    items = [(MON + 9 * H, ContactLine(id="c1", arrival=9 * H, queue="q", handle_time=100.0))]
    rep = Replay(spec, start=MON).run(items)
    assert rep["total"]["answered"] == 1
    assert rep["replay"]["end"] < MON + 10 * H  # the calendar's endless deadlines do not keep it going


@pytest.fixture(scope="module")
def week():
    spec = load_config(ROOT / "config" / "follow-the-sun.yaml")
    scen = Scenario(ROOT / "scenarios" / "follow-the-sun.jsonl")
    r = Replay(spec, seed=0)
    rep = r.run(scen)
    return spec, scen, r, rep


def test_follow_the_sun_week_hands_over_between_sites(week):
    spec, scen, r, rep = week
    assert rep["total"]["offered"] > 30_000
    assert rep["total"]["waiting_at_end"] == 0 and rep["replay"]["in_system_at_end"] == 0
    cal = r.engine.calendar
    # in every interval, most support calls are answered by the site where it is daytime
    checked = 0
    for row in rep["intervals"]:
        site = cal.preferred_site("support", row["start"] + 450)
        by_site = {s: d["answered"] for s, d in row.get("sites", {}).items()}
        total = sum(by_site.values())
        if site and total >= 40:
            assert by_site.get(site, 0) / total > 0.6, (row["start_iso"] if "start_iso" in row else row["start"], by_site)
            checked += 1
    assert checked > 300
    answered = rep["queues"]["support"]["answered_by_site"]
    assert set(answered) == {"manila", "krakow", "austin"} and min(answered.values()) > 5000


def test_follow_the_sun_week_closes_billing_outside_hours_and_never_leaves_a_contact_waiting(week):
    spec, scen, r, rep = week
    billing = rep["queues"]["billing"]
    assert billing["closed"] > 500
    # closing is not overflowing: billing has no max-wait rule
    assert billing["overflowed"] == 0
    assert billing["offered"] == billing["answered"] + billing["abandoned"] + billing["closed"]
    # no open queue was ever without someone on shift who could serve it
    cal = r.engine.calendar
    eligible = {r_.name: sorted({spec.agents[a.group].group for a in r.engine._pool(r_, len(r_.rings) - 1, None).agents})
                for r_ in r.engine.rules}
    gaps = cal.gaps(scen.start, scen.start + 7 * 86400, eligible)
    assert [g for g in gaps if g.kind == "uncovered"] == []


def test_adherence_in_observe_mode_compares_presence_with_the_schedule():
    eng = Engine(centre(), rng=Random(1), start=MON + 7 * H, calendar="observe")
    for a in eng.agent_list:  # everyone starts offline whatever the config says
        if a.presence != 0:
            feed(eng, MON + 7 * H, AgentLogout(agent=a.id))
    feed(eng, MON + 8.5 * H, AgentLogin(agent="n-1"))   # half an hour late
    feed(eng, MON + 9 * H, AgentLogin(agent="n-2"))     # an hour late
    feed(eng, MON + 10 * H)
    g = eng.report()["groups"]["n"]
    # from 08:00 to 10:00 both were scheduled (4 agent-hours); n-1 worked 1.5 h, n-2 1 h
    assert g["scheduled_s"] == pytest.approx(4 * H)
    assert g["adherent_s"] == pytest.approx(2.5 * H)
    assert g["adherence"] == pytest.approx(2.5 / 4)


def test_adherence_in_drive_mode_is_full_and_breaks_are_not_scheduled_work():
    eng = Engine(centre(), rng=Random(1), start=MON)
    feed(eng, MON + 14 * H)
    g = eng.report()["groups"]["n"]
    # 08:00-14:00 minus the 30-min lunch, for 2 agents
    assert g["scheduled_s"] == pytest.approx(2 * 5.5 * H)
    assert g["adherence"] == 1.0
