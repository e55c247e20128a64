"""The spend incentive: part of the base fees' reward share goes back to the block's fee payers."""

from __future__ import annotations

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.state_schema.rewards import read_totals
from focusflow.state_schema.tokens import balance_of, supply_of
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, VALIDATOR, new_chain

T0 = 1_700_000_000_000
H0 = 10**12


def _genesis(rebate: int) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": 1,
                "fee_per_byte": 3,
                "spend_rebate_bps": rebate,
            },
            "accounts": [
                {"address": k.address, "balance": 10**12, "stake": 10**6, "tokens": {"h": H0}}
                for k in (ALICE, BOB, CAROL)
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def _block(chain, rebate: int):
    send = Msg("send", {"to": CAROL.address_raw, "amount": 1})
    big = Msg("send", {"to": CAROL.address_raw, "amount": 1, "denom": "h"})
    txs = [
        make_tx(ALICE, CHAIN_ID, 0, 10_000, [send]),
        make_tx(ALICE, CHAIN_ID, 1, 10_000, [send]),
        make_tx(BOB, CHAIN_ID, 0, 10_000, [send, big, big]),
    ]
    result = chain.produce_block([t.encoded for t in txs], time_ms=T0 + 1000)
    assert [r.code for r in result.receipts] == ["ok"] * 3
    paid = {ALICE.address_raw: 0, BOB.address_raw: 0}
    for t in txs:
        paid[t.sender_address] += chain.params.min_fee(len(t.encoded), 3)
    (event,) = [e for e in result.events if e["type"] == "economy"]
    return txs, paid, event


def test_fee_payers_get_back_their_share_of_the_reward_part(tmp_path):
    chain = new_chain(tmp_path, _genesis(4_000))
    txs, paid, event = _block(chain, 4_000)
    base = sum(paid.values())
    assert event["base_fees"] == base and min(paid.values()) > 0
    sold = base * 5_000 // 10_000  # no pool: the split is at par, its H burned
    pool = (base - sold) * 4_000 // 10_000
    shares = {who: pool * p // base for who, p in paid.items()}
    assert event["rebated_h"] == sum(shares.values()) > 0
    assert event["to_stake"] == base - sold - event["rebated_h"] + event["minted_h"]
    with chain.reader() as r:
        for key in (ALICE, BOB):
            fees = sum(t.fee for t in txs if t.sender_address == key.address_raw)
            sent = 2 if key is BOB else 0
            got = balance_of(r, key.address_raw, "h") - (H0 - fees - sent)
            assert got == shares[key.address_raw]
            assert got < paid[key.address_raw]  # never the whole of what it paid
        totals = read_totals(r)
        held = 0 if totals is None else totals.held
        holders = sum(balance_of(r, k.address_raw, "h") for k in (ALICE, BOB, CAROL, VALIDATOR))
        assert holders + held == supply_of(r, "h")


def test_without_the_incentive_nothing_is_rebated(tmp_path):
    chain = new_chain(tmp_path, _genesis(0))
    _, paid, event = _block(chain, 0)
    base = sum(paid.values())
    assert event["rebated_h"] == 0
    assert event["to_stake"] == base - base * 5_000 // 10_000 + event["minted_h"]
