"""A chain's life on its store: genesis, restore and replay, focus checkpoints.

When a :class:`~focusflow.chain.chain.Chain` opens its store,
:meth:`ChainLifecycle.open` sets up the tip (tip.py): on a fresh store it
commits genesis; on a store of this genesis it restores the head, which
means rebuilding the focus state, since a block's focus depends on the
engine's state before it (the warm start, the springs iterate, the weighted
graph's patch history), not on the graph alone. The rebuild starts from the
focus checkpoint (focus_checkpoint.py) when it belongs to this store's chain,
or from the snapshot's own copy on a store installed by state sync, and
replays the stored blocks after it through the same incremental updates the
running node made, checking each block's focus root. A checkpoint whose next
block does not reproduce is dropped, and every block is replayed from genesis.

The checkpoint is written at :meth:`ChainLifecycle.close` and, while the
node runs, once CHECKPOINT_WORK_S seconds of focus work (what a restart would
replay) have passed since the last one, and no sooner than
CHECKPOINT_COST_RATIO times the last write's duration, so that writing costs
at most a tenth of the work it saves on a graph whose state is large. The
commit that makes one due does not write it: a forked child does
(checkpoint_writer.py), and the commit waits only for the fork.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from focusflow.chain.block import ZERO_HASH, Block, BlockRecord, Header, evidence_root, txs_root
from focusflow.chain.checkpoint_writer import CheckpointWriter
from focusflow.chain.da_commit import block_square
from focusflow.chain.errors import UpgradeNeededError
from focusflow.chain.focus_checkpoint import (
    CHECKPOINT_FILE,
    CheckpointUnusableError,
    open_checkpoint,
    write_checkpoint,
)
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_state_arrays import (
    Expected,
    committed_hebbian_root,
    committed_particles,
)
from focusflow.chain.focus_state_format import BlockIdentity
from focusflow.chain.focus_upgrade import focus_in_force, runnable_params
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import Deltas, Module
from focusflow.chain.snapshot import SNAPSHOT_FOCUS_FILE
from focusflow.chain.state import PendingState
from focusflow.chain.tip import Tip
from focusflow.chain.valsets import VALSET_PREFIX, ValidatorSets
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError, InvalidParameterError, StoreError
from focusflow.store import EMPTY, Commit, Reader, Store, height_key
from focusflow.store import update as smt_update

#: Where genesis stores the chain's parameters.
PARAMS_KEY = b"/kv/params"
#: Focus work (seconds) between checkpoints, and the least multiple of the last
#: write's duration between them (module docstring).
CHECKPOINT_WORK_S = 30.0
CHECKPOINT_COST_RATIO = 10.0

log = logging.getLogger("focusflow.chain")


class _FocusMismatchError(Exception):
    """A replayed block's focus root differs from the stored header's."""


class ChainLifecycle:
    """Opens a chain's store into its tip, rebuilds the tip's focus state, and
    writes focus checkpoints; see the module docstring."""

    def __init__(self, store: Store, genesis: Genesis, modules: Sequence[Module], tip: Tip) -> None:
        self.store = store
        self.genesis = genesis
        self.params = genesis.params
        self.chain_id = genesis.chain_id
        self.modules = tuple(modules)
        self.tip = tip
        #: The focus checkpoint's file, beside the store's own.
        self.checkpoint_path = Path(store.path) / CHECKPOINT_FILE
        #: Writes it, in a forked child where it can (its counts are metrics).
        self.checkpoints = CheckpointWriter(self.checkpoint_path)
        #: The height of the checkpoint the last restore began at (None: it
        #: replayed every block).
        self.restored_from: int | None = None
        self._checkpoint_work = 0.0

    def open(self) -> None:
        """Commit genesis on a fresh store, or restore the head of one that holds
        this genesis's chain; StoreError for a store of another chain."""
        with self.store.reader() as r:
            fresh = r.block(0) is None and r.base == 0
            stored_genesis = r.meta(b"genesis")
        if fresh:
            self._commit_genesis()
        elif stored_genesis != self.genesis.hash:
            raise StoreError(
                f"the store at {self.store.path} belongs to another genesis (or was written by a "
                "focusflow version with another block format): start from a new --home"
            )
        else:
            self._restore()

    def rebuild_focus(self) -> None:
        """Rebuild the head's focus state as on a restart (after an execution on
        it in place failed)."""
        self.tip.focus = FocusState(self.params.focus)
        self._restore()

    # --- checkpoints -----------------------------------------------------------
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
        block = BlockIdentity.of(self.chain_id, self.tip.header)
        self._checkpoint_work = self.tip.focus.work_s
        # The numba form (a GPU engine's vectors come back here, before any fork).
        state = self.tip.focus.host_form()
        if background:
            return self.checkpoints.start(state, block)
        return self.checkpoints.write(state, block).ok

    def wait_checkpoint(self, timeout: float | None = None) -> bool:
        """Wait for a background checkpoint write in flight (at most
        ``timeout`` seconds); whether the last finished write succeeded."""
        outcome = self.checkpoints.wait(timeout)
        return outcome is not None and outcome.ok and not self.checkpoints.busy

    def maybe_checkpoint(self) -> None:
        """Start a background checkpoint of the head if one is due (module docstring)."""
        if self.checkpoints.busy or self.checkpoints.durable_height == self.tip.height:
            return
        since = self.tip.focus.work_s - self._checkpoint_work
        if since >= max(CHECKPOINT_WORK_S, CHECKPOINT_COST_RATIO * self.checkpoints.cost):
            self.checkpoint(background=True)

    def close(self) -> None:
        """Checkpoint the focus state and close the store, so that the next start
        replays no block. A background write of the head is waited for; one of
        an older block is abandoned for a write of the head here; none is made
        when the checkpoint on disk is the head's already."""
        try:
            if self.checkpoints.busy or self.checkpoints.durable_height != self.tip.height:
                self.checkpoint()
        finally:
            self.store.close()

    # --- genesis and restart ---------------------------------------------------
    def _commit_genesis(self) -> None:
        tip = self.tip
        state = PendingState(lambda key: None)
        deltas = Deltas()
        for module in self.modules:
            module.init_genesis(state, self.genesis, deltas)
        state.put(PARAMS_KEY, encode(self.params.to_dict()))
        for key, value in tip.focus.apply(deltas, 0).items():
            state.put(key, value)
        no_nodes: dict[bytes, bytes] = {}
        root, nodes = smt_update(no_nodes.get, EMPTY, state.writes.items())
        header = Header(
            chain_id=self.chain_id,
            height=0,
            time_ms=self.genesis.genesis_time_ms,
            parent=ZERO_HASH,
            txs_root=txs_root(()),
            state_root=root,
            focus_root=tip.focus.root,
            data_root=block_square(()).data_root(),
            evidence_root=evidence_root(()),
            validators_hash=tip.validators_hash,
            proposer=b"",
            last_commit=b"",
        )
        record = BlockRecord(block=Block(header, ()), deltas=deltas)
        meta = {b"genesis": self.genesis.hash, b"chain_id": self.chain_id.encode()}
        self.store.commit(
            Commit(
                height=0,
                writes=state.writes,
                nodes=nodes,
                root=root,
                block=record.encode(),
                index={b"b" + header.hash: height_key(0)},
                meta=meta,
            )
        )
        tip.header = header

    def _restore(self) -> None:
        """Rebuild the graph and focus engine: from the focus checkpoint when it
        belongs to this store's chain, then through the stored blocks after it.

        Going through the blocks' deltas with the same incremental updates the
        running node made reproduces its focus state exactly; each block's
        focus root is checked on the way. A checkpoint whose next blocks do not
        reproduce is dropped, and every block is replayed from genesis.
        """
        tip = self.tip
        with self.store.reader() as r:
            height = r.height
            tip.base = r.base
            tip.load_schedule(r.get)
            start, record = self._load_checkpoint(r, height, self.checkpoint_path)
            from_base = start == 0 and tip.base > 0
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
                tip.focus = FocusState(self.params.focus)
                self.restored_from = None
                self.checkpoints.durable_height = None
                self._checkpoint_work = 0.0
                start, record = self._base_focus(r, height) if tip.base else (0, None)
                head, record = self._replay_focus(r, start, height, record)
            if head.state_root != r.root:
                raise StoreError("the store's root differs from its last block's state root")
            try:
                tip.valsets = ValidatorSets.load(r.items(VALSET_PREFIX))
            except (DecodeError, ValueError) as exc:
                raise StoreError(f"the store's validator sets are unreadable: {exc}") from None
        tip.header = head
        tip.certificate = record.commit
        tip.set_validators(tip.valsets.for_height(height + 1))
        self.maybe_checkpoint()

    def _base_focus(self, r: Reader, height: int) -> tuple[int, BlockRecord | None]:
        """The focus state of a store installed from a snapshot: the snapshot's
        own copy (written by chain/snapshot.py after it verified it), from which
        the blocks above the base replay. There is no genesis to replay from,
        so without a usable copy the store cannot be opened."""
        path = Path(self.store.path) / SNAPSHOT_FOCUS_FILE
        start, record = self._load_checkpoint(r, height, path)
        if start != self.tip.base + 1:
            raise StoreError(
                f"the store at {self.store.path} began at snapshot height {self.tip.base} and "
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
                        focus_in_force(self.params.focus, self.tip.schedule, ckpt.height)
                    )
                except InvalidParameterError as exc:
                    raise CheckpointUnusableError(exc.message) from None
                state = ckpt.restore(
                    Expected(
                        block, params, committed_particles(r.get), committed_hebbian_root(r.get)
                    )
                )
                if ckpt.legacy:
                    self._convert_checkpoint(path, state, block)
        except CheckpointUnusableError as exc:
            if path.exists():
                log.warning(
                    "focus checkpoint not used: replaying every block",
                    extra={"fields": {"path": str(path), "reason": str(exc)}},
                )
            return 0, None
        self.tip.focus = state.on_node_backend()
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
        tip = self.tip
        for h in range(start, height + 1):
            raw = r.block(h)
            if raw is None:
                raise StoreError(f"block {h} is missing from the store at {self.store.path}")
            record = BlockRecord.decode(raw)
            try:
                upgrade = tip.focus_upgrade(h)
            except UpgradeNeededError as exc:
                raise StoreError(
                    f"the store at {self.store.path} holds block {h}, written by a focusflow "
                    f"that runs its focus algorithm: {exc.message}"
                ) from None
            if upgrade is None:
                tip.focus.apply(record.edge_deltas(), h)
            else:
                tip.focus.apply_upgrade(upgrade, record.edge_deltas(), h)
            if tip.focus.root != record.block.header.focus_root:
                raise _FocusMismatchError(f"focus of block {h} does not recompute from its deltas")
        assert record is not None
        return record.block.header, record


__all__ = ["CHECKPOINT_COST_RATIO", "CHECKPOINT_WORK_S", "PARAMS_KEY", "ChainLifecycle"]
