"""Replay throughput against a minimal SimPy model, measured in the same run.

The same M/M/c scenario (100 agents, load 0.9, AHT 180 s, 200,000 contacts;
with and without exponential patience of mean 120 s) goes through

* ``acd replay CONFIG SCENARIO --json`` (the full router: skills, strategy
  index, decisions, events, KPIs), twice: with auto-answer phones
  (``bench/mmc100-auto.yaml``: an offer connects at once, which is what
  M/M/c models), and with agents who answer each offer (``mmc100.yaml``: a
  ring, an ``offer.accepted`` round trip and an extra state change per
  contact), and
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
CONFIGS = {"auto-answer": HERE / "mmc100-auto.yaml", "agents answer": HERE / "mmc100.yaml"}
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
    # SimPy comes from site-packages, byte-compiled when pip installed it; an
    # editable install of acd is compiled on import, and not even cached when
    # PYTHONDONTWRITEBYTECODE is set (as on our CI machines): every run would
    # pay ~70 ms of compiling.  Byte-compile acd as `pip install .` would.
    import acd

    subprocess.run([PY, "-m", "compileall", "-q", str(Path(acd.__file__).parent)], check=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus; {args.contacts:,} contacts, "
          f"{args.runs} runs each, whole process\n")
    print(f"{'variant':<16} {'answer mode':<14} {'acd c/s':>9} {'simpy c/s':>9} {'ratio':>6}   KPIs (acd == simpy)")
    worst = float("inf")
    for label, patience in (("no abandonment", None), ("patience 120 s", 120.0)):
        scen = OUT / f"mmc-{args.contacts}-{'p120' if patience else 'inf'}.jsonl"
        generate(scen, args.contacts, patience)
        rates: dict[str, list[float]] = {name: [] for name in (*CONFIGS, "simpy")}
        reps: dict[str, dict] = {}
        for _ in range(args.runs):  # interleaved, so drifts hit all alike
            for mode, config in CONFIGS.items():
                dt, reps[mode] = timed(ACD + ["replay", str(config), str(scen), "--json", "--no-progress"])
                rates[mode].append(args.contacts / dt)
            dt, reps["simpy"] = timed([PY, str(HERE / "simpy_peer.py"), str(scen), "--agents", "100", "--json"])
            rates["simpy"].append(args.contacts / dt)
        p = statistics.median(rates["simpy"])
        peer = reps["simpy"]
        for mode in CONFIGS:
            a = statistics.median(rates[mode])
            tot = reps[mode]["total"]
            same = (tot["answered"], tot["abandoned"]) == (peer["answered"], peer["abandoned"])
            print(f"{label:<16} {mode:<14} {a:>9,.0f} {p:>9,.0f} {a / p:>5.2f}x   answered {tot['answered']:,} "
                  f"abandoned {tot['abandoned']:,} ASA {tot['asa']:.2f} s "
                  f"{'(identical)' if same else '(DIFFERENT: simpy ' + str(peer['answered']) + ')'}")
            if mode == "auto-answer":
                worst = min(worst, a / p)
    print(f"\nworst auto-answer ratio {worst:.2f}x (bar: 1.5x)")
    return 0 if worst >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
