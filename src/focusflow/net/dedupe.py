"""Which gossip messages this node has already seen.

Gossip floods: every node forwards a message the first time it sees it and
drops it after that, which is what makes flooding terminate. The cache is
bounded both in entries (oldest evicted first) and in time (an entry older than
``ttl`` is forgotten), so memory stays flat under any load. A message that comes
back after being forgotten is delivered again; ``ttl`` is chosen well above the
time a message takes to cross the network.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256


def message_id(topic: str, payload: bytes) -> bytes:
    """The gossip message id: SHA-256 of the canonical CBOR of ``[topic, payload]``."""
    return sha256(encode([topic, payload]))


class SeenCache:
    """A bounded set of message ids with expiry; sans-io (the clock is injected)."""

    def __init__(
        self,
        capacity: int = 100_000,
        ttl: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, key: bytes) -> bool:
        self._expire()
        return key in self._seen

    def add(self, key: bytes) -> bool:
        """Record ``key``; True if it was new (the caller should deliver and forward)."""
        self._expire()
        if key in self._seen:
            return False
        self._seen[key] = self._clock()
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
        return True

    def _expire(self) -> None:
        limit = self._clock() - self.ttl
        while self._seen:
            key, when = next(iter(self._seen.items()))
            if when > limit:
                return
            del self._seen[key]
