"""Validator sets: thresholds, CometBFT proposer priorities, hashes, epoch updates."""

from __future__ import annotations

from collections import Counter

import pytest

from focusflow.consensus import InvalidValidatorSetError, Validator, ValidatorSet
from focusflow.consensus.validators import has_one_third, has_two_thirds

from .harness import keys

KS = keys(5)


def vset(*powers: int) -> ValidatorSet:
    return ValidatorSet.create({k.public_key: p for k, p in zip(KS, powers, strict=False)})


def test_thresholds_are_strict():
    assert not has_two_thirds(2, 3) and has_two_thirds(3, 4) and has_two_thirds(7, 10)
    assert not has_two_thirds(6, 9) and has_two_thirds(7, 9)
    assert not has_one_third(1, 3) and has_one_third(2, 4) and has_one_third(4, 10)


def test_proposer_frequency_follows_power():
    vs = vset(1, 2, 3, 4)
    counts = Counter(vs.proposer(r).power for r in range(1000))
    assert counts == {1: 100, 2: 200, 3: 300, 4: 400}  # exact over whole windows


def test_equal_powers_rotate_round_robin():
    vs = vset(5, 5, 5, 5)
    firsts = [vs.proposer(r).public_key for r in range(8)]
    assert len(set(firsts[:4])) == 4 and firsts[:4] == firsts[4:]


def test_rounds_and_heights_continue_one_sequence():
    vs = vset(1, 2, 3, 4, 5)
    nxt = vs.next_height()
    assert [nxt.proposer(r) for r in range(6)] == [vs.proposer(r + 1) for r in range(6)]


def test_selection_is_deterministic_and_order_independent():
    pairs = list(zip(KS[:3], (3, 1, 2), strict=True))
    a = ValidatorSet.create({k.public_key: p for k, p in pairs})
    b = ValidatorSet.create({k.public_key: p for k, p in reversed(pairs)})
    assert a == b and a.hash() == b.hash()
    assert [a.proposer(r) for r in range(20)] == [b.proposer(r) for r in range(20)]


def test_hash_binds_keys_and_powers_not_priorities():
    vs = vset(1, 2, 3)
    assert vs.hash() == vs.next_height().hash()
    assert vs.hash() != vset(1, 2, 4).hash()
    assert len(vs.hash()) == 32


def test_update_adds_removes_and_changes_power():
    vs = vset(1, 2, 3)
    up = vs.update({KS[0].public_key: 0, KS[1].public_key: 7, KS[3].public_key: 4})
    assert {v.public_key: v.power for v in up.validators} == {
        KS[1].public_key: 7,
        KS[2].public_key: 3,
        KS[3].public_key: 4,
    }
    assert up.power_of(KS[0].public_key) == 0 and up.total_power == 14


def test_newcomer_does_not_propose_at_once():
    vs = vset(10, 10, 10)
    up = vs.update({KS[3].public_key: 10}).next_height()
    assert up.proposer(0).public_key != KS[3].public_key
    counts = Counter(up.proposer(r).public_key for r in range(400))
    assert counts[KS[3].public_key] == pytest.approx(100, abs=2)


def test_priorities_stay_bounded_over_long_histories():
    vs = vset(1, 1000, 3, 77, 5)
    for _ in range(500):
        vs = vs.next_height()
    spread = max(vs.priorities) - min(vs.priorities)
    assert spread <= 2 * vs.total_power + max(v.power for v in vs.validators)


@pytest.mark.parametrize(
    "validators",
    [
        [],
        [Validator(b"short", 1)],
        [Validator(KS[0].public_key, 0)],
        [Validator(KS[0].public_key, -1)],
        [Validator(KS[0].public_key, 1), Validator(KS[0].public_key, 2)],
        [Validator(KS[0].public_key, 2**62)],
    ],
)
def test_invalid_sets_raise(validators):
    with pytest.raises(InvalidValidatorSetError) as err:
        ValidatorSet.create(validators)
    assert err.value.code == "invalid_validator_set"


def test_update_cannot_empty_the_set():
    with pytest.raises(InvalidValidatorSetError):
        vset(1).update({KS[0].public_key: 0})


def test_after_block_steps_and_applies_epoch_changes():
    vs = vset(1, 2, 3)
    assert vs.after_block() == vs.next_height()
    changed = vs.after_block({KS[4].public_key: 5})
    assert changed == vs.update({KS[4].public_key: 5}).next_height()
    assert changed.power_of(KS[4].public_key) == 5
