"""Tests for acd.scenario: reading JSONL/CSV/TSV scenarios in chunks with
errors that name file, line, field and value; writing; the traffic generator
and its CLI glue."""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tracemalloc
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from acd.core.spec import SpecError
from acd.scenario import (
    DEFAULT_START,
    AgentLine,
    ContactLine,
    HandleTime,
    QueueTraffic,
    Scenario,
    ScenarioError,
    TrafficSpec,
    add_generate_arguments,
    generate,
    load_traffic,
    mmc_traffic,
    run_generate,
    to_epoch,
    traffic_from_obj,
    write_scenario,
)

UTC = timezone.utc


def write(tmp_path, text: str, name: str = "scen.jsonl"):
    path = tmp_path / name
    path.write_text(text)
    return path


def contact(i: int, arrival: float, **kw) -> str:
    d = {"id": f"c{i}", "arrival": arrival, "queue": "support", "handle_time": 180.0}
    d.update(kw)
    return json.dumps(d)


def read(path, **kw):
    return list(Scenario(path, **kw))


def error_of(path, **kw) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        read(path, **kw)
    return info.value


def z_mean(sample: list[float], mean: float, sd: float) -> float:
    """z-score of the sample mean against the true mean and sd."""
    return (statistics.fmean(sample) - mean) / (sd / math.sqrt(len(sample)))


# --- reading: basics -------------------------------------------------------


def test_default_start_is_monday_2026_01_05_utc():
    d = datetime.fromtimestamp(DEFAULT_START, UTC)
    assert (d.year, d.month, d.day, d.hour, d.minute) == (2026, 1, 5, 0, 0)
    assert d.weekday() == 0


def test_round_trip(tmp_path):
    start = datetime(2026, 2, 2, 8, 0, tzinfo=UTC).timestamp()
    items = [
        AgentLine(time=0.0, agent="tier1-1", state="login"),
        ContactLine(id="c1", arrival=1.5, queue="support", handle_time=183.2),
        ContactLine(
            id="c2",
            arrival=2.0,
            queue="sales",
            handle_time=0.0,
            channel="chat",
            patience=60.0,
            priority=2.5,
            skills={"english": 1, "sales": 3},
            attributes={"vip": True, "type": "x", "nested": {"a": [1, 2]}},
        ),
        AgentLine(time=3.0, agent="tier1-1", state="not_ready", reason="lunch"),
        ContactLine(id="c3", arrival=datetime(2026, 2, 2, 8, 0, 4, tzinfo=UTC), queue="support", handle_time=1.0),
        AgentLine(time=10.0, agent="tier1-1", state="logout"),
    ]
    path = tmp_path / "out.jsonl"
    assert write_scenario(path, items, start=start, name="round trip") == len(items)
    scen = Scenario(path)
    assert scen.start == start
    assert scen.name == "round trip"
    got = list(scen)
    assert [line for _, line in got] == items
    assert [t for t, _ in got] == [start, start + 1.5, start + 2, start + 3, start + 4, start + 10]
    # contact lines are written without the default "type" tag, agent lines with it
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"type": "scenario", "start": "2026-02-02T08:00:00Z", "name": "round trip"}
    assert '"type"' not in lines[2] and json.loads(lines[1])["type"] == "agent"


def test_scenario_is_reiterable_and_lazy(tmp_path):
    path = write(tmp_path, contact(1, 0) + "\n" + contact(2, 1) + "\n")
    scen = Scenario(path)
    assert read(path) == list(scen) == list(scen)
    path.write_text(contact(1, 0) + "\n")  # read again on each iteration
    assert len(list(scen)) == 1


def test_default_start_without_header(tmp_path):
    path = write(tmp_path, contact(1, 12.5) + "\n")
    scen = Scenario(path)
    assert scen.start == DEFAULT_START and scen.name is None
    [(t, line)] = list(scen)
    assert t == DEFAULT_START + 12.5
    assert line == ContactLine(id="c1", arrival=12.5, queue="support", handle_time=180.0)


