"""The exchange's and the economy's endpoints over a real chain, with the API's own errors.

The router is mounted in a plain FastAPI app (``api.errors.install`` maps the
errors as the node's app does) over a real ``Chain`` whose genesis turns the
economy on and gives its accounts ``h`` and a third token; blocks carrying
pool, swap and dealer transactions are produced on it. Every answer is held
to the state read with the modules' own functions and to its OpenAPI model.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from focusflow.api import errors, schemas
from focusflow.api.app import build_state
from focusflow.api.routes_dex import router
from focusflow.api.state import set_app_state
from focusflow.chain import Genesis, Msg
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.state import PendingState
from focusflow.modules import EconomyParams, dex
from focusflow.modules.economy import buyback_bps, premium_bps
from focusflow.state_schema.dex import pools as all_pools
from focusflow.state_schema.rewards import read_totals
from focusflow.state_schema.tokens import H, balances_of, supply_of
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, VALIDATOR, new_chain, tx

T0 = 1_700_000_000_000
H_HELD = 10**12
MOON_HELD = 10**9
NOBODY = "focus1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq3vdwty"


def economy_genesis(economics: int = 1) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": economics,
                "h_mint_per_block": 1_000,
                "dex_dealers": [{"address": ALICE.address, "quota": 10**9}],
            },
            "accounts": [
                {
                    "address": k.address,
                    "balance": 10**12,
                    "stake": 10**6,
                    "tokens": {"h": H_HELD, "moon": MOON_HELD},
                }
                for k in (ALICE, BOB, CAROL)
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def produce(chain, *txs: bytes, at: int) -> None:
    result = chain.produce_block(list(txs), time_ms=at)
    codes = [r.code for r in result.receipts]
    assert codes == ["ok"] * len(txs), [(r.code, r.log) for r in result.receipts]


def client_for(chain) -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    set_app_state(app, build_state(SimpleNamespace(chain=chain)))
    return TestClient(app)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("dex-api"), economy_genesis())
    create = [
        Msg("dex.create", {"a": "h", "b": "cyb", "amount_a": 10**9, "amount_b": 10**9}),
        Msg("dex.create", {"a": "moon", "b": "h", "amount_a": 10**6, "amount_b": 4 * 10**6}),
        Msg("dex.mint", {"amount": 5_000}),
    ]
    produce(chain, tx(ALICE, 0, *create), at=T0 + 1_000)
    swap = Msg("dex.swap", {"path": ["h", "cyb"], "amount_in": 10**6, "min_out": 1})
    produce(chain, tx(BOB, 0, swap), at=T0 + 61_000)
    produce(chain, at=T0 + 121_000)
    yield chain
    chain.store.close()


@pytest.fixture(scope="module")
def client(chain):
    with client_for(chain) as c:
        yield c


def test_pools_lists_every_pool_with_its_twap_at_the_head(client, chain):
    body = client.get("/v1/pools").json()
    schemas.PoolList.model_validate(body)
    head = chain.head
    assert (body["height"], body["time_ms"]) == (head.height, head.time_ms)
    with chain.reader() as r:
        expected = [
            dex.pool_json(p, head.time_ms, chain.params)
            for p in all_pools(PendingState(r.get, r.items))
        ]
        twap = dex.twap_q64(r, "cyb", "h", head.time_ms, chain.params)
    assert body["pools"] == expected
    assert [(p["a"], p["b"]) for p in body["pools"]] == [("cyb", "h"), ("h", "moon")]
    cyb_h, h_moon = body["pools"]
    assert cyb_h["share_denom"] == "lp/cyb/h" and h_moon["share_denom"] == "lp/h/moon"
    assert cyb_h["twap_q64"] == twap
    # the swap sold h for cyb: one cyb is dearer than one h now, and the TWAP lags the price
    assert cyb_h["price"] > 1.0
    assert 1.0 < cyb_h["twap"] < cyb_h["price"]
    assert h_moon["reserve_a"] == 4 * 10**6 and h_moon["reserve_b"] == 10**6
    assert h_moon["price"] == pytest.approx(0.25) == h_moon["twap"]


def test_one_pool_by_its_pair_in_either_order(client, chain):
    listed = client.get("/v1/pools").json()["pools"][0]
    for a, b in (("cyb", "h"), ("h", "cyb")):
        r = client.get(f"/v1/pools/{a}/{b}")
        assert r.status_code == 200, r.text
        body = r.json()
        schemas.PoolAnswer.model_validate(body)
        assert body == {**listed, "height": chain.head.height, "time_ms": chain.head.time_ms}


def test_a_pair_without_a_pool_is_unknown_pool(client):
    for path in ("/v1/pools/cyb/moon", "/v1/pools/h/h", "/v1/pools/zzz/h", "/v1/pools/lp0/h"):
        r = client.get(path)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["error"]["code"] == "unknown_pool", path


@pytest.mark.parametrize(
    "path",
    [
        "/v1/pools/lp/h",  # the shares' prefix is no denom
        "/v1/pools/LP/h",
        "/v1/pools/Cyb/h",
        "/v1/pools/1h/cyb",
        "/v1/pools/h_x/cyb",
        "/v1/pools/cyb/" + "h" * 17,
        "/v1/pools/cyb/%F0%9F%92%B0",
    ],
)
def test_a_bad_denom_is_malformed(client, path):
    r = client.get(path)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed"


def test_pools_of_shares_are_listed_not_addressed(client):
    """A share denom holds slashes: its path is no pool route's."""
    assert client.get("/v1/pools/lp/cyb/h/h").status_code == 404
    assert client.get("/v1/pools/lp%2Fcyb%2Fh/h").status_code in (400, 404)


