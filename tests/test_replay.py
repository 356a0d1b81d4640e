"""The virtual-time replay shell and the ``acd`` command line around it."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from acd.cli import main
from acd.core.events import (
    AgentStateChanged, ContactArrived, ContactCompleted, ContactConnected, ContactOffered,
    CustomerAbandoned, Inbound, OfferAccepted, Outbound,
)
from acd.core.spec import spec_from_obj
from acd.replay import Replay
from acd.scenario import AgentLine, ContactLine, Scenario

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """\
queues:
  - name: support
    skills: {support: 1}
    wrap_up: 10
  - name: chat
    channel: chat
    skills: {chat: 1}
    strategy: random
agents:
  - group: a
    count: 2
    skills: {support: 3, chat: 1}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def scenario_lines(lines: list[dict]) -> str:
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def test_one_contact_timeline_and_kpis():
    spec = spec_from_obj({"queues": [{"name": "q", "skills": {"s": 1}, "wrap_up": 10}],
                          "agents": [{"group": "a", "count": 1, "skills": {"s": 1}}]})
    items = [
        (0.0, ContactLine(id="c1", arrival=0.0, queue="q", handle_time=100.0)),
        (30.0, ContactLine(id="c2", arrival=30.0, queue="q", handle_time=50.0, patience=200.0)),
        (40.0, ContactLine(id="c3", arrival=40.0, queue="q", handle_time=50.0, patience=20.0)),
    ]
    rep = Replay(spec, start=0.0).run(items)
    tot = rep["total"]
    # c1 answered at 0, talks to 100, wraps to 110; c2 answered at 110 (waited 80);
    # c3 gives up at 60 (waited 20); c2 talks to 160, wraps to 170.
    assert (tot["offered"], tot["answered"], tot["abandoned"]) == (3, 2, 1)
    assert tot["asa"] == pytest.approx(40.0)
    assert tot["aht"] == pytest.approx((110 + 60) / 2)
    assert tot["p_wait"] == pytest.approx(2 / 3)
    assert tot["service_level"] == pytest.approx(1 / 3)
    assert rep["replay"]["end"] == pytest.approx(170.0)
    assert rep["replay"]["in_system_at_end"] == 0
    # occupancy: busy 0-110 and 110-170 out of 170 s staffed
    assert tot["occupancy"] == pytest.approx(1.0)


@pytest.mark.parametrize("events", [False, True])
def test_a_reused_contact_id_is_not_abandoned_by_the_first_ones_patience(tmp_path, events):
    """c1 is answered at once and done at 60 with its 100 s patience timer
    still pending; a new c1 arrives at 70 and waits (for ever) behind c2:
    the old timer must not abandon it at 100 (found in review)."""
    spec = spec_from_obj({"queues": [{"name": "q", "skills": {"s": 1}}],
                          "agents": [{"group": "a", "count": 1, "skills": {"s": 1}}]})
    items = [
        (0.0, ContactLine(id="c1", arrival=0.0, queue="q", handle_time=60.0, patience=100.0)),
        (1.0, ContactLine(id="c2", arrival=1.0, queue="q", handle_time=140.0)),
        (70.0, ContactLine(id="c1", arrival=70.0, queue="q", handle_time=10.0)),
    ]
    with open(tmp_path / "ev.jsonl", "wb") as f:
        rep = Replay(spec, start=0.0, events=f if events else None).run(items)
    tot = rep["total"]
    assert (tot["offered"], tot["answered"], tot["abandoned"]) == (3, 3, 0)


@pytest.mark.parametrize("events", [False, True])
def test_a_duplicate_of_a_waiting_contact_is_refused_and_leaves_it_alone(tmp_path, events):
    """c1 waits (patience 10) behind a long call; a second line with the id
    c1 comes while it waits: refused, and the first c1 still abandons at 11
    (found in review: the duplicate took over its patience and handle time)."""
    spec = spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "a", "count": 1}]})
    items = [
        (0.0, ContactLine(id="busy", arrival=0.0, queue="q", handle_time=1000.0)),
        (1.0, ContactLine(id="c1", arrival=1.0, queue="q", handle_time=60.0, patience=10.0)),
        (2.0, ContactLine(id="c1", arrival=2.0, queue="q", handle_time=5.0)),
    ]
    with open(tmp_path / "ev.jsonl", "wb") as f:
        rep = Replay(spec, start=0.0, events=f if events else None).run(items)
    tot = rep["total"]
    assert (tot["offered"], tot["answered"], tot["abandoned"]) == (2, 1, 1)
    assert rep["rejected_inputs"] == {"contact.arrived": 1}
    assert rep["replay"]["end"] == 1000.0


def test_answer_delay_adds_to_the_wait():
    spec = spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "a", "count": 1}]})
    items = [(0.0, ContactLine(id="c1", arrival=0.0, queue="q", handle_time=10.0))]
    rep = Replay(spec, start=0.0, answer_delay=4.0).run(items)
    assert rep["total"]["asa"] == pytest.approx(4.0)


