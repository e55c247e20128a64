"""The block pipeline: from transactions to one committed block.

:class:`Chain` binds a store, the modules, the ante step and the focus state.
Each block goes through the same steps whether this node made it or received
it (seed 000's pipeline):

    execute transactions (modules' write-sets merge into one pending state)
    -> end of block (matured unbonding, fee payout)
    -> apply the block's edge deltas to the focus engine (incremental)
    -> quantise focus, commit its root under /graph/focus
    -> update the sparse Merkle tree over the changed keys: the state root
    -> erasure code the block's transactions into its data square: the data root
    -> persist block, receipts, tree nodes and state in ONE LMDB transaction
    -> hand the data square to the square listeners (the node's DA store)

A producer (:meth:`Chain.produce_block`) leaves out transactions that cannot be
included; a follower (:meth:`Chain.apply_block`) re-executes a received block
and refuses it unless every transaction is includable and its own roots equal
the header's; it checks the data root first, before executing anything
(da_commit.py). :meth:`Chain.replay` rebuilds a whole chain from stored blocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from focusflow.chain.block import (
    ZERO_HASH,
    Block,
    BlockRecord,
    Header,
    commit_sign_bytes,
    txs_root,
)
from focusflow.chain.da_commit import block_square
from focusflow.chain.errors import BlockError, TxError
from focusflow.chain.execute import Receipt, Rejected, execute_block
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.genesis import Genesis
from focusflow.chain.module import Ante, BlockContext, Deltas, Handler, Module
from focusflow.chain.state import PendingState
from focusflow.chain.tx import Tx, decode_tx
from focusflow.consensus.validators import has_two_thirds
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError, StoreError
from focusflow.core.keys import KeyPair, verify
from focusflow.da import ExtendedSquare
from focusflow.store import EMPTY, Commit, Store, height_key
from focusflow.store import update as smt_update

PARAMS_KEY = b"/kv/params"


@dataclass
class BlockResult:
    record: BlockRecord
    receipts: list[Receipt]
    rejected: list[Rejected]
    timings: dict[str, float]

    @property
    def block(self) -> Block:
        return self.record.block


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
        self.handlers: dict[str, Handler] = {}
        for module in self.modules:
            for mtype, handler in module.handlers().items():
                if mtype in self.handlers:
                    raise ValueError(f"message type {mtype!r} is claimed by two modules")
                self.handlers[mtype] = handler
        self.validators = genesis.validator_set()
        self.validators_hash = self.validators.hash()
        self._proposers = {v.address for v in self.validators.validators}
        self.focus = FocusState(self.params.focus)
        #: Called as ``listener(height, square)`` with each committed block's
        #: extended data square (da_commit.DAStore registers itself here).
        self.square_listeners: list[Callable[[int, ExtendedSquare], None]] = []
        with store.reader() as r:
            fresh = r.block(0) is None
            stored_genesis = r.meta(b"genesis")
        if fresh:
            self._commit_genesis()
        elif stored_genesis != genesis.hash:
            raise StoreError(f"the store at {store.path} belongs to another genesis")
        else:
            self._restore()

    # --- reading -------------------------------------------------------------
    @property
    def height(self) -> int:
        return self.head.height

    def reader(self):
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

    # --- producing -----------------------------------------------------------
    def produce_block(
        self,
        txs: Sequence[Tx | bytes],
        time_ms: int | None = None,
        *,
        verified: bool = False,
    ) -> BlockResult:
        """Make, sign and commit the next block from ``txs`` (in order, skipping bad ones).

        ``verified`` says the signatures were checked already (mempool).
        """
        if self.validator_key is None:
            raise BlockError("this node has no validator key and cannot produce blocks")
        t0 = time.perf_counter()
        decoded: list[Tx] = []
        rejected: list[Rejected] = []
        for tx in txs:
            if isinstance(tx, Tx):
                decoded.append(tx)
                continue
            try:
                decoded.append(decode_tx(tx, self.params.max_tx_bytes))
            except (TxError, DecodeError):
                continue
        if time_ms is None:
            time_ms = max(int(time.time() * 1000), self.head.time_ms + 1)
        proposer = self.validator_key.address_raw
        ctx, included, receipts, more_rejected = self._execute(
            self.height + 1, time_ms, proposer, decoded, verified, strict=False
        )
        rejected.extend(more_rejected)
        return self._finish(ctx, included, receipts, rejected, None, t0)

    def apply_block(self, record: BlockRecord | bytes) -> BlockResult:
        """Validate and commit a block made elsewhere; BlockError if it does not follow.

        A refused block changes nothing: if it was refused after its deltas
        reached the focus engine (its roots differ from ours), the engine is
        rebuilt from the stored blocks, as on a restart.
        """
        t0 = time.perf_counter()
        if isinstance(record, bytes):
            record = BlockRecord.decode(record)
        header = record.block.header
        head = self.head
        if header.chain_id != self.chain_id:
            raise BlockError(f"block for chain {header.chain_id!r}, not {self.chain_id!r}")
        if header.height != head.height + 1:
            raise BlockError(f"block height {header.height}, expected {head.height + 1}")
        if header.parent != head.hash:
            raise BlockError(f"block {header.height} does not extend our head")
        if header.time_ms <= head.time_ms:
            raise BlockError(f"block {header.height} time does not increase")
        if header.txs_root != txs_root(record.block.txs):
            raise BlockError(f"block {header.height} txs_root does not match its transactions")
        if header.validators_hash != self.validators_hash:
            raise BlockError(f"block {header.height} names another validator set")
        self._check_commit(record)
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
            ctx, included, receipts, _ = self._execute(
                header.height, header.time_ms, header.proposer, txs, False, strict=True
            )
        except TxError as exc:
            raise BlockError(f"block {header.height}: {exc.code}: {exc.message}") from None
        try:
            return self._finish(ctx, included, receipts, [], record, t0, square, da_seconds)
        except BlockError:
            if ctx.deltas:
                self.focus = FocusState(self.params.focus)
                self._restore()
            raise

    # --- pipeline ------------------------------------------------------------
    def _execute(self, height, time_ms, proposer, txs, verified, strict):
        with self.store.reader() as r:
            ctx = BlockContext(
                self.chain_id, height, time_ms, proposer, self.params, PendingState(r.get, r.items)
            )
            included, receipts, rejected = execute_block(
                ctx, self.modules, self.handlers, self.ante, txs, verified, strict
            )
            # The pending state reads through this reader, so every read of it
            # happens here; after this, the pipeline only adds writes to it.
        return ctx, included, receipts, rejected

    def _finish(
        self,
        ctx: BlockContext,
        included: list[Tx],
        receipts: list[Receipt],
        rejected: list[Rejected],
        received: BlockRecord | None,
        t0: float,
        square: ExtendedSquare | None = None,
        da_seconds: float = 0.0,
    ) -> BlockResult:
        """Commit the block; ``square`` is a received block's data square, already checked."""
        t_exec = time.perf_counter()
        for key, value in self.focus.apply(ctx.deltas).items():
            ctx.state.put(key, value)
        t_focus = time.perf_counter()
        with self.store.reader() as r:
            root, nodes = smt_update(r.node, r.root, ctx.state.writes.items())
        t_root = time.perf_counter()
        tx_bytes = tuple(tx.encoded for tx in included)
        if square is None:
            square = block_square(tx_bytes)
        data_root = square.data_root()
        t_da = time.perf_counter()
        header = Header(
            self.chain_id,
            ctx.height,
            ctx.time_ms,
            self.head.hash,
            txs_root(tx_bytes),
            root,
            self.focus.root,
            data_root,
            self.validators_hash,
            ctx.proposer,
            b"",
        )
        if received is not None:
            expected = received.block.header
            if expected.state_root != root or expected.focus_root != self.focus.root:
                raise BlockError(
                    f"block {ctx.height}: roots differ from our execution "
                    f"(state {root.hex()[:12]} vs {expected.state_root.hex()[:12]}, "
                    f"focus {self.focus.root.hex()[:12]} vs {expected.focus_root.hex()[:12]})"
                )
            if expected != header:
                raise BlockError(f"block {ctx.height}: header differs from our execution")
            record = BlockRecord(received.block, received.commit, ctx.deltas)
        else:
            block = Block(header, tx_bytes)
            sig = self.validator_key.sign(commit_sign_bytes(self.chain_id, ctx.height, block.hash))
            record = BlockRecord(block, [[self.validator_key.public_key, sig]], ctx.deltas)
        index = {b"b" + record.block.hash: height_key(ctx.height)}
        for i, receipt in enumerate(receipts):
            index[b"t" + receipt.tx_hash] = receipt.encode(ctx.height, i)
        self.store.commit(
            Commit(ctx.height, ctx.state.writes, nodes, root, record.encode(), index, {})
        )
        self.head = header
        t_end = time.perf_counter()
        for listener in self.square_listeners:
            listener(ctx.height, square)
        timings = {
            "execute": t_exec - t0 - da_seconds,
            "focus": t_focus - t_exec,
            "state_root": t_root - t_focus,
            "da": t_da - t_root + da_seconds,
            "persist": t_end - t_da,
            "total": t_end - t0,
        }
        return BlockResult(record, receipts, rejected, timings)

    def _check_commit(self, record: BlockRecord) -> None:
        """More than 2/3 of the validators' power signed this block."""
        header = record.block.header
        message = commit_sign_bytes(self.chain_id, header.height, record.block.hash)
        signed = 0
        seen: set[bytes] = set()
        for public_key, sig in record.commit:
            power = self.validators.power_of(public_key)
            if not power or public_key in seen or not verify(public_key, sig, message):
                raise BlockError(f"block {header.height} has an invalid commit signature")
            seen.add(public_key)
            signed += power
        total = self.validators.total_power
        if not has_two_thirds(signed, total):
            raise BlockError(f"block {header.height} commit has {signed} of {total} power")
        if header.proposer and header.proposer not in self._proposers:
            raise BlockError(f"block {header.height} proposer is not a validator")

    # --- genesis and restart ---------------------------------------------------
    def _commit_genesis(self) -> None:
        state = PendingState(lambda key: None)
        deltas = Deltas()
        for module in self.modules:
            module.init_genesis(state, self.genesis, deltas)
        state.put(PARAMS_KEY, encode(self.params.to_dict()))
        for key, value in self.focus.apply(deltas).items():
            state.put(key, value)
        root, nodes = smt_update({}.get, EMPTY, state.writes.items())
        header = Header(
            self.chain_id,
            0,
            self.genesis.genesis_time_ms,
            ZERO_HASH,
            txs_root(()),
            root,
            self.focus.root,
            block_square(()).data_root(),
            self.validators_hash,
            b"",
            b"",
        )
        record = BlockRecord(Block(header, ()), [], deltas)
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
        """Rebuild the graph and focus engine from the stored blocks' deltas.

        Going through every block's deltas with the same incremental updates
        the running node made reproduces its focus state exactly; each block's
        focus root is checked on the way.
        """
        with self.store.reader() as r:
            height = r.height
            head = None
            for h in range(height + 1):
                raw = r.block(h)
                if raw is None:
                    raise StoreError(f"block {h} is missing from the store at {self.store.path}")
                record = BlockRecord.decode(raw)
                self.focus.apply(record.edge_deltas())
                head = record.block.header
                if self.focus.root != head.focus_root:
                    raise StoreError(f"focus of block {h} does not recompute from its deltas")
            if head.state_root != r.root:
                raise StoreError("the store's root differs from its last block's state root")
        self.head = head


def replay(source: Chain, target: Chain, progress=None) -> None:
    """Re-execute every block of ``source`` on ``target`` (a fresh chain) and check roots."""
    for record in source.records(target.height + 1):
        target.apply_block(record)
        if progress is not None:
            progress(record.block.height)


__all__ = ["BlockResult", "Chain", "replay"]
