"""The daemon's journal: an append-only log of what the router was told, plus
checkpoints, so a restarted daemon rebuilds exactly the state it had.

This module is only the file format and the file handling; what the records
*mean* (how they are replayed through an ``Engine``) is ``acd.daemon``'s.

**Why a log of inputs is enough.**  The routing core is deterministic: the
same inbound events at the same times give the same decisions.  So the
journal records the inputs (with the clamped time the daemon fed them at),
never the decisions; replaying it through a fresh engine rebuilds the state,
the decision numbers (``seq``) and what is still to be published.  Deadlines
(ring time-outs, wrap-up ends...) need no records: they fire at their own
times whether the daemon's timer or the next event sets them off.

**Layout** of a journal directory::

    LOCK                  flock'ed by the running daemon (one writer only)
    ckpt-00000001.acdc    the state *before* segment 1 (a fresh start)
    seg-00000001.acdj     records appended after that checkpoint
    ckpt-00000002.acdc    the state after segment 1 = before segment 2
    seg-00000002.acdj     ...

A segment starts with an 8-byte magic; then each record is framed as
``<u32 length><u32 crc32>`` + a msgpack body (little-endian), so a record
torn by a crash (or a flipped bit) is detected instead of misread.  A torn
tail on the *last* segment is expected after a crash and is cut off (those
records were never acknowledged, so the bus redelivers them); a bad record in
an earlier segment is corruption and stops the recovery with an error.

Records (msgpack arrays, first item a one-letter tag):

``["e", time, event]``  an inbound event, accepted and applied at ``time``.
``["r", time, spec]``   a config reload applied at ``time`` (the whole spec:
                        the journal never needs the config file to replay).
``["p", seq]``          outbound events up to ``seq`` were published (no
                        fsync needed: losing one only causes a re-publish).

**Checkpoints** (``Checkpoint``) keep restarts fast: every ``snapshot_every``
records the daemon writes one (temp file, fsync, rename, fsync of the
directory), starts a new segment and deletes what the *previous* checkpoint
made redundant (two generations are kept, so one unreadable checkpoint is
survivable).  A checkpoint is plain data (spec, seed, decision counter,
recent inbound ids, agent presence, KPI base, unpublished outputs) plus the
engine pickled.  The engine cannot be pickled as is (its compiled target
expressions are closures), so the daemon pickles it with those replaced by
references and compiles them afresh from the spec on load (see
``acd.daemon.pickle_engine``).  A pickle is only as good as the code that
wrote it, so a checkpoint carries a fingerprint of the core's source and is
refused by a different build; see ``acd.daemon`` for what happens then.

**fsync policies** (``--fsync``): ``always`` (an event is fsynced before it
is acknowledged or any decision it caused is published; consecutive events
share one fsync, group commit), ``batch`` (fsync at most every N ms, then
acknowledge and publish everything it covered), ``never`` (leave it to the
OS: survives the process being killed, not a power cut).  With every
policy a record is written to the OS (``os.write``, no user-space buffer)
before its decisions leave the process, so ``kill -9`` loses nothing.
"""

from __future__ import annotations

import errno
import os
import re
import struct
import zlib
from pathlib import Path
from typing import Any, Iterator, Union

import msgspec

from .core.events import Inbound

__all__ = [
    "Checkpoint", "EventRecord", "FSYNC_POLICIES", "Journal", "JournalError", "PublishedRecord",
    "Record", "ReloadRecord",
]

FSYNC_POLICIES = ("always", "batch", "never")

SEGMENT_MAGIC = b"ACDJ\x00\x01\r\n"
CHECKPOINT_MAGIC = b"ACDC\x00\x01\r\n"
_FRAME = struct.Struct("<II")
#: A record longer than this is taken for garbage (a torn length field).
MAX_RECORD = 64 << 20

_SEG_RE = re.compile(r"seg-(\d{8})\.acdj")
_CKPT_RE = re.compile(r"ckpt-(\d{8})\.acdc")


class JournalError(Exception):
    """The journal cannot be read, written or trusted; the message says why."""


