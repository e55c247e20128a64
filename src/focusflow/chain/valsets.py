"""Validator sets in state: the record of every change, and the set of any height.

The set that decides a height is part of the chain's state, so every node
derives it the same way and a restarted or syncing node finds it without
walking history. Whenever the set changes (an epoch boundary that moved some
power, or a validator jailed for an offence), the validators module writes the
set of the next height, with its proposer priorities, at
``/token/valset/<first height, 8 bytes>`` as the canonical CBOR array
``[[public_key, power, priority], ...]`` in set order. Genesis writes the set
of height 1. Between records the set does not change; only the priorities take
one step per block (:meth:`ValidatorSet.next_height`).

:class:`ValidatorSets` holds those records in memory: :meth:`ValidatorSets.at`
answers "who could sign at height h, with which power" (certificates, evidence,
the proposer check) without stepping priorities, which only the set of the
height under consensus needs (:meth:`ValidatorSets.for_height`).

An *epoch* is the span of heights one boundary's set begins (the validators
module picks a set after every block whose height is a multiple of
``epoch_blocks``): epoch ``e`` is heights ``e * epoch_blocks + 1`` to
``(e + 1) * epoch_blocks``, epoch 0 the genesis set's (:func:`epoch_heights`).
The DAG mempool names its batches' set by epoch; the chain reads the set of the
epoch's first height for it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError

VALSET_PREFIX = b"/token/valset/"


def valset_key(height: int) -> bytes:
    return VALSET_PREFIX + height.to_bytes(8, "big")


def encode_set(vset: ValidatorSet) -> bytes:
    return encode(
        [[v.public_key, v.power, p] for v, p in zip(vset.validators, vset.priorities, strict=True)]
    )


def decode_set(raw: bytes) -> ValidatorSet:
    """The set of a record; DecodeError if it is not one (a corrupt store)."""
    rows = decode(raw, "validator set")
    try:
        validators = tuple(Validator(bytes(pk), power) for pk, power, _ in rows)
        return ValidatorSet(validators, tuple(p for _, _, p in rows))
    except (TypeError, ValueError, InvalidValidatorSetError) as exc:
        raise DecodeError(f"bad validator set record: {exc}") from None


def epoch_heights(epoch: int, epoch_blocks: int) -> tuple[int, int]:
    """The first and last heights of ``epoch``: the set picked at the boundary
    before it (or genesis's) holds from the first, and the next boundary is the last."""
    return epoch * epoch_blocks + 1, (epoch + 1) * epoch_blocks


class ValidatorSets:
    """The recorded sets by first height (ascending); height 1's comes from genesis."""

    def __init__(self, records: Iterable[tuple[int, ValidatorSet]]) -> None:
        ordered = sorted(records, key=lambda r: r[0])
        if not ordered or ordered[0][0] != 1:
            raise ValueError("the set of height 1 (genesis) must be recorded")
        self._starts = [start for start, _ in ordered]
        self._sets = [vset for _, vset in ordered]

    @classmethod
    def load(cls, items: Iterable[tuple[bytes, bytes]]) -> ValidatorSets:
        """From the state's ``/token/valset/`` pairs (a store reader's ``items``)."""
        return cls(
            (int.from_bytes(key[len(VALSET_PREFIX) :], "big"), decode_set(value))
            for key, value in items
        )

    def add(self, start: int, vset: ValidatorSet) -> None:
        """Record the set that begins at ``start`` (above every recorded start)."""
        if start <= self._starts[-1]:
            raise ValueError(f"a set starting at {start} is not after {self._starts[-1]}")
        self._starts.append(start)
        self._sets.append(vset)

    def record_at(self, height: int) -> tuple[int, ValidatorSet]:
        """The record in force at ``height`` (>= 1): its first height and set."""
        i = bisect.bisect_right(self._starts, max(height, 1)) - 1
        return self._starts[i], self._sets[i]

    def at(self, height: int) -> ValidatorSet:
        """Members and powers at ``height`` (priorities as recorded, not stepped)."""
        return self.record_at(height)[1]

    def for_height(self, height: int) -> ValidatorSet:
        """The full set of ``height``: its record stepped once per block since it began."""
        start, vset = self.record_at(height)
        for _ in range(start, height):
            vset = vset.next_height()
        return vset

    @property
    def changes(self) -> list[int]:
        """First heights of the recorded sets."""
        return list(self._starts)


__all__ = [
    "VALSET_PREFIX",
    "ValidatorSets",
    "decode_set",
    "encode_set",
    "epoch_heights",
    "valset_key",
]
