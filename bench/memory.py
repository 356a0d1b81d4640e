"""Peak memory of a long replay: it must not grow with the number of contacts.

Generates M/M/c scenarios of 200,000 and 2,000,000 contacts (100 agents, load
0.9, AHT 180 s, patience 120 s) into bench/out/ and replays each with
``acd replay --json`` in a child process, reporting the child's peak RSS.
KPIs stream (per queue and interval, never per contact) and the scenario is
read in chunks, so both peaks should be about the same.

    python bench/memory.py [--contacts 2000000]

Bar (issue 2): the 2,000,000-contact replay peaks below 300 MB.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
ACD = [sys.executable, "-m", "acd"]


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh child (via a wrapper so RUSAGE_CHILDREN holds
    only that child) and return (peak RSS MB, seconds)."""
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
               "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, capture_output=True, text=True)
    return int(out.stdout.strip()) / 1024, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--contacts", type=int, default=2_000_000)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    rows = []
    for n in sorted({200_000, args.contacts}):
        scen = OUT / f"mmc-{n}-p120.jsonl"
        if not scen.exists():
            subprocess.run(ACD + ["scenario", "generate", "--agents", "100", "--load", "0.9", "--aht", "180",
                                  "--patience", "120", "--contacts", str(n), "--seed", "42", "-o", str(scen)],
                           check=True)
        mb, secs = peak_rss_mb(ACD + ["replay", str(HERE / "mmc100.yaml"), str(scen), "--json", "--no-progress"])
        rows.append((n, mb, secs))
        print(f"{n:>10,} contacts  peak RSS {mb:7.1f} MB  {secs:6.1f} s  ({scen.stat().st_size / 1e6:.0f} MB file)")
    worst = max(mb for _, mb, _ in rows)
    print(f"\nlargest peak {worst:.1f} MB (bar: < 300 MB for {args.contacts:,} contacts)")
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
