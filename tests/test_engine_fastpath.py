"""The replay's fast entry points against ``handle()``, state for state.

``Engine.arrive`` / ``Engine.end`` inline ``handle()``'s common path for an
arrival and a hang-up (the replay's hot path).  The property machine in
``test_engine_properties`` compares them on random skill-based centres; this
one covers what it does not: calendars (shifts with a lunch break), sites,
follow-the-sun, a queue that closes and overflows, auto-answer agents with
one and two slots, wrap-up on and off, channels given with the arrival,
duplicate ids, and events sent without advancing time first (so deadlines
fall due inside ``arrive``/``end``).  After every step the two engines must
have said the same; every few steps and at the end they must be in the same
state, compared as the whole pickled engine (what a checkpoint writes), plus
the KPI report (a difference in state stays, so it is caught later).
"""

from __future__ import annotations

from datetime import datetime, timezone
from random import Random

import pytest

from acd.core.engine import Engine
from acd.core.events import ContactArrived, ContactEnded, OfferAccepted
from acd.core.spec import spec_from_obj
from acd.daemon import pickle_engine

from helpers import DAY_AND_EVENING, TWO_SITES

MONDAY = datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp()
HOUR = 3600.0


def centre(r: Random):
    auto = r.random() < 0.7
    return spec_from_obj({
        "sites": TWO_SITES,
        "shifts": DAY_AND_EVENING,
        "queues": [{"name": "q", "skills": {"s": 1}, "hours": {"site": "north"}, "closed": {"overflow": "backup"},
                    "wrap_up": r.choice([0, 0, 5]), "max_wait": r.choice([20, 30]),
                    "escalation": [{"after": 7, "priority": 1}]},
                   {"name": "fts", "skills": {"s": 1}, "sites": "daytime", "site_escalation": 60,
                    "wrap_up": r.choice([0, 3])},
                   {"name": "backup", "skills": {"s": 1}, "channel": "voice"},
                   {"name": "c", "channel": "chat", "skills": {"s": 1}}],
        "agents": [{"group": "n", "count": 2, "skills": {"s": 1}, "site": "north", "shift": "day",
                    "auto_answer": auto, "capacity": {"voice": 1, "chat": 0, "email": 0}},
                   {"group": "s", "count": 1, "skills": {"s": 1}, "site": "south", "shift": "eve",
                    "auto_answer": not auto, "capacity": {"voice": 1, "chat": 2, "email": 0}},
                   {"group": "x", "count": 2, "skills": {"s": 1}, "auto_answer": True,
                    "capacity": {"voice": 0, "chat": r.choice([1, 2]), "email": 0}}],
    })


@pytest.mark.parametrize("seed", range(24))
def test_arrive_and_end_match_handle_state_for_state(seed):
    r = Random(seed)
    spec = centre(r)
    t = MONDAY + r.choice([7.9, 11.9, 15.9, 22.9]) * HOUR
    main = Engine(spec, rng=Random(seed), start=t)
    fast = Engine(spec, rng=Random(seed), start=t)
    live: list[str] = []
    n = 0
    paths = set()
    for step in range(300):
        t += r.choice([0, 0, 1, 3, 5, 7, 20, 30, 60, 600])
        k = r.random()
        if k < 0.45:
            n += 1
            cid = f"c{n}" if r.random() > 0.05 or not live else live[0]  # now and then a duplicate
            queue = r.choice(["q", "q", "fts", "backup", "c"])
            channel = r.choice([None, None, None, "chat"])
            ev = ContactArrived(contact=cid, queue=queue, channel=channel, priority=r.choice([0, 1, 2.5]))
            said = main.handle(ev, t)
            fast_said = fast.arrive(t, cid, queue, channel, ev.priority, ev.skills, ev.attributes)
            live.append(cid)
            paths.add("arrive")
        elif k < 0.75 and live:
            cid = r.choice(live)
            said = main.handle(ContactEnded(contact=cid), t)
            fast_said = fast.end(t, cid)
            paths.add("end")
        elif k < 0.9:
            ringing = [c.id for c in main.contacts.values() if c.state == 2]  # offered
            if not ringing:
                continue
            ev = OfferAccepted(contact=ringing[0])
            said, fast_said = main.handle(ev, t), fast.handle(ev, t)
        else:
            said, fast_said = main.advance(t), fast.advance(t)
        assert fast_said == said, step
        if step % 5 == 0:
            assert pickle_engine(fast) == pickle_engine(main), step
    assert pickle_engine(fast) == pickle_engine(main)
    assert fast.report() == main.report()
    assert paths == {"arrive", "end"}