def test_balances_are_every_denom_an_address_holds(client, chain):
    body = client.get(f"/v1/balances/{ALICE.address}").json()
    schemas.Balances.model_validate(body)
    assert body["address"] == ALICE.address and body["height"] == chain.head.height
    with chain.reader() as r:
        assert body["balances"] == balances_of(PendingState(r.get, r.items), ALICE.address_raw)
    held = body["balances"]
    assert next(iter(held)) == "cyb"
    assert set(held) == {"cyb", "h", "moon", "lp/cyb/h", "lp/h/moon"}
    assert held["moon"] == MOON_HELD - 10**6
    assert held["lp/h/moon"] == 2 * 10**6 - 1_000  # isqrt(4e6 * 1e6), less the locked 1,000
    bob = client.get(f"/v1/balances/{BOB.address}").json()["balances"]
    assert "lp/cyb/h" not in bob and bob["cyb"] > 10**12  # the swap's output
    nobody = client.get(f"/v1/balances/{NOBODY}").json()
    assert nobody == {"address": NOBODY, "height": chain.head.height, "balances": {}}


def test_a_bad_address_is_refused(client):
    r = client.get("/v1/balances/" + NOBODY[:-1] + "q")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_address"


def test_economy_is_the_modules_view_of_the_head(client, chain):
    body = client.get("/v1/economy").json()
    schemas.EconomyOut.model_validate(body)
    head, params = chain.head, chain.params
    with chain.reader() as r:
        totals = read_totals(r)
        assert totals is not None
        assert body == {
            "height": head.height,
            "time_ms": head.time_ms,
            "economics": 1,
            "fee_per_byte": current_fee_per_byte(r, params),
            "premium_bps": premium_bps(r, params, head.time_ms),
            "buyback_bps": buyback_bps(r, params, head.time_ms),
            "rewards": {
                "index": totals.index,
                "total_bonded": totals.total_bonded,
                "held": totals.held,
            },
            "h_supply": supply_of(r, H),
            "dealer_reserve": 5_000,
        }
    # H was sold for CYB: below par, so less of the fees is sold; rewards pile up
    assert body["premium_bps"] < 0 and body["buyback_bps"] < EconomyParams.of(params).split_base_bps
    assert body["rewards"]["total_bonded"] == 3 * 10**6 and body["rewards"]["held"] > 0
    assert body["h_supply"] >= 3 * H_HELD + 5_000


def test_a_chain_without_the_economy(tmp_path):
    chain = new_chain(tmp_path, economy_genesis(economics=0))
    try:
        produce(chain, at=T0 + 1_000)
        with client_for(chain) as c:
            assert c.get("/v1/pools").json() == {
                "height": 1,
                "time_ms": T0 + 1_000,
                "pools": [],
            }
            body = c.get("/v1/economy").json()
            schemas.EconomyOut.model_validate(body)
            assert body["economics"] == 0 and body["rewards"] is None
            assert body["premium_bps"] is None
            assert body["fee_per_byte"] == chain.params.fee_per_byte
            assert body["h_supply"] == 3 * H_HELD and body["dealer_reserve"] == 0
            # the exchange works with economics 0 too: a pool of cyb and a genesis token
            create = Msg("dex.create", {"a": "cyb", "b": "moon", "amount_a": 10**7,
                                        "amount_b": 10**7})  # fmt: skip
            produce(chain, tx(ALICE, 0, create), at=T0 + 2_000)
            pool = c.get("/v1/pools/moon/cyb").json()
            assert (pool["a"], pool["b"], pool["reserve_a"], pool["height"]) == (
                "cyb", "moon", 10**7, 2,
            )  # fmt: skip
    finally:
        chain.store.close()


def test_the_head_time_follows_a_block_committed_between_two_reads(client, chain, monkeypatch):
    """Answers are of one version: the reader's height, and that block's time."""
    older = SimpleNamespace(height=chain.head.height - 1, time_ms=0)
    monkeypatch.setattr(chain.tip, "header", older)
    body = client.get("/v1/pools").json()
    record = chain.block_record(body["height"])
    assert body["time_ms"] == record.block.header.time_ms != 0
