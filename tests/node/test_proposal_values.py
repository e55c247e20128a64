"""Proposal values: their ids, and the small cache that spares a second decode."""

from __future__ import annotations

from focusflow.core.hashing import sha256
from focusflow.node.validator import DECODED_VALUES, decode_value, value_id_of
from tests.chain.helpers import ALICE, genesis, link, new_chain, tx


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
