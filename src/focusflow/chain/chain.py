"""The block pipeline: from transactions to one committed block.

:class:`Chain` binds a store, the modules, the ante step and the focus state.
Each block goes through the same steps whether this node made it or received
it (the pipeline of docs/architecture.md §5):

    check the block's duplicate-vote evidence (evidence_pool.py)
    -> execute transactions (modules' write-sets merge into one pending state)
    -> end of block (slashing the proven offences, matured unbonding, fee payout,
       the next validator set at epoch boundaries and after a jailing: valsets.py)
    -> apply the block's edge deltas to the focus engine (incremental; at a
       focus upgrade's height, a new engine running the new algorithm solves
       cold: focus_upgrade.py)
    -> quantise focus, commit its root under /graph/focus
    -> update the sparse Merkle tree over the changed keys: the state root
    -> erasure code the block's transactions into its data square: the data root
    -> persist block, receipts, tree nodes and state in ONE LMDB transaction
    -> hand the data square to the square listeners (the node's DA store)

Under consensus the steps are split so that a validator executes a block
before it votes and writes only what was decided:

* :meth:`Chain.propose` (the proposer) executes transactions from the mempool,
  leaving out those that cannot be included, takes the evidence pool's
  still-valid evidence (:attr:`Chain.evidence`), and returns a :class:`Pending`:
  the block with every root, its write-set and tree nodes, in memory;
* :meth:`Chain.validate` (every validator, and block sync) re-executes a
  received block and refuses it (BlockError) unless every transaction is
  includable, every piece of evidence proves an offence not punished yet (once
  per block), and its state, focus and data roots equal the header's; it checks
  the data root first, before executing anything (da_commit.py), and the
  parent's certificate the block carries (``last_commit``);
* :meth:`Chain.commit` persists a pending block with the consensus
  ``CommitCertificate`` that decided it, in ONE LMDB transaction;
* :meth:`Chain.abandon` drops a pending block another value won against.

:attr:`Chain.focus` is always the head's focus state. A proposed or validated
block with edge deltas advances its own copy of it, which its :class:`Pending`
keeps (``Pending.focus``) and :meth:`commit` makes the head's: competing
proposals at one height (a round change, a byzantine proposer that signs two
blocks) each cost one execution and one copy, and switching between them
replays nothing (before, every switch rebuilt the engine from the focus
checkpoint and the blocks after it). At most MAX_PENDING_FOCUS such copies are
kept per height (the oldest is dropped, and its block re-executes if it is
decided after all). :meth:`produce_block` and :meth:`apply_block` commit
at once, so they advance the head's state in place, without a copy; a
certified block whose roots differ (a fault, never an honest network's case)
rebuilds it as on a restart. :meth:`produce_block` (propose + a
certificate signed by this node alone, without consensus: tests and
benchmarks) and :meth:`apply_block` (validate + commit with the record's
certificate: followers, replay) remain.
:meth:`Chain.replay` rebuilds a whole chain from stored blocks.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from focusflow.chain.block import (
    MAX_TIME_MS,
    PROPOSAL_BROTLI_QUALITY,
    ZERO_HASH,
    Block,
    BlockRecord,
    Header,
    certificate_hash,
    evidence_root,
    sign_certificate,
    txs_root,
)
from focusflow.chain.checkpoint_writer import CheckpointWriter
from focusflow.chain.da_commit import block_square
from focusflow.chain.errors import (
    BlockError,
    BlockTimeError,
    EvidenceError,
    TxError,
    UnknownBlockError,
    UpgradeNeededError,
    WrongProposerError,
)
from focusflow.chain.evidence_pool import EvidencePool, block_offences
from focusflow.chain.execute import Receipt, Rejected, execute_block
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.focus_checkpoint import (
    CHECKPOINT_FILE,
    CheckpointUnusableError,
    open_checkpoint,
    write_checkpoint,
)
from focusflow.chain.focus_commit import FocusState, engine_identity
from focusflow.chain.focus_state_arrays import Expected, committed_particles
from focusflow.chain.focus_state_format import BlockIdentity
from focusflow.chain.focus_upgrade import (
    UPGRADES_KEY,
    Schedule,
    decode_decided,
    focus_in_force,
    genesis_schedule,
    merge_schedule,
    runnable_params,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.governed import governed_params
from focusflow.chain.karma import karma_fixed
from focusflow.chain.module import Ante, BlockContext, BlockRoom, Deltas, Handler, Module
from focusflow.chain.params import ChainParams
from focusflow.chain.scheduler import Scheduler
from focusflow.chain.snapshot import SNAPSHOT_FOCUS_FILE
from focusflow.chain.state import PendingState
from focusflow.chain.tx import Tx, decode_tx
from focusflow.chain.valsets import VALSET_PREFIX, ValidatorSets
from focusflow.consensus.certificate import CommitCertificate, verify_certificate
from focusflow.consensus.errors import InvalidCertificateError
from focusflow.consensus.evidence import Evidence, decode_evidence, encode_evidence
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError, InvalidParameterError, StoreError
from focusflow.core.keys import KeyPair
from focusflow.da import ExtendedSquare
from focusflow.focus.params import FocusParams
from focusflow.store import EMPTY, Commit, Reader, Store, height_key
from focusflow.store import update as smt_update

PARAMS_KEY = b"/kv/params"
#: Index key prefix of a block's events (``+ height, 8 bytes``): CBOR list of dicts.
BLOCK_EVENTS_PREFIX = b"e"
#: A focus checkpoint (focus_checkpoint.py) is written at :meth:`Chain.close`
#: and once CHECKPOINT_WORK_S seconds of focus work (what a restart would
#: replay) have passed since the last one, and no sooner than
#: CHECKPOINT_COST_RATIO times the last write's duration, so that writing costs
#: at most a tenth of the work it saves on a graph whose state is large. The
#: commit that makes one due does not write it: a forked child does
#: (checkpoint_writer.py), and the commit waits only for the fork.
CHECKPOINT_WORK_S = 30.0
CHECKPOINT_COST_RATIO = 10.0
#: How far ahead of a validator's clock a proposal's time may be (ms) for it
#: to prevote the proposal: a proposer cannot push block time into the future
#: (the next block's time must be larger), and clocks of honest validators
#: that differ by less than this still accept each other's blocks. A local
#: rule, not a consensus one: blocks replayed from the store or synced with
#: a certificate are never refused for their time against the local clock.
MAX_CLOCK_DRIFT_MS = 10_000
#: Pending blocks at one height that keep their own advanced focus state (a
#: copy of the head's): a byzantine proposer signs at most
#: MAX_PROPOSALS_PER_ROUND values a round that consensus keeps, so this bounds
#: memory at a few copies of the focus state whatever it sends.
MAX_PENDING_FOCUS = 4

log = logging.getLogger("focusflow.chain")


class _FocusMismatchError(Exception):
    """A replayed block's focus root differs from the stored header's."""


@dataclass(eq=False)
class Pending:
    """A block executed in memory and not committed: see :meth:`Chain.propose`."""

    #: The block, its edge deltas and the parent's certificate (no commit yet).
    record: BlockRecord
    receipts: list[Receipt]
    rejected: list[Rejected]
    writes: dict[bytes, bytes | None]
    nodes: dict[bytes, bytes]
    root: bytes
    square: ExtendedSquare
    timings: dict[str, float]
    #: The head this block extends.
    parent: bytes
    #: Block-level events (slashing), stored with the block under ``b"e" + height``.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The validator set of the next height if this block changes it.
    next_validators: ValidatorSet | None = None
    #: The focus state after this block (a block with edge deltas), which
    #: :meth:`Chain.commit` makes the head's; None once dropped (abandoned, or
    #: beyond MAX_PENDING_FOCUS): the block must be executed again.
    focus: FocusState | None = field(default=None, repr=False)
    #: Whether this block changes the focus state: it has edge deltas, or its
    #: height is a focus upgrade's (its state is then in ``focus``).
    moves_focus: bool = False

    @property
    def block(self) -> Block:
        return self.record.block

    @property
    def height(self) -> int:
        return self.record.block.height

    @property
    def hash(self) -> bytes:
        return self.record.block.hash

    def proposal_value(self) -> bytes:
        """What a proposal carries: the block and the parent's certificate (no deltas:
        validators re-execute)."""
        record = BlockRecord(self.record.block, None, Deltas(), self.record.last_commit)
        return record.encode(PROPOSAL_BROTLI_QUALITY)


@dataclass
class BlockResult:
    record: BlockRecord
    receipts: list[Receipt]
    rejected: list[Rejected]
    timings: dict[str, float]
    #: Block-level events: ``{"type": "slash", ...}`` per punished offence.
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def block(self) -> Block:
        return self.record.block


class Chain:
    """A node's chain state machine over one store; see the module docstring."""

    #: The head block's header: genesis's on a fresh store, else the stored
    #: head's (set when the store is opened, by _commit_genesis or _restore).
    head: Header

    def __init__(
        self,
        store: Store,
        genesis: Genesis,
        modules: Sequence[Module],
        ante: Ante,
        *,
        validator_key: KeyPair | None = None,
    ) -> None:
        self.store = store
        self.genesis = genesis
        self.params = genesis.params
        self.chain_id = genesis.chain_id
        self.modules = tuple(modules)
        self.ante = ante
        self.validator_key = validator_key
        self.handlers: dict[str, Handler] = {}
        for module in self.modules:
            for mtype, handler in module.handlers().items():
                if mtype in self.handlers:
                    raise ValueError(f"message type {mtype!r} is claimed by two modules")
                self.handlers[mtype] = handler
        #: The modules that meter a resource of the whole block (BlockRoom).
        self.rooms: tuple[BlockRoom, ...] = tuple(
            m for m in self.modules if isinstance(m, BlockRoom)
        )
        #: Every recorded validator set by first height (chain/valsets.py).
        self.valsets = ValidatorSets([(1, genesis.validator_set())])
        self._set_validators(self.valsets.at(1))
        #: Verified duplicate-vote evidence waiting for a block (:meth:`add_evidence`).
        self.evidence = EvidencePool(self.chain_id, self._validators_at, self.params)
        #: Runs a block's WASM transactions ahead on a pool of threads and merges
        #: their write-sets in block order (chain/scheduler.py): the serial
        #: result, bit for bit, sooner.
        self.scheduler = Scheduler()
        #: (head hash, every neuron's karma at it): ``_parent_karma``'s cache.
        self._karma: tuple[bytes, np.ndarray] | None = None
        self._karma_lock = threading.Lock()
        self.focus = FocusState(self.params.focus)
        #: The focus upgrade schedule in force (focus_upgrade.py): the genesis's,
        #: with what ``focus.upgrade`` decided on chain; the head's state's.
        self.focus_schedule: Schedule = genesis_schedule(self.params.focus_upgrades)
        self._upgrade_logged = 0
        #: The focus checkpoint's file, beside the store's own.
        self.checkpoint_path = Path(store.path) / CHECKPOINT_FILE
        #: Writes it, in a forked child where it can (its counts are metrics).
        self.checkpoints = CheckpointWriter(self.checkpoint_path)
        #: The height of the checkpoint the last restore began at (None: it
        #: replayed every block).
        self.restored_from: int | None = None
        self._checkpoint_work = 0.0
        #: The certificate of the head block (None at genesis).
        self.last_certificate: CommitCertificate | None = None
        #: Pending blocks of the next height holding their own focus state,
        #: oldest first (at most MAX_PENDING_FOCUS).
        self._focus_pending: list[Pending] = []
        #: Called as ``listener(height, square)`` with each committed block's
        #: extended data square (the node's square cache, node.da_store.DAStore,
        #: registers itself here).
        self.square_listeners: list[Callable[[int, ExtendedSquare], None]] = []
        #: The height this store began at: 0, or a state-sync snapshot's
        #: (chain/snapshot.py): no blocks below it, and its focus state comes
        #: from the snapshot's copy beside the store (SNAPSHOT_FOCUS_FILE).
        self.base = 0
        with store.reader() as r:
            fresh = r.block(0) is None and r.base == 0
            stored_genesis = r.meta(b"genesis")
        if fresh:
            self._commit_genesis()
        elif stored_genesis != genesis.hash:
            raise StoreError(
                f"the store at {store.path} belongs to another genesis (or was written by a "
                "focusflow version with another block format): start from a new --home"
            )
        else:
            self._restore()

    # --- reading -------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.head.height

    def validators_at(self, height: int) -> ValidatorSet:
        """Members and powers of the set that decides ``height`` (1 .. head + 1)."""
        if not 1 <= height <= self.height + 1:
            raise UnknownBlockError(f"height {height} is outside 1..{self.height + 1}")
        return self.valsets.at(height)

    def _validators_at(self, height: int) -> ValidatorSet:
        return self.valsets.at(height)

    @property
    def upgrade_needed(self) -> UpgradeNeededError | None:
        """Why this node cannot process the next block (its height switches to a
        focus algorithm this code does not implement), or None."""
        try:
            self._focus_upgrade(self.height + 1)
        except UpgradeNeededError as exc:
            return exc
        return None

    def _focus_upgrade(self, height: int) -> FocusParams | None:
        """The focus parameters from block ``height`` on if a focus upgrade
        takes effect there (None otherwise); UpgradeNeededError, logged once,
        if this node cannot run them."""
        if height not in self.focus_schedule:
            return None
        focus = focus_in_force(self.params.focus, self.focus_schedule, height)
        try:
            return runnable_params(focus)
        except InvalidParameterError as exc:
            error = UpgradeNeededError(
                f"UPGRADE NEEDED at height {height}: the chain's focus algorithm changes there "
                f"({self.focus_schedule[height]!r} over the previous one), and this focusflow "
                f"cannot run it ({exc.message}): install a version that does",
                height,
            )
        if self._upgrade_logged != height:
            self._upgrade_logged = height
            log.error(
                "upgrade needed: this node stops before the block",
                extra={"fields": {"height": height, "reason": error.message}},
            )
        raise error

    def _load_schedule(self, get: Callable[[bytes], bytes | None]) -> None:
        """The schedule in force: the genesis's and the committed decisions."""
        decided = decode_decided(get(UPGRADES_KEY))
        self.focus_schedule = merge_schedule(genesis_schedule(self.params.focus_upgrades), decided)

    def _set_validators(self, vset: ValidatorSet) -> None:
        """The set of the next height (head + 1), with its proposer priorities."""
        self.validators = vset
        self.validators_hash = vset.hash()
        self._proposers = {v.address for v in vset.validators}

    def reader(self) -> AbstractContextManager[Reader]:
        return self.store.reader()

    def block_record(self, height: int) -> BlockRecord | None:
        with self.store.reader() as r:
            raw = r.block(height)
        return None if raw is None else BlockRecord.decode(raw)

    def records(self, start: int = 0) -> Iterator[BlockRecord]:
        for h in range(start, self.height + 1):
            record = self.block_record(h)
            if record is None:
                raise StoreError(f"block {h} is missing from the store")
            yield record

    def add_evidence(self, evidence: Evidence) -> bool:
        """Verify ``evidence`` against the head's state and hold it for a block.

        False if its offence is held already; EvidenceError if it cannot be
        punished (see evidence_pool.py), EvidencePoolFullError if the pool is full.
        """
        with self.store.reader() as r:
            return self.evidence.add(evidence, self.height, r)

    # --- producing and following: propose / validate / commit / abandon ------
    def propose(
        self,
        txs: Sequence[Tx | bytes],
        time_ms: int | None = None,
        *,
        verified: bool = False,
    ) -> Pending:
        """Execute the next block from ``txs`` (in order, skipping bad ones), in memory.

        Nothing is written: the returned :class:`Pending` holds the block (every
        root filled in), its write-set, tree nodes and focus state.
        ``verified`` says signatures were checked already.
        """
        return self._propose(txs, time_ms, verified, in_place=False)

    def _propose(
        self, txs: Sequence[Tx | bytes], time_ms: int | None, verified: bool, in_place: bool
    ) -> Pending:
        if self.validator_key is None:
            raise BlockError("this node has no validator key and cannot produce blocks")
        t0 = time.perf_counter()
        decoded: list[Tx] = []
        for tx in txs:
            if isinstance(tx, Tx):
                decoded.append(tx)
                continue
            try:
                decoded.append(decode_tx(tx, self.params.max_tx_bytes))
            except (TxError, DecodeError):
                continue
        self._focus_upgrade(self.height + 1)
        if time_ms is None:
            time_ms = max(int(time.time() * 1000), self.head.time_ms + 1)
        self._check_time(self.height + 1, time_ms, None)
        proposer = self.validator_key.address_raw
        ctx, included, receipts, rejected, evidence = self._execute(
            self.height + 1,
            time_ms,
            proposer,
            decoded,
            verified,
            self.evidence.pending(),
            strict=False,
        )
        return self._build(ctx, included, receipts, rejected, evidence, None, t0, in_place=in_place)

    def validate(
        self,
        record: BlockRecord | bytes,
        *,
        now_ms: int | None = None,
        proposer: bytes | None = None,
    ) -> Pending:
        """Re-execute a block made elsewhere; BlockError unless it follows our head
        and every root (state, focus, data) equals ours.

        The certificate of the block itself is not checked here (a proposal has
        none yet; see :meth:`commit`); the parent's certificate it carries
        (``last_commit``) is. A refused block leaves the chain as it was.

        What only a validator judging a fresh proposal for its prevote knows:
        ``now_ms``, its clock (the block's time may be at most
        MAX_CLOCK_DRIFT_MS ahead of it), and ``proposer``, the 20-byte address
        of the round's proposer, which must be the header's (the chain alone
        cannot tell which round made a block, so without it any validator of
        the set is accepted). Replay and block sync pass neither.
        """
        return self._validate(record, now_ms, proposer, in_place=False)

    def _validate(  # noqa: C901 - one check per header field, each its own refusal
        self,
        record: BlockRecord | bytes,
        now_ms: int | None,
        proposer: bytes | None,
        *,
        in_place: bool,
    ) -> Pending:
        t0 = time.perf_counter()
        if isinstance(record, bytes):
            try:
                record = BlockRecord.decode(record)
            except DecodeError as exc:
                raise BlockError(f"undecodable block: {exc}") from None
        header = record.block.header
        head = self.head
        if header.chain_id != self.chain_id:
            raise BlockError(f"block for chain {header.chain_id!r}, not {self.chain_id!r}")
        if header.height != head.height + 1:
            raise BlockError(f"block height {header.height}, expected {head.height + 1}")
        if header.parent != head.hash:
            raise BlockError(f"block {header.height} does not extend our head")
        self._focus_upgrade(header.height)
        self._check_time(header.height, header.time_ms, now_ms)
        if header.txs_root != txs_root(record.block.txs):
            raise BlockError(f"block {header.height} txs_root does not match its transactions")
        if header.evidence_root != evidence_root(record.block.evidence):
            raise BlockError(f"block {header.height} evidence_root does not match its evidence")
        evidence = self._decode_evidence(record.block)
        if header.validators_hash != self.validators_hash:
            raise BlockError(f"block {header.height} names another validator set")
        if header.proposer and header.proposer not in self._proposers:
            raise WrongProposerError(f"block {header.height} proposer is not a validator")
        if proposer is not None and header.proposer != proposer:
            raise WrongProposerError(
                f"block {header.height} names proposer {header.proposer.hex()[:12]}, "
                f"not the round's proposer {proposer.hex()[:12]}"
            )
        self._check_last_commit(record)
        t_da = time.perf_counter()
        square = block_square(record.block.txs)
        if square.data_root() != header.data_root:
            raise BlockError(
                f"block {header.height} data_root does not match its transactions' data square "
                f"({square.data_root().hex()[:12]} vs {header.data_root.hex()[:12]})"
            )
        da_seconds = time.perf_counter() - t_da
        try:
            txs = [decode_tx(t, self.params.max_tx_bytes) for t in record.block.txs]
        except (TxError, DecodeError) as exc:
            raise BlockError(f"block {header.height} carries a bad transaction: {exc}") from None
        try:
            ctx, included, receipts, _, evidence = self._execute(
                header.height, header.time_ms, header.proposer, txs, False, evidence, strict=True
            )
        except TxError as exc:
            raise BlockError(f"block {header.height}: {exc.code}: {exc.message}") from None
        try:
            return self._build(
                ctx, included, receipts, [], evidence, record, t0, square, da_seconds, in_place
            )
        except BlockError:
            if in_place and (ctx.deltas or header.height in self.focus_schedule):
                self._rebuild_focus()
            raise

    def commit(self, pending: Pending, certificate: CommitCertificate) -> BlockResult:
        """Persist a proposed or validated block with the certificate that decided it.

        One LMDB transaction. BlockError if the certificate does not prove the
        block under our validator set, or if ``pending`` is stale (our head moved,
        or another block advanced the focus engine since: validate it again).
        """
        t0 = time.perf_counter()
        block = pending.record.block
        if pending.parent != self.head.hash or block.height != self.height + 1:
            raise BlockError(f"block {block.height} no longer extends our head")
        if pending.moves_focus and pending.focus is None:
            raise BlockError(
                f"block {block.height}: its focus state was dropped (abandoned, or more than "
                f"MAX_PENDING_FOCUS={MAX_PENDING_FOCUS} blocks executed since): validate it again"
            )
        self._check_certificate(certificate, block)
        record = replace(pending.record, commit=certificate)
        index = {b"b" + block.hash: height_key(block.height)}
        for i, receipt in enumerate(pending.receipts):
            index[b"t" + receipt.tx_hash] = receipt.encode(block.height, i)
        if pending.events:
            index[BLOCK_EVENTS_PREFIX + height_key(block.height)] = encode(pending.events)
        self.store.commit(
            Commit(
                block.height,
                pending.writes,
                pending.nodes,
                pending.root,
                record.encode(),
                index,
                {},
            )
        )
        self.head = block.header
        self.last_certificate = certificate
        if pending.focus is not None:
            self.focus = pending.focus
        if UPGRADES_KEY in pending.writes:
            self._load_schedule(pending.writes.get)
        for other in self._focus_pending:
            other.focus = None  # stale: it extends the old head
        self._focus_pending.clear()
        if pending.next_validators is not None:
            self.valsets.add(block.height + 1, pending.next_validators)
            self._set_validators(pending.next_validators)
        else:
            self._set_validators(self.validators.next_height())
        with self.store.reader() as r:
            self.evidence.update(block.height, r)
        t_checkpoint = time.perf_counter()
        if pending.record.deltas:
            self._maybe_checkpoint()
        t_end = time.perf_counter()
        for listener in self.square_listeners:
            listener(block.height, pending.square)
        timings = dict(pending.timings)
        # What a checkpoint due at this block held the commit (the fork).
        timings["checkpoint"] = t_end - t_checkpoint
        timings["persist"] = timings.get("persist", 0.0) + t_end - t0
        timings["total"] = timings.get("total", 0.0) + t_end - t0
        return BlockResult(record, pending.receipts, pending.rejected, timings, pending.events)

    def checkpoint(self, *, background: bool = False) -> bool:
        """Write the head block's focus state to :attr:`checkpoint_path`.

        With ``background`` a forked child writes it and this returns once
        it runs (:meth:`wait_checkpoint` waits for its end); otherwise the
        write is made here.

        False when the write failed (a full disk) or did not start (a
        background one is in flight): that is logged and the node goes on,
        since the checkpoint only saves work at the next start.
        """
        if background and self.checkpoints.busy:
            return False
        block = BlockIdentity.of(self.chain_id, self.head)
        self._checkpoint_work = self.focus.work_s
        # The numba form (a GPU engine's vectors come back here, before any fork).
        state = self.focus.host_form()
        if background:
            return self.checkpoints.start(state, block)
        return self.checkpoints.write(state, block).ok

    def wait_checkpoint(self, timeout: float | None = None) -> bool:
        """Wait for a background checkpoint write in flight (at most
        ``timeout`` seconds); whether the last finished write succeeded."""
        outcome = self.checkpoints.wait(timeout)
        return outcome is not None and outcome.ok and not self.checkpoints.busy

    def close(self) -> None:
        """Checkpoint the focus state and close the store, so that the next start
        replays no block. A background write of the head is waited for; one of
        an older block is abandoned for a write of the head here; none is made
        when the checkpoint on disk is the head's already."""
        try:
            if self.checkpoints.busy or self.checkpoints.durable_height != self.head.height:
                self.checkpoint()
        finally:
            self.store.close()

    def _maybe_checkpoint(self) -> None:
        if self.checkpoints.busy or self.checkpoints.durable_height == self.head.height:
            return
        since = self.focus.work_s - self._checkpoint_work
        if since >= max(CHECKPOINT_WORK_S, CHECKPOINT_COST_RATIO * self.checkpoints.cost):
            self.checkpoint(background=True)

    def abandon(self, pending: Pending) -> None:
        """Forget a block that will not be committed (another value was decided):
        its focus state is dropped (the head's never moved for it)."""
        pending.focus = None
        if pending in self._focus_pending:
            self._focus_pending.remove(pending)

    def is_current(self, pending: Pending) -> bool:
        """Whether ``pending`` can still be committed as it is."""
        return pending.parent == self.head.hash and (
            not pending.moves_focus or pending.focus is not None
        )

    def produce_block(
        self,
        txs: Sequence[Tx | bytes],
        time_ms: int | None = None,
        *,
        verified: bool = False,
    ) -> BlockResult:
        """Propose the next block and commit it at once, certified by this node's key alone.

        The certificate is the one a set of one decides by consensus (its round-0
        precommit), without running consensus: for tests and benchmarks. Nodes,
        the devnet included, decide through consensus (propose, then commit
        with the decided certificate).
        """
        pending = self._propose(txs, time_ms, verified, in_place=True)
        assert self.validator_key is not None
        cert = sign_certificate(self.validator_key, self.chain_id, pending.height, pending.hash)
        return self._commit_in_place(pending, cert)

    def apply_block(self, record: BlockRecord | bytes) -> BlockResult:
        """Validate and commit a block made elsewhere with its certificate; BlockError
        if it does not follow (certificate first, then roots).

        A refused block changes nothing (see :meth:`validate`).
        """
        if isinstance(record, bytes):
            try:
                record = BlockRecord.decode(record)
            except DecodeError as exc:
                raise BlockError(f"undecodable block: {exc}") from None
        if record.commit is None:
            raise BlockError(f"block {record.block.height} has no commit certificate")
        if record.block.height == self.height + 1:
            self._check_certificate(record.commit, record.block)
        pending = self._validate(record, None, None, in_place=True)
        return self._commit_in_place(pending, record.commit)

    def _commit_in_place(self, pending: Pending, certificate: CommitCertificate) -> BlockResult:
        """Commit a block executed on the head's own focus state; if that fails
        (a store error), the state is rebuilt so that it is the head's again."""
        try:
            return self.commit(pending, certificate)
        except BaseException:
            if pending.moves_focus and self.head.hash == pending.parent:
                self._rebuild_focus()
            raise

    # --- pipeline ------------------------------------------------------------
    def _execute(
        self,
        height: int,
        time_ms: int,
        proposer: bytes,
        txs: Sequence[Tx],
        verified: bool,
        evidence: Sequence[Evidence],
        strict: bool,
    ) -> tuple[BlockContext, list[Tx], list[Receipt], list[Rejected], list[Evidence]]:
        with self.store.reader() as r:
            ctx = BlockContext(
                self.chain_id, height, time_ms, proposer, self.params, PendingState(r.get, r.items)
            )
            ctx.validators = self.validators
            ctx.parent_hash = self.head.hash
            ctx.params = governed_params(ctx.state, self.params)
            ctx.fee_per_byte = current_fee_per_byte(ctx.state, self.params)
            ctx.focus_of = self._parent_focus
            ctx.karma_of = self._parent_karma
            try:
                included_evidence, ctx.offences = block_offences(
                    evidence,
                    validators=self._validators_at,
                    chain_id=self.chain_id,
                    params=self.params,
                    block_height=height,
                    state=ctx.state,
                    strict=strict,
                )
            except EvidenceError as exc:
                raise BlockError(f"block {height}: {exc.code}: {exc.message}") from None
            included, receipts, rejected = execute_block(
                ctx,
                self.modules,
                self.handlers,
                self.ante,
                txs,
                verified,
                strict,
                self.scheduler,
                self.rooms,
            )
            # The pending state reads through this reader, so every read of it
            # happens here; after this, the pipeline only adds writes to it.
        return ctx, included, receipts, rejected, included_evidence

    def params_now(self) -> ChainParams:
        """The parameters the next block runs under: the genesis's, with the
        economy changes the validators decided (``chain.governed``)."""
        with self.store.reader() as r:
            return governed_params(r, self.params)

    def _parent_karma(self, address: bytes) -> int:
        """A neuron's karma at the head (``BlockContext.karma_of``), every
        neuron's computed once per head, on the first ask (``chain.karma``)."""
        with self._karma_lock:
            head = self.head.hash
            if self._karma is None or self._karma[0] != head:
                self._karma = (head, karma_fixed(self.focus.graph, self.focus.q))
            table = self._karma[1]
        i = self.focus.graph.neurons.get(address)
        return int(table[i]) if 0 <= i < len(table) else 0

    def _parent_focus(self, cid: bytes) -> int:
        """The head's committed focus of a particle (``BlockContext.focus_of``): a
        block always runs on top of the head, so this is its parent's focus."""
        found = self.focus.focus_of(cid)
        return 0 if found is None else found[0]

    def _decode_evidence(self, block: Block) -> list[Evidence]:
        """A received block's evidence, each piece in its one canonical encoding."""
        out = []
        for raw in block.evidence:
            try:
                piece = decode_evidence(raw)
            except DecodeError as exc:
                raise BlockError(f"block {block.height} carries bad evidence: {exc}") from None
            if encode_evidence(piece) != raw:
                raise BlockError(f"block {block.height} carries evidence in a non-canonical form")
            out.append(piece)
        return out

    def _build(
        self,
        ctx: BlockContext,
        included: list[Tx],
        receipts: list[Receipt],
        rejected: list[Rejected],
        evidence: list[Evidence],
        received: BlockRecord | None,
        t0: float,
        square: ExtendedSquare | None = None,
        da_seconds: float = 0.0,
        in_place: bool = False,
    ) -> Pending:
        """Focus, state root, data root and header of an executed block, in memory.

        The block's edge deltas advance a copy of the head's focus state, or
        (``in_place``: the block is committed next, nothing else in between)
        the head's own.
        """
        t_exec = time.perf_counter()
        focus = self.focus
        upgrade = self._focus_upgrade(ctx.height)
        moves = bool(ctx.deltas) or upgrade is not None
        if moves and not in_place:
            focus = copy.deepcopy(self.focus)
        if upgrade is not None:
            log.info(
                "block runs a new focus algorithm (scheduled upgrade)",
                extra={"fields": {"height": ctx.height, "engine": engine_identity(upgrade)}},
            )
            writes = focus.apply_upgrade(upgrade, ctx.deltas)
        else:
            writes = focus.apply(ctx.deltas)
        for key, value in writes.items():
            ctx.state.put(key, value)
        t_focus = time.perf_counter()
        with self.store.reader() as r:
            root, nodes = smt_update(r.node, r.root, ctx.state.writes.items())
        t_root = time.perf_counter()
        tx_bytes = tuple(tx.encoded for tx in included)
        evidence_bytes = tuple(encode_evidence(piece) for piece in evidence)
        if square is None:
            square = block_square(tx_bytes)
        data_root = square.data_root()
        t_da = time.perf_counter()
        last = self.last_certificate if received is None else received.last_commit
        header = Header(
            self.chain_id,
            ctx.height,
            ctx.time_ms,
            self.head.hash,
            txs_root(tx_bytes),
            root,
            focus.root,
            data_root,
            evidence_root(evidence_bytes),
            self.validators_hash,
            ctx.proposer,
            certificate_hash(last),
        )
        if received is not None:
            expected = received.block.header
            if expected.state_root != root or expected.focus_root != focus.root:
                raise BlockError(
                    f"block {ctx.height}: roots differ from our execution "
                    f"(state {root.hex()[:12]} vs {expected.state_root.hex()[:12]}, "
                    f"focus {focus.root.hex()[:12]} vs {expected.focus_root.hex()[:12]})"
                )
            if expected != header:
                raise BlockError(f"block {ctx.height}: header differs from our execution")
            block = received.block
        else:
            block = Block(header, tx_bytes, evidence_bytes)
        t_end = time.perf_counter()
        timings = {
            "execute": t_exec - t0 - da_seconds,
            "focus": t_focus - t_exec,
            "state_root": t_root - t_focus,
            "da": t_da - t_root + da_seconds,
            "persist": 0.0,
            "total": t_end - t0,
        }
        pending = Pending(
            BlockRecord(block, None, ctx.deltas, last),
            receipts,
            rejected,
            ctx.state.writes,
            nodes,
            root,
            square,
            timings,
            self.head.hash,
            ctx.events,
            ctx.next_validators,
            focus if moves else None,
            moves,
        )
        if moves and not in_place:
            self._keep_focus(pending)
        return pending

    def _keep_focus(self, pending: Pending) -> None:
        """Hold ``pending``'s focus state, dropping the oldest beyond MAX_PENDING_FOCUS."""
        self._focus_pending.append(pending)
        while len(self._focus_pending) > MAX_PENDING_FOCUS:
            self._focus_pending.pop(0).focus = None

    def _rebuild_focus(self) -> None:
        """Rebuild the head's focus state as on a restart (after an in-place
        execution failed)."""
        self.focus = FocusState(self.params.focus)
        self._restore()

    def _check_time(self, height: int, time_ms: int, now_ms: int | None) -> None:
        """Block time increases, stays at most MAX_TIME_MS and (with the local
        clock ``now_ms``) at most MAX_CLOCK_DRIFT_MS ahead of it."""
        if time_ms <= self.head.time_ms:
            raise BlockTimeError(
                f"block {height} time {time_ms} does not increase (parent's is {self.head.time_ms})"
            )
        if time_ms > MAX_TIME_MS:
            raise BlockTimeError(
                f"block {height} time {time_ms} is above MAX_TIME_MS={MAX_TIME_MS}"
            )
        if now_ms is not None and time_ms > now_ms + MAX_CLOCK_DRIFT_MS:
            raise BlockTimeError(
                f"block {height} time {time_ms} is {time_ms - now_ms} ms ahead of this "
                f"validator's clock (MAX_CLOCK_DRIFT_MS={MAX_CLOCK_DRIFT_MS})"
            )

    def _check_certificate(self, cert: CommitCertificate, block: Block) -> None:
        """More than 2/3 of the validators' power precommitted this block."""
        try:
            verify_certificate(
                cert, self.validators, self.chain_id, height=block.height, value_id=block.hash
            )
        except InvalidCertificateError as exc:
            raise BlockError(f"block {block.height} has an invalid commit: {exc}") from None

    def _check_last_commit(self, record: BlockRecord) -> None:
        """The parent's certificate the block carries proves our head; the header hashes it."""
        header = record.block.header
        last = record.last_commit
        if header.last_commit != certificate_hash(last):
            raise BlockError(f"block {header.height} last_commit is not its parent's certificate")
        if header.height == 1:
            if last is not None:
                raise BlockError("block 1 carries a certificate of genesis")
            return
        if last is None:
            raise BlockError(f"block {header.height} carries no certificate of its parent")
        try:
            verify_certificate(
                last,
                self.valsets.at(self.head.height),
                self.chain_id,
                height=self.head.height,
                value_id=self.head.hash,
            )
        except InvalidCertificateError as exc:
            raise BlockError(f"block {header.height} last_commit is invalid: {exc}") from None

    # --- genesis and restart ---------------------------------------------------
    def _commit_genesis(self) -> None:
        state = PendingState(lambda key: None)
        deltas = Deltas()
        for module in self.modules:
            module.init_genesis(state, self.genesis, deltas)
        state.put(PARAMS_KEY, encode(self.params.to_dict()))
        for key, value in self.focus.apply(deltas).items():
            state.put(key, value)
        no_nodes: dict[bytes, bytes] = {}
        root, nodes = smt_update(no_nodes.get, EMPTY, state.writes.items())
        header = Header(
            self.chain_id,
            0,
            self.genesis.genesis_time_ms,
            ZERO_HASH,
            txs_root(()),
            root,
            self.focus.root,
            block_square(()).data_root(),
            evidence_root(()),
            self.validators_hash,
            b"",
            b"",
        )
        record = BlockRecord(Block(header, ()), None, deltas)
        meta = {b"genesis": self.genesis.hash, b"chain_id": self.chain_id.encode()}
        self.store.commit(
            Commit(
                0,
                state.writes,
                nodes,
                root,
                record.encode(),
                {b"b" + header.hash: height_key(0)},
                meta,
            )
        )
        self.head = header

    def _restore(self) -> None:
        """Rebuild the graph and focus engine: from the focus checkpoint when it
        belongs to this store's chain, then through the stored blocks after it.

        Going through the blocks' deltas with the same incremental updates the
        running node made reproduces its focus state exactly; each block's
        focus root is checked on the way. A checkpoint whose next blocks do not
        reproduce is dropped, and every block is replayed from genesis.
        """
        with self.store.reader() as r:
            height = r.height
            self.base = r.base
            self._load_schedule(r.get)
            start, record = self._load_checkpoint(r, height, self.checkpoint_path)
            from_base = start == 0 and self.base > 0
            if from_base:
                start, record = self._base_focus(r, height)
            try:
                head, record = self._replay_focus(r, start, height, record)
            except _FocusMismatchError as exc:
                if start == 0 or from_base:
                    raise StoreError(str(exc)) from None
                log.warning(
                    "focus checkpoint dropped: replaying every block",
                    extra={"fields": {"height": start - 1, "reason": str(exc)}},
                )
                self.focus = FocusState(self.params.focus)
                self.restored_from = None
                self.checkpoints.durable_height = None
                self._checkpoint_work = 0.0
                start, record = self._base_focus(r, height) if self.base else (0, None)
                head, record = self._replay_focus(r, start, height, record)
            if head.state_root != r.root:
                raise StoreError("the store's root differs from its last block's state root")
            try:
                self.valsets = ValidatorSets.load(r.items(VALSET_PREFIX))
            except (DecodeError, ValueError) as exc:
                raise StoreError(f"the store's validator sets are unreadable: {exc}") from None
        self.head = head
        self.last_certificate = record.commit
        self._set_validators(self.valsets.for_height(height + 1))
        self._maybe_checkpoint()

    def _base_focus(self, r: Reader, height: int) -> tuple[int, BlockRecord | None]:
        """The focus state of a store installed from a snapshot: the snapshot's
        own copy (written by chain/snapshot.py after it verified it), from which
        the blocks above the base replay. There is no genesis to replay from,
        so without a usable copy the store cannot be opened."""
        path = Path(self.store.path) / SNAPSHOT_FOCUS_FILE
        start, record = self._load_checkpoint(r, height, path)
        if start != self.base + 1:
            raise StoreError(
                f"the store at {self.store.path} began at snapshot height {self.base} and "
                f"its focus state {path} is unusable: state-sync into a new home"
            )
        return start, record

    def _load_checkpoint(
        self, r: Reader, height: int, path: Path
    ) -> tuple[int, BlockRecord | None]:
        """Take the focus checkpoint at ``path`` if it is usable here; returns the
        first height left to replay (0 without one) and the checkpoint's block.

        The checkpoint must be of a block this store holds (same hash, not past
        its head) and reproduce the focus root that block committed, running
        the focus parameters in force there over the particles the state
        commits (focus_state_arrays.py). One of the release before this format
        is rewritten in this format at once."""
        self.restored_from = None
        self._checkpoint_work = 0.0
        try:
            with open_checkpoint(path) as ckpt:
                if ckpt.height > height:
                    raise CheckpointUnusableError(
                        f"it is of height {ckpt.height}, past the store's {height}"
                    )
                raw = r.block(ckpt.height)
                record = BlockRecord.decode(raw) if raw is not None else None
                if record is None or record.block.header.hash != ckpt.block_hash:
                    raise CheckpointUnusableError(f"its block {ckpt.height} is not this store's")
                block = BlockIdentity.of(self.chain_id, record.block.header)
                try:
                    params = runnable_params(
                        focus_in_force(self.params.focus, self.focus_schedule, ckpt.height)
                    )
                except InvalidParameterError as exc:
                    raise CheckpointUnusableError(exc.message) from None
                state = ckpt.restore(Expected(block, params, committed_particles(r.get)))
                if ckpt.legacy:
                    self._convert_checkpoint(path, state, block)
        except CheckpointUnusableError as exc:
            if path.exists():
                log.warning(
                    "focus checkpoint not used: replaying every block",
                    extra={"fields": {"path": str(path), "reason": str(exc)}},
                )
            return 0, None
        self.focus = state.on_node_backend()
        self.restored_from = block.height
        if path == self.checkpoint_path:
            self.checkpoints.durable_height = block.height
        return block.height + 1, record

    def _convert_checkpoint(self, path: Path, state: FocusState, block: BlockIdentity) -> None:
        """Rewrite a checkpoint of the previous release's format in this one (a
        failed write leaves it as it was: it is read again at the next start)."""
        try:
            write_checkpoint(path, state, block)
        except OSError as exc:
            log.warning(
                "focus checkpoint not converted",
                extra={"fields": {"path": str(path), "error": str(exc)}},
            )
            return
        log.info(
            "focus checkpoint converted from the previous release's format",
            extra={"fields": {"path": str(path), "height": block.height}},
        )

    def _replay_focus(
        self, r: Reader, start: int, height: int, record: BlockRecord | None
    ) -> tuple[Header, BlockRecord]:
        """Feed blocks ``start .. height`` to the focus state, checking each root;
        returns the head's header and record. ``record`` is block ``start - 1``'s
        (the checkpoint's: the head's when nothing is left to replay)."""
        for h in range(start, height + 1):
            raw = r.block(h)
            if raw is None:
                raise StoreError(f"block {h} is missing from the store at {self.store.path}")
            record = BlockRecord.decode(raw)
            try:
                upgrade = self._focus_upgrade(h)
            except UpgradeNeededError as exc:
                raise StoreError(
                    f"the store at {self.store.path} holds block {h}, written by a focusflow "
                    f"that runs its focus algorithm: {exc.message}"
                ) from None
            if upgrade is None:
                self.focus.apply(record.edge_deltas())
            else:
                self.focus.apply_upgrade(upgrade, record.edge_deltas())
            if self.focus.root != record.block.header.focus_root:
                raise _FocusMismatchError(f"focus of block {h} does not recompute from its deltas")
        assert record is not None
        return record.block.header, record


def replay(source: Chain, target: Chain, progress: Callable[[int], object] | None = None) -> None:
    """Re-execute every block of ``source`` on ``target`` (a fresh chain) and check roots."""
    for record in source.records(target.height + 1):
        target.apply_block(record)
        if progress is not None:
            progress(record.block.height)


__all__ = ["BlockResult", "Chain", "Pending", "replay"]
