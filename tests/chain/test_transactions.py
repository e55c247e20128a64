"""Transactions end to end: every refusal has its code and changes nothing else."""

from __future__ import annotations

import pytest

from focusflow.chain import Msg, decode_tx, make_tx
from focusflow.chain.errors import OverLimitError
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.testing.chains import (
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


# ------------------------------------------------------------------ receipt text

#: Two link messages whose CIDs are invalid, each in its own way.
BAD_CIDS = [bytes([0x01, 0x55, 0x12, 0x20]) + bytes(31), bytes([0x01, 0x77]), b"\x02" * 9]


def _bad_links() -> list[list[bytes]]:
    good = particle("good")
    return [[good, bad] for bad in BAD_CIDS] + [[bad, good] for bad in reversed(BAD_CIDS)]


def test_receipt_logs_are_ascii_whatever_the_user_wrote(tmp_path):
    """repr() of user text depends on the running Python's Unicode database (which
    characters it prints raw); a receipt log must not. Every non-ASCII character
    is escaped by code point, the way repr() escapes one it cannot print."""
    chain = new_chain(tmp_path)
    types = ["caf\u00e9", "\U0001fae8", "a\u200bb"]  # U+1FAE8: new in Unicode 15
    blocks = [chain.produce_block([tx(ALICE, i, Msg(t, {}))]) for i, t in enumerate(types)]
    logs = [b.receipts[0].log for b in blocks]
    assert logs == [
        "unknown message type 'caf\\xe9'",
        "unknown message type '\\U0001fae8'",
        "unknown message type 'a\\u200bb'",
    ]
    assert all(r.receipts[0].code == "malformed_message" for r in blocks)


def test_receipt_log_is_the_same_whether_repr_escaped_a_character_or_not():
    """One Python prints U+1FAE8 raw in repr(), an older one escapes it: both logs
    come out the same."""
    from focusflow.chain.execute import MAX_RECEIPT_LOG, receipt_log

    raw, escaped = "name '\U0001fae8' taken", "name '\\U0001fae8' taken"
    assert receipt_log(raw) == receipt_log(escaped) == escaped
    long = receipt_log("x" * 10_000)
    assert len(long) == MAX_RECEIPT_LOG and long.endswith("...")


def test_a_bad_link_names_the_first_bad_cid_in_link_order(tmp_path):
    chain = new_chain(tmp_path)
    r = chain.produce_block([tx(ALICE, 0, Msg("link", {"links": _bad_links()}))])
    assert r.receipts[0].code == "unknown_particle_format"
    assert r.receipts[0].log.startswith(f"links[0]: invalid CID {BAD_CIDS[0].hex()}")


_FIRST_ERROR = """
import sys
from focusflow.chain.errors import TxError
from focusflow.modules.links import Links
links = [[bytes.fromhex(a), bytes.fromhex(b)] for a, b in (p.split(":") for p in sys.argv[1:])]
try:
    Links()._check_entries(links)
except TxError as exc:
    print(exc.message)
"""


def test_the_bad_link_error_does_not_depend_on_set_order():
    """Which bad CID a set of CIDs yields first depends on the hash seed and on the
    other members (the table's size and collisions); vary the members with good
    links after the bad ones: the error must name links[0] every time."""
    from focusflow.chain.errors import TxError
    from focusflow.modules.links import Links

    for fillers in range(40):
        links = _bad_links() + [[particle(f"f{i}"), particle(f"g{i}")] for i in range(fillers)]
        with pytest.raises(TxError) as info:
            Links()._check_entries(links)
        assert info.value.message.startswith(f"links[0]: invalid CID {BAD_CIDS[0].hex()}")


@pytest.mark.slow
def test_the_bad_link_error_does_not_depend_on_the_hash_seed():
    """Sets of bytes iterate in an order set by PYTHONHASHSEED, which differs between
    processes: the error (and so the receipt) must not follow it."""
    import os
    import subprocess
    import sys

    args = [f"{a.hex()}:{b.hex()}" for a, b in _bad_links()]
    messages = set()
    for seed in range(6):
        env = dict(os.environ, PYTHONHASHSEED=str(seed))
        out = subprocess.run(
            [sys.executable, "-c", _FIRST_ERROR, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        messages.add(out.stdout.strip())
    assert len(messages) == 1, messages
    assert messages.pop().startswith(f"links[0]: invalid CID {BAD_CIDS[0].hex()}")
