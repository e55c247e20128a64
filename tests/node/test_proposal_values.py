"""Proposal values: their ids, and the small cache that spares a second decode."""

from __future__ import annotations

from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.node import proposals
from focusflow.node.proposals import DECODED_VALUES, decode_value, value_id_of
from focusflow.node.validator import ValidatorRuntime
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx


def test_a_value_is_decoded_once_and_the_cache_stays_bounded(tmp_path):
    chain = new_chain(tmp_path / "p", genesis())
    t0 = genesis().genesis_time_ms
    values = [
        chain.propose([tx(ALICE, 0, link((f"a{i}", "b")))], t0 + 1000 * (i + 1)).proposal_value()
        for i in range(DECODED_VALUES + 2)
    ]
    cache: dict = {}
    first = decode_value(values[0], cache)
    assert value_id_of(values[0], cache) == first.block.hash
    assert decode_value(bytes(values[0]), cache) is first  # equal bytes, same record
    for v in values[1:]:
        assert value_id_of(v, cache) == decode_value(v).block.hash
    assert len(cache) == DECODED_VALUES and values[0] not in cache
    junk = b"\xff" + values[1][1:]
    assert value_id_of(junk, cache) == sha256(b"undecodable" + junk)
    assert junk not in cache and len(cache) == DECODED_VALUES


def test_validated_proposals_kept_are_bounded_and_the_locked_one_stays(tmp_path, monkeypatch):
    """A byzantine proposer may sign several valid proposals a round: the runtime
    keeps the executed state of at most MAX_PENDING (2 here, to keep the test
    short), never dropping the value it is locked on; a dropped one that is
    asked again is validated again."""
    monkeypatch.setattr(proposals, "MAX_PENDING", 2)
    chain = new_chain(tmp_path / "p", genesis())
    t0 = genesis().genesis_time_ms
    values = [
        chain.propose([tx(ALICE, 0, link((f"p{i}", "q")))], t0 + 1000).proposal_value()
        for i in range(4)
    ]
    runtime = ValidatorRuntime(
        chain, KeyPair.generate(), wal_path=tmp_path / "wal", listen=None, faucet_key=None
    )
    try:
        ids = [value_id_of(v) for v in values]
        assert runtime.proposals.is_valid(1, values[0])
        runtime.tm.locked_value_id = ids[0]
        for v in values[1:]:
            assert runtime.proposals.is_valid(1, v)
            assert len(runtime.proposals.kept) <= 2
        assert ids[0] in runtime.proposals.kept and ids[-1] in runtime.proposals.kept
        assert ids[1] not in runtime.proposals.kept
        assert runtime.proposals.is_valid(1, values[1])  # validated again, kept again
        assert ids[1] in runtime.proposals.kept and ids[0] in runtime.proposals.kept
    finally:
        runtime.signer.wal.close()
