"""Economy parameters changed by the validators' vote, in force from the next block."""

from __future__ import annotations

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.governed import GOVERNED_KEY, overrides
from focusflow.modules import DexParams, amm
from focusflow.state_schema.dex import get_pool
from focusflow.state_schema.tokens import balance_of
from focusflow.testing.chains import ALICE, BALANCE, CHAIN_ID, FEE, STAKE, VALIDATOR, new_chain, tx


def _genesis(**params) -> Genesis:
    params.setdefault("focus", {"mode": "diffusion"})
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": params,
            "accounts": [
                {"address": k.address, "balance": BALANCE, "stake": STAKE, "tokens": {"h": BALANCE}}
                for k in (ALICE, VALIDATOR)
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def _codes(result) -> list[tuple[str, str]]:
    return [(r.code, r.log) for r in result.receipts]


@pytest.mark.parametrize("economics", [0, 1])
def test_a_decided_vote_changes_the_swap_fee_from_the_next_block(tmp_path, economics):
    chain = new_chain(tmp_path, _genesis(economics=economics))
    create = Msg("dex.create", {"a": "cyb", "b": "h", "amount_a": 10**11, "amount_b": 10**11})
    assert _codes(chain.produce_block([tx(ALICE, 0, create)])) == [("ok", "")]
    vote = Msg("economy.vote", {"params": {"dex_fee_bps": 100}})
    swap = Msg("dex.swap", {"path": ["cyb", "h"], "amount_in": 10**6, "min_out": 0})
    # The vote decides at once (one validator holds all power); the swap in the
    # same block still pays the old fee.
    result = chain.produce_block([tx(VALIDATOR, 0, vote), tx(ALICE, 1, swap)])
    assert _codes(result) == [("ok", ""), ("ok", "")]
    with chain.reader() as r:
        assert overrides(r) == {"dex_fee_bps": 100}
        pool = get_pool(r, "cyb", "h")
        before = balance_of(r, ALICE.address_raw, "h")
    assert DexParams.of(chain.params_now()).dex_fee_bps == 100
    assert DexParams.of(chain.params).dex_fee_bps == 30  # the genesis is what it was
    expect = amm.amount_out(10**6, pool.reserve_a, pool.reserve_b, 100)
    assert expect != amm.amount_out(10**6, pool.reserve_a, pool.reserve_b, 30)
    chain.produce_block([tx(ALICE, 2, swap)])
    with chain.reader() as r:
        got = balance_of(r, ALICE.address_raw, "h") - before
    # Under the economy the transaction's fee came out of the same h balance.
    assert got == expect - (FEE if economics else 0)


def test_votes_are_checked_and_only_validators_vote(tmp_path):
    chain = new_chain(tmp_path, _genesis())
    cases = [
        (ALICE, {"dex_fee_bps": 100}, "not_validator"),
        (VALIDATOR, {"economics": 1}, "malformed_message"),
        (VALIDATOR, {"fee_base": 1}, "malformed_message"),
        (VALIDATOR, {"dex_fee_bps": 10_000}, "malformed_message"),
        (VALIDATOR, {"dex_max_hops": 0}, "malformed_message"),
        (VALIDATOR, {}, "malformed_message"),
    ]
    nonces = {ALICE.address: 0, VALIDATOR.address: 0}
    for key, changes, code in cases:
        result = chain.produce_block(
            [tx(key, nonces[key.address], Msg("economy.vote", {"params": changes}))]
        )
        nonces[key.address] += 1
        assert result.receipts[0].code == code, (changes, result.receipts[0].log)
        with chain.reader() as r:
            assert r.get(GOVERNED_KEY) is None