def test_agent_lines_staff_the_centre():
    spec = spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "a", "count": 1, "initial": "offline"}]})
    items = [
        (0.0, ContactLine(id="c1", arrival=0.0, queue="q", handle_time=10.0)),
        (50.0, AgentLine(time=50.0, agent="a-1", state="login")),
        (100.0, AgentLine(time=100.0, agent="a-1", state="logout")),
        (120.0, ContactLine(id="c2", arrival=120.0, queue="q", handle_time=10.0, patience=30.0)),
    ]
    rep = Replay(spec, start=0.0).run(items)
    tot = rep["total"]
    assert tot["answered"] == 1 and tot["abandoned"] == 1
    assert tot["asa"] == pytest.approx(50.0)
    assert rep["groups"]["a"]["staffed_s"] == pytest.approx(50.0)
    assert rep["groups"]["a"]["busy_s"] == pytest.approx(10.0)


def test_unknown_agent_in_a_scenario_is_counted_not_fatal():
    spec = spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "a", "count": 1}]})
    items = [(0.0, AgentLine(time=0.0, agent="ghost", state="ready")),
             (1.0, ContactLine(id="c1", arrival=1.0, queue="nowhere", handle_time=1.0))]
    rep = Replay(spec, start=0.0).run(items)
    assert rep["rejected_inputs"] == {"agent.ready": 1, "contact.arrived": 1}


def test_the_same_seed_replays_identically_and_another_differs(tmp_path):
    cfg = write(tmp_path, "c.yaml", CONFIG)
    lines = [{"id": f"c{i}", "arrival": i * 20.0, "queue": "chat", "handle_time": 90.0} for i in range(200)]
    scen = write(tmp_path, "s.jsonl", scenario_lines(lines))
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        ev = tmp_path / f"{name}.jsonl"
        assert main(["replay", str(cfg), str(scen), "--seed", str(seed), "--events", str(ev), "--no-progress", "--json"]) == 0
        runs[name] = ev.read_bytes()
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]  # the random strategy picks other agents


def test_events_file_is_the_typed_stream(tmp_path, capsys):
    cfg = write(tmp_path, "c.yaml", CONFIG)
    lines = [{"id": "c1", "arrival": 0, "queue": "support", "handle_time": 60},
             {"id": "c2", "arrival": 5, "queue": "support", "handle_time": 60, "patience": 1}]
    scen = write(tmp_path, "s.jsonl", scenario_lines(lines))
    ev = tmp_path / "events.jsonl"
    assert main(["replay", str(cfg), str(scen), "--events", str(ev), "--no-progress"]) == 0
    decode_in = msgspec.json.Decoder(Inbound)
    decode_out = msgspec.json.Decoder(Outbound)
    ins, outs = [], []
    for raw in ev.read_bytes().splitlines():
        obj = json.loads(raw)
        if "in" in obj:
            ins.append((obj["time"], decode_in.decode(json.dumps(obj["in"]))))
        else:
            outs.append(decode_out.decode(raw))
    kinds_in = [type(e) for _, e in ins]
    assert kinds_in.count(ContactArrived) == 2 and kinds_in.count(OfferAccepted) == 2
    assert CustomerAbandoned not in kinds_in  # c2 was answered (second agent) before its patience ran out
    assert sum(isinstance(e, ContactOffered) for e in outs) == 2
    assert sum(isinstance(e, ContactConnected) for e in outs) == 2
    done = [e for e in outs if isinstance(e, ContactCompleted)]
    assert sorted(e.contact for e in done) == ["c1", "c2"]
    assert all(e.wrap_up == 10 for e in done)
    assert any(isinstance(e, AgentStateChanged) and e.state == "wrap_up" for e in outs)
    times = [e.time for e in outs]
    assert times == sorted(times)


