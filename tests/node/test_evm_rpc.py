"""Ethereum JSON-RPC against a real devnet process, driven by web3.py as a developer would.

The contract is assembled here (no Solidity compiler is downloaded): ``get()``
returns storage slot 0, ``set(uint256)`` stores its argument there and emits
``Set(uint256)``, any other call reverts.
"""

from __future__ import annotations

import httpx
import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from focusflow.chain import Msg
from focusflow.chain.eth_tx import evm_chain_id
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.node.home import ETH_DEV_BALANCE, eth_dev_accounts
from focusflow.testing.devnet import link_msg, signed, wait_tx

ABI = [
    {
        "type": "function",
        "name": "get",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "view",
    },
    {
        "type": "function",
        "name": "set",
        "inputs": [{"name": "v", "type": "uint256"}],
        "outputs": [],
        "stateMutability": "nonpayable",
    },
    {
        "type": "event",
        "name": "Set",
        "inputs": [{"name": "v", "type": "uint256", "indexed": False}],
        "anonymous": False,
    },
]


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _runtime() -> bytes:
    """The contract's code, its two jump targets placed by their offsets."""
    head = bytes.fromhex("60003560e01c")  # selector = calldata[0:4]
    dispatch_len = 2 * 10 + 4
    get_at = len(head) + dispatch_len
    get = bytes.fromhex("5b60005460005260206000f3")
    set_at = get_at + len(get)
    dispatch = (
        b"\x80\x63" + _selector("get()") + b"\x14\x60" + bytes([get_at]) + b"\x57"
        + b"\x80\x63" + _selector("set(uint256)") + b"\x14\x60" + bytes([set_at]) + b"\x57"
        + bytes.fromhex("600080fd")  # anything else: revert
    )  # fmt: skip
    topic = keccak(text="Set(uint256)")
    set_code = bytes.fromhex("5b600435806000556000527f") + topic + bytes.fromhex("60206000a100")
    code = head + dispatch + get + set_code
    assert len(head + dispatch) == get_at and len(head + dispatch + get) == set_at
    return code


def _init(runtime: bytes) -> bytes:
    return bytes([0x60, len(runtime)]) + bytes.fromhex("80600b6000396000f3") + runtime


@pytest.fixture(scope="module")
def w3(shared_devnet):
    return Web3(Web3.HTTPProvider(shared_devnet.api + "/evm", request_kwargs={"timeout": 30}))


def _send(w3: Web3, key: bytes, tx: dict) -> dict:
    signed = Account.sign_transaction(tx, key)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.1)


