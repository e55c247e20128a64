"""Denoms are read in one pass: a hostile denom in a message costs its length, no more."""

from __future__ import annotations

import re

import pytest

from focusflow.modules import tokens


class _Counting:
    """Stands in for the base-denom pattern and counts its uses; a reader that
    tried every split of nested pool shares would use it exponentially often,
    so it stops such a reader early instead of hanging the test."""

    def __init__(self, limit: int) -> None:
        self.pattern = re.compile(tokens.BASE_DENOM.pattern)
        self.calls = 0
        self.limit = limit

    def fullmatch(self, *args):
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError("the denom reader backtracks")
        return self.pattern.fullmatch(*args)


@pytest.mark.parametrize("depth", [5, 15, 25])
def test_nested_share_denoms_are_read_in_linear_work(monkeypatch, depth):
    valid = "lp/" * depth + "/".join(["a"] * (depth + 1))
    broken = "lp/" * depth + "a/" * depth + "A"  # fails only at its last character
    for denom, ok in ((valid, True), (broken, False)):
        counter = _Counting(limit=4 * len(denom))
        monkeypatch.setattr(tokens, "BASE_DENOM", counter)
        assert tokens.is_denom(denom) is ok and len(denom) <= tokens.MAX_DENOM
        assert counter.calls <= 2 * depth + 2


def test_denoms_read_as_documented():
    assert tokens.is_denom("cyb") and tokens.is_denom("h") and tokens.is_denom("v2")
    assert tokens.is_denom("lp/cyb/h") and tokens.is_denom("lp/lp/cyb/h/v")
    for bad in ("", "lp", "Cyb", "2x", "lp/cyb", "lp/cyb/", "cyb/h", "lp//h", "a" * 17, None, 7):
        assert not tokens.is_denom(bad), bad
    assert not tokens.is_denom("lp/" + "a/" * 70 + "a")  # over MAX_DENOM
