"""``focusflow tx swap``, ``tx pool``, ``tx dealer``, ``tx rewards``, ``tx send --denom`` and the
queries of pools, balances and the economy, against a real devnet process.

The devnet's genesis turns the economy on (fees are paid in ``h``), gives the
``dev`` key ``h`` and a third token, makes it a primary dealer and mints H
for bonded stake every block; the CLI talks to it over HTTP as a user's
would. What the node's state shows would fail is refused before anything is
sent (the account's nonce does not move), with the chain's own codes.
"""

from __future__ import annotations

import json

import pytest

from focusflow.chain import Msg
from focusflow.chain.errors import InsufficientFundsError
from focusflow.chain.params import ChainParams
from focusflow.cli.txbuild import build_tx, preflight, spends
from focusflow.client import ReportedAccount
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.testing.devnet import devnet_home, start_devnet
from tests.cli.helpers import assert_user_error, run_cli

H_HELD = 10**15
MOON_HELD = 10**9
#: An address no key holds.
NOBODY = "focus1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq3vdwty"


@pytest.fixture(scope="module")
def econ(tmp_path_factory):
    home = devnet_home(
        tmp_path_factory.mktemp("dexnet") / "home",
        params={"economics": 1, "h_mint_per_block": 1_000},
        tokens={"h": H_HELD, "moon": MOON_HELD},
    )
    # the dev key is the dealer: its address is known once the home exists
    genesis = json.loads((home / "genesis.json").read_text())
    dev = Keystore(home / "keys").load("dev").address
    genesis["params"]["dex_dealers"] = [{"address": dev, "quota": 10**9}]
    (home / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
    net = start_devnet(home, timeout=240)
    yield net
    net.stop()


@pytest.fixture
def cli(econ, monkeypatch, capsys):
    monkeypatch.setenv("FOCUSFLOW_HOME", str(econ.home))
    monkeypatch.delenv("FOCUSFLOW_PASSPHRASE", raising=False)
    return lambda *args: run_cli(capsys, *args)


def ok(result) -> dict:
    assert result.code == 0, result.err
    return result.json()


def committed(result) -> dict:
    doc = ok(result)
    assert doc["status"] == "committed" and doc["code"] == "ok", doc
    return doc


def event(doc: dict, kind: str) -> dict:
    return next(e for e in doc["events"] if e["type"] == kind)


def nonce_of(cli, who: str = "dev") -> int:
    return ok(cli("query", "account", who, "--json"))["pending_nonce"]


def balances(cli, who: str = "dev") -> dict[str, int]:
    return ok(cli("query", "balances", who, "--json"))["balances"]


def test_a_pool_from_creation_to_withdrawal(cli):
    assert ok(cli("query", "pools", "--json"))["pools"] == []
    economy = ok(cli("query", "economy", "--json"))
    assert economy["economics"] == 1 and economy["premium_bps"] is None
    before = balances(cli)
    assert before["h"] <= H_HELD and before["moon"] == MOON_HELD

    made = committed(cli("tx", "pool", "create", "h", "cyb", 10**9, 10**9, "--wait", "--json"))
    created = event(made, "pool.create")
    assert (created["a"], created["b"], created["shares"]) == ("cyb", "h", 10**9 - 1_000)
    listed = ok(cli("query", "pools", "--json"))["pools"]
    assert [(p["a"], p["b"]) for p in listed] == [("cyb", "h")]
    # the block's fees were paid in h, and the buyback sold part of them for cyb here
    assert 0 < 10**9 - listed[0]["reserve_a"] < 10_000
    assert listed[0]["reserve_a"] * listed[0]["reserve_b"] >= 10**18
    one = ok(cli("query", "pool", "h", "cyb", "--json"))
    assert (one["a"], one["b"], one["share_denom"]) == ("cyb", "h", "lp/cyb/h")
    assert one["height"] >= made["height"] and one["twap"] == pytest.approx(1.0, rel=1e-3)
    table = cli("query", "pools")
    assert table.code == 0 and "cyb/h" in table.out and "1 cyb =" in table.out
    shares = balances(cli)["lp/cyb/h"]
    assert shares == 10**9 - 1_000

    added = committed(cli("tx", "pool", "add", "cyb", "h", 10**6, 2 * 10**6, "--wait", "--json"))
    deposit = event(added, "pool.add")
    # at the pool's ratio (near 1: the block fees' buyback sold a little h into it)
    assert (deposit["amount_a"], deposit["amount_b"]) == (added["quote_a"], added["quote_b"])
    assert deposit["amount_a"] <= 10**6 and deposit["amount_b"] < 1.01 * 10**6
    assert deposit["shares"] == added["quote_shares"] > 0
    assert balances(cli)["lp/cyb/h"] == shares + deposit["shares"]

    removed = committed(cli("tx", "pool", "remove", "h", "cyb", 10**6, "--min-a", 1, "--wait",
                            "--json"))  # fmt: skip
    out = event(removed, "pool.remove")
    assert (out["amount_a"], out["amount_b"]) == (removed["quote_b"], removed["quote_a"])
    assert balances(cli)["lp/cyb/h"] == shares + deposit["shares"] - 10**6


def test_swaps_exact_in_and_exact_out_pay_their_quotes(cli):
    if not ok(cli("query", "pools", "--json"))["pools"]:
        committed(cli("tx", "pool", "create", "cyb", "h", 10**9, 10**9, "--wait", "--json"))
    sold = committed(cli("tx", "swap", "h", "cyb", "--amount-in", 10**6, "--min-out", 1, "--wait",
                         "--json"))  # fmt: skip
    swap = event(sold, "swap")
    assert swap["path"] == ["h", "cyb"] and swap["amount_in"] == 10**6
    assert swap["amount_out"] == sold["quote_out"] and 0 < swap["amount_out"] < 10**6
    bought = committed(cli("tx", "swap", "cyb", "h", "--amount-out", 1_000, "--max-in", 2_000,
                           "--wait", "--json"))  # fmt: skip
    swap = event(bought, "swap")
    assert swap["amount_out"] == 1_000 and swap["amount_in"] == bought["quote_in"] <= 2_000
    plain = cli("tx", "swap", "h", "cyb", "--amount-in", 1_000, "--min-out", 0, "--wait")
    assert plain.code == 0 and "swap 1000 h -> cyb:" in plain.out, plain.err


def test_what_would_fail_is_refused_before_anything_is_sent(cli):
    if not ok(cli("query", "pools", "--json"))["pools"]:
        committed(cli("tx", "pool", "create", "cyb", "h", 10**9, 10**9, "--wait", "--json"))
    nonce = nonce_of(cli)
    refused = {
        "slippage": [
            ("tx", "swap", "h", "cyb", "--amount-in", 10**6, "--min-out", 10**6),
            ("tx", "swap", "cyb", "h", "--amount-out", 10**6, "--max-in", 10**6),
            ("tx", "pool", "add", "cyb", "h", 10**6, 10**6, "--min-shares", 10**7),
            ("tx", "pool", "remove", "cyb", "h", 10**6, "--min-b", 10**7),
        ],
        "unknown_pool": [
            ("tx", "swap", "h", "moon", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "cyb", "h", "moon", "--amount-in", 5, "--min-out", 0),
            ("tx", "pool", "add", "moon", "h", 5, 5),
            ("query", "pool", "moon", "h"),
            ("query", "pool", "lp/cyb/h", "h"),
        ],
        "pool_exists": [("tx", "pool", "create", "h", "cyb", 10**6, 10**6)],
        "insufficient_liquidity": [
            ("tx", "pool", "create", "moon", "h", 10, 10),  # isqrt(100) is under the 1,000 locked
            ("tx", "swap", "cyb", "h", "--amount-out", 10**12, "--max-in", 10**15),
            ("tx", "dealer", "redeem", 10**12),
        ],
        "insufficient_funds": [
            ("tx", "send", NOBODY, 10**12, "--denom", "moon"),
            ("tx", "swap", "h", "cyb", "--amount-in", 10**17, "--min-out", 0),
            ("tx", "pool", "remove", "cyb", "h", 10**12),
            ("tx", "pool", "create", "moon", "cyb", 10**12, 10**6),
            ("tx", "pool", "add", "cyb", "h", 10**15, 10**15),  # at the ratio: one side is short
        ],
        "invalid_parameter": [
            ("tx", "swap", "h", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "h", "cyb", "--amount-in", 5),
            ("tx", "swap", "h", "cyb", "--amount-in", 5, "--min-out", 0, "--max-in", 9),
            ("tx", "swap", "H", "cyb", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "h", "h", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "h", "cyb", "h", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "cyb", "h", "a", "b", "c", "d", "--amount-in", 5, "--min-out", 0),
            ("tx", "swap", "h", "cyb", "--amount-in", 0, "--min-out", 0),
            ("tx", "pool", "create", "h", "h", 10**6, 10**6),
            ("tx", "pool", "create", "lp", "h", 10**6, 10**6),
            ("tx", "send", NOBODY, 5, "--denom", "Moon"),
            ("tx", "dealer", "mint", 0),
            ("query", "pool", "cyb", "h_"),
        ],
    }
    for code, commands in refused.items():
        for args in commands:
            result = cli(*args)
            assert result.code == 2, (args, result)
            assert_user_error(result, code)
            if args[0] == "tx" and code != "invalid_parameter":
                assert "nothing was sent" in result.err, (args, result.err)
    assert nonce_of(cli) == nonce


def test_send_any_denom_and_read_the_balances(cli):
    sent = committed(cli("tx", "send", NOBODY, 5, "--denom", "moon", "--wait", "--json"))
    assert event(sent, "send")["denom"] == "moon" and sent["denom"] == "moon"
    committed(cli("tx", "send", NOBODY, 7, "--wait", "--json"))  # cyb, as before
    assert balances(cli, NOBODY) == {"cyb": 7, "moon": 5}
    table = cli("query", "balances", NOBODY)
    assert table.code == 0 and "moon" in table.out and "cyb" in table.out


def test_dealer_mint_redeem_and_claim_rewards(cli, tmp_path):
    minted = committed(cli("tx", "dealer", "mint", 10_000, "--wait", "--json"))
    assert event(minted, "dealer.mint")["h"] == 10_000  # par: one for one
    reserve = ok(cli("query", "economy", "--json"))["dealer_reserve"]
    assert reserve >= 10_000
    redeemed = committed(cli("tx", "dealer", "redeem", 4_000, "--wait", "--json"))
    assert event(redeemed, "dealer.redeem")["cyb"] == 4_000
    assert ok(cli("query", "economy", "--json"))["dealer_reserve"] == reserve - 4_000

    claimed = committed(cli("tx", "rewards", "claim", "--wait", "--json"))
    paid = event(claimed, "rewards.claim")
    assert paid["stake"] > 0  # h_mint_per_block goes to bonded stake, and dev bonds nearly all
    economy = ok(cli("query", "economy", "--json"))
    assert economy["rewards"]["total_bonded"] > 0 and economy["h_supply"] > H_HELD

    made = cli("keys", "add", "stranger", "--unencrypted")
    assert made.code == 0, made.err
    assert_user_error(cli("tx", "dealer", "mint", 5, "--from", "stranger"), "not_dealer")


def test_nothing_to_claim_on_a_chain_without_the_economy(env, capsys):
    assert run_cli(capsys, "query", "economy", "--json").json()["economics"] == 0
    assert_user_error(run_cli(capsys, "tx", "rewards", "claim"), "nothing_to_claim")
    assert run_cli(capsys, "query", "pools", "--json").json()["pools"] == []


def test_spends_and_preflight_by_denom():
    """Every amount is checked in its own denom, and the fee in h under the economy."""
    p = ChainParams(economics=1)
    msgs = [
        Msg("send", {"to": bytes(20), "amount": 7, "denom": "moon"}),
        Msg("send", {"to": bytes(20), "amount": 3}),
        Msg("dex.create", {"a": "moon", "b": "h", "amount_a": 11, "amount_b": 13}),
        Msg("dex.remove", {"a": "moon", "b": "cyb", "shares": 5, "min_a": 0, "min_b": 0}),
        Msg("dex.swap", {"path": ["h", "cyb"], "amount_in": 17, "min_out": 0}),
        Msg("dex.add", {"a": "h", "b": "moon", "max_a": 99, "max_b": 99, "min_shares": 0}),
        Msg("dex.mint", {"amount": 19}),
        Msg("dex.redeem", {"amount": 23}),
    ]
    assert spends(msgs, p) == {"moon": 18, "cyb": 22, "h": 53, "lp/cyb/moon": 5}
    key = KeyPair.generate()
    swap = Msg("dex.swap", {"path": ["moon", "cyb"], "amount_in": 50, "min_out": 0})
    tx = build_tx(key, "c", 0, [swap], p)
    account = ReportedAccount(key.address, 0, 0, 0, 0)
    preflight(tx, account, p, {"h": tx.fee, "moon": 50})
    preflight(tx, account, p)  # without balances only cyb is known, and none is spent
    for held, short in [({"h": tx.fee - 1, "moon": 50}, "h"), ({"h": tx.fee, "moon": 49}, "moon")]:
        with pytest.raises(InsufficientFundsError, match=f"needs .* {short}"):
            preflight(tx, account, p, held)
    with pytest.raises(InsufficientFundsError, match=r"\(fee \d+ \+ 11\)"):
        preflight(tx, account, p, {"h": tx.fee + 10, "moon": 50}, more={"h": 11})
