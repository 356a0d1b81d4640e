"""The HTML replay report (acd.report) and its SVG charts (acd.svg).

Structure is checked by parsing the page with html.parser; rendering by a
real headless Chromium (Debian's ``chromium``), which must open the report of
a 7-day replay without console errors and draw a non-blank page.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from acd.config import load_config, load_config_text
from acd.replay import Replay
from acd.report import Timeline, render_report, sites_from_spec, sl_marker, write_report
from acd.scenario import HandleTime, QueueTraffic, Scenario, TrafficSpec, generate
from acd.svg import STYLES, Series, bar_chart, nice_ticks, time_chart, time_ticks

from helpers import png_pixels

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "default.yaml"
SCENARIO = ROOT / "scenarios" / "default.jsonl"
MB = 1_000_000

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


# -- a small DOM from html.parser ------------------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text: list[str] = []

    def iter(self, tag: str | None = None):
        for c in self.children:
            if tag is None or c.tag == tag:
                yield c
            yield from c.iter(tag)

    def all_text(self) -> str:
        return "".join(self.text) + "".join(c.all_text() for c in self.children)


class Dom(HTMLParser):
    """Builds a tree and insists on well-formedness: every non-void element
    closed, in order (stricter than browsers, which is the point)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.errors: list[str] = []
        self.doctype = None
        self.feed(html)
        self.close()
        if self.cur is not self.root:
            self.errors.append(f"unclosed <{self.cur.tag}>")

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, dict(attrs), self.cur))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if self.cur.tag != tag:
            self.errors.append(f"</{tag}> closes <{self.cur.tag}>")
            return
        self.cur = self.cur.parent

    def handle_data(self, data: str) -> None:
        self.cur.text.append(data)


def charts(dom: Dom, kind: str) -> list[Node]:
    return [n for n in dom.root.iter("svg") if n.attrs.get("data-chart") == kind]


def series(svg: Node) -> dict[str, int]:
    """data-series -> data-points of the series paths of one chart."""
    return {p.attrs["data-series"]: int(p.attrs["data-points"])
            for p in svg.iter("path") if "data-series" in p.attrs}


def no_external_refs(html: str) -> None:
    assert not re.search(r"https?://", html), "no URL may appear in the page"
    assert "<script" not in html.lower()
    assert "<link" not in html.lower()
    assert "@import" not in html
    assert not re.search(r"\ssrc\s*=", html, re.I)
    assert re.findall(r"url\(([^)]*)\)", html) == [] or all(
        u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html)), "url() may only point inside the page"
    assert not re.search(r"\bhref\s*=", html, re.I), "no links out"


# -- fixtures ----------------------------------------------------------------------------------


def replay_default() -> dict[str, Any]:
    sc = Scenario(SCENARIO)
    rep = Replay(load_config(CONFIG), seed=0, start=sc.start).run(sc)
    rep["replay"].update(scenario="scenarios/default.jsonl", config="config/default.yaml", seed=0)
    return rep


@pytest.fixture(scope="module")
def default_report() -> dict[str, Any]:
    return replay_default()


@pytest.fixture(scope="module")
def default_html(default_report) -> str:
    return render_report(default_report, title="Replay report: default day", config_text=CONFIG.read_text())


WEEK_START = datetime(2026, 1, 5, tzinfo=timezone.utc)
DAY_PROFILE = [0, 0, 0, 0, 0, 0, 5, 20, 40, 50, 50, 45, 40, 45, 50, 45, 40, 30, 20, 10, 5, 0, 0, 0]


def week_report() -> dict[str, Any]:
    """7 days of generated traffic for the default centre (four queues, six
    groups) at modest rates: ~14,000 contacts, a fraction of a second."""
    qs = [QueueTraffic(queue=q, interval=3600, rates=[r * f for r in DAY_PROFILE], handle=HandleTime(mean=240),
                       patience=180)
          for q, f in [("support", 2.0), ("billing", 0.6), ("sales", 0.5), ("chat", 1.0)]]
    spec = TrafficSpec(queues=qs, duration=7 * 86400, seed=7, start=WEEK_START, name="week")
    start = WEEK_START.timestamp()
    items = [(start + c.arrival, c) for c in generate(spec)]
    # the centre closes at the end of the week: the replay runs to then
    from acd.scenario import AgentLine

    end = 7 * 86400 - 1
    items.append((start + end, AgentLine(time=end, agent="tier1-1", state="logout")))
    rep = Replay(load_config(CONFIG), start=start).run(items)
    rep["replay"].update(scenario="generated week", config="config/default.yaml", seed=0)
    return rep