def test_relative_and_iso_arrivals_with_header_start(tmp_path):
    text = "\n".join(
        [
            '{"type": "scenario", "start": "2026-03-02T09:00:00+01:00", "name": "mixed", "description": "d"}',
            contact(1, 0),
            contact(2, "2026-03-02T08:00:30Z"),  # = offset 30 (09:00+01:00 is 08:00Z)
            contact(3, "2026-03-02T09:00:45+01:00"),  # offset 45
            contact(4, "2026-03-02T08:01:00"),  # naive: UTC, offset 60
            contact(5, 61),
        ]
    )
    scen = Scenario(write(tmp_path, text))
    start = datetime(2026, 3, 2, 8, 0, tzinfo=UTC).timestamp()
    assert scen.start == start
    assert (scen.name, scen.description) == ("mixed", "d")
    got = list(scen)
    assert [t - start for t, _ in got] == [0, 30, 45, 60, 61]
    assert isinstance(got[1][1].arrival, datetime)  # the line keeps the decoded form
    assert got[3][1].arrival == datetime(2026, 3, 2, 8, 1)


def test_to_epoch():
    assert to_epoch(12.5, 1000.0) == 1012.5
    assert to_epoch(datetime(2026, 1, 5, 0, 0, 10, tzinfo=UTC), 0.0) == DEFAULT_START + 10
    assert to_epoch(datetime(2026, 1, 5, 0, 0, 10), 0.0) == DEFAULT_START + 10  # naive: UTC
    assert to_epoch(datetime(2026, 1, 5, 1, 0, 10, tzinfo=timezone(timedelta(hours=1))), 0.0) == DEFAULT_START + 10


def test_agent_lines(tmp_path):
    text = "\n".join(
        [
            '{"type": "agent", "time": 0, "agent": "tier1-1", "state": "login"}',
            '{"type": "agent", "time": 0, "agent": "tier1-2", "state": "login"}',
            contact(1, 5),
            '{"type": "agent", "time": 60, "agent": "tier1-1", "state": "not_ready", "reason": "lunch"}',
            '{"type": "agent", "time": 3600, "agent": "tier1-1", "state": "ready"}',
            '{"type": "contact", "id": "c2", "arrival": 3600, "queue": "support", "handle_time": 1}',
            '{"type": "agent", "time": "2026-01-05T02:00:00Z", "agent": "tier1-2", "state": "logout"}',
        ]
    )
    got = read(write(tmp_path, text))
    assert [round(t - DEFAULT_START, 6) for t, _ in got] == [0, 0, 5, 60, 3600, 3600, 7200]
    assert got[3][1] == AgentLine(time=60.0, agent="tier1-1", state="not_ready", reason="lunch")
    assert [type(x).__name__ for _, x in got] == ["AgentLine"] * 2 + ["ContactLine"] + ["AgentLine"] * 2 + [
        "ContactLine",
        "AgentLine",
    ]


def test_comments_blank_lines_and_line_endings(tmp_path):
    text = (
        "# a recorded Monday\r\n"
        "\r\n"
        "// header after comments is still the header\n"
        '{"type": "scenario", "start": "2026-01-05T00:00:00Z"}\n'
        "   \n"
        + contact(1, 1)
        + "\r\n"
        "   # indented comment\n"
        "\t// indented comment\n"
        "#" + contact(99, 0) + "\n"
        "\n\n" + contact(2, 2) + "\n"
        "// last comment, no newline"
    )
    got = read(write(tmp_path, text))
    assert [x.id for _, x in got] == ["c1", "c2"]
    # a final line without a newline still counts
    got = read(write(tmp_path, contact(1, 1) + "\n" + contact(2, 2)))
    assert [x.id for _, x in got] == ["c1", "c2"]


def test_empty_and_comment_only_files(tmp_path):
    assert read(write(tmp_path, "")) == []
    assert read(write(tmp_path, "# nothing\n\n// here\n")) == []
    assert read(write(tmp_path, '{"type": "scenario", "name": "empty"}\n')) == []


def test_utf8_bom(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + contact(1, 1).encode() + b"\n")
    assert [x.id for _, x in read(path)] == ["c1"]
    path.write_bytes(b'\xef\xbb\xbf{"type": "scenario", "name": "b"}\n' + contact(1, 1).encode() + b"\n")
    assert Scenario(path).name == "b"
    assert [x.id for _, x in read(path)] == ["c1"]


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        Scenario(tmp_path / "nope.jsonl")
    assert info.value.line is None
    assert str(info.value).startswith(str(tmp_path / "nope.jsonl") + ": cannot read")


