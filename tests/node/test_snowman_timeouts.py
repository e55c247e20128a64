"""A validator's Snowman timers come from its config.json (``snowman_timeouts``),
checked before the node starts; the engine it builds runs with them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from focusflow.consensus import EngineConfig, Signer, Snowman, WriteAheadLog
from focusflow.consensus.notarise import Notarised
from focusflow.consensus.snowball import SnowmanParams
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair, verify
from focusflow.node.engines import build_engine, snowman_timeouts_of


def engine_with(config: dict[str, object], engine: str = "snowman") -> Snowman:
    key = KeyPair.from_seed(sha256(b"timers"))
    proposals = SimpleNamespace(
        get_value=lambda h: b"v",
        is_valid=lambda h, v: True,
        value_id=sha256,
        is_valid_proposal=lambda h, p: True,
    )
    built = build_engine(
        EngineConfig(engine),
        "timers-chain",
        signer=Signer(key, "timers-chain", WriteAheadLog(None)),
        proposals=proposals,  # type: ignore[arg-type]
        timeouts=None,
        verify=verify,
        snowman_timeouts=snowman_timeouts_of(config),
    )
    assert isinstance(built, Notarised)
    inner = built.inner
    return inner if isinstance(inner, Snowman) else inner.poller


def test_config_sets_the_timers_and_leaves_the_rest_at_the_genesis_values():
    machine = engine_with({"snowman_timeouts": {"poll": 0.5, "poll_max": 8, "propose": 1.5}})
    assert machine.params.poll_timeout == 0.5
    assert machine.params.poll_timeout_max == 8.0
    assert machine.params.propose_timeout == 1.5
    assert machine.params.beta == SnowmanParams().beta
    assert machine.poll_timeout == 0.5  # the first poll's timer
    fallback = engine_with({"snowman_timeouts": {"poll": 0.3}}, engine="fallback")
    assert fallback.params.poll_timeout == 0.3
    assert engine_with({}).params == SnowmanParams()


@pytest.mark.parametrize(
    ("timers", "says"),
    [
        ([0.5], "must be an object"),
        ({"pol": 0.5}, "unknown snowman_timeouts ['pol']"),
        ({"poll": True}, "snowman_timeouts.poll must be"),
        ({"poll": "0.5"}, "snowman_timeouts.poll must be"),
        ({"poll": 0}, "snowman_timeouts.poll must be"),
        ({"propose": 61}, "snowman_timeouts.propose must be"),
        ({"poll": float("nan")}, "snowman_timeouts.poll must be"),
        ({"poll": 5.0}, "poll_timeout_max"),  # above the default ceiling of 3.2 s
    ],
)
def test_bad_timers_are_refused_with_what_is_wrong(timers, says):
    with pytest.raises(InvalidParameterError) as info:
        snowman_timeouts_of({"snowman_timeouts": timers})
    assert says in str(info.value)
    assert info.value.code == "invalid_parameter"