@pytest.fixture(scope="module")
def week_html(tmp_path_factory) -> tuple[Path, dict[str, Any], str]:
    rep = week_report()
    path = tmp_path_factory.mktemp("week") / "week.html"
    write_report(path, rep, config_path=str(CONFIG), spec=load_config(CONFIG))
    return path, rep, path.read_text()


# -- the default replay's report ----------------------------------------------------------------------


def test_report_is_well_formed_html(default_html):
    dom = Dom(default_html)
    assert dom.errors == []
    assert dom.doctype and dom.doctype.lower() == "doctype html"
    (html,) = list(dom.root.iter("html"))
    assert html.attrs.get("lang") == "en"
    assert [c.tag for c in html.children] == ["head", "body"]
    assert any(m.attrs.get("charset") == "utf-8" for m in dom.root.iter("meta"))
    assert next(dom.root.iter("title")).all_text() == "Replay report: default day"
    styles = list(dom.root.iter("style"))
    assert len(styles) == 1 and "@media print" in styles[0].all_text()
    section_ids = [s.attrs.get("id") for s in dom.root.iter("section")]
    assert section_ids == ["kpi", "agents", "highlights", "traffic", "service-level", "asa", "queue-length", "staffing",
                           "occupancy", "waits", "config"]


def test_report_is_self_contained(default_html):
    no_external_refs(default_html)


def test_kpi_table_has_the_report_values(default_report, default_html):
    dom = Dom(default_html)
    table = next(t for t in dom.root.iter("table") if t.attrs.get("class") == "kpi")
    rows = {tr.children[0].all_text(): tr for tr in table.iter("tr") if tr.children[0].tag == "td"}
    assert list(rows) == list(default_report["queues"]) + ["TOTAL"]
    for name, fig in [*default_report["queues"].items(), ("TOTAL", default_report["total"])]:
        cells = [td.all_text() for td in rows[name].children]
        assert cells[1] == f"{fig['offered']:,}"
        assert cells[2] == f"{fig['answered']:,}"
        assert cells[3] == f"{fig['abandoned']:,}"
        assert cells[4] == f"{fig['abandon_rate'] * 100:.1f}%"
        assert cells[6] == f"{fig['asa']:.1f}"
        assert cells[8].startswith(f"{fig['service_level'] * 100:.1f}%")
        assert cells[12] == f"{fig['aht']:.1f}"
        assert cells[13] == f"{fig['occupancy'] * 100:.1f}%"
        sl_td = rows[name].children[8]
        if name != "TOTAL":
            # coloured against the target, with a mark that survives grayscale
            assert cells[9] == f"{fig['sl_target'] * 100:g}% in {fig['sl_threshold']:g} s"
            assert ("met" in sl_td.attrs["class"].split()) == fig["sl_met"]
            assert ("missed" in sl_td.attrs["class"].split()) == (not fig["sl_met"])
            assert cells[8].endswith("\u2713" if fig["sl_met"] else "\u2717")
    # the agent-group table
    groups = next(t for t in dom.root.iter("table") if t.attrs.get("class") == "groups")
    text = groups.all_text()
    for name, fig in default_report["groups"].items():
        assert name in text and f"{fig['occupancy'] * 100:.1f}%" in text


