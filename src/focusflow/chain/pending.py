"""Blocks executed in memory and not committed yet, and the focus states they hold.

A :class:`Pending` is what the pipeline (pipeline.py) makes of a block: the
block with every root filled in, its write-set and tree nodes, nothing
written. The committer (committer.py) persists it with the certificate that
decided it and answers a :class:`BlockResult`.

A pending block with edge deltas advances its own copy of the head's focus
state, which it keeps (``Pending.focus``) and a commit makes the head's:
competing proposals at one height (a round change, a byzantine proposer that
signs two blocks) each cost one execution and one copy, and switching between
them replays nothing. :class:`PendingFocus` bounds those copies at
MAX_PENDING_FOCUS per height, dropping the oldest first; a block whose copy was
dropped is executed again if it is decided after all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from focusflow.chain.block import PROPOSAL_BROTLI_QUALITY, Block, BlockRecord
from focusflow.chain.execute import Receipt, Rejected
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.module import Deltas
from focusflow.consensus.validators import ValidatorSet
from focusflow.da import ExtendedSquare

#: Pending blocks at one height that keep their own advanced focus state (a
#: copy of the head's): a byzantine proposer signs at most
#: MAX_PROPOSALS_PER_ROUND values a round that consensus keeps, so this bounds
#: memory at a few copies of the focus state whatever it sends.
MAX_PENDING_FOCUS = 4


@dataclass(eq=False, kw_only=True)
class Pending:
    """A block executed in memory and not committed (``Chain.propose``, ``Chain.validate``)."""

    #: The block, its edge deltas and the parent's certificate (no commit yet).
    record: BlockRecord
    receipts: list[Receipt]
    rejected: list[Rejected]
    writes: dict[bytes, bytes | None]
    nodes: dict[bytes, bytes]
    #: The state root after this block.
    root: bytes
    square: ExtendedSquare
    timings: dict[str, float]
    #: The head this block extends.
    parent: bytes
    #: Block-level events (slashing), stored with the block under ``b"e" + height``.
    events: list[dict[str, Any]] = field(default_factory=list)
    #: The validator set of the next height if this block changes it.
    next_validators: ValidatorSet | None = None
    #: The focus state after this block (a block with edge deltas), which a
    #: commit makes the head's; None once dropped (abandoned, or beyond
    #: MAX_PENDING_FOCUS): the block must be executed again.
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
        record = BlockRecord(
            block=self.record.block, deltas=Deltas(), last_commit=self.record.last_commit
        )
        return record.encode(PROPOSAL_BROTLI_QUALITY)


@dataclass(kw_only=True)
class BlockResult:
    """A committed block, with what its execution said."""

    record: BlockRecord
    receipts: list[Receipt]
    rejected: list[Rejected]
    timings: dict[str, float]
    #: Block-level events: ``{"type": "slash", ...}`` per punished offence.
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def block(self) -> Block:
        return self.record.block


class PendingFocus:
    """The pending blocks of the next height that hold their own focus state,
    oldest first, at most MAX_PENDING_FOCUS (module docstring)."""

    def __init__(self) -> None:
        self._held: list[Pending] = []

    def keep(self, pending: Pending) -> None:
        """Hold ``pending``'s focus state, dropping the oldest beyond MAX_PENDING_FOCUS."""
        self._held.append(pending)
        while len(self._held) > MAX_PENDING_FOCUS:
            self._held.pop(0).focus = None

    def drop(self, pending: Pending) -> None:
        """Forget ``pending``'s focus state (its block will not be committed)."""
        pending.focus = None
        if pending in self._held:
            self._held.remove(pending)

    def clear(self) -> None:
        """Forget every state held: a block was committed, and they extend the old head."""
        for pending in self._held:
            pending.focus = None
        self._held.clear()


__all__ = ["MAX_PENDING_FOCUS", "BlockResult", "Pending", "PendingFocus"]