# --- reading: errors -------------------------------------------------------

GOOD = contact(1, 10)
ERRORS = [
    # (bad line, field named, message fragment)
    ('{"id": "c2", "arrival": 11, "queue": "support", "handle_time": 3', None, "invalid JSON"),
    ('{"id": "c2", "arrival": 11, "queue": "support" "handle_time": 3}', None, "invalid JSON (expected"),
    ("not json at all", None, "invalid JSON"),
    ('{"id": "c2", "arrival": 11, "queue": 5, "handle_time": 3}', "queue", "queue: expected a string, got 5"),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handle_time": "3"}', "handle_time", 'expected a number, got "3"'),
    ('{"id": "c2", "arrival": true, "queue": "s", "handle_time": 3}', "arrival", "got true"),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handle_time": -3}', "handle_time", "expected a number >= 0, got -3"),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handle_time": 3, "patience": -1.5}', "patience", "got -1.5"),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handel_time": 3}', "handel_time", 'unknown field "handel_time"'),
    ('{"id": "c2", "arrival": 11, "handle_time": 3}', "queue", 'missing required field "queue"'),
    ('{"id": "", "arrival": 11, "queue": "s", "handle_time": 3}', "id", 'got ""'),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handle_time": 3, "channel": "fax"}', "channel", 'got "fax"'),
    ('{"id": "c2", "arrival": 11, "queue": "s", "handle_time": 3, "skills": {"x": 11}}', "skills", "<= 10"),
    ('{"id": "c2", "arrival": "monday", "queue": "s", "handle_time": 3}', "arrival", 'ISO-8601 timestamp, got "monday"'),
    ('{"id": "c2", "arrival": -1, "queue": "s", "handle_time": 3}', "arrival", "got -1"),
    ('{"id": "c2", "arrival": 9.5, "queue": "s", "handle_time": 3}', "arrival", "9.5 is earlier than the previous line's time 10"),
    ('{"type": "agent", "time": 11, "agent": "a", "state": "gone"}', "state", 'expected one of login, logout, ready, not_ready, got "gone"'),
    ('{"type": "agent", "time": 9, "agent": "a", "state": "ready"}', "time", "time: 9 is earlier than the previous line's time 10"),
    ('{"type": "agent", "time": 11, "agent": "a", "state": "ready", "queue": "s"}', "queue", 'unknown field "queue"'),
    ('{"type": "agent", "time": 11, "state": "ready"}', "agent", 'missing required field "agent"'),
    ('{"type": "callback", "id": "c2"}', "type", 'got "callback"'),
    ('{"type": "scenario", "name": "late"}', "scenario", "header must be the first line"),
    ("[1, 2]", None, "expected an object, got [1,2]"),
]


@pytest.mark.parametrize("bad,field,fragment", ERRORS)
@pytest.mark.parametrize("chunk_size", [1 << 20, 40])
def test_error_names_line_field_and_value(tmp_path, bad, field, fragment, chunk_size):
    text = "# line 1\n" + GOOD + "\n\n" + contact(2, 10) + "\n" + bad + "\n" + contact(3, 20) + "\n"
    path = write(tmp_path, text)
    yielded = []
    with pytest.raises(ScenarioError) as info:
        for item in Scenario(path, chunk_size=chunk_size):
            yielded.append(item)
    err = info.value
    assert err.line == 5
    assert err.file == str(path)
    assert str(err) == f"{path}:5: {err.message}"
    assert fragment in err.message
    if field is not None:
        assert field in err.message
    assert [x.id for _, x in yielded] == ["c1", "c2"]  # the lines before the error came through


def test_error_message_exact(tmp_path):
    path = write(tmp_path, "\n".join(contact(i, i) for i in range(1, 17)) + "\n" + contact(17, 17, handle_time=-3) + "\n")
    assert str(error_of(path)) == f"{path}:17: handle_time: expected a number >= 0, got -3"
    path = write(tmp_path, contact(1, 1) + "\n" + '{"id": "c2", "arrival": 2, "queue": "s", "handel_time": 3}\n')
    assert str(error_of(path)) == f'{path}:2: unknown field "handel_time"'


