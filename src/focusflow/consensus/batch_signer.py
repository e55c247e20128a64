"""The DAG mempool's signatures behind a write-ahead log, so a restart keeps its rules.

A validator's DAG mempool must never vote for two digests of one slot and never
seal two batches into one of its own slots (docs/consensus.md §11.2): either
is equivocation, and two certificates for one slot become possible once more
than a third of the stake has done it. Those rules live in memory in
:class:`~focusflow.consensus.dag_mempool.DagMempool`; a validator that crashed
after voting and came back with an empty memory would vote again for whatever
second batch an equivocating author sends it. :class:`BatchSigner` is where
those signatures are made, as :class:`~focusflow.consensus.signer.Signer` is for
Tendermint's votes:

- ``sign_batch`` signs one batch per own slot, written to the log and fsynced
  before it is returned; asked again for that slot it returns the same batch,
  whatever transactions it is offered. A restarted author therefore resends
  the batches it signed but saw no certificate for (``DagMempool.resend``),
  instead of sealing new ones into their slots.
- ``sign_vote`` signs one vote per slot, logged before it is returned; the same
  batch again gets the same vote, another digest for the slot gets None.
- ``retire`` records an author's floor (its slots below it are ordered) and
  forgets what lies below; the log is rewritten without them every
  ``COMPACT_EVERY`` floors, so it holds the slots still open, not the history.

The log is its own file (:class:`~focusflow.consensus.wal.WriteAheadLog`, kinds
``batch``, ``batch_vote``, ``batch_floor``, the epoch in the height field): the
consensus WAL's pruning by height does not fit slots, which are ordered by
authors' sequences. A record for another chain or key is corruption
(``WALError``): a log must not be shared between validators.
"""

from __future__ import annotations

from collections.abc import Iterable

from focusflow.consensus.batches import (
    Batch,
    BatchVote,
    decode_batch,
    decode_batch_vote,
    encode_batch,
    encode_batch_vote,
)
from focusflow.consensus.errors import SignRefusedError, WALError
from focusflow.consensus.wal import (
    KIND_BATCH,
    KIND_BATCH_FLOOR,
    KIND_BATCH_VOTE,
    WALEntry,
    WriteAheadLog,
)
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import KeyPair

#: Floors recorded between two rewrites of the log.
COMPACT_EVERY = 256

Slot = tuple[int, bytes, int]


