"""The Ethereum JSON-RPC under hostile input, through the node's real app in process.

Every method ``POST /evm`` serves is called with hostile parameters (wrong
types, huge numbers and strings, nested arrays, negative numbers, ``0x``,
``0x_1``, floats, nulls, ``1e999``, deep nesting within the body limit) in
hostile envelopes and batch shapes (empty, over 100 items, mixed). Whatever
comes, the answer is HTTP 200 with a JSON-RPC object (or a list of them for a
batch), no ``-32603`` (the node's own failure), at most MAX_RESPONSE_BYTES,
within the time budget. The default run is a few hundred seeded cases; the
``slow`` run thousands.

The chain the app serves has a contract's logs and a block of 40,000 logs
under five topics, which makes the largest honest answers (``eth_getLogs``
batches) of the cap's size.
"""

from __future__ import annotations

import json
import random
import time

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from focusflow.api.app import create_app
from focusflow.api.errors import MAX_BODY_BYTES
from focusflow.api.evm_budget import MAX_RESPONSE_BYTES, RPC_TIME_BUDGET_S
from focusflow.api.limits import LimitSettings
from focusflow.api.routes_evm import MAX_LOG_RESULTS, METHODS
from focusflow.chain import Genesis
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.core.keys import encode_address
from focusflow.node import open_chain
from focusflow.node.runtime import NodeRuntime
from focusflow.testing.chains import CHAIN_ID, VALIDATOR

T0 = 1_700_000_000_000
KEY = bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80")
SENDER = bytes.fromhex("f39fd6e51aad88f6f4ce6ab8827279cfffb92266")
#: Logs of the big block, under each of its five topics: about 395 bytes each
#: in an answer, 3.2 MB a topic, 15.8 MB in all.
PER_TOPIC = 8_000
TOPICS = range(9, 14)
#: Each request's time: its budget, and slack for this machine's load.
SLACK_S = 6.0
#: The JSON-RPC error codes an answer may carry (``-32603`` is a node bug).
CODES = {-32700, -32600, -32601, -32602, -32000, -32005, 3}


def emits(n: int, topic: int) -> bytes:
    """Initcode emitting ``n`` empty LOG1s with ``topic`` (a countdown loop)."""
    return (
        b"\x61" + n.to_bytes(2, "big")
        + bytes.fromhex("5b60") + bytes([topic])
        + bytes.fromhex("60006000a1600190038060035700")
    )  # fmt: skip


def _eth(nonce: int, data: bytes, gas: int) -> bytes:
    fields = {"chainId": evm_chain_id(CHAIN_ID), "nonce": nonce, "maxFeePerGas": 10,
              "maxPriorityFeePerGas": 1, "gas": gas, "to": None, "data": data}  # fmt: skip
    return bytes(Account.sign_transaction(fields, KEY).raw_transaction)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    genesis = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}, "evm_block_gas_limit": 50_000_000},
            "accounts": [{"address": encode_address(SENDER), "balance": 10**18, "stake": 0}],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )
    chain = open_chain(tmp_path_factory.mktemp("fuzz"), genesis, VALIDATOR)
    big = [_eth(1 + i, emits(PER_TOPIC, t), 8_500_000) for i, t in enumerate(TOPICS)]
    blocks = [[_eth(0, emits(3, 7), 200_000)], big]
    for i, txs in enumerate(blocks, 1):
        result = chain.produce_block(txs, time_ms=T0 + 1000 * i)
        assert [r.code for r in result.receipts] == ["ok"] * len(txs), result.rejected
    node = NodeRuntime(chain)
    # One client asking fast: the per-client rate is not what is tested here.
    limits = LimitSettings(rate=1e6, burst=10**6)
    with TestClient(create_app(node, limits=limits), raise_server_exceptions=False) as c:
        yield c
    chain.close()


def _checked(reply) -> object:
    """The answer's JSON, having checked everything that holds whatever was asked."""
    assert reply.status_code == 200, reply.text[:300]
    assert len(reply.content) <= MAX_RESPONSE_BYTES
    doc = json.loads(reply.content)
    for item in doc if isinstance(doc, list) else [doc]:
        assert isinstance(item, dict) and item["jsonrpc"] == "2.0" and "id" in item, item
        assert ("result" in item) != ("error" in item), item
        if "error" in item:
            assert item["error"]["code"] in CODES, item
            assert isinstance(item["error"]["message"], str)
    return doc


def _post(client, body: str | bytes) -> object:
    t0 = time.monotonic()
    reply = client.post("/evm", content=body, headers={"content-type": "application/json"})
    assert time.monotonic() - t0 < RPC_TIME_BUDGET_S + SLACK_S
    return _checked(reply)


