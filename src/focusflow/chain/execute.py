"""Executing a block's transactions: checks, the ante step, messages, end of block.

Every transaction passes, in order:

1. stateless checks: chain id, size and message-count limits, minimum fee,
   signature (skipped when the mempool already verified it, or when the
   block's signatures checked together beforehand found it good);
2. the ante step (bank): nonce equals the account's, and the fee is charged;
3. its messages, each by the module that owns the type, in a child state.

A transaction failing 1 or 2 cannot be in a block: a producer leaves it out,
a validator refuses a block that contains it. A transaction failing 3 stays in
the block with its error code in the receipt; its fee is charged and its nonce
used, and nothing else it did survives.

Nothing one transaction does can fail its block. Step 3 runs inside one
boundary, as the Cosmos SDK's ``runTx`` recovers a panic: a handler's
deliberate error (a ``FocusflowError``) becomes the receipt's code and log, and
any other exception (a bug, input a library chokes on) becomes the code
``internal_error`` with the exception's class name as the log, never its text
or a traceback, which may differ between library versions; the transaction's
writes, events and changes to the block's running counters are dropped. Two
errors are not caught: ``MemoryError`` and ``RecursionError`` say that the
interpreter itself ran out of room, where it stops is not the same on every
machine, and a receipt made from it could differ between validators; the
limits each module sets (gas, sizes, depths) keep a transaction from reaching
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from focusflow.chain.errors import (
    BlockFullError,
    InsufficientFeeError,
    InternalError,
    MalformedMessageError,
    OverLimitError,
    TxError,
)
from focusflow.chain.module import Ante, BlockContext, BlockRoom, Handler, Module, TxContext
from focusflow.chain.params import ChainParams
from focusflow.chain.scheduler import Scheduler, Speculation
from focusflow.chain.tx import Tx
from focusflow.core.encoding import encode
from focusflow.core.errors import FocusflowError
from focusflow.core.sig_batch import MAX_BYTES, MAX_ITEMS, verify_batch

#: Longest receipt log committed, in characters after escaping; the rest is cut.
MAX_RECEIPT_LOG = 512
#: Exceptions the transaction boundary lets out: the interpreter ran out of
#: memory or stack, at a point that depends on the machine (module docstring).
UNCAUGHT = (MemoryError, RecursionError)


def receipt_log(message: str) -> str:
    """The log a receipt commits for an error message: the same text on every node.

    Receipts are committed, so their text must not depend on the node. Messages
    quote user strings with ``!r``, and ``repr`` decides which characters to
    escape from the running Python's Unicode database: a character added in a
    newer Unicode version is printed raw by one Python and escaped by another.
    Here every non-ASCII character is written as ``repr`` writes an escaped one
    (``\\xhh``, ``\\uhhhh``, ``\\Uhhhhhhhh``, from the code point alone), so both
    spellings become the same ASCII text; a log over MAX_RECEIPT_LOG characters
    is cut, so a huge user string cannot bloat every node's receipts.
    """
    text = message.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) > MAX_RECEIPT_LOG:
        text = text[: MAX_RECEIPT_LOG - 3] + "..."
    return text


@dataclass
class Receipt:
    tx_hash: bytes
    code: str
    log: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code == "ok"

    def encode(self, height: int, index: int) -> bytes:
        return encode([height, index, self.code, self.log, self.events])


@dataclass
class Rejected:
    """A transaction that cannot be included, and why."""

    tx: Tx
    error: TxError


def check_stateless(
    tx: Tx, params: ChainParams, chain_id: str, verified: bool, fee_per_byte: int | None = None
) -> None:
    tx.check_chain(chain_id)
    size = len(tx.encoded)
    if size > params.max_tx_bytes:
        raise OverLimitError(
            f"transaction of {size} bytes exceeds max_tx_bytes={params.max_tx_bytes}"
        )
    if len(tx.msgs) > params.max_msgs_per_tx:
        raise OverLimitError(
            f"{len(tx.msgs)} messages exceed max_msgs_per_tx={params.max_msgs_per_tx}"
        )
    need = params.min_fee(size, fee_per_byte)
    if tx.fee < need:
        raise InsufficientFeeError(f"fee {tx.fee} is below the minimum {need} for {size} bytes")
    if not verified:
        tx.verify_signature()


def execute_tx(
    ctx: BlockContext,
    handlers: Mapping[str, Handler],
    ante: Ante,
    tx: Tx,
    index: int,
    verified: bool,
) -> Receipt:
    """Run one transaction into ``ctx``; raises TxError when it cannot be included."""
    check_stateless(tx, ctx.params, ctx.chain_id, verified, ctx.fee_per_byte)
    if tx.self_charging:
        return _execute_self_charging(ctx, handlers, tx, index)
    charged = ctx.state.child()
    sender = tx.sender_address
    ante(charged, ctx.params, sender, tx.nonce, tx.fee)
    ctx.state.merge(charged)
    ctx.fees += tx.fee
    run = TxContext(ctx, sender, index, 0, ctx.state.child(), sender_key=tx.sender, tx=tx)
    block_marks = _BlockMarks(ctx)
    try:
        for i, msg in enumerate(tx.msgs):
            handler = handlers.get(msg.type)
            if handler is None:
                raise MalformedMessageError(f"unknown message type {msg.type!r}")
            run.msg_index = i
            handler(run, msg.body)
    except FocusflowError as exc:  # TxError among them
        return Receipt(tx.hash, exc.code, receipt_log(exc.message))
    except UNCAUGHT:
        raise
    except Exception as exc:  # noqa: BLE001 - the transaction boundary: module docstring
        block_marks.restore(ctx)
        return Receipt(tx.hash, InternalError.code, receipt_log(internal_log(exc, tx, run)))
    ctx.state.merge(run.state)
    ctx.deltas.merge(run.deltas)
    return Receipt(tx.hash, "ok", "", run.events)


def _execute_self_charging(
    ctx: BlockContext, handlers: Mapping[str, Handler], tx: Tx, index: int
) -> Receipt:
    """A transaction whose one message checks its nonce and balance and charges
    its own fee (an Ethereum transaction: the EVM buys its gas, refunds what
    is left and pays the tip). An error its handler raises means the
    transaction cannot be in a block; a failure after the charge (an EVM
    revert) is the handler's ``failure``, recorded in the receipt with the
    charge kept."""
    (msg,) = tx.msgs
    handler = handlers.get(msg.type)
    if handler is None:
        raise MalformedMessageError(f"unknown message type {msg.type!r}")
    run = TxContext(ctx, tx.sender_address, index, 0, ctx.state.child(), tx=tx)
    block_marks = _BlockMarks(ctx)
    try:
        handler(run, msg.body)
    except FocusflowError:
        raise
    except UNCAUGHT:
        raise
    except Exception as exc:  # noqa: BLE001 - the transaction boundary: module docstring
        # It charged nothing that stands (its writes are in ``run.state``), so
        # it cannot stay in the block: it is refused, as an invalid one is.
        block_marks.restore(ctx)
        raise InternalError(internal_log(exc, tx, run)) from None
    ctx.state.merge(run.state)
    ctx.deltas.merge(run.deltas)
    if run.failure is not None:
        code, log = run.failure
        return Receipt(tx.hash, code, receipt_log(log), run.events)
    return Receipt(tx.hash, "ok", "", run.events)


def internal_log(exc: Exception, tx: Tx, run: TxContext) -> str:
    """The receipt log of an exception the boundary caught: the message that
    raised it and the exception's class, the same on every node."""
    msg = tx.msgs[run.msg_index] if run.msg_index < len(tx.msgs) else None
    where = f"message {run.msg_index} ({msg.type})" if msg is not None else "the transaction"
    return f"internal error in {where}: {type(exc).__name__}"