def test_out_of_order_iso_names_both_times(tmp_path):
    path = write(tmp_path, contact(1, "2026-01-05T10:00:00Z") + "\n" + contact(2, "2026-01-05T09:00:00+00:00") + "\n")
    err = error_of(path)
    assert err.line == 2
    assert "2026-01-05T09:00:00Z" in err.message and "2026-01-05T10:00:00Z" in err.message


def test_bad_header_fails_at_construction(tmp_path):
    path = write(tmp_path, '# c\n{"type": "scenario", "start": "soon"}\n' + GOOD + "\n")
    with pytest.raises(ScenarioError) as info:
        Scenario(path)
    assert info.value.line == 2 and "start" in info.value.message
    path = write(tmp_path, '{"type": "scenario", "nmae": "x"}\n')
    with pytest.raises(ScenarioError, match='unknown field "nmae"'):
        Scenario(path)


def test_equal_times_are_in_order(tmp_path):
    path = write(tmp_path, "\n".join(contact(i, 5) for i in range(1, 4)) + "\n")
    assert len(read(path)) == 3


# --- reading: chunks -------------------------------------------------------


def fixed_line(i: int, t: float) -> str:
    """A contact line exactly 64 bytes long (newline included)."""
    line = contact(i, t).replace(" ", "")
    return line + " " * (63 - len(line)) + "\n"


def test_chunk_boundaries_give_the_same_items(tmp_path):
    parts = ['{"type": "scenario", "name": "chunks"}\n', "# comment\n"]
    for i in range(1, 301):
        parts.append(contact(i, i, attributes={"note": "x" * (i % 37)}) + "\n")
        if i % 7 == 0:
            parts.append('{"type": "agent", "time": %d, "agent": "a%d", "state": "ready"}\n' % (i, i))
        if i % 11 == 0:
            parts.append("\n// comment between\n")
        if i % 13 == 0:
            parts.append("   # indented comment\n")
    path = write(tmp_path, "".join(parts))
    expected = read(path)
    assert len(expected) == 300 + 300 // 7
    for size in (1, 2, 7, 63, 64, 65, 100, 333, 4096):
        assert read(path, chunk_size=size) == expected, size


def test_bad_line_in_third_chunk(tmp_path):
    lines = [fixed_line(i, i) for i in range(1, 21)]
    lines[10] = fixed_line(11, 11).replace('"handle_time":180.0', '"handle_time":-18.0')
    assert all(len(x) == 64 for x in lines)
    path = write(tmp_path, "".join(lines))
    # chunks of 256 bytes hold 4 lines each: line 11 is in the 3rd chunk
    chunks = list(Scenario(path, chunk_size=256)._chunks())
    assert b"-18.0" in chunks[2] and b"-18.0" not in chunks[0] + chunks[1]
    err = error_of(path, chunk_size=256)
    assert (err.line, err.message) == (11, "handle_time: expected a number >= 0, got -18.0")
    # a chunk smaller than a line: lines straddle chunks
    for size in (10, 100, 200):
        assert error_of(path, chunk_size=size).line == 11


def test_out_of_order_in_a_later_chunk_counts_lines(tmp_path):
    # fast-path chunks do not count lines; an error must still get the right number
    lines = ["# header comment\n", "\n"] + [fixed_line(i, i) for i in range(1, 101)]
    lines[2 + 77] = fixed_line(78, 3)
    path = write(tmp_path, "".join(lines))
    for size in (256, 1000, 1 << 20):
        err = error_of(path, chunk_size=size)
        assert err.line == 80, size
        assert err.message.startswith("arrival: 3 is earlier than the previous line's time 77")


@pytest.mark.parametrize("size", [1, 50, 64, 129, 1000, 1 << 20])
def test_every_error_position_reports_its_line(tmp_path, size):
    base = []
    for i in range(1, 41):
        base.append(contact(i, i))
        if i % 5 == 0:
            base.append('{"type": "agent", "time": %d, "agent": "a", "state": "ready"}' % i)
        if i % 6 == 0:
            base.append("")
        if i % 9 == 0:
            base.append("# note")
    for k in range(0, len(base), 3):
        if not base[k].startswith("{"):
            continue
        lines = list(base)
        lines[k] = lines[k].replace('"state": "ready"', '"state": "off"').replace('"handle_time": 180.0', '"handle_time": -1')
        path = write(tmp_path, "\n".join(lines) + "\n")
        assert error_of(path, chunk_size=size).line == k + 1


