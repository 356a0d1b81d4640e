"""The replay against Erlang C and Erlang A, on more seeds and larger centres
than the test suite affords.

For each case we replay ``--seeds`` independent M/M/c(+M) scenarios, drop a
warm-up hour (the centre starts empty), and compare the mean over seeds of
each KPI with theory: z = (mean - theory) / standard error.  |z| < 3 is
what agreement looks like; a single run is not evidence either way (at 100
agents and load 0.9, one run's ASA is easily 30% off).

    python bench/theory.py [--seeds 20] [--contacts 20000]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from acd.core.kpi import Acc
from acd.core.spec import spec_from_obj
from acd.erlang import erlang_a, erlang_c
from acd.replay import Replay
from acd.scenario import generate, mmc_traffic

CASES = [  # agents, load, patience (None: Erlang C)
    (10, 0.8, None),
    (50, 0.9, None),
    (100, 0.9, None),
    (100, 0.95, None),
    (20, 0.9, 120.0),
    (100, 0.9, 120.0),
    (100, 1.1, 120.0),
]
KPIS = ("p_wait", "asa", "service_level", "abandon_rate")


def replay_once(agents, load, patience, contacts, seed, warm_up=3600.0, threshold=20.0) -> Acc:
    spec = spec_from_obj({"queues": [{"name": "q", "skills": {"s": 1}, "service_level": {"threshold": threshold}}],
                          "agents": [{"group": "a", "count": agents, "skills": {"s": 1}}]})
    traffic = mmc_traffic(agents=agents, load=load, aht=180.0, contacts=contacts, patience=patience, seed=seed, queue="q")
    r = Replay(spec, seed=seed, start=0.0)
    r.run((line.arrival, line) for line in generate(traffic))
    acc = Acc()
    for iv, a in r.engine.kpi.by_queue[0].items():
        if iv * spec.interval >= warm_up:
            acc.add(a)
    return acc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--contacts", type=int, default=20_000)
    args = ap.parse_args()
    print(f"{args.seeds} seeds x {args.contacts:,} contacts per case, warm-up 1 h dropped; z = (mean - theory) / s.e.\n")
    print(f"{'case':<24}" + "".join(f"{k:>24}" for k in KPIS))
    worst = 0.0
    for agents, load, patience in CASES:
        accs = [replay_once(agents, load, patience, args.contacts, seed) for seed in range(1, args.seeds + 1)]
        lam = load * agents / 180.0
        th = erlang_c(lam, 180.0, agents) if patience is None else erlang_a(lam, 180.0, agents, patience)
        values = {
            "p_wait": [a.waited / a.offered for a in accs],
            "asa": [a.wait_answered / a.answered for a in accs],
            "service_level": [a.answered_in_sl / a.offered for a in accs],
            "abandon_rate": [a.abandoned / a.offered for a in accs],
        }
        cells = []
        for k in KPIS:
            xs, expected = values[k], getattr(th, k)
            mean = statistics.fmean(xs)
            se = statistics.stdev(xs) / len(xs) ** 0.5
            z = (mean - expected) / se if se else 0.0
            worst = max(worst, abs(z))
            cells.append(f"{mean:8.4f} vs {expected:7.4f} z{z:+5.1f}" if (patience or k != "abandon_rate") else f"{'-':>24}")
        label = f"c={agents} load={load}" + (f" pat={patience:g}" if patience else "")
        print(f"{label:<24}" + "".join(f"{c:>24}" for c in cells))
    print(f"\nlargest |z| = {worst:.1f}")
    return 0 if worst < 4 else 1


if __name__ == "__main__":
    sys.exit(main())