def test_web3_deploys_calls_and_reads_a_contract(w3, shared_devnet):
    status = httpx.get(shared_devnet.api + "/v1/status").json()
    assert w3.eth.chain_id == evm_chain_id(status["chain_id"])
    (address, key), (other, _) = eth_dev_accounts()[:2]
    sender = Web3.to_checksum_address(address)
    assert sender == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # anvil's account 0
    assert w3.eth.get_balance(Web3.to_checksum_address(other)) == ETH_DEV_BALANCE
    # The devnet prints the accounts and their keys, as anvil does.
    log = shared_devnet.log()
    assert f"chain id {w3.eth.chain_id}" in log and f"(0) {sender}" in log and key.hex() in log

    runtime = _runtime()
    factory = w3.eth.contract(abi=ABI, bytecode=_init(runtime))
    deploy = factory.constructor().build_transaction(
        {"from": sender, "nonce": w3.eth.get_transaction_count(sender)}
    )
    receipt = _send(w3, key, deploy)
    assert receipt["status"] == 1
    where = receipt["contractAddress"]
    assert where == "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # nonce 0's address
    assert bytes(w3.eth.get_code(where)) == runtime
    contract = w3.eth.contract(address=where, abi=ABI)
    assert contract.functions.get().call() == 0

    before = w3.eth.get_balance(sender)
    tx = contract.functions.set(7).build_transaction(
        {"from": sender, "nonce": w3.eth.get_transaction_count(sender)}
    )
    receipt = _send(w3, key, tx)
    assert receipt["status"] == 1
    (event,) = contract.events.Set().process_receipt(receipt)
    assert event["args"]["v"] == 7
    assert contract.functions.get().call() == 7
    assert int.from_bytes(w3.eth.get_storage_at(where, 0), "big") == 7
    spent = before - w3.eth.get_balance(sender)
    assert spent == receipt["gasUsed"] * receipt["effectiveGasPrice"] > 0

    # The estimate is the least gas that runs set(8) (SSTORE's 2300 stipend rule
    # included): one unit less fails.
    data = contract.functions.set(8).build_transaction({"from": sender, "gas": 10**6})["data"]
    est = w3.eth.estimate_gas({"from": sender, "to": where, "data": data})
    url = shared_devnet.api + "/evm"
    for gas, ok in ((est, True), (est - 1, False)):
        call = {"from": sender, "to": where, "data": data, "gas": hex(gas)}
        doc = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, "latest"]}
        assert ("result" in httpx.post(url, json=doc).json()) is ok, gas

    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": where})
    # The receipt's log index is the one eth_getLogs gives the same log.
    assert [log["logIndex"] for log in logs] == [receipt["logs"][0]["logIndex"]]
    assert [bytes(log["transactionHash"]) for log in logs] == [bytes(receipt["transactionHash"])]
    found = w3.eth.get_transaction(receipt["transactionHash"])
    assert found["from"] == sender and found["to"] == where and found["nonce"] == tx["nonce"]
    block = w3.eth.get_block(receipt["blockNumber"], full_transactions=False)
    assert bytes(receipt["transactionHash"]) in [bytes(h) for h in block["transactions"]]
    assert w3.eth.fee_history(4, "latest", [50])["baseFeePerGas"]


def test_a_reverted_transaction_pays_its_gas_and_changes_nothing_else(w3):
    (_, _), (_, _), (address, key) = eth_dev_accounts()[:3]
    sender = Web3.to_checksum_address(address)
    runtime = _runtime()
    receipt = _send(
        w3,
        key,
        {
            "chainId": w3.eth.chain_id,
            "nonce": w3.eth.get_transaction_count(sender),
            "gas": 200_000,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "to": None,
            "data": _init(runtime),
        },
    )
    where = receipt["contractAddress"]
    nonce = w3.eth.get_transaction_count(sender)
    before = w3.eth.get_balance(sender)
    bad = {"to": where, "data": "0xdeadbeef", "from": sender}
    with pytest.raises(ContractLogicError):
        w3.eth.call(bad)
    receipt = _send(
        w3,
        key,
        {**bad, "chainId": w3.eth.chain_id, "nonce": nonce, "gas": 60_000,
         "maxFeePerGas": 10, "maxPriorityFeePerGas": 1},
    )  # fmt: skip
    assert receipt["status"] == 0
    assert w3.eth.get_transaction_count(sender) == nonce + 1
    assert before - w3.eth.get_balance(sender) == receipt["gasUsed"] * receipt["effectiveGasPrice"]
    contract = w3.eth.contract(address=where, abi=ABI)
    assert contract.functions.get().call() == 0


def test_value_transfers_and_refusals_with_their_codes(w3):
    accounts = eth_dev_accounts()
    (address, key), (other, _) = accounts[3], accounts[4]
    sender, to = Web3.to_checksum_address(address), Web3.to_checksum_address(other)
    start_to = w3.eth.get_balance(to)
    base = {"to": to, "value": 12345, "gas": 21_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1}
    nonce = w3.eth.get_transaction_count(sender)
    receipt = _send(w3, key, {**base, "chainId": w3.eth.chain_id, "nonce": nonce})
    assert receipt["status"] == 1 and receipt["gasUsed"] == 21_000
    assert w3.eth.get_balance(to) == start_to + 12345

    def refused(tx: dict) -> dict:
        raw = Account.sign_transaction(tx, key).raw_transaction
        with pytest.raises(Web3RPCError) as info:
            w3.eth.send_raw_transaction(raw)
        return info.value.rpc_response["error"]

    chain_id = w3.eth.chain_id
    assert refused({**base, "chainId": chain_id + 1, "nonce": nonce + 1})["data"] == {
        "code": "wrong_chain_id"
    }
    assert refused({**base, "chainId": chain_id, "nonce": nonce})["data"] == {"code": "bad_nonce"}
    too_much = {**base, "chainId": chain_id, "nonce": nonce + 1, "value": 2 * ETH_DEV_BALANCE}
    error = refused(too_much)
    assert error["code"] == -32000 and error["data"]["code"] in ("insufficient_funds",)
    assert w3.eth.get_transaction_count(sender) == nonce + 1


