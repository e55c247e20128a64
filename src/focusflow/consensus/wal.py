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
``[round, value, value_id]``) and ``floor`` (no body: heights below are
committed, see :meth:`WriteAheadLog.prune`).
A crash can leave a torn last record (never fsynced, so nothing it held was ever
sent): it is cut off when the log is opened. A bad record followed by more
records is real corruption and raises :class:`WALError`.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

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
KINDS = (KIND_PROPOSAL, KIND_VOTE, KIND_LOCK, KIND_FLOOR)


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
        if entry.kind not in KINDS:
            raise ValueError(f"unknown WAL entry kind {entry.kind!r}")
        if self._file is not None:
            payload = encode([entry.kind, entry.height, entry.body])
            self._file.write(_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            self._file.flush()
            os.fsync(self._file.fileno())
        self._entries.append(entry)

    def prune(self, below_height: int) -> None:
        """Drop entries of heights below ``below_height`` (committed, never signed again).

        The new log starts with a ``floor`` record of ``below_height``: the log must
        still say how far this validator got when no message of the new height is
        signed yet, or a restart from a stale block store could sign old heights
        anew. The file is rewritten beside the old one, fsynced, and renamed over
        it, so a crash leaves either the old or the new log, both valid.
        """
        keep = [WALEntry(KIND_FLOOR, below_height, b"")]
        keep += [e for e in self._entries if e.height >= below_height and e.kind != KIND_FLOOR]
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
    if not path.exists():
        return []
    data = path.read_bytes()
    entries: list[WALEntry] = []
    pos = 0
    while pos < len(data):
        end = pos + _HEADER.size
        if end > len(data):
            break  # torn header
        length, crc = _HEADER.unpack_from(data, pos)
        if length > MAX_RECORD:
            raise WALError(f"{path}: record at byte {pos} claims {length} bytes")
        if end + length > len(data):
            break  # torn payload
        payload = data[end : end + length]
        if zlib.crc32(payload) != crc:
            if end + length == len(data):
                break  # torn last record
            raise WALError(f"{path}: checksum mismatch at byte {pos}")
        entries.append(_entry(payload, path, pos))
        pos = end + length
    if pos < len(data):
        with open(path, "r+b") as f:
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
    return entries


def _entry(payload: bytes, path: Path, pos: int) -> WALEntry:
    try:
        item = decode(payload, "WAL record")
    except DecodeError as exc:
        raise WALError(f"{path}: record at byte {pos}: {exc.message}") from None
    if not (
        isinstance(item, list)
        and len(item) == 3
        and item[0] in KINDS
        and isinstance(item[1], int)
        and isinstance(item[2], bytes)
    ):
        raise WALError(f"{path}: record at byte {pos} is not [kind, height, body]")
    return WALEntry(item[0], item[1], item[2])
