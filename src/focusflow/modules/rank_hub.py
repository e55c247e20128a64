"""The hub's side of the global focus: rollups' ranks in, global snapshots out.

A rank packet from rollup ``b`` arrives on the ``rank`` port with a proof
against ``b``'s state root (the IBC module checks it). The hub checks what the
packet claims against what an honest rollup could send (``HubMerge.check``:
particles of its own bucket, conserved mass, the round it answers); a packet
that fails is refused with ``rank_unsupported`` in its acknowledgement and an
event naming the failed bound, and changes nothing. Accepted packets wait in
``/kv/rank/pending`` for the block's end, which applies them in arrival order.

At most every ``merge_interval_ms`` of block time, the block's end merges the
latest rank of every bucket into the next global snapshot: a rollup whose
last packet is older than ``stale_after_ms`` (halted, partitioned, or its
relayer down) is held at its last proven values and listed stale. The snapshot
is committed in ``/graph/global/snapshot`` and its chunks, and every rollup with an
open channel gets its inflow packet, carrying its share of the demand pool.

Fees by demand: every block, ``FEE_SHARE_BPS`` of the fees the hub's block
collected go to the demand pool instead of the proposer; at each merge the pool
is split among the rollups in proportion to their buckets' share of global
focus (largest remainder, so the shares add up to the pool exactly) and sent
in the inflow packets; a share is in flight until the inflow's last part is
acknowledged, and a timeout gives every share in flight back to the pool.

Commit safety: as the rollup's (``modules.rank_rollup``): the engine's state
and a version hash chained over every change are state, and the in-memory
engine is used only while the state names the version it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from focusflow.chain.errors import MalformedMessageError
from focusflow.chain.module import BlockContext, TxContext
from focusflow.chain.rollup_engine import FocusParams, HubMerge, RankUnsupportedError, Snapshot
from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import FocusflowError
from focusflow.core.hashing import sha256
from focusflow.modules.accounts import credit, debit
from focusflow.modules.ibc import find_channel, send_packet
from focusflow.modules.rank_parts import split, take
from focusflow.modules.rank_rollup import PACKET_TIMEOUT_MS, PORT
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.ibc import Packet, get_channel, get_connection
from focusflow.state_schema.interchain import Place, bucket_of_chain, rollup_chain_id
from focusflow.state_schema.rank import (
    CHUNK,
    ENGINE_KEY,
    MERGED_KEY,
    PENDING_KEY,
    POOL_ADDRESS,
    SNAPSHOT_KEY,
    VERSION_KEY,
    SnapshotRecord,
    chunk_key,
    fees_key,
    fees_prefix,
    last_seen,
    parts_key,
    seen_key,
    snapshot_record,
)

#: The share of each block's fees that goes to the demand pool, in basis points.
FEE_SHARE_BPS = 5000
#: Most rank packets that may wait for one block's end.
MAX_PENDING = 1024


@dataclass
class _Cached:
    version: bytes
    engine: HubMerge


def demand_shares(pool: int, weights: list[int]) -> list[int]:
    """``pool`` split in proportion to ``weights`` by largest remainder (ties to
    the lower index): the shares add up to ``pool`` exactly. With no weight at
    all, the pool is split evenly the same way."""
    if not weights:
        return []
    total = sum(weights)
    if total <= 0:
        weights, total = [1] * len(weights), len(weights)
    quot, rem = [], []
    for w in weights:
        q, r = divmod(pool * w, total)
        quot.append(q)
        rem.append(r)
    left = pool - sum(quot)
    for i in sorted(range(len(weights)), key=lambda i: (-rem[i], i))[:left]:
        quot[i] += 1
    return quot


class HubRank:
    """The hub's engine and its exchange with the rollups."""

    def __init__(self) -> None:
        self._cache: _Cached | None = None

    def _engine(self, state: Readable, place: Place, params: FocusParams) -> _Cached:
        version = state.get(VERSION_KEY) or b""
        cached = self._cache
        if cached is None or cached.version != version:
            engine = HubMerge(place.buckets, params)
            saved = state.get(ENGINE_KEY)
            if saved is not None:
                engine.restore_state(decode(saved, "rank engine"))
            cached = self._cache = _Cached(version, engine)
        return cached

    # --- packets -------------------------------------------------------------------
    def _bucket(self, state: Readable, packet: Packet) -> int:
        """The bucket of the rollup at the other end of the packet's channel."""
        end = get_channel(state, packet.destination_port, packet.destination_channel)
        conn = get_connection(state, end.connection) if end is not None else None
        bucket = bucket_of_chain(state, conn.client) if conn is not None else None
        if bucket is None:
            raise MalformedMessageError("a rank packet from a chain that is no rollup")
        return bucket

    def on_recv(self, ctx: TxContext, packet: Packet, place: Place, params: FocusParams) -> bytes:
        bucket = self._bucket(ctx.state, packet)
        whole = take(ctx.state, parts_key(bucket), packet.data)
        if whole is None:
            return b"part"
        doc: Any = decode(whole, "rank packet")
        if not isinstance(doc, dict):
            raise RankUnsupportedError(f"rank packet of bucket {bucket}: not a map")
        raw = ctx.state.get(PENDING_KEY)
        pending: list[list[Any]] = decode(raw, "pending ranks") if raw else []
        if len(pending) >= MAX_PENDING:
            raise MalformedMessageError(f"{MAX_PENDING} rank packets wait already")
        if not any(b == bucket for b, _ in pending):
            # With an earlier packet of this bucket waiting, the bounds are
            # checked at the block's end, after that one is applied.
            self._engine(ctx.state, place, params).engine.check(bucket, doc)
        pending.append([bucket, whole])
        ctx.state.put(PENDING_KEY, encode(pending))
        ctx.emit("rank.received", bucket=bucket, round=int(doc.get("round", -1)))
        return b"ok"

    def on_ack(self, ctx: TxContext, packet: Packet) -> None:
        """An inflow's last part was received: its demand share is the rollup's."""
        ctx.state.delete(fees_key(packet.source_channel, packet.sequence))

    def on_timeout(self, ctx: TxContext, packet: Packet) -> None:
        """A part that was never delivered closes the ordered channel: every
        share still in flight on it goes back to the pool."""
        for key, raw in ctx.state.scan(fees_prefix(packet.source_channel)):
            credit(ctx.state, POOL_ADDRESS, int(decode(raw, "fees in flight")))
            ctx.state.delete(key)

    # --- the block's end ---------------------------------------------------------------
    def end_block(self, ctx: BlockContext, place: Place, params: FocusParams) -> None:
        self._collect_fees(ctx)
        raw = ctx.state.get(PENDING_KEY)
        pending: list[list[Any]] = decode(raw, "pending ranks") if raw else []
        merged = ctx.state.get(MERGED_KEY)
        last_merge, dirty = decode(merged, "last merge") if merged else (0, False)
        due = ctx.time_ms - last_merge >= place.merge_interval_ms
        if not pending and not (due and dirty):
            return
        version = ctx.state.get(VERSION_KEY) or b""
        cached = self._engine(ctx.state, place, params)
        self._cache = None
        engine = cached.engine
        for bucket, data in pending:
            try:
                doc = decode(data, "rank packet")
                engine.check(bucket, doc)
            except (RankUnsupportedError, FocusflowError) as exc:
                ctx.events.append({"type": "rank.refused", "bucket": bucket, "why": str(exc)})
                continue
            engine.apply(bucket, doc)
            ctx.state.put(seen_key(bucket), encode([ctx.height, ctx.time_ms, int(doc["round"])]))
            dirty = True
        ctx.state.delete(PENDING_KEY)
        if due and dirty:
            self._merge(ctx, place, engine)
            last_merge, dirty = ctx.time_ms, False
        ctx.state.put(MERGED_KEY, encode([last_merge, dirty]))
        new_version = sha256(version + encode([ctx.height, ctx.time_ms, pending]))
        ctx.state.put(ENGINE_KEY, encode(engine.export_state()))
        ctx.state.put(VERSION_KEY, new_version)
        self._cache = _Cached(new_version, engine)

    def _collect_fees(self, ctx: BlockContext) -> None:
        """The pool's share of the fees the proposer would be paid (under the
        economy, of the tips: the base fees are the economy's)."""
        paid = ctx.fees - ctx.counters.get("base_fees", 0) if ctx.params.economics else ctx.fees
        share = max(paid, 0) * FEE_SHARE_BPS // 10_000
        if share:
            ctx.fees -= share
            credit(ctx.state, POOL_ADDRESS, share)
            ctx.events.append({"type": "rank.pool", "amount": share})

    def _merge(self, ctx: BlockContext, place: Place, engine: HubMerge) -> None:
        stale = []
        for b in range(place.buckets):
            seen = last_seen(ctx.state, b)
            if seen is None or ctx.time_ms - seen.time_ms > place.stale_after_ms:
                stale.append(b)
        engine.stale(stale)
        snap = engine.merge()
        self._commit(ctx.state, ctx.height, ctx.time_ms, snap)
        pool = get_account(ctx.state, POOL_ADDRESS).balance
        weights = [0] * place.buckets
        for cid, value in zip(snap.particles, snap.focus, strict=True):
            weights[engine.owner(cid)] += value
        channels = {}
        for b in range(place.buckets):
            chain_id = rollup_chain_id(ctx.state, b)
            channel = find_channel(ctx.state, PORT, chain_id) if chain_id else None
            if channel is not None:
                channels[b] = channel
        shares = demand_shares(pool, [weights[b] for b in sorted(channels)])
        for (b, channel), fees in zip(sorted(channels.items()), shares, strict=True):
            if fees:
                debit(ctx.state, POOL_ADDRESS, fees, "demand share")
            data = encode({"rank": engine.inflow(b), "fees": fees})
            last = 0
            for part in split(data):
                last = send_packet(
                    ctx.state, PORT, channel, part, 0, ctx.time_ms + PACKET_TIMEOUT_MS
                )
            if fees:
                ctx.state.put(fees_key(channel, last), encode(fees))
        ctx.events.append(
            {
                "type": "rank.merged",
                "round": snap.round,
                "particles": len(snap.particles),
                "stale": stale,
                "fees": sum(shares),
            }
        )

    def _commit(self, state: PendingState, height: int, time_ms: int, snap: Snapshot) -> None:
        old = snapshot_record(state)
        entries = list(zip(snap.particles, snap.focus, strict=True))
        chunks = (len(entries) + CHUNK - 1) // CHUNK
        for i in range(chunks):
            state.put(chunk_key(i), encode([list(e) for e in entries[i * CHUNK : (i + 1) * CHUNK]]))
        for i in range(chunks, old.chunks if old is not None else 0):
            state.delete(chunk_key(i))
        record = SnapshotRecord(
            snap.round,
            height,
            time_ms,
            snap.root(),
            len(entries),
            chunks,
            tuple(sorted(snap.stale)),
        )
        state.put(SNAPSHOT_KEY, encode(record.to_cbor()))
