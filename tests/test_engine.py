"""Unit tests of the routing engine (``acd.core.engine``).

Every test drives a small, hand-built centre through ``helpers.Run``, which
checks ``Engine.check_invariants()`` after every step, and asserts the exact
agents, contacts and times of the decisions.  Tests marked
``xfail(strict=True, reason="BUG: ...")`` pin down bugs found while writing
them (see the reasons).
"""

from __future__ import annotations

import math
from collections import Counter
from random import Random

import pytest

from acd.core.engine import Engine
from acd.core.events import (
    AgentLogin, AgentLogout, AgentNotReady, AgentReady, AgentStateChanged, ContactAbandoned,
    ContactArrived, ContactCompleted, ContactConnected, ContactEnded, ContactEscalated,
    ContactOffered, ContactOverflowed, ContactQueued, ContactRequeued, CustomerAbandoned,
    InputRejected, OfferAccepted, OfferRejected, WrapUpDone,
)
from acd.core.spec import SpecErrors

from helpers import Run, kinds, make_spec, of, offered_to, offers, states

SUPPORT = {"name": "support", "skills": {"support": 1}}


def support_queue(**kw):
    return [{**SUPPORT, **kw}]


def agents(n, group="a", **kw):
    return [{"group": group, "count": n, "skills": {"support": 5}, **kw}]


# --------------------------------------------------------------------------- 1. lifecycle


def test_lifecycle_offer_accept_end_wrap_up_complete_then_next_contact():
    r = Run(support_queue(wrap_up=30, ring_timeout=15), agents(1), start=1000)

    out = r.arrive("c1", "support", 1000)
    assert of(out, ContactOffered) == [ContactOffered(
        time=1000, contact="c1", queue="support", agent="a-1", channel="voice", offer=1, timeout=15)]
    assert r.engine.next_deadline() == 1015  # the ring time-out
    assert r.agent_state("a-1") == "offered"

    out = r.arrive("c2", "support", 1002)
    assert out == [ContactQueued(time=1002, contact="c2", queue="support", priority=0.0)]

    out = r.accept("c1", 1005)
    assert of(out, ContactConnected) == [ContactConnected(
        time=1005, contact="c1", queue="support", agent="a-1", wait=5)]
    assert r.engine.next_deadline() is None  # ring time-out gone, c2 has no deadline

    out = r.end("c1", 1065)
    assert of(out, ContactCompleted) == []
    assert r.agent_state("a-1") == "wrap_up"
    assert r.engine.next_deadline() == 1095  # end of wrap-up

    assert r.advance(1094.9) == []
    out = r.advance(1095)
    assert of(out, ContactCompleted) == [ContactCompleted(
        time=1095, contact="c1", queue="support", agent="a-1", wait=5, talk=60, wrap_up=30)]
    # ready again and takes the waiting contact at once
    assert offers(out) == [("c2", "a-1")]
    assert of(out, ContactOffered)[0].time == 1095

    assert states(r.log, "a-1") == [
        ("ready", "offered"), ("offered", "busy"), ("busy", "wrap_up"), ("wrap_up", "offered")]
    assert kinds(r.log) == [
        "contact.offered", "agent.state", "contact.queued", "contact.connected", "agent.state",
        "agent.state", "contact.completed", "contact.offered", "agent.state"]


def test_without_wrap_up_the_contact_completes_when_it_ends_and_the_agent_is_ready():
    r = Run(support_queue(), agents(1))
    r.arrive("c1", "support", 0)
    r.accept("c1", 2)
    out = r.end("c1", 12)
    assert of(out, ContactCompleted) == [ContactCompleted(
        time=12, contact="c1", queue="support", agent="a-1", wait=2, talk=10, wrap_up=0)]
    assert states(out) == [("busy", "ready")]
    assert r.engine.next_deadline() is None


def test_wrap_up_done_ends_wrap_up_early():
    r = Run(support_queue(wrap_up=60), agents(1))
    r.arrive("c1", "support", 0)
    r.handle_fully("c1", 1, talk=9)
    out = r.wrap_up_done("a-1", 15)
    assert of(out, ContactCompleted)[0].wrap_up == 5
    assert states(out) == [("wrap_up", "ready")]
    assert r.engine.next_deadline() is None
    assert r.advance(100) == []  # the stale wrap-up deadline does nothing


# --------------------------------------------------------------------------- 2. strategies


def test_longest_idle_offers_to_the_agent_free_longest_ties_by_roster_order():
    r = Run(support_queue(strategy="longest-idle"), agents(3))
    assert offered_to(r.arrive("c1", "support", 10), "c1") == "a-1"  # all free since 0: roster
    r.accept("c1", 10)
    assert offered_to(r.arrive("c2", "support", 11), "c2") == "a-2"
    r.handle_fully("c2", 11, talk=9)  # a-2 free since 20
    r.end("c1", 30)  # a-1 free since 30
    assert offered_to(r.arrive("c3", "support", 40), "c3") == "a-3"  # free since 0
    assert offered_to(r.arrive("c4", "support", 41), "c4") == "a-2"  # since 20
    assert offered_to(r.arrive("c5", "support", 42), "c5") == "a-1"  # since 30


def test_most_skilled_offers_to_the_highest_level_ties_by_longest_idle():
    r = Run(support_queue(strategy="most-skilled"),
            [{"group": "low", "count": 1, "skills": {"support": 3}},
             {"group": "high", "count": 2, "skills": {"support": 7}}])
    # roster: low-1, high-1, high-2
    assert offered_to(r.arrive("c1", "support", 0), "c1") == "high-1"
    r.handle_fully("c1", 0, talk=10)  # high-1 free since 10, high-2 since 0
    assert offered_to(r.arrive("c2", "support", 20), "c2") == "high-2"
    # high-1 (7) beats low-1 (3) though low-1 is idle longer
    assert offered_to(r.arrive("c3", "support", 30), "c3") == "high-1"
    assert offered_to(r.arrive("c4", "support", 31), "c4") == "low-1"


def test_most_skilled_scores_the_sum_of_the_levels_in_the_queue_skills():
    r = Run([{"name": "q", "skills": {"support": 1, "billing": 1}, "strategy": "most-skilled"}],
            [{"group": "x", "count": 1, "skills": {"support": 9, "billing": 1}},   # 10
             {"group": "y", "count": 1, "skills": {"support": 6, "billing": 6}},   # 12
             {"group": "z", "count": 1, "skills": {"support": 10, "spanish": 10}}])  # no billing
    assert offered_to(r.arrive("c1", "q", 0), "c1") == "y-1"
    assert offered_to(r.arrive("c2", "q", 1), "c2") == "x-1"
    assert r.arrive("c3", "q", 2) == [ContactQueued(time=2, contact="c3", queue="q", priority=0.0)]


def test_round_robin_rotates_over_the_free_agents():
    r = Run(support_queue(strategy="round-robin"), agents(3))
    got = []
    for i in range(6):
        out = r.arrive(f"c{i}", "support", 10 * i)
        got.append(offered_to(out, f"c{i}"))
        r.handle_fully(f"c{i}", 10 * i, talk=1)
    assert got == ["a-1", "a-2", "a-3", "a-1", "a-2", "a-3"]
    # a-1 busy: the rotation skips it and comes back to it once free
    assert offered_to(r.arrive("x1", "support", 100), "x1") == "a-1"
    r.accept("x1", 100)
    assert offered_to(r.arrive("x2", "support", 101), "x2") == "a-2"
    r.handle_fully("x2", 101, talk=1)
    assert offered_to(r.arrive("x3", "support", 103), "x3") == "a-3"
    r.handle_fully("x3", 103, talk=1)
    assert offered_to(r.arrive("x4", "support", 105), "x4") == "a-2"
    r.handle_fully("x4", 105, talk=1)
    r.end("x1", 200)  # a-1 free again: offered least recently (x1), so next
    assert offered_to(r.arrive("x5", "support", 210), "x5") == "a-1"
    r.handle_fully("x5", 210, talk=1)
    assert offered_to(r.arrive("x6", "support", 220), "x6") == "a-3"


