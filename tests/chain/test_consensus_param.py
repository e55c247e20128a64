"""The genesis's consensus engine: a chain parameter read once, written only when
it is not Tendermint (so every existing genesis keeps its hash)."""

from __future__ import annotations

import pytest

from focusflow.chain.errors import GenesisError
from focusflow.chain.params import ChainParams
from focusflow.consensus import EngineConfig


def test_tendermint_is_the_default_and_leaves_no_trace_in_the_genesis():
    params = ChainParams()
    assert params.engine() == EngineConfig()
    assert "consensus" not in params.to_dict()
    assert ChainParams.from_dict(params.to_dict()) == params


def test_a_polling_engine_and_its_parameters_are_read_and_written_back():
    raw = {
        "consensus": {
            "engine": "snowman",
            "k": 7,
            "alpha_preference": 4,
            "alpha_confidence": 6,
            "beta": 9,
        }
    }
    params = ChainParams.from_dict(raw)
    engine = params.engine()
    assert engine.engine == "snowman"
    assert (engine.snowman.k, engine.snowman.alpha_preference, engine.snowman.beta) == (7, 4, 9)
    assert params.to_dict()["consensus"] == raw["consensus"]
    assert ChainParams.from_dict(params.to_dict()) == params


@pytest.mark.parametrize(
    ("consensus", "match"),
    [
        ("snowman", "must be an object"),
        ({"engine": "avalanche"}, "is not one of"),
        ({"engine": "snowman", "beta": "20"}, "must be an integer"),
        ({"engine": "snowman", "beta": True}, "must be an integer"),
        ({"engine": "snowman", "rounds": 3}, "unknown consensus fields"),
        ({"engine": "fallback", "switch_after_rounds": 0}, "switch_after_rounds"),
        ({"engine": "snowman", "k": 4, "alpha_confidence": 5}, "alpha"),
    ],
)
def test_a_bad_engine_choice_is_refused_with_its_reason(consensus, match):
    with pytest.raises(GenesisError, match=match) as err:
        ChainParams.from_dict({"consensus": consensus})
    assert err.value.code == "bad_genesis"
