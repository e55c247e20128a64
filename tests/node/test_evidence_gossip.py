"""A validator's handling of duplicate-vote evidence from gossip and from its own machine."""

from __future__ import annotations

import asyncio

import pytest

from focusflow.consensus import ReportEvidence, encode_evidence
from focusflow.node import open_chain
from focusflow.node.validator import ValidatorRuntime
from tests.chain.evidence_helpers import (
    BONDED,
    KEYS,
    OUTSIDER,
    SLASHED,
    bonded,
    double_vote,
    genesis,
)
from tests.chain.evidence_helpers import step as commit_step


@pytest.fixture
def runtime(tmp_path):
    chain = open_chain(tmp_path / "chain", genesis(), KEYS[0])
    commit_step(chain)
    rt = ValidatorRuntime(chain, KEYS[0], wal_path=tmp_path / "wal", listen=("127.0.0.1", 0))
    yield rt
    rt.signer.wal.close()


def test_gossiped_evidence_is_pooled_once_and_invalid_evidence_blames_the_sender(runtime):
    peer = KEYS[1].public_key
    good = encode_evidence(double_vote(KEYS[2], 1))
    assert asyncio.run(runtime.intake.on_evidence(peer, good)) is True
    assert asyncio.run(runtime.intake.on_evidence(peer, good)) is None  # known: not gossiped again
    assert asyncio.run(runtime.intake.on_evidence(peer, b"\x01junk")) is False
    stranger = encode_evidence(double_vote(OUTSIDER, 1))
    assert asyncio.run(runtime.intake.on_evidence(peer, stranger)) is False
    aged = encode_evidence(double_vote(KEYS[2], 9))
    assert asyncio.run(runtime.intake.on_evidence(peer, aged)) is None
    assert len(runtime.chain.evidence) == 1
    result = commit_step(runtime.chain)
    assert [e["amount"] for e in result.events if e["type"] == "slash"] == [SLASHED]
    assert runtime.chain.validators.power_of(KEYS[2].public_key) == 0  # jailed
    assert bonded(runtime.chain, KEYS[2]) == BONDED - SLASHED


def test_own_report_goes_to_the_pool(runtime):
    asyncio.run(runtime.consensus.act([ReportEvidence(double_vote(KEYS[3], 2))]))
    assert len(runtime.chain.evidence) == 1