#: Hostile JSON values, as text (``1e999`` and ``NaN`` have no Python literal JSON
#: would write back).
SCALARS = [
    "null", "true", "false", "0", "-1", "1.5", "-0.0", "1e999", "-1e999", "NaN", "Infinity",
    "123456789012345678901234567890123456789012345678901234567890",
    '""', '"0x"', '"0x_1"', '"0x0"', '"0x1"', '"-0x1"', '"0x-1"', '" 0x1"', '"0x1 "', '"0X1"',
    '"0x' + "f" * 64 + '"', '"0x' + "f" * 65 + '"', '"0x' + "1" * 40 + '"', '"0x' + "ab" * 32 + '"',
    '"latest"', '"pending"', '"earliest"', '"safe"', '"finalized"', '"0x2"', '"0xffffffff"',
    '"\\u0000"', '"\\ud800"', '"' + "a" * 100_000 + '"', '"0x' + "00" * 50_000 + '"',
]  # fmt: skip
FIELDS = [
    "from", "to", "data", "input", "value", "gas", "gasPrice", "maxFeePerGas",
    "maxPriorityFeePerGas", "nonce", "type", "chainId", "accessList", "fromBlock",
    "toBlock", "address", "topics", "blockHash", "bogus",
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> str:
    """A hostile JSON value as text."""
    roll = rng.random()
    if depth > 3 or roll < 0.55:
        return rng.choice(SCALARS)
    if roll < 0.75:
        return "[" + ",".join(_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    if roll < 0.8:
        return "[" * 200 + "]" * 200  # deep, within the body limit and the depth cap
    if roll < 0.85:
        return "[" + ",".join(["1"] * rng.choice([101, 1000, 30_000])) + "]"
    keys = rng.sample(FIELDS, rng.randint(0, 5))
    return "{" + ",".join(f'"{k}":{_value(rng, depth + 1)}' for k in keys) + "}"


METHOD_NAMES = [*sorted(METHODS), "eth_sendRawTransaction"]


def _request(rng: random.Random, rid: int) -> str:
    """One request: mostly a real method with hostile params, sometimes a hostile envelope."""
    method = json.dumps(rng.choice(METHOD_NAMES))
    params = "[" + ",".join(_value(rng) for _ in range(rng.randint(0, 4))) + "]"
    roll = rng.random()
    if roll < 0.8:
        return f'{{"jsonrpc":"2.0","id":{rid},"method":{method},"params":{params}}}'
    envelopes = [
        f'{{"jsonrpc":"2.0","id":1e999,"method":{method}}}',
        f'{{"jsonrpc":"2.0","id":{_value(rng)},"method":{method},"params":{params}}}',
        f'{{"jsonrpc":"1.0","id":{rid},"method":{method}}}',
        f'{{"jsonrpc":"2.0","id":{rid},"method":{_value(rng)},"params":{params}}}',
        f'{{"jsonrpc":"2.0","id":{rid},"method":{method},"params":{_value(rng)}}}',
        _value(rng),
    ]
    return rng.choice(envelopes)


def _batch(rng: random.Random) -> str:
    shape = rng.random()
    if shape < 0.1:
        return "[]"
    if shape < 0.2:
        return "[" + ",".join(_request(rng, i) for i in range(101)) + "]"
    if shape < 0.3:
        return "[[" + _request(rng, 1) + "]]"
    return "[" + ",".join(_request(rng, i) for i in range(rng.randint(1, 12))) + "]"


def _fuzz(client, seed: int, cases: int) -> None:
    """``cases`` requests of ``seed``, each within the body limit (a larger body
    is refused before JSON-RPC sees it: 413, ``body_too_large``)."""
    rng = random.Random(seed)
    done = 0
    while done < cases:
        body = _batch(rng) if rng.random() < 0.25 else _request(rng, rng.randint(0, 9))
        if len(body.encode()) <= MAX_BODY_BYTES:
            _post(client, body)
            done += 1


def test_hostile_requests_get_json_rpc_answers(client):
    _fuzz(client, seed=1, cases=300)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_hostile_requests_get_json_rpc_answers_at_length(client):
    for seed in range(2, 12):
        _fuzz(client, seed=seed, cases=500)


@pytest.mark.slow
def test_every_method_takes_each_hostile_scalar_in_each_place(client):
    """Systematic where the fuzz is random: each method, each scalar, at each of
    the first three parameters (the rest left valid or absent)."""
    for method in METHOD_NAMES:
        for value in SCALARS[:-2]:  # the two largest go through the fuzz
            for at in range(3):
                params = ['"latest"'] * at + [value]
                body = (
                    f'{{"jsonrpc":"2.0","id":7,"method":"{method}","params":[{",".join(params)}]}}'
                )
                reply = _post(client, body)
                assert reply["id"] == 7


def test_the_largest_answers_stay_under_the_cap(client):
    """A log query matching more than ``MAX_LOG_RESULTS`` logs is refused with other
    nodes' words; one topic's 8,000 answer in full (3.2 MB); in a batch whose
    answers pass the 24 MiB cap, the items beyond it are ``rpc_limit`` errors."""

    def query(rid: int, lo: int = 2, topic: int | None = None) -> dict:
        flt = {"fromBlock": hex(lo), "toBlock": hex(lo)}
        if topic is not None:
            flt["topics"] = ["0x" + topic.to_bytes(32, "big").hex()]
        return {"jsonrpc": "2.0", "id": rid, "method": "eth_getLogs", "params": [flt]}

    whole = _post(client, json.dumps(query(1)))
    assert whole["error"]["code"] == -32005
    assert whole["error"]["message"].startswith(
        f"query returned more than {MAX_LOG_RESULTS} results"
    )
    assert len(_post(client, json.dumps(query(2, topic=9)))["result"]) == PER_TOPIC
    batch = _post(client, json.dumps([query(i, topic=TOPICS[i % 5]) for i in range(10)]))
    # Ten answers would be 32 MB: the cap (or the batch's time budget, on a
    # loaded machine) stops it; the items before answer in full, those after
    # are rpc_limit.
    answered = [item for item in batch if "result" in item]
    assert 1 <= len(answered) < 10 and "result" in batch[0]
    assert all(len(a["result"]) == PER_TOPIC for a in answered)
    for item in batch[len(answered) :]:
        assert item["error"]["code"] == -32005 and item["error"]["data"]["code"] == "rpc_limit"
    assert len(_post(client, json.dumps(query(3, lo=1)))["result"]) == 3
