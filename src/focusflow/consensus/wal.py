"""The write-ahead log of a validator's own signatures.

Rule: every proposal and vote this node signs is appended to the log and fsynced
*before* the signed message is handed to anyone (see :mod:`focusflow.consensus.signer`).
After a crash the log holds everything that may have left the machine, so the
restarted validator re-sends those same messages instead of signing new ones: it
never signs two different votes for one (height, round, step), the offence that
duplicate-vote evidence slashes. The log also holds the lock (``lockedValue``,
``lockedRound`` of Algorithm 1, lines 38-39) written before the precommit that
follows it, so a restarted validator keeps the lock its precommit promised.

File format: a sequence of records ``u32 length (big-endian) | u32 CRC-32 of the
payload | payload``, the payload the canonical CBOR of ``[kind, height, body]``;
kinds are ``proposal`` and ``vote`` (body: the signed message), ``lock`` (body:
``[round, value, value_id]``), ``chits`` (body: a signed Snowman answer in its
poll-message form: one answer per requester's poll, even across a restart) and
``floor`` (no body: heights below are committed, see
:meth:`WriteAheadLog.prune`).
A crash can leave a torn or garbled last record (never fsynced, so nothing it
held was ever sent: a cut payload, a half-written header, a zero-filled tail):
it is cut off when the log is opened. A bad record followed by good records up
to the end of the file is real corruption and raises :class:`WALError`:
dropping it and what follows would forget messages this validator signed.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focusflow.consensus.errors import WALError
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.home import fsync_dir, open_private

_HEADER = struct.Struct(">II")
#: A record larger than this is corruption (a proposal carries at most one block).
MAX_RECORD = 1 << 30

KIND_PROPOSAL = "proposal"
KIND_VOTE = "vote"
KIND_LOCK = "lock"
KIND_FLOOR = "floor"
KIND_CHITS = "chits"
#: The DAG mempool's log (its own file, :mod:`focusflow.consensus.batch_signer`):
#: an own batch, a vote for a batch, an author's ordered floor. Their height field
#: holds the epoch.
KIND_BATCH = "batch"
KIND_BATCH_VOTE = "batch_vote"
KIND_BATCH_FLOOR = "batch_floor"
KINDS = (
    KIND_PROPOSAL,
    KIND_VOTE,
    KIND_LOCK,
    KIND_FLOOR,
    KIND_CHITS,
    KIND_BATCH,
    KIND_BATCH_VOTE,
    KIND_BATCH_FLOOR,
)


@dataclass(frozen=True)
class WALEntry:
    kind: str
    height: int
    body: bytes


class WriteAheadLog:
    """An append-only, fsynced log file; ``path=None`` keeps it in memory (simulations)."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: list[WALEntry] = []
        self._file = None
        if self.path is not None:
            self._entries = _read(self.path)
            self._file = open_private(self.path, "ab")

    def entries(self, height: int | None = None) -> list[WALEntry]:
        """All entries, or those of one height, in the order they were written."""
        if height is None:
            return list(self._entries)
        return [e for e in self._entries if e.height == height]

    def append(self, entry: WALEntry) -> None:
        """Write one record and fsync it; returns only once it is on disk."""
        self.append_many([entry])

    def append_many(self, entries: list[WALEntry]) -> None:
        """Write records in order with one fsync for all (a group commit).

        A crash during the write leaves a prefix of them (the torn last one is
        cut on opening); none of them is handed out before this returns, so a
        lost suffix was never sent.
        """
        for entry in entries:
            if entry.kind not in KINDS:
                raise ValueError(f"unknown WAL entry kind {entry.kind!r}")
        if not entries:
            return
        if self._file is not None:
            records = []
            for entry in entries:
                payload = encode([entry.kind, entry.height, entry.body])
                records.append(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            self._file.write(b"".join(records))
            self._file.flush()
            os.fsync(self._file.fileno())
        self._entries.extend(entries)

    def first(self) -> WALEntry | None:
        """The log's first entry (a ``floor`` record once it was pruned)."""
        return self._entries[0] if self._entries else None

    def prune(self, below_height: int, chits_from: int | None = None) -> None:
        """Drop entries of heights below ``below_height`` (committed, never signed again).

        ``chits_from`` keeps ``chits`` records from that height on, below
        ``below_height`` too: answers about decided heights must stay as given
        for as long as they can still be asked for.

        The new log starts with a ``floor`` record of ``below_height``: the log must
        still say how far this validator got when no message of the new height is
        signed yet, or a restart from a stale block store could sign old heights
        anew. The file is rewritten beside the old one, fsynced, and renamed over
        it, so a crash leaves either the old or the new log, both valid.
        """
        keep = [WALEntry(KIND_FLOOR, below_height, b"")]
        low = below_height if chits_from is None else min(chits_from, below_height)
        keep += [
            e
            for e in self._entries
            if e.kind != KIND_FLOOR
            and (e.height >= below_height or (e.kind == KIND_CHITS and e.height >= low))
        ]
        self.rewrite(keep)

    def rewrite(self, keep: list[WALEntry]) -> None:
        """Replace the log by ``keep``: written beside the old file, fsynced and
        renamed over it, so a crash leaves either the old or the new log."""
        for entry in keep:
            if entry.kind not in KINDS:
                raise ValueError(f"unknown WAL entry kind {entry.kind!r}")
        if self.path is not None and self._file is not None:
            tmp = self.path.with_name(self.path.name + ".tmp")
            with open_private(tmp, "wb") as f:
                for e in keep:
                    payload = encode([e.kind, e.height, e.body])
                    f.write(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
                f.flush()
                os.fsync(f.fileno())
            self._file.close()
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent, strict=True)
            self._file = open_private(self.path, "ab")
        self._entries = keep

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _read(path: Path) -> list[WALEntry]:
    """The log's entries; a torn or garbled last record is cut off the file.

    Only the last record can be torn: every append is fsynced before the next
    begins. So a bad record (a length past the end or over MAX_RECORD, an empty
    payload, a checksum mismatch) is a torn tail only when no good record
    follows it; when one does, the log is corrupt in its middle and this raises
    :class:`WALError` rather than drop signed messages silently.
    """
    if not path.exists():
        return []
    data = path.read_bytes()
    entries: list[WALEntry] = []
    pos = 0
    while pos < len(data):
        payload = _record_at(data, pos)
        if payload is None:
            _check_tail(data, pos, path)
            break
        entries.append(_entry(payload, path, pos))
        pos += _HEADER.size + len(payload)
    if pos < len(data):
        with open(path, "r+b") as f:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
    return entries


def _record_at(data: bytes, pos: int) -> bytes | None:
    """The payload of a whole, checksummed record at ``pos``; None if it is not one."""
    end = pos + _HEADER.size
    if end > len(data):
        return None
    length, crc = _HEADER.unpack_from(data, pos)
    if not 0 < length <= MAX_RECORD or end + length > len(data):
        return None
    payload = data[end : end + length]
    return payload if zlib.crc32(payload) == crc else None


#: Offsets examined per step when looking for a good record past a bad one.
_SCAN_WINDOW = 1 << 20
#: The first byte of every payload (the CBOR head of a 3-item array).
_PAYLOAD_HEAD = encode(["", 0, b""])[0]


def _good_to_the_end(data: bytes, pos: int) -> bool:
    """Whether whole, decodable records run from ``pos`` exactly to the end of the file."""
    while pos < len(data):
        payload = _record_at(data, pos)
        if payload is None or _parse(payload) is None:
            return False
        pos += _HEADER.size + len(payload)
    return True


def _check_tail(data: bytes, pos: int, path: Path) -> None:
    """Raise WALError when good records run from some offset after the bad record at
    ``pos`` to the end of the file (corruption); return otherwise (a torn last record).

    The good records must reach the end: a torn record's payload may hold bytes
    that look like a record (a proposal carries transactions anyone can write),
    and those must not keep a validator from restarting. A candidate needs a
    length that fits in the file and a payload that starts like one, so the
    headers are read for every offset at once and only the few that pass are
    checksummed.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    last = len(data) - _HEADER.size - 1  # a record has a header and 1+ payload bytes
    for lo in range(pos + 1, last + 1, _SCAN_WINDOW):
        q = np.arange(lo, min(lo + _SCAN_WINDOW, last + 1), dtype=np.int64)
        length = (
            (buf[q].astype(np.int64) << 24)
            | (buf[q + 1].astype(np.int64) << 16)
            | (buf[q + 2].astype(np.int64) << 8)
            | buf[q + 3].astype(np.int64)
        )
        fits = (length > 0) & (q + _HEADER.size + length <= len(data))
        fits[fits] &= buf[q[fits] + _HEADER.size] == _PAYLOAD_HEAD
        for at in q[fits].tolist():
            if _good_to_the_end(data, at):
                raise WALError(
                    f"{path}: the record at byte {pos} is damaged but a good record "
                    f"follows at byte {at}: the log is corrupt, not torn"
                )


def _parse(payload: bytes) -> WALEntry | None:
    """The entry a checksummed payload holds; None if it is not ``[kind, height, body]``."""
    try:
        item = decode(payload, "WAL record")
    except DecodeError:
        return None
    if not (
        isinstance(item, list)
        and len(item) == 3
        and item[0] in KINDS
        and isinstance(item[1], int)
        and isinstance(item[2], bytes)
    ):
        return None
    return WALEntry(item[0], item[1], item[2])


def _entry(payload: bytes, path: Path, pos: int) -> WALEntry:
    """The entry of a whole, checksummed record: one that does not parse was written
    so by this log, not torn by a crash, and is corruption."""
    entry = _parse(payload)
    if entry is None:
        raise WALError(f"{path}: record at byte {pos} is not [kind, height, body]")
    return entry
