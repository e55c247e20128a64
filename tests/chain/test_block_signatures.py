"""A block's signatures checked together before its transactions run change no outcome.

``execute_block`` checks the Ed25519 signatures of a block it must verify in one
batch on every core (``core.sig_batch``) and lets a transaction whose signature
the batch found good skip its own check; any other transaction checks its
signature alone, as before. Each test runs the same block twice, with the
batch and with it switched off (every signature checked alone, the code before
the batch), and requires the same block, roots, receipts and refusals, each
refusal with its error code and message.
"""

from __future__ import annotations

import pytest

from focusflow.chain import execute
from focusflow.chain.errors import BlockError
from focusflow.core import sig_batch
from focusflow.core.encoding import decode, encode
from focusflow.testing.chains import ALICE, BOB, CAROL, link, new_chain, tx

T0 = 1_700_000_000_000


def _resigned(data: bytes, sig: bytes) -> bytes:
    value = decode(data)
    value[5] = sig
    return encode(value)


def _block(n: int) -> tuple[list[bytes], list[str]]:
    """``n`` transactions, every fifth one refused for one reason or another,
    with the code each refusal must carry."""
    txs, refused = [], []
    nonces = {ALICE.address: 0, BOB.address: 0, CAROL.address: 0}
    for i in range(n):
        key = (ALICE, BOB, CAROL)[i % 3]
        nonce = nonces[key.address]
        good = tx(key, nonce, link((f"a{i}", f"b{i}")))
        kind = i % 5
        if kind == 1:  # a zero signature
            txs.append(_resigned(good, bytes(64)))
            refused.append("bad_signature")
        elif kind == 2:  # another key's signature over the same bytes
            txs.append(_resigned(good, decode(tx(CAROL if key != CAROL else ALICE, nonce))[5]))
            refused.append("bad_signature")
        elif kind == 3:  # for another chain, and badly signed: the chain id is checked first
            other = tx(key, nonce, link((f"a{i}", f"b{i}")), chain_id="other")
            txs.append(_resigned(other, bytes(64)))
            refused.append("wrong_chain_id")
        elif kind == 4:  # below the minimum fee, and badly signed: the fee is checked first
            cheap = tx(key, nonce, link((f"a{i}", f"b{i}")), fee=10)
            txs.append(_resigned(cheap, bytes(64)))
            refused.append("insufficient_fee")
        else:
            txs.append(good)
            nonces[key.address] += 1
    return txs, refused


def _alone(txs, params):
    """What the chain did before the batch: nothing known good, every check alone."""
    return []


@pytest.mark.parametrize("n", [3, 60])
def test_a_produced_block_is_the_same_with_and_without_the_batch(tmp_path, monkeypatch, n):
    txs, refused = _block(n)
    batched = []
    real = execute.verify_batch
    monkeypatch.setattr(
        execute, "verify_batch", lambda items: batched.append(len(items)) or real(items)
    )
    a = new_chain(tmp_path / "a").produce_block(txs, time_ms=T0 + 1000)
    assert batched == [n]
    monkeypatch.setattr(execute, "_good_signatures", _alone)
    b = new_chain(tmp_path / "b").produce_block(txs, time_ms=T0 + 1000)
    assert [r.error.code for r in a.rejected] == refused
    assert [(r.tx.hash, r.error.code, r.error.message) for r in a.rejected] == [
        (r.tx.hash, r.error.code, r.error.message) for r in b.rejected
    ]
    assert a.record.encode() == b.record.encode()
    assert [(r.code, r.log) for r in a.receipts] == [(r.code, r.log) for r in b.receipts]
    assert len(a.block.txs) == n - len(refused)


def test_a_validated_block_with_a_bad_signature_is_refused_as_before(tmp_path, monkeypatch):
    """A producer that trusted its pool (``verified``) put a badly signed transaction
    in its block; a validator refuses the block with the same error, batch or not."""
    good = [tx(ALICE, i, link((f"x{i}", f"y{i}"))) for i in range(30)]
    bad = _resigned(tx(BOB, 0, link(("p", "q"))), bytes(64))
    record = (
        new_chain(tmp_path / "producer")
        .produce_block([*good[:20], bad, *good[20:]], time_ms=T0 + 1000, verified=True)
        .record.encode()
    )
    errors = []
    for name in ["batch", "alone"]:
        if name == "alone":
            monkeypatch.setattr(execute, "_good_signatures", _alone)
        chain = new_chain(tmp_path / name, producer=False)
        head = chain.head
        with pytest.raises(BlockError) as info:
            chain.apply_block(record)
        assert chain.head == head
        errors.append(info.value.message)
    assert errors[0] == errors[1]
    assert "bad_signature" in errors[0]


def test_a_good_block_validates_through_the_batch(tmp_path, monkeypatch):
    txs = [tx(ALICE, i, link((f"x{i}", f"y{i}"))) for i in range(40)]
    record = new_chain(tmp_path / "a").produce_block(txs, time_ms=T0 + 1000).record.encode()
    lone = []
    real = execute.Tx.verify_signature
    monkeypatch.setattr(execute.Tx, "verify_signature", lambda self: lone.append(1) or real(self))
    b = new_chain(tmp_path / "b", producer=False)
    b.apply_block(record)
    assert b.head.height == 1
    assert lone == []  # every signature was found good by the batch


def test_past_the_batch_limits_the_rest_are_checked_alone(tmp_path, monkeypatch):
    txs, refused = _block(30)
    monkeypatch.setattr(execute, "MAX_ITEMS", 7)
    a = new_chain(tmp_path / "a").produce_block(txs, time_ms=T0 + 1000)
    monkeypatch.setattr(execute, "MAX_ITEMS", sig_batch.MAX_ITEMS)
    monkeypatch.setattr(execute, "MAX_BYTES", 2_000)
    b = new_chain(tmp_path / "b").produce_block(txs, time_ms=T0 + 1000)
    monkeypatch.setattr(execute, "_good_signatures", _alone)
    c = new_chain(tmp_path / "c").produce_block(txs, time_ms=T0 + 1000)
    assert [r.error.code for r in a.rejected] == refused
    assert a.record.encode() == b.record.encode() == c.record.encode()
    assert [r.error.message for r in a.rejected] == [r.error.message for r in c.rejected]
    assert [r.error.message for r in b.rejected] == [r.error.message for r in c.rejected]
