"""Push-sum gossip (Kempe, Dobra and Gehrke, FOCS 2003) for the solve's sums.

Each shard holds a pair ``(s, w)``: its own values and weight 1. In every
round it keeps half of both and sends the other half to one peer chosen at
random (a seeded draw, so a run repeats exactly); every shard's ``s / w``
converges to the average of the starting values, at a rate set by how fast
the gossip mixes (``O(log shards + log 1 / eps)`` rounds). The sum is that
average times the shard count. No shard ever sees all the values: this is
how a solve's global quantities (its mass, dangling mass, L1 change) can be
agreed on without a coordinator, at the price of a relative error ``eps``
that the all-reduce (the default) does not have.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def target(r: int, shard: int, shards: int, seed: int) -> int:
    """The peer ``shard`` sends to in round ``r``: uniform among the others."""
    if shards == 1:
        return 0
    rng = np.random.default_rng([seed, r, shard])
    pick = int(rng.integers(0, shards - 1))
    return pick if pick < shard else pick + 1


class PushSum:
    """One shard's push-sum state."""

    def __init__(self, shard: int, shards: int) -> None:
        self.shard, self.shards = shard, shards
        self.s = np.zeros(0)
        self.w = 0.0

    def start(self, values: np.ndarray) -> None:
        self.s = np.asarray(values, dtype=np.float64).copy()
        self.w = 1.0

    def round(self, r: int, seed: int, incoming: list[Any]) -> tuple[np.ndarray, float]:
        """Absorb ``incoming`` messages ``(s, w)``, then keep half and return the
        half sent to ``target(r, ...)`` (the driver routes it)."""
        self.absorb(incoming)
        self.s = self.s / 2.0
        self.w /= 2.0
        return self.s.copy(), self.w

    def absorb(self, incoming: list[Any]) -> None:
        for s, w in incoming:
            self.s = self.s + s
            self.w += w

    def estimate(self) -> np.ndarray:
        """This shard's estimate of the sums."""
        return self.s / self.w * self.shards
