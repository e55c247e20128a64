"""The DAG mempool in a validator: batches, votes and certificates over the network.

On a chain whose genesis says ``consensus.mempool = "dag"`` a validator does
not gossip its clients' transactions; every ``ROUND_S`` it hands the ready ones
of its mempool to its :class:`~focusflow.consensus.dag_mempool.DagMempool`,
seals what waits into a signed batch, and sends the batch to each validator
of the set as a ``dag_batch`` request, whose answer is that validator's
availability vote. Votes from more than 2/3 of the stake make the batch's
certificate, which is gossiped on ``dag_cert`` and forwarded by every
validator that accepts it. A validator holding a certificate without its batch
asks the signers for it (``dag_fetch``). Proposals then name certificates
(dag_values.py), and the proposer's uplink carries no transactions.

Every input is bounded before it is decoded (the batch, vote and certificate
decoders' own bounds) and checked before it is stored, voted for or
forwarded; a peer whose batch or certificate does not verify loses score.
An author resends a batch to the validators that have not voted for it, at
most ``SEND_ATTEMPTS`` times, so a validator that was down when the batch
went out still stores it and votes.

The state machine is not thread-safe and is used from the event loop (the
network) and from the consensus task's worker threads (proposing, judging and
committing blocks), so every call holds :attr:`DagHost.lock`. Calls that wait
for the network from a worker thread (fetching the batches of a proposal)
run their requests on the loop and wait at most ``FETCH_TIMEOUT_S``.

Ordering: a committed block's certificates are marked ordered from the value
consensus decided here (:meth:`DagHost.note_value`). A block that block sync
applied, whose value this validator never saw, leaves its certificates
unordered here; a later proposal of one of them is refused by the others, and
costs a round, not safety (docs/consensus.md §11.8).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from focusflow.chain.block import BlockRecord
from focusflow.chain.tx import Tx, decode_tx
from focusflow.consensus import ValidatorSet, encode_evidence
from focusflow.consensus.batch_signer import BatchSigner
from focusflow.consensus.batches import (
    Batch,
    BatchCertificate,
    BatchVote,
    decode_batch,
    decode_batch_certificate,
    decode_batch_vote,
    encode_batch,
    encode_batch_certificate,
    encode_batch_vote,
)
from focusflow.consensus.dag_mempool import DagMempool, DagParams, FetchRequest
from focusflow.consensus.errors import InvalidBatchCertificateError, InvalidBatchError
from focusflow.consensus.wal import WriteAheadLog
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.hashing import sha256
from focusflow.core.keys import PUBLIC_KEY_SIZE, KeyPair
from focusflow.net import EVIDENCE, Verdict
from focusflow.net.errors import InvalidMessageError, NetError
from focusflow.node.dag_values import MAX_BLOCK_CERTS, DagValue
from focusflow.node.evidence import hold_evidence

if TYPE_CHECKING:
    from focusflow.net import Node
    from focusflow.node.runtime import BlockEvent, NodeRuntime

log = logging.getLogger("focusflow.node")

#: Request: a batch for this validator to store; the answer is its vote.
BATCH_REQUEST = "dag_batch"
#: Request: a certified batch by slot and digest; the answer is the batch.
FETCH_REQUEST = "dag_fetch"
#: Gossip topic of batch certificates.
CERT_TOPIC = "dag_cert"
#: Seconds between DAG rounds: how long a transaction waits for its batch.
ROUND_S = 0.05
#: Seconds a proposal's missing batches may take to arrive before a prevote.
FETCH_TIMEOUT_S = 2.0
#: Times an author sends a batch to a validator that has not voted for it.
SEND_ATTEMPTS = 5
#: Seconds an author waits for one validator's vote.
VOTE_TIMEOUT_S = 2.0
#: Decided values whose certificates are remembered until their block commits.
KEEP_VALUES = 64
#: A fetch request's wire bound: [epoch, author, sequence, digest].
MAX_FETCH_BYTES = 128

#: The node's local DAG policy: batches a gossip frame carries comfortably.
NODE_DAG_PARAMS = DagParams(batch_txs=1024, batch_bytes=1 << 20)


def dag_log_path(wal_path: Path) -> Path:
    """The batch signer's log, beside the consensus WAL in the node's home
    (``consensus.wal`` -> ``consensus.dag.wal``)."""
    return wal_path.with_name(f"{wal_path.stem}.dag{wal_path.suffix or '.wal'}")


def epoch_of(height: int, epoch_blocks: int) -> int:
    """The epoch a height belongs to (valsets.epoch_heights' inverse)."""
    return 0 if epoch_blocks <= 0 else (height - 1) // epoch_blocks


@dataclass(frozen=True)
class Payload:
    """What a proposer orders: certificates and their batches, in block order."""

    certs: tuple[BatchCertificate, ...]
    batches: tuple[Batch, ...]


class DagHost:
    """One validator's DAG mempool on the network; see the module docstring."""

    def __init__(
        self,
        *,
        node: NodeRuntime,
        key: KeyPair,
        log_path: Path,
        run_soon: Callable[[Coroutine[Any, Any, None]], concurrent.futures.Future[None]],
        params: DagParams = NODE_DAG_PARAMS,
    ) -> None:
        """``log_path``: the batch signer's log (beside the consensus WAL);
        ``run_soon``: runs a coroutine on the node's loop from a worker thread
        (``ExtensionHost.run_soon``)."""
        self.node = node
        self.chain = node.chain
        self.key = key
        self.params = params
        self.run_soon = run_soon
        self.lock = threading.RLock()  # see the module docstring; never held across an await
        self.signer = BatchSigner(key, node.chain.chain_id, WriteAheadLog(log_path))
        self.net: Node | None = None
        self.dag: DagMempool | None = None
        #: Transactions handed to the DAG (by hash), until their block commits.
        self.handed: dict[bytes, Tx] = {}
        #: Certificates of decided values, by block hash, until the block commits.
        self.values: OrderedDict[bytes, tuple[BatchCertificate, ...]] = OrderedDict()
        #: Each sender's priority while its transactions wait in the DAG's pool.
        self.lanes: dict[bytes, float] = {}
        self.sent_batches = 0
        self.certified = 0
        self._task: asyncio.Task[None] | None = None
        self._asks: set[asyncio.Future[None]] = set()
        #: Hashes of the DAG's evidence handed to the chain's pool already.
        self._reported: set[bytes] = set()
        self.adopt(node.chain.height + 1, node.chain.validators)

    def status(self) -> dict[str, int]:
        """What an operator reads in ``GET /v1/status``: the epoch the DAG runs
        (-1: this validator is not in the set), transactions waiting to be sealed,
        own batches not yet certified, certificates held and not yet ordered,
        batches this validator sealed and certified since it started, and
        equivocations it found."""
        with self.lock:
            dag = self.dag
            if dag is None:
                return {
                    "epoch": -1,
                    "pool": 0,
                    "uncertified": 0,
                    "unordered": 0,
                    "sealed": self.sent_batches,
                    "certified": self.certified,
                    "evidence": len(self._reported),
                }
            return {
                "epoch": dag.epoch,
                "pool": len(dag),
                "uncertified": len(dag.resend()),
                "unordered": len(dag.unordered()),
                "sealed": self.sent_batches,
                "certified": self.certified,
                "evidence": len(self._reported),
            }

    @property
    def sealing(self) -> bool:
        """Whether this validator seals its clients' transactions (it is in the
        set of the running epoch); otherwise they go by gossip to those who do."""
        with self.lock:
            return self.dag is not None

    # --- epochs -----------------------------------------------------------------
    def adopt(self, height: int, vset: ValidatorSet) -> list[bytes]:
        """Run the DAG for ``height``'s epoch and set (a new epoch starts a new
        mempool, with this validator's unordered transactions carried over).
        Returns the transactions a validator that left the set still owed the
        chain (``leftovers``): the host gossips them to the validators that stay."""
        epoch = epoch_of(height, self.chain.params.epoch_blocks)
        with self.lock:
            dag = self.dag
            if dag is not None and dag.epoch == epoch:
                return []
            member = vset.power_of(self.key.public_key) > 0
            if dag is not None and member and epoch > dag.epoch:
                # Its own unordered transactions move with it (they stay handed).
                self.dag, shed = dag.next_epoch(vset, epoch)
                self._discard(shed)
            elif member:
                self.handed.clear()  # a new DAG holds none of them
                self.dag = DagMempool(
                    self.key,
                    self.chain.chain_id,
                    vset,
                    epoch,
                    self._priority,
                    self.params,
                    self.signer,
                )
            else:
                self.dag = None
                self.handed.clear()
                return [] if dag is None else dag.leftovers()
        return []

    def _priority(self, raw: bytes) -> float:
        """The chain mempool's priority, one per sender while its transactions
        wait here: the DAG seals equal priorities in arrival order, and the
        mempool hands a sender's transactions over in nonce order, so a later
        nonce never goes into a batch before an earlier one."""
        try:
            tx = decode_tx(raw, self.chain.params.max_tx_bytes)
        except (DecodeError, FocusflowError):
            return 0.0
        lane = self.lanes.get(tx.sender_address)
        return self.node.mempool.priority(tx) if lane is None else lane

    def _discard(self, shed: Sequence[bytes]) -> None:
        if not shed:
            return
        txs = [t for t in (self.handed.pop(sha256(raw), None) for raw in shed) if t is not None]
        self.node.discard(txs)

    # --- the network ---------------------------------------------------------------
    def attach(self, net: Node) -> None:
        """Serve batches and fetches, take certificates from gossip."""
        self.net = net
        net.register(BATCH_REQUEST, self.serve_batch)
        net.register(FETCH_REQUEST, self.serve_fetch)
        net.subscribe(CERT_TOPIC, self.on_cert)

    def start(self) -> None:
        """Start the rounds (on the node's loop)."""
        self._task = asyncio.create_task(self.run(), name="dag-rounds")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.signer.wal.close()

    async def run(self) -> None:
        """Every ROUND_S: hand the ready transactions over and seal a batch;
        after a restart, first send the batches the log holds uncertified."""
        with self.lock:
            resend = [] if self.dag is None else self.dag.resend()
        for batch in resend:
            self._spread(batch)
        while True:
            await asyncio.sleep(ROUND_S)
            try:
                batches = await asyncio.to_thread(self.seal)
            except Exception:
                log.exception("DAG round failed")
                continue
            for batch in batches:
                self._spread(batch)
            await self._fetch_held()
            await self.report_evidence()

    def seal(self) -> list[Batch]:
        """Hand the mempool's ready transactions to the DAG; seal what waits
        (a worker thread: the mempool and the batch signer's fsync block)."""
        ready = self.node.reap()
        with self.lock:
            dag = self.dag
            if dag is None:
                return []
            shed: list[bytes] = []
            if not len(dag) or len(self.lanes) > self.params.max_pending:
                self.lanes.clear()
            for tx in ready:
                # Still pending: a block may have committed it since the reap
                # (its commit updates the mempool before on_block forgets it).
                if tx.hash not in self.handed and self.node.is_pending(tx.hash):
                    self.handed[tx.hash] = tx
                    sender = tx.sender_address
                    if sender not in self.lanes:
                        self.lanes[sender] = self.node.mempool.priority(tx)
                    shed += dag.submit(tx.encoded)
            self._discard(shed)
            batches: list[Batch] = []
            batch = dag.tick()
            while batch is not None:
                batches.append(batch)
                batch = dag.seal() if dag.ready() else None
            self.sent_batches += len(batches)
            for batch in batches:
                # Our own vote first: the author stores its batch like any voter.
                vote = dag.on_batch(batch)
                if vote is not None:
                    self._on_vote_locked(dag, vote)
        return batches

    def _spread(self, batch: Batch) -> None:
        """Send ``batch`` to every other validator of the set for its vote."""
        if self.net is None:
            return
        with self.lock:
            dag = self.dag
            peers = [] if dag is None else [v.public_key for v in dag.validators.validators]
        raw = encode_batch(batch)
        for peer in peers:
            if peer != self.key.public_key:
                task = asyncio.ensure_future(self._ask_vote(peer, batch, raw))
                self._asks.add(task)
                task.add_done_callback(self._asks.discard)

    async def _ask_vote(self, peer: bytes, batch: Batch, raw: bytes) -> None:
        assert self.net is not None
        for attempt in range(SEND_ATTEMPTS):
            if not self._wants_votes(batch):
                return
            try:
                answer = await self.net.request(
                    peer, BATCH_REQUEST, raw, VOTE_TIMEOUT_S, blame_timeout=False
                )
                vote = decode_batch_vote(answer)
            except (NetError, DecodeError) as exc:
                log.debug(
                    "no batch vote",
                    extra={"fields": {"attempt": attempt, "error": str(exc)}},
                )
                await asyncio.sleep(ROUND_S * 2**attempt)
                continue
            cert = None
            with self.lock:
                if self.dag is not None and vote.voter == peer:
                    try:
                        cert = self._on_vote_locked(self.dag, vote)
                    except InvalidBatchError:
                        self.net.report(peer, why="invalid batch vote")
            if cert is not None:
                await self._publish_cert(cert)
            return

    def _wants_votes(self, batch: Batch) -> bool:
        with self.lock:
            dag = self.dag
            return dag is not None and batch in dag.resend()

    def _on_vote_locked(self, dag: DagMempool, vote: BatchVote) -> BatchCertificate | None:
        cert = dag.on_vote(vote)
        if cert is not None:
            self.certified += 1
            if self.net is None:
                return None  # one validator: nobody to tell
        return cert

    async def _publish_cert(self, cert: BatchCertificate) -> None:
        assert self.net is not None
        try:
            await self.net.publish(CERT_TOPIC, encode_batch_certificate(cert))
        except NetError as exc:
            log.warning("certificate not published", extra={"fields": {"error": str(exc)}})

    async def serve_batch(self, peer: bytes, payload: bytes) -> bytes:
        """A batch from its author: stored, and answered with this validator's vote."""
        try:
            batch = decode_batch(payload)
        except DecodeError as exc:
            raise InvalidMessageError(str(exc)) from None
        if batch.author != peer:
            raise InvalidMessageError("a batch comes from its author")
        try:
            vote = await asyncio.to_thread(self._store_batch, batch)
        except InvalidBatchError as exc:
            raise InvalidMessageError(str(exc)) from None
        finally:
            await self.report_evidence()
        if vote is None:
            raise BatchRefusedError("no vote for this batch here (slot, window or epoch)")
        return encode_batch_vote(vote)

    def _store_batch(self, batch: Batch) -> BatchVote | None:
        with self.lock:  # a worker thread: the vote's fsync blocks
            return None if self.dag is None else self.dag.on_batch(batch)

    def _hold_cert(self, cert: BatchCertificate) -> bool | None:
        """Hold a certificate: True if new here, None if of no epoch run here."""
        with self.lock:
            if self.dag is None or cert.epoch != self.dag.epoch:
                return None
            return self.dag.on_certificate(cert)

    async def serve_fetch(self, peer: bytes, payload: bytes) -> bytes:
        """A certified batch this validator holds, by slot and digest."""
        request = decode_fetch(payload)
        with self.lock:
            batch = None if self.dag is None else self.dag.serve_fetch(request)
        if batch is None:
            raise BatchRefusedError("batch not held here")
        return encode_batch(batch)

    async def on_cert(self, sender: bytes, payload: bytes) -> Verdict:
        """A gossiped certificate: held (forwarded) if new and valid here."""
        try:
            cert = decode_batch_certificate(payload)
        except DecodeError:
            return Verdict.REJECT
        try:
            new = await asyncio.to_thread(self._hold_cert, cert)
        except InvalidBatchCertificateError:
            return Verdict.REJECT
        finally:
            await self.report_evidence()
        return Verdict.ACCEPT if new else Verdict.IGNORE

    async def report_evidence(self) -> None:
        """Hand what the DAG found signed twice (an author's two batches for one
        slot, a voter in two certificates of one slot) to the chain's evidence
        pool, and gossip what is new there: the next proposer includes it and
        the bank slashes it like a double vote."""
        with self.lock:
            found = [] if self.dag is None else list(self.dag.evidence)
        for evidence in found:
            key = evidence.hash()
            if key in self._reported:
                continue
            self._reported.add(key)
            if hold_evidence(self.chain, evidence) and self.net is not None:
                try:
                    await self.net.publish(EVIDENCE, encode_evidence(evidence))
                except NetError as exc:
                    log.warning("evidence not published", extra={"fields": {"error": str(exc)}})

    async def _fetch_held(self) -> None:
        """Fetch the batches of held certificates this validator lacks."""
        with self.lock:
            missing = [] if self.dag is None else self.dag.missing()
        if missing:
            await self.fetch(missing)

    async def fetch(self, requests: Sequence[FetchRequest]) -> None:
        """Ask each batch's signers in turn until one serves a batch that the
        certificate names."""
        if self.net is None:
            return
        for request in requests:
            for peer in request.peers:
                try:
                    raw = await self.net.request(
                        peer, FETCH_REQUEST, encode_fetch(request), FETCH_TIMEOUT_S
                    )
                    batch = decode_batch(raw)
                    with self.lock:
                        if self.dag is not None and self.dag.on_fetched(batch):
                            break
                except (NetError, DecodeError, InvalidBatchError):
                    continue

    # --- blocks ------------------------------------------------------------------------
    def payload(self) -> Payload:
        """The certificates the next block orders (a worker thread): those whose
        batches are held, within the block's limits; one author's batches in
        their sequence order, so one sender's nonces stay in order."""
        params = self.chain.params
        with self.lock:
            dag = self.dag
            if dag is None:
                return Payload((), ())
            chosen: list[tuple[BatchCertificate, Batch]] = []
            txs = size = 0
            for cert in dag.payload_for_block(MAX_BLOCK_CERTS):
                batch = dag.batch(cert.digest)
                if batch is None:
                    continue
                bytes_ = sum(len(tx) for tx in batch.txs)
                if txs + len(batch.txs) > params.max_block_txs:
                    continue
                if size + bytes_ > params.max_block_bytes:
                    continue
                txs, size = txs + len(batch.txs), size + bytes_
                chosen.append((cert, batch))
            floors = {cert.author: dag.floor(cert.author) for cert, _ in chosen}
        # Each author's batches from its floor up without a gap: a batch whose
        # predecessor is not ordered yet waits for it, or one sender's later
        # nonces would run before its earlier ones and fail.
        by_author: dict[bytes, list[tuple[BatchCertificate, Batch]]] = {}
        for pair in chosen:
            by_author.setdefault(pair[0].author, []).append(pair)
        for author, pairs in by_author.items():
            pairs.sort(key=lambda pair: pair[0].sequence)
            run = 0
            while run < len(pairs) and pairs[run][0].sequence == floors[author] + run:
                run += 1
            del pairs[run:]
        ordered = [by_author[cert.author].pop(0) for cert, _ in chosen if by_author[cert.author]]
        return Payload(tuple(c for c, _ in ordered), tuple(b for _, b in ordered))

    def batches_for(self, value: DagValue) -> list[Batch]:
        """The batches a proposal names, fetched where missing (a worker
        thread; at most FETCH_TIMEOUT_S). InvalidBatchCertificateError if a
        certificate does not verify or the block may not order it;
        LookupError if a batch could not be had."""
        with self.lock:
            dag = self.dag
            if dag is None:
                raise LookupError("this node runs no DAG mempool (not a validator of the set)")
            for cert in value.certs:
                if cert.epoch != dag.epoch:
                    raise InvalidBatchCertificateError("a certificate of another epoch")
                dag.on_certificate(cert)
            dag.check_payload(list(value.certs), MAX_BLOCK_CERTS)
            missing = dag.missing(value.certs)
        if missing and self.net is not None:
            started = time.monotonic()
            future = self.run_soon(self.fetch(missing))
            try:
                future.result(FETCH_TIMEOUT_S)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError) as exc:
                log.info("batches not fetched in time", extra={"fields": {"error": repr(exc)}})
            log.debug(
                "fetched a proposal's batches",
                extra={
                    "fields": {
                        "batches": len(missing),
                        "ms": round((time.monotonic() - started) * 1000, 1),
                    }
                },
            )
        with self.lock:
            found = [dag.batch(c.digest) for c in value.certs]
        if any(b is None for b in found):
            raise LookupError("a batch the proposal names is not held here")
        return [b for b in found if b is not None]

    def note_value(self, value: DagValue) -> None:
        """Remember the certificates of a value about to be committed."""
        with self.lock:
            self.values[value.block_hash] = value.certs
            while len(self.values) > KEEP_VALUES:
                self.values.popitem(last=False)

    def on_block(self, event: BlockEvent) -> None:
        """A block committed: mark its certificates ordered, forget its
        transactions' handing over."""
        record: BlockRecord = event.result.record
        with self.lock:
            certs = self.values.pop(record.block.hash, None)
            dag = self.dag
            if dag is not None and certs is None:
                certs = self._certs_within(dag, record.block.txs)
            if dag is not None and certs:
                try:
                    dag.apply_block(list(certs))
                except LookupError:
                    log.warning(
                        "a committed block's batch is not held here",
                        extra={"fields": {"height": record.block.height}},
                    )
            if len(self.handed) > 4 * self.params.max_pending:
                self.handed = {h: t for h, t in self.handed.items() if self.node.is_pending(h)}
            for raw in record.block.txs:
                self.handed.pop(sha256(raw), None)

    @staticmethod
    def _certs_within(dag: DagMempool, txs: Sequence[bytes]) -> tuple[BatchCertificate, ...]:
        """For a block whose value this validator never saw (block sync applied
        it): the held certificates whose batches' transactions all lie in it,
        each author's from its floor up. A guess that keeps the batches it
        holds from being proposed again; a certificate it misses costs a later
        proposal a round, not safety."""
        if not txs:
            return ()
        inside = {sha256(tx) for tx in txs}
        found: list[BatchCertificate] = []
        for cert in sorted(dag.unordered(), key=lambda c: (c.author, c.sequence)):
            batch = dag.batch(cert.digest)
            if batch is None or not batch.txs:
                continue
            if all(sha256(tx) in inside for tx in batch.txs):
                found.append(cert)
        return tuple(found)


