"""Builders for the evidence tests: a four-validator genesis, certified steps, double
votes, and blocks forged to carry chosen evidence."""

from __future__ import annotations

from dataclasses import replace

from focusflow.chain import Genesis
from focusflow.chain.block import Block, BlockRecord, evidence_root, sign_certificate
from focusflow.chain.module import Deltas
from focusflow.consensus import DuplicateVoteEvidence, Step, Vote
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.modules.accounts import get_account

CHAIN_ID = "focusflow-evidence"
KEYS = [KeyPair.from_seed(bytes([i + 1]) * 32) for i in range(4)]
BYZ = KEYS[3]
OUTSIDER = KeyPair.from_seed(b"outsider".ljust(32, b"\0"))
BALANCE = 10**9
#: 5% of it is 50_000.95: the slash rounds down to 50_000.
BONDED = 1_000_019
SLASHED = 50_000


def genesis(keys=KEYS, chain_id=CHAIN_ID, **params) -> Genesis:
    params.setdefault("focus", {"mode": "tri"})
    params.setdefault("slash_fraction", 500)
    return Genesis.from_json(
        {
            "chain_id": chain_id,
            "genesis_time_ms": 1_700_000_000_000,
            "params": params,
            "accounts": [{"address": k.address, "balance": BALANCE, "stake": BONDED} for k in keys],
            "validators": [
                {"name": f"v{i}", "public_key": k.public_key.hex(), "power": 1}
                for i, k in enumerate(keys)
            ],
        }
    )


def members(chain, keys=KEYS) -> list[KeyPair]:
    """The keys of ``keys`` in the set of ``chain``'s next height (a slashed one leaves it)."""
    return [k for k in keys if chain.validators.power_of(k.public_key)]


def step(chain, keys=None):
    """Propose the next block on ``chain`` and commit it, certified by ``keys``
    (default: every member of the height's set)."""
    pending = chain.propose([])
    keys = members(chain) if keys is None else keys
    cert = sign_certificate(list(keys), chain.chain_id, pending.height, pending.hash)
    return chain.commit(pending, cert)


def double_vote(key, height, step_=Step.PREVOTE, round_=0, chain_id=CHAIN_ID):
    a = Vote.sign(key, chain_id, height, round_, step_, sha256(b"block a"))
    b = Vote.sign(key, chain_id, height, round_, step_, sha256(b"block b"))
    return DuplicateVoteEvidence.of(a, b)


def bonded(chain, key) -> int:
    with chain.reader() as r:
        return get_account(r, key.address_raw).bonded


def forge(producer, pieces: list[bytes], *, root: bytes | None = None) -> BlockRecord:
    """The producer's next block (certified) with ``pieces`` of evidence put in its body."""
    pending = producer.propose([])
    producer.abandon(pending)
    block = pending.block
    header = replace(block.header, evidence_root=evidence_root(pieces) if root is None else root)
    cert = sign_certificate(members(producer), CHAIN_ID, header.height, header.hash)
    return BlockRecord(
        Block(header, block.txs, tuple(pieces)), cert, Deltas(), pending.record.last_commit
    )
