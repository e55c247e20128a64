"""Stake-weighted validator sets and the proposer rotation.

A validator is an Ed25519 public key with a voting power (its bonded stake, as
the chain's bank module reports it). Thresholds are in power, not in heads:
Algorithm 1's "2f + 1 messages" reads "messages from validators holding more than
2/3 of the total power" and "f + 1" reads "more than 1/3", which is what makes the
algorithm safe while the faulty validators hold less than a third of the power.

Proposer selection is CometBFT's proposer-priority algorithm (spec/consensus/
proposer-selection.md): each validator carries an integer priority; one step adds
every validator's power to its priority, picks the highest (ties: smaller
address), and subtracts the total power from the one picked. Over a window each
validator proposes in proportion to its power, and the sequence is a pure
function of the set and its history, so every node computes the same proposer.
Before stepping, priorities are rescaled to a spread of at most twice the total
power and centred on zero, so they stay bounded whatever the history.

The set is immutable: :meth:`ValidatorSet.next_height` and
:meth:`ValidatorSet.update` return new sets. The chain calls
:meth:`ValidatorSet.after_block` after each committed block, with the new stakes
at epoch boundaries (an update, then a step) and nothing in between (a step).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.core.encoding import encode
from focusflow.core.hashing import merkle_root
from focusflow.core.keys import PUBLIC_KEY_SIZE, address_bytes

#: CometBFT's bound (MaxInt64 / 8): keeps priorities inside 64-bit arithmetic elsewhere.
MAX_TOTAL_POWER = (2**63 - 1) // 8
#: Priorities are rescaled so max - min <= this factor times the total power.
PRIORITY_WINDOW_FACTOR = 2


@dataclass(frozen=True)
class Validator:
    public_key: bytes
    power: int

    @property
    def address(self) -> bytes:
        return address_bytes(self.public_key)


def has_two_thirds(power: int, total: int) -> bool:
    """Power strictly above 2/3 of the total: Algorithm 1's "2f + 1"."""
    return 3 * power > 2 * total


def has_one_third(power: int, total: int) -> bool:
    """Power strictly above 1/3 of the total: Algorithm 1's "f + 1" (line 55)."""
    return 3 * power > total