class BatchRefusedError(FocusflowError):
    """A batch request this validator will not answer (no vote, not held)."""

    code = "batch_refused"


def encode_fetch(request: FetchRequest) -> bytes:
    epoch, author, sequence = request.slot
    return encode([epoch, author, sequence, request.digest])


def decode_fetch(payload: bytes) -> FetchRequest:
    """A fetch request's slot and digest; InvalidMessageError otherwise."""
    if len(payload) > MAX_FETCH_BYTES:
        raise InvalidMessageError("fetch request too large")
    try:
        value = decode(payload, "fetch request")
    except DecodeError as exc:
        raise InvalidMessageError(str(exc)) from None
    ok = (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value[::2])
        and isinstance(value[1], bytes)
        and len(value[1]) == PUBLIC_KEY_SIZE
        and isinstance(value[3], bytes)
        and len(value[3]) == 32
    )
    if not ok:
        raise InvalidMessageError("malformed fetch request: [epoch, author, sequence, digest]")
    return FetchRequest((value[0], value[1], value[2]), value[3], ())


__all__ = [
    "BATCH_REQUEST",
    "CERT_TOPIC",
    "FETCH_REQUEST",
    "BatchRefusedError",
    "DagHost",
    "Payload",
    "dag_log_path",
    "decode_fetch",
    "encode_fetch",
    "epoch_of",
]