def test_memory_stays_flat(tmp_path):
    def peak_for(lines: int) -> tuple[int, int]:
        path = tmp_path / f"big{lines}.jsonl"
        with open(path, "w") as f:
            for i in range(lines):
                f.write(contact(i, i * 0.01, attributes={"k": i}) + "\n")
        tracemalloc.start()
        try:
            n = 0
            for _ in Scenario(path, chunk_size=64 * 1024):
                n += 1
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert n == lines
        return peak, path.stat().st_size

    small, _ = peak_for(10_000)
    big, size = peak_for(80_000)
    assert size > 8_000_000
    assert big < small * 1.2 + 100_000  # 8 times the lines, not more memory
    assert big < size / 8


# --- CSV / TSV -------------------------------------------------------------

CSV_TEXT = """\
# a comment row
type,id,arrival,queue,handle_time,channel,patience,priority,skills,attributes,time,agent,state,reason
agent,,,,,,,,,,0,tier1-1,login,
,c1,1.5,support,183.2,,,,,,,,,
contact,c2,2,sales,0,chat,60,2.5,sales:3;english:1,"{""vip"": true, ""tier"": ""gold""}",,,,

agent,,,,,,,,,,3,tier1-1,not_ready,lunch
,c3,2026-01-05T00:00:04Z,support,1,,,,,,,,,
"""


def csv_to_tsv(text: str) -> str:
    out = []
    for line in text.splitlines():
        if line.startswith("#") or not line:
            out.append(line)
            continue
        cells = next(iter(__import__("csv").reader([line])))
        out.append("\t".join(cells))
    return "\n".join(out) + "\n"


def test_csv_and_tsv_match_jsonl(tmp_path):
    csv_path = write(tmp_path, CSV_TEXT, "scen.csv")
    tsv_path = write(tmp_path, csv_to_tsv(CSV_TEXT), "scen.tsv")
    expected = [
        AgentLine(time=0.0, agent="tier1-1", state="login"),
        ContactLine(id="c1", arrival=1.5, queue="support", handle_time=183.2),
        ContactLine(
            id="c2",
            arrival=2.0,
            queue="sales",
            handle_time=0.0,
            channel="chat",
            patience=60.0,
            priority=2.5,
            skills={"sales": 3, "english": 1},
            attributes={"vip": True, "tier": "gold"},
        ),
        AgentLine(time=3.0, agent="tier1-1", state="not_ready", reason="lunch"),
        ContactLine(id="c3", arrival=datetime(2026, 1, 5, 0, 0, 4, tzinfo=UTC), queue="support", handle_time=1.0),
    ]
    from_csv = read(csv_path)
    from_tsv = read(tsv_path)
    assert [x for _, x in from_csv] == expected
    assert from_tsv == from_csv
    jsonl = tmp_path / "same.jsonl"
    write_scenario(jsonl, expected)
    assert read(jsonl) == from_csv
    assert [t - DEFAULT_START for t, _ in from_csv] == [0, 1.5, 2, 3, 4]


def test_csv_minimal_columns(tmp_path):
    path = write(tmp_path, "id,arrival,queue,handle_time\nc1,0,support,10\nc2,5,support,20\n", "s.csv")
    assert [x for _, x in read(path)] == [
        ContactLine(id="c1", arrival=0.0, queue="support", handle_time=10.0),
        ContactLine(id="c2", arrival=5.0, queue="support", handle_time=20.0),
    ]


@pytest.mark.parametrize(
    "row,field,fragment",
    [
        ("c2,5,support,-3,", "handle_time", "expected a number >= 0"),
        ("c2,5,support,abc,", "handle_time", 'got "abc"'),
        ("c2,5,,3,", "queue", 'missing required field "queue"'),
        ("c2,1,support,3,", "arrival", "earlier than the previous line's time 4"),
        ("c2,5,support,3,support=3", "skills", 'expected "skill:level'),
        ("c2,5,support,3,a:1,extra", None, "cells but"),
    ],
)
def test_csv_errors(tmp_path, row, field, fragment):
    path = write(tmp_path, "id,arrival,queue,handle_time,skills\n\nc1,4,support,3,\n" + row + "\n", "s.csv")
    err = error_of(path)
    assert err.line == 4
    assert fragment in err.message
    if field:
        assert field in err.message


