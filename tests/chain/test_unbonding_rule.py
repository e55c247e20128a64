"""Unbonding outlasts the evidence window and an epoch, so stake cannot leave before
its offence is punished."""

from __future__ import annotations

import pytest

from focusflow.chain.errors import GenesisError
from focusflow.chain.params import ChainParams
from focusflow.node.home import init_devnet, init_testnet


def _holds(params: ChainParams) -> bool:
    return params.unbonding_blocks > params.evidence_max_age + params.epoch_blocks


def test_the_defaults_keep_the_rule():
    assert _holds(ChainParams())
    assert _holds(ChainParams.from_dict({}))


@pytest.mark.parametrize(
    "raw",
    [
        {"unbonding_blocks": 200},  # = 100 + 100
        {"unbonding_blocks": 10},  # the old default
        {"unbonding_blocks": 300, "evidence_max_age": 250},
        {"unbonding_blocks": 300, "epoch_blocks": 250},
    ],
)
def test_a_short_unbonding_is_refused(raw):
    with pytest.raises(GenesisError, match=r"params.unbonding_blocks=\d+ must exceed") as info:
        ChainParams.from_dict(raw)
    assert info.value.code == "bad_genesis"
    with pytest.raises(GenesisError, match="must exceed evidence_max_age \\+ epoch_blocks"):
        ChainParams(**raw)


def test_a_genesis_that_leaves_unbonding_out_gets_enough():
    assert ChainParams.from_dict({"unbonding_blocks": 201}).unbonding_blocks == 201
    assert ChainParams.from_dict({"epoch_blocks": 1_000}).unbonding_blocks == 1_200
    assert ChainParams.from_dict({"evidence_max_age": 5, "epoch_blocks": 4}).unbonding_blocks == 300


def test_devnet_and_testnet_genesis_keep_the_rule(tmp_path):
    home, _ = init_devnet(tmp_path / "dev")
    assert _holds(home.load_genesis().params)
    for epoch in (100, 1_000):
        homes = init_testnet(tmp_path / f"tn{epoch}", 2, 27_000, params={"epoch_blocks": epoch})
        params = homes[0].load_genesis().params
        assert params.epoch_blocks == epoch and _holds(params)