def test_round_robin_picks_the_agent_offered_least_recently_not_the_one_idle_longest():
    r = Run(support_queue(strategy="round-robin"), agents(3))
    r.arrive("c1", "support", 0)  # a-1: a long call
    r.accept("c1", 0)
    r.arrive("c2", "support", 1)
    r.handle_fully("c2", 1, talk=1)  # a-2 idle since 2
    r.arrive("c3", "support", 3)
    r.handle_fully("c3", 3, talk=1)  # a-3 idle since 4
    r.end("c1", 100)  # a-1 idle since 100, but offered least recently
    assert offered_to(r.arrive("c4", "support", 110), "c4") == "a-1"


def test_least_occupied_prefers_fewest_offers_this_interval_and_counts_restart():
    r = Run(support_queue(strategy="least-occupied"), agents(2), interval=100)
    assert offered_to(r.arrive("c1", "support", 0), "c1") == "a-1"
    r.accept("c1", 0)  # a-1 busy until 90: 1 offer
    for i, t in enumerate((1, 3, 5)):  # a-2 takes three short ones: 3 offers
        assert offered_to(r.arrive(f"s{i}", "support", t), f"s{i}") == "a-2"
        r.handle_fully(f"s{i}", t, talk=1)
    r.end("c1", 90)
    # a-2 idle since 6, a-1 since 90: a-1 has fewer offers this interval
    assert offered_to(r.arrive("c2", "support", 95), "c2") == "a-1"
    r.handle_fully("c2", 95, talk=1)  # a-1: 2 offers, idle since 96
    # next interval: counts are 0 again, so longest idle (a-2, since 6) wins
    assert offered_to(r.arrive("c3", "support", 150), "c3") == "a-2"


def test_longest_idle_would_have_chosen_differently_in_the_least_occupied_scenario():
    # the same moves as above under longest-idle: a-2 (idle since 6) gets c2
    r = Run(support_queue(strategy="longest-idle"), agents(2), interval=100)
    r.arrive("c1", "support", 0)
    r.accept("c1", 0)
    for i, t in enumerate((1, 3, 5)):
        r.arrive(f"s{i}", "support", t)
        r.handle_fully(f"s{i}", t, talk=1)
    r.end("c1", 90)
    assert offered_to(r.arrive("c2", "support", 95), "c2") == "a-2"


def _random_choices(seed: int, n: int, n_agents: int = 3) -> list[str]:
    r = Run(support_queue(strategy="random"), agents(n_agents), seed=seed)
    chosen = []
    for i in range(n):
        out = r.engine.handle(ContactArrived(contact=f"c{i}", queue="support"), float(i))
        chosen.append(offered_to(out, f"c{i}"))
        r.engine.handle(OfferAccepted(contact=f"c{i}"), float(i))
        r.engine.handle(ContactEnded(contact=f"c{i}"), i + 0.5)
        if i % 100 == 0:
            r.engine.check_invariants()
    return chosen


def test_random_is_reproducible_with_the_same_seed():
    assert _random_choices(7, 200) == _random_choices(7, 200)


def test_random_differs_between_seeds():
    a, b = _random_choices(1, 200), _random_choices(2, 200)
    assert a != b
    assert sum(x != y for x, y in zip(a, b)) > 50  # about 2/3 differ


def test_random_draws_every_free_agent_roughly_uniformly():
    n = 3000
    counts = Counter(_random_choices(11, n))
    assert set(counts) == {"a-1", "a-2", "a-3"}
    expected = n / 3
    chi2 = sum((c - expected) ** 2 / expected for c in counts.values())
    assert chi2 < 13.8  # 2 degrees of freedom, p = 0.001


def test_random_only_draws_among_free_agents():
    r = Run(support_queue(strategy="random"), agents(3), seed=3)
    r.arrive("c1", "support", 0)
    r.arrive("c2", "support", 0)
    busy = {offered_to(r.log, "c1"), offered_to(r.log, "c2")}
    (free,) = {"a-1", "a-2", "a-3"} - busy
    assert offered_to(r.arrive("c3", "support", 1), "c3") == free


# --------------------------------------------------------------------------- 3. priority


def _one_busy_agent(queues, **kw):
    """A centre with one agent, already busy with contact 'busy' at t=0."""
    r = Run(queues, agents(1), **kw)
    r.arrive("busy", queues[0]["name"], 0)
    r.accept("busy", 0)
    return r


def _serve_in_turn(r: Run, current: str, t: float, n: int) -> list[str]:
    """End ``current`` at t, then accept-and-end whatever is offered next, n times."""
    order = []
    for i in range(n):
        out = r.end(current, t + i)
        (current,) = [c for c, _ in offers(out)]
        order.append(current)
        r.accept(current, t + i)
    return order


def test_higher_priority_is_served_first_and_fifo_within_a_priority():
    r = _one_busy_agent(support_queue())
    for t, (cid, prio) in enumerate([("low1", 0), ("high1", 5), ("mid", 3), ("low2", 0), ("high2", 5)], 1):
        out = r.arrive(cid, "support", t, priority=prio)
        assert out == [ContactQueued(time=t, contact=cid, queue="support", priority=prio)]
    assert _serve_in_turn(r, "busy", 100, 5) == ["high1", "high2", "mid", "low1", "low2"]


def test_queue_priority_adds_to_the_contact_priority():
    r = Run([{"name": "q", "priority": 2.5}], agents(1, skills={}))
    r.arrive("busy", "q", 0)
    out = r.arrive("c1", "q", 1, priority=1)
    assert out == [ContactQueued(time=1, contact="c1", queue="q", priority=3.5)]


@pytest.mark.parametrize("t_new, first", [(99, "new"), (99.9, "new"), (100, "old"), (100.1, "old"), (101, "old")])
def test_aging_lets_an_old_low_priority_contact_stay_ahead_of_later_higher_priority(t_new, first):
    # aging 6 points/min = 0.1/s.  'old' (priority 0) waits from t=0; 'new'
    # (priority 10) arrives at t_new.  Effective priorities at any later time t:
    # old 0.1 t, new 10 + 0.1 (t - t_new): old is ahead iff t_new >= 100
    # (at exactly 100 they tie and the earlier arrival wins).
    r = _one_busy_agent([{"name": "q", "aging": 6}])
    r.arrive("old", "q", 0)
    r.arrive("new", "q", t_new, priority=10)
    assert _serve_in_turn(r, "busy", 300, 2)[0] == first


# --------------------------------------------------------------------------- 4. fairness across queues


def _two_queue_agent(q1=None, q2=None):
    queues = [{"name": "q1", "skills": {"s1": 1}, **(q1 or {})},
              {"name": "q2", "skills": {"s2": 1}, **(q2 or {})}]
    r = Run(queues, [{"group": "both", "count": 1, "skills": {"s1": 1, "s2": 1}}])
    r.arrive("busy", "q1", 0)
    r.accept("busy", 0)
    return r


def test_agent_in_two_queues_takes_best_head_by_priority_then_earliest_arrival():
    r = _two_queue_agent(q2={"priority": 2})
    r.arrive("a", "q1", 1)               # effective 0
    r.arrive("b", "q2", 2)               # 2 (queue priority)
    r.arrive("c", "q1", 3, priority=2)   # 2
    r.arrive("d", "q2", 4)               # 2
    r.arrive("e", "q1", 5, priority=3)   # 3
    assert _serve_in_turn(r, "busy", 100, 5) == ["e", "b", "c", "d", "a"]


def test_fair_order_across_queues_is_deterministic():
    def run():
        r = _two_queue_agent()
        for t in range(1, 9):
            r.arrive(f"c{t}", "q1" if t % 3 else "q2", t)
        return _serve_in_turn(r, "busy", 100, 8), r.log

    order1, log1 = run()
    order2, log2 = run()
    assert order1 == [f"c{t}" for t in range(1, 9)]  # equal priority: arrival order across queues
    assert log1 == log2


