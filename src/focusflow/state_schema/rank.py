"""The rollups' focus exchange in the state: the hub's global snapshots, what
each chain keeps between rounds, and the fees redistributed by demand.

Hub:

* ``/graph/global/snapshot`` holds ``[round, height, time_ms, root, particles,
  chunks, stale]``: the last global snapshot (``root`` is its Merkle root over
  ``(cid, focus)`` leaves in CID order, ``stale`` the buckets held at their last
  proven values);
* ``/graph/global/chunk/<4 bytes>`` holds ``[[cid, focus], ...]``, the snapshot's
  entries in CID order, :data:`CHUNK` per key: a merge rewrites
  ``particles / CHUNK`` keys, not one per particle;
* ``/kv/rank/seen/<bucket 2>`` holds ``[height, time_ms, round]`` of the last rank
  packet accepted from that rollup;
* ``/kv/rank/pool`` is the address whose balance is the demand pool the hub
  redistributes at each merge.

Rollup: ``/kv/rank/inflow`` holds the hub's inflow packets not yet solved, in
order, and ``/kv/rank/inflow_round`` the round of the last one accepted.

Hub, between a packet's arrival and the block's end: ``/kv/rank/pending`` holds
``[[bucket, data], ...]`` in arrival order; ``/kv/rank/merged`` ``[time_ms,
dirty]`` of the last merge; ``/kv/rank/refused/<bucket 2>`` ``[height, reason]``
of the last rank packet refused.

Both: ``/kv/rank/parts/<bucket 2>`` holds the parts of a message gathered
until its last arrives (``modules.rank_parts``). On the hub,
``/kv/rank/fees/<channel>/<sequence 8>`` holds a demand share in flight, by
the last packet of the inflow that carries it, until it is acknowledged (or
given back to the pool on a timeout). ``/kv/rank/engine`` holds what the
chain's rank engine keeps between
rounds (``focus.rollup_rank``'s export), and ``/kv/rank/version`` a hash chained
over every change of it, so a node uses its engine in memory only while the
state names the version it wrote, and a restarted node continues from the
same numbers as the others.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode
from focusflow.core.hashing import sha256

SNAPSHOT_KEY = b"/graph/global/snapshot"
CHUNK_PREFIX = b"/graph/global/chunk/"
SEEN_PREFIX = b"/kv/rank/seen/"
INFLOW_KEY = b"/kv/rank/inflow"
INFLOW_ROUND_KEY = b"/kv/rank/inflow_round"
PARTS_PREFIX = b"/kv/rank/parts/"
FEES_PREFIX = b"/kv/rank/fees/"
ENGINE_KEY = b"/kv/rank/engine"
VERSION_KEY = b"/kv/rank/version"
PENDING_KEY = b"/kv/rank/pending"
MERGED_KEY = b"/kv/rank/merged"
REFUSED_PREFIX = b"/kv/rank/refused/"
#: Fixed point of focus: 10^15 is the whole.
UNIT = 10**15
#: Entries per snapshot chunk.
CHUNK = 1024
#: The demand pool's account: an address no key can sign for.
POOL_ADDRESS = sha256(b"focusflow/rank/pool")[:20]


def chunk_key(index: int) -> bytes:
    return CHUNK_PREFIX + index.to_bytes(4, "big")


def parts_key(bucket: int) -> bytes:
    """The parts of a message gathered so far: from rollup ``bucket`` on the
    hub; on a rollup, from the hub (``bucket`` -1)."""
    return PARTS_PREFIX + (bucket & 0xFFFF).to_bytes(2, "big")


def fees_prefix(channel: str) -> bytes:
    return FEES_PREFIX + channel.encode() + b"/"


def fees_key(channel: str, sequence: int) -> bytes:
    return fees_prefix(channel) + sequence.to_bytes(8, "big")


def seen_key(bucket: int) -> bytes:
    return SEEN_PREFIX + bucket.to_bytes(2, "big")


@dataclass(frozen=True)
class SnapshotRecord:
    round: int
    height: int
    time_ms: int
    root: bytes
    particles: int
    chunks: int
    stale: tuple[int, ...]

    def to_cbor(self) -> list[object]:
        return [
            self.round, self.height, self.time_ms, self.root, self.particles, self.chunks,
            list(self.stale),
        ]  # fmt: skip


def snapshot_record(state: Readable) -> SnapshotRecord | None:
    raw = state.get(SNAPSHOT_KEY)
    if raw is None:
        return None
    rnd, height, time_ms, root, particles, chunks, stale = decode(raw, "rank snapshot")
    return SnapshotRecord(rnd, height, time_ms, root, particles, chunks, tuple(stale))


def snapshot_entries(state: Readable, record: SnapshotRecord) -> list[tuple[bytes, int]]:
    """Every ``(cid, focus)`` of the snapshot, in CID order."""
    out: list[tuple[bytes, int]] = []
    for i in range(record.chunks):
        raw = state.get(chunk_key(i))
        if raw is None:
            raise LookupError(f"snapshot chunk {i} missing")
        out.extend((bytes(c), int(v)) for c, v in decode(raw, "rank chunk"))
    return out


@dataclass(frozen=True)
class Seen:
    height: int
    time_ms: int
    round: int


def last_seen(state: Readable, bucket: int) -> Seen | None:
    raw = state.get(seen_key(bucket))
    if raw is None:
        return None
    height, time_ms, rnd = decode(raw, "rank seen")
    return Seen(height, time_ms, rnd)
