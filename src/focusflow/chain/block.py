"""Blocks: a header that commits to everything, and a body of transactions and evidence.

The header is the canonical CBOR array

    [chain_id, height, time_ms, parent, txs_root, state_root, focus_root,
     data_root, evidence_root, validators_hash, proposer, last_commit]

and the block hash is SHA-256 of it. ``txs_root`` is the RFC 6962 Merkle root
of the encoded transactions, ``state_root`` the sparse Merkle root of the
key-space after the block, ``focus_root`` the root of the quantised focus
vector (see focus_commit.py), ``data_root`` the data-availability root of the
block's data (32 zero bytes until the DA layer fills it), ``evidence_root``
the RFC 6962 Merkle root of the encoded equivocation evidence the block
carries (the empty root, SHA-256 of b"", when none), ``validators_hash``
the consensus validator set's hash (``ValidatorSet.hash``), ``proposer`` the
20-byte address of the validator that made it and ``last_commit`` the hash of
the commit that finalised the parent.

On disk (and on the wire) a block travels as a :class:`BlockRecord`: the block,
the consensus commit certificate that finalised it (precommits of more than 2/3
of the voting power, ``focusflow.consensus.CommitCertificate``; the one this
node collected, so two nodes may store different but equally valid ones), the
edge deltas its execution produced (stake changes, and references to the link
messages that succeeded), so a restarting node rebuilds the graph without
re-executing, and the proposer's certificate of the parent, which the header's
``last_commit`` hashes (CometBFT's ``LastCommit``); Brotli-compressed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeGuard

import brotli

from focusflow.chain.module import Deltas, LinkList
from focusflow.chain.tx import Tx, decode_tx, is_uint64
from focusflow.consensus.certificate import (
    CommitCertificate,
    decode_certificate,
    encode_certificate,
)
from focusflow.consensus.messages import Step, Vote
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import merkle_root, sha256
from focusflow.core.keys import KeyPair

ZERO_HASH = bytes(32)
#: Brotli quality for stored blocks: 4 compresses a block of links (repeated
#: CIDs) to about half at over 20 MB/s on one core; 5 and 6 are slower for no
#: gain there, and 11 saves a few percent more at a hundredth of the speed.
BROTLI_QUALITY = 4
#: Brotli quality for proposal values (gossip and the consensus WAL, never
#: stored): on a block of 15,000 links, 1 is five times faster than 4 (4 ms
#: against 19 ms) for 1.5 % more bytes, and the proposer pays it on every
#: height. The value id is the block hash, so the encoding is free to differ.
PROPOSAL_BROTLI_QUALITY = 1
#: Protocol cap on a decompressed block record.
HARD_MAX_RECORD_BYTES = 64 << 20
#: The latest time a header may carry, in milliseconds since the Unix epoch:
#: 2^53 - 1 (the year 287,396; exact in a double, far below the 2^63 of
#: signed 64-bit clocks). Block time must increase, so a header at the
#: largest encodable integer would leave no time for any later block: the
#: ceiling keeps room above every accepted header. How far ahead of a
#: validator's clock a proposal may be is checked separately
#: (``Chain.validate``'s ``now_ms``, docs/chain.md "Block time").
MAX_TIME_MS = 2**53 - 1


@dataclass(frozen=True)
class Header:
    chain_id: str
    height: int
    time_ms: int
    parent: bytes
    txs_root: bytes
    state_root: bytes
    focus_root: bytes
    data_root: bytes
    evidence_root: bytes
    validators_hash: bytes
    proposer: bytes
    last_commit: bytes

    def to_cbor(self) -> list[Any]:
        return [
            self.chain_id,
            self.height,
            self.time_ms,
            self.parent,
            self.txs_root,
            self.state_root,
            self.focus_root,
            self.data_root,
            self.evidence_root,
            self.validators_hash,
            self.proposer,
            self.last_commit,
        ]

    @property
    def hash(self) -> bytes:
        return sha256(encode(self.to_cbor()))

    @classmethod
    def from_cbor(cls, value: object) -> Header:
        if not isinstance(value, list) or len(value) != 12:
            raise DecodeError("malformed block: header is not a 12-element array")
        chain_id, height, time_ms, *hashes, proposer, last_commit = value
        ok = (
            isinstance(chain_id, str)
            and is_uint64(height)
            and is_uint64(time_ms)
            and all(isinstance(h, bytes) and len(h) == 32 for h in hashes)
            and isinstance(proposer, bytes)
            and len(proposer) in (0, 20)
            and isinstance(last_commit, bytes)
            and len(last_commit) in (0, 32)
        )
        if not ok:
            raise DecodeError("malformed block: bad header field")
        if time_ms > MAX_TIME_MS:
            raise DecodeError(f"malformed block: time_ms {time_ms} above MAX_TIME_MS={MAX_TIME_MS}")
        return cls(*value)  # the twelve fields in order, each checked above


@dataclass(frozen=True)
class Block:
    header: Header
    txs: tuple[bytes, ...]
    #: Encoded equivocation evidence (focusflow.consensus.encode_evidence),
    #: decoded and checked when the block is validated, like its transactions.
    evidence: tuple[bytes, ...] = ()

    @property
    def hash(self) -> bytes:
        return self.header.hash

    @property
    def height(self) -> int:
        return self.header.height

    def to_cbor(self) -> list[Any]:
        return [self.header.to_cbor(), list(self.txs), list(self.evidence)]


def txs_root(txs: tuple[bytes, ...] | list[bytes]) -> bytes:
    return merkle_root(list(txs))


def evidence_root(evidence: tuple[bytes, ...] | list[bytes]) -> bytes:
    return merkle_root(list(evidence))


def sign_certificate(
    keys: KeyPair | list[KeyPair], chain_id: str, height: int, block_hash: bytes, round: int = 0
) -> CommitCertificate:
    """A certificate of precommits by ``keys`` for ``block_hash`` (the value id).

    A single validator (the devnet) certifies its own blocks this way; tests
    use it to forge blocks.
    """
    keys = keys if isinstance(keys, list) else [keys]
    votes = [Vote.sign(k, chain_id, height, round, Step.PRECOMMIT, block_hash) for k in keys]
    return CommitCertificate.from_votes(votes)


def certificate_hash(cert: CommitCertificate | None) -> bytes:
    """What a header's ``last_commit`` holds: SHA-256 of the encoded certificate (b"" if none)."""
    return b"" if cert is None else sha256(encode_certificate(cert))


