"""Golden state roots of a chain running the economy: the same bits on every machine.

A fixed sequence of blocks exercises every rule of the economy (fees in H under
the moving base fee, the split and its buyback through the pool, stake and
tenure rewards, claims, pools and routes, breakers, dealers, a governed
change) with fixed block times. Every amount is an integer; Q64 prices and
accumulators pass 2^64 and are stored as CBOR bignums. The roots below were
computed on this project's 2-vCPU AMD EPYC VM and must be the same on any
CPU and supported dependency version; a change that alters them changes what
every economy chain commits.
"""

from __future__ import annotations

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, VALIDATOR, new_chain

T0 = 1_700_000_000_000


def _genesis() -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion", "arithmetic": "exact-v2"},
                "economics": 1,
                "gas_target_bytes": 300,
                "fee_per_byte": 5,
                "h_mint_per_block": 1_000_003,
                "tenure_rate_ppb": 1_000,
                "tenure_ramp_blocks": 5,
                "learning_per_block": 10**9,
                "dex_protocol_bps": 1_667,
                "dex_breaker_bps": 500,
                "dex_breaker_blocks": 1,
                "dex_twap_window_ms": 8_000,
                "dealer_period": 4,
                "dex_dealers": [{"address": CAROL.address, "quota": 10**9}],
            },
            "accounts": [
                {
                    "address": k.address,
                    "balance": 10**13,
                    "stake": s,
                    "tokens": {"h": 10**13, "v": 10**9},
                }
                for k, s in ((ALICE, 10**6), (BOB, 3 * 10**6), (CAROL, 0), (VALIDATOR, 1))
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def _blocks() -> list[list[tuple]]:
    m = Msg
    swap = lambda path, x: m("dex.swap", {"path": path, "amount_in": x, "min_out": 0})  # noqa: E731
    return [
        [
            (
                ALICE,
                m("dex.create", {"a": "cyb", "b": "h", "amount_a": 10**10, "amount_b": 10**10}),
            ),
            (BOB, m("dex.create", {"a": "h", "b": "v", "amount_a": 10**9, "amount_b": 10**7})),
        ],
        [
            (BOB, swap(["cyb", "h"], 123_456_789)),
            (CAROL, m("dex.mint", {"amount": 5 * 10**8})),
            (ALICE, m("stake", {"amount": 777})),
        ],
        [
            (
                ALICE,
                m("dex.swap_out", {"path": ["cyb", "h"], "amount_out": 10**7, "max_in": 10**9}),
            ),
            (
                BOB,
                m(
                    "dex.add",
                    {"a": "h", "b": "cyb", "max_a": 10**8, "max_b": 10**8, "min_shares": 0},
                ),
            ),
            (CAROL, swap(["h", "cyb"], 9 * 10**8)),  # beyond the breaker: refused, pool halted
        ],
        [
            (CAROL, swap(["h", "cyb"], 1_000)),  # still halted
            (BOB, m("rewards.claim", {})),
            (VALIDATOR, m("economy.vote", {"params": {"split_base_bps": 7_000}})),
        ],
        [
            (ALICE, m("rewards.claim", {})),
            (BOB, m("unstake", {"amount": 10**6})),
            (CAROL, m("dex.redeem", {"amount": 10**8})),
            (ALICE, m("send", {"to": CAROL.address_raw, "amount": 31_337, "denom": "h"})),
        ],
        [
            (BOB, swap(["cyb", "h", "v"], 5_000_000)),
            (
                ALICE,
                m("dex.remove", {"a": "cyb", "b": "h", "shares": 10**6, "min_a": 0, "min_b": 0}),
            ),
        ],
    ]


#: What each block's transactions answer: the sequence reaches a breaker and a halt.
CODES = [
    ["ok", "ok"],
    ["ok", "ok", "ok"],
    ["ok", "ok", "circuit_breaker"],
    ["pool_halted", "ok", "ok"],
    ["ok", "ok", "ok", "ok"],
    ["ok", "ok"],
]


def economy_roots(path) -> list[str]:
    chain = new_chain(path, _genesis())
    nonces: dict[bytes, int] = {}
    roots = []
    for i, block in enumerate(_blocks()):
        txs = []
        for key, msg in block:
            nonce = nonces.get(key.address_raw, 0)
            nonces[key.address_raw] = nonce + 1
            txs.append(make_tx(key, CHAIN_ID, nonce, 50_000 + 7 * i, [msg]).encoded)
        result = chain.produce_block(txs, time_ms=T0 + 1_000 + 2_500 * i)
        assert not result.rejected, [r.error.message for r in result.rejected]
        assert [r.code for r in result.receipts] == CODES[i], [r.log for r in result.receipts]
        roots.append(chain.head.state_root.hex())
    return roots


GOLDEN = [
    "ea213e7e2eef63375e1da87ddd99a3be046c69378695a369125ddcea08ca6228",
    "bac7dcc7d5d417774c73fab3920d3bb46b553632158ff52ba09fe40dfb7e0c9d",
    "499a1dac37a90920d0b2cdb30a8b24896877713cc25d07b4fe448178472d46f1",
    "ba4b9c6bde75b6c943142b1f437f9a46ae75c12e3b61e2b288cfddd752732e8e",
    "0ec880ac0a8e956a7b86da5c73f6e035d007ca758a6fbae94c1dca3c115a5590",
    "a6de5acc9052ef6d02ae82d630594f52368911b2a6c08b118870a75520c66148",
]


def test_economy_roots_are_golden(tmp_path):
    assert economy_roots(tmp_path) == GOLDEN