# --- records ------------------------------------------------------------------------


class EventRecord(msgspec.Struct, array_like=True, tag="e"):
    """An inbound event applied at time ``t`` (float s since the epoch)."""

    t: float
    e: Inbound


class ReloadRecord(msgspec.Struct, array_like=True, tag="r"):
    """A new routing config, applied at ``t`` (the spec as plain data)."""

    t: float
    spec: Any


class PublishedRecord(msgspec.Struct, array_like=True, tag="p"):
    """Every outbound event up to ``seq`` has been published."""

    seq: int


Record = Union[EventRecord, ReloadRecord, PublishedRecord]


class Checkpoint(msgspec.Struct, kw_only=True):
    """The router's state before segment ``segment``.

    ``engine`` is the pickled engine, or None for a state that is rebuilt as a
    fresh ``Engine(spec, Random(seed), start=time)`` with ``presence``
    applied (the very first checkpoint; ``presence`` None keeps the config's
    initial states).  ``unpublished`` are ``[seq, topic, payload]`` outputs
    that may not have left the process yet; ``published`` is the highest seq
    known to be published.
    """

    format: int = 1
    segment: int
    time: float
    seed: int
    spec: Any
    seq: int = 0
    published: int = 0
    ids: list[str] = []
    kpi_base: dict[str, dict[str, float]] = {}
    presence: dict[str, tuple[str, str | None]] | None = None
    contacts: int = 0
    fingerprint: str = ""
    engine: bytes | None = None
    unpublished: list[tuple[int, str, bytes]] = []


_enc = msgspec.msgpack.Encoder()
_rec_dec = msgspec.msgpack.Decoder(Record)
_ckpt_dec = msgspec.msgpack.Decoder(Checkpoint)


def frame(body: bytes) -> bytes:
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def encode_record(rec: Record) -> bytes:
    return frame(_enc.encode(rec))


def read_frames(data: bytes, start: int) -> tuple[list[bytes], int, str | None]:
    """Split ``data[start:]`` into record bodies.  Returns the bodies, the
    offset just after the last good one, and why reading stopped early
    (None at a clean end)."""
    bodies = []
    pos, end = start, len(data)
    size = _FRAME.size
    while pos < end:
        if end - pos < size:
            return bodies, pos, f"torn record header at byte {pos}"
        n, crc = _FRAME.unpack_from(data, pos)
        if n > MAX_RECORD:
            return bodies, pos, f"implausible record length {n} at byte {pos}"
        body = data[pos + size:pos + size + n]
        if len(body) < n:
            return bodies, pos, f"torn record at byte {pos} ({len(body)} of {n} bytes)"
        if zlib.crc32(body) != crc:
            return bodies, pos, f"checksum mismatch at byte {pos}"
        bodies.append(body)
        pos += size + n
    return bodies, pos, None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


# --- the journal --------------------------------------------------------------------


