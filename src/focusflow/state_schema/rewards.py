"""The reward pool and each earner's record in the state.

``/token/rewards`` holds the pool's totals ``[index, total bonded, held]``;
``/token/reward/<address>`` an earner's record ``[index at, accrued, tenure
start, last height, learning at(, younger lots)]``; ``/token/rewardlow/
<address>`` marks an account whose stake rose above its low in the current
block. ``modules.rewards`` holds the arithmetic that moves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from focusflow.chain.state import Readable
from focusflow.core.encoding import decode, decode_stored, encode

TOTALS_KEY = b"/token/rewards"
ACCOUNT_REWARD_PREFIX = b"/token/reward/"
#: Accounts whose stake rose above its low in the current block (deleted at its end).
BLOCK_LOW_PREFIX = b"/token/rewardlow/"


@dataclass
class Totals:
    index: int = 0
    total_bonded: int = 0
    held: int = 0

    def encode(self) -> bytes:
        return encode([self.index, self.total_bonded, self.held])


@dataclass
class Earner:
    index_at: int = 0
    accrued: int = 0
    #: The oldest lot's start; -1 while nothing is bonded.
    tenure_start: int = -1
    #: The last block whose tenure is paid.
    last_height: int = 0
    learning_at: int = -1
    #: The lots younger than the oldest, ``[start, amount]``, oldest first.
    lots: list[list[int]] = field(default_factory=list)

    def all_lots(self, bonded: int) -> list[tuple[int, int]]:
        """Every lot of the ``bonded`` stake as ``(start, amount)``, oldest first:
        the oldest holds what the younger ones leave."""
        if self.tenure_start < 0 or bonded <= 0:
            return []
        younger = sum(amount for _, amount in self.lots)
        return [(self.tenure_start, bonded - younger), *((s, a) for s, a in self.lots)]

    def encode(self) -> bytes:
        """The record, with the younger lots only when there are some (a bond never
        topped up keeps the layout it had before lots)."""
        record = [self.index_at, self.accrued, self.tenure_start, self.last_height,
                  self.learning_at]  # fmt: skip
        return encode([*record, self.lots] if self.lots else record)


def read_totals(state: Readable) -> Totals | None:
    raw = state.get(TOTALS_KEY)
    if raw is None:
        return None
    index, total, held = decode(raw, "rewards")
    return Totals(index, total, held)


def earner(state: Readable, address: bytes) -> Earner | None:
    raw = state.get(ACCOUNT_REWARD_PREFIX + address)
    return None if raw is None else Earner(*decode_stored(raw, "reward"))