@pytest.mark.parametrize("t_free, first", [(49, "urgent"), (49.9, "urgent"), (50.1, "old"), (51, "old")])
def test_aging_in_one_queue_overtakes_a_higher_priority_head_of_another(t_free, first):
    # q2 ages 6 points/min (0.1/s): 'old' (priority 0, q2, t=0) reaches the
    # priority of 'urgent' (5, q1 without aging, t=0) at t=50.
    r = _two_queue_agent(q2={"aging": 6})
    r.arrive("old", "q2", 0)
    r.arrive("urgent", "q1", 0, priority=5)
    out = r.end("busy", t_free)
    assert offers(out) == [(first, "both-1")]


def test_overflowed_contact_keeps_its_arrival_order_in_the_new_queue():
    queues = [{"name": "q1", "skills": {"s1": 1}, "max_wait": 10, "overflow": "q2"},
              {"name": "q2", "skills": {"s2": 1}}]
    r = Run(queues, [{"group": "one", "count": 1, "skills": {"s1": 1}, "initial": "offline"},
                     {"group": "two", "count": 1, "skills": {"s2": 1}}])
    r.arrive("busy", "q2", 0)
    r.accept("busy", 0)
    r.arrive("x", "q1", 0)   # arrives in acd first
    r.arrive("y", "q2", 5)   # enters q2 first
    r.run_until(10)          # x overflows into q2
    out = r.end("busy", 20)
    assert offers(out) == [("x", "two-1")]


# --------------------------------------------------------------------------- 5. escalation


def _escalation_centre(**step):
    queues = [{"name": "vip", "skills": {"support": 5},
               "escalation": [{"after": 30, "skills": {"support": 2}, **step}]},
              {"name": "general", "skills": {"support": 1}}]
    return Run(queues, [{"group": "senior", "count": 1, "skills": {"support": 5}},
                        {"group": "junior", "count": 1, "skills": {"support": 2}}])


def test_escalation_widens_the_ring_at_exactly_after_seconds():
    r = _escalation_centre()
    r.arrive("s", "general", 0)  # the senior (first in roster) takes it
    r.accept("s", 0)  # senior busy, junior free but not level 5
    out = r.arrive("v", "vip", 3)
    assert out == [ContactQueued(time=3, contact="v", queue="vip", priority=0.0)]
    assert r.engine.next_deadline() == 33
    assert r.advance(32.999) == []
    out = r.advance(40)
    assert out[:2] == [
        ContactEscalated(time=33, contact="v", queue="vip", step=1),
        ContactOffered(time=33, contact="v", queue="vip", agent="junior-1", channel="voice", offer=1,
                       timeout=20),
    ]


def test_escalation_does_not_happen_when_answered_before_the_step():
    r = _escalation_centre()
    r.arrive("s", "general", 0)  # the senior (first in roster) takes it
    r.accept("s", 0)
    r.arrive("v", "vip", 3)
    out = r.end("s", 20)
    assert offers(out) == [("v", "senior-1")]
    r.accept("v", 21)
    assert of(r.run_until(100), ContactEscalated) == []


def test_escalation_step_priority_is_added_to_the_contact():
    r = _escalation_centre(priority=10)
    r.arrive("s", "general", 0)  # the senior (first in roster) takes it
    r.accept("s", 0)
    r.arrive("j", "general", 1)
    r.accept("j", 1)  # junior busy too
    r.arrive("gen", "general", 2, priority=5)
    r.arrive("v", "vip", 3)
    assert of(r.run_until(33), ContactEscalated) == [ContactEscalated(time=33, contact="v", queue="vip", step=1)]
    # the junior frees: v (0 + 10) beats gen (5), which arrived earlier
    out = r.end("j", 40)
    assert offers(out) == [("v", "junior-1")]


def test_without_step_priority_the_escalated_contact_keeps_its_place():
    r = _escalation_centre()
    r.arrive("s", "general", 0)  # the senior (first in roster) takes it
    r.accept("s", 0)
    r.arrive("j", "general", 1)
    r.accept("j", 1)
    r.arrive("gen", "general", 2, priority=5)
    r.arrive("v", "vip", 3)
    r.run_until(33)
    assert offers(r.end("j", 40)) == [("gen", "junior-1")]


def test_escalation_step_with_a_target_expression_adds_exactly_the_matching_agents():
    queues = [{"name": "billing", "skills": {"billing": 4},
               "escalation": [{"after": 20, "target": "billing >= 1 and lang == 'en'"}]}]
    r = Run(queues, [{"group": "fr", "count": 1, "skills": {"billing": 2}, "attributes": {"lang": "fr"}},
                     {"group": "en", "count": 1, "skills": {"billing": 2}, "attributes": {"lang": "en"}},
                     {"group": "none", "count": 1, "skills": {"support": 9}, "attributes": {"lang": "en"}}])
    r.arrive("c1", "billing", 0)
    out = r.run_until(20)
    assert out[0] == ContactEscalated(time=20, contact="c1", queue="billing", step=1)
    assert offers(out) == [("c1", "en-1")]
    r.accept("c1", 20)
    r.arrive("c2", "billing", 21)
    assert r.run_until(41)[-1] == ContactEscalated(time=41, contact="c2", queue="billing", step=1)
    assert r.waiting("billing") == 1  # fr-1 and none-1 never qualify


def test_second_escalation_step_widens_further():
    queues = [{"name": "q", "skills": {"support": 9},
               "escalation": [{"after": 10, "skills": {"support": 5}},
                              {"after": 25, "skills": {"support": 1}}]}]
    r = Run(queues, [{"group": "low", "count": 1, "skills": {"support": 1}},
                     {"group": "mid", "count": 1, "skills": {"support": 5}, "initial": "offline"}])
    r.arrive("c1", "q", 0)
    out = r.run_until(24)
    assert out == [ContactEscalated(time=10, contact="c1", queue="q", step=1)]
    out = r.run_until(25)
    assert out[0] == ContactEscalated(time=25, contact="c1", queue="q", step=2)
    assert offers(out) == [("c1", "low-1")]


def test_escalation_reached_while_ringing_is_announced_on_requeue():
    queues = [{"name": "vip", "skills": {"support": 5}, "ring_timeout": 40,
               "escalation": [{"after": 30, "skills": {"support": 2}}]}]
    r = Run(queues, [{"group": "senior", "count": 1, "skills": {"support": 5}},
                     {"group": "junior", "count": 1, "skills": {"support": 2}}])
    r.arrive("v", "vip", 0)  # rings the senior; step 1 is due at 30
    out = r.run_until(40)    # ring time-out at 40: back in the queue, now at step 1
    assert offers(out) == [("v", "junior-1")]  # it did reach step 1 ...
    assert ContactEscalated(time=40, contact="v", queue="vip", step=1) in out  # ... but says nothing


# --------------------------------------------------------------------------- 6. overflow


def _overflow_centre(sales_overflow="support"):
    queues = [{"name": "sales", "skills": {"sales": 1}, "max_wait": 60,
               **({"overflow": sales_overflow} if sales_overflow else {})},
              {"name": "support", "skills": {"support": 1}}]
    return Run(queues, [{"group": "s", "count": 1, "skills": {"sales": 5}, "initial": "offline"},
                        {"group": "p", "count": 1, "skills": {"support": 5}}])


def test_overflow_moves_the_contact_at_entered_plus_max_wait_and_it_is_answered_there():
    r = _overflow_centre()
    r.arrive("c1", "sales", 10)
    assert r.engine.next_deadline() == 70
    assert r.advance(69.9) == []
    out = r.advance(70)
    assert out[:2] == [
        ContactOverflowed(time=70, contact="c1", queue="sales", to_queue="support", reason="max_wait", wait=60),
        ContactOffered(time=70, contact="c1", queue="support", agent="p-1", channel="voice", offer=1, timeout=20),
    ]
    out = r.accept("c1", 75, agent="p-1")
    assert of(out, ContactConnected) == [ContactConnected(time=75, contact="c1", queue="support", agent="p-1",
                                                          wait=65)]
    r.end("c1", 100)
    rep = r.engine.report(intervals=False)
    assert (rep["queues"]["sales"]["offered"], rep["queues"]["sales"]["overflowed"],
            rep["queues"]["sales"]["answered"]) == (1, 1, 0)
    assert (rep["queues"]["support"]["offered"], rep["queues"]["support"]["answered"]) == (1, 1)
    total = rep["total"]
    assert (total["offered"], total["answered"], total["overflowed"], total["waiting_at_end"]) == (1, 1, 0, 0)
    assert total["p_wait"] == 1.0  # one contact that waited, counted once


