"""Import and replay a whole month of recorded calls: the "Anonymous Bank"
February 1999 log (33,344 rows, ../shared/data), timed.

Two measurements, both on one core:

* in process: ``acd.recorded.import_records`` (read the log, Kaplan-Meier
  curves, roster, write the scenario, config and sidecar), then
  ``acd.replay.Replay`` over the written scenario (reading it included);
* whole processes, when ``acd scenario import`` is wired into the CLI:
  ``python -m acd scenario import ...`` then ``python -m acd replay ... --json``
  (start-up and imports included), the way a user runs them.

It prints contacts per second for each, checks the bar (import + replay of the
month under 10 s), prints the recorded-vs-replayed figures of the issue's
accuracy bar (PS, NW, total), and with ``--peer`` runs the replay bench
(``bench/replay_vs_simpy.py``, M/M/c against SimPy) so the figure stands next
to the peer comparison on the same machine.

    python bench/import_bank.py [--runs 3] [--peer] [--data DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
# the README's policy assumptions (see the README, "Replaying recorded traffic")
POLICY = ["--queue-priority", "NW=-2"]


def in_process(log: Path, out: Path) -> tuple[float, float, dict, dict]:
    from acd.config import load_config
    from acd.recorded import ImportOptions, import_records
    from acd.replay import Replay
    from acd.scenario import Scenario

    scen, cfg, side = out / "feb.jsonl", out / "feb.yaml", out / "feb.recorded.json"
    t0 = time.perf_counter()
    res = import_records(log, options=ImportOptions(queue_priority={"NW": -2.0}), scenario=scen, config=cfg,
                         sidecar=side)
    t1 = time.perf_counter()
    sc = Scenario(scen)
    rep = Replay(load_config(cfg), start=sc.start).run(sc)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, rep, res.sidecar_dict()


def cli_wired() -> bool:
    r = subprocess.run([PY, "-m", "acd", "scenario", "import", "--help"], capture_output=True, text=True)
    return r.returncode == 0


def whole_process(log: Path, out: Path) -> tuple[float, float]:
    scen = out / "cli.jsonl"
    t0 = time.perf_counter()
    subprocess.run([PY, "-m", "acd", "scenario", "import", str(log), "-o", str(scen), "--quiet", *POLICY],
                   check=True)
    t1 = time.perf_counter()
    subprocess.run([PY, "-m", "acd", "replay", str(out / "cli.yaml"), str(scen), "--json", "--no-progress"],
                   check=True, capture_output=True)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peer", action="store_true",
                    help="also run bench/replay_vs_simpy.py (its 200,000 contacts, 1 run)")
    args = ap.parse_args()
    log = args.data / "anonymous_bank_1999-02.tsv"
    if not log.exists():
        print(f"no {log}: give --data DIR (the folder with anonymous_bank_1999-02.tsv)", file=sys.stderr)
        return 2
    from acd.recorded.compare import comparison

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; {log.name}, {args.runs} runs, median\n")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runs = [in_process(log, out) for _ in range(args.runs)]
        imp = statistics.median(r[0] for r in runs)
        rep_s = statistics.median(r[1] for r in runs)
        rep, side = runs[-1][2], runs[-1][3]
        n = rep["replay"]["contacts"]
        rows = side["import"]["rows"]
        print(f"{'in process':<16} import {imp:5.2f} s ({rows / imp:>9,.0f} rows/s)  replay {rep_s:5.2f} s "
              f"({n / rep_s:>9,.0f} contacts/s)  total {imp + rep_s:5.2f} s = {n / (imp + rep_s):,.0f} contacts/s")
        worst = imp + rep_s
        if cli_wired():
            cl = [whole_process(log, out) for _ in range(args.runs)]
            ci = statistics.median(r[0] for r in cl)
            cr = statistics.median(r[1] for r in cl)
            print(f"{'whole processes':<16} import {ci:5.2f} s ({rows / ci:>9,.0f} rows/s)  replay {cr:5.2f} s "
                  f"({n / cr:>9,.0f} contacts/s)  total {ci + cr:5.2f} s = {n / (ci + cr):,.0f} contacts/s")
            worst = max(worst, ci + cr)
        else:
            print("whole processes: skipped (acd scenario import is not wired into the CLI yet)")
        print(f"\nimport + replay of the month: {worst:.2f} s (bar: < 10 s) {'ok' if worst < 10 else 'MISSED'}")
        ok &= worst < 10
        cmp = comparison(rep, side)
        print("\naccuracy (bar: abandonment within 5 pp, ASA of answered within 30%):")
        for name, p in (("PS", cmp["queues"]["PS"]), ("NW", cmp["queues"]["NW"]), ("TOTAL", cmp["total"])):
            a, b = p["recorded"], p["replayed"]
            good = abs(p["abandon_rate_diff_pp"]) <= 5 and abs(p["asa_ratio"] - 1) <= 0.3
            ok &= good
            print(f"  {name:<6} abandoned {a['abandon_rate']:6.1%} recorded {b['abandon_rate']:6.1%} replayed "
                  f"({p['abandon_rate_diff_pp']:+.1f} pp)   ASA {a['asa']:5.1f} s recorded {b['asa']:5.1f} s "
                  f"replayed (x{p['asa_ratio']:.2f})  {'ok' if good else 'MISSED'}")
    if args.peer:
        print("\nthe replay bench on this machine (M/M/c, acd vs SimPy):")
        sys.stdout.flush()
        subprocess.run([PY, str(HERE / "replay_vs_simpy.py"), "--runs", "1"], cwd=ROOT)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
