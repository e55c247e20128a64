"""What a block made elsewhere must show before it executes.

A received block is judged against the tip (tip.py) in a fixed order, each
refusal a BlockError that names the rule: chain, height and parent; a focus
upgrade this code can run; time; the roots of its transactions and evidence;
its evidence in canonical form; the validator set and proposer; the parent's
certificate it carries (``last_commit``); then its data root, before any
transaction runs (da_commit.py). Execution and the comparison of the state
and focus roots follow in the pipeline (pipeline.py).

Block time increases, stays at most MAX_TIME_MS (block.py) and, for a
validator judging a fresh proposal with its clock, at most
MAX_CLOCK_DRIFT_MS ahead of that clock (docs/chain.md, "Block time").
"""

from __future__ import annotations

from focusflow.chain.block import (
    MAX_TIME_MS,
    Block,
    BlockRecord,
    Header,
    certificate_hash,
    evidence_root,
    txs_root,
)
from focusflow.chain.da_commit import block_square
from focusflow.chain.errors import BlockError, BlockTimeError, WrongProposerError
from focusflow.chain.tip import Tip
from focusflow.consensus.certificate import CommitCertificate, verify_certificate
from focusflow.consensus.errors import InvalidCertificateError
from focusflow.consensus.evidence import BlockEvidence, decode_evidence, encode_evidence
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import DecodeError
from focusflow.da import ExtendedSquare

#: How far ahead of a validator's clock a proposal's time may be (ms) for it
#: to prevote the proposal: a proposer cannot push block time into the future
#: (the next block's time must be larger), and clocks of honest validators
#: that differ by less than this still accept each other's blocks. A local
#: rule, not a consensus one: blocks replayed from the store or synced with
#: a certificate are never refused for their time against the local clock.
MAX_CLOCK_DRIFT_MS = 10_000


def decode_record(record: BlockRecord | bytes) -> BlockRecord:
    """A block as received: its record, or BlockError if it does not decode."""
    if isinstance(record, BlockRecord):
        return record
    try:
        return BlockRecord.decode(record)
    except DecodeError as exc:
        raise BlockError(f"undecodable block: {exc}") from None


def check_header(
    record: BlockRecord, tip: Tip, chain_id: str, *, now_ms: int | None, proposer: bytes | None
) -> list[BlockEvidence]:
    """Every check of a received block that needs no execution but its data
    root (:func:`check_data_root`), in order; returns its evidence, decoded.

    ``now_ms`` and ``proposer`` are what only a validator judging a fresh
    proposal knows: its clock, and the round's proposer (``Chain.validate``).
    """
    header = record.block.header
    head = tip.header
    if header.chain_id != chain_id:
        raise BlockError(f"block for chain {header.chain_id!r}, not {chain_id!r}")
    if header.height != head.height + 1:
        raise BlockError(f"block height {header.height}, expected {head.height + 1}")
    if header.parent != head.hash:
        raise BlockError(f"block {header.height} does not extend our head")
    tip.focus_upgrade(header.height)
    check_time(head, header.height, header.time_ms, now_ms)
    if header.txs_root != txs_root(record.block.txs):
        raise BlockError(f"block {header.height} txs_root does not match its transactions")
    if header.evidence_root != evidence_root(record.block.evidence):
        raise BlockError(f"block {header.height} evidence_root does not match its evidence")
    evidence = decode_block_evidence(record.block)
    if header.validators_hash != tip.validators_hash:
        raise BlockError(f"block {header.height} names another validator set")
    if header.proposer and header.proposer not in tip.proposers:
        raise WrongProposerError(f"block {header.height} proposer is not a validator")
    if proposer is not None and header.proposer != proposer:
        raise WrongProposerError(
            f"block {header.height} names proposer {header.proposer.hex()[:12]}, "
            f"not the round's proposer {proposer.hex()[:12]}"
        )
    check_last_commit(record, tip, chain_id)
    return evidence


def check_data_root(record: BlockRecord) -> ExtendedSquare:
    """The block's data square, whose root must be the header's."""
    header = record.block.header
    square = block_square(record.block.txs)
    if square.data_root() != header.data_root:
        raise BlockError(
            f"block {header.height} data_root does not match its transactions' data square "
            f"({square.data_root().hex()[:12]} vs {header.data_root.hex()[:12]})"
        )
    return square


def check_time(parent: Header, height: int, time_ms: int, now_ms: int | None) -> None:
    """Block time increases, stays at most MAX_TIME_MS and (with the local
    clock ``now_ms``) at most MAX_CLOCK_DRIFT_MS ahead of it."""
    if time_ms <= parent.time_ms:
        raise BlockTimeError(
            f"block {height} time {time_ms} does not increase (parent's is {parent.time_ms})"
        )
    if time_ms > MAX_TIME_MS:
        raise BlockTimeError(f"block {height} time {time_ms} is above MAX_TIME_MS={MAX_TIME_MS}")
    if now_ms is not None and time_ms > now_ms + MAX_CLOCK_DRIFT_MS:
        raise BlockTimeError(
            f"block {height} time {time_ms} is {time_ms - now_ms} ms ahead of this "
            f"validator's clock (MAX_CLOCK_DRIFT_MS={MAX_CLOCK_DRIFT_MS})"
        )


def check_certificate(
    cert: CommitCertificate, block: Block, validators: ValidatorSet, chain_id: str
) -> None:
    """More than 2/3 of the validators' power precommitted this block."""
    try:
        verify_certificate(cert, validators, chain_id, height=block.height, value_id=block.hash)
    except InvalidCertificateError as exc:
        raise BlockError(f"block {block.height} has an invalid commit: {exc}") from None


def check_last_commit(record: BlockRecord, tip: Tip, chain_id: str) -> None:
    """The parent's certificate the block carries proves our head; the header hashes it."""
    header = record.block.header
    last = record.last_commit
    if header.last_commit != certificate_hash(last):
        raise BlockError(f"block {header.height} last_commit is not its parent's certificate")
    if header.height == 1:
        if last is not None:
            raise BlockError("block 1 carries a certificate of genesis")
        return
    if last is None:
        raise BlockError(f"block {header.height} carries no certificate of its parent")
    head = tip.header
    try:
        verify_certificate(
            last, tip.valsets.at(head.height), chain_id, height=head.height, value_id=head.hash
        )
    except InvalidCertificateError as exc:
        raise BlockError(f"block {header.height} last_commit is invalid: {exc}") from None


def decode_block_evidence(block: Block) -> list[BlockEvidence]:
    """A received block's evidence, each piece in its one canonical encoding."""
    out = []
    for raw in block.evidence:
        try:
            piece = decode_evidence(raw)
        except DecodeError as exc:
            raise BlockError(f"block {block.height} carries bad evidence: {exc}") from None
        if encode_evidence(piece) != raw:
            raise BlockError(f"block {block.height} carries evidence in a non-canonical form")
        out.append(piece)
    return out


__all__ = [
    "MAX_CLOCK_DRIFT_MS",
    "check_certificate",
    "check_data_root",
    "check_header",
    "check_last_commit",
    "check_time",
    "decode_block_evidence",
    "decode_record",
]
