"""The journal's file format (framing, torn tails, damage, checkpoints,
pruning, locking, fsync accounting) and the engine checkpoint pickling."""

from __future__ import annotations

import os
import pickle
from random import Random

import pytest

from acd.core.engine import Engine
from acd.core.events import (
    AgentNotReady, ContactArrived, ContactEnded, CustomerAbandoned, OfferAccepted, OfferRejected,
)
from acd.daemon import (
    RouterState, code_fingerprint, pickle_engine, spec_from_data, spec_to_data, unpickle_engine,
)
from acd.journal import (
    CHECKPOINT_MAGIC, SEGMENT_MAGIC, Checkpoint, EventRecord, Journal, JournalError, PublishedRecord,
    ReloadRecord, encode_record,
)
from helpers import make_spec

T0 = 1_767_600_000.0

RECORDS = [
    EventRecord(T0, ContactArrived(contact="c1", queue="q", id="a1", skills={"x": 2}, attributes={"vip": True})),
    EventRecord(T0 + 1.5, OfferAccepted(contact="c1", agent="a-1", id="a2")),
    PublishedRecord(7),
    ReloadRecord(T0 + 2, {"queues": [{"name": "q"}]}),
    EventRecord(T0 + 3, AgentNotReady(agent="a-1", reason="lunch")),
]


def _journal(tmp_path, policy="never", records=RECORDS) -> Journal:
    j = Journal(tmp_path / "j", policy)
    j.lock()
    j.open_segment(1)
    for r in records:
        j.append(r)
    j.sync()
    return j


def test_records_round_trip(tmp_path):
    j = _journal(tmp_path)
    assert j.read_segment(1, last=True) == RECORDS
    assert list(j.iter_records(1)) == RECORDS
    data = j.segment_path(1).read_bytes()
    assert data.startswith(SEGMENT_MAGIC) and len(data) == j.segment_bytes
    j.close()


@pytest.mark.parametrize("damage", ["half header", "half body", "flipped bit", "garbage length"])
def test_a_torn_tail_on_the_last_segment_is_cut(tmp_path, damage):
    j = _journal(tmp_path)
    path = j.segment_path(1)
    good = path.stat().st_size
    last = encode_record(RECORDS[-1])
    with open(path, "r+b") as f:
        if damage == "half header":
            f.seek(good)
            f.write(last[:5])
        elif damage == "half body":
            f.seek(good)
            f.write(last[:-3])
        elif damage == "flipped bit":
            f.seek(good - 2)
            b = f.read(1)
            f.seek(good - 2)
            f.write(bytes([b[0] ^ 0x10]))
        else:
            f.seek(good)
            f.write(b"\xff\xff\xff\x7f\x00\x00\x00\x00")
    records = j.read_segment(1, last=True)
    expected = RECORDS[:-1] if damage == "flipped bit" else RECORDS
    assert records == expected
    assert j.repaired is not None and j.repaired[0] == path
    # the file was cut at the last good record: appending goes on cleanly
    j.open_segment(1)
    j.append(PublishedRecord(99))
    assert j.read_segment(1, last=True) == expected + [PublishedRecord(99)]


def test_damage_in_an_earlier_segment_is_an_error(tmp_path):
    j = _journal(tmp_path)
    j.open_segment(2)
    j.append(PublishedRecord(1))
    with open(j.segment_path(1), "ab") as f:
        f.write(b"\x01\x02")
    with pytest.raises(JournalError, match="not the last segment"):
        list(j.iter_records(1))


def test_a_foreign_file_is_an_error(tmp_path):
    j = _journal(tmp_path)
    j.segment_path(1).write_bytes(b"hello world, not a journal")
    with pytest.raises(JournalError, match="bad magic"):
        j.read_segment(1, last=True)


def test_a_segment_torn_while_being_created_is_empty(tmp_path):
    j = Journal(tmp_path / "j")
    j.path.mkdir()
    j.segment_path(3).write_bytes(SEGMENT_MAGIC[:3])
    assert j.read_segment(3, last=True) == []
    j.open_segment(3)  # rewrites the magic
    j.append(PublishedRecord(1))
    assert j.read_segment(3, last=True) == [PublishedRecord(1)]


def test_checkpoints_round_trip_and_detect_damage(tmp_path):
    j = _journal(tmp_path)
    cp = Checkpoint(segment=2, time=T0, seed=3, spec={"queues": [{"name": "q"}]}, seq=12, published=10,
                    ids=["a", "b"], kpi_base={"q": {"offered": 4}}, presence={"a-1": ("not_ready", "lunch")},
                    contacts=1, fingerprint="f", engine=b"\x00\x01", unpublished=[(11, "t", b"{}")])
    j.write_checkpoint(cp)
    assert j.read_checkpoint(2) == cp
    assert j.checkpoints() == [2]
    path = j.checkpoint_path(2)
    data = bytearray(path.read_bytes())
    assert data.startswith(CHECKPOINT_MAGIC)
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError, match="damaged checkpoint"):
        j.read_checkpoint(2)


def test_prune_keeps_two_generations(tmp_path):
    j = _journal(tmp_path)
    for n in range(1, 5):
        j.write_checkpoint(Checkpoint(segment=n, time=T0, seed=0, spec={}))
        j.open_segment(n)
        j.append(PublishedRecord(n))
    (j.path / "ckpt-00000009.tmp").write_bytes(b"half")
    removed = j.prune()
    assert sorted(removed) == ["ckpt-00000001.acdc", "ckpt-00000002.acdc", "seg-00000001.acdj", "seg-00000002.acdj"]
    assert j.checkpoints() == [3, 4] and j.segments() == [3, 4]
    assert not (j.path / "ckpt-00000009.tmp").exists()


