"""The block pipeline: a block's transactions to its roots, in memory.

The same steps run whether this node makes the block or received it (the
pipeline of docs/architecture.md §5), on top of the tip (tip.py):

    check the block's equivocation evidence (evidence_pool.py)
    -> execute transactions (modules' write-sets merge into one pending state)
    -> end of block (slashing the proven offences, matured unbonding, fee payout,
       the next validator set at epoch boundaries and after a jailing: valsets.py)
    -> apply the block's edge deltas to the focus engine (incremental; at a
       focus upgrade's height, a new engine running the new algorithm solves
       cold: focus_upgrade.py)
    -> quantise focus, commit its root under /graph/focus
    -> update the sparse Merkle tree over the changed keys: the state root
    -> erasure code the block's transactions into its data square: the data root

:meth:`BlockPipeline.execute` runs the first three steps and
:meth:`BlockPipeline.build` the rest; nothing is written, and the result is a
:class:`~focusflow.chain.pending.Pending` that the committer (committer.py)
persists. :meth:`BlockPipeline.propose` feeds them transactions from the
mempool, leaving out those that cannot be included; :meth:`BlockPipeline.validate`
feeds them a block made elsewhere once it passed the checks of
block_checks.py, and refuses it unless every transaction is includable and its
state and focus roots equal the header's.

A block with edge deltas advances a copy of the head's focus state, held in
the pending-focus pool (pending.py) until a commit or a newer proposal drops
it; a block committed at once (``in_place``: nothing runs between its
execution and its commit) advances the head's own state, and if it is refused
after that, the lifecycle rebuilds the head's state as on a restart.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from focusflow.chain.block import (
    Block,
    BlockRecord,
    Header,
    certificate_hash,
    evidence_root,
    txs_root,
)
from focusflow.chain.block_checks import check_data_root, check_header, check_time, decode_record
from focusflow.chain.da_commit import block_square
from focusflow.chain.errors import BlockError, EvidenceError, TxError
from focusflow.chain.evidence_pool import EvidencePool, block_offences
from focusflow.chain.execute import Receipt, Rejected, execute_block
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.focus_commit import engine_identity
from focusflow.chain.governed import governed_params
from focusflow.chain.module import Ante, BlockContext, BlockRoom, Handler, Module
from focusflow.chain.pending import Pending, PendingFocus
from focusflow.chain.scheduler import Scheduler
from focusflow.chain.state import PendingState
from focusflow.chain.tip import Tip
from focusflow.chain.tx import Tx, decode_tx
from focusflow.consensus.evidence import BlockEvidence, encode_evidence
from focusflow.core.errors import DecodeError
from focusflow.core.keys import KeyPair
from focusflow.da import ExtendedSquare
from focusflow.store import Store
from focusflow.store import update as smt_update

log = logging.getLogger("focusflow.chain")


@dataclass(frozen=True, kw_only=True)
class Executed:
    """A block's evidence and transactions run on the head's state, before its roots."""

    #: The block's context: its pending state, deltas, events and next set.
    ctx: BlockContext
    #: The transactions the block carries, in order, and their receipts.
    included: list[Tx]
    receipts: list[Receipt]
    #: Transactions left out of a proposal, and why (none for a received block).
    rejected: list[Rejected]
    #: The evidence the block carries.
    evidence: list[BlockEvidence]


class BlockPipeline:
    """Executes blocks on top of the tip and builds their roots; see the module docstring."""

    def __init__(
        self,
        *,
        store: Store,
        chain_id: str,
        modules: Sequence[Module],
        ante: Ante,
        tip: Tip,
        evidence: EvidencePool,
        held: PendingFocus,
        rebuild_focus: Callable[[], None],
        validator_key: KeyPair | None,
    ) -> None:
        self.store = store
        self.chain_id = chain_id
        self.tip = tip
        self.params = tip.params
        self.modules = tuple(modules)
        self.ante = ante
        self.evidence = evidence
        self.held = held
        #: Rebuilds the head's focus state (``ChainLifecycle.rebuild_focus``)
        #: when a block executed on it in place is refused.
        self.rebuild_focus = rebuild_focus
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
        #: Runs a block's WASM transactions ahead on a pool of threads and merges
        #: their write-sets in block order (chain/scheduler.py): the serial
        #: result, bit for bit, sooner.
        self.scheduler = Scheduler()

    def propose(
        self, txs: Sequence[Tx | bytes], *, time_ms: int | None, verified: bool, in_place: bool
    ) -> Pending:
        """The next block from ``txs`` (in order, skipping bad ones) and the
        evidence pool's still-valid evidence, executed (``Chain.propose``)."""
        if self.validator_key is None:
            raise BlockError("this node has no validator key and cannot produce blocks")
        started = time.perf_counter()
        decoded: list[Tx] = []
        for tx in txs:
            if isinstance(tx, Tx):
                decoded.append(tx)
                continue
            try:
                decoded.append(decode_tx(tx, self.params.max_tx_bytes))
            except (TxError, DecodeError):
                continue
        head = self.tip.header
        self.tip.focus_upgrade(head.height + 1)
        if time_ms is None:
            time_ms = max(int(time.time() * 1000), head.time_ms + 1)
        check_time(head, head.height + 1, time_ms, None)
        executed = self.execute(
            height=head.height + 1,
            time_ms=time_ms,
            proposer=self.validator_key.address_raw,
            txs=decoded,
            verified=verified,
            evidence=self.evidence.pending(),
            strict=False,
        )
        return self.build(executed, started=started, in_place=in_place)

    def validate(
        self,
        record: BlockRecord | bytes,
        *,
        now_ms: int | None,
        proposer: bytes | None,
        in_place: bool,
    ) -> Pending:
        """A block made elsewhere, checked and executed (``Chain.validate``)."""
        started = time.perf_counter()
        record = decode_record(record)
        header = record.block.header
        evidence = check_header(record, self.tip, self.chain_id, now_ms=now_ms, proposer=proposer)
        t_da = time.perf_counter()
        square = check_data_root(record)
        da_seconds = time.perf_counter() - t_da
        try:
            txs = [decode_tx(t, self.params.max_tx_bytes) for t in record.block.txs]
        except (TxError, DecodeError) as exc:
            raise BlockError(f"block {header.height} carries a bad transaction: {exc}") from None
        try:
            executed = self.execute(
                height=header.height,
                time_ms=header.time_ms,
                proposer=header.proposer,
                txs=txs,
                verified=False,
                evidence=evidence,
                strict=True,
            )
        except TxError as exc:
            raise BlockError(f"block {header.height}: {exc.code}: {exc.message}") from None
        return self.build(
            executed,
            received=record,
            started=started,
            square=square,
            da_seconds=da_seconds,
            in_place=in_place,
        )

    def execute(
        self,
        *,
        height: int,
        time_ms: int,
        proposer: bytes,
        txs: Sequence[Tx],
        verified: bool,
        evidence: Sequence[BlockEvidence],
        strict: bool,
    ) -> Executed:
        """Check the evidence and run the transactions of block ``height`` on the
        head's state. ``strict``: a received block, refused (BlockError, TxError)
        for anything it could not include; otherwise what cannot be included is
        left out. ``verified``: signatures were checked already."""
        tip = self.tip
        with self.store.reader() as r:
            ctx = BlockContext(
                self.chain_id, height, time_ms, proposer, self.params, PendingState(r.get, r.items)
            )
            ctx.validators = tip.validators
            ctx.parent_hash = tip.header.hash
            ctx.params = governed_params(ctx.state, self.params)
            ctx.fee_per_byte = current_fee_per_byte(ctx.state, self.params)
            ctx.focus_of = tip.focus_of
            ctx.karma_of = tip.karma_of
            try:
                included_evidence, ctx.offences = block_offences(
                    evidence,
                    validators=tip.recorded_set,
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
        return Executed(
            ctx=ctx,
            included=included,
            receipts=receipts,
            rejected=rejected,
            evidence=included_evidence,
        )

    def build(
        self,
        executed: Executed,
        *,
        received: BlockRecord | None = None,
        started: float,
        square: ExtendedSquare | None = None,
        da_seconds: float = 0.0,
        in_place: bool = False,
    ) -> Pending:
        """Focus, state root, data root and header of an executed block, in memory.

        ``received``: the block made elsewhere, whose header must equal ours
        (BlockError otherwise). ``started``: when its pipeline began
        (``time.perf_counter``), for its timings; ``square`` and ``da_seconds``:
        its data square and what making it took, if made already. The block's
        edge deltas advance a copy of the head's focus state, or (``in_place``:
        the block is committed next, nothing else in between) the head's own.
        """
        tip = self.tip
        ctx = executed.ctx
        t_exec = time.perf_counter()
        focus = tip.focus
        upgrade = tip.focus_upgrade(ctx.height)
        moves = focus.moves(ctx.deltas, ctx.height) or upgrade is not None
        if moves and not in_place:
            focus = copy.deepcopy(tip.focus)
        if upgrade is not None:
            log.info(
                "block runs a new focus algorithm (scheduled upgrade)",
                extra={"fields": {"height": ctx.height, "engine": engine_identity(upgrade)}},
            )
            writes = focus.apply_upgrade(upgrade, ctx.deltas, ctx.height)
        else:
            writes = focus.apply(ctx.deltas, ctx.height)
        for key, value in writes.items():
            ctx.state.put(key, value)
        t_focus = time.perf_counter()
        with self.store.reader() as r:
            root, nodes = smt_update(r.node, r.root, ctx.state.writes.items())
        t_root = time.perf_counter()
        tx_bytes = tuple(tx.encoded for tx in executed.included)
        evidence_bytes = tuple(encode_evidence(piece) for piece in executed.evidence)
        if square is None:
            square = block_square(tx_bytes)
        data_root = square.data_root()
        t_da = time.perf_counter()
        last = tip.certificate if received is None else received.last_commit
        header = Header(
            chain_id=self.chain_id,
            height=ctx.height,
            time_ms=ctx.time_ms,
            parent=tip.header.hash,
            txs_root=txs_root(tx_bytes),
            state_root=root,
            focus_root=focus.root,
            data_root=data_root,
            evidence_root=evidence_root(evidence_bytes),
            validators_hash=tip.validators_hash,
            proposer=ctx.proposer,
            last_commit=certificate_hash(last),
        )
        if received is None:
            block = Block(header, tx_bytes, evidence_bytes)
        else:
            try:
                block = _same_block(received, header)
            except BlockError:
                if in_place and moves:
                    self.rebuild_focus()
                raise
        t_end = time.perf_counter()
        timings = {
            "execute": t_exec - started - da_seconds,
            "focus": t_focus - t_exec,
            "state_root": t_root - t_focus,
            "da": t_da - t_root + da_seconds,
            "persist": 0.0,
            "total": t_end - started,
        }
        pending = Pending(
            record=BlockRecord(block=block, deltas=ctx.deltas, last_commit=last),
            receipts=executed.receipts,
            rejected=executed.rejected,
            writes=ctx.state.writes,
            nodes=nodes,
            root=root,
            square=square,
            timings=timings,
            parent=tip.header.hash,
            events=ctx.events,
            next_validators=ctx.next_validators,
            focus=focus if moves else None,
            moves_focus=moves,
        )
        if moves and not in_place:
            self.held.keep(pending)
        return pending


def _same_block(received: BlockRecord, header: Header) -> Block:
    """``received``'s block, if its header is the one our execution made."""
    expected = received.block.header
    if expected.state_root != header.state_root or expected.focus_root != header.focus_root:
        raise BlockError(
            f"block {header.height}: roots differ from our execution "
            f"(state {header.state_root.hex()[:12]} vs {expected.state_root.hex()[:12]}, "
            f"focus {header.focus_root.hex()[:12]} vs {expected.focus_root.hex()[:12]})"
        )
    if expected != header:
        raise BlockError(f"block {header.height}: header differs from our execution")
    return received.block


__all__ = ["BlockPipeline", "Executed"]
