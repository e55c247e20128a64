"""The consensus messages of the running height, kept to answer ``round`` requests.

Tendermint has no retransmission of its own and gossip is fire-and-forget, so
a validator that (re)connects mid-height, or whose height made no progress
for a while, asks its peers ``round`` for the proposals and votes they hold at
that height (peer_requests.py). Each node keeps the messages it accepted and
the ones it signed, each once: a stalled height is pulled from every peer
every two seconds, and copies kept again would be served, decoded and queued
again each time. The store is bounded in count and bytes, and one answer
carries the newest messages up to MAX_ROUND_RESPONSE bytes.
"""

from __future__ import annotations

from focusflow.core.encoding import encode
from focusflow.core.hashing import sha256

#: Messages of the current height kept (checked ones only), in count and bytes.
MAX_HELD_MESSAGES = 4_000
MAX_HELD_BYTES = 32 << 20
#: Bytes of held messages one ``round`` response carries at most.
MAX_ROUND_RESPONSE = 6 << 20


class RoundMessages:
    """Encoded messages of the current height, each kept once; see the module docstring."""

    def __init__(self) -> None:
        self._raw: list[bytes] = []
        self._bytes = 0
        #: Digests of the messages kept: each is kept (and queued) once.
        self._ids: set[bytes] = set()

    def hold(self, raw: bytes) -> None:
        """Keep a checked message of the current height, unless kept already or full."""
        digest = sha256(raw)
        if digest in self._ids:
            return
        if len(self._raw) < MAX_HELD_MESSAGES and self._bytes + len(raw) <= MAX_HELD_BYTES:
            self._raw.append(raw)
            self._ids.add(digest)
            self._bytes += len(raw)

    @property
    def messages(self) -> tuple[bytes, ...]:
        """The messages kept, in the order they were kept."""
        return tuple(self._raw)

    def is_held(self, raw: bytes) -> bool:
        """Whether this message of the current height was accepted and kept already."""
        return sha256(raw) in self._ids

    def clear(self) -> None:
        """Forget them all: a new height starts."""
        self._raw, self._bytes, self._ids = [], 0, set()

    def response(self) -> bytes:
        """A ``round`` answer: the newest messages that fit MAX_ROUND_RESPONSE, in order."""
        out: list[bytes] = []
        size = 0
        for raw in reversed(self._raw):
            size += len(raw)
            if size > MAX_ROUND_RESPONSE:
                break
            out.append(raw)
        out.reverse()
        return encode(out)


__all__ = ["MAX_HELD_BYTES", "MAX_HELD_MESSAGES", "MAX_ROUND_RESPONSE", "RoundMessages"]