def test_one_writer_per_journal(tmp_path):
    j = _journal(tmp_path)
    other = Journal(tmp_path / "j")
    with pytest.raises(JournalError, match=f"in use by another acd \\(pid {os.getpid()}\\)"):
        other.lock()
    j.close()
    other.lock()  # released with the first
    other.close()


@pytest.mark.parametrize("policy", ["always", "batch", "never"])
def test_fsync_accounting(tmp_path, policy):
    j = Journal(tmp_path / "j", policy)
    j.lock()
    j.open_segment(1)
    j.append(RECORDS[0])
    j.append(RECORDS[1])
    if policy == "never":
        assert (j.written, j.synced, j.dirty) == (2, 2, False)
    else:
        assert (j.written, j.synced, j.dirty) == (2, 0, True)
    j.sync()
    assert (j.synced, j.dirty) == (2, False)
    assert j.fsyncs == (0 if policy == "never" else 1)
    j.sync()  # nothing new: no fsync
    assert j.fsyncs == (0 if policy == "never" else 1)


def test_bad_policy():
    with pytest.raises(ValueError, match="always, batch, never"):
        Journal("x", "sometimes")


# --- engine checkpoints ---------------------------------------------------------------------------

QUEUES = [
    {"name": "support", "skills": {"support": 3}, "wrap_up": 10, "ring_timeout": 8,
     "escalation": [{"after": 20, "target": "support >= 1 or sales >= 5", "priority": 1}]},
    {"name": "sales", "skills": {"sales": 1}, "strategy": "random", "aging": 2, "max_wait": 60,
     "overflow": "support2"},
    {"name": "support2", "skills": {"support": 1}, "strategy": "round-robin"},
    {"name": "chat", "channel": "chat", "skills": {"chat": 1}, "strategy": "least-occupied"},
    {"name": "vip", "target": "support >= 5 and not trainee", "strategy": "most-skilled"},
]
AGENTS = [
    {"group": "t1", "count": 3, "skills": {"support": 5, "sales": 2}},
    {"group": "t2", "count": 2, "skills": {"support": 2, "sales": 6, "chat": 3}, "attributes": {"trainee": True}},
    {"group": "c", "count": 2, "skills": {"chat": 4, "support": 1}, "capacity": {"voice": 0, "chat": 2}},
]


def _events(rng: Random, start: float, n: int) -> list:
    out, t = [], start
    live: list[str] = []
    for i in range(n):
        t += rng.expovariate(0.5)
        r = rng.random()
        if r < 0.45 or not live:
            c = f"c{start:.0f}-{i}"
            q = rng.choice(["support", "sales", "chat", "vip", "support2"])
            skills = {"support": 2} if rng.random() < 0.1 and q == "support" else {}
            out.append((t, ContactArrived(contact=c, queue=q, skills=skills)))
            live.append(c)
        else:
            c = rng.choice(live)
            kind = rng.random()
            if kind < 0.4:
                out.append((t, OfferAccepted(contact=c)))
            elif kind < 0.55:
                out.append((t, OfferRejected(contact=c)))
            elif kind < 0.8:
                out.append((t, ContactEnded(contact=c)))
            else:
                out.append((t, CustomerAbandoned(contact=c)))
                live.remove(c)
    return out


def test_a_pickled_engine_goes_on_deciding_identically():
    spec = make_spec(QUEUES, AGENTS)
    rng = Random(5)
    eng = Engine(spec, rng=Random(1), start=T0)
    for t, ev in _events(rng, T0, 400):
        eng.handle(ev, t)
    assert eng.contacts  # a busy centre, mid-flight
    data = pickle_engine(eng)
    copy = unpickle_engine(data, spec_from_data(spec_to_data(spec)))
    copy.check_invariants()
    assert copy.snapshot() == eng.snapshot() and copy.report() == eng.report()
    t_last = eng.now
    for t, ev in _events(rng, t_last, 400):
        assert copy.handle(ev, t) == eng.handle(ev, t)
    assert copy.advance(t + 500) == eng.advance(t + 500)
    copy.check_invariants()
    assert copy.report() == eng.report()
    assert copy.rng.random() == eng.rng.random()


def test_the_checkpoint_unpickler_refuses_foreign_code():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="no business"):
        unpickle_engine(pickle.dumps(Evil()), make_spec(QUEUES, AGENTS))
    with pytest.raises(pickle.UnpicklingError, match="does not hold an Engine"):
        unpickle_engine(pickle.dumps([1, 2]), make_spec(QUEUES, AGENTS))


def test_router_state_checkpoint_round_trip():
    spec = make_spec(QUEUES, AGENTS)
    state = RouterState.fresh(spec, 1, T0, window=5)
    for i, (t, ev) in enumerate(_events(Random(2), T0, 60)):
        state.handle(msgspec_replace_id(ev, f"id{i}"), t)
    cp = state.to_checkpoint(2, published=state.seq - 1, unpublished=[(state.seq, "t", b"x")])
    assert cp.fingerprint == code_fingerprint() and cp.contacts == len(state.engine.contacts)
    assert cp.ids == [f"id{i}" for i in range(55, 60)]  # a bounded window, oldest first
    back = RouterState.from_checkpoint(cp, records_follow=True, window=5)
    assert back.engine.snapshot() == state.engine.snapshot()
    assert (back.seq, list(back.ids), back.spec_hash) == (state.seq, list(state.ids), state.spec_hash)


def msgspec_replace_id(ev, eid):
    import msgspec

    return msgspec.structs.replace(ev, id=eid)
