"""What each module does to state, focus and balances."""

from __future__ import annotations

import numpy as np

from focusflow.chain import Msg
from focusflow.chain.focus_commit import SCALE, focus_root
from focusflow.core.encoding import decode
from focusflow.modules.blobs import blob_cid
from focusflow.state_schema.accounts import get_neudeg
from focusflow.state_schema.blobs import BLOB_PREFIX
from focusflow.state_schema.names import address_of, resolve
from focusflow.testing.chains import (
    ALICE,
    BOB,
    CAROL,
    FEE,
    STAKE,
    VALIDATOR,
    account,
    genesis,
    link,
    new_chain,
    particle,
    tx,
)


def test_send_moves_tokens_and_pays_fee_to_proposer(tmp_path):
    chain = new_chain(tmp_path)
    a, b, v = account(chain, ALICE), account(chain, BOB), account(chain, VALIDATOR)
    chain.produce_block([tx(ALICE, 0, Msg("send", {"to": BOB.address_raw, "amount": 123}))])
    assert account(chain, ALICE).balance == a.balance - 123 - FEE
    assert account(chain, BOB).balance == b.balance + 123
    assert account(chain, VALIDATOR).balance == v.balance + FEE


def test_unstake_releases_after_unbonding_period(tmp_path):
    chain = new_chain(tmp_path, genesis(unbonding_blocks=3, evidence_max_age=0, epoch_blocks=2))
    start = account(chain, ALICE)
    result = chain.produce_block([tx(ALICE, 0, Msg("unstake", {"amount": 1000}))])
    assert result.receipts[0].ok
    release = result.receipts[0].events[0]["release_height"]
    assert release == 1 + 3
    assert account(chain, ALICE).bonded == STAKE - 1000
    while chain.height < release - 1:
        chain.produce_block([])
        assert account(chain, ALICE).balance == start.balance - FEE
    chain.produce_block([])
    assert account(chain, ALICE).balance == start.balance - FEE + 1000