class _BlockMarks:
    """What a transaction may change of its block besides its own state: the
    running counters (the EVM's gas and logs), the modules' block sections
    (the pools halted) and the block's events. Taken before its messages run;
    put back when the boundary drops the transaction."""

    def __init__(self, ctx: BlockContext) -> None:
        self.counters = dict(ctx.counters)
        self.sections = {name: section.copy() for name, section in ctx.sections.items()}
        self.events = len(ctx.events)

    def restore(self, ctx: BlockContext) -> None:
        ctx.counters.clear()
        ctx.counters.update(self.counters)
        ctx.sections.clear()
        ctx.sections.update(self.sections)
        del ctx.events[self.events :]


def execute_block(
    ctx: BlockContext,
    modules: Sequence[Module],
    handlers: Mapping[str, Handler],
    ante: Ante,
    txs: Sequence[Tx],
    verified: bool,
    strict: bool,
    scheduler: Scheduler | None = None,
    rooms: Sequence[BlockRoom] = (),
) -> tuple[list[Tx], list[Receipt], list[Rejected]]:
    """Execute ``txs`` in order, then every module's end of block.

    ``strict`` (validating someone else's block): a transaction that cannot be
    included raises. Otherwise (producing) it is left out and reported, and the
    block stops growing at the byte and count limits and at what ``rooms``
    meter (``BlockRoom``: a transaction that would not fit waits in the pool
    for a later block). ``scheduler`` runs the
    transactions it takes ahead, against the block-start state, and their
    write-sets are merged here where nothing they read has changed
    (``chain.scheduler``); the result is the serial one, bit for bit.
    """
    good = [] if verified else _good_signatures(txs, ctx.params)
    all_good = verified or (len(good) == len(txs) and all(good))
    speculated = scheduler.speculate(ctx, handlers, ante, txs, all_good) if scheduler else {}
    written: set[bytes] = set()
    included: list[Tx] = []
    receipts: list[Receipt] = []
    rejected: list[Rejected] = []
    size = 0
    for position, tx in enumerate(txs):
        if len(included) >= ctx.params.max_block_txs:
            if strict:
                raise OverLimitError(f"block has more than {ctx.params.max_block_txs} transactions")
            break
        if size + len(tx.encoded) > ctx.params.max_block_bytes:
            if strict:
                raise OverLimitError(f"block exceeds {ctx.params.max_block_bytes} bytes")
            continue
        spec = speculated.get(position)
        try:
            takes = [room.room(ctx, tx) for room in rooms]
            checked = verified or (position < len(good) and good[position])
            receipt, merged = _run_one(
                ctx, handlers, ante, tx, len(included), checked, spec, written, bool(speculated)
            )
            if scheduler is not None:
                scheduler.built(receipt, spec, merged)
        except BlockFullError:
            if strict:
                raise
            continue  # stays in the pool: a later block has room
        except TxError as exc:
            if strict:
                raise
            rejected.append(Rejected(tx, exc))
            continue
        for taken in takes:
            for counter, amount in taken.items():
                ctx.counters[counter] = ctx.counters.get(counter, 0) + amount
        size += len(tx.encoded)
        included.append(tx)
        receipts.append(receipt)
    if ctx.params.economics:
        _count_fees(ctx, included)
    for module in modules:
        module.end_block(ctx)
    return included, receipts, rejected