@dataclass(frozen=True, eq=False)
class ValidatorSet:
    """Validators sorted by (power descending, address) with their proposer priorities."""

    validators: tuple[Validator, ...]
    priorities: tuple[int, ...]
    _index: dict[bytes, int] = field(init=False, repr=False)
    _total: int = field(init=False, repr=False)
    _picks: list[int] = field(init=False, repr=False)
    _running: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _check_validators(self.validators)
        if len(self.priorities) != len(self.validators):
            raise InvalidValidatorSetError("one priority per validator is required")
        object.__setattr__(self, "_index", {v.public_key: i for i, v in enumerate(self.validators)})
        object.__setattr__(self, "_total", sum(v.power for v in self.validators))
        object.__setattr__(self, "_picks", [])
        object.__setattr__(self, "_running", _centred(list(self.priorities), self._total))

    @classmethod
    def create(cls, validators: Iterable[Validator] | Mapping[bytes, int]) -> ValidatorSet:
        """A genesis set: priorities start at zero and take one step, as in CometBFT."""
        if isinstance(validators, Mapping):
            validators = [Validator(pk, power) for pk, power in validators.items()]
        ordered = _ordered(validators)
        return cls(ordered, (0,) * len(ordered)).next_height()

    @property
    def total_power(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self.validators)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ValidatorSet):
            return NotImplemented
        return self.validators == other.validators and self.priorities == other.priorities

    def __hash__(self) -> int:
        return hash((self.validators, self.priorities))

    def index_of(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def power_of(self, public_key: bytes) -> int:
        """Voting power of a key, 0 for keys outside the set."""
        i = self._index.get(public_key)
        return 0 if i is None else self.validators[i].power

    def hash(self) -> bytes:
        """RFC 6962 Merkle root over ``encode([public_key, power])`` in set order.

        Priorities are not hashed (CometBFT does the same): they follow from the
        set's history, which the chain already commits to block by block.
        """
        return merkle_root([encode([v.public_key, v.power]) for v in self.validators])

    def proposer(self, round: int) -> Validator:
        """``proposer(h_p, round)`` of Algorithm 1 for this set's height.

        Round r is the pick of step r + 1 from this set's priorities (round 0 is the
        pick of one step), as CometBFT increments a copy of the height's set once
        per round. Picks are cached, so rounds cost one step each the first time.
        """
        if round < 0:
            raise ValueError("round must be >= 0")
        while len(self._picks) <= round:
            self._picks.append(_step(self._running, self.validators, self._total))
        return self.validators[self._picks[round]]

    def after_block(self, changes: Mapping[bytes, int] | None = None) -> ValidatorSet:
        """The set of the next height, as the chain derives it after each block.

        ``changes`` (public key -> new power, 0 removes) is given at epoch boundaries
        only; as in CometBFT's state update, they apply first, then one step.
        """
        return (self.update(changes) if changes else self).next_height()

    def next_height(self) -> ValidatorSet:
        """The set of the next height: priorities after one step."""
        prios = _centred(list(self.priorities), self._total)
        _step(prios, self.validators, self._total)
        return ValidatorSet(self.validators, tuple(prios))

    def update(self, changes: Mapping[bytes, int]) -> ValidatorSet:
        """Apply an epoch's power changes (power 0 removes a validator).

        Validators that stay keep their priority; new ones start at -1.125 times the
        new total power (CometBFT), so a fresh or re-bonded validator cannot propose
        at once; then priorities are rescaled and centred.
        """
        current = {v.public_key: v.power for v in self.validators}
        prios = {v.public_key: p for v, p in zip(self.validators, self.priorities, strict=True)}
        for pk, power in changes.items():
            if not isinstance(power, int) or isinstance(power, bool) or power < 0:
                raise InvalidValidatorSetError(f"power {power!r} must be a non-negative int")
            if power == 0:
                current.pop(pk, None)
            else:
                current[pk] = power
        ordered = _ordered(Validator(pk, p) for pk, p in current.items())
        _check_validators(ordered)
        total = sum(v.power for v in ordered)
        newcomer = -(total + (total >> 3))
        new_prios = [prios.get(v.public_key, newcomer) for v in ordered]
        return ValidatorSet(ordered, tuple(_centred(new_prios, total)))


def _ordered(validators: Iterable[Validator]) -> tuple[Validator, ...]:
    return tuple(sorted(validators, key=lambda v: (-v.power, v.address)))


def _check_validators(validators: tuple[Validator, ...]) -> None:
    if not validators:
        raise InvalidValidatorSetError("a validator set needs at least one validator")
    seen: set[bytes] = set()
    total = 0
    for v in validators:
        if not isinstance(v.public_key, bytes) or len(v.public_key) != PUBLIC_KEY_SIZE:
            raise InvalidValidatorSetError("a validator key is 32 bytes (Ed25519)")
        if v.public_key in seen:
            raise InvalidValidatorSetError(f"duplicate validator {v.public_key.hex()}")
        if not isinstance(v.power, int) or isinstance(v.power, bool) or v.power <= 0:
            raise InvalidValidatorSetError(f"validator power {v.power!r} must be a positive int")
        seen.add(v.public_key)
        total += v.power
    if total > MAX_TOTAL_POWER:
        raise InvalidValidatorSetError(f"total power {total} exceeds {MAX_TOTAL_POWER}")
    if list(validators) != list(_ordered(validators)):
        raise InvalidValidatorSetError("validators must be sorted by (-power, address)")


def _centred(prios: list[int], total: int) -> list[int]:
    """Rescale to a spread <= PRIORITY_WINDOW_FACTOR * total, then subtract the mean.

    Integer arithmetic only, with floor division, so every node gets the same numbers.
    """
    window = PRIORITY_WINDOW_FACTOR * total
    spread = max(prios) - min(prios)
    if spread > window:
        ratio = -(-spread // window)
        prios = [_trunc_div(p, ratio) for p in prios]
    mean = sum(prios) // len(prios)
    return [p - mean for p in prios]


def _trunc_div(a: int, b: int) -> int:
    """Division rounding toward zero, as Go's integer division in CometBFT."""
    q = abs(a) // b
    return q if a >= 0 else -q


def _step(prios: list[int], validators: tuple[Validator, ...], total: int) -> int:
    """One proposer step in place; returns the index picked."""
    best = 0
    for i, v in enumerate(validators):
        prios[i] += v.power
        if prios[i] > prios[best] or (
            prios[i] == prios[best] and v.address < validators[best].address
        ):
            best = i
    prios[best] -= total
    return best