class Journal:
    """One journal directory (see the module docstring).

    Reading: ``checkpoints()``, ``segments()``, ``read_checkpoint(n)``,
    ``read_segment(n, last=...)``.  Writing: ``open_segment(n)``, then
    ``append(record)`` / ``sync()``; ``write_checkpoint(cp)`` +
    ``open_segment(cp.segment)`` + ``prune()`` to rotate.

    Counters: ``written`` records appended by this process, ``synced`` how
    many of them are durable (by the fsync policy: with ``never``, written
    to the OS counts), ``segment_records`` in the open segment.
    """

    def __init__(self, path: str | os.PathLike[str], fsync: str = "batch"):
        if fsync not in FSYNC_POLICIES:
            raise ValueError(f"fsync policy must be one of {', '.join(FSYNC_POLICIES)}, got {fsync!r}")
        self.path = Path(path)
        self.policy = fsync
        self.written = 0
        self.synced = 0
        self.bytes_written = 0
        self.fsyncs = 0
        self.checkpoints_written = 0
        self.segment = 0
        self.segment_records = 0
        self.segment_bytes = 0
        self._fd: int | None = None
        self._lock_fd: int | None = None
        #: (path, good bytes kept, bytes cut, why) when recovery cut a torn tail
        self.repaired: tuple[Path, int, int, str] | None = None

    # -- locking -------------------------------------------------------------------

    def lock(self) -> None:
        """Create the directory and take its lock: two daemons writing one
        journal would interleave two histories."""
        import fcntl

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JournalError(f"journal {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            try:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            except OSError:
                pass
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                who = f" (pid {holder})" if holder else ""
                raise JournalError(f"journal {self.path} is in use by another acd{who}") from None
            raise JournalError(f"journal {self.path}: cannot lock: {exc.strerror or exc}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    # -- listing and reading -----------------------------------------------------------

    def _numbers(self, pattern: re.Pattern[str]) -> list[int]:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(int(m[1]) for n in names if (m := pattern.fullmatch(n)))

    def segments(self) -> list[int]:
        return self._numbers(_SEG_RE)

    def checkpoints(self) -> list[int]:
        return self._numbers(_CKPT_RE)

    def segment_path(self, n: int) -> Path:
        return self.path / f"seg-{n:08d}.acdj"

    def checkpoint_path(self, n: int) -> Path:
        return self.path / f"ckpt-{n:08d}.acdc"

    def read_checkpoint(self, n: int) -> Checkpoint:
        path = self.checkpoint_path(n)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalError(f"{path}: {exc.strerror or exc}") from None
        if not data.startswith(CHECKPOINT_MAGIC):
            raise JournalError(f"{path}: not an acd checkpoint (bad magic)")
        bodies, _, problem = read_frames(data, len(CHECKPOINT_MAGIC))
        if problem or len(bodies) != 1:
            raise JournalError(f"{path}: damaged checkpoint ({problem or 'wrong record count'})")
        try:
            cp = _ckpt_dec.decode(bodies[0])
        except msgspec.DecodeError as exc:
            raise JournalError(f"{path}: unreadable checkpoint: {exc}") from None
        if cp.segment != n:
            raise JournalError(f"{path}: says it is checkpoint {cp.segment}")
        return cp

    def read_segment(self, n: int, *, last: bool) -> list[Record]:
        """All records of segment ``n``.  On the ``last`` segment a bad tail
        is cut off (the file is truncated there); elsewhere it is an error."""
        path = self.segment_path(n)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise JournalError(f"{path}: {exc.strerror or exc}") from None
        if len(data) < len(SEGMENT_MAGIC):
            if last and SEGMENT_MAGIC.startswith(data):  # torn while being created
                return []
            raise JournalError(f"{path}: not an acd journal segment (too short)")
        if not data.startswith(SEGMENT_MAGIC):
            raise JournalError(f"{path}: not an acd journal segment (bad magic)")
        bodies, good, problem = read_frames(data, len(SEGMENT_MAGIC))
        records = []
        for i, body in enumerate(bodies):
            try:
                records.append(_rec_dec.decode(body))
            except msgspec.DecodeError as exc:
                # a checksummed record that does not decode: written by
                # something else, not torn by a crash
                raise JournalError(f"{path}: record {i + 1}: undecodable: {exc}") from None
        if problem is not None:
            if not last:
                raise JournalError(f"{path}: {problem} (not the last segment: the journal is damaged)")
            self.repaired = (path, good, len(data) - good, problem)
            try:
                with open(path, "r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as exc:
                raise JournalError(f"{path}: cannot cut the torn tail: {exc.strerror or exc}") from None
        return records

    def iter_records(self, first: int) -> Iterator[Record]:
        """Records of every segment from ``first`` on (for tools and tests)."""
        segs = [s for s in self.segments() if s >= first]
        for s in segs:
            yield from self.read_segment(s, last=s == segs[-1])

    # -- writing -----------------------------------------------------------------------

    def open_segment(self, n: int) -> None:
        """Make segment ``n`` the one appended to (created if needed)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        path = self.segment_path(n)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            size = os.fstat(fd).st_size
            if size < len(SEGMENT_MAGIC):
                os.ftruncate(fd, 0)
                os.write(fd, SEGMENT_MAGIC)
                os.fsync(fd)
                _fsync_dir(self.path)
                size = len(SEGMENT_MAGIC)
        except OSError as exc:
            raise JournalError(f"{path}: {exc.strerror or exc}") from None
        self._fd = fd
        self.segment = n
        self.segment_records = 0
        self.segment_bytes = size

    def append(self, rec: Record) -> int:
        """Write one record to the OS; returns ``written``.  Raises
        JournalError (disk full...): the daemon must stop, it can no longer
        keep its promise."""
        data = encode_record(rec)
        self._write(data)
        self.written += 1
        self.segment_records += 1
        if self.policy == "never":
            self.synced = self.written
        return self.written

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            raise JournalError("journal is not open for writing")
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise JournalError(f"{self.segment_path(self.segment)}: write failed: {exc.strerror or exc}") from None
        self.bytes_written += len(data)
        self.segment_bytes += len(data)

    def sync(self) -> None:
        """fsync the open segment; everything written so far is durable."""
        pos = self.written
        if self._fd is not None and self.synced < pos:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                raise JournalError(f"{self.segment_path(self.segment)}: fsync failed: {exc.strerror or exc}") from None
            self.fsyncs += 1
        self.synced = pos

    def begin_sync(self) -> tuple[int, int] | None:
        """The first half of an fsync run off the event loop (the daemon's
        group commit: records keep being appended meanwhile): ``(fd, pos)``,
        a duplicate of the open segment's descriptor -- pass it to
        ``fsync_and_close`` in a worker thread; it stays valid if the segment
        is rotated meanwhile -- and the record count the fsync will make
        durable; or None when there is nothing to sync.  Then
        ``end_sync(pos)``."""
        pos = self.written
        if self.synced >= pos:
            return None
        if self._fd is None:
            self.synced = pos
            return None
        try:
            return os.dup(self._fd), pos
        except OSError as exc:
            raise JournalError(f"{self.segment_path(self.segment)}: fsync failed: {exc.strerror or exc}") from None

    def end_sync(self, pos: int) -> None:
        """Record that the fsync begun by ``begin_sync`` at ``pos`` is done."""
        self.fsyncs += 1
        if pos > self.synced:
            self.synced = pos

    def fsync_and_close(self, fd: int) -> None:
        """fsync ``fd`` (from ``begin_sync``) and close it; thread-safe.
        Raises JournalError."""
        try:
            os.fsync(fd)
        except OSError as exc:
            raise JournalError(f"{self.segment_path(self.segment)}: fsync failed: {exc.strerror or exc}") from None
        finally:
            os.close(fd)

    @property
    def dirty(self) -> bool:
        return self.synced < self.written

    def write_checkpoint(self, cp: Checkpoint) -> int:
        """Write checkpoint ``cp.segment`` atomically; returns its size."""
        path = self.checkpoint_path(cp.segment)
        tmp = path.with_suffix(".tmp")
        data = CHECKPOINT_MAGIC + frame(_enc.encode(cp))
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            _fsync_dir(self.path)
        except OSError as exc:
            raise JournalError(f"{path}: cannot write checkpoint: {exc.strerror or exc}") from None
        self.checkpoints_written += 1
        return len(data)

    def prune(self) -> list[str]:
        """Delete what the two newest checkpoints make redundant: older
        checkpoints and the segments before the older of the two."""
        cps = self.checkpoints()
        if len(cps) < 2:
            return []
        keep_from = cps[-2]
        removed = []
        for n in cps[:-2]:
            removed.append(self.checkpoint_path(n))
        for n in self.segments():
            if n < keep_from:
                removed.append(self.segment_path(n))
        for p in removed:
            try:
                p.unlink()
            except FileNotFoundError:
                pass
        for tmp in self.path.glob("ckpt-*.tmp"):
            try:
                tmp.unlink()
            except OSError:  # pragma: no cover
                pass
        if removed:
            _fsync_dir(self.path)
        return [p.name for p in removed]
