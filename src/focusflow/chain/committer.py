"""Committing a pending block: one LMDB transaction, then the tip moves on.

:meth:`Committer.commit` persists a block the pipeline executed (pipeline.py)
with the consensus ``CommitCertificate`` that decided it: block record,
receipts, block events, tree nodes and state in ONE LMDB transaction, so a
crash never leaves half a block. Then the tip (tip.py) takes the block's
header, certificate and focus state, the focus upgrade schedule it decided
and the validator set of the next height; the pending-focus pool is emptied
(its states extend the old head); the evidence pool forgets what the block
punished or aged out; a focus checkpoint starts if one is due (lifecycle.py);
and the square listeners (the node's DA store) receive the block's data square.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from focusflow.chain.block_checks import check_certificate
from focusflow.chain.errors import BlockError
from focusflow.chain.evidence_pool import EvidencePool
from focusflow.chain.focus_upgrade import UPGRADES_KEY
from focusflow.chain.lifecycle import ChainLifecycle
from focusflow.chain.pending import MAX_PENDING_FOCUS, BlockResult, Pending, PendingFocus
from focusflow.chain.tip import Tip
from focusflow.consensus.certificate import CommitCertificate
from focusflow.core.encoding import encode
from focusflow.da import ExtendedSquare
from focusflow.store import Commit, Store, height_key

#: Index key prefix of a block's events (``+ height, 8 bytes``): CBOR list of dicts.
BLOCK_EVENTS_PREFIX = b"e"


class Committer:
    """Persists pending blocks and moves the tip; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        chain_id: str,
        tip: Tip,
        evidence: EvidencePool,
        held: PendingFocus,
        lifecycle: ChainLifecycle,
    ) -> None:
        self.store = store
        self.chain_id = chain_id
        self.tip = tip
        self.evidence = evidence
        self.held = held
        self.lifecycle = lifecycle
        #: Called as ``listener(height, square)`` with each committed block's
        #: extended data square (the node's square cache, node.da_store.DAStore,
        #: registers itself here).
        self.square_listeners: list[Callable[[int, ExtendedSquare], None]] = []

    def is_current(self, pending: Pending) -> bool:
        """Whether ``pending`` can still be committed as it is."""
        return pending.parent == self.tip.header.hash and (
            not pending.moves_focus or pending.focus is not None
        )

    def commit(self, pending: Pending, certificate: CommitCertificate) -> BlockResult:
        """Persist ``pending`` with the certificate that decided it (``Chain.commit``)."""
        tip = self.tip
        t0 = time.perf_counter()
        block = pending.record.block
        if pending.parent != tip.header.hash or block.height != tip.height + 1:
            raise BlockError(f"block {block.height} no longer extends our head")
        if pending.moves_focus and pending.focus is None:
            raise BlockError(
                f"block {block.height}: its focus state was dropped (abandoned, or more than "
                f"MAX_PENDING_FOCUS={MAX_PENDING_FOCUS} blocks executed since): validate it again"
            )
        check_certificate(certificate, block, tip.validators, self.chain_id)
        record = replace(pending.record, commit=certificate)
        index = {b"b" + block.hash: height_key(block.height)}
        for i, receipt in enumerate(pending.receipts):
            index[b"t" + receipt.tx_hash] = receipt.encode(block.height, i)
        if pending.events:
            index[BLOCK_EVENTS_PREFIX + height_key(block.height)] = encode(pending.events)
        self.store.commit(
            Commit(
                height=block.height,
                writes=pending.writes,
                nodes=pending.nodes,
                root=pending.root,
                block=record.encode(),
                index=index,
                meta={},
            )
        )
        tip.header = block.header
        tip.certificate = certificate
        if pending.focus is not None:
            tip.focus = pending.focus
        if UPGRADES_KEY in pending.writes:
            tip.load_schedule(pending.writes.get)
        self.held.clear()
        if pending.next_validators is not None:
            tip.valsets.add(block.height + 1, pending.next_validators)
            tip.set_validators(pending.next_validators)
        else:
            tip.set_validators(tip.validators.next_height())
        with self.store.reader() as r:
            self.evidence.update(block.height, r)
        t_checkpoint = time.perf_counter()
        if pending.record.deltas:
            self.lifecycle.maybe_checkpoint()
        t_end = time.perf_counter()
        for listener in self.square_listeners:
            listener(block.height, pending.square)
        timings = dict(pending.timings)
        # What a checkpoint due at this block held the commit (the fork).
        timings["checkpoint"] = t_end - t_checkpoint
        timings["persist"] = timings.get("persist", 0.0) + t_end - t0
        timings["total"] = timings.get("total", 0.0) + t_end - t0
        return BlockResult(
            record=record,
            receipts=pending.receipts,
            rejected=pending.rejected,
            timings=timings,
            events=pending.events,
        )

    def commit_in_place(self, pending: Pending, certificate: CommitCertificate) -> BlockResult:
        """Commit a block executed on the head's own focus state; if that fails
        (a store error), the state is rebuilt so that it is the head's again."""
        try:
            return self.commit(pending, certificate)
        except BaseException:
            if pending.moves_focus and self.tip.header.hash == pending.parent:
                self.lifecycle.rebuild_focus()
            raise


__all__ = ["BLOCK_EVENTS_PREFIX", "Committer"]
