"""The client's typed methods against a real devnet: each names its endpoint and
reads its answer, and the node's refusals arrive with the node's codes."""

from __future__ import annotations

import pytest

from focusflow.chain import Msg
from focusflow.client import NodeClient, RemoteError, ReportedAccount
from focusflow.core.cid import cid_of_text
from focusflow.testing.devnet import link_msg, signed, wait_tx


@pytest.fixture(scope="module")
def linked(devnet):
    """The devnet after one committed link ``client-a -> client-b``."""
    tx = signed(devnet, devnet.dev_key(), [link_msg(("client-a", "client-b"))])
    with NodeClient(devnet.api) as node:
        tx_hash = node.submit(tx.encoded)
    assert tx_hash == tx.hash.hex()
    wait_tx(devnet, tx_hash)
    return devnet, tx_hash


def test_chain_accounts_and_transactions(linked):
    devnet, tx_hash = linked
    dev = devnet.dev_key().address
    with NodeClient(devnet.api) as node:
        status = node.status()
        assert status["height"] >= 1 and isinstance(status["chain_id"], str)
        params = node.params()
        assert params is not None and params["chain_id"] == status["chain_id"]
        account = node.account(dev)
        assert isinstance(account, ReportedAccount) and account.address == dev
        assert account.nonce >= 1 and account.next_nonce >= account.nonce
        assert account.balance == node.account_json(dev)["balance"] > 0
        assert node.balances(dev) == node.balances_json(dev)["balances"]
        record = node.tx(tx_hash)
        assert (record["status"], record["code"]) == ("committed", "ok")
        block = node.block(record["height"])
        assert tx_hash in block["txs"]
        assert node.block(block["hash"]) == block
        assert node.block("latest")["height"] >= block["height"]
        assert node.blocks(2)["blocks"][0]["height"] >= block["height"]


def test_the_graph_through_the_typed_methods(linked):
    devnet, _ = linked
    a, b = cid_of_text("client-a"), cid_of_text("client-b")
    with NodeClient(devnet.api) as node:
        assert node.cid("client-a")["cid"] == a
        assert node.particle_focus(a)["cid"] == a
        links = node.particle_links(a, "out", 0, 10)
        assert [link["cid"] for link in links["links"]] == [b]
        top = node.focus_top(100)
        assert {a, b} <= {p["cid"] for p in top["particles"]}
        page = node.graph_page("particles", 0, 1000)
        assert a in page["cids"] and page["total"] == top["total"]
        assert node.keep_texts(["client-a"])["cids"] == [a]
        assert node.neuron_focus(devnet.dev_key().address)["neudeg"] >= 1
        assert node.da_roots(1)["height"] == 1


def test_the_nodes_refusals_carry_its_codes(linked):
    devnet, _ = linked
    with NodeClient(devnet.api) as node:
        for ask, code, status in (
            (lambda: node.tx("ab" * 32), "unknown_tx", 404),
            (lambda: node.particle_focus(cid_of_text("never linked")), "unknown_particle", 404),
            (lambda: node.name("no-such-name"), "unknown_name", 404),
            (lambda: node.block(10**9), "unknown_block", 404),
            (lambda: node.account("nobody"), "invalid_address", 400),
        ):
            with pytest.raises(RemoteError) as err:
                ask()
            assert (err.value.code, err.value.status) == (code, status), err.value
        assert node.pool("cyb", "nosuch") is None
        bad = signed(devnet, devnet.dev_key(), [Msg("send", {"to": b"\0" * 20, "amount": 1})])
        with pytest.raises(RemoteError) as err:
            node.submit(bad.encoded[:-1])
        assert err.value.status == 400
        results = node.submit_batch([bad.encoded[:-1]])
        assert results is not None and results[0]["error"]["code"] == err.value.code