def test_csv_bad_header_and_agent_state(tmp_path):
    with pytest.raises(ScenarioError) as info:
        Scenario(write(tmp_path, "# c\nid,arrival,queue,handel_time\n", "s.csv"))
    assert info.value.line == 2 and 'unknown column "handel_time"' in info.value.message
    path = write(tmp_path, "type,time,agent,state\nagent,0,a1,gone\n", "s.tsv".replace("tsv", "csv"))
    err = error_of(path)
    assert err.line == 2 and err.message.startswith("state: expected one of")


# --- writing ---------------------------------------------------------------


def test_write_refuses_csv_names(tmp_path):
    with pytest.raises(ValueError):
        write_scenario(tmp_path / "x.csv", [])


def test_write_default_start_header(tmp_path):
    path = tmp_path / "x.jsonl"
    assert write_scenario(path, iter([])) == 0
    assert json.loads(path.read_text()) == {"type": "scenario", "start": "2026-01-05T00:00:00Z"}
    assert Scenario(path).start == DEFAULT_START


# --- generator -------------------------------------------------------------


def one_queue(**kw) -> TrafficSpec:
    q = {"queue": "support", "rate": 3600.0, "handle": {"mean": 180.0}}
    q.update(kw.pop("queue", {}))
    return traffic_from_obj({"queues": [q], **kw})


def test_generate_is_deterministic_for_a_seed():
    spec = one_queue(contacts=500, seed=7, queue={"patience": 60.0})
    a, b = list(generate(spec)), list(generate(spec))
    assert a == b and len(a) == 500
    other = list(generate(msgspec.structs.replace(spec, seed=8)))
    assert other != a
    assert [x.id for x in a] == [f"c{i}" for i in range(1, 501)]


def test_generate_shape_and_rounding():
    spec = one_queue(duration=3600.0, queue={"channel": "chat", "priority": 1.5, "skills": {"french": 2}, "patience": 30.0})
    items = list(generate(spec))
    assert items and all(0 <= x.arrival < 3600 for x in items)
    assert all(a.arrival <= b.arrival for a, b in zip(items, items[1:]))
    for x in items:
        for v in (x.arrival, x.handle_time, x.patience):
            assert round(v, 3) == v
        assert (x.queue, x.channel, x.priority, x.skills) == ("support", "chat", 1.5, {"french": 2})


def test_mean_rate_and_handle_time():
    rate = 7200.0  # per hour: 2/s
    duration = 10_000.0  # ~20,000 contacts
    items = list(generate(one_queue(duration=duration, seed=3, queue={"rate": rate})))
    expected = rate / 3600 * duration
    assert abs((len(items) - expected) / math.sqrt(expected)) < 4  # Poisson count
    gaps = [b.arrival - a.arrival for a, b in zip(items, items[1:])]
    assert abs(z_mean(gaps, 3600 / rate, 3600 / rate)) < 4
    assert abs(z_mean([x.handle_time for x in items], 180.0, 180.0)) < 4
    assert all(x.patience is None for x in items)


def test_lognormal_handle_time():
    mean, sd = 300.0, 150.0
    spec = one_queue(contacts=20_000, seed=5, queue={"handle": {"distribution": "lognormal", "mean": mean, "sd": sd}})
    hts = [x.handle_time for x in generate(spec)]
    assert abs(z_mean(hts, mean, sd)) < 4
    assert abs(statistics.stdev(hts) / sd - 1) < 0.06
    # the logs are normal: exact z-tests for their mean and variance
    sigma2 = math.log1p((sd / mean) ** 2)
    mu = math.log(mean) - sigma2 / 2
    logs = [math.log(h) for h in hts]
    assert abs(z_mean(logs, mu, math.sqrt(sigma2))) < 4
    n = len(logs)
    assert abs((statistics.variance(logs) - sigma2) / (sigma2 * math.sqrt(2 / (n - 1)))) < 4


def test_patience_mean():
    items = list(generate(one_queue(contacts=20_000, seed=11, queue={"patience": 90.0})))
    assert abs(z_mean([x.patience for x in items], 90.0, 90.0)) < 4


