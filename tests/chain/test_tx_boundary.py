"""Nothing inside one transaction fails its block: the transaction boundary.

A message handler that raises an exception it does not mean to (a bug, input
a library chokes on) gives its transaction a failed receipt, ``internal_error``
with the exception's class, on every node alike; the block goes on, the fee is
charged, the nonce used, and nothing else of the transaction stays. A module
that raises is registered beside the chain's own, so these tests hold whatever
the real modules' bugs of the day are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from focusflow.chain import Chain, Msg
from focusflow.chain.execute import MAX_RECEIPT_LOG
from focusflow.chain.module import BlockContext, Deltas, Handler, TxContext
from focusflow.chain.state import PendingState
from focusflow.modules import default_modules
from focusflow.modules.bank import ante
from focusflow.modules.dex import HaltedPools
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BOB, FEE, VALIDATOR, account, genesis, link, tx

T0 = 1_700_000_000_000
MARK = b"/kv/test-boom/mark"


class Boom:
    """A module whose ``boom`` message writes, emits, counts, then raises what
    its body names: the Python exceptions a buggy handler lets out."""

    name = "boom"
    RAISES: Mapping[str, type[BaseException]] = {
        "type": TypeError,
        "attribute": AttributeError,
        "key": KeyError,
        "value": ValueError,
        "zero": ZeroDivisionError,
        "index": IndexError,
        "overflow": OverflowError,
        "runtime": RuntimeError,
        "memory": MemoryError,
        "recursion": RecursionError,
    }

    def handlers(self) -> Mapping[str, Handler]:
        return {"boom": self.boom}

    def init_genesis(self, state: PendingState, genesis: Any, deltas: Deltas) -> None:
        """Nothing."""

    def end_block(self, ctx: BlockContext) -> None:
        """Nothing."""

    def boom(self, ctx: TxContext, body: dict) -> None:
        ctx.state.put(MARK, b"written")
        ctx.emit("boom", what=body["raise"])
        ctx.block.counters["boom"] = ctx.block.counters.get("boom", 0) + 1
        ctx.block.section(HaltedPools).pools.add("a|b")
        kind = body["raise"]
        if kind == "none":
            return
        # Text that differs on every run: a receipt must not carry it.
        raise self.RAISES[kind](f"detail {id(body)}")


def boom_chain(path, producer: bool = True) -> Chain:
    modules = [*default_modules(), Boom()]
    return Chain(
        Store(path), genesis(), modules, ante, validator_key=VALIDATOR if producer else None
    )


def boom(kind: str) -> Msg:
    return Msg("boom", {"raise": kind})


@pytest.mark.parametrize(
    "kind", ["type", "attribute", "key", "value", "zero", "index", "overflow", "runtime"]
)
def test_an_exception_in_a_handler_fails_its_receipt_not_the_block(tmp_path, kind):
    a = boom_chain(tmp_path / "a")
    b = boom_chain(tmp_path / "b", producer=False)
    before = account(a, ALICE)
    batch = [
        tx(BOB, 0, link(("x", "y"))),
        tx(ALICE, 0, link(("p", "q")), boom(kind)),
        tx(BOB, 1, link(("y", "z"))),
    ]
    result = a.produce_block(batch, time_ms=T0 + 1000)
    assert [r.code for r in result.receipts] == ["ok", "internal_error", "ok"]
    failed = result.receipts[1]
    name = Boom.RAISES[kind].__name__
    assert failed.log == f"internal error in message 1 (boom): {name}"
    assert failed.events == []
    after = account(a, ALICE)
    assert after.nonce == before.nonce + 1
    assert after.balance == before.balance - FEE
    with a.reader() as r:
        assert r.get(MARK) is None
    # The link of the failed transaction's first message is dropped with it.
    assert a.focus.graph.n_links == 2
    # A validator re-executing the block reaches the same root and receipts.
    b.apply_block(result.record.encode())
    assert b.head == a.head
    assert a.store.recompute_root() == a.head.state_root


def test_the_boundary_drops_the_transactions_marks_on_its_block(tmp_path):
    """Counters and halted pools the transaction set before it raised are put
    back; those of a transaction that succeeded stay."""
    from focusflow.chain.execute import execute_block

    chain = boom_chain(tmp_path)
    with chain.store.reader() as r:
        ctx = BlockContext(
            chain.chain_id, 1, T0, VALIDATOR.address_raw, chain.params, PendingState(r.get, r.items)
        )
        txs = [
            _decoded(tx(ALICE, 0, boom("none"))),
            _decoded(tx(BOB, 0, boom("value"))),
        ]
        _included, receipts, rejected = execute_block(
            ctx, chain.modules, chain.handlers, chain.ante, txs, verified=False, strict=True
        )
    assert [r.code for r in receipts] == ["ok", "internal_error"]
    assert ctx.counters.get("boom") == 1
    assert ctx.section(HaltedPools).pools == {"a|b"}
    assert rejected == []


@pytest.mark.parametrize("kind", ["memory", "recursion"])
def test_the_interpreter_running_out_of_room_is_not_a_receipt(tmp_path, kind):
    """Where the interpreter runs out of memory or stack depends on the machine:
    a receipt made from it could differ between validators, so it is let out
    (the limits of each module keep a transaction from getting there)."""
    chain = boom_chain(tmp_path)
    with pytest.raises(Boom.RAISES[kind]):
        chain.produce_block([tx(ALICE, 0, boom(kind))], time_ms=T0 + 1000)


def test_a_long_exception_name_is_cut_to_the_receipt_log(tmp_path):
    name = "E" * 2000
    error = type(name, (ValueError,), {})
    original = dict(Boom.RAISES)
    Boom.RAISES = {**original, "long": error}
    try:
        chain = boom_chain(tmp_path)
        result = chain.produce_block([tx(ALICE, 0, boom("long"))], time_ms=T0 + 1000)
    finally:
        Boom.RAISES = original
    (receipt,) = result.receipts
    assert receipt.code == "internal_error"
    assert len(receipt.log) == MAX_RECEIPT_LOG


def _decoded(raw: bytes):
    from focusflow.chain.tx import decode_tx

    return decode_tx(raw)


def test_an_ethereum_transaction_that_raises_is_left_out_and_the_block_goes_on(tmp_path):
    """An Ethereum transaction buys its gas inside its handler, so a handler
    that raises has charged nothing that stands: the boundary refuses it (a
    producer leaves it out, the pool drops it) and builds the rest."""
    from tests.chain.test_evm import _genesis, eth

    chain = Chain(Store(tmp_path), _genesis(), default_modules(), ante, validator_key=VALIDATOR)

    def raising(ctx: TxContext, body: dict) -> None:
        ctx.block.counters["evm_gas"] = 10**9
        raise AttributeError("a library's bug")

    chain.handlers["evm.tx"] = raising
    result = chain.produce_block([eth(0), tx(ALICE, 0, link(("x", "y")))], time_ms=T0 + 1000)
    assert [r.code for r in result.receipts] == ["ok"]
    (rejected,) = result.rejected
    assert rejected.error.code == "internal_error"
    assert rejected.error.message == "internal error in message 0 (evm.tx): AttributeError"