def test_overflowed_contact_queues_in_the_target_when_nobody_is_free_and_gets_its_max_wait_there():
    queues = [{"name": "q1", "max_wait": 60, "overflow": "q2"},
              {"name": "q2", "max_wait": 30}]
    r = Run(queues, [{"group": "a", "count": 1, "initial": "offline"}])
    r.arrive("c1", "q1", 0)
    out = r.run_until(60)
    assert out == [
        ContactOverflowed(time=60, contact="c1", queue="q1", to_queue="q2", reason="max_wait", wait=60),
        ContactQueued(time=60, contact="c1", queue="q2", priority=0.0),
    ]
    out = r.run_until(200)
    assert out == [ContactOverflowed(time=90, contact="c1", queue="q2", to_queue=None, reason="max_wait", wait=90)]


def test_max_wait_without_overflow_takes_the_contact_out_of_the_system():
    r = _overflow_centre(sales_overflow=None)
    r.arrive("c1", "sales", 0)
    out = r.run_until(100)
    assert out == [ContactOverflowed(time=60, contact="c1", queue="sales", to_queue=None, reason="max_wait",
                                     wait=60)]
    assert "c1" not in r.engine.contacts
    out = r.abandon("c1", 100)
    assert out == [InputRejected(time=100, event="contact.abandoned", reason="unknown contact 'c1'", contact="c1")]
    sales = r.engine.report(intervals=False)["queues"]["sales"]
    assert (sales["offered"], sales["overflowed"], sales["waiting_at_end"], sales["p_wait"]) == (1, 1, 0, 1.0)


def test_max_wait_reached_while_ringing_overflows_when_the_offer_fails():
    queues = [{"name": "q1", "skills": {"support": 1}, "max_wait": 30, "overflow": "q2", "ring_timeout": 20},
              {"name": "q2", "skills": {"other": 1}}]
    r = Run(queues, agents(1) + [{"group": "b", "count": 1, "skills": {"other": 1}}])
    r.arrive("busy", "q1", 0)  # a-1 busy
    r.accept("busy", 0)
    r.arrive("c1", "q1", 10)  # waits; a-1 frees at 35 and rings until 55
    out = r.end("busy", 35)
    assert offers(out) == [("c1", "a-1")]
    out = r.run_until(60)
    assert out[:3] == [
        ContactRequeued(time=55, contact="c1", queue="q1", agent="a-1", reason="timeout"),
        ContactOverflowed(time=55, contact="c1", queue="q1", to_queue="q2", reason="max_wait", wait=45),
        ContactOffered(time=55, contact="c1", queue="q2", agent="b-1", channel="voice", offer=2, timeout=20),
    ]


def test_connected_contact_does_not_overflow():
    r = _overflow_centre()
    r.login("s-1", 0)
    r.arrive("c1", "sales", 0)
    r.accept("c1", 5)
    assert of(r.run_until(200), ContactOverflowed) == []
    assert r.engine.contacts["c1"].agent.id == "s-1"


# --------------------------------------------------------------------------- 7. offer failures


def test_ring_timeout_requeues_at_the_head_and_not_to_the_agent_that_missed_it():
    r = Run(support_queue(ring_timeout=10), agents(2))
    assert offered_to(r.arrive("c1", "support", 0), "c1") == "a-1"
    assert offered_to(r.arrive("c2", "support", 1), "c2") == "a-2"
    r.arrive("c3", "support", 2)
    r.arrive("c4", "support", 3)
    r.accept("c2", 3)
    out = r.advance(10)
    # c1 goes back ahead of c3 and c4; a-1 may not have it again, so takes c3
    assert out[0] == ContactRequeued(time=10, contact="c1", queue="support", agent="a-1", reason="timeout")
    assert offers(out) == [("c3", "a-1")]
    assert states(out) == []  # a-1 stays 'offered'
    r.accept("c3", 11)
    # a-2 frees: c1 (head, arrived 0) before c4 (arrived 3)
    out = r.end("c2", 20)
    assert offers(out) == [("c1", "a-2")]
    assert of(out, ContactOffered)[0].offer == 2


def test_missing_max_missed_offers_in_a_row_makes_the_agent_not_ready():
    r = Run(support_queue(ring_timeout=10), agents(1, max_missed_offers=2) + agents(1, group="b", initial="offline"))
    r.arrive("c1", "support", 0)
    r.arrive("c2", "support", 1)
    out = r.run_until(10)
    assert offers(out) == [("c2", "a-1")]  # first miss: still ready
    out = r.run_until(20)
    assert out == [
        ContactRequeued(time=20, contact="c2", queue="support", agent="a-1", reason="timeout"),
        AgentStateChanged(time=20, agent="a-1", state="not_ready", previous="offered", reason="missed_offers"),
    ]
    assert r.engine.snapshot()["agents"]["a-1"]["reason"] == "missed_offers"
    # both contacts wait for someone else, in arrival order
    out = r.login("b-1", 30)
    assert offers(out) == [("c1", "b-1")]


def test_accepted_offer_resets_the_missed_offer_count():
    r = Run(support_queue(ring_timeout=10), agents(1, max_missed_offers=2))
    r.arrive("c1", "support", 0)
    r.arrive("c2", "support", 0)
    r.run_until(10)       # miss 1 (c1); c2 offered
    r.handle_fully("c2", 12, talk=1)  # accepted: count back to 0
    r.arrive("c3", "support", 20)
    out = r.run_until(30)  # miss 1 again, not 2
    assert out == [ContactRequeued(time=30, contact="c3", queue="support", agent="a-1", reason="timeout"),
                   AgentStateChanged(time=30, agent="a-1", state="ready", previous="offered")]


def test_rejection_requeues_excludes_the_agent_and_counts_as_a_miss():
    r = Run(support_queue(), agents(1, max_missed_offers=2) + agents(1, group="b", initial="offline"))
    r.arrive("c1", "support", 0)
    out = r.reject("c1", 2, agent="a-1", reason="busy elsewhere")
    assert out == [ContactRequeued(time=2, contact="c1", queue="support", agent="a-1", reason="busy elsewhere"),
                   AgentStateChanged(time=2, agent="a-1", state="ready", previous="offered")]
    assert r.waiting("support") == 1
    r.arrive("c2", "support", 3)
    out = r.reject("c2", 4)
    assert of(out, ContactRequeued)[0].reason == "rejected"
    assert states(out) == [("offered", "not_ready")]
    assert r.engine.snapshot()["agents"]["a-1"]["reason"] == "missed_offers"
    assert offers(r.login("b-1", 5)) == [("c1", "b-1")]


def test_accept_at_exactly_the_ring_timeout_is_too_late():
    # deadlines due at or before `now` run before the event
    r = Run(support_queue(ring_timeout=10), agents(1))
    r.arrive("c1", "support", 0)
    out = r.accept("c1", 10)
    assert out == [
        ContactRequeued(time=10, contact="c1", queue="support", agent="a-1", reason="timeout"),
        AgentStateChanged(time=10, agent="a-1", state="ready", previous="offered"),
        InputRejected(time=10, event="offer.accepted", reason="contact 'c1' is waiting", contact="c1"),
    ]


def test_agent_made_not_ready_for_missed_offers_loses_its_other_ringing_offers():
    queues = [{"name": "chat", "channel": "chat", "ring_timeout": 10}, {"name": "voice"}]
    r = Run(queues, [{"group": "b", "count": 1}, {"group": "a", "count": 1}])
    r.arrive("call", "voice", 0)  # b-1 on a call: no chats for it yet
    r.accept("call", 0)
    for cid, t in (("x0", 0), ("x1", 1), ("x2", 9)):
        assert offers(r.arrive(cid, "chat", t)) == [(cid, "a-1")]
    r.end("call", 10.5)  # b-1 free for chats; x0 timed out at 10 and went to b-1
    out = r.run_until(11)  # x1 times out: second miss, a-1 is not ready now
    assert r.engine.agents["a-1"].reason == "missed_offers"
    # so x2 should not keep ringing a-1 until 19 while b-1 has room
    assert ContactRequeued(time=11, contact="x2", queue="chat", agent="a-1", reason="withdrawn") in out
    assert ("x2", "b-1") in offers(out)
    assert states(out, "a-1") == [("offered", "not_ready")]


