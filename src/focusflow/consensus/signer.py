"""The validator's signing key behind the write-ahead log (CometBFT's "privval").

Every signature goes through :class:`Signer`, which enforces the one rule that
keeps an honest validator from being slashed: for each (height, round, step) it
signs at most one message. The first request signs and is written to the WAL and
fsynced before the message is returned; any later request for the same slot
returns that same message, whatever value it asks for. The state machine then
broadcasts what the signer returned, so after a crash and restart the validator
repeats itself instead of contradicting itself.

Heights never go back: below the ``floor`` (the height the validator last
started, kept in the WAL) the signer refuses to sign at all, as CometBFT's
FilePV refuses a height regression; a node whose block store lost blocks must
sync them, not vote on them again.
"""

from __future__ import annotations

from focusflow.consensus.errors import SignRefusedError
from focusflow.consensus.messages import (
    Message,
    Proposal,
    Step,
    Vote,
    decode_message,
    encode_message,
)
from focusflow.consensus.wal import (
    KIND_FLOOR,
    KIND_LOCK,
    KIND_PROPOSAL,
    KIND_VOTE,
    WALEntry,
    WriteAheadLog,
)
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair

#: The WAL is rewritten without its committed heights at most once per this many
#: heights; in between, a new floor is one appended record (one fsync), where a
#: rewrite costs two fsyncs and a rename at every height.
COMPACT_EVERY = 64


class Signer:
    def __init__(self, key: KeyPair, chain_id: str, wal: WriteAheadLog) -> None:
        self.key = key
        self.chain_id = chain_id
        self.wal = wal
        self._signed: dict[tuple[int, int, Step], Message] = {}
        self._locks: dict[int, tuple[int, bytes, bytes]] = {}
        self.floor = 0
        for entry in wal.entries():
            self._load(entry)
        #: The highest floor record in the WAL (what a restart would read).
        self._logged_floor = self.floor

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def sign_proposal(
        self, height: int, round: int, valid_round: int, value: bytes, value_id: bytes
    ) -> Proposal:
        """Sign a proposal, or return the one already signed for (height, round)."""
        self._check_height(height)
        prior = self._signed.get((height, round, Step.PROPOSE))
        if isinstance(prior, Proposal):
            return prior
        proposal = Proposal.sign(
            self.key, self.chain_id, height, round, valid_round, value, value_id
        )
        self.wal.append(WALEntry(KIND_PROPOSAL, height, encode_message(proposal)))
        self._signed[(height, round, Step.PROPOSE)] = proposal
        return proposal

    def sign_vote(self, height: int, round: int, step: Step, value_id: bytes | None) -> Vote:
        """Sign a vote, or return the vote already signed for (height, round, step)."""
        self._check_height(height)
        prior = self._signed.get((height, round, step))
        if isinstance(prior, Vote):
            return prior
        vote = Vote.sign(self.key, self.chain_id, height, round, step, value_id)
        self.wal.append(WALEntry(KIND_VOTE, height, encode_message(vote)))
        self._signed[(height, round, step)] = vote
        return vote

    def record_lock(self, height: int, round: int, value: bytes, value_id: bytes) -> None:
        """Persist ``lockedValue``/``lockedRound`` (lines 38-39) before the precommit."""
        self.wal.append(WALEntry(KIND_LOCK, height, encode([round, value, value_id])))
        self._locks[height] = (round, value, value_id)

    def signed(self, height: int) -> list[Message]:
        """Messages signed at ``height`` (from this run or the WAL), in signing order."""
        return [m for (h, _, _), m in self._signed.items() if h == height]

    def lock(self, height: int) -> tuple[int, bytes, bytes] | None:
        """The latest (round, value, value_id) this validator locked on at ``height``."""
        return self._locks.get(height)

    def prune(self, below_height: int) -> None:
        """Forget heights below ``below_height`` (committed) in memory and in the WAL.

        ``below_height`` becomes the floor; a height below the floor raises
        SignRefusedError (the caller restarted from a block store that is behind).
        The floor reaches the disk at once (an appended, fsynced record); the
        committed heights' records are dropped from the file every
        COMPACT_EVERY heights.
        """
        self._check_height(below_height)
        self.floor = below_height
        self._signed = {k: m for k, m in self._signed.items() if k[0] >= below_height}
        self._locks = {h: lock for h, lock in self._locks.items() if h >= below_height}
        entries = self.wal.entries()
        head = entries[0] if entries else None
        if head is None or head.kind != KIND_FLOOR or below_height - head.height >= COMPACT_EVERY:
            self.wal.prune(below_height)
            self._logged_floor = below_height
        elif below_height > self._logged_floor:
            self.wal.append(WALEntry(KIND_FLOOR, below_height, b""))
            self._logged_floor = below_height

    def resume_height(self) -> int:
        """The height the WAL says this validator reached (0 for a fresh log)."""
        return max([self.floor, *(h for h, _, _ in self._signed), *self._locks])

    def _check_height(self, height: int) -> None:
        if height < self.floor:
            raise SignRefusedError(
                f"height {height} is below {self.floor}, which this validator already reached"
            )

    def _load(self, entry: WALEntry) -> None:
        if entry.kind == KIND_FLOOR:
            self.floor = max(self.floor, entry.height)
            return
        if entry.kind == KIND_LOCK:
            round_, value, value_id = decode(entry.body, "WAL lock")
            self._locks[entry.height] = (round_, value, value_id)
            return
        message = decode_message(entry.body)
        step = message.step if isinstance(message, Vote) else Step.PROPOSE
        self._signed.setdefault((message.height, message.round, step), message)
