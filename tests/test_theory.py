"""The replay agrees with queueing theory.

One queue, c identical agents, Poisson arrivals, exponential handle times,
FIFO: Erlang C (M/M/c) predicts P(wait), ASA and the service level; with
exponential patience, Erlang A (M/M/c+M) predicts P(wait) and the abandon
rate.  A single run is noisy (ASA especially), so we replay independent seeds,
drop a warm-up hour (the centre starts empty), and compare the mean over seeds
with theory through a z-score (mean - theory) / standard error.  The seeds are
fixed, so the test is deterministic; |z| < 4 is the bar.  The bench
``bench/theory.py`` runs the same check on more seeds and larger centres.
"""

from __future__ import annotations

import statistics

import pytest

from acd.core.kpi import Acc
from acd.core.spec import spec_from_obj
from acd.erlang import erlang_a, erlang_c
from acd.replay import Replay
from acd.scenario import generate, mmc_traffic

WARM_UP = 3600.0
THRESHOLD = 20.0


def run_mmc(agents: int, load: float, aht: float, contacts: int, patience: float | None, seed: int) -> Acc:
    traffic = mmc_traffic(agents=agents, load=load, aht=aht, contacts=contacts, patience=patience, seed=seed)
    spec = spec_from_obj({
        "queues": [{"name": "support", "skills": {"support": 1},
                    "service_level": {"threshold": THRESHOLD, "target": 0.8}}],
        "agents": [{"group": "a", "count": agents, "skills": {"support": 1}}],
        "interval": 900,
    })
    start = 0.0
    rep = Replay(spec, seed=seed, start=start)
    rep.run((start + line.arrival, line) for line in generate(traffic))
    acc = Acc()
    for iv, a in rep.engine.kpi.by_queue[0].items():
        if iv * 900 >= WARM_UP:
            acc.add(a)
    return acc


def z_scores(accs: list[Acc], theory) -> dict[str, float]:
    kpis = {
        "p_wait": [a.waited / a.offered for a in accs],
        "asa": [a.wait_answered / a.answered for a in accs],
        "service_level": [a.answered_in_sl / a.offered for a in accs],
        "abandon_rate": [a.abandoned / a.offered for a in accs],
    }
    out = {}
    for name, xs in kpis.items():
        expected = getattr(theory, name)
        se = statistics.stdev(xs) / len(xs) ** 0.5
        if se == 0:
            out[name] = 0.0 if statistics.fmean(xs) == expected else float("inf")
        else:
            out[name] = (statistics.fmean(xs) - expected) / se
    return out


@pytest.mark.parametrize("agents,load", [(10, 0.8), (25, 0.9)])
def test_replay_agrees_with_erlang_c(agents, load):
    aht = 180.0
    accs = [run_mmc(agents, load, aht, 6000, None, seed) for seed in range(1, 13)]
    theory = erlang_c(load * agents / aht, aht, agents, THRESHOLD)
    z = z_scores(accs, theory)
    for name in ("p_wait", "asa", "service_level"):
        assert abs(z[name]) < 4, (name, z, theory)
    assert all(a.abandoned == 0 for a in accs)


@pytest.mark.parametrize("agents,load,patience", [(10, 0.9, 120.0), (20, 1.1, 180.0)])
def test_replay_agrees_with_erlang_a(agents, load, patience):
    aht = 180.0
    accs = [run_mmc(agents, load, aht, 10000, patience, seed) for seed in range(1, 13)]
    theory = erlang_a(load * agents / aht, aht, agents, patience, THRESHOLD)
    z = z_scores(accs, theory)
    for name in ("p_wait", "abandon_rate", "asa", "service_level"):
        assert abs(z[name]) < 4, (name, z, theory)


def test_z_score_would_catch_a_wrong_model():
    """The check has teeth: the same runs compared with the theory of a
    centre with one agent more fail it."""
    aht, agents, load = 180.0, 10, 0.8
    accs = [run_mmc(agents, load, aht, 6000, None, seed) for seed in range(1, 13)]
    wrong = erlang_c(load * agents / aht, aht, agents + 1, THRESHOLD)
    z = z_scores(accs, wrong)
    assert abs(z["p_wait"]) > 4 and abs(z["asa"]) > 4