def test_ringing_time_counts_as_wait():
    r = Run(support_queue(ring_timeout=10, service_level={"threshold": 15}), agents(2))
    r.arrive("c1", "support", 0)
    r.run_until(10)  # a-1 misses; a-2 rings from 10
    out = r.accept("c1", 18, agent="a-2")
    assert of(out, ContactConnected)[0].wait == 18
    assert r.engine.report(intervals=False)["total"]["service_level"] == 0.0


# --------------------------------------------------------------------------- 8. abandonment


def test_abandon_while_waiting():
    r = Run(support_queue(), agents(1))
    r.arrive("busy", "support", 0)
    r.arrive("c1", "support", 5)
    out = r.abandon("c1", 17)
    assert out == [ContactAbandoned(time=17, contact="c1", queue="support", wait=12)]
    assert r.waiting("support") == 0
    assert "c1" not in r.engine.contacts


def test_abandon_while_offered_frees_the_agent_for_the_next_waiting_contact():
    r = Run(support_queue(ring_timeout=30), agents(1))
    r.arrive("c1", "support", 0)
    r.arrive("c2", "support", 1)
    out = r.abandon("c1", 4)
    assert out == [
        ContactAbandoned(time=4, contact="c1", queue="support", wait=4),
        ContactOffered(time=4, contact="c2", queue="support", agent="a-1", channel="voice", offer=1, timeout=30),
    ]
    assert r.agent_state("a-1") == "offered"
    assert r.engine.next_deadline() == 34  # c1's ring time-out (30) is dead
    r.accept("c2", 5)
    # the abandon is not a miss: a-1 never becomes not ready
    assert of(r.run_until(100), AgentStateChanged) == []


def test_abandon_while_offered_leaves_the_agent_ready_when_nobody_waits():
    r = Run(support_queue(), agents(1))
    r.arrive("c1", "support", 0)
    out = r.abandon("c1", 4)
    assert states(out) == [("offered", "ready")]
    assert r.advance(100) == []


def test_abandon_of_a_connected_contact_is_rejected_and_changes_nothing():
    r = Run(support_queue(), agents(1))
    r.arrive("c1", "support", 0)
    r.accept("c1", 1)
    before = r.engine.snapshot()
    out = r.abandon("c1", 1)
    assert out == [InputRejected(time=1, event="contact.abandoned", reason="contact 'c1' is connected",
                                 contact="c1")]
    assert r.engine.snapshot() == before
    assert r.engine.report()["rejected_inputs"] == {"contact.abandoned": 1}
    assert r.engine.report(intervals=False)["total"]["abandoned"] == 0


# --------------------------------------------------------------------------- 9. channels and capacity


def _chat_centre(**group):
    queues = [{"name": "chat", "channel": "chat", "skills": {"support": 1}},
              {"name": "voice", "channel": "voice", "skills": {"support": 1}}]
    return Run(queues, agents(1, **group))


def test_chat_capacity_three_takes_three_chats_at_once_not_four():
    r = _chat_centre()
    for i in range(3):
        assert offers(r.arrive(f"ch{i}", "chat", i, channel="chat")) == [(f"ch{i}", "a-1")]
    assert r.arrive("ch3", "chat", 3) == [ContactQueued(time=3, contact="ch3", queue="chat", priority=0.0)]
    for i in range(3):
        r.accept(f"ch{i}", 4)
    out = r.end("ch1", 10)
    assert offers(out) == [("ch3", "a-1")]


def test_voice_blocks_chat_by_default():
    r = _chat_centre()
    r.arrive("call", "voice", 0)
    r.accept("call", 1)
    out = r.arrive("ch1", "chat", 2)
    assert out == [ContactQueued(time=2, contact="ch1", queue="chat", priority=0.0)]
    out = r.end("call", 10)
    assert offers(out) == [("ch1", "a-1")]


def test_a_ringing_call_blocks_chat_too():
    r = _chat_centre()
    r.arrive("call", "voice", 0)
    assert of(r.arrive("ch1", "chat", 1), ContactQueued)
    out = r.reject("call", 2)  # freed (and call waits for someone else): the chat goes now
    assert offers(out) == [("ch1", "a-1")]


def test_chats_do_not_block_voice():
    r = _chat_centre()
    for i in range(3):
        r.arrive(f"ch{i}", "chat", i)
        r.accept(f"ch{i}", i)
    out = r.arrive("call", "voice", 5)
    assert offers(out) == [("call", "a-1")]
    assert r.engine.snapshot()["agents"]["a-1"]["contacts"] == ["call", "ch0", "ch1", "ch2"]


def test_chat_backlog_does_not_lock_out_a_waiting_call():
    r = _chat_centre()
    r.arrive("call0", "voice", 0)
    r.accept("call0", 0)
    r.arrive("ch0", "chat", 1)   # waits: voice blocks chat
    r.arrive("call1", "voice", 2)
    out = r.end("call0", 10)
    # ch0 arrived first, so it is offered first; chats never block voice, so
    # the call is offered too, and no more chats while it rings
    assert offers(out) == [("ch0", "a-1"), ("call1", "a-1")]


def test_custom_blocking_chat_blocks_voice_and_voice_does_not_block_chat():
    r = _chat_centre(blocking={"chat": ["voice"]})
    r.arrive("call", "voice", 0)
    r.accept("call", 0)
    assert offers(r.arrive("ch1", "chat", 1)) == [("ch1", "a-1")]  # voice no longer blocks chat
    r.accept("ch1", 1)
    r.end("call", 5)
    out = r.arrive("call2", "voice", 6)
    assert out == [ContactQueued(time=6, contact="call2", queue="voice", priority=0.0)]  # chat blocks voice
    out = r.end("ch1", 7)
    assert offers(out) == [("call2", "a-1")]


def test_capacity_zero_channel_is_never_offered():
    queues = [{"name": "chat", "channel": "chat", "skills": {"support": 1}}]
    r = Run(queues, [{"group": "nochat", "count": 1, "skills": {"support": 9}, "capacity": {"chat": 0}},
                     {"group": "chat", "count": 1, "skills": {"support": 1}, "capacity": {"chat": 1}}])
    assert offers(r.arrive("ch1", "chat", 0)) == [("ch1", "chat-1")]
    # nochat-1 is free, first in the roster and the most skilled, yet ch2 waits
    assert of(r.arrive("ch2", "chat", 1), ContactQueued)
    r.accept("ch1", 2)
    assert offers(r.end("ch1", 3)) == [("ch2", "chat-1")]
    assert "nochat-1" not in {a for _, a in offers(r.log)}


def test_email_capacity_and_channel_independence():
    queues = [{"name": "mail", "channel": "email"}, {"name": "chat", "channel": "chat"}]
    r = Run(queues, [{"group": "a", "count": 1, "capacity": {"email": 2, "chat": 1}}])
    assert offers(r.arrive("m1", "mail", 0)) == [("m1", "a-1")]
    assert offers(r.arrive("m2", "mail", 0)) == [("m2", "a-1")]
    assert of(r.arrive("m3", "mail", 0), ContactQueued)
    assert offers(r.arrive("ch1", "chat", 0)) == [("ch1", "a-1")]  # email does not block chat


# --------------------------------------------------------------------------- 10. presence