def test_one_svg_per_chart_with_the_right_series(default_report, default_html):
    dom = Dom(default_html)
    queues = list(default_report["queues"])
    groups = list(default_report["groups"])
    n = len(Timeline.of([default_report]).starts)
    assert n == len(default_report["intervals"])  # the default day has no gaps

    traffic = charts(dom, "traffic")
    assert [s.attrs["data-queue"] for s in traffic] == ["TOTAL"] + queues
    for svg in traffic:
        assert series(svg) == {"offered": n, "answered": n, "abandoned": n}

    sl = charts(dom, "service-level")
    assert [s.attrs["data-queue"] for s in sl] == queues
    for svg, q in zip(sl, queues):
        with_traffic = sum(1 for row in default_report["intervals"] if row["queues"].get(q, {}).get("offered"))
        assert series(svg) == {"service level": with_traffic}  # no point where nothing was offered
        (ref,) = [p for p in svg.iter("path") if "data-ref" in p.attrs]
        assert ref.attrs["stroke-dasharray"]  # the target: a dashed line
        assert ref.attrs["data-ref"].startswith(f"target {default_report['queues'][q]['sl_target'] * 100:g}%")

    (asa,) = charts(dom, "asa")
    assert list(series(asa)) == queues

    qlen = charts(dom, "queue-length")
    assert len(qlen) == len(queues)
    for svg in qlen:
        assert series(svg) == {"average waiting": n, "most waiting": n}

    staffing = charts(dom, "staffing")
    assert [s.attrs["data-group"] for s in staffing] == groups
    for svg in staffing:
        assert series(svg) == {"busy": n, "staffed": n}

    (occ,) = charts(dom, "occupancy")
    assert list(series(occ)) == groups

    waits = charts(dom, "waits")
    assert [s.attrs["data-queue"] for s in waits] == queues
    for svg, q in zip(waits, queues):
        names = {r.attrs.get("data-series") for r in svg.iter("rect") if r.attrs.get("data-series")}
        assert names == {"answered", "abandoned"}
        (marker,) = [p for p in svg.iter("path") if "data-ref" in p.attrs]
        assert marker.attrs["data-ref"] == f"threshold {default_report['queues'][q]['sl_threshold']:g} s"

    # every chart: a title, a legend, tooltips (SVG <title>, no script)
    all_svgs = [s for s in dom.root.iter("svg") if "data-chart" in s.attrs]
    assert len(all_svgs) == len(traffic) + len(sl) + 1 + len(qlen) + len(staffing) + 1 + len(waits)
    for svg in all_svgs:
        assert svg.attrs["viewbox"].startswith("0 0 ")
        assert any(t.all_text() for t in svg.iter("title"))


def test_histogram_counts_are_the_reports(default_report, default_html):
    dom = Dom(default_html)
    for svg in charts(dom, "waits"):
        q = svg.attrs["data-queue"]
        hist = default_report["wait_histogram"]["queues"][q]
        tips = [t.all_text() for r in svg.iter("rect") if r.attrs.get("data-series") == "answered"
                for t in r.iter("title")]
        shown = [int(t.split("answered ")[1].split(" ")[0].replace(",", "")) for t in tips]
        assert shown == [v for v in hist["answered"] if v]


def test_report_size_and_config_appendix(default_html):
    assert len(default_html.encode()) < 400_000
    assert "escalation:" in default_html and "tier1" in default_html


def test_grouping_is_a_parameter(default_report):
    sites = {"tier1": "manila", "trainee": "manila", "tier2": "lisbon", "billing": "lisbon", "sales": "lisbon",
             "chat": "lisbon"}
    html = render_report(default_report, title="by site", group_by=sites, group_label="site")
    dom = Dom(html)
    assert dom.errors == []
    staffing = charts(dom, "staffing")
    assert [s.attrs["data-group"] for s in staffing] == ["manila", "lisbon"]
    (occ,) = charts(dom, "occupancy")
    assert list(series(occ)) == ["manila", "lisbon"]
    assert "Agents staffed and busy per site" in html
    # a function works too
    html2 = render_report(default_report, title="x", group_by=lambda g: "all")
    assert [s.attrs["data-group"] for s in charts(Dom(html2), "staffing")] == ["all"]


def test_sites_from_spec_reads_the_site_attribute():
    spec = load_config_text("queues: [{name: q, skills: {s: 1}}]\nagents:\n"
                            "  - {group: a, count: 1, skills: {s: 1}, attributes: {site: manila}}\n"
                            "  - {group: b, count: 1, skills: {s: 1}, attributes: {site: porto}}\n")
    assert sites_from_spec(spec) == {"a": "manila", "b": "porto"}
    assert sites_from_spec(load_config(CONFIG)) is None


def test_write_report(tmp_path, default_report):
    path = tmp_path / "out.html"
    size = write_report(path, default_report, config_path=str(CONFIG), spec=load_config(CONFIG))
    assert path.stat().st_size == size
    html = path.read_text()
    assert "<title>Replay report: default.jsonl</title>" in html
    assert "interval: 900" in html  # the config appendix
    with pytest.raises(OSError):
        write_report(tmp_path / "missing-dir" / "x.html", default_report)