def _good_signatures(txs: Sequence[Tx], params: ChainParams) -> list[bool]:
    """The block's Ed25519 signatures checked together, on every core
    (``core.sig_batch``), before its transactions run one by one.

    True where ``tx.verify_signature()`` passes (``verify_batch`` answers what
    ``keys.verify`` does, item for item), so the transaction's own check may be
    skipped; False where it fails *or was not looked at*: that transaction
    checks its signature alone in ``check_stateless``, so it fails with the
    error, at the point among its checks, that it always did. Not looked at:
    past ``max_block_txs`` or the batch's limits, an Ethereum transaction
    (its own signature scheme), fields that are not bytes, or sign bytes that
    cannot be made (the lone check meets that again).
    """
    where: list[int] = []
    items: list[tuple[bytes, bytes, bytes]] = []
    size = 0
    for position, tx in enumerate(txs[: params.max_block_txs]):
        if type(tx).verify_signature is not Tx.verify_signature:
            continue
        if not isinstance(tx.sender, bytes) or not isinstance(tx.signature, bytes):
            continue
        try:
            message = tx.sign_bytes()
        except Exception:  # noqa: BLE001 - left to the lone check, which raises it in its place
            continue
        size += len(tx.sender) + len(tx.signature) + len(message)
        if len(items) == MAX_ITEMS or size > MAX_BYTES:
            break
        where.append(position)
        items.append((tx.sender, tx.signature, message))
    good = [False] * min(len(txs), params.max_block_txs)
    for position, ok in zip(where, verify_batch(items), strict=True):
        good[position] = ok
    return good


def _run_one(
    ctx: BlockContext,
    handlers: Mapping[str, Handler],
    ante: Ante,
    tx: Tx,
    index: int,
    verified: bool,
    spec: Speculation | None,
    written: set[bytes],
    speculating: bool,
) -> tuple[Receipt, bool]:
    """One transaction of the block at ``index``: its speculation merged where
    it still holds, else run now; the receipt, and whether it was merged."""
    if spec is not None and spec.holds(index, written):
        return _merge(ctx, spec, written), True
    if speculating:
        return _execute_layer(ctx, handlers, ante, tx, index, verified, written), False
    # Nothing ran ahead: no speculation needs the written keys.
    return execute_tx(ctx, handlers, ante, tx, index, verified), False


def _count_fees(ctx: BlockContext, included: Sequence[Tx]) -> None:
    """What the economy splits: the least fee of every included transaction that
    paid one (the rest of each fee is its proposer's tip), in all and by sender."""
    charged = [t for t in included if not t.self_charging]
    ctx.counters["tx_bytes"] = sum(len(t.encoded) for t in charged)
    payers = ctx.fee_payers
    for t in charged:
        base = ctx.params.min_fee(len(t.encoded), ctx.fee_per_byte)
        payers[t.sender_address] = payers.get(t.sender_address, 0) + base
    ctx.counters["base_fees"] = sum(payers.values())


def _merge(ctx: BlockContext, spec: Speculation, written: set[bytes]) -> Receipt:
    """A speculative run's effects, as running the transaction now would have had them."""
    if spec.error is not None:
        raise spec.error
    assert spec.receipt is not None
    ctx.state.writes.update(spec.writes)
    written.update(spec.writes)
    ctx.fees += spec.fees
    ctx.deltas.merge(spec.deltas)
    return spec.receipt


def _execute_layer(
    ctx: BlockContext,
    handlers: Mapping[str, Handler],
    ante: Ante,
    tx: Tx,
    index: int,
    verified: bool,
    written: set[bytes],
) -> Receipt:
    """``execute_tx`` on a layer of the block's state, whose keys then count as
    written for the speculations of the transactions after it."""
    block_state = ctx.state
    layer = block_state.child()
    ctx.state = layer
    try:
        receipt = execute_tx(ctx, handlers, ante, tx, index, verified)
    finally:
        ctx.state = block_state
    block_state.merge(layer)
    written.update(layer.writes)
    return receipt