@dataclass(frozen=True)
class BlockRecord:
    block: Block
    #: The certificate that decided this block (None for genesis and proposals).
    commit: CommitCertificate | None = None
    #: The block's edge deltas, or (in a decoded record) their stored form, which
    #: :meth:`edge_deltas` resolves: a follower re-executes the block and never
    #: needs them, so decoding does not pay for reading the link messages twice.
    deltas: Deltas | list[Any] = field(default_factory=Deltas)
    #: The parent's certificate as the proposer stored it; ``header.last_commit``
    #: is its hash. None at height 1 (genesis has no certificate).
    last_commit: CommitCertificate | None = None

    def encode(self, quality: int = BROTLI_QUALITY) -> bytes:
        compressed: bytes = brotli.compress(self.plain(), quality=quality)
        return compressed

    def plain(self) -> bytes:
        """The uncompressed canonical CBOR (the 4th element only when there is one)."""
        deltas = self.deltas.to_cbor() if isinstance(self.deltas, Deltas) else self.deltas
        commit = b"" if self.commit is None else encode_certificate(self.commit)
        items = [self.block.to_cbor(), commit, deltas]
        if self.last_commit is not None:
            items.append(encode_certificate(self.last_commit))
        return encode(items)

    def edge_deltas(self) -> Deltas:
        """The block's edge deltas, link groups read from the messages they refer to."""
        if isinstance(self.deltas, Deltas):
            return self.deltas
        return _resolve_deltas(self.deltas, self.block.txs)

    @classmethod
    def decode(cls, data: bytes) -> BlockRecord:
        """Parse a stored or received block; DecodeError for anything malformed."""
        if not isinstance(data, bytes):
            raise DecodeError("malformed block: expected bytes")
        try:
            dec = brotli.Decompressor()
            raw = dec.process(data, output_buffer_limit=HARD_MAX_RECORD_BYTES + 1)
            if len(raw) > HARD_MAX_RECORD_BYTES or not dec.is_finished():
                raise DecodeError("malformed block: truncated or larger than the protocol cap")
        except brotli.error as exc:
            raise DecodeError(f"malformed block: not Brotli data ({exc})") from None
        return cls.from_plain(raw)

    @classmethod
    def from_plain(cls, raw: bytes) -> BlockRecord:
        value = decode(raw, "block")
        if not isinstance(value, list) or len(value) not in (3, 4):
            raise DecodeError("malformed block: expected [block, commit, deltas, last_commit?]")
        block_v, commit, deltas_v = value[:3]
        if not isinstance(block_v, list) or len(block_v) != 3:
            raise DecodeError("malformed block: expected [header, txs, evidence]")
        header = Header.from_cbor(block_v[0])
        txs, evidence = block_v[1], block_v[2]
        if not isinstance(txs, list) or not all(isinstance(t, bytes) for t in txs):
            raise DecodeError("malformed block: transactions must be byte strings")
        if not isinstance(evidence, list) or not all(isinstance(e, bytes) for e in evidence):
            raise DecodeError("malformed block: evidence must be byte strings")
        cert = _certificate(commit)
        last = _certificate(value[3]) if len(value) == 4 else None
        if len(value) == 4 and last is None:
            raise DecodeError("malformed block: empty last_commit")
        _check_deltas_shape(deltas_v)
        return cls(Block(header, tuple(txs), tuple(evidence)), cert, deltas_v, last)