def test_gaps_break_lines_and_ratios_are_not_zero():
    """Intervals where nothing happened: counts 0, SL/ASA absent (no false 0 %)."""
    spec = load_config_text("queues: [{name: q, skills: {s: 1}}]\nagents: [{group: a, count: 1, skills: {s: 1}, "
                            "initial: offline}]\n")
    from acd.scenario import AgentLine, ContactLine

    t0 = 1_767_600_000.0
    items = [(t0, AgentLine(time=0, agent="a-1", state="login")), (t0 + 1, AgentLine(time=1, agent="a-1", state="ready")),
             (t0 + 10, ContactLine(id="c1", arrival=10, queue="q", handle_time=60)),
             (t0 + 3 * 3600, ContactLine(id="c2", arrival=3 * 3600, queue="q", handle_time=60)),
             (t0 + 3 * 3600 + 200, AgentLine(time=0, agent="a-1", state="logout"))]
    rep = Replay(spec, start=t0).run(items)
    tl = Timeline.of([rep], 900)
    assert len(tl.starts) == 13 and tl.starts[0] == t0
    sl = tl.queue(0, "q", "service_level")
    assert sl[0] == 1.0 and sl[-1] == 1.0 and sl[1:-1] == [None] * 11
    assert tl.queue(0, "q", "offered") == [1] + [0] * 11 + [1]
    dom = Dom(render_report(rep, title="gaps"))
    (svg,) = charts(dom, "service-level")
    (path,) = [p for p in svg.iter("path") if p.attrs.get("data-series") == "service level"]
    assert path.attrs["d"].count("M") == 2 and path.attrs["data-points"] == "2"


# -- the 7-day report ---------------------------------------------------------------------------------------


def test_week_report_stays_small(week_html):
    path, rep, html = week_html
    assert len(rep["intervals"]) == 7 * 96
    size = path.stat().st_size
    assert size < 5 * MB, f"{size / MB:.2f} MB"
    dom = Dom(html)
    assert dom.errors == []
    no_external_refs(html)
    (total,) = [s for s in charts(dom, "traffic") if s.attrs["data-queue"] == "TOTAL"]
    assert series(total)["offered"] == len(Timeline.of([rep], 900).starts) >= 672
    # multi-day axis: midnights labelled with the weekday
    labels = [t.all_text() for t in total.iter("text")]
    for day in ("Mon 5 Jan", "Tue 6 Jan", "Sun 11 Jan"):
        assert day in labels


# -- the SVG helpers ---------------------------------------------------------------------------------------------


def test_nice_ticks():
    assert nice_ticks(100) == [0, 20, 40, 60, 80, 100]
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0) == [0, 1.0] or nice_ticks(0)[-1] >= 1
    assert nice_ticks(3)[-1] >= 3 and all(float(t).is_integer() for t in nice_ticks(3))
    t = nice_ticks(187)
    assert t[0] == 0 and t[-1] >= 187 and len(t) <= 7


def test_time_ticks_single_day_and_week():
    t0 = datetime(2026, 1, 5, 8, tzinfo=timezone.utc).timestamp()
    ticks, labels = time_ticks(t0, t0 + 12 * 3600, 600)
    assert labels[0] == ("08:00", "Mon 5 Jan")  # the date once, under the first tick
    assert all(b == "" for _, b in labels[1:])
    assert ticks[1] - ticks[0] in (3600, 7200)
    ticks, labels = time_ticks(t0, t0 + 7 * 86400, 600)
    assert ticks[1] - ticks[0] == 86400
    assert labels[0] == ("Tue 6 Jan", "")


def test_time_chart_marks_series_and_breaks_gaps():
    starts = [i * 900.0 for i in range(6)]
    svg = time_chart(starts, 900, [Series("a", [1, 2, None, 4, 5, None]), Series("b", [0, 0, 0, 0, 0, 0], STYLES[1])],
                     title="T & <t>")
    dom = Dom(svg)
    assert dom.errors == []
    root = dom.root.children[0]
    assert root.tag == "svg" and root.attrs["data-chart"] == "time"
    assert root.attrs["aria-label"] == "T & <t>"
    paths = {p.attrs["data-series"]: p for p in root.iter("path") if "data-series" in p.attrs}
    assert paths["a"].attrs["data-points"] == "4" and paths["a"].attrs["d"].count("M") == 2
    assert paths["b"].attrs["stroke-dasharray"] == STYLES[1].dash  # grayscale: dashes tell series apart
    # hover: a column with a <title> per interval that has something to say
    hover = next(s for s in root.iter("svg") if s.attrs.get("class") == "hv")
    tips = [t.all_text() for t in hover.iter("title")]
    assert len(tips) == 4 and "a 4" in tips[2] and "b 0" in tips[2]


