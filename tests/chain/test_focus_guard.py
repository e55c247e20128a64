"""What a block commits when focus does not converge, and what quantise refuses."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from focusflow.chain.focus_commit import (
    FOCUS_KEY,
    NEW_CHAIN_FOCUS,
    SCALE,
    FocusValueError,
    quantise,
)
from focusflow.core.encoding import decode
from focusflow.testing.chains import ALICE, BOB, genesis, link, new_chain, tx

T0 = 1_700_000_000_000


def _focus_record(chain) -> dict:
    with chain.reader() as r:
        return decode(r.get(FOCUS_KEY), "focus record")


def _blocks():
    return [
        [tx(ALICE, 0, link(("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")))],
        [tx(BOB, 0, link(("d", "a"), ("b", "d"), ("e", "a")))],
    ]


def test_a_block_whose_focus_stops_at_the_cap_is_committed_recorded_and_logged(tmp_path, caplog):
    """The solve stops at max_iter: every node reaches the same vector after the
    same iterations in the exact arithmetic, so the block commits it (refusing
    would let one graph halt the chain), and says so: a warning, a count, and
    ``converged: false`` with the iterations in the committed focus record."""
    gen = genesis(focus={**NEW_CHAIN_FOCUS, "max_iter": 2})
    a = new_chain(tmp_path / "a", gen)
    b = new_chain(tmp_path / "b", gen, producer=False)
    with caplog.at_level(logging.WARNING, logger="focusflow.chain.focus"):
        for h, batch in enumerate(_blocks(), start=1):
            result = a.produce_block(batch, time_ms=T0 + 1000 * h)
            b.apply_block(result.record.encode())
            assert b.head == a.head
    assert not a.focus.converged and a.focus.unconverged_blocks == 2
    assert not b.focus.converged and b.focus.unconverged_blocks == 2
    record = _focus_record(a)
    assert record["converged"] is False and record["iterations"] == 2
    assert sum("did not converge" in r.getMessage() for r in caplog.records) >= 2


def test_a_converged_block_records_nothing_more(tmp_path):
    chain = new_chain(tmp_path, genesis(focus=dict(NEW_CHAIN_FOCUS)))
    for h, batch in enumerate(_blocks(), start=1):
        chain.produce_block(batch, time_ms=T0 + 1000 * h)
    assert chain.focus.converged and chain.focus.unconverged_blocks == 0
    assert set(_focus_record(chain)) == {"root", "particles", "scale", "chunk"}


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
def test_quantise_refuses_values_it_cannot_commit(bad):
    with pytest.raises(FocusValueError, match="not finite or too large") as err:
        quantise(np.array([0.25, bad, 0.75]))
    assert err.value.code == "focus_not_finite"
    assert "particle 1" in str(err.value)


def test_quantise_commits_solver_noise_below_zero_as_zero():
    q = quantise(np.array([0.5, -3e-15, 0.5, -0.0]))
    assert q.tolist() == [SCALE // 2, 0, SCALE // 2, 0]
