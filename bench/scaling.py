"""Cost per contact as the centre grows: agents 10 -> 1,000, skills 1 -> 50.

Every configuration runs at the same load (0.9 per agent, AHT 180 s,
exponential patience of mean 300 s): ``skills`` queues, one per skill, share
the traffic evenly; each agent has ``k`` skills, assigned round-robin so that
every skill is covered by the same number of agents (k = 1 for one skill,
else max(3, ceil(2 * skills / agents)) capped at ``skills``); agents with the
same skills form one group, as in a real config.  The scenario is
generated in memory first; we time only the replay (the routing core and the
virtual-time shell), median of ``--runs`` runs, and print microseconds per
contact and the ratio to the smallest centre.

    python bench/scaling.py [--contacts 50000] [--runs 3]

Bar (issue 2): the cost per contact grows by no more than 2x across the range.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from acd.core.spec import spec_from_obj
from acd.replay import Replay
from acd.scenario import HandleTime, QueueTraffic, TrafficSpec, generate

GRID = [(10, 1), (100, 1), (1000, 1), (10, 10), (100, 10), (1000, 10), (100, 50), (1000, 50)]


def centre(agents: int, skills: int) -> dict:
    k = 1 if skills == 1 else min(skills, max(3, math.ceil(2 * skills / agents)))
    by_set: dict[tuple, list[str]] = {}
    for i in range(agents):
        have = tuple(sorted({(i * k + j) % skills for j in range(k)}))
        by_set.setdefault(have, []).append(f"a{i}")
    groups = [{"group": f"g{n}", "ids": ids, "skills": {f"s{x}": 5 for x in have}}
              for n, (have, ids) in enumerate(by_set.items())]
    queues = [{"name": f"q{s}", "skills": {f"s{s}": 1}} for s in range(skills)]
    return {"queues": queues, "agents": groups}


def traffic(agents: int, skills: int, contacts: int, seed: int) -> list:
    rate = 0.9 * agents * 3600 / 180 / skills
    spec = TrafficSpec(contacts=contacts, seed=seed, queues=[
        QueueTraffic(queue=f"q{s}", rate=rate, handle=HandleTime(mean=180.0), patience=300.0)
        for s in range(skills)])
    return [(line.arrival, line) for line in generate(spec)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"{'agents':>6} {'skills':>6} {'pools/agent':>11} {'us/contact':>10} {'ratio':>6}  answered  ASA s")
    base = None
    worst = 0.0
    for agents, skills in GRID:
        spec = spec_from_obj(centre(agents, skills))
        items = traffic(agents, skills, args.contacts, seed=7)
        times = []
        for _ in range(args.runs):
            r = Replay(spec, seed=1, start=0.0)
            t0 = time.perf_counter()
            rep = r.run(items)
            times.append((time.perf_counter() - t0) / len(items) * 1e6)
        us = statistics.median(times)
        base = base or us
        worst = max(worst, us / base)
        pools = statistics.fmean(len(a.pool_list) for a in r.engine.agent_list)
        tot = rep["total"]
        print(f"{agents:>6} {skills:>6} {pools:>11.1f} {us:>10.2f} {us / base:>5.2f}x  {tot['answered'] / tot['offered']:8.1%}  {tot['asa']:5.1f}")
    print(f"\nlargest growth {worst:.2f}x (bar: 2x)")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
