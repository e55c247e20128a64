"""What a validator checks in consensus gossip before it forwards or holds it.

The relay rule: a node forwards a proposal or vote only after checking
everything it can check the same way as every other node at that height: the
signature, that the signer is in the height's validator set, and for a proposal
that it comes from the round's proposer, names a valid round below its round and
a value id that is the hash of its value. An honest relayer therefore never
forwards a message another honest node would find invalid, so a message that
fails these checks is the fault of the peer that sent it to us, whoever signed
it; a message that fails them in what its signer signed (a proposal out of turn,
a valid round not below the round) with a good signature is also its signer's
fault. Only the direct sender and the signer are ever blamed.

Messages of the next height are held (not forwarded: their set is not known
until the current height commits) in :class:`FutureMessages`, bounded in bytes
and count per peer and in total; later heights are dropped (block sync catches
up). Signatures are checked at once whatever the height: a bad one is always
its sender's fault.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from focusflow.consensus import Proposal, ValidatorSet, Vote
from focusflow.core.keys import verify as verify_signature

#: Rounds ahead of the current one a message may be for and still be forwarded
#: (the state machine drops messages further ahead: tendermint.MAX_ROUND_AHEAD).
ROUND_WINDOW = 1000
#: A vote's encoding is some 170 bytes; a payload on the vote topic above this
#: is not a vote.
MAX_VOTE_BYTES = 512
#: Distinct proposals accepted per (height, round): a proposer signing more is
#: equivocating, and the state machine keeps only this many anyway.
MAX_PROPOSALS_PER_ROUND = 4
#: Next-height messages held per peer and in total (bytes, count).
FUTURE_PEER_BYTES = 16 << 20
FUTURE_PEER_COUNT = 64
FUTURE_TOTAL_BYTES = 64 << 20
FUTURE_TOTAL_COUNT = 4096
#: Signatures remembered as verified (the state machine checks them again).
VERIFIED_CACHE = 16_384


class GossipFaultError(Exception):
    """A consensus message fails the relay checks. ``signer_at_fault``: its good
    signature makes its signer accountable too, not only the peer that sent it."""

    def __init__(self, why: str, *, signer_at_fault: bool = False) -> None:
        super().__init__(why)
        self.signer_at_fault = signer_at_fault


class VerifiedSignatures:
    """Ed25519 verification that remembers recent good signatures: the relay
    check and then the state machine verify each message, and the second costs
    nothing. Only successes are kept (a failure costs its sender score)."""

    def __init__(self, capacity: int = VERIFIED_CACHE) -> None:
        self.capacity = capacity
        self._good: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()

    def __call__(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        key = (public_key, signature, message)
        if key in self._good:
            return True
        if not verify_signature(public_key, signature, message):
            return False
        self._good[key] = None
        while len(self._good) > self.capacity:
            self._good.popitem(last=False)
        return True


def signer_of(message: Proposal | Vote) -> bytes:
    return message.proposer if isinstance(message, Proposal) else message.validator


def check_signature(
    message: Proposal | Vote, chain_id: str, verify: Callable[[bytes, bytes, bytes], bool]
) -> None:
    """GossipFaultError (the sender's) unless the signer's signature is good."""
    if not verify(signer_of(message), message.signature, message.sign_bytes(chain_id)):
        raise GossipFaultError(f"bad {type(message).__name__.lower()} signature")


def check_for_height(
    message: Proposal | Vote,
    vset: ValidatorSet,
    value_id_of: Callable[[bytes], bytes],
) -> None:
    """The relay checks that need the height's set (the signature is checked first)."""
    if isinstance(message, Vote):
        if vset.index_of(message.validator) is None:
            raise GossipFaultError("vote from a key outside the validator set")
        return
    member = vset.index_of(message.proposer) is not None
    if message.proposer != vset.proposer(message.round).public_key:
        raise GossipFaultError(
            f"round {message.round} proposal not from its proposer", signer_at_fault=member
        )
    if not -1 <= message.valid_round < message.round:
        raise GossipFaultError(
            f"valid round {message.valid_round} not below round", signer_at_fault=True
        )
    if value_id_of(message.value) != message.value_id:
        # The value is not signed: whoever sent it may have swapped it.
        raise GossipFaultError("proposal value id is not the hash of its value")


@dataclass
class _Held:
    sender: bytes
    message: Proposal | Vote
    raw: bytes


@dataclass
class FutureMessages:
    """Messages of the next height from each peer until that height starts.

    Bounded in bytes and count per peer and in total; what does not fit is
    dropped (the ``round`` request recovers it from peers once the height runs).
    """

    peer_bytes: int = FUTURE_PEER_BYTES
    peer_count: int = FUTURE_PEER_COUNT
    total_bytes: int = FUTURE_TOTAL_BYTES
    total_count: int = FUTURE_TOTAL_COUNT
    _held: list[_Held] = field(default_factory=list)
    _by_peer: dict[bytes, list[int]] = field(default_factory=dict)  # [bytes, count]
    _bytes: int = 0
    dropped: int = 0

    def __len__(self) -> int:
        return len(self._held)

    @property
    def size(self) -> int:
        return self._bytes

    def add(self, sender: bytes, message: Proposal | Vote, raw: bytes) -> bool:
        """Hold ``message``; False (dropped) when a bound would be passed."""
        used = self._by_peer.get(sender, [0, 0])
        n = len(raw)
        if (
            used[0] + n > self.peer_bytes
            or used[1] + 1 > self.peer_count
            or self._bytes + n > self.total_bytes
            or len(self._held) + 1 > self.total_count
        ):
            self.dropped += 1
            return False
        self._held.append(_Held(sender, message, raw))
        self._by_peer[sender] = [used[0] + n, used[1] + 1]
        self._bytes += n
        return True

    def take(self, height: int) -> list[tuple[bytes, Proposal | Vote, bytes]]:
        """The held messages of ``height`` in arrival order; every other is dropped
        (a height below is over, one above is not next any more)."""
        out = [(h.sender, h.message, h.raw) for h in self._held if h.message.height == height]
        self._held.clear()
        self._by_peer.clear()
        self._bytes = 0
        return out


__all__ = [
    "FutureMessages",
    "GossipFaultError",
    "VerifiedSignatures",
    "check_for_height",
    "check_signature",
    "signer_of",
]