def test_login_logout_ready_not_ready_transitions():
    r = Run(support_queue(), agents(1, initial="offline"))
    assert r.agent_state("a-1") == "offline"
    assert states(r.login("a-1", 1)) == [("offline", "ready")]
    out = r.not_ready("a-1", 2, reason="lunch")
    assert out == [AgentStateChanged(time=2, agent="a-1", state="not_ready", previous="ready", reason="lunch")]
    assert r.engine.snapshot()["agents"]["a-1"]["reason"] == "lunch"
    assert states(r.ready("a-1", 3)) == [("not_ready", "ready")]
    assert r.ready("a-1", 4) == []  # ready while ready: nothing to say
    assert states(r.logout("a-1", 5)) == [("ready", "offline")]
    out = r.login("a-1", 6, reason="meeting")
    assert out == [AgentStateChanged(time=6, agent="a-1", state="not_ready", previous="offline", reason="meeting")]
    assert states(r.logout("a-1", 7)) == [("not_ready", "offline")]
    assert r.engine.report()["rejected_inputs"] == {}


@pytest.mark.parametrize("initial, event, reason", [
    ("ready", AgentLogin(agent="a-1"), "agent is already logged in"),
    ("not_ready", AgentLogin(agent="a-1"), "agent is already logged in"),
    ("offline", AgentReady(agent="a-1"), "agent is offline; log in first"),
    ("offline", AgentNotReady(agent="a-1"), "agent is offline; log in first"),
    ("offline", AgentLogout(agent="a-1"), "agent is already logged out"),
])
def test_refused_presence_changes(initial, event, reason):
    r = Run(support_queue(), agents(1, initial=initial))
    before = r.engine.snapshot()
    out = r.send(event, 0)
    tag = type(event).__struct_config__.tag
    assert out == [InputRejected(time=0, event=tag, reason=reason, agent="a-1")]
    assert r.engine.snapshot() == before
    assert r.engine.report()["rejected_inputs"] == {tag: 1}


def test_not_ready_during_a_call_shows_busy_then_not_ready_and_gets_no_new_offers():
    r = Run(support_queue(wrap_up=10), agents(1))
    r.arrive("c1", "support", 0)
    r.accept("c1", 1)
    assert r.not_ready("a-1", 2, reason="break") == []  # still busy: no visible change
    r.arrive("c2", "support", 3)
    r.end("c1", 20)
    out = r.run_until(30)
    assert out == [
        ContactCompleted(time=30, contact="c1", queue="support", agent="a-1", wait=1, talk=19, wrap_up=10),
        AgentStateChanged(time=30, agent="a-1", state="not_ready", previous="wrap_up", reason="break"),
    ]
    assert r.waiting("support") == 1
    assert offers(r.ready("a-1", 40)) == [("c2", "a-1")]


def test_logout_with_a_ringing_offer_withdraws_it_to_another_agent():
    r = Run(support_queue(), agents(2))
    r.arrive("c1", "support", 0)
    r.arrive("c2", "support", 0)  # a-2 busy with c2
    r.accept("c2", 0)
    r.arrive("c3", "support", 1)  # waits
    out = r.logout("a-1", 2)
    assert out[0] == ContactRequeued(time=2, contact="c1", queue="support", agent="a-1", reason="withdrawn")
    assert states(out, "a-1") == [("offered", "offline")]
    assert r.waiting("support") == 2
    out = r.end("c2", 5)
    assert offers(out) == [("c1", "a-2")]  # c1 kept its place ahead of c3
    # withdrawn is not a miss and does not exclude a-1
    assert offers(r.login("a-1", 6)) == [("c3", "a-1")]


def test_not_ready_with_a_ringing_offer_withdraws_it():
    r = Run(support_queue(), agents(2))
    r.arrive("c1", "support", 0)
    out = r.not_ready("a-1", 1)
    assert out == [
        ContactRequeued(time=1, contact="c1", queue="support", agent="a-1", reason="withdrawn"),
        AgentStateChanged(time=1, agent="a-1", state="not_ready", previous="offered", reason="break"),
        ContactOffered(time=1, contact="c1", queue="support", agent="a-2", channel="voice", offer=2, timeout=20),
        AgentStateChanged(time=1, agent="a-2", state="offered", previous="ready"),
    ]


def test_logout_during_a_call_finishes_the_call_then_offline():
    r = Run(support_queue(), agents(1))
    r.arrive("c1", "support", 0)
    r.accept("c1", 0)
    assert r.logout("a-1", 5) == []
    r.arrive("c2", "support", 6)
    out = r.end("c1", 10)
    assert states(out) == [("busy", "offline")]
    assert r.waiting("support") == 1


def test_login_gives_the_agent_the_waiting_contact_at_once():
    r = Run(support_queue(), agents(1, initial="offline"))
    r.arrive("c1", "support", 0)
    out = r.login("a-1", 9)
    assert offers(out) == [("c1", "a-1")]
    assert states(out) == [("offline", "offered")]


# --------------------------------------------------------------------------- 11. bad input


def _bad_input_centre():
    queues = [{"name": "support", "skills": {"support": 1}},
              {"name": "chat", "channel": "chat", "skills": {"support": 1}}]
    r = Run(queues, agents(2))
    r.arrive("c1", "support", 0)   # offered to a-1
    r.arrive("c2", "support", 0)   # a-2, connected
    r.accept("c2", 0)
    r.arrive("c3", "support", 0)   # waiting
    return r


