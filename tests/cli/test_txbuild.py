"""Fees, pre-flight checks and neuron keys of the CLI's transaction builder, checked
against the chain's own rules (no node needed)."""

from __future__ import annotations

import pytest

from focusflow.chain.errors import InsufficientFeeError, InsufficientFundsError, OverLinkBudgetError
from focusflow.chain.execute import check_stateless
from focusflow.chain.params import ChainParams
from focusflow.chain.tx import Msg, decode_tx, make_tx
from focusflow.cli.import_cmd import neuron_key
from focusflow.cli.txbuild import build_tx, preflight, spend_of
from focusflow.client import ReportedAccount
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair

KEY = KeyPair.from_seed(bytes(range(32)))
CHAIN = "focusflow-devnet"


def _links(n: int) -> Msg:
    return Msg(
        "link",
        {
            "links": [
                [cid_to_bytes(cid_of_text(f"a{i}")), cid_to_bytes(cid_of_text(f"b{i}"))]
                for i in range(n)
            ]
        },
    )


@pytest.mark.parametrize("n", [1, 2, 30, 300])
@pytest.mark.parametrize(
    "params", [ChainParams(), ChainParams(fee_base=23, fee_per_byte=7)], ids=["default", "7pb"]
)
def test_fee_is_exactly_the_chains_minimum(n, params):
    tx = build_tx(KEY, CHAIN, 5, [_links(n)], params)
    check_stateless(decode_tx(tx.encoded), params, CHAIN, verified=False)
    cheaper = make_tx(KEY, CHAIN, 5, tx.fee - 1, tx.msgs)
    with pytest.raises(InsufficientFeeError):
        check_stateless(cheaper, params, CHAIN, verified=False)


def test_explicit_fee_is_kept_and_signing_is_deterministic():
    a = build_tx(KEY, CHAIN, 0, [Msg("stake", {"amount": 5})], ChainParams(), fee=12345)
    b = build_tx(KEY, CHAIN, 0, [Msg("stake", {"amount": 5})], ChainParams(), fee=12345)
    assert a.fee == 12345 and a.hash == b.hash


def test_oversize_transaction_refused_before_sending():
    with pytest.raises(FocusflowError) as exc:
        build_tx(KEY, CHAIN, 0, [_links(300)], ChainParams(max_tx_bytes=1000))
    assert exc.value.code == "over_limit"


def test_spend_counts_every_cost():
    p = ChainParams()
    msgs = [
        Msg("send", {"to": bytes(20), "amount": 7}),
        Msg("stake", {"amount": 11}),
        _links(3),
        Msg("name.register", {"name": "abcd", "cid": b""}),  # short name: 10x
        Msg("blob.put", {"data": b"x" * 13}),
        Msg("unstake", {"amount": 99}),  # frees nothing now
    ]
    assert spend_of(msgs, p) == 7 + 11 + 3 * p.link_burn + 10 * p.name_fee + 13


def test_preflight_budget_and_funds():
    p = ChainParams()
    tx = build_tx(KEY, CHAIN, 0, [_links(3)], p)
    rich_unstaked = ReportedAccount(KEY.address, 10**9, 0, bonded=2, neudeg=0)
    with pytest.raises(OverLinkBudgetError):
        preflight(tx, rich_unstaked, p)
    preflight(tx, ReportedAccount(KEY.address, 10**9, 0, bonded=3, neudeg=0), p)
    with pytest.raises(OverLinkBudgetError):  # 2 old + 3 new links > 4 bonded
        preflight(tx, ReportedAccount(KEY.address, 10**9, 0, bonded=4, neudeg=2), p)
    poor = ReportedAccount(KEY.address, tx.fee + 2, 0, bonded=10, neudeg=0)
    with pytest.raises(InsufficientFundsError):  # fee + 3 burned
        preflight(tx, poor, p)
    staked_first = build_tx(KEY, CHAIN, 0, [Msg("stake", {"amount": 3}), _links(3)], p)
    preflight(staked_first, ReportedAccount(KEY.address, 10**9, 0, bonded=0, neudeg=0), p)


def test_preflight_unstake_keeps_the_link_budget():
    p = ChainParams()
    tx = build_tx(KEY, CHAIN, 0, [Msg("unstake", {"amount": 5})], p)
    with pytest.raises(OverLinkBudgetError):
        preflight(tx, ReportedAccount(KEY.address, 10**6, 0, bonded=10, neudeg=6), p)
    with pytest.raises(InsufficientFundsError):
        preflight(tx, ReportedAccount(KEY.address, 10**6, 0, bonded=4, neudeg=0), p)
    preflight(tx, ReportedAccount(KEY.address, 10**6, 0, bonded=10, neudeg=5), p)


def test_neuron_keys_are_deterministic_per_chain_and_neuron():
    a = neuron_key(CHAIN, "bostrom1abc")
    assert a.seed == neuron_key(CHAIN, "bostrom1abc").seed
    assert a.seed != neuron_key("other-chain", "bostrom1abc").seed
    assert a.seed != neuron_key(CHAIN, "bostrom1abd").seed
