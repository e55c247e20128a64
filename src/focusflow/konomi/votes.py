"""A cube as a validator: its eight vertices sign votes, CENTRAL tallies them.

Each vertex holds an Ed25519 key derived from the cube's secret (HMAC-SHA256 of
the secret over the cube id and the vertex name), so a cube's keys survive a
restart with nothing stored but the secret, and the secret never leaves the
store. A vote is the vertex's signature over ``(cube id, height, vertex,
proposal digest)`` in canonical CBOR, with a domain tag so that no other signed
message of the project can be replayed as one.

The rule is Byzantine agreement with f = 2 of n = 8: a proposal is decided when
``3 * signers > 2 * 8``, i.e. at least 6 distinct vertices signed the same
digest. For eight voters "more than 2/3" and "at least 2/3" agree (16/3 is not an
integer), and two different digests can never both gather 6 of 8 unless at least
4 vertices signed both, each of which :class:`Tally` catches as a conflicting vote.

A vertex that signs two different digests for one cube and height is caught by
:class:`Tally` with :class:`Evidence`: both signed votes, which anyone holding
the vertex's public key (the ledger's genesis entry lists them) can check with
:func:`verify_evidence`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from focusflow.core.encoding import encode
from focusflow.core.keys import KeyPair, verify
from focusflow.konomi.cube import VERTICES
from focusflow.konomi.errors import (
    InvalidVoteEvidenceError,
    LedgerBadSignatureError,
    LedgerOutOfOrderError,
    UnknownVertexError,
)

#: Domain tag of a vote's signed bytes.
VOTE_DOMAIN = "konomi/vote/1"
#: Voters of a cube: its eight corners. CENTRAL tallies and does not vote.
VOTERS: tuple[str, ...] = VERTICES
DIGEST_SIZE = 32


def quorum(signers: int, voters: int = len(VOTERS)) -> bool:
    """More than 2/3 of the voters: ``3 * signers > 2 * voters`` (6 of 8)."""
    return 3 * signers > 2 * voters


#: The fewest signers that decide a proposal of a cube (6).
QUORUM = next(k for k in range(len(VOTERS) + 1) if quorum(k))


def vertex_seed(secret: bytes, cube_id: str, vertex: str) -> bytes:
    """The 32-byte Ed25519 seed of a vertex, derived from the cube's secret."""
    return hmac.new(
        secret, encode(["konomi/vertex-key/1", cube_id, vertex]), hashlib.sha256
    ).digest()


def vertex_keys(secret: bytes, cube_id: str) -> dict[str, KeyPair]:
    """The key of every voting vertex of a cube."""
    return {v: KeyPair.from_seed(vertex_seed(secret, cube_id, v)) for v in VOTERS}


def vote_message(cube_id: str, height: int, vertex: str, digest: bytes) -> bytes:
    """The bytes a vertex signs: what it votes for, where, and who it is."""
    return encode([VOTE_DOMAIN, cube_id, height, vertex, digest])


@dataclass(frozen=True)
class Vote:
    """One vertex's signed vote for a proposal digest at a ledger height."""

    cube_id: str
    height: int
    vertex: str
    digest: bytes
    signature: bytes

    def message(self) -> bytes:
        """The signed bytes."""
        return vote_message(self.cube_id, self.height, self.vertex, self.digest)

    def verify(self, public_key: bytes) -> bool:
        """Whether the signature is the vertex's (``public_key``) over this vote."""
        return verify(public_key, self.signature, self.message())

    def to_json(self) -> dict[str, object]:
        """JSON form (bytes as hex)."""
        return {
            "cube_id": self.cube_id,
            "height": self.height,
            "vertex": self.vertex,
            "digest": self.digest.hex(),
            "signature": self.signature.hex(),
        }


def sign_vote(key: KeyPair, cube_id: str, height: int, vertex: str, digest: bytes) -> Vote:
    """``vertex`` votes for ``digest`` at ``height`` with its key."""
    return Vote(
        cube_id, height, vertex, digest, key.sign(vote_message(cube_id, height, vertex, digest))
    )


@dataclass(frozen=True)
class Evidence:
    """Two votes of one vertex for one cube and height with different digests."""

    first: Vote
    second: Vote

    def to_json(self) -> dict[str, object]:
        """JSON form: both votes."""
        return {"first": self.first.to_json(), "second": self.second.to_json()}


def verify_evidence(evidence: Evidence, public_key: bytes) -> None:
    """Check that ``evidence`` proves a conflicting vote by the vertex whose key is
    ``public_key``; InvalidVoteEvidenceError says why not."""
    a, b = evidence.first, evidence.second
    if (a.cube_id, a.height, a.vertex) != (b.cube_id, b.height, b.vertex):
        raise InvalidVoteEvidenceError("the two votes are not of one cube, height and vertex")
    if a.digest == b.digest:
        raise InvalidVoteEvidenceError("the two votes are for the same proposal")
    if not (a.verify(public_key) and b.verify(public_key)):
        raise InvalidVoteEvidenceError(f"a vote is not signed by {a.vertex}'s key")


@dataclass(frozen=True)
class Decision:
    """A decided digest and the votes (at least QUORUM) that decided it."""

    height: int
    digest: bytes
    votes: tuple[Vote, ...]


class Tally:
    """CENTRAL's count of the votes for one cube and height.

    Every vote's signature is checked before it counts. A vertex's second vote
    for the same digest is a repeat and ignored; for another digest it is a
    conflicting vote: the evidence is kept in :attr:`evidence` and the vote does
    not count (nor is its first one withdrawn, which would let a vertex undo its
    vote by equivocating).
    """

    def __init__(self, cube_id: str, height: int, public_keys: Mapping[str, bytes]) -> None:
        self.cube_id = cube_id
        self.height = height
        self.public_keys = dict(public_keys)
        self.votes: dict[str, Vote] = {}
        self.evidence: list[Evidence] = []

    def add(self, vote: Vote) -> Evidence | None:
        """Count one vote; returns the evidence when it conflicts with the vertex's
        earlier vote. A vote of another cube or height, of an unknown vertex, or
        whose signature does not verify raises and counts nothing."""
        key = self.public_keys.get(vote.vertex)
        if key is None:
            raise UnknownVertexError(f"{vote.vertex!r} is not a voter of cube {self.cube_id!r}")
        if (vote.cube_id, vote.height) != (self.cube_id, self.height):
            raise LedgerOutOfOrderError(
                f"a vote for cube {vote.cube_id!r} at height {vote.height} in the tally of "
                f"{self.cube_id!r} at {self.height}"
            )
        if not vote.verify(key):
            raise LedgerBadSignatureError(f"the vote of {vote.vertex} does not verify")
        seen = self.votes.get(vote.vertex)
        if seen is None:
            self.votes[vote.vertex] = vote
            return None
        if seen.digest == vote.digest:
            return None
        evidence = Evidence(seen, vote)
        self.evidence.append(evidence)
        return evidence

    def add_all(self, votes: Iterable[Vote]) -> list[Evidence]:
        """Count several votes; returns the evidence of the conflicting ones."""
        return [e for v in votes if (e := self.add(v)) is not None]

    def decision(self) -> Decision | None:
        """The digest that QUORUM distinct vertices signed, with their votes, or None."""
        by_digest: dict[bytes, list[Vote]] = {}
        for v in self.votes.values():
            by_digest.setdefault(v.digest, []).append(v)
        for digest, votes in by_digest.items():
            if quorum(len(votes)):
                order = {name: i for i, name in enumerate(VOTERS)}
                votes.sort(key=lambda v: order[v.vertex])
                return Decision(self.height, digest, tuple(votes))
        return None