def test_json_rpc_errors_follow_the_specification(shared_devnet):
    url = shared_devnet.api + "/evm"
    assert httpx.post(url, content=b"{nope").json()["error"]["code"] == -32700
    assert httpx.post(url, json={"id": 1}).json()["error"]["code"] == -32600
    reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_nope"}).json()
    assert reply["error"]["code"] == -32601 and reply["id"] == 1
    bad = {"jsonrpc": "2.0", "id": 2, "method": "eth_getBalance", "params": ["0x12", "latest"]}
    assert httpx.post(url, json=bad).json()["error"]["code"] == -32602
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber"},
        {"jsonrpc": "2.0", "id": 2, "method": "net_version"},
    ]
    replies = httpx.post(url, json=batch).json()
    assert [r["id"] for r in replies] == [1, 2] and all("result" in r for r in replies)
    assert httpx.post(url, json=[]).json()["error"]["code"] == -32600
    deep = "[" * 100_000 + "]" * 100_000
    assert httpx.post(url, content=deep).json()["error"]["code"] == -32700
    headers = {"content-type": "application/json"}
    assert httpx.post(url, content=deep, headers=headers).json()["error"]["code"] == -32700
    assert "result" in httpx.post(url, json=batch[0]).json()  # and the node is still up


READER_ABI = [
    {
        "type": "function",
        "name": "focusOf",
        "inputs": [{"name": "cid", "type": "bytes"}],
        "outputs": [{"name": "", "type": "uint256"}],
        "stateMutability": "nonpayable",
    }
]
#: ``focusOf(bytes)``: asks the focus precompile, stores the answer at slot 0, returns it.
READER = bytes.fromhex("6024358060446000376020600082600061f0c55afa505060005160005560206000f3")


def test_a_contract_reads_focus_in_a_call_and_in_a_transaction(w3, shared_devnet):
    dev = shared_devnet.dev_key()
    native = signed(shared_devnet, dev, [link_msg(("cats", "mammals"), ("dogs", "mammals"))])
    with shared_devnet.client() as c:
        assert c.post("/v1/txs", json={"tx": native.encoded.hex()}).status_code == 202
    wait_tx(shared_devnet, native.hash.hex())
    cid = cid_to_bytes(cid_of_text("mammals"))
    with shared_devnet.client() as c:
        focus_q = c.get(f"/v1/focus/particles/{cid_of_text('mammals')}").json()["focus_q"]
    assert focus_q > 0
    # The karma precompile answers a call with the node's fixed-point karma:
    # the API's karma (over the whole focus, 1) in units of 10^-15.
    karma = Web3.to_checksum_address("0x000000000000000000000000000000000000f0c7")
    fixed = int.from_bytes(w3.eth.call({"to": karma, "data": dev.address_raw}), "big")
    with shared_devnet.client() as c:
        api = c.get(f"/v1/focus/neurons/{dev.address}").json()["karma"]
    assert fixed > 0 and abs(fixed / 10**15 - api) < 1e-9

    address, key = eth_dev_accounts()[5]
    sender = Web3.to_checksum_address(address)
    receipt = _send(
        w3,
        key,
        {"chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(sender),
         "gas": 200_000, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1, "to": None,
         "data": _init(READER)},
    )  # fmt: skip
    reader = w3.eth.contract(address=receipt["contractAddress"], abi=READER_ABI)
    assert reader.functions.focusOf(cid).call() == focus_q
    assert reader.functions.focusOf(b"not a particle").call() == 0
    tx = reader.functions.focusOf(cid).build_transaction(
        {"from": sender, "nonce": w3.eth.get_transaction_count(sender)}
    )
    assert _send(w3, key, tx)["status"] == 1
    stored = int.from_bytes(w3.eth.get_storage_at(reader.address, 0), "big")
    assert stored == focus_q  # no link since: the parent block's focus is the same


