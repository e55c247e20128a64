"""A fresh proposal's block must name the round's proposer as its maker."""

from __future__ import annotations

import pytest

from focusflow.chain.errors import WrongProposerError
from focusflow.node import open_chain
from tests.chain.evidence_helpers import KEYS, OUTSIDER, genesis


def test_a_block_naming_another_validator_than_the_rounds_proposer_is_refused(tmp_path):
    gen = genesis()
    maker = open_chain(tmp_path / "m", gen, KEYS[0])
    value = maker.propose([]).proposal_value()
    chain = open_chain(tmp_path / "v", gen)
    # KEYS[1] signed the proposal (it is the round's proposer) with KEYS[0]'s block.
    with pytest.raises(WrongProposerError, match="not the round's proposer") as info:
        chain.validate(value, proposer=KEYS[1].address_raw)
    assert info.value.code == "wrong_proposer" and chain.height == 0
    # Without the round (replay, sync, a re-proposal) any member is accepted.
    assert chain.validate(value).hash == chain.validate(value, proposer=KEYS[0].address_raw).hash
    outsider = open_chain(tmp_path / "o", gen, OUTSIDER)
    with pytest.raises(WrongProposerError, match="proposer is not a validator"):
        chain.validate(outsider.propose([]).proposal_value())