def test_bar_chart_cuts_a_towering_bar():
    svg = bar_chart(["0-10", "10-20", "20-30"], [[Series("n", [1000, 30, 20])]], title="h")
    dom = Dom(svg)
    cut = [p for p in dom.root.iter("path") if "data-cut" in p.attrs]
    assert [c.attrs["data-cut"] for c in cut] == ["1000"]
    assert "1,000" in [t.all_text() for t in dom.root.iter("text")]
    # the axis fits the other bars
    labels = [t.all_text() for t in dom.root.iter("text")]
    assert "40" in labels and "1,000" in labels and "800" not in labels


def test_sl_marker_position():
    edges = [0, 10, 20, 30, 45, 60]
    assert sl_marker(edges, 20) == 2.0
    assert sl_marker(edges, 15) == 1.5
    assert sl_marker(edges, 37.5) == 3.5
    assert sl_marker(edges, 60) == 5.0


# -- a real browser -----------------------------------------------------------------------------------------------


def chromium() -> str:
    for cand in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser")):
        if cand and os.path.exists(cand):
            return cand
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")


def run_chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--host-resolver-rules=MAP * ~NOTFOUND", *extra, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def console_errors(stderr: str) -> list[str]:
    """Console messages and page errors Chromium logs to stderr."""
    return [ln for ln in stderr.splitlines()
            if "CONSOLE" in ln or "Uncaught" in ln or "Failed to load resource" in ln or "net::ERR" in ln]


def png_size_and_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of an 8-bit RGB/RGBA PNG: a blank
    page has one, a report hundreds (counting stops past 5,000)."""
    w, h, rows = png_pixels(data)
    colours: set[bytes] = set()
    for row in rows:
        colours.update(row[i:i + 3] for i in range(0, len(row), 3))
        if len(colours) > 5000:
            break
    return w, h, len(colours)


def test_chromium_opens_the_week_report_without_errors(tmp_path, week_html):
    path, rep, html = week_html
    res = run_chromium(tmp_path, path, "--dump-dom")
    assert res.returncode == 0, res.stderr[-2000:]
    assert console_errors(res.stderr) == []
    dom_text = res.stdout
    assert dom_text.count("<svg") == html.count("<svg")  # every chart made it into the DOM
    assert "Key figures per queue" in dom_text


def test_console_error_detection_works(tmp_path):
    """The check above would see an error: a page that logs one is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); undefinedCall();</script></body></html>")
    res = run_chromium(tmp_path, bad, "--dump-dom")
    errs = console_errors(res.stderr)
    assert any("boom" in e for e in errs) and any("undefinedCall" in e for e in errs)


def test_chromium_screenshot_is_not_blank(tmp_path, default_html):
    page = tmp_path / "report.html"
    page.write_text(default_html)
    shot = tmp_path / "shot.png"
    res = run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1400,3000")
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    assert console_errors(res.stderr) == []
    w, h, colours = png_size_and_colours(shot.read_bytes())
    assert (w, h) == (1400, 3000)
    assert colours > 50, colours
    # control: a blank page at the same size is one colour and a far smaller file
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body style='background:#fff'></body></html>")
    blank_shot = tmp_path / "blank.png"
    run_chromium(tmp_path, blank, f"--screenshot={blank_shot}", "--window-size=1400,3000")
    assert png_size_and_colours(blank_shot.read_bytes())[2] <= 2
    assert shot.stat().st_size > 10 * blank_shot.stat().st_size


def test_an_interval_cut_by_the_replay_end_is_not_shown_as_a_drop():
    """Interval averages are over whole intervals: one the replay covered
    only half of (it ended at 450 s) is scaled back, so staffing does not
    seem to halve at the end."""
    row = {"start": 0.0, "total": {"offered": 1, "avg_queue_len": 0.5}, "queues": {"q": {"offered": 1, "avg_queue_len": 0.5}},
           "groups": {"a": {"staffed": 2.0, "busy": 1.0, "occupancy": 0.5}}}
    rep = {"replay": {"start": 0.0, "end": 450.0}, "intervals": [row]}
    tl = Timeline.of([rep], 900)
    assert tl.covered == [[0.5]]
    assert tl.groups(0, ["a"]) == ([4.0], [2.0], [0.5])
    assert tl.queue(0, "q", "avg_queue_len") == [1.0]
    assert tl.queue(0, "q", "offered") == [1]  # counts are counts
