"""What calendar look-ups cost the replay.

Replays the 7-day follow-the-sun example (``config/follow-the-sun.yaml``,
``scenarios/follow-the-sun.jsonl``) twice: as configured (shifts, breaks,
holidays, business hours, follow-the-sun preferences), and with the calendar
stripped (every agent always on, every queue always open, no site
preference), the same traffic.  Prints the cost per contact of each (median
of ``--runs`` in-process runs, scenario already in memory) and the ratio.

    python bench/calendar_cost.py [--runs 5]

Bar (issue 3): the calendar run costs at most 1.3x per contact.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import msgspec

from acd.config import load_config
from acd.replay import Replay
from acd.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]


def always_on(spec):
    """The same centre with no calendar at all."""
    groups = [msgspec.structs.replace(g, shift=None, exceptions=[], site=None, initial="ready") for g in spec.agents]
    queues = [msgspec.structs.replace(q, hours=None, closed=None, sites=None, site_escalation=None)
              for q in spec.queues]
    return msgspec.structs.replace(spec, agents=groups, queues=queues, sites=[], shifts={})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    spec = load_config(ROOT / "config" / "follow-the-sun.yaml")
    scen = Scenario(ROOT / "scenarios" / "follow-the-sun.jsonl")
    items = list(scen)
    rows = []
    for label, s in (("calendar", spec), ("always on", always_on(spec))):
        times, rep = [], None
        for _ in range(args.runs):
            r = Replay(s, seed=0, start=scen.start)
            t0 = time.perf_counter()
            rep = r.run(items)
            times.append((time.perf_counter() - t0) / len(items) * 1e6)
        rows.append((label, statistics.median(times), rep))
    base = rows[1][1]
    print(f"{len(items):,} lines (7 days), median of {args.runs} runs\n")
    print(f"{'variant':<10} {'us/contact':>10} {'ratio':>6}  answered  closed  ASA s  agents staffed (avg)")
    for label, us, rep in rows:
        tot = rep["total"]
        staffed = sum(g["staffed_s"] for g in rep["groups"].values()) / (7 * 86400)
        print(f"{label:<10} {us:>10.2f} {us / base:>5.2f}x  {tot['answered']:8,} {tot['closed']:7,} {tot['asa']:6.1f}  {staffed:8.1f}")
    ratio = rows[0][1] / base
    print(f"\ncalendar / always on = {ratio:.2f}x (bar: 1.3x)")
    return 0 if ratio <= 1.3 else 1


if __name__ == "__main__":
    sys.exit(main())
