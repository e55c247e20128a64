"""A hostile user against a real devnet's Ethereum JSON-RPC: each attack is
answered with a JSON-RPC error (never an HTTP error), within its budget, and
the devnet keeps making blocks.

The hostile code runs as a call's initcode (``to`` left out), so no contract
needs deploying: ``LOOP`` jumps to itself until its gas is gone, and
``loops_when_short(x)`` stops at once when it has more than ``x`` gas left,
and loops otherwise.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from eth_account import Account

from focusflow.api.evm_budget import (
    EVM_PER_CLIENT,
    MAX_RESPONSE_BYTES,
    RPC_GAS_CAP,
    RPC_TIME_BUDGET_S,
)
from focusflow.node.home import eth_dev_accounts
from focusflow.testing.devnet import wait_height

#: JUMPDEST; PUSH1 0; JUMP: a loop that ends when its gas does.
LOOP = "0x5b600056"
#: Slack on top of a time budget for this machine's load and the HTTP round trip.
SLACK_S = 6.0


def loops_when_short(threshold: int) -> str:
    """GAS; PUSH3 threshold; GT; PUSH1 10; JUMPI; STOP; JUMPDEST; PUSH1 10; JUMP."""
    return "0x5a62" + threshold.to_bytes(3, "big").hex() + "11600a57005b600a56"


def rpc(url: str, method: str, *params, timeout: float = 30.0, rid=1) -> dict:
    doc = {"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}
    reply = httpx.post(url, json=doc, timeout=timeout)
    assert reply.status_code == 200, reply.text[:300]
    return reply.json()


@pytest.fixture(scope="module")
def url(shared_devnet):
    return shared_devnet.api + "/evm"


def _signed(tx: dict, account: int = 0) -> str:
    _, key = eth_dev_accounts()[account]
    return "0x" + bytes(Account.sign_transaction(tx, key).raw_transaction).hex()


def _data_code(answer: dict) -> str | None:
    """The chain or budget code of an error answer (a revert's data is its output)."""
    data = answer.get("error", {}).get("data")
    return data.get("code") if isinstance(data, dict) else None


def _height(url: str) -> int:
    return int(rpc(url, "eth_blockNumber")["result"], 16)


def test_oversized_initcode_is_refused_everywhere_and_blocks_go_on(url, shared_devnet):
    chain_id = int(rpc(url, "eth_chainId")["result"], 16)
    initcode = bytes.fromhex("600160" + "00f3") + bytes(49_153 - 5)  # RETURN(0, 1), padded
    tx = {"chainId": chain_id, "nonce": 0, "gas": 3_000_000, "maxFeePerGas": 10,
          "maxPriorityFeePerGas": 1, "to": None, "data": initcode}  # fmt: skip
    reply = rpc(url, "eth_sendRawTransaction", _signed(tx, account=9))
    assert reply["error"]["code"] == -32000 and reply["error"]["data"] == {"code": "evm_invalid"}
    assert "initcode of 49153 bytes" in reply["error"]["message"]
    call = {"data": "0x" + initcode.hex()}
    for method in ("eth_call", "eth_estimateGas"):
        error = rpc(url, method, call)["error"]
        assert error["code"] == -32000 and error["data"] == {"code": "evm_invalid"}, error
    height = _height(url)
    wait_height(shared_devnet, height + 2)
    assert shared_devnet.proc.poll() is None


@pytest.mark.parametrize(
    "fields, code",
    [
        ({"maxFeePerGas": 5, "maxPriorityFeePerGas": 6}, "evm_invalid"),
        ({"gas": 30_000_001}, "over_limit"),
        ({"gas": 20_000}, "evm_invalid"),
    ],
)
def test_send_raw_refuses_what_a_block_would(url, fields, code):
    chain_id = int(rpc(url, "eth_chainId")["result"], 16)
    tx = {"chainId": chain_id, "nonce": 0, "gas": 21_000, "maxFeePerGas": 10,
          "maxPriorityFeePerGas": 1, "to": "0x" + "11" * 20, "value": 1, **fields}  # fmt: skip
    error = rpc(url, "eth_sendRawTransaction", _signed(tx, account=9))["error"]
    assert error["code"] == -32000 and error["data"] == {"code": code}, error


def test_hostile_envelopes_and_hex_are_json_rpc_errors(url, shared_devnet):
    infinite = httpx.post(url, content=b'{"jsonrpc": "2.0", "id": 1e999, "method": "eth_chainId"}')
    assert infinite.status_code == 200
    assert infinite.json() == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": "invalid request"},
    }
    where = "0x" + "11" * 20
    for slot in ("0x_1", "0x1 ", " 0x1", "0x", "0x" + "1" * 65, "1", "0X1"):
        error = rpc(url, "eth_getStorageAt", where, slot)["error"]
        assert error["code"] == -32602, slot
    for address in ("0x 1111111111111111111111111111111111111111", "0x" + "1" * 39 + "_"):
        assert rpc(url, "eth_getBalance", address)["error"]["code"] == -32602
    reply = rpc(url, "eth_getBlockByNumber", "latest", "yes")
    assert reply["error"]["code"] == -32602