@pytest.mark.parametrize("event, reason, contact, agent", [
    (ContactArrived(contact="x", queue="sales"), "unknown queue 'sales'", "x", None),
    (ContactArrived(contact="c3", queue="support"), "contact 'c3' is already in the system", "c3", None),
    (ContactArrived(contact="x", queue="support", channel="chat"), "queue 'support' takes voice, not chat", "x",
     None),
    (ContactArrived(contact="x", queue="support", skills={"klingon": 2}), "unknown skill 'klingon' (no agent has it)",
     "x", None),
    (ContactArrived(contact="x", queue="support", priority=math.nan), "priority must be finite, got nan", "x", None),
    (OfferAccepted(contact="nope"), "unknown contact 'nope'", "nope", None),
    (OfferAccepted(contact="c1", agent="a-2"), "contact 'c1' is offered to 'a-1', not 'a-2'", "c1", "a-2"),
    (OfferAccepted(contact="c3"), "contact 'c3' is waiting", "c3", None),
    (OfferAccepted(contact="c2"), "contact 'c2' is connected", "c2", None),
    (OfferRejected(contact="c1", agent="ghost"), "contact 'c1' is offered to 'a-1', not 'ghost'", "c1", "ghost"),
    (OfferRejected(contact="c3"), "contact 'c3' is waiting", "c3", None),
    (ContactEnded(contact="c1"), "contact 'c1' is offered", "c1", None),
    (ContactEnded(contact="nope"), "unknown contact 'nope'", "nope", None),
    (CustomerAbandoned(contact="c2"), "contact 'c2' is connected", "c2", None),
    (CustomerAbandoned(contact="nope"), "unknown contact 'nope'", "nope", None),
    (AgentReady(agent="ghost"), "unknown agent 'ghost'", None, "ghost"),
    (AgentLogin(agent="ghost"), "unknown agent 'ghost'", None, "ghost"),
    (AgentLogout(agent="ghost"), "unknown agent 'ghost'", None, "ghost"),
    (AgentNotReady(agent="ghost"), "unknown agent 'ghost'", None, "ghost"),
    (WrapUpDone(agent="ghost"), "unknown agent 'ghost'", None, "ghost"),
    (WrapUpDone(agent="a-2"), "agent 'a-2' is not in wrap-up for any contact", None, "a-2"),
    (WrapUpDone(agent="a-2", contact="c2"), "agent 'a-2' is not in wrap-up for contact 'c2'", "c2", "a-2"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_rejected_with_a_reason_and_changes_nothing(event, reason, contact, agent):
    r = _bad_input_centre()
    before = r.engine.snapshot()
    deadline = r.engine.next_deadline()
    out = r.send(event, 0)
    tag = type(event).__struct_config__.tag
    assert out == [InputRejected(time=0, event=tag, reason=reason, contact=contact, agent=agent)]
    assert r.engine.snapshot() == before
    assert r.engine.next_deadline() == deadline
    assert r.engine.report()["rejected_inputs"] == {tag: 1}
    assert r.engine.report(intervals=False)["total"]["offered"] == 3


def test_rejected_inputs_are_counted_per_event_type():
    r = _bad_input_centre()
    r.send(OfferAccepted(contact="nope"), 0)
    r.send(OfferAccepted(contact="nope2"), 0)
    r.send(AgentReady(agent="ghost"), 0)
    assert r.engine.report()["rejected_inputs"] == {"agent.ready": 1, "offer.accepted": 2}


def test_time_going_backwards_raises_and_changes_nothing():
    r = _bad_input_centre()
    r.advance(5)
    before = r.engine.snapshot()
    with pytest.raises(ValueError, match="time went backwards"):
        r.engine.handle(OfferAccepted(contact="c1"), 4.9)
    with pytest.raises(ValueError, match="time went backwards"):
        r.engine.advance(4)
    with pytest.raises(ValueError, match="time must be finite"):
        r.engine.handle(OfferAccepted(contact="c1"), math.nan)
    assert r.engine.snapshot() == before
    r.engine.check_invariants()
    assert r.engine.report()["rejected_inputs"] == {}


def test_engine_refuses_a_non_finite_start():
    with pytest.raises(ValueError, match="finite"):
        Engine(make_spec([SUPPORT], agents(1)), start=math.inf)


def test_non_event_raises_before_anything_happens():
    r = Run(support_queue(ring_timeout=10), agents(1))
    r.arrive("c1", "support", 0)
    before = r.engine.snapshot()
    with pytest.raises(TypeError):
        r.engine.handle({"type": "offer.accepted", "contact": "c1"}, 20)
    assert r.engine.snapshot() == before  # c1 must still ring a-1, unseen time-out not run


def test_infinite_time_is_refused_without_changing_state():
    r = Run(support_queue(ring_timeout=10), agents(1))
    r.arrive("c1", "support", 0)
    before = r.engine.snapshot()
    with pytest.raises(ValueError):
        r.engine.handle(ContactArrived(contact="c2", queue="support"), math.inf)
    assert r.engine.snapshot() == before


# --------------------------------------------------------------------------- 12. contact-required skills


def test_contact_required_skills_only_offer_to_agents_with_that_level():
    r = Run(support_queue(), [{"group": "es1", "count": 1, "skills": {"support": 5, "spanish": 2}},
                              {"group": "es4", "count": 1, "skills": {"support": 5, "spanish": 4}},
                              {"group": "en", "count": 1, "skills": {"support": 5}}])
    assert offers(r.arrive("c1", "support", 0, skills={"spanish": 3})) == [("c1", "es4-1")]
    out = r.arrive("c2", "support", 1, skills={"spanish": 3})
    assert out == [ContactQueued(time=1, contact="c2", queue="support", priority=0.0)]
    # es1-1 and en-1 are free but not eligible; a plain contact takes es1-1 (roster)
    assert offers(r.arrive("c3", "support", 2)) == [("c3", "es1-1")]
    r.accept("c1", 3)
    assert offers(r.end("c1", 9)) == [("c2", "es4-1")]


def test_contact_required_skills_combine_with_the_queue_skills():
    r = Run(support_queue(), [{"group": "x", "count": 1, "skills": {"spanish": 5}},            # no support
                              {"group": "y", "count": 1, "skills": {"spanish": 5, "support": 1}}])
    assert offers(r.arrive("c1", "support", 0, skills={"spanish": 1})) == [("c1", "y-1")]


# --------------------------------------------------------------------------- 13. skill expressions


def test_skill_expression_target_selects_exactly_the_right_agents():
    queues = [{"name": "q", "target": "support >= 3 and (english or spanish) and not trainee"}]
    groups = [
        {"group": "a", "count": 1, "skills": {"support": 5, "english": 3}},                                # yes
        {"group": "b", "count": 1, "skills": {"support": 5, "spanish": 2}, "attributes": {"trainee": True}},  # no
        {"group": "c", "count": 1, "skills": {"support": 2, "english": 5}},                                # no
        {"group": "d", "count": 1, "skills": {"support": 3, "spanish": 1}, "attributes": {"trainee": False}},  # yes
        {"group": "e", "count": 1, "skills": {"support": 4}},                                              # no
    ]
    r = Run(queues, groups)
    for i in range(5):
        r.arrive(f"c{i}", "q", i)
    assert offers(r.log) == [("c0", "a-1"), ("c1", "d-1")]
    assert r.waiting("q") == 3


def test_skill_expression_with_string_attributes_and_numbers():
    queues = [{"name": "q", "skills": {"support": 1}, "target": "site == 'paris' or tenure > 2"}]
    groups = [
        {"group": "p", "count": 1, "skills": {"support": 1}, "attributes": {"site": "paris", "tenure": 1}},
        {"group": "l", "count": 1, "skills": {"support": 1}, "attributes": {"site": "lyon", "tenure": 1}},
        {"group": "v", "count": 1, "skills": {"support": 1}, "attributes": {"site": "lyon", "tenure": 5}},
        {"group": "n", "count": 1, "skills": {"support": 1}},  # no attributes: not matched
    ]
    r = Run(queues, groups)
    for i in range(4):
        r.arrive(f"c{i}", "q", i)
    assert offers(r.log) == [("c0", "p-1"), ("c1", "v-1")]


# --------------------------------------------------------------------------- 14. KPIs


def test_kpis_on_a_hand_computed_scenario():
    # two agents, ready from 0; threshold 20 s; wrap-up 10 s; interval 100 s
    r = Run(support_queue(wrap_up=10, ring_timeout=60, service_level={"threshold": 20, "target": 0.8}), agents(2),
            interval=100)
    r.arrive("c1", "support", 0)       # a-1
    r.accept("c1", 0)                  # wait 0
    r.arrive("c2", "support", 10)      # a-2
    r.accept("c2", 40)                 # wait 30 (ringing counts)
    r.arrive("c3", "support", 50)      # waits
    r.abandon("c3", 60)                # abandoned after 10
    r.end("c1", 60)                    # talk 60, wrap until 70
    r.end("c2", 100)                   # talk 60, wrap until 110
    r.run_until(110)
    r.arrive("c4", "support", 120)     # a-1 (idle since 70)
    r.accept("c4", 125)                # wait 5
    r.end("c4", 145)                   # talk 20, wrap until 155
    r.run_until(200)
    rep = r.engine.report()

    total = rep["total"]
    assert total["offered"] == 4
    assert total["answered"] == 3
    assert total["abandoned"] == 1
    assert total["overflowed"] == 0
    assert total["waiting_at_end"] == 0
    assert total["abandon_rate"] == 0.25
    assert total["asa"] == round(35 / 3, 6)
    assert total["service_level"] == 0.5           # c1 (0 s) and c4 (5 s) of 4 offered
    assert total["p_wait"] == 0.75                 # c2, c3, c4
    assert total["completed"] == 3
    assert total["aht"] == round(170 / 3, 6)       # (60+10) + (60+10) + (20+10)
    assert total["avg_talk"] == round(140 / 3, 6)
    assert total["avg_wrap_up"] == 10
    assert total["max_wait"] == 30
    # busy: a-1 0-70 and 125-155 (100 s), a-2 40-110 (70 s); staffed 2 x 200 s
    assert total["occupancy"] == round(170 / 400, 6)
    assert rep["groups"]["a"] == {"busy_s": 170, "staffed_s": 400, "occupancy": 0.425}
    support = rep["queues"]["support"]
    assert support["sl_threshold"] == 20 and support["sl_target"] == 0.8 and support["sl_met"] is False
    assert support["offered"] == 4 and support["occupancy"] == 0.425

    iv0, iv1 = rep["intervals"]
    assert iv0["start"] == 0 and iv1["start"] == 100
    # contacts are filed by arrival interval
    q0 = iv0["queues"]["support"]
    assert (q0["offered"], q0["answered"], q0["abandoned"]) == (3, 2, 1)
    assert q0["asa"] == 15 and q0["service_level"] == round(1 / 3, 6) and q0["p_wait"] == round(2 / 3, 6)
    assert q0["aht"] == 70
    q1 = iv1["queues"]["support"]
    assert (q1["offered"], q1["answered"], q1["asa"], q1["service_level"], q1["aht"]) == (1, 1, 5, 1.0, 30)
    # occupancy split at the interval edge: a-2's wrap-up runs 100-110
    assert iv0["groups"]["a"]["occupancy"] == 0.65    # (70 + 60) / 200
    assert iv1["groups"]["a"]["occupancy"] == 0.2     # (10 + 30) / 200
    assert iv0["total"]["occupancy"] == 0.65


def test_occupancy_counts_only_staffed_time_and_open_spans_up_to_now():
    r = Run(support_queue(), agents(1, initial="offline"))
    r.login("a-1", 100)
    r.arrive("c1", "support", 110)
    r.accept("c1", 120)
    r.not_ready("a-1", 130)    # still busy: staffed
    r.advance(150)             # still talking: open spans cut at now
    g = r.engine.report()["groups"]["a"]
    assert g == {"busy_s": 30, "staffed_s": 50, "occupancy": 0.6}
    r.end("c1", 160)           # not ready from 160: no longer staffed
    r.advance(500)
    g = r.engine.report()["groups"]["a"]
    assert g == {"busy_s": 40, "staffed_s": 60, "occupancy": round(40 / 60, 6)}
    # report() does not keep the open spans
    assert r.engine.report()["groups"]["a"] == g


def test_service_level_threshold_is_inclusive():
    r = Run(support_queue(service_level={"threshold": 20}, ring_timeout=30), agents(1))
    r.arrive("c1", "support", 0)
    r.accept("c1", 20)
    assert r.engine.report(intervals=False)["total"]["service_level"] == 1.0


# --------------------------------------------------------------------------- 15. determinism


def _scenario_events():
    """A mixed scenario: (time, event), with time-outs, wrap-ups, escalation,
    overflow, abandonment and random choices that deadlines resolve."""
    ev = []
    for i in range(40):
        t = 3.0 * i
        ev.append((t, ContactArrived(contact=f"v{i}", queue="vip" if i % 4 == 0 else "general",
                                     priority=i % 3)))
        if i % 5 == 1:
            ev.append((t + 1, CustomerAbandoned(contact=f"v{i - 1}")))
        if i % 3 == 0:
            ev.append((t + 2, OfferAccepted(contact=f"v{i}")))
            ev.append((t + 20, ContactEnded(contact=f"v{i}")))
        if i == 10:
            ev.append((t, AgentNotReady(agent="t1-2")))
        if i == 20:
            ev.append((t, AgentReady(agent="t1-2")))
    ev.sort(key=lambda p: p[0])  # stable: same-time order kept
    return ev


def _determinism_centre():
    queues = [{"name": "vip", "skills": {"support": 5}, "strategy": "random", "wrap_up": 4, "ring_timeout": 6,
               "escalation": [{"after": 10, "skills": {"support": 1}, "priority": 2}]},
              {"name": "general", "skills": {"support": 1}, "aging": 3, "wrap_up": 2, "ring_timeout": 7,
               "max_wait": 40, "strategy": "round-robin"}]
    return make_spec(queues, [{"group": "t1", "count": 3, "skills": {"support": 3}},
                              {"group": "t2", "count": 2, "skills": {"support": 6}}])


def _run_handle_only(seed):
    e = Engine(_determinism_centre(), rng=Random(seed))
    out = []
    for t, ev in _scenario_events():
        out += e.handle(ev, t)
        e.check_invariants()
    out += e.advance(1000)
    return out


def _run_with_advance(seed):
    e = Engine(_determinism_centre(), rng=Random(seed))
    out = []
    for t, ev in _scenario_events() + [(1000, None)]:
        while (d := e.next_deadline()) is not None and d <= t:
            out += e.advance(d)
            e.check_invariants()
        if ev is not None:
            out += e.handle(ev, t)
            e.check_invariants()
    return out + e.advance(1000)


def test_same_events_give_identical_outputs():
    a, b = _run_handle_only(5), _run_handle_only(5)
    assert len(a) > 100
    assert {"contact.requeued", "contact.escalated", "contact.overflowed", "contact.abandoned",
            "contact.completed", "input.rejected"} <= set(kinds(a))
    assert a == b


def test_feeding_deadlines_through_advance_gives_the_same_outputs_as_handle():
    assert _run_with_advance(5) == _run_handle_only(5)


def test_the_seed_matters_for_random_strategy():
    assert _run_handle_only(5) != _run_handle_only(6)


# --------------------------------------------------------------------------- deadlines and spec checks


def test_next_deadline_skips_deadlines_of_connected_contacts():
    r = Run([{"name": "q", "max_wait": 100, "escalation": [{"after": 50, "priority": 1}]}], agents(1))
    r.arrive("c1", "q", 0)
    r.accept("c1", 1)
    assert r.engine.next_deadline() is None


def test_overflow_into_a_queue_of_another_channel_is_refused():
    # else a voice contact would be offered as chat and held in the agent's voice slot
    with pytest.raises(SpecErrors, match="takes chat, not voice"):
        make_spec([{"name": "v", "channel": "voice", "max_wait": 30, "overflow": "c"},
                   {"name": "c", "channel": "chat"}], agents(1))


def test_queue_length_and_wait_histogram_in_the_report():
    r = Run(support_queue(), agents(1), interval=100)
    r.arrive("c1", "support", 0)
    r.accept("c1", 0)
    r.arrive("c2", "support", 10)      # waits 10-60
    r.arrive("c3", "support", 20)      # waits 20-50, then abandons
    r.abandon("c3", 50)
    r.end("c1", 60)                    # c2 is offered at 60 (no wrap-up)
    r.accept("c2", 60)
    rep = r.engine.report()
    row = rep["intervals"][0]["queues"]["support"]
    assert row["max_queue_len"] == 2
    assert row["avg_queue_len"] == round((50 + 30) / 100, 4)  # interval length 100 in this harness
    hist = rep["wait_histogram"]
    assert hist["edges"][0] == 0
    answered = hist["queues"]["support"]["answered"]
    abandoned = hist["queues"]["support"]["abandoned"]
    assert sum(answered) == 2 and answered[0] == 1           # c1 waited 0
    assert answered[hist["edges"].index(45)] == 1            # c2 waited 50: bin [45, 60)
    assert abandoned[hist["edges"].index(30)] == 1           # c3 gave up after 30: bin [30, 45)


def test_a_backlog_shows_in_every_interval_it_spans_not_only_where_it_grew():
    # three contacts wait from 100 s to 2,700 s with nobody ready: the
    # intervals without arrivals must still show the queue at 3
    r = Run(support_queue(), agents(1, initial="not_ready"), interval=900)
    for i in range(3):
        r.arrive(f"c{i}", "support", 100.0 + i)
    r.engine.advance(2700.0)
    rows = r.engine.report()["intervals"]
    assert [row["start"] for row in rows] == [0.0, 900.0, 1800.0]
    per_queue = [(row["queues"]["support"]["avg_queue_len"], row["queues"]["support"]["max_queue_len"])
                 for row in rows]
    assert per_queue == [(round((800 + 799 + 798) / 900, 4), 3), (3.0, 3), (3.0, 3)]
    # the queue rows and the total rows agree
    assert [row["total"]["avg_queue_len"] for row in rows] == [q[0] for q in per_queue]


def test_auto_answer_connects_an_offer_at_once_without_ringing():
    from acd.core.spec import spec_from_obj

    spec = spec_from_obj({"queues": [{"name": "support", "skills": {"support": 1}}],
                          "agents": [{"group": "a", "count": 1, "skills": {"support": 3}, "auto_answer": True}]})
    eng = Engine(spec, rng=Random(1), start=0.0)
    out = eng.handle(ContactArrived(contact="c1", queue="support"), 0.0)
    kinds = [type(e).__name__ for e in out]
    assert kinds == ["ContactOffered", "ContactConnected", "AgentStateChanged"]
    assert out[0].auto_answer and out[0].timeout == 0
    assert out[2].state == "busy" and out[2].previous == "ready"
    assert eng.next_deadline() is None  # no ring time-out armed
    late = eng.handle(OfferAccepted(contact="c1"), 1.0)
    assert isinstance(late[0], InputRejected)  # already connected
    eng.check_invariants()
