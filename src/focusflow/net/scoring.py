"""Peer scores and bans.

Every peer starts at score 0. Offences subtract points; time heals them at
``recovery`` points per second back up to 0 (never above: good behaviour is
expected, not rewarded). When a score falls to ``ban_threshold`` or below the
peer is banned for ``ban_seconds``: its connection is closed, it is not dialed,
and its connections are refused. After the ban the score restarts at 0.

Offence weights (``Offence``) make one malformed frame enough for a ban (a
correct implementation never sends one; the stream's framing is lost anyway),
while an application-level "invalid" (a bad signature on a vote, a transaction
that fails checks) costs a quarter, since an honest peer can relay something that
became invalid in the meantime. Sans-io: the clock is injected.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass


class Offence(enum.Enum):
    """What a peer did wrong, with the points it costs."""

    MALFORMED = 100  #: bytes that do not decode (framing, CBOR, message shape)
    PROTOCOL = 50  #: a well-formed message that is wrong at this point (e.g. gossip before auth)
    INVALID = 25  #: reported by the application: well-formed but invalid content
    UNANSWERED = 5  #: a request it never answered in time


@dataclass
class _Record:
    score: float
    at: float
    banned_until: float = 0.0


class PeerScores:
    """Scores of all peers this node has dealt with."""

    def __init__(
        self,
        ban_threshold: float = -100.0,
        ban_seconds: float = 300.0,
        recovery: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ban_threshold = ban_threshold
        self.ban_seconds = ban_seconds
        self.recovery = recovery
        self._clock = clock
        self._records: dict[bytes, _Record] = {}

    def score(self, peer: bytes) -> float:
        """The peer's current score (0 for one never penalised)."""
        record = self._records.get(peer)
        return 0.0 if record is None else self._healed(record)

    def is_banned(self, peer: bytes) -> bool:
        record = self._records.get(peer)
        return record is not None and self._clock() < record.banned_until

    def banned(self) -> list[bytes]:
        """Peers banned right now."""
        return [peer for peer in self._records if self.is_banned(peer)]

    def penalise(self, peer: bytes, offence: Offence) -> bool:
        """Subtract the offence's points; True if this (or an earlier offence) bans the peer."""
        now = self._clock()
        record = self._records.get(peer)
        if record is None:
            record = self._records[peer] = _Record(0.0, now)
        if now < record.banned_until:
            return True
        record.score = self._healed(record) - offence.value
        record.at = now
        if record.score <= self.ban_threshold:
            record.banned_until = now + self.ban_seconds
            record.score = 0.0
            return True
        return False

    def _healed(self, record: _Record) -> float:
        return min(0.0, record.score + (self._clock() - record.at) * self.recovery)