def test_time_varying_rates_per_interval():
    rates = [3600.0, 7200.0, 0.0, 1800.0]  # per hour, 15-min intervals, repeating
    repeats = 6
    spec = one_queue(duration=4 * 900.0 * repeats, seed=2, queue={"rate": None, "rates": rates, "interval": 900.0})
    counts = [0] * (4 * repeats)
    for x in generate(spec):
        counts[int(x.arrival // 900)] += 1
    for k, rate in enumerate(rates):
        got = sum(counts[k::4])
        expected = rate / 4 * repeats
        if rate == 0:
            assert got == 0
        else:
            assert abs((got - expected) / math.sqrt(expected)) < 4, (k, got, expected)
    assert sum(counts) > 15_000


def test_several_queues_merge_in_time_order():
    spec = traffic_from_obj(
        {
            "contacts": 20_000,
            "seed": 4,
            "queues": [
                {"queue": "support", "rate": 3000, "handle": {"mean": 200}},
                {"queue": "sales", "channel": "chat", "rate": 1000, "handle": {"mean": 100}, "priority": 1},
                {"queue": "billing", "channel": "email", "rates": [0, 2000], "interval": 600, "handle": {"mean": 50}},
            ],
        }
    )
    items = list(generate(spec))
    assert len(items) == 20_000
    assert all(a.arrival <= b.arrival for a, b in zip(items, items[1:]))
    assert [x.id for x in items] == [f"c{i}" for i in range(1, 20_001)]
    by_queue = {q: [x for x in items if x.queue == q] for q in ("support", "sales", "billing")}
    assert {x.channel for x in by_queue["sales"]} == {"chat"} and {x.priority for x in by_queue["sales"]} == {1.0}
    assert all(int(x.arrival // 600) % 2 == 1 for x in by_queue["billing"])
    # shares of the total rate 3000 + 1000 + 1000 (billing averages 1000/h)
    n = len(items)
    for q, share in (("support", 0.6), ("sales", 0.2)):
        got = len(by_queue[q]) / n
        assert abs(got - share) / math.sqrt(share * (1 - share) / n) < 5, q
    # adding a queue does not change the other queues' traffic
    single = traffic_from_obj({"contacts": 2000, "seed": 4, "queues": [msgspec.to_builtins(spec.queues[0])]})
    assert [x.handle_time for x in generate(single)][:100] == [x.handle_time for x in by_queue["support"][:100]]


def test_duration_and_contacts_both_limit():
    items = list(generate(one_queue(duration=60.0, contacts=10_000)))
    assert len(items) < 200 and all(x.arrival < 60 for x in items)
    assert len(list(generate(one_queue(duration=10_000.0, contacts=10)))) == 10


def test_mmc_traffic():
    spec = mmc_traffic(agents=100, load=0.9, aht=180.0, contacts=1000, patience=120.0, seed=9)
    [q] = spec.queues
    assert q.rate == pytest.approx(0.9 * 100 * 3600 / 180)
    assert q.handle == HandleTime(distribution="exponential", mean=180.0)
    assert (q.queue, q.patience, spec.contacts, spec.seed) == ("support", 120.0, 1000, 9)
    assert len(list(generate(spec))) == 1000
    with pytest.raises(ValueError):
        mmc_traffic(agents=0, load=0.9, aht=180, contacts=10, patience=None, seed=1)


@pytest.mark.parametrize(
    "obj,path",
    [
        ({"queues": [{"queue": "s", "rate": 1, "handle": {"mean": 1}}]}, "duration"),
        ({"contacts": 1, "queues": [{"queue": "s", "handle": {"mean": 1}}]}, "queues[0]"),
        ({"contacts": 1, "queues": [{"queue": "s", "rate": 1, "rates": [1], "handle": {"mean": 1}}]}, "queues[0]"),
        ({"contacts": 1, "queues": [{"queue": "s", "rate": 1, "handle": {"distribution": "lognormal", "mean": 1}}]}, "queues[0].handle.sd"),
        ({"contacts": 1, "queues": [{"queue": "s", "rate": 1, "handle": {"mean": 1, "sd": 1}}]}, "queues[0].handle.sd"),
        ({"contacts": 1, "queues": [{"queue": "s", "rate": 0, "handle": {"mean": 1}}]}, "queues"),
    ],
)
def test_traffic_checks(obj, path):
    with pytest.raises(SpecError) as info:
        traffic_from_obj(obj)
    assert info.value.path == path


def test_traffic_yaml(tmp_path):
    path = write(
        tmp_path,
        """\
start: 2026-02-02T08:00:00Z
duration: 3600
seed: 3
queues:
  - queue: support
    rates: [100, 200]
    interval: 1800
    handle: {distribution: lognormal, mean: 200, sd: 80}
    patience: 120
  - queue: chat
    channel: chat
    rate: 50
    handle: {mean: 400}
""",
        "traffic.yaml",
    )
    spec = load_traffic(path)
    assert spec.queues[0].rates == [100, 200] and spec.queues[1].channel == "chat"
    assert spec.start == datetime(2026, 2, 2, 8, tzinfo=UTC)
    bad = write(tmp_path, "contacts: 5\nqueues:\n  - queue: s\n    rate: 1\n    handle: {mean: 1}\n    rat: 2\n", "bad.yaml")
    with pytest.raises(ValueError, match="rat"):
        load_traffic(bad)


# --- CLI -------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_quick_flags(tmp_path):
    out = tmp_path / "g.jsonl"
    args = parse("--agents", "10", "--load", "0.8", "--aht", "120", "--patience", "60", "--contacts", "300", "-o", str(out))
    assert run_generate(args) == 0
    got = read(out)
    assert len(got) == 300 and got[0][1].id == "c1" and got[0][1].patience is not None
    assert got == read(out)  # and the same again with the same seed
    assert run_generate(args) == 0 and read(out) == got


def test_cli_spec_and_stdout(tmp_path, capsysbinary):
    spec = write(tmp_path, "contacts: 50\nseed: 5\nqueues:\n  - {queue: s, rate: 100, handle: {mean: 60}}\n", "t.yaml")
    assert run_generate(parse("--spec", str(spec), "--contacts", "20", "--start", "2026-02-02T00:00:00Z")) == 0
    text = capsysbinary.readouterr().out
    path = tmp_path / "from_stdout.jsonl"
    path.write_bytes(text)
    scen = Scenario(path)
    assert scen.start == datetime(2026, 2, 2, tzinfo=UTC).timestamp()
    assert len(list(scen)) == 20


def test_cli_lognormal_rate_hours(tmp_path):
    out = tmp_path / "g.jsonl"
    args = parse("--rate", "3600", "--aht", "100", "--lognormal-sd", "20", "--hours", "0.5", "--channel", "chat", "--queue", "q", "-o", str(out))
    assert run_generate(args) == 0
    items = [x for _, x in read(out)]
    assert 1500 < len(items) < 2100
    assert {(x.queue, x.channel) for x in items} == {("q", "chat")}
    assert all(x.arrival < 1800 for x in items)


@pytest.mark.parametrize(
    "argv",
    [
        ["--aht", "100", "--contacts", "5"],  # no rate
        ["--agents", "5", "--load", "0.5", "--contacts", "5"],  # no aht
        ["--rate", "10", "--agents", "5", "--load", "0.5", "--aht", "100", "--contacts", "5"],
        ["--rate", "10", "--aht", "100"],  # no length
        ["--rate", "-10", "--aht", "100", "--contacts", "5"],
        ["--rate", "10", "--aht", "100", "--contacts", "0"],
        ["--spec", "x.yaml", "--agents", "3"],
        ["--spec", "/nonexistent/t.yaml"],
        ["--rate", "10", "--aht", "100", "--contacts", "5", "--start", "noon"],
    ],
)
def test_cli_errors(argv, capsys):
    assert run_generate(parse(*argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("acd scenario generate: error: ") and err.count("\n") == 1


def test_generated_scenario_reads_back(tmp_path):
    spec = mmc_traffic(agents=20, load=0.8, aht=60.0, contacts=5000, patience=None, seed=1)
    path = tmp_path / "mmc.jsonl"
    assert write_scenario(path, generate(spec)) == 5000
    got = read(path, chunk_size=4096)
    assert [x for _, x in got] == list(generate(spec))
    assert [t for t, _ in got] == [DEFAULT_START + x.arrival for x in generate(spec)]
