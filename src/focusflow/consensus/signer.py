"""The validator's signing key behind the write-ahead log (CometBFT's "privval").

Every signature goes through :class:`Signer`, which enforces the one rule that
keeps an honest validator from being slashed: for each (height, round, step) it
signs at most one message. The first request signs and is written to the WAL and
fsynced before the message is returned; any later request for the same slot
returns that same message, whatever value it asks for. The state machine then
broadcasts what the signer returned, so after a crash and restart the validator
repeats itself instead of contradicting itself.

Snowman's answers go through it too (:meth:`Signer.sign_chits`): one answer
per (height, requester, poll), written before it is sent, so a validator that
restarts and meets the same query again repeats its first answer. Two
different answers to one poll are what chits evidence proves; without the log
a requester could replay its query to a restarted honest validator and collect
such a pair. A requester gets at most ``MAX_CHITS_PER_REQUESTER`` answers a
height, so a flood of queries cannot grow the log without bound.

Heights never go back: below the ``floor`` (the height the validator last
started, kept in the WAL) the signer refuses to sign at all, as CometBFT's
FilePV refuses a height regression; a node whose block store lost blocks must
sync them, not vote on them again.
"""

from __future__ import annotations

from focusflow.consensus.errors import SignRefusedError, WALError
from focusflow.consensus.messages import (
    Message,
    Proposal,
    Step,
    Vote,
    decode_message,
    encode_message,
)
from focusflow.consensus.poll_messages import Chits, decode_poll_message, encode_poll_message
from focusflow.consensus.wal import (
    KIND_CHITS,
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
#: Answers a validator signs for one requester at one height. An honest poller
#: opens a few polls every poll timeout, so this is minutes of one stalled
#: height; past it the requester's queries go unanswered.
MAX_CHITS_PER_REQUESTER = 4096
#: Heights below the floor whose answers are kept (and may still be asked for):
#: Snowman answers a laggard's poll of a decided height from its decisions, which
#: it keeps as long.
CHITS_KEPT_HEIGHTS = 256

#: One answer to sign: (height, requester, poll, value id or None).
ChitsRequest = tuple[int, bytes, int, bytes | None]


class Signer:
    def __init__(self, key: KeyPair, chain_id: str, wal: WriteAheadLog) -> None:
        self.key = key
        self.chain_id = chain_id
        self.wal = wal
        self._signed: dict[tuple[int, int, Step], Message] = {}
        self._locks: dict[int, tuple[int, bytes, bytes]] = {}
        self._chits: dict[tuple[int, bytes, int], Chits] = {}
        self._chits_count: dict[tuple[int, bytes], int] = {}
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

    def sign_chits(self, requests: list[ChitsRequest]) -> list[Chits | None]:
        """Sign answers to polls, each at most once; one fsync for the new ones.

        Returns, for each request, the answer already signed for its
        (height, requester, poll) if there is one, whatever value id it asks
        for now; else a new answer; None once the requester has had
        ``MAX_CHITS_PER_REQUESTER`` answers at that height.
        """
        out: list[Chits | None] = []
        new: list[WALEntry] = []
        for height, requester, poll, value_id in requests:
            if height < self.floor - CHITS_KEPT_HEIGHTS:
                raise SignRefusedError(
                    f"height {height} is past the answers kept below {self.floor}"
                )
            key = (height, requester, poll)
            prior = self._chits.get(key)
            if prior is not None:
                out.append(prior)
                continue
            count = self._chits_count.get((height, requester), 0)
            if count >= MAX_CHITS_PER_REQUESTER:
                out.append(None)
                continue
            chits = Chits.sign(self.key, self.chain_id, height, requester, poll, value_id)
            self._chits[key] = chits
            self._chits_count[(height, requester)] = count + 1
            new.append(WALEntry(KIND_CHITS, height, encode_poll_message(chits)))
            out.append(chits)
        self.wal.append_many(new)
        return out

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
        kept = below_height - CHITS_KEPT_HEIGHTS
        self._chits = {k: c for k, c in self._chits.items() if k[0] >= kept}
        self._chits_count = {k: n for k, n in self._chits_count.items() if k[0] >= kept}
        head = self.wal.first()
        if head is None or head.kind != KIND_FLOOR or below_height - head.height >= COMPACT_EVERY:
            self.wal.prune(below_height, chits_from=kept)
            self._logged_floor = below_height
        elif below_height > self._logged_floor:
            self.wal.append(WALEntry(KIND_FLOOR, below_height, b""))
            self._logged_floor = below_height

    def resume_height(self) -> int:
        """The height the WAL says this validator reached (0 for a fresh log)."""
        return max(
            [
                self.floor,
                *(h for h, _, _ in self._signed),
                *self._locks,
                *(h for h, _, _ in self._chits),
            ]
        )

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
        if entry.kind == KIND_CHITS:
            chits = decode_poll_message(entry.body)
            if not isinstance(chits, Chits):
                raise WALError("a chits record of the WAL holds another poll message")
            key = (chits.height, chits.requester, chits.poll)
            if key not in self._chits:
                self._chits[key] = chits
                count_key = (chits.height, chits.requester)
                self._chits_count[count_key] = self._chits_count.get(count_key, 0) + 1
            return
        message = decode_message(entry.body)
        step = message.step if isinstance(message, Vote) else Step.PROPOSE
        self._signed.setdefault((message.height, message.round, step), message)
