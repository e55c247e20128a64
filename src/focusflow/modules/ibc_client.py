"""On-chain light clients of other chains (ICS-02), over the light client's rules.

At genesis a chain with an ``interchain`` section makes one client per chain it
follows (``Interchain.counterparties``), named by that chain's id, trusting its
genesis validator set at height 0 (the light client's ``trust_genesis``: the
first header is accepted when more than 1/3 of that set signed it and more than
2/3 of its own). ``ibc.update_client`` carries a header a relayer fetched; the
chain verifies it from the newest stored header below it
(``chain.header_verify``: adjacent when the set is unchanged, else by the
1/3 trust rule, for any gap), measuring the trusting period against *this*
chain's block time, and keeps its state root as a consensus state.

Two valid headers at one height mean the counterparty's validators signed a
fork: the client freezes (``frozen_height``) in a transaction that succeeds, so
the freeze is stored, and every later header or proof against it is refused
(``client_frozen``). A header that does not verify freezes nothing.

The header of height ``h`` commits the state *after* block ``h``
(``chain.block``: ``state_root`` is the root after executing the block), so a
proof "at height ``h``" shows what block ``h`` left: a packet sent in block
``h`` is provable at ``h``.
"""

from __future__ import annotations

import dataclasses

from focusflow.chain.errors import (
    ClientExpiredError,
    ClientFrozenError,
    HeaderUntrustedError,
    IbcProofError,
    MalformedMessageError,
    MissingConsensusStateError,
    UnknownClientError,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.header_verify import (
    HeaderMismatchError,
    InsufficientTrustError,
    LightBlock,
    check_times,
    check_trust,
    decode_light_block,
    validator_set_of,
    verify_key,
)
from focusflow.chain.module import TxContext
from focusflow.chain.state import PendingState, Readable
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.state_schema.ibc import (
    ClientState,
    ConsensusState,
    client_key,
    consensus_key,
    consensus_prefix,
    get_client,
    get_consensus,
    sequence_of,
    valset_key,
)

#: Most bytes of a header message (a header, a certificate and a set of up to
#: 1024 validators fit in a fraction of it).
MAX_HEADER_BYTES = 512 << 10
#: Most bytes of one state proof (256 siblings of 32 bytes and a leaf).
MAX_PROOF_BYTES = 16 << 10
#: Consensus states a client keeps; older ones are pruned when it stores more.
#: A relayer updates a client and proves at that height in one transaction, so
#: a few suffice; 32 leave room for proofs in flight while others update.
MAX_CONSENSUS_STATES = 32


def init_clients(state: PendingState, genesis: Genesis) -> None:
    """One client per counterparty, trusting its genesis set at height 0."""
    ic = genesis.interchain
    if ic is None:
        return
    for ref in ic.counterparties():
        vset = ref.validator_set()
        state.put(
            client_key(ref.chain_id), ClientState(ref.chain_id, ic.trusting_period_ms, 0).encode()
        )
        _put_valset(state, ref.chain_id, vset)
        cons = ConsensusState(b"", ref.genesis_time_ms, b"", vset.hash())
        state.put(consensus_key(ref.chain_id, 0), cons.encode())


def _put_valset(state: PendingState, client: str, vset: ValidatorSet) -> None:
    rows = [[v.public_key, v.power] for v in vset.validators]
    state.put(valset_key(client, vset.hash()), encode(rows))


def _valset(state: Readable, client: str, validators_hash: bytes) -> ValidatorSet:
    raw = state.get(valset_key(client, validators_hash))
    if raw is None:  # written with every consensus state that names it
        raise MissingConsensusStateError(f"client {client} lost the set of a stored header")
    rows = decode(raw, "validator set")
    return validator_set_of([(k, p) for k, p in rows])


def live_client(state: Readable, client: str, now_ms: int) -> ClientState:
    """The client, refused when unknown, frozen or expired at ``now_ms``."""
    cs = get_client(state, client)
    if cs is None:
        raise UnknownClientError(f"no light client {client!r}")
    if cs.frozen_height:
        raise ClientFrozenError(
            f"client {client} is frozen: two valid headers at height {cs.frozen_height}"
        )
    latest = get_consensus(state, client, cs.latest_height)
    if latest is None or now_ms - latest.time_ms >= cs.trusting_period_ms:
        raise ClientExpiredError(
            f"client {client}'s newest header ({cs.latest_height}) is past its trusting period"
        )
    return cs


def _heights(state: PendingState, client: str) -> list[int]:
    return [sequence_of(k) for k, _ in state.scan(consensus_prefix(client))]


def update_client(ctx: TxContext, client: str, raw: bytes) -> str:
    """Verify and store the header ``raw`` (``LightBlock.to_cbor``'s bytes);
    ``"updated"``, ``"known"`` (the same header again) or ``"frozen"``."""
    state = ctx.state
    cs = live_client(state, client, ctx.block.time_ms)
    if not isinstance(raw, bytes) or len(raw) > MAX_HEADER_BYTES:
        raise MalformedMessageError(f"header must be bytes of at most {MAX_HEADER_BYTES}")
    try:
        block = decode_light_block(raw, cs.chain_id, MAX_HEADER_BYTES)
    except DecodeError as exc:
        raise MalformedMessageError(f"header: {exc.message}") from None
    if block.height == 0:
        raise MalformedMessageError("header 0 is the trust root, not an update")
    heights = _heights(state, client)
    stored = get_consensus(state, client, block.height)
    if stored is not None and stored.header_hash == block.hash:
        return "known"
    below = max((h for h in heights if h < block.height), default=None)
    if below is None:
        raise MissingConsensusStateError(
            f"client {client} holds no header below {block.height} to verify it from"
        )
    trusted = get_consensus(state, client, below)
    assert trusted is not None
    _verify(state, client, cs, below, trusted, block, ctx.block.time_ms)
    above = min((h for h in heights if h > block.height), default=None)
    conflict = stored is not None
    if above is not None and not conflict:
        nxt = get_consensus(state, client, above)
        # Verified headers out of time order: only a fork makes those.
        conflict = nxt is not None and nxt.time_ms <= block.header.time_ms
    if conflict:
        frozen = dataclasses.replace(cs, frozen_height=block.height)
        state.put(client_key(client), frozen.encode())
        ctx.emit("ibc.client_frozen", client=client, height=block.height, hash=block.hash.hex())
        return "frozen"
    _store(state, client, cs, block, heights)
    ctx.emit("ibc.client_updated", client=client, height=block.height, hash=block.hash.hex())
    return "updated"


def _verify(
    state: Readable,
    client: str,
    cs: ClientState,
    trusted_height: int,
    trusted: ConsensusState,
    block: LightBlock,
    now_ms: int,
) -> None:
    """``block`` (consistent: its own set's 2/3 signed it) follows from the
    trusted consensus state: adjacent with the same set and the trusted hash as
    parent, or more than 1/3 of the trusted set among its signers."""
    check_times(trusted_height, trusted.time_ms, block.header, now_ms, cs.trusting_period_ms)
    adjacent = (
        block.height == trusted_height + 1
        and trusted.header_hash
        and block.header.validators_hash == trusted.validators_hash
    )
    if adjacent:
        if block.header.parent != trusted.header_hash:
            raise HeaderMismatchError(
                f"header {block.height}'s parent is not the verified header {trusted_height}"
            )
        return
    assert block.certificate is not None  # consistent above height 0
    try:
        check_trust(
            block.certificate, _valset(state, client, trusted.validators_hash), block.height
        )
    except InsufficientTrustError as exc:
        raise HeaderUntrustedError(str(exc)) from None


def _store(
    state: PendingState, client: str, cs: ClientState, block: LightBlock, heights: list[int]
) -> None:
    header = block.header
    cons = ConsensusState(header.state_root, header.time_ms, block.hash, header.validators_hash)
    state.put(consensus_key(client, block.height), cons.encode())
    _put_valset(state, client, block.validators)
    latest = max(cs.latest_height, block.height)
    state.put(client_key(client), ClientState(cs.chain_id, cs.trusting_period_ms, latest).encode())
    kept = sorted([*heights, block.height])
    for height in kept[: max(0, len(kept) - MAX_CONSENSUS_STATES)]:
        old = get_consensus(state, client, height)
        state.delete(consensus_key(client, height))
        if old is not None and old.validators_hash != header.validators_hash:
            remaining = kept[len(kept) - MAX_CONSENSUS_STATES :]
            if not any(
                (c := get_consensus(state, client, h)) is not None
                and c.validators_hash == old.validators_hash
                for h in remaining
            ):
                state.delete(valset_key(client, old.validators_hash))


def proof_root(state: Readable, client: str, height: int, now_ms: int) -> ConsensusState:
    """The consensus state a proof at ``height`` is checked against (refused:
    client unknown, frozen or expired; no verified header of that height)."""
    live_client(state, client, now_ms)
    cons = get_consensus(state, client, height) if height > 0 else None
    if cons is None:
        raise MissingConsensusStateError(f"client {client} holds no header of height {height}")
    return cons


def verify_membership(
    state: Readable, client: str, height: int, now_ms: int, key: bytes, value: bytes, proof: bytes
) -> ConsensusState:
    """``key`` held ``value`` in the counterparty's state after block ``height``."""
    cons = proof_root(state, client, height, now_ms)
    if not verify_key(cons.root, key, value, proof):
        raise IbcProofError(
            f"the proof does not show {key!r} holding that value at {client} height {height}"
        )
    return cons


__all__ = [
    "MAX_CONSENSUS_STATES",
    "MAX_HEADER_BYTES",
    "MAX_PROOF_BYTES",
    "init_clients",
    "live_client",
    "proof_root",
    "update_client",
    "verify_membership",
]
