"""Replay throughput against a minimal SimPy model, measured in the same run.

The same M/M/c scenario (100 agents, load 0.9, AHT 180 s, 200,000 contacts;
with and without exponential patience of mean 120 s) goes through

* ``acd replay CONFIG SCENARIO --json`` (the full router: skills, strategy
  index, offers and answers, events, KPIs), and
* ``bench/simpy_peer.py`` (``simpy.Resource`` + one process per contact),

each as a whole process, timed from outside (start-up, imports and reading
the file included).  Runs alternate between the two; we report the median
contacts/s of each over ``--runs`` runs and the ratio of the medians.  Both
read the same file and serve FIFO with identical agents, so their answered and
abandoned counts must agree exactly: the script checks that too.

    python bench/replay_vs_simpy.py [--contacts 200000] [--runs 5]

Bar (issue 2): acd at least 1.5x SimPy's contacts/s on both variants.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
CONFIG = HERE / "mmc100.yaml"
PY = sys.executable
ACD = [PY, "-m", "acd"]


def generate(path: Path, contacts: int, patience: float | None) -> None:
    if path.exists():
        return
    cmd = ACD + ["scenario", "generate", "--agents", "100", "--load", "0.9", "--aht", "180",
                 "--contacts", str(contacts), "--seed", "42", "-o", str(path)]
    if patience:
        cmd += ["--patience", str(patience)]
    subprocess.run(cmd, check=True)


def timed(cmd: list[str]) -> tuple[float, dict]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return time.perf_counter() - t0, json.loads(res.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; {args.contacts:,} contacts, "
          f"{args.runs} runs each, whole process\n")
    print(f"{'variant':<20} {'acd c/s':>10} {'simpy c/s':>10} {'ratio':>7}   KPIs (acd == simpy)")
    worst = float("inf")
    for label, patience in (("no abandonment", None), ("patience 120 s", 120.0)):
        scen = OUT / f"mmc-{args.contacts}-{'p120' if patience else 'inf'}.jsonl"
        generate(scen, args.contacts, patience)
        acd_rates, peer_rates = [], []
        acd_rep = peer_rep = None
        for _ in range(args.runs):
            dt, acd_rep = timed(ACD + ["replay", str(CONFIG), str(scen), "--json", "--no-progress"])
            acd_rates.append(args.contacts / dt)
            dt, peer_rep = timed([PY, str(HERE / "simpy_peer.py"), str(scen), "--agents", "100", "--json"])
            peer_rates.append(args.contacts / dt)
        a, p = statistics.median(acd_rates), statistics.median(peer_rates)
        tot = acd_rep["total"]
        same = (tot["answered"], tot["abandoned"]) == (peer_rep["answered"], peer_rep["abandoned"])
        print(f"{label:<20} {a:>10,.0f} {p:>10,.0f} {a / p:>6.2f}x   answered {tot['answered']:,} "
              f"abandoned {tot['abandoned']:,} ASA {tot['asa']:.2f} s "
              f"{'(identical)' if same else '(DIFFERENT: simpy ' + str(peer_rep['answered']) + ')'}")
        worst = min(worst, a / p)
    print(f"\nworst ratio {worst:.2f}x (bar: 1.5x)")
    return 0 if worst >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
