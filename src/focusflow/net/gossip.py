"""Gossip routing: which peers get a message, and whether we have seen it.

Eager flooding with bounded fan-out: a node sends a message it publishes, or
receives for the first time, to at most ``fanout`` of its connected peers chosen
at random (never back to the peer it came from). Duplicates are recognised by
message id (:func:`focusflow.net.dedupe.message_id`) and dropped, so each node
delivers each message to its subscribers exactly once and the flood stops. With
``fanout`` at least the number of peers this is plain flooding, which is what a
validator set of tens of nodes wants for votes; with more peers it becomes
random gossip that still reaches everyone with high probability. Forwarded
payloads above ``NetConfig.lazy_above`` go as an announcement that peers
lacking the message fetch (:class:`focusflow.net.node.Node`, docs/net.md §3).

Sans-io: the router decides, the node sends.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence

from focusflow.net.dedupe import SeenCache, message_id

TRANSACTIONS = "tx"
BLOCK_PARTS = "block_part"
VOTES = "vote"
EVIDENCE = "evidence"
#: Snowman's queries and answers, sent to named validators (``Node.send_to``)
#: and never relayed: a poll costs 2k messages, not a flood.
POLLS = "poll"
#: The request that fetches an announced (IHave) message by id; reserved.
GOSSIP_FETCH = "net.gossip"
#: Topics every node relays even without a local subscriber.
STANDARD_TOPICS = frozenset({TRANSACTIONS, BLOCK_PARTS, VOTES, EVIDENCE})


class Verdict(enum.Enum):
    """What a gossip subscriber decided about a message (as gossipsub's validators).

    A handler may also return True or None (accept) and False (reject).
    """

    #: Valid: delivered here and forwarded.
    ACCEPT = "accept"
    #: Not forwarded, and nobody to blame: stale, a future height whose checks
    #: must wait, or invalid through the fault of someone other than the sender
    #: (the handler then reports that one itself).
    IGNORE = "ignore"
    #: Invalid by the sender's fault: not forwarded, the sender loses score.
    REJECT = "reject"


def verdict_of(value: Verdict | bool | None) -> Verdict:
    """A handler's return value as a Verdict."""
    if isinstance(value, Verdict):
        return value
    return Verdict.REJECT if value is False else Verdict.ACCEPT


class GossipRouter:
    """De-duplication and fan-out choice for gossip messages."""

    def __init__(
        self,
        fanout: int = 8,
        seen: SeenCache | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.fanout = fanout
        self.seen = seen if seen is not None else SeenCache()
        self._rng = rng if rng is not None else random.Random()

    def publish(
        self, topic: str, payload: bytes, peers: Sequence[bytes]
    ) -> tuple[bytes, list[bytes]]:
        """A local message: its id and the peers to send it to (none if already seen)."""
        mid = message_id(topic, payload)
        if not self.seen.add(mid):
            return mid, []
        return mid, self.choose(peers, exclude=None)

    def receive(
        self, sender: bytes, topic: str, payload: bytes, peers: Sequence[bytes]
    ) -> tuple[bytes, list[bytes] | None]:
        """A message from ``sender``: its id, and the peers to forward it to.

        The peer list is None for a duplicate: do not deliver, do not forward.
        """
        mid = message_id(topic, payload)
        return mid, self.receive_id(sender, mid, peers)

    def receive_id(self, sender: bytes, mid: bytes, peers: Sequence[bytes]) -> list[bytes] | None:
        """:meth:`receive` for a message whose id is already known (hashing a
        block-sized payload twice would be wasted on the hot path)."""
        if not self.seen.add(mid):
            return None
        return self.choose(peers, exclude=sender)

    def choose(self, peers: Sequence[bytes], exclude: bytes | None) -> list[bytes]:
        """At most ``fanout`` peers at random, never ``exclude``."""
        candidates = [p for p in peers if p != exclude]
        if len(candidates) <= self.fanout:
            return candidates
        return self._rng.sample(candidates, self.fanout)
