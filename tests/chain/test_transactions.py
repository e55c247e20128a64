"""Transactions end to end: every refusal has its code and changes nothing else."""

from __future__ import annotations

import pytest

from focusflow.chain import Msg, decode_tx, make_tx
from focusflow.chain.errors import OverLimitError
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from tests.chain.helpers import (
    ALICE,
    BOB,
    CHAIN_ID,
    FEE,
    STAKE,
    account,
    link,
    new_chain,
    particle,
    tx,
)


def test_tx_round_trip_and_signature():
    t = make_tx(ALICE, CHAIN_ID, 3, FEE, [Msg("send", {"to": BOB.address_raw, "amount": 5})])
    back = decode_tx(t.encoded)
    assert back == t and back.hash == t.hash
    back.verify_signature()
    value = decode(t.encoded)
    value[3] += 1  # raise the fee after signing
    forged = decode_tx(encode(value))
    with pytest.raises(Exception) as info:
        forged.verify_signature()
    assert info.value.code == "bad_signature"


def test_decoded_sign_bytes_equal_the_encoded_fields():
    """A decoded tx signs over slices of its own bytes; they must be sign_bytes() exactly."""
    from focusflow.chain.tx import sign_bytes

    bodies = [
        [Msg("send", {"to": BOB.address_raw, "amount": 2**63 - 1})],
        [Msg("link", {"links": [[particle(str(i)), particle(str(i + 1))] for i in range(300)]})],
        [Msg("name.register", {"name": "a" * 32, "cid": particle("x")})] * 3,
    ]
    for nonce, fee, msgs in [(0, 1, bodies[0]), (2**64 - 1, 2**40, bodies[1]), (24, 23, bodies[2])]:
        t = make_tx(ALICE, "c" * 64, nonce, fee, msgs)
        back = decode_tx(t.encoded)
        assert back.sign_bytes() == sign_bytes(t.chain_id, t.sender, nonce, fee, t.msgs)
        back.verify_signature()


@pytest.mark.parametrize(
    "make, code",
    [
        (lambda: _resigned(tx(ALICE, 0, link(("a", "b"))), sig=bytes(64)), "bad_signature"),
        (lambda: tx(ALICE, 0, link(("a", "b")), chain_id="other"), "wrong_chain_id"),
        (lambda: tx(ALICE, 5, link(("a", "b"))), "bad_nonce"),
        (lambda: tx(ALICE, 0, link(("a", "b")), fee=10), "insufficient_fee"),
    ],
)
def test_uninclusable_transactions_are_left_out(tmp_path, make, code):
    chain = new_chain(tmp_path)
    root = chain.head.state_root
    result = chain.produce_block([make()])
    assert result.block.txs == ()
    assert [r.error.code for r in result.rejected] == [code]
    assert chain.head.state_root == root


def _resigned(data: bytes, sig: bytes) -> bytes:
    value = decode(data)
    value[5] = sig
    return encode(value)


def test_failing_transaction_only_pays_its_fee(tmp_path):
    chain = new_chain(tmp_path)
    before = account(chain, ALICE)
    bob_before = account(chain, BOB)
    big = Msg("send", {"to": BOB.address_raw, "amount": before.balance * 2})
    result = chain.produce_block([tx(ALICE, 0, big)])
    assert [r.code for r in result.receipts] == ["insufficient_funds"]
    after = account(chain, ALICE)
    assert after.balance == before.balance - FEE
    assert after.nonce == before.nonce + 1
    assert after.bonded == before.bonded
    assert account(chain, BOB).balance == bob_before.balance


@pytest.mark.parametrize(
    "msg, code",
    [
        (Msg("nope", {}), "malformed_message"),
        (Msg("send", {"to": b"short", "amount": 1}), "malformed_message"),
        (Msg("send", {"to": BOB.address_raw, "amount": -1}), "malformed_message"),
        (Msg("send", {"to": BOB.address_raw, "amount": 1, "x": 1}), "malformed_message"),
        (Msg("link", {"links": []}), "malformed_message"),
        (Msg("link", {"links": [[b"junk", particle("b")]]}), "unknown_particle_format"),
        (Msg("link", {"links": [[1, particle("b")]]}), "unknown_particle_format"),
        (Msg("link", {"links": [[particle("a"), particle("a")]]}), "malformed_message"),
        (Msg("link", {"links": [[[], {}]]}), "unknown_particle_format"),
        (Msg("blob.put", {"data": bytes(300_000)}), "over_limit"),
        (Msg("name.register", {"name": "Bad_Name", "cid": particle("a")}), "invalid_name"),
        (Msg("name.transfer", {"name": "ghost", "to": BOB.address_raw}), "unknown_name"),
        (Msg("unstake", {"amount": STAKE + 1}), "insufficient_funds"),
    ],
)
def test_message_errors_have_stable_codes_and_leave_state(tmp_path, msg, code):
    chain = new_chain(tmp_path)
    before = account(chain, ALICE)
    result = chain.produce_block([tx(ALICE, 0, msg)])
    assert [r.code for r in result.receipts] == [code]
    after = account(chain, ALICE)
    assert (after.balance, after.bonded) == (before.balance - FEE, before.bonded)
    with chain.reader() as r:
        assert list(r.items(b"/graph/links/")) == []
        assert list(r.items(b"/kv/")) == [] or all(
            not k.startswith((b"/kv/name/", b"/kv/blob/")) for k, _ in r.items(b"/kv/")
        )


def test_all_messages_of_a_failing_transaction_are_undone(tmp_path):
    chain = new_chain(tmp_path)
    good = Msg("send", {"to": BOB.address_raw, "amount": 7})
    bad = Msg("send", {"to": BOB.address_raw, "amount": 10**18})
    bob = account(chain, BOB).balance
    result = chain.produce_block([tx(ALICE, 0, good, bad)])
    assert result.receipts[0].code == "insufficient_funds"
    assert account(chain, BOB).balance == bob


def test_oversize_transaction_is_refused_before_decoding():
    with pytest.raises(OverLimitError):
        decode_tx(b"\x00" * 100, max_bytes=10)
    with pytest.raises(DecodeError):
        decode_tx(b"\x00" * 100)