def test_links_spend_budget_burn_tokens_and_move_focus(tmp_path):
    chain = new_chain(tmp_path, genesis(min_link_weight=STAKE // 4, link_burn=5))
    before = account(chain, ALICE)
    r = chain.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c"), ("c", "a")))])
    assert r.receipts[0].ok
    assert account(chain, ALICE).balance == before.balance - FEE - 15
    q = chain.focus.q
    assert len(q) == 3 and abs(int(q.sum()) - SCALE) <= 3
    assert chain.head.focus_root == focus_root(q)
    # A fourth link fits the budget exactly; a fifth does not.
    assert chain.produce_block([tx(ALICE, 1, link(("a", "c")))]).receipts[0].ok
    r = chain.produce_block([tx(ALICE, 2, link(("b", "a")))])
    assert r.receipts[0].code == "over_link_budget"
    # Unstaking below what the links need is refused too.
    r = chain.produce_block([tx(ALICE, 3, Msg("unstake", {"amount": 1}))])
    assert r.receipts[0].code == "over_link_budget"


def test_stake_moves_focus_toward_the_staker(tmp_path):
    chain = new_chain(tmp_path)
    chain.produce_block([tx(ALICE, 0, link(("x", "a"))), tx(BOB, 0, link(("x", "b")))])
    ia, ib = (chain.focus.focus_of(particle(p))[1] for p in "ab")
    assert chain.focus.q[ia] == chain.focus.q[ib]
    chain.produce_block([tx(ALICE, 1, Msg("stake", {"amount": 9 * STAKE}))])
    assert chain.focus.q[ia] > chain.focus.q[ib]
    with chain.reader() as r:
        info = decode(r.get(b"/graph/focus"))
    assert info["root"] == chain.head.focus_root and info["particles"] == 3


def test_names_register_update_transfer(tmp_path):
    chain = new_chain(tmp_path, genesis(name_fee=1000))
    before = account(chain, ALICE).balance
    r = chain.produce_block(
        [tx(ALICE, 0, Msg("name.register", {"name": "focus", "cid": particle("a")}))]
    )
    assert r.receipts[0].ok
    assert account(chain, ALICE).balance == before - FEE - 1000
    r = chain.produce_block(
        [
            tx(BOB, 0, Msg("name.register", {"name": "focus", "cid": particle("b")})),
            tx(BOB, 1, Msg("name.update", {"name": "focus", "cid": particle("b")})),
            tx(ALICE, 1, Msg("name.register", {"name": "abc", "cid": particle("c")})),
        ]
    )
    assert [x.code for x in r.receipts] == ["name_taken", "not_owner", "ok"]
    assert account(chain, ALICE).balance == before - 2 * FEE - 1000 - 10_000  # short name: 10x
    chain.produce_block(
        [tx(ALICE, 2, Msg("name.transfer", {"name": "focus", "to": CAROL.address_raw}))]
    )
    r = chain.produce_block(
        [tx(CAROL, 0, Msg("name.update", {"name": "focus", "cid": particle("z")}))]
    )
    assert r.receipts[0].ok
    with chain.reader() as rd:
        assert resolve(rd, "focus") == (particle("z"), CAROL.address_raw)
        assert resolve(rd, "nobody") is None


def test_a_name_says_where_its_node_listens_and_only_its_owner_may(tmp_path):
    chain = new_chain(tmp_path, genesis(name_fee=1000))
    chain.produce_block(
        [tx(ALICE, 0, Msg("name.register", {"name": "node-one", "cid": particle("a")}))]
    )

    def address(sender, nonce, where):
        body = {"name": "node-one", "address": where}
        return chain.produce_block([tx(sender, nonce, Msg("name.address", body))]).receipts[0]

    assert address(ALICE, 1, "10.0.0.1:26656").ok
    with chain.reader() as rd:
        assert address_of(rd, "node-one") == ("10.0.0.1", 26656)
    assert address(ALICE, 2, "[2001:DB8::1]:443").ok  # stored in its compressed form
    with chain.reader() as rd:
        assert address_of(rd, "node-one") == ("2001:db8::1", 443)
    assert address(ALICE, 3, "Seed.Example.org:9000").ok
    with chain.reader() as rd:
        root = rd.root
        assert address_of(rd, "node-one") == ("seed.example.org", 9000)
    refused = [
        (BOB, "10.0.0.2:1", "not_owner"),
        (ALICE, "10.0.0.2", "invalid_name"),  # no port
        (ALICE, "10.0.0.2:0", "invalid_name"),
        (ALICE, "10.0.0.2:65536", "invalid_name"),
        (ALICE, "2001:db8::1:443", "invalid_name"),  # IPv6 without brackets
        (ALICE, "[10.0.0.1]:443", "invalid_name"),
        (ALICE, "bad_host!:1", "invalid_name"),
        (ALICE, "-lead.example:1", "invalid_name"),
        (ALICE, ("a" * 64) + ".example:1", "invalid_name"),
        (ALICE, "x" * 300 + ":1", "invalid_name"),
    ]
    nonces = {ALICE: 4, BOB: 0}
    for sender, where, code in refused:
        receipt = address(sender, nonces[sender], where)
        nonces[sender] += 1  # a refused message still pays its fee
        assert receipt.code == code, (where, receipt.code)
        with chain.reader() as rd:
            assert address_of(rd, "node-one") == ("seed.example.org", 9000)
    n = nonces[ALICE]
    assert address(ALICE, n, "").ok  # removed
    with chain.reader() as rd:
        assert address_of(rd, "node-one") is None and rd.root != root
    assert address(ALICE, n + 1, "10.0.0.3:7").ok
    chain.produce_block(
        [tx(ALICE, n + 2, Msg("name.transfer", {"name": "node-one", "to": CAROL.address_raw}))]
    )
    with chain.reader() as rd:  # the new owner says where its own node is
        assert address_of(rd, "node-one") is None


def test_blob_is_stored_by_cid_and_paid_per_byte(tmp_path):
    chain = new_chain(tmp_path, genesis(blob_credit_per_byte=3))
    data = b"hello blob" * 100
    before = account(chain, ALICE).balance
    r = chain.produce_block([tx(ALICE, 0, Msg("blob.put", {"data": data}))])
    assert r.receipts[0].ok and r.receipts[0].events[0]["cid"] == blob_cid(data)
    assert account(chain, ALICE).balance == before - FEE - 3 * len(data)
    with chain.reader() as rd:
        assert rd.get(BLOB_PREFIX + blob_cid(data)) == data


def test_state_proofs_verify_against_the_header(tmp_path):
    from focusflow.store import verify_proof
    from focusflow.store.smt import Proof

    chain = new_chain(tmp_path)
    chain.produce_block([tx(ALICE, 0, link(("a", "b")))])
    with chain.reader() as r:
        keys = [k for k, _ in r.items(b"/")]
        for key in keys:
            value, proof = r.prove(key)
            proof = Proof.decode(proof.encode())
            assert verify_proof(chain.head.state_root, key, value, proof)
        value, proof = r.prove(b"/kv/name/absent")
        assert value is None and verify_proof(
            chain.head.state_root, b"/kv/name/absent", None, proof
        )
    assert len(keys) > 5
    assert np.all(chain.focus.q > 0)


def test_max_links_per_tx_counts_the_links_of_every_message(tmp_path):
    """Two link messages of 6 links each, limit 10: the transaction fails as a whole
    (fee and nonce spent, no link, no burn), although each message is under the limit."""
    chain = new_chain(tmp_path, genesis(max_links_per_tx=10, link_burn=5))
    before = account(chain, ALICE)
    six = [(f"p{i}", f"q{i}") for i in range(6)]
    r = chain.produce_block([tx(ALICE, 0, link(*six), link(*six))])
    receipt = r.receipts[0]
    assert receipt.code == "over_limit"
    assert receipt.log == (
        "12 links in one transaction exceed max_links_per_tx=10 "
        "(6 in earlier messages + 6 in this one)"
    )
    after = account(chain, ALICE)
    assert (after.balance, after.nonce, after.bonded) == (before.balance - FEE, 1, before.bonded)
    with chain.reader() as reader:
        assert get_neudeg(reader, ALICE.address_raw) == 0
    assert len(chain.focus.q) == 0
    # Exactly the limit over two messages is fine; one message over it says so alone.
    five = six[:5]
    assert chain.produce_block([tx(ALICE, 1, link(*five), link(*five))]).receipts[0].ok
    r = chain.produce_block([tx(ALICE, 2, link(*(six + six[:5])))])
    assert r.receipts[0].log == "11 links in one transaction exceed max_links_per_tx=10"