def test_json_report_shape(tmp_path, capsys):
    cfg = write(tmp_path, "c.yaml", CONFIG)
    scen = write(tmp_path, "s.jsonl", scenario_lines(
        [{"id": f"c{i}", "arrival": i * 100.0, "queue": "support", "handle_time": 50} for i in range(30)]))
    assert main(["replay", str(cfg), str(scen), "--json", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    for part in [rep["total"], rep["queues"]["support"], rep["queues"]["chat"]]:
        for key in ("offered", "answered", "abandoned", "abandon_rate", "asa", "p_wait", "service_level",
                    "aht", "occupancy"):
            assert key in part
    assert rep["total"]["offered"] == 30
    assert rep["queues"]["chat"]["offered"] == 0
    assert len(rep["intervals"]) == 4  # 3000 s of arrivals in 900 s intervals
    assert rep["intervals"][0]["start_iso"] == "2026-01-05T00:00:00Z"
    assert sum(r["total"]["offered"] for r in rep["intervals"]) == 30


def test_human_output_is_a_table(tmp_path, capsys):
    cfg = write(tmp_path, "c.yaml", CONFIG)
    scen = write(tmp_path, "s.jsonl", scenario_lines([{"id": "c1", "arrival": 0, "queue": "support", "handle_time": 5}]))
    assert main(["replay", str(cfg), str(scen), "--no-progress", "--intervals"]) == 0
    out = capsys.readouterr().out
    assert "TOTAL" in out and "support" in out and "interval (UTC)" in out


def test_bad_scenario_line_exits_2_with_its_line_number(tmp_path, capsys):
    cfg = write(tmp_path, "c.yaml", CONFIG)
    scen = write(tmp_path, "s.jsonl", '{"id": "c1", "arrival": 0, "queue": "support", "handle_time": 5}\n'
                                      '{"id": "c2", "arrival": 1, "queue": "support", "handle_time": -5}\n')
    assert main(["replay", str(cfg), str(scen), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "s.jsonl:2" in err and "handle_time" in err and "Traceback" not in err


def test_broken_config_exits_2_naming_file_field_and_value(tmp_path, capsys):
    cfg = write(tmp_path, "c.yaml", "queues:\n  - name: q\n    service_level: {threshold: twenty}\n")
    assert main(["check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}:3: queues[0].service_level.threshold: expected a number" in err and '"twenty"' in err


def test_check_ok(capsys):
    assert main(["check", str(ROOT / "config" / "default.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_missing_files_are_errors_not_tracebacks(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "no.yaml"), str(tmp_path / "no.jsonl"), "--no-progress"]) == 2
    assert main(["replay", str(ROOT / "config" / "default.yaml"), str(tmp_path / "no.jsonl"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no.jsonl" in err


def test_generate_then_replay_round_trip(tmp_path, capsys):
    out = tmp_path / "gen.jsonl"
    assert main(["scenario", "generate", "--agents", "5", "--load", "0.8", "--aht", "120", "--contacts", "500",
                 "--patience", "60", "--seed", "9", "-o", str(out)]) == 0
    assert sum(1 for _ in Scenario(out)) == 500
    cfg = write(tmp_path, "c.yaml", "queues: [{name: support}]\nagents: [{group: a, count: 5}]\n")
    assert main(["replay", str(cfg), str(out), "--json", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["total"]["offered"] == 500
    assert rep["total"]["answered"] + rep["total"]["abandoned"] == 500


def test_shipped_default_replay_meets_its_story():
    """The README's main job: every contact of the shipped day ends, and the
    numbers are those of a plausible centre (not all zeros)."""
    from acd.config import load_config

    spec = load_config(ROOT / "config" / "default.yaml")
    scen = Scenario(ROOT / "scenarios" / "default.jsonl")
    rep = Replay(spec).run(scen)
    tot = rep["total"]
    assert tot["offered"] == 5600
    assert tot["answered"] + tot["abandoned"] + tot["overflowed"] == 5600
    assert 0.5 < tot["service_level"] < 1 and 0 < tot["abandon_rate"] < 0.1
    assert rep["replay"]["in_system_at_end"] == 0


def test_censored_patience_follows_the_curve_given_the_observed_wait():
    from random import Random

    from acd.scenario import draw_patience

    curve = [(10.0, 0.8), (60.0, 0.4), (120.0, 0.1)]
    rng = Random(5)
    draws = [draw_patience(curve, 0.0, rng.random()) for _ in range(20000)]
    survive_60 = sum(1 for d in draws if d is None or d > 60) / len(draws)
    assert survive_60 == pytest.approx(0.4, abs=0.015)
    never = sum(d is None for d in draws) / len(draws)
    assert never == pytest.approx(0.1, abs=0.01)
    # conditional on having waited 60 s already: S(120 | 60) = 0.1 / 0.4
    cond = [draw_patience(curve, 60.0, rng.random()) for _ in range(20000)]
    assert all(d is None or d >= 60 for d in cond)
    assert sum(1 for d in cond if d is None or d > 120) / len(cond) == pytest.approx(0.25, abs=0.015)


def test_replay_draws_censored_patience_from_the_header(tmp_path):
    lines = [{"type": "scenario", "start": "2026-01-05T00:00:00Z",
              "patience_curves": {"PS": [[5, 0.5], [10, 0.0]]}}]
    # one agent busy for 1000 s; the others wait and must abandon by 10 s after arrival
    lines.append({"id": "c0", "arrival": 0, "queue": "q", "handle_time": 1000})
    lines += [{"id": f"c{i}", "arrival": i, "queue": "q", "handle_time": 10, "patience_curve": "PS",
               "patience_after": 2} for i in range(1, 50)]
    scen = write(tmp_path, "s.jsonl", scenario_lines(lines))
    spec = spec_from_obj({"queues": [{"name": "q"}], "agents": [{"group": "a", "count": 1}]})
    rep = Replay(spec, seed=1).run(Scenario(scen))
    assert rep["total"]["abandoned"] == 49
    assert 2 <= rep["queues"]["q"]["max_wait"] <= 10