class BatchSigner:
    """Signs batches and batch votes at most once per slot, through a log."""

    def __init__(self, key: KeyPair, chain_id: str, wal: WriteAheadLog) -> None:
        self.key = key
        self.chain_id = chain_id
        self.wal = wal
        #: Own batches signed and not yet below their floor, by slot.
        self.batches: dict[Slot, Batch] = {}
        #: Votes signed and not yet below their author's floor, by slot.
        self.votes: dict[Slot, BatchVote] = {}
        #: (epoch, author) -> the author's lowest sequence not yet ordered.
        self.floors: dict[tuple[int, bytes], int] = {}
        self._since_compact = 0
        for entry in wal.entries():
            self._load(entry)
        self._drop_ordered()

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    def floor(self, epoch: int, author: bytes) -> int:
        return self.floors.get((epoch, author), 0)

    def sign_batch(self, epoch: int, sequence: int, txs: Iterable[bytes]) -> Batch:
        """The batch of own slot ``(epoch, sequence)``: the one signed before, if
        any (``txs`` then unused), else ``txs`` sealed, logged and fsynced."""
        slot = (epoch, self.public_key, sequence)
        prior = self.batches.get(slot)
        if prior is not None:
            return prior
        if sequence < self.floor(epoch, self.public_key):
            raise SignRefusedError(
                f"sequence {sequence} of epoch {epoch} is below this author's ordered floor"
            )
        batch = Batch.seal(self.key, self.chain_id, epoch, sequence, txs)
        self.wal.append(WALEntry(KIND_BATCH, epoch, encode_batch(batch)))
        self.batches[slot] = batch
        return batch

    def sign_vote(self, batch: Batch) -> BatchVote | None:
        """The vote for ``batch``: the one signed before for its slot when it names
        this digest, None when it names another or the slot is ordered, else a new
        vote, logged and fsynced before it is returned."""
        (vote,) = self.sign_votes([batch])
        return vote

    def sign_votes(self, batches: list[Batch]) -> list[BatchVote | None]:
        """:meth:`sign_vote` for each batch in order, the new votes written with
        one fsync before any is returned."""
        out: list[BatchVote | None] = []
        new: dict[Slot, BatchVote] = {}
        for batch in batches:
            slot = batch.slot
            prior = self.votes.get(slot) or new.get(slot)
            if prior is not None:
                out.append(prior if prior.digest == batch.digest else None)
            elif batch.sequence < self.floor(batch.epoch, batch.author):
                out.append(None)
            else:
                vote = new[slot] = BatchVote.sign(self.key, self.chain_id, batch)
                out.append(vote)
        self.wal.append_many(
            [WALEntry(KIND_BATCH_VOTE, s[0], encode_batch_vote(v)) for s, v in new.items()]
        )
        self.votes.update(new)
        return out

    def retire(self, floors: dict[tuple[int, bytes], int]) -> None:
        """Record new floors ((epoch, author) -> lowest unordered sequence) in one
        append, and forget the batches and votes below them. Losing this record in
        a crash is harmless: the votes it would have dropped still refuse."""
        moved = {k: f for k, f in floors.items() if f > self.floors.get(k, 0)}
        if not moved:
            return
        self.wal.append_many(
            [
                WALEntry(KIND_BATCH_FLOOR, epoch, encode([author, f]))
                for (epoch, author), f in sorted(moved.items())
            ]
        )
        for key, f in moved.items():
            self._raise_floor(key, f)
        self._drop_ordered()
        self._since_compact += len(moved)
        if self._since_compact >= COMPACT_EVERY:
            self.compact()

    def end_epoch(self, epoch: int) -> None:
        """Forget every slot of the epochs before ``epoch`` (their validator set
        certifies nothing any more) and rewrite the log."""
        self.batches = {s: b for s, b in self.batches.items() if s[0] >= epoch}
        self.votes = {s: v for s, v in self.votes.items() if s[0] >= epoch}
        self.floors = {k: f for k, f in self.floors.items() if k[0] >= epoch}
        self.compact()

    def compact(self) -> None:
        """Rewrite the log as the floors, then the open slots' batches and votes."""
        keep = [
            WALEntry(KIND_BATCH_FLOOR, epoch, encode([author, f]))
            for (epoch, author), f in sorted(self.floors.items())
        ]
        keep += [WALEntry(KIND_BATCH, s[0], encode_batch(b)) for s, b in self.batches.items()]
        keep += [
            WALEntry(KIND_BATCH_VOTE, s[0], encode_batch_vote(v)) for s, v in self.votes.items()
        ]
        self.wal.rewrite(keep)
        self._since_compact = 0

    def _raise_floor(self, key: tuple[int, bytes], f: int) -> None:
        self.floors[key] = max(f, self.floors.get(key, 0))

    def _drop_ordered(self) -> None:
        """Forget the batches and votes below their author's floor: one pass over
        what is held, however many floors moved."""

        def open_(s: Slot) -> bool:
            return s[2] >= self.floors.get((s[0], s[1]), 0)

        self.votes = {s: v for s, v in self.votes.items() if open_(s)}
        self.batches = {s: b for s, b in self.batches.items() if open_(s)}

    def _load(self, entry: WALEntry) -> None:
        try:
            if entry.kind == KIND_BATCH:
                batch = decode_batch(entry.body)
                if batch.author != self.public_key or not batch.verify_signature(self.chain_id):
                    raise WALError("a batch record of the DAG log is not this validator's")
                self.batches.setdefault(batch.slot, batch)
            elif entry.kind == KIND_BATCH_VOTE:
                vote = decode_batch_vote(entry.body)
                if vote.voter != self.public_key or not vote.verify_signature(self.chain_id):
                    raise WALError("a vote record of the DAG log is not this validator's")
                self.votes.setdefault(vote.slot, vote)
            elif entry.kind == KIND_BATCH_FLOOR:
                author, f = decode(entry.body, "DAG log floor")
                if not isinstance(author, bytes) or not isinstance(f, int):
                    raise WALError("a floor record of the DAG log is not [author, sequence]")
                self._raise_floor((entry.height, author), f)
            else:
                raise WALError(f"a {entry.kind!r} record is not a DAG mempool record")
        except DecodeError as exc:
            raise WALError(f"a DAG log record does not decode: {exc}") from exc