def _certificate(value: object) -> CommitCertificate | None:
    """An encoded certificate, or None for the empty marker (b"" or the old ``[]``)."""
    if value == b"" or value == []:
        return None
    if not isinstance(value, bytes):
        raise DecodeError("malformed block: bad commit")
    return decode_certificate(value)


def _check_deltas_shape(value: object) -> None:
    """``[groups of two, [[address, stake], ...]]``; references are resolved on use."""
    ok = False
    if isinstance(value, list) and len(value) == 2:
        groups, stakes = value
        ok = (
            isinstance(groups, list)
            and all(isinstance(g, list) and len(g) == 2 for g in groups)
            and isinstance(stakes, list)
            and all(
                isinstance(s, list) and len(s) == 2 and isinstance(s[0], bytes) and is_uint64(s[1])
                for s in stakes
            )
        )
    if not ok:
        raise DecodeError("malformed block: bad edge deltas")


def _resolve_deltas(value: list[Any], txs: tuple[bytes, ...]) -> Deltas:
    """Edge deltas of a stored block; link groups given by reference are read from its txs."""
    _check_deltas_shape(value)
    groups, stakes = value
    deltas = Deltas(stakes={k: v for k, v in stakes})
    decoded: dict[int, Tx] = {}
    for first, second in groups:
        if isinstance(first, int) and isinstance(second, int):
            if not 0 <= first < len(txs):
                raise DecodeError("malformed block: edge delta names a missing transaction")
            tx = decoded.get(first)
            if tx is None:
                tx = decoded[first] = decode_tx(txs[first])
            if not 0 <= second < len(tx.msgs) or tx.msgs[second].type != "link":
                raise DecodeError("malformed block: edge delta names a message without links")
            pairs = tx.msgs[second].body.get("links")
            neuron = tx.sender_address
        else:
            neuron, pairs = first, second
        if not isinstance(neuron, bytes) or not _link_list(pairs):
            raise DecodeError("malformed block: bad edge delta links")
        deltas.links.append((neuron, pairs, None))
    return deltas


def _link_list(pairs: object) -> TypeGuard[LinkList]:
    return isinstance(pairs, list) and all(
        isinstance(e, list) and len(e) in (2, 3) and all(isinstance(y, bytes) for y in e)
        for e in pairs
    )
