"""A rollup's side of the global focus: its bucket's rank, sent to the hub.

When the hub's inflow packet of a new round has arrived (or, before the first,
once the channel to the hub is open), the rollup's end of block solves its
block of the global system with that inflow (``focus.rollup_rank``'s
:class:`BucketRank`) and commits its rank packet to the hub on the ``rank``
port: an IBC packet, which the hub takes only with a proof against this
chain's state root.

Commit safety: the engine's numbers between rounds are state (``/kv/rank/engine``,
with a version hash chained over each solve's inputs under ``/kv/rank/version``),
and its inputs are the chain's own links and stakes. The node keeps the engine
in memory between solves labelled with the version it wrote, and uses it only
while the committed state names that version: a block executed but not
committed (a proposal that lost its round) leaves the state's version behind,
and the next solve rebuilds the engine from the state, so every validator,
restarted or not, sends the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from focusflow.chain.errors import MalformedMessageError, OverLimitError
from focusflow.chain.module import BlockContext, TxContext
from focusflow.chain.rollup_engine import (
    BucketRank,
    FocusParams,
    check_inflow,
)
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode
from focusflow.core.hashing import sha256
from focusflow.modules.accounts import credit
from focusflow.modules.ibc import find_channel, send_packet
from focusflow.modules.rank_parts import split, take
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.ibc import Packet
from focusflow.state_schema.interchain import Place, hub_chain_id
from focusflow.state_schema.links import LINKS_PREFIX
from focusflow.state_schema.rank import (
    ENGINE_KEY,
    INFLOW_KEY,
    INFLOW_ROUND_KEY,
    POOL_ADDRESS,
    VERSION_KEY,
    parts_key,
)

#: The port both sides of the exchange bind (``modules.interchain`` binds it).
PORT = "rank"
#: How long a packet may wait for its relayer, in the destination's time: past
#: it the ordered channel would close (ICS-04), so it is long; a halted chain
#: is handled by the hub holding the bucket stale, not by timeouts.
PACKET_TIMEOUT_MS = 24 * 3600 * 1000
#: Most inflow packets that may wait for one solve (each is a relayer's
#: delivery of a hub round; the hub sends one per merge).
MAX_PENDING = 64


@dataclass
class _Cached:
    version: bytes
    height: int
    engine: BucketRank
    neurons: set[bytes]


def _link_height(key: bytes) -> int:
    return int.from_bytes(key[len(LINKS_PREFIX) : len(LINKS_PREFIX) + 8], "big")


class RollupRank:
    """The rollup's engine and its exchange with the hub."""

    def __init__(self) -> None:
        self._cache: _Cached | None = None

    def _engine(self, state: PendingState, place: Place, params: FocusParams) -> _Cached:
        """The engine as the state says it is, with every link up to this block."""
        version = state.get(VERSION_KEY) or b""
        cached, self._cache = self._cache, None
        if cached is None or cached.version != version:
            cached = _Cached(version, 0, BucketRank(place.bucket, place.buckets, params), set())
            saved = state.get(ENGINE_KEY)
            fresh = True
        else:
            saved, fresh = None, False
        newest = cached.height
        for key, raw in state.scan(LINKS_PREFIX):
            height = _link_height(key)
            if height <= cached.height:
                continue
            newest = max(newest, height)
            neuron, links = decode(raw, "links record")
            cached.engine.add_links(
                [e[0] for e in links], [e[1] for e in links], [neuron] * len(links)
            )
            cached.neurons.add(neuron)
        cached.height = newest
        if fresh and saved is not None:
            cached.engine.restore_state(decode(saved, "rank engine"))
        return cached

    def end_block(self, ctx: BlockContext, place: Place, params: FocusParams) -> None:
        hub = hub_chain_id(ctx.state)
        channel = find_channel(ctx.state, PORT, hub) if hub is not None else None
        if channel is None:
            return
        raw_pending = ctx.state.get(INFLOW_KEY)
        pending: list[bytes] = decode(raw_pending, "inflow list") if raw_pending else []
        previous = ctx.state.get(VERSION_KEY)
        if not pending and previous is not None:
            return
        cached = self._engine(ctx.state, place, params)
        engine = cached.engine
        engine.set_stakes({n: get_account(ctx.state, n).bonded for n in sorted(cached.neurons)})
        docs = [decode(raw, "inflow packet")["rank"] for raw in pending]
        try:
            for doc in docs[:-1]:
                engine.receive(doc)
            packet = engine.solve(docs[-1] if docs else None)
            sequences = [
                send_packet(ctx.state, PORT, channel, part, 0, ctx.time_ms + PACKET_TIMEOUT_MS)
                for part in split(encode(packet))
            ]
        except Exception as exc:  # noqa: BLE001 - no inflow may fail the block
            # Every inflow was checked on arrival, so this is a defect, not a
            # lie: the block goes on without this round's rank, the engine is
            # rebuilt from the state at the next solve, and the event says why.
            ctx.state.delete(INFLOW_KEY)
            ctx.events.append({"type": "rank.failed", "why": f"{type(exc).__name__}: {exc}"[:200]})
            return
        ctx.state.delete(INFLOW_KEY)
        version = sha256((previous or b"") + encode([ctx.height, pending]))
        ctx.state.put(ENGINE_KEY, encode(engine.export_state()))
        ctx.state.put(VERSION_KEY, version)
        cached.version = version
        self._cache = cached
        ctx.events.append(
            {"type": "rank.sent", "round": int(packet["round"]), "packets": len(sequences)}
        )

    def on_recv(self, ctx: TxContext, packet: Packet, place: Place) -> bytes:
        """The hub's inflow of a round, with this rollup's share of the hub's
        fees: checked (a packet no honest hub could send is refused in its
        acknowledgement with ``rank_unsupported``), kept in order until this
        block's end solves with it; the fees go to the rollup's demand pool."""
        whole = take(ctx.state, parts_key(-1), packet.data)
        if whole is None:
            return b"part"
        doc: Any = decode(whole, "inflow packet")
        if not isinstance(doc, dict) or set(doc) != {"rank", "fees"}:
            raise MalformedMessageError('an inflow packet is {"rank", "fees"}')
        fees = doc["fees"]
        if type(fees) is not int or not 0 <= fees < 2**63:
            raise MalformedMessageError("fees must be a non-negative integer")
        raw_round = ctx.state.get(INFLOW_ROUND_KEY)
        last_round = int(decode(raw_round, "inflow round")) if raw_round else 0
        check_inflow(doc["rank"], place.bucket, place.buckets, last_round)
        ctx.state.put(INFLOW_ROUND_KEY, encode(int(doc["rank"]["round"])))
        raw = ctx.state.get(INFLOW_KEY)
        pending: list[bytes] = decode(raw, "inflow list") if raw else []
        if len(pending) >= MAX_PENDING:
            raise OverLimitError(f"{MAX_PENDING} inflow packets wait already")
        pending.append(whole)
        ctx.state.put(INFLOW_KEY, encode(pending))
        if fees:
            credit(ctx.state, POOL_ADDRESS, fees)
        ctx.emit("rank.inflow", round=int(doc["rank"].get("round", 0)), fees=fees)
        return b"ok"

    def pool(self, state: PendingState) -> int:
        return get_account(state, POOL_ADDRESS).balance