def test_ethers_deploys_sends_and_reads_unmodified(w3, shared_devnet):
    """ethers (npm, vendored by tests/js/build) against the same node, in Node.js."""
    import json
    import shutil
    import subprocess
    from pathlib import Path

    node = shutil.which("node")
    assert node is not None, "Node.js is missing: ./dev test installs it"
    address, key = eth_dev_accounts()[7]
    script = Path(__file__).parents[1] / "js" / "ethers_devnet.cjs"
    run = subprocess.run(
        [
            node,
            str(script),
            shared_devnet.api + "/evm",
            "0x" + key.hex(),
            "0x" + _init(_runtime()).hex(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert int(out["chainId"]) == w3.eth.chain_id
    assert out["address"] == Web3.to_checksum_address(address)
    assert int(out["balance"]) == ETH_DEV_BALANCE
    assert int(out["maxFeePerGas"]) > 0
    assert out["codeBytes"] == len(_runtime())
    assert out["status"] == 1 and out["value"] == "42" and out["events"] == ["42"]
    assert 21_000 < int(out["estimate"]) < 100_000
    assert out["revert"] == "CALL_EXCEPTION"
    assert out["txInBlock"] is True and out["nonce"] == 2


def test_websocket_subscriptions_bring_new_heads_and_logs(w3, shared_devnet):
    """web3.py's WebSocketProvider on /evm: calls, newHeads, a filtered logs
    subscription that sees the contract's event, unsubscribe."""
    import asyncio

    from web3 import AsyncWeb3, WebSocketProvider

    address, key = eth_dev_accounts()[8]
    sender = Web3.to_checksum_address(address)
    deploy = (
        w3.eth.contract(abi=ABI, bytecode=_init(_runtime()))
        .constructor()
        .build_transaction({"from": sender, "nonce": w3.eth.get_transaction_count(sender)})
    )
    contract = w3.eth.contract(address=_send(w3, key, deploy)["contractAddress"], abi=ABI)
    url = shared_devnet.api.replace("http://", "ws://") + "/evm"

    async def run() -> tuple[list[int], list[dict], bool, bool]:
        async with AsyncWeb3(WebSocketProvider(url)) as aw3:
            assert await aw3.eth.chain_id == w3.eth.chain_id
            heads = await aw3.eth.subscribe("newHeads")
            logs = await aw3.eth.subscribe("logs", {"address": contract.address})
            tx = contract.functions.set(7).build_transaction(
                {"from": sender, "nonce": w3.eth.get_transaction_count(sender)}
            )
            await asyncio.to_thread(_send, w3, key, tx)
            numbers: list[int] = []
            seen: list[dict] = []
            async with asyncio.timeout(30):
                async for message in aw3.socket.process_subscriptions():
                    if message["subscription"] == heads:
                        numbers.append(int(message["result"]["number"]))
                    elif message["subscription"] == logs:
                        seen.append(message["result"])
                    if seen and len(numbers) >= 2:
                        break
            first = await aw3.eth.unsubscribe(logs)
            # The node forgot it too (web3.py refuses to ask twice itself).
            again = (await aw3.provider.make_request("eth_unsubscribe", [logs]))["result"]
            return numbers, seen, first, again

    numbers, seen, first, again = asyncio.run(run())
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    ((log,),) = [seen]
    assert log["address"] == contract.address
    assert int.from_bytes(bytes(log["data"]), "big") == 7
    assert log["topics"][0] == keccak(text="Set(uint256)")
    assert first is True and again is False


def test_websocket_refusals_are_json_rpc_errors_and_caps_hold(shared_devnet):
    import asyncio
    import json

    import websockets

    url = shared_devnet.api.replace("http://", "ws://") + "/evm"

    async def run() -> dict:
        out: dict = {}
        async with websockets.connect(url) as ws:

            async def ask(request) -> dict:
                await ws.send(request if isinstance(request, str) else json.dumps(request))
                return json.loads(await ws.recv())

            req = {"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe"}
            out["bad_kind"] = await ask({**req, "params": ["pendingTransactions"]})
            out["bad_filter"] = await ask({**req, "params": ["logs", {"fromBlock": "0x0"}]})
            out["batch"] = await ask([{"jsonrpc": "2.0", "id": 2, "method": "eth_blockNumber"}])
            out["parse"] = await ask("{")
            out["not_request"] = await ask('"{"')
            ids = [(await ask({**req, "params": ["newHeads"]})).get("result") for _ in range(33)]
            out["ids"] = ids
        async with websockets.connect(url, max_size=None) as ws:
            await ws.send("[" + " " * (200 << 10) + "]")
            with pytest.raises(websockets.ConnectionClosed) as info:
                await ws.recv()
            out["too_big"] = info.value.rcvd.code
        return out

    out = asyncio.run(run())
    assert out["bad_kind"]["error"]["code"] == -32602
    assert out["bad_filter"]["error"]["code"] == -32602
    assert int(out["batch"][0]["result"], 16) >= 0
    assert out["parse"]["error"]["code"] == -32700
    assert out["not_request"]["error"]["code"] == -32600
    assert all(isinstance(i, str) for i in out["ids"][:32]) and out["ids"][32] is None
    assert out["too_big"] == 1009


#: The dev powers of ``focusflow devnet --anvil`` (tests/api/test_evm_anvil.py).
DEV_CALLS = [
    ("eth_sendTransaction", [{"from": "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"}]),
    ("evm_mine", []),
    ("anvil_mine", ["0x2"]),
    ("evm_increaseTime", [60]),
    ("evm_setNextBlockTimestamp", [4_000_000_000]),
    ("anvil_setBalance", ["0x" + "11" * 20, "0x1"]),
    ("anvil_impersonateAccount", ["0x" + "11" * 20]),
    ("evm_snapshot", []),
    ("evm_revert", ["0x1"]),
    ("debug_traceTransaction", ["0x" + "22" * 32]),
]


def test_a_devnet_without_anvil_refuses_every_dev_power(w3, shared_devnet):
    """No flag, no genesis grant: each dev method answers method-not-available with
    ``dev_only``, and the dev messages fail in their block, changing nothing."""
    assert w3.eth.accounts == []
    for method, params in DEV_CALLS:
        error = w3.provider.make_request(method, params)["error"]
        assert error["code"] == -32601 and error["data"] == {"code": "dev_only"}, method
        assert "focusflow devnet --anvil" in error["message"]
    target = bytes.fromhex("11" * 20)
    key = shared_devnet.dev_key()
    for msg in (
        Msg("evm.set_balance", {"address": target, "balance": (10**30).to_bytes(32, "big")}),
        Msg("evm.restore", {"writes": [[b"/token/acct/" + target, b"\x83\x01\x00\x00"]]}),
        Msg("evm.call_as", {"from": target, "to": b"", "value": bytes(32), "data": b"", "gas": 1}),
    ):
        tx = signed(shared_devnet, key, [msg])
        with shared_devnet.client() as c:
            assert c.post("/v1/txs", json={"tx": tx.encoded.hex()}).status_code in (200, 202)
        status = wait_tx(shared_devnet, tx.hash.hex())
        assert status["code"] == "dev_only", status
    assert w3.eth.get_balance(Web3.to_checksum_address(target)) == 0
