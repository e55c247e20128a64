"""The exchange's records in the state: pools and the dealer reserve.

A pool of the pair ``a|b`` (its denoms in byte order) lives at
``/token/pool/<a>|<b>`` as ``[reserve_a, reserve_b, shares, cum_a, cum_b,
last_ms, open_q64, halted_until, observations]``; its shares are the denom
``lp/<a>/<b>``. The dealer reserve (CYB locked against H) is one integer at
``/token/dealer/reserve``, each dealer's use of its quota at
``/token/dealer/used/<address>``. ``modules.dex`` holds the rules: the swaps,
the oracle and the breakers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from focusflow.chain.state import PendingState, Readable
from focusflow.core.encoding import decode, decode_stored, encode

POOL_PREFIX = b"/token/pool/"
RESERVE_KEY = b"/token/dealer/reserve"
DEALER_USED_PREFIX = b"/token/dealer/used/"


def pair(a: str, b: str) -> tuple[str, str]:
    """The pair in its pool's order (byte order of the denoms)."""
    return (a, b) if a.encode() < b.encode() else (b, a)


def share_denom(a: str, b: str) -> str:
    x, y = pair(a, b)
    return f"lp/{x}/{y}"


def pool_key(a: str, b: str) -> bytes:
    x, y = pair(a, b)
    return POOL_PREFIX + x.encode() + b"|" + y.encode()


@dataclass
class Pool:
    """One pool: its pair (in order), reserves, shares and oracle."""

    a: str
    b: str
    reserve_a: int
    reserve_b: int
    shares: int
    #: Uniswap v2's accumulators: sum of price (Q64) times milliseconds.
    cum_a: int = 0
    cum_b: int = 0
    last_ms: int = 0
    #: The price of ``a`` in ``b`` (Q64) when the current block first touched it.
    open_q64: int = 0
    halted_until: int = -1
    observations: list[list[int]] = field(default_factory=list)

    def encode(self) -> bytes:
        return encode(
            [self.reserve_a, self.reserve_b, self.shares, self.cum_a, self.cum_b, self.last_ms,
             self.open_q64, self.halted_until, self.observations]
        )  # fmt: skip

    def reserves(self, denom_in: str) -> tuple[int, int]:
        """``(reserve of denom_in, reserve of the other)``."""
        if denom_in == self.a:
            return self.reserve_a, self.reserve_b
        return self.reserve_b, self.reserve_a

    def set_reserves(self, denom_in: str, reserve_in: int, reserve_out: int) -> None:
        if denom_in == self.a:
            self.reserve_a, self.reserve_b = reserve_in, reserve_out
        else:
            self.reserve_b, self.reserve_a = reserve_in, reserve_out


def get_pool(state: Readable, a: str, b: str) -> Pool | None:
    raw = state.get(pool_key(a, b))
    if raw is None:
        return None
    x, y = pair(a, b)
    ra, rb, shares, cum_a, cum_b, last_ms, open_q64, halted, obs = decode_stored(raw, "pool")
    return Pool(x, y, ra, rb, shares, cum_a, cum_b, last_ms, open_q64, halted, obs)


def pools(state: PendingState) -> list[Pool]:
    """Every pool, in key order."""
    out = []
    for key, _ in state.scan(POOL_PREFIX):
        a, b = key[len(POOL_PREFIX) :].decode().split("|", 1)
        pool = get_pool(state, a, b)
        if pool is not None:
            out.append(pool)
    return out


def dealer_reserve(state: Readable) -> int:
    """The CYB the primary dealers have locked against H."""
    raw = state.get(RESERVE_KEY)
    return 0 if raw is None else int(decode(raw, "reserve"))
