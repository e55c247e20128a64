"""One validator's DAG mempool: batches out, votes in, certificates to order.

:class:`DagMempool` is a sans-io state machine, like :class:`Tendermint`: the
caller hands it transactions, messages and clock ticks and sends what it returns.

- **Sealing.** Client transactions wait in a bounded local pool. At every
  :meth:`DagMempool.tick` (one *round*), and whenever the pool holds a full
  batch's worth, the validator seals a :class:`Batch` into its next slot and
  broadcasts it to every validator, itself included (its own vote counts).
- **Voting.** A validator that receives a valid batch stores it and returns a
  :class:`BatchVote` to the author, **at most one digest per slot**: a second
  batch of the same author for the same slot gets no vote and becomes
  :class:`BatchEquivocation` evidence. This is the safety rule; with it two
  certificates for one slot need faulty validators above 1/3 of the stake.
  Votes are also refused for sequences more than ``window`` beyond the author's
  lowest unordered one, which bounds what any author can make others store.
- **Certifying.** The author collects votes; above 2/3 of the stake they form a
  :class:`BatchCertificate`, which it broadcasts. A certificate is the batch's
  data availability: a validator holding a certificate without its batch asks
  the signers (:meth:`missing`, :meth:`serve_fetch`, :meth:`on_fetched`); more
  than 2/3 signed, so beyond any faulty third at least one honest signer has it.
  A validator that holds the batch needs no certificate for itself: it checks
  the certificate only when it proposes it (:meth:`on_certificate`).
- **Ordering.** Tendermint orders certificates: the proposer's value carries
  :meth:`payload_for_block`, every validator checks it with
  :meth:`check_payload` and, once decided, :meth:`apply_block` marks the
  certificates ordered and returns the block's transactions.

The transactions of a block are, deterministically: the certificates in the
block's order, each batch's transactions in the batch's order, every
transaction after its first occurrence in the block left out (the same bytes in
two batches run once). A transaction repeated in a later block is refused there
by the chain's nonce rule, so it runs once in all.

Quality of service, focus-weighted. ``priority`` is the chain mempool's
formula (``chain.mempool.Mempool.priority``: fee per byte times the sender's
karma boost), passed in by the node, since consensus does not import the chain.
A batch takes first the transactions that have waited ``age_rounds`` rounds or
more, oldest first, then the rest by priority (ties: arrival order). When the
pool is full, the validator sheds the lowest-priority ``shed_fraction`` of the
transactions that have not waited ``age_rounds`` (the incoming one competes;
aged transactions are never shed). Starvation bound (:meth:`DagParams.bound`):
a transaction admitted in round ``r`` (after that round's seal) is either shed
before round ``r + age_rounds`` or sealed by round ``r + a + ceil(max_pending /
per_batch) - 1`` with ``a = max(1, age_rounds)``, for a validator that seals at
every tick. Proof: the first seal it can be in is round ``r + 1``, and from
round ``r + age_rounds`` on it is aged, so from round ``r + a`` on every seal
considers it; only aged transactions that arrived earlier come before it, at
most ``max_pending - 1`` of them; none of them is shed and no later arrival
goes before it; a seal that leaves it out takes ``per_batch`` of those ahead of
it (any ``per_batch`` transactions fit in a batch), so ``ceil(max_pending /
per_batch)`` seals from round ``r + a`` include it.

A proposer orders first the certificates it has held for ``cert_age_heights``
heights or more (oldest first), then the rest by the batch's priority per byte
(the byte-weighted mean of its transactions' priorities: what a block's bytes
earn), ties by slot.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from focusflow.consensus.batch_signer import BatchSigner
from focusflow.consensus.batches import (
    MAX_BATCH_TX_BYTES,
    MAX_BATCH_TXS,
    Batch,
    BatchCertificate,
    BatchEquivocation,
    BatchVote,
    verify_batch,
    verify_batch_certificate,
    verify_batch_vote,
)
from focusflow.consensus.errors import InvalidBatchCertificateError, InvalidBatchError
from focusflow.consensus.validators import ValidatorSet, has_two_thirds
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair

#: Priority of a transaction's bytes: the chain mempool's formula, given by the node.
PriorityOf = Callable[[bytes], float]
Slot = tuple[int, bytes, int]


@dataclass(frozen=True)
class DagParams:
    """Local policy of one validator's DAG mempool (not consensus, except ``window``)."""

    #: Transactions one batch takes at most.
    batch_txs: int = 512
    #: Bytes one batch takes at most; a pool holding this much seals at once.
    batch_bytes: int = MAX_BATCH_TX_BYTES
    #: The largest transaction admitted.
    max_tx_bytes: int = 32 << 10
    #: Transactions the local pool holds at most.
    max_pending: int = 8192
    #: Share of the pool's non-aged transactions shed when it is full (at least one).
    shed_fraction: float = 0.1
    #: Rounds after which a transaction is sealed before any by priority.
    age_rounds: int = 4
    #: Sequences past an author's lowest unordered one that a validator votes for.
    window: int = 32
    #: Heights after which a held certificate is ordered before any by priority.
    cert_age_heights: int = 4

    def __post_init__(self) -> None:
        for name in ("batch_txs", "batch_bytes", "max_tx_bytes", "max_pending", "window"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"DAG mempool parameter {name} must be at least 1")
        if self.batch_txs > MAX_BATCH_TXS or self.batch_bytes > MAX_BATCH_TX_BYTES:
            raise InvalidParameterError("a DAG batch cannot exceed the batch wire bounds")
        if self.max_tx_bytes > self.batch_bytes:
            raise InvalidParameterError("max_tx_bytes must fit in one batch")
        if not 0.0 <= self.shed_fraction <= 1.0:
            raise InvalidParameterError("shed_fraction must be in [0, 1]")
        if self.age_rounds < 0 or self.cert_age_heights < 0:
            raise InvalidParameterError("ages must be non-negative")

    @property
    def per_batch(self) -> int:
        """Transactions a seal takes at least, when that many wait: any of them fits."""
        return min(self.batch_txs, self.batch_bytes // self.max_tx_bytes)

    def bound(self) -> int:
        """Rounds after admission by which an unshed transaction is sealed (inclusive)."""
        return max(1, self.age_rounds) + math.ceil(self.max_pending / self.per_batch) - 1


@dataclass(eq=False)
class _Pending:
    tx: bytes
    hash: bytes
    priority: float
    round: int
    order: int


@dataclass(frozen=True)
class FetchRequest:
    """Ask ``peers`` (the certificate's signers, in order) for the batch ``digest``."""

    slot: Slot
    digest: bytes
    peers: tuple[bytes, ...]


@dataclass
class _Held:
    cert: BatchCertificate
    since_height: int


@dataclass
class DagMempool:
    key: KeyPair
    chain_id: str
    validators: ValidatorSet
    epoch: int
    priority: PriorityOf
    params: DagParams = field(default_factory=DagParams)
    #: Where batches and votes are signed and logged (a node's must be one, so a
    #: restart keeps the one-digest-per-slot rules); None signs in memory only
    #: (simulations and tests of one run).
    signer: BatchSigner | None = None

    def __post_init__(self) -> None:
        if self.validators.power_of(self.key.public_key) == 0:
            raise InvalidParameterError("a DAG mempool runs for a validator of the set")
        if self.signer is not None and self.signer.public_key != self.key.public_key:
            raise InvalidParameterError("the DAG mempool's signer holds another key")
        self.round = 0
        self.height = 0
        self._order = itertools.count()
        #: The local pool, in arrival order (aged transactions are a prefix of it).
        self._pending: dict[int, _Pending] = {}
        self._pending_hashes: dict[bytes, int] = {}
        self._pending_bytes = 0
        self._next_sequence = 0
        #: Own batches not yet certified, with the votes gathered: voter -> vote.
        self._own: dict[int, tuple[Batch, dict[bytes, BatchVote]]] = {}
        #: Batches held, by digest (the certified one of a slot and the first seen).
        self._batches: dict[bytes, Batch] = {}
        #: The first (digest, author signature) seen for each slot.
        self._sealed: dict[Slot, tuple[bytes, bytes]] = {}
        #: The digest this validator voted for in each slot: never a second one.
        self.voted: dict[Slot, bytes] = {}
        self._certs: dict[Slot, BatchCertificate] = {}
        #: Certificates held without their signatures checked (their batch is held).
        self._unchecked: set[Slot] = set()
        self._unordered: dict[Slot, _Held] = {}
        self._ordered: set[Slot] = set()
        #: Lowest unordered sequence of each author (the voting window's base).
        self._floor: dict[bytes, int] = {}
        self.evidence: list[BatchEquivocation] = []
        if self.signer is not None:
            self._restore(self.signer)

    def _restore(self, signer: BatchSigner) -> None:
        """Take up what the log says this validator signed in this epoch: the
        floors, the digest voted in each open slot, and its own batches (not yet
        ordered), which :meth:`resend` hands out again."""
        for (epoch, author), floor in signer.floors.items():
            if epoch == self.epoch:
                self._floor[author] = floor
        for slot, vote in signer.votes.items():
            if slot[0] == self.epoch:
                self.voted[slot] = vote.digest
        for slot, batch in sorted(signer.batches.items(), key=lambda item: item[0][2]):
            if slot[0] == self.epoch:
                self._own[batch.sequence] = (batch, {})
                self._batches[batch.digest] = batch
                self._sealed[slot] = (batch.digest, batch.signature)
                self._next_sequence = max(self._next_sequence, batch.sequence + 1)
        self._next_sequence = max(self._next_sequence, self._floor.get(self.public_key, 0))

    def resend(self) -> list[Batch]:
        """Own batches sealed but not certified yet, in slot order: after a restart
        the host broadcasts them again (their votes were in memory)."""
        return [self._own[s][0] for s in sorted(self._own)]

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    # Local transactions.

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, tx: bytes) -> list[bytes]:
        """Admit ``tx`` to the pool; return the transactions shed to make room.

        The list holds ``tx`` itself when it lost the place (its priority is among
        the lowest, or every pending transaction is aged). A transaction already
        pending is ignored. InvalidBatchError if it is larger than ``max_tx_bytes``.
        """
        if len(tx) > self.params.max_tx_bytes:
            raise InvalidBatchError(
                f"transaction of {len(tx)} bytes exceeds {self.params.max_tx_bytes}"
            )
        h = sha256(tx)
        if h in self._pending_hashes:
            return []
        entry = _Pending(tx, h, self.priority(tx), self.round, next(self._order))
        shed: list[bytes] = []
        if len(self._pending) >= self.params.max_pending:
            shed, lost = self._shed(entry)
            if lost:
                return [*shed, tx]
        self._pending[entry.order] = entry
        self._pending_hashes[h] = entry.order
        self._pending_bytes += len(tx)
        return shed

    def _shed(self, incoming: _Pending) -> tuple[list[bytes], bool]:
        """Drop the lowest-priority young transactions; True if ``incoming`` loses too
        (it is among them, or no young transaction is left to make room)."""
        young = [p for p in self._pending.values() if self.round - p.round < self.params.age_rounds]
        count = max(1, int(self.params.shed_fraction * len(self._pending)))
        # Lowest priority first; among equals the latest arrival goes first.
        losers = heapq.nsmallest(count, [*young, incoming], key=lambda p: (p.priority, -p.order))
        dropped = [p for p in losers if p is not incoming]
        for p in dropped:
            self._drop(p)
        return [p.tx for p in dropped], not dropped or len(dropped) < len(losers)

    def _drop(self, p: _Pending) -> None:
        del self._pending[p.order]
        del self._pending_hashes[p.hash]
        self._pending_bytes -= len(p.tx)

    def tick(self) -> Batch | None:
        """Start the next round: seal a batch of what waits (the time trigger)."""
        self.round += 1
        return self.seal()

    def ready(self) -> bool:
        """A full batch waits (the size trigger): the caller seals it now."""
        return (
            len(self._pending) >= self.params.batch_txs
            or self._pending_bytes >= self.params.batch_bytes
        )

    def seal(self) -> Batch | None:
        """Seal the next batch of the pool (aged first, then by priority); None if
        the pool is empty or the author's window is full (its certificates wait to be
        ordered: the backpressure that bounds what it makes others store)."""
        if not self._pending or not self._may_seal():
            return None
        chosen = self._choose()
        txs = [p.tx for p in chosen]
        if self.signer is not None:
            batch = self.signer.sign_batch(self.epoch, self._next_sequence, txs)
        else:
            batch = Batch.seal(self.key, self.chain_id, self.epoch, self._next_sequence, txs)
        self._next_sequence += 1
        for p in chosen:
            self._drop(p)
        self._own[batch.sequence] = (batch, {})
        self._batches[batch.digest] = batch
        self._sealed[batch.slot] = (batch.digest, batch.signature)
        return batch

    def _may_seal(self) -> bool:
        return self._next_sequence < self._floor.get(self.public_key, 0) + self.params.window

    def _choose(self) -> list[_Pending]:
        cap_txs, cap_bytes = self.params.batch_txs, self.params.batch_bytes
        chosen: list[_Pending] = []
        size = 0
        young: list[_Pending] = []
        for p in self._pending.values():
            if self.round - p.round < self.params.age_rounds:
                young.append(p)
            elif len(chosen) < cap_txs and size + len(p.tx) <= cap_bytes:
                chosen.append(p)
                size += len(p.tx)
        young.sort(key=lambda p: (-p.priority, p.order))
        for p in young:
            if len(chosen) >= cap_txs:
                break
            if size + len(p.tx) <= cap_bytes:
                chosen.append(p)
                size += len(p.tx)
        return chosen

    # Batches, votes, certificates from peers.

    def on_batch(self, batch: Batch) -> BatchVote | None:
        """Store a peer's batch and return the vote for its author, or None.

        InvalidBatchError if the batch is not valid for this epoch. None (and no
        vote) for a second digest in a slot (evidence is recorded), a sequence past
        the author's window, or an ordered slot. The same batch again gets the
        same vote again.
        """
        (out,) = self.on_batches([batch])
        if isinstance(out, InvalidBatchError):
            raise out
        return out

    def on_batches(self, batches: list[Batch]) -> list[BatchVote | InvalidBatchError | None]:
        """:meth:`on_batch` for batches that arrived together, in order: for each its
        vote, None, or the InvalidBatchError it raised (the others go on). With a
        signer the new votes reach its log in one write and one fsync (a group
        commit), where one call per batch costs an fsync each."""
        out: list[BatchVote | InvalidBatchError | None] = []
        admitted: list[int] = []
        for batch in batches:
            try:
                verify_batch(batch, self.validators, self.chain_id, self.epoch)
            except InvalidBatchError as exc:
                out.append(exc)
                continue
            out.append(None)
            if self._admit(batch):
                admitted.append(len(out) - 1)
        chosen = [batches[i] for i in admitted]
        if self.signer is not None:
            votes = self.signer.sign_votes(chosen)
        else:
            votes = [BatchVote.sign(self.key, self.chain_id, b) for b in chosen]
        for i, batch, vote in zip(admitted, chosen, votes, strict=True):
            if vote is not None:
                self._batches.setdefault(batch.digest, batch)
                self.voted.setdefault(batch.slot, batch.digest)
            out[i] = vote
        return out

    def _admit(self, batch: Batch) -> bool:
        """Whether this valid batch gets a vote (its slot's first digest seen, or the
        one voted before); records what it shows (sealed, evidence, held batches)."""
        slot = batch.slot
        if self._is_ordered(slot) or not self._in_window(batch.author, batch.sequence):
            return False
        self._note_sealed(slot, batch.author, batch.digest, batch.signature)
        voted = self.voted.get(slot)
        if voted is not None:
            return voted == batch.digest
        held = self._certs.get(slot)
        if held is not None:
            if held.digest == batch.digest:
                self._batches.setdefault(batch.digest, batch)
            return False
        return self._sealed[slot][0] == batch.digest

    def _in_window(self, author: bytes, sequence: int) -> bool:
        return sequence < self._floor.get(author, 0) + self.params.window

    def _is_ordered(self, slot: Slot) -> bool:
        _, author, sequence = slot
        return sequence < self._floor.get(author, 0) or slot in self._ordered

    def on_vote(self, vote: BatchVote) -> BatchCertificate | None:
        """Count a vote for an own batch; return the certificate when it forms.

        InvalidBatchError for an invalid vote. Votes for other authors' batches,
        for digests this validator never sealed and for certified batches are
        dropped.
        """
        verify_batch_vote(vote, self.validators, self.chain_id, self.epoch)
        if vote.author != self.public_key or vote.sequence not in self._own:
            return None
        batch, votes = self._own[vote.sequence]
        if vote.digest != batch.digest or vote.voter in votes:
            return None
        votes[vote.voter] = vote
        power = sum(self.validators.power_of(v) for v in votes)
        if not has_two_thirds(power, self.validators.total_power):
            return None
        del self._own[vote.sequence]
        cert = BatchCertificate.from_votes(batch, votes.values())
        self._hold(cert)
        return cert

    def on_certificate(self, cert: BatchCertificate) -> bool:
        """Hold a peer's certificate for ordering; True if it is new here.

        A certificate whose batch this validator holds is kept *unchecked*: the
        batch is the availability this validator needs, and checking every
        certificate would cost each validator ``n`` certificates of ``2n/3 + 1``
        signatures a round. It is checked when this validator proposes it
        (:meth:`payload_for_block`) or earlier through :meth:`check_held`.
        Any other certificate is checked now: InvalidBatchCertificateError if
        it does not verify. A certificate for a slot that holds another digest
        is evidence of the author (and of every voter in both certificates),
        and is not held.
        """
        slot = cert.slot
        held = self._certs.get(slot)
        if self._is_ordered(slot) or held == cert:
            return False
        if held is not None and held.digest == cert.digest:
            if slot in self._unchecked:  # a checked copy replaces an unchecked one
                verify_batch_certificate(cert, self.validators, self.chain_id, self.epoch)
                self._unchecked.discard(slot)
                self._certs[slot] = cert
                self._unordered[slot].cert = cert
            return False
        batch = self._batches.get(cert.digest)
        if batch is not None and batch.slot == slot and held is None:
            self._unchecked.add(slot)
            self._hold(cert)
            return True
        verify_batch_certificate(cert, self.validators, self.chain_id, self.epoch)
        self._note_sealed(slot, cert.author, cert.digest, cert.author_signature)
        if held is not None and (slot not in self._unchecked or self._check(slot)):
            self._note_double_certificate(held, cert)
            return False
        self._hold(cert)
        return True

    def check_held(self) -> int:
        """Check every certificate held unchecked (a validator about to propose
        does it ahead of its turn); drop those that fail. Returns how many failed."""
        failed = 0
        for slot in sorted(self._unchecked):
            if not self._check(slot):
                failed += 1
        return failed

    def _check(self, slot: Slot) -> bool:
        """Check an unchecked certificate; an invalid one is forgotten (its batch stays)."""
        self._unchecked.discard(slot)
        try:
            verify_batch_certificate(self._certs[slot], self.validators, self.chain_id, self.epoch)
        except InvalidBatchCertificateError:
            del self._certs[slot]
            self._unordered.pop(slot, None)
            return False
        return True

    def _hold(self, cert: BatchCertificate) -> None:
        self._certs[cert.slot] = cert
        self._unordered[cert.slot] = _Held(cert, self.height)

    def _note_sealed(self, slot: Slot, author: bytes, digest: bytes, signature: bytes) -> None:
        first = self._sealed.setdefault(slot, (digest, signature))
        if first[0] != digest:
            self._add_evidence(
                BatchEquivocation.of("batch", author, slot, first, (digest, signature))
            )

    def _note_double_certificate(self, a: BatchCertificate, b: BatchCertificate) -> None:
        sigs_b = dict(b.signatures)
        for voter, sig_a in a.signatures:
            sig_b = sigs_b.get(voter)
            if sig_b is not None:
                self._add_evidence(
                    BatchEquivocation.of(
                        "vote", voter, a.slot, (a.digest, sig_a), (b.digest, sig_b)
                    )
                )

    def _add_evidence(self, evidence: BatchEquivocation) -> None:
        if evidence not in self.evidence:
            self.evidence.append(evidence)

    # Availability: fetching a certified batch from its signers.

    def missing(self, certs: Iterable[BatchCertificate] | None = None) -> list[FetchRequest]:
        """Requests for the certified batches not held here (all held ones by default)."""
        certs = list(self._unordered_certs() if certs is None else certs)
        return [
            FetchRequest(c.slot, c.digest, tuple(pk for pk in c.signers if pk != self.public_key))
            for c in certs
            if c.digest not in self._batches
        ]

    def serve_fetch(self, request: FetchRequest) -> Batch | None:
        """The batch a peer asks for, if held."""
        return self.batch(request.digest)

    def batch(self, digest: bytes) -> Batch | None:
        """The batch of ``digest`` if held here."""
        return self._batches.get(digest)

    def on_fetched(self, batch: Batch) -> bool:
        """Keep a fetched batch if a held or given certificate names its digest.

        InvalidBatchError if it is invalid; False (nothing kept) if no certificate
        names it: a peer cannot fill this store with batches nobody certified.
        """
        verify_batch(batch, self.validators, self.chain_id, self.epoch)
        cert = self._certs.get(batch.slot)
        if cert is None or cert.digest != batch.digest:
            return False
        self._batches[batch.digest] = batch
        return True

    # Ordering by Tendermint.

    def _unordered_certs(self) -> list[BatchCertificate]:
        return [h.cert for h in self._unordered.values()]

    def batch_priority(self, digest: bytes) -> float:
        """The byte-weighted mean priority of a held batch's transactions (0 if not held)."""
        batch = self._batches.get(digest)
        if batch is None or not batch.txs:
            return 0.0
        size = sum(len(tx) for tx in batch.txs)
        return sum(self.priority(tx) * len(tx) for tx in batch.txs) / size

    def payload_for_block(self, limit: int) -> list[BatchCertificate]:
        """At most ``limit`` unordered certificates for a proposal: aged ones
        (held ``cert_age_heights`` or more) oldest first, then by batch priority."""
        aged: list[tuple[int, Slot, BatchCertificate]] = []
        young: list[tuple[float, Slot, BatchCertificate]] = []
        for slot, held in self._unordered.items():
            if self.height - held.since_height >= self.params.cert_age_heights:
                aged.append((held.since_height, slot, held.cert))
            else:
                young.append((-self.batch_priority(held.cert.digest), slot, held.cert))
        aged.sort(key=lambda x: (x[0], x[1]))
        young.sort(key=lambda x: (x[0], x[1]))
        out: list[BatchCertificate] = []
        for *_, cert in aged + young:
            if len(out) >= limit:
                break
            if cert.slot not in self._unchecked or self._check(cert.slot):
                out.append(cert)
        return out

    def check_payload(self, certs: list[BatchCertificate], limit: int) -> None:
        """InvalidBatchCertificateError unless ``certs`` may be a block's payload
        for this validator's prevote: at most ``limit``, slots distinct and not
        ordered yet, and each batch held here or its certificate valid.

        A held batch needs no certificate check: if every validator above 2/3
        that prevotes holds a batch, more than 1/3 honest ones hold it and serve
        it; if some checked its certificate, more than 2/3 stored it. Either way
        a decided block's batches can be fetched.
        """
        if len(certs) > limit:
            raise InvalidBatchCertificateError(
                f"{len(certs)} certificates in a block, limit {limit}"
            )
        seen: set[Slot] = set()
        for cert in certs:
            if cert.slot in seen or self._is_ordered(cert.slot):
                raise InvalidBatchCertificateError("a block orders a batch slot twice")
            seen.add(cert.slot)
            batch = self._batches.get(cert.digest)
            checked = self._certs.get(cert.slot) == cert and cert.slot not in self._unchecked
            if not checked and (batch is None or batch.slot != cert.slot):
                verify_batch_certificate(cert, self.validators, self.chain_id, self.epoch)

    def apply_block(self, certs: list[BatchCertificate]) -> list[bytes]:
        """Mark a decided block's certificates ordered; return its transactions.

        Every batch must be held (fetch :meth:`missing` first: LookupError
        otherwise, and nothing changes). The order is :func:`block_transactions`'.
        """
        absent = [c for c in certs if c.digest not in self._batches]
        if absent:
            raise LookupError(f"{len(absent)} certified batches are not held; fetch them first")
        txs = block_transactions([self._batches[c.digest] for c in certs])
        self.height += 1
        before = dict(self._floor)
        for cert in certs:
            self._ordered.add(cert.slot)
            self._unordered.pop(cert.slot, None)
            self._unchecked.discard(cert.slot)
            if cert.author == self.public_key:
                self._own.pop(cert.sequence, None)
            floor = self._floor.get(cert.author, 0)
            while (self.epoch, cert.author, floor) in self._ordered:
                self._retire((self.epoch, cert.author, floor))
                floor += 1
            self._floor[cert.author] = floor
        for tx in txs:
            order = self._pending_hashes.get(sha256(tx))
            if order is not None:
                self._drop(self._pending[order])
        if self.signer is not None:
            self.signer.retire(
                {
                    (self.epoch, author): f
                    for author, f in self._floor.items()
                    if f > before.get(author, 0)
                }
            )
        return txs

    def _retire(self, slot: Slot) -> None:
        """Forget an ordered slot below its author's floor: the floor alone now
        says it is ordered, and the block store keeps its transactions."""
        self._ordered.discard(slot)
        self._unchecked.discard(slot)
        self.voted.pop(slot, None)
        sealed = self._sealed.pop(slot, None)
        cert = self._certs.pop(slot, None)
        for digest in {sealed[0] if sealed else None, cert.digest if cert else None}:
            if digest is not None:
                self._batches.pop(digest, None)

    def floor(self, author: bytes) -> int:
        """``author``'s lowest sequence not ordered yet in this epoch."""
        return self._floor.get(author, 0)

    def unordered(self) -> list[BatchCertificate]:
        return self._unordered_certs()

    # Epochs.

    def leftovers(self) -> list[bytes]:
        """The transactions this validator still owes the chain: those of its own
        batches not ordered yet (sealed, certified or not; oldest slot first), then
        its pool in arrival order. At an epoch's end these are sealed again."""
        own = {seq: batch for seq, (batch, _) in self._own.items()}
        for slot, held in self._unordered.items():
            batch = self._batches.get(held.cert.digest)
            if slot[1] == self.public_key and batch is not None:
                own[slot[2]] = batch
        txs = [tx for seq in sorted(own) for tx in own[seq].txs]
        return [*txs, *(p.tx for p in self._pending.values())]

    def next_epoch(self, validators: ValidatorSet, epoch: int) -> tuple[DagMempool, list[bytes]]:
        """This validator's mempool for ``epoch`` under ``validators``, and the
        transactions shed to fit the leftovers into its pool (as :meth:`submit`).

        A certificate names its epoch's set, and blocks of a new epoch order only
        that epoch's certificates, so what the old epoch did not order is dropped:
        this validator's own unordered transactions (:meth:`leftovers`) go into
        the new pool to be sealed again, other authors reseal theirs. The new pool
        counts rounds from 0, so the starvation bound starts again at the boundary.
        The signer forgets the old epochs' slots. InvalidParameterError if
        ``epoch`` does not follow this one or this validator is not in the set
        (it then hands :meth:`leftovers` to a validator that is).
        """
        if epoch <= self.epoch:
            raise InvalidParameterError(f"epoch {epoch} does not follow {self.epoch}")
        if validators.power_of(self.public_key) == 0:
            raise InvalidParameterError("this validator is not in the next epoch's set")
        if self.signer is not None:
            self.signer.end_epoch(epoch)
        nxt = DagMempool(
            self.key, self.chain_id, validators, epoch, self.priority, self.params, self.signer
        )
        shed: list[bytes] = []
        for tx in self.leftovers():
            shed += nxt.submit(tx)
        return nxt, shed


def block_transactions(batches: Iterable[Batch]) -> list[bytes]:
    """A block's transactions: batches in block order, each in its order, every
    repeat of the same bytes after the first left out."""
    seen: set[bytes] = set()
    out: list[bytes] = []
    for batch in batches:
        for tx in batch.txs:
            h = sha256(tx)
            if h not in seen:
                seen.add(h)
                out.append(tx)
    return out