def test_the_faucet_authenticates_before_it_reads_the_body(shared_devnet):
    with shared_devnet.client() as c:
        for body in ({"address": 5}, {}, "not json", None):
            kwargs = {"content": body} if isinstance(body, str) else {"json": body}
            refused = c.post("/v1/admin/faucet", **kwargs)
            assert refused.status_code == 401, (body, refused.text)
            assert refused.json()["error"]["code"] == "unauthorized"
        admin = {"Authorization": f"Bearer {shared_devnet.admin_token()}"}
        bad = c.post("/v1/admin/faucet", json={"address": 5}, headers=admin)
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "malformed"


def test_fee_history_reward_percentiles_are_bounded_and_checked(url):
    ok = rpc(url, "eth_feeHistory", "0x4", "latest", [float(p) for p in range(100)])
    assert len(ok["result"]["reward"][0]) == 100
    hostile = [
        [0] * 101,
        list(range(101)),
        [50, 10],
        [10, 10],
        [-1],
        [100.5],
        ["50"],
        [True],
        [None],
        {"p": 1},
    ]
    for percentiles in hostile:
        error = rpc(url, "eth_feeHistory", "0x400", "latest", percentiles)["error"]
        assert error["code"] == -32602, percentiles
    # The attack: 300 KB of percentiles once asked for a 461 MB answer.
    big = [0.0001 * i for i in range(30_000)]
    doc = {"jsonrpc": "2.0", "id": 1, "method": "eth_feeHistory"}
    reply = httpx.post(url, json={**doc, "params": ["0x400", "latest", big]}, timeout=30)
    assert reply.status_code == 200 and len(reply.content) < 1000
    assert reply.json()["error"]["code"] == -32602


def test_estimate_gas_of_code_that_loops_when_gas_is_short_ends_in_its_budget(url):
    call = {"data": loops_when_short(9_000_000)}
    t0 = time.monotonic()
    reply = rpc(url, "eth_estimateGas", call, timeout=60)
    took = time.monotonic() - t0
    assert took < RPC_TIME_BUDGET_S + SLACK_S, took
    gas = int(reply["result"], 16)
    assert 9_000_000 < gas <= RPC_GAS_CAP
    assert "result" in rpc(url, "eth_call", {**call, "gas": hex(gas)}, timeout=60)


def test_a_batch_past_its_budget_is_cut_with_an_error_for_each_item(url):
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"data": LOOP}]}
        for i in range(8)
    ]
    batch.append({"jsonrpc": "2.0", "id": 8, "method": "eth_blockNumber"})
    t0 = time.monotonic()
    reply = httpx.post(url, json=batch, timeout=60)
    took = time.monotonic() - t0
    assert reply.status_code == 200 and took < RPC_TIME_BUDGET_S + SLACK_S, took
    answers = reply.json()
    assert [a["id"] for a in answers] == list(range(9))
    assert all("error" in a for a in answers), answers
    codes = [_data_code(a) for a in answers]
    assert codes[-1] == "rpc_limit" and codes.count("rpc_limit") >= 6, answers
    assert all(a["error"]["code"] in (3, -32005) for a in answers)


def test_concurrent_cap_gas_calls_beyond_the_pool_are_busy(url, shared_devnet):
    doc = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"data": LOOP}]}
    start = _height(url)

    def one(_: int) -> dict:
        reply = httpx.post(url, json=doc, timeout=60)
        assert reply.status_code == 200
        return reply.json()

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(16)))
    took = time.monotonic() - t0
    busy = [a for a in answers if _data_code(a) == "rpc_busy"]
    assert len(busy) >= 16 - EVM_PER_CLIENT, answers
    assert all(a["error"]["code"] == -32005 and a["error"]["data"]["retry_after"] for a in busy)
    assert took < RPC_TIME_BUDGET_S + SLACK_S
    assert _height(url) > start  # blocks went on meanwhile
    assert "result" in rpc(url, "eth_call", {"data": "0x00"})  # and the pool is free again


def test_answers_are_bounded_in_bytes(url):
    """A batch of the largest answers stays under the cap: the items past it
    are errors, never a bigger body."""
    fee = {"jsonrpc": "2.0", "method": "eth_feeHistory",
           "params": ["0x400", "latest", list(range(100))]}  # fmt: skip
    batch = [{**fee, "id": i} for i in range(100)]
    reply = httpx.post(url, json=batch, timeout=60)
    assert reply.status_code == 200 and len(reply.content) <= MAX_RESPONSE_BYTES
    assert len(reply.json()) == 100
