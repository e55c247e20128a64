"""A node's chain: from transactions to committed blocks, over one store.

:class:`Chain` is the face the rest of the node uses; the work is done by
parts, each named for what it does:

* the tip (tip.py): the committed head the next block builds on (its header
  and certificate, its focus state, the validator sets, the focus upgrade
  schedule);
* the pipeline (pipeline.py): a block's evidence and transactions executed
  and its focus, state and data roots built, in memory, after the checks a
  received block must pass first (block_checks.py);
* the pending-focus pool (pending.py): the focus states of blocks executed
  and not committed;
* the committer (committer.py): one LMDB transaction per block, then the tip
  moves on;
* the lifecycle (lifecycle.py): genesis, restore and replay when the store
  opens, and focus checkpoints.

Each block goes through the same steps whether this node made it or received
it (docs/architecture.md §5). Under consensus the steps are split so that a
validator executes a block before it votes and writes only what was decided:

* :meth:`Chain.propose` (the proposer) executes transactions from the mempool,
  leaving out those that cannot be included, takes the evidence pool's
  still-valid evidence (:attr:`Chain.evidence`), and returns a
  :class:`~focusflow.chain.pending.Pending`: the block with every root, its
  write-set and tree nodes, in memory;
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
block with edge deltas advances its own copy of it, which its Pending keeps
and :meth:`commit` makes the head's (pending.py). :meth:`produce_block`
(propose + a certificate signed by this node alone, without consensus: tests
and benchmarks) and :meth:`apply_block` (validate + commit with the record's
certificate: followers, replay) commit at once, so they advance the head's
state in place, without a copy; a certified block whose roots differ (a fault,
never an honest network's case) rebuilds it as on a restart.
:func:`replay` rebuilds a whole chain from stored blocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from focusflow.chain.block import BlockRecord, Header, sign_certificate
from focusflow.chain.block_checks import check_certificate, decode_record
from focusflow.chain.checkpoint_writer import CheckpointWriter
from focusflow.chain.committer import Committer
from focusflow.chain.errors import BlockError, UpgradeNeededError
from focusflow.chain.evidence_pool import EvidencePool
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_upgrade import Schedule
from focusflow.chain.genesis import Genesis
from focusflow.chain.governed import governed_params
from focusflow.chain.lifecycle import ChainLifecycle
from focusflow.chain.module import Ante, Handler, Module
from focusflow.chain.params import ChainParams
from focusflow.chain.pending import BlockResult, Pending, PendingFocus
from focusflow.chain.pipeline import BlockPipeline
from focusflow.chain.scheduler import Scheduler
from focusflow.chain.tip import Tip
from focusflow.chain.tx import Tx
from focusflow.chain.valsets import ValidatorSets
from focusflow.consensus.certificate import CommitCertificate
from focusflow.consensus.evidence import BlockEvidence
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.errors import StoreError
from focusflow.core.keys import KeyPair
from focusflow.da import ExtendedSquare
from focusflow.store import Reader, Store


class Chain:
    """A node's chain state machine over one store; see the module docstring."""

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
        self.tip = Tip(self.params, genesis.validator_set())
        #: Verified equivocation evidence waiting for a block (:meth:`add_evidence`).
        self.evidence = EvidencePool(self.chain_id, self.tip.recorded_set, self.params)
        self.pending_focus = PendingFocus()
        self.lifecycle = ChainLifecycle(store, genesis, self.modules, self.tip)
        self.pipeline = BlockPipeline(
            store=store,
            chain_id=self.chain_id,
            modules=self.modules,
            ante=ante,
            tip=self.tip,
            evidence=self.evidence,
            held=self.pending_focus,
            rebuild_focus=self.lifecycle.rebuild_focus,
            validator_key=validator_key,
        )
        self.committer = Committer(
            store=store,
            chain_id=self.chain_id,
            tip=self.tip,
            evidence=self.evidence,
            held=self.pending_focus,
            lifecycle=self.lifecycle,
        )
        self.lifecycle.open()

    # --- the head --------------------------------------------------------------
    @property
    def head(self) -> Header:
        """The head block's header."""
        return self.tip.header

    @property
    def height(self) -> int:
        return self.tip.height

    @property
    def last_certificate(self) -> CommitCertificate | None:
        """The certificate of the head block (None at genesis)."""
        return self.tip.certificate

    @property
    def focus(self) -> FocusState:
        """The head's focus state."""
        return self.tip.focus

    @property
    def validators(self) -> ValidatorSet:
        """The set of the next height (head + 1), with its proposer priorities."""
        return self.tip.validators

    @property
    def valsets(self) -> ValidatorSets:
        """Every recorded validator set by first height."""
        return self.tip.valsets

    @property
    def focus_schedule(self) -> Schedule:
        """The focus upgrade schedule in force (focus_upgrade.py)."""
        return self.tip.schedule

    @property
    def base(self) -> int:
        """The height this store began at: 0, or a state-sync snapshot's."""
        return self.tip.base

    @property
    def upgrade_needed(self) -> UpgradeNeededError | None:
        """Why this node cannot process the next block, or None (tip.py)."""
        return self.tip.upgrade_needed

    def validators_at(self, height: int) -> ValidatorSet:
        """Members and powers of the set that decides ``height`` (1 .. head + 1)."""
        return self.tip.validators_at(height)

    # --- the parts' faces ------------------------------------------------------
    @property
    def handlers(self) -> dict[str, Handler]:
        """Each message type's handler, from the modules."""
        return self.pipeline.handlers

    @property
    def scheduler(self) -> Scheduler:
        """Runs a block's WASM transactions ahead (chain/scheduler.py)."""
        return self.pipeline.scheduler

    @property
    def square_listeners(self) -> list[Callable[[int, ExtendedSquare], None]]:
        """Called with each committed block's height and data square."""
        return self.committer.square_listeners

    @property
    def checkpoint_path(self) -> Path:
        return self.lifecycle.checkpoint_path

    @property
    def checkpoints(self) -> CheckpointWriter:
        return self.lifecycle.checkpoints

    @property
    def restored_from(self) -> int | None:
        """The height of the checkpoint the last restore began at (None: every block)."""
        return self.lifecycle.restored_from

    # --- reading ----------------------------------------------------------------
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

    def params_now(self) -> ChainParams:
        """The parameters the next block runs under: the genesis's, with the
        economy changes the validators decided (``chain.governed``)."""
        with self.store.reader() as r:
            return governed_params(r, self.params)

    def add_evidence(self, evidence: BlockEvidence) -> bool:
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
        return self.pipeline.propose(txs, time_ms=time_ms, verified=verified, in_place=False)

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
        return self.pipeline.validate(record, now_ms=now_ms, proposer=proposer, in_place=False)

    def commit(self, pending: Pending, certificate: CommitCertificate) -> BlockResult:
        """Persist a proposed or validated block with the certificate that decided it.

        One LMDB transaction. BlockError if the certificate does not prove the
        block under our validator set, or if ``pending`` is stale (our head moved,
        or another block advanced the focus engine since: validate it again).
        """
        return self.committer.commit(pending, certificate)

    def abandon(self, pending: Pending) -> None:
        """Forget a block that will not be committed (another value was decided):
        its focus state is dropped (the head's never moved for it)."""
        self.pending_focus.drop(pending)

    def is_current(self, pending: Pending) -> bool:
        """Whether ``pending`` can still be committed as it is."""
        return self.committer.is_current(pending)

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
        pending = self.pipeline.propose(txs, time_ms=time_ms, verified=verified, in_place=True)
        assert self.validator_key is not None
        cert = sign_certificate(self.validator_key, self.chain_id, pending.height, pending.hash)
        return self.committer.commit_in_place(pending, cert)

    def apply_block(self, record: BlockRecord | bytes) -> BlockResult:
        """Validate and commit a block made elsewhere with its certificate; BlockError
        if it does not follow (certificate first, then roots).

        A refused block changes nothing (see :meth:`validate`).
        """
        record = decode_record(record)
        if record.commit is None:
            raise BlockError(f"block {record.block.height} has no commit certificate")
        if record.block.height == self.height + 1:
            check_certificate(record.commit, record.block, self.validators, self.chain_id)
        pending = self.pipeline.validate(record, now_ms=None, proposer=None, in_place=True)
        return self.committer.commit_in_place(pending, record.commit)

    # --- checkpoints and closing -------------------------------------------------
    def checkpoint(self, *, background: bool = False) -> bool:
        """Write the head block's focus state to :attr:`checkpoint_path`
        (``ChainLifecycle.checkpoint``); False when it failed or did not start."""
        return self.lifecycle.checkpoint(background=background)

    def wait_checkpoint(self, timeout: float | None = None) -> bool:
        """Wait for a background checkpoint write in flight (at most
        ``timeout`` seconds); whether the last finished write succeeded."""
        return self.lifecycle.wait_checkpoint(timeout)

    def close(self) -> None:
        """Checkpoint the focus state and close the store, so that the next start
        replays no block (``ChainLifecycle.close``)."""
        self.lifecycle.close()


def replay(source: Chain, target: Chain, progress: Callable[[int], object] | None = None) -> None:
    """Re-execute every block of ``source`` on ``target`` (a fresh chain) and check roots."""
    for record in source.records(target.height + 1):
        target.apply_block(record)
        if progress is not None:
            progress(record.block.height)


__all__ = ["Chain", "replay"]
