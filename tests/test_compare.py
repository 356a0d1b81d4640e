"""``acd compare``: one scenario under several routing configs, in parallel
processes, side by side (acd.compare)."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from acd.compare import (
    CompareError, add_compare_arguments, compare, deltas, delta_table, labels_for, meets_all, render_compare,
    run_compare, sl_matrix, sl_table,
)

from test_report import Dom, charts, no_external_refs, series

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = str(ROOT / "scenarios" / "default.jsonl")
DEFAULT = str(ROOT / "config" / "default.yaml")
MORE = str(ROOT / "config" / "default-more-staff.yaml")
LEAN = str(ROOT / "config" / "default-lean.yaml")
FAST = str(ROOT / "config" / "default-lean-fast-escalation.yaml")


def cli(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="acd compare")
    add_compare_arguments(p)
    return run_compare(p.parse_args(argv))


@pytest.fixture(scope="module")
def story():
    """The tuning story of the shipped example configs, replayed once."""
    return compare([DEFAULT, MORE, LEAN, FAST], SCENARIO, seed=0)


def test_runs_happen_in_separate_worker_processes(story):
    pids = [r.pid for r in story]
    assert os.getpid() not in pids
    assert len(set(pids)) == len(pids)  # a fresh process per config
    assert [r.report["replay"]["pid"] for r in story] == pids
    assert [r.label for r in story] == ["default", "default-more-staff", "default-lean", "default-lean-fast-escalation"]
    assert all(r.report["replay"]["seed"] == 0 and r.report["replay"]["scenario"] == SCENARIO for r in story)


def test_more_staff_moves_every_kpi_the_right_way(story):
    base, more, lean = story[0], story[1], story[2]
    d = deltas(story)
    for q in ("support", "chat", "TOTAL"):
        dm = d[more.label][q]
        assert dm["offered"] == 0  # the same traffic
        assert dm["service_level"] > 0 and dm["asa"] < 0 and dm["abandoned"] < 0 and dm["occupancy"] < 0
        dl = d[lean.label][q]
        assert dl["service_level"] <= 0 and dl["asa"] >= 0 and dl["abandoned"] >= 0
    # the delta is the difference of the two reports
    assert d[more.label]["support"]["asa"] == pytest.approx(
        more.report["queues"]["support"]["asa"] - base.report["queues"]["support"]["asa"], abs=1e-6)


def test_the_tuning_story_holds(story):
    """Four tier1 agents fewer miss support's target; escalating sooner wins
    it back without them (config/default-lean*.yaml)."""
    m = sl_matrix(story)
    assert m["support"] == {"default": True, "default-more-staff": True, "default-lean": False,
                            "default-lean-fast-escalation": True}
    assert meets_all(story) == ["default", "default-more-staff", "default-lean-fast-escalation"]
    staffed = [sum(g["staffed_s"] for g in r.report["groups"].values()) for r in story]
    assert staffed[2] == staffed[3] < staffed[0] < staffed[1]


def test_identical_configs_give_zero_deltas():
    runs = compare([DEFAULT, DEFAULT], SCENARIO, seed=3)
    assert [r.label for r in runs] == ["default", "default#2"]
    assert runs[0].pid != runs[1].pid
    d = deltas(runs)["default#2"]
    assert set(d) == {"support", "billing", "sales", "chat", "TOTAL"}
    assert all(v == 0 for per in d.values() for v in per.values())
    strip = lambda rep: {k: v for k, v in rep.items() if k != "replay"}  # noqa: E731 (wall time and pid differ)
    assert strip(runs[0].report) == strip(runs[1].report)
    table = delta_table(runs)
    for line in table.splitlines():
        if line.split()[:1] == ["default#2"] or line.lstrip().startswith("default#2"):
            assert not re.search(r"[+-]\d", line), line


def test_terminal_tables(story):
    table = delta_table(story)
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["queue", "config", "offered"]
    assert any(ln.startswith("support") and "default" in ln for ln in lines)
    assert any("TOTAL" in ln for ln in lines)
    lean_support = next(ln for ln in lines if ln.strip().startswith("default-lean ") and "MISSED" in ln)
    assert "80%/20s MISSED" in lean_support
    sl = sl_table(story)
    assert "77.4% MISSED" in sl and sl.splitlines()[-1].split()[:2] == ["all", "queues"]


def test_cli_prints_tables_and_writes_report(tmp_path, capsys):
    out = tmp_path / "cmp.html"
    assert cli([DEFAULT, LEAN, "--scenario", SCENARIO, "--report", str(out)]) == 0
    text = capsys.readouterr().out
    assert "deltas against default" in text and "service-level target" in text
    assert "meets every queue's target: default" in text
    html = out.read_text()
    dom = Dom(html)
    assert dom.errors == []
    no_external_refs(html)
    sl = charts(dom, "service-level")
    assert [s.attrs["data-queue"] for s in sl] == ["support", "billing", "sales", "chat"]
    for svg in sl:
        assert list(series(svg)) == ["default", "default-lean"]  # overlaid: one series per config
    for kind in ("abandoned", "asa", "queue-length", "occupancy", "staffing", "waits"):
        assert charts(dom, kind), kind
    assert "default-lean" in html and "count: 18" in html  # the config diff
    sm = next(t for t in dom.root.iter("table") if t.attrs.get("class") == "slm")
    cells = [td for td in sm.iter("td") if "sl" in (td.attrs.get("class") or "").split()]
    assert sum("missed" in td.attrs["class"] for td in cells) == 2  # lean's support, and lean's "all queues"


def test_cli_json(capsys):
    assert cli([DEFAULT, MORE, "--scenario", SCENARIO, "--json", "--seed", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["seed"] == 5 and [r["label"] for r in data["runs"]] == ["default", "default-more-staff"]
    assert data["deltas"]["default-more-staff"]["TOTAL"]["service_level"] > 0
    assert data["sl_met"]["support"] == {"default": True, "default-more-staff": True}
    assert all(r["report"]["replay"]["seed"] == 5 for r in data["runs"])


@pytest.mark.parametrize("argv, message", [
    (["config/nope.yaml", DEFAULT], "nope.yaml"),
    ([DEFAULT], "at least two configs"),
    ([DEFAULT, DEFAULT, "--jobs", "0"], "--jobs"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert cli([*argv, "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_bad_config_and_scenario_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("queues:\n  - name: q\n    skills: {s: 1}\n    service_level: {threshold: twenty}\n")
    assert cli([DEFAULT, str(bad), "--scenario", SCENARIO]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml:4" in err
    assert cli([DEFAULT, DEFAULT, "--scenario", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "none.jsonl" in err
    # a bad line deep in the scenario is found by a worker: still exit 2, one line
    sc = tmp_path / "s.jsonl"
    sc.write_text('{"id": "c1", "arrival": 1, "queue": "support", "handle_time": 10}\n'
                  '{"id": "c2", "arrival": "soon", "queue": "support", "handle_time": 10}\n')
    assert cli([DEFAULT, DEFAULT, "--scenario", str(sc)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ":2" in err and "Traceback" not in err


def test_unwritable_report_exits_1(tmp_path, capsys):
    assert cli([DEFAULT, DEFAULT, "--scenario", SCENARIO, "--report", str(tmp_path / "no" / "x.html")]) == 1
    assert "x.html" in capsys.readouterr().err


def test_compare_raises_compare_error():
    with pytest.raises(CompareError):
        compare([DEFAULT, str(ROOT / "missing.yaml")], SCENARIO)


def test_labels():
    assert labels_for(["a/x.yaml", "b/y.yaml"]) == ["x", "y"]
    assert labels_for(["a/x.yaml", "b/x.yaml"]) == ["a/x.yaml", "b/x.yaml"]
    assert labels_for(["x.yaml", "x.yaml", "x.yaml"]) == ["x", "x#2", "x#3"]


def test_render_compare_is_self_contained(story):
    html = render_compare(story, title="t", scenario=SCENARIO, seed=0)
    dom = Dom(html)
    assert dom.errors == []
    no_external_refs(html)
    for svg in charts(dom, "asa"):
        assert list(series(svg)) == [r.label for r in story]
    assert len(html.encode()) < 1_000_000


def test_cli_wiring():
    """Once cli.py registers `acd compare`, it runs through main()."""
    from acd import cli as acd_cli

    parser = acd_cli._parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "compare" not in sub.choices:
        pytest.skip("acd compare is not wired into acd.cli yet")
    assert acd_cli.main(["compare", DEFAULT, "--scenario", SCENARIO]) == 2
