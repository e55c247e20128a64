"""``focusflow devnet --anvil`` driven by web3.py as a hardhat or foundry test suite drives anvil.

One devnet process for the module: contracts deployed and called from the
unlocked test accounts (no key in the client) and an impersonated one, polled
filters, snapshot and revert between tests, time travel, traces, proofs, blocks mined on demand and
the logs of more than a thousand of them; and the bounds a hostile client
meets. ``tests/node/test_evm_rpc.py`` checks that a devnet without ``--anvil``
refuses every dev power.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3
from web3.exceptions import TransactionNotFound

from focusflow.api.evm_filters import MAX_FILTERS_PER_CLIENT
from focusflow.api.routes_evm import MAX_LOG_RESULTS
from focusflow.node.devnet_anvil import ANVIL_BALANCE
from focusflow.node.home import eth_dev_accounts
from focusflow.store.smt import Proof, verify_proof
from focusflow.testing.devnet import start_devnet
from focusflow.vm.evm_trace import MAX_TRACE_STEPS
from tests.node.test_evm_rpc import ABI, _init, _runtime

#: A contract that emits ``n`` empty logs (LOG0), ``n`` its calldata's first word.
LOOP = bytes.fromhex("6000355b801560155760006000a0600190036003565b00")


@pytest.fixture(scope="module")
def anvil(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("anvil") / "home", "--anvil")
    yield net
    net.stop()


@pytest.fixture(scope="module")
def w3(anvil):
    w3 = Web3(Web3.HTTPProvider(anvil.api + "/evm", request_kwargs={"timeout": 60}))
    # The first block carries the top-up of the test accounts.
    while w3.eth.get_balance(w3.eth.accounts[9]) != ANVIL_BALANCE:
        w3.provider.make_request("evm_mine", [])
    return w3


def rpc(w3: Web3, method: str, *params) -> dict:
    return w3.provider.make_request(method, list(params))


def verifies(root: bytes, part: dict) -> bool:
    """Whether a ``{key, value, proof}`` part of ``eth_getProof`` verifies against ``root``."""
    value = None if part["value"] is None else bytes.fromhex(part["value"])
    proof = Proof.decode(bytes.fromhex(part["proof"]))
    return verify_proof(root, bytes.fromhex(part["key"]), value, proof)


def wait(w3: Web3, tx_hash) -> dict:
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)


@pytest.fixture(scope="module")
def counter(w3):
    """The get/set contract, deployed from account 0 with ``transact``."""
    factory = w3.eth.contract(abi=ABI, bytecode=_init(_runtime()))
    receipt = wait(w3, factory.constructor().transact({"from": w3.eth.accounts[0]}))
    return w3.eth.contract(address=receipt["contractAddress"], abi=ABI)


def test_the_test_accounts_are_unlocked_and_hold_10000_ether(w3):
    expected = [Web3.to_checksum_address(a) for a, _ in eth_dev_accounts()]
    assert w3.eth.accounts == expected
    for account in expected:
        assert w3.eth.get_balance(account) == ANVIL_BALANCE == Web3.to_wei(10_000, "ether")


def test_transact_from_an_unlocked_account_mines_a_block_per_transaction(w3, counter):
    before = w3.eth.block_number
    first = wait(w3, counter.functions.set(11).transact({"from": w3.eth.accounts[1]}))
    second = wait(w3, counter.functions.set(12).transact({"from": w3.eth.accounts[2]}))
    assert first["status"] == second["status"] == 1
    assert before < first["blockNumber"] < second["blockNumber"]
    assert counter.functions.get().call() == 12
    # With nothing to do the devnet makes no blocks.
    head = w3.eth.block_number
    assert w3.eth.get_block("latest")["number"] == head
    # As anvil, the answer comes once the transaction is mined (ethers' tx.wait()
    # watches only the blocks after it asks, and on demand none may follow).
    sent = counter.functions.set(13).transact({"from": w3.eth.accounts[2]})
    assert w3.eth.get_transaction_receipt(sent)["status"] == 1
    address, key = eth_dev_accounts()[3]
    raw = Account.sign_transaction(
        {"to": w3.eth.accounts[0], "value": 1, "gas": 21_000, "maxFeePerGas": 10,
         "maxPriorityFeePerGas": 1, "chainId": w3.eth.chain_id,
         "nonce": w3.eth.get_transaction_count(Web3.to_checksum_address(address))},
        key,
    )  # fmt: skip
    sent = w3.eth.send_raw_transaction(raw.raw_transaction)
    assert w3.eth.get_transaction_receipt(sent)["status"] == 1
    refused = rpc(w3, "eth_sendTransaction", {"from": "0x" + "11" * 20, "to": counter.address})
    assert (
        refused["error"]["code"] == -32000
        and "not an unlocked account" in refused["error"]["message"]
    )


def test_polled_filters_bring_new_events_and_blocks_once(w3, counter):
    logs = w3.eth.filter({"address": counter.address})
    blocks = w3.eth.filter("latest")
    receipt = wait(w3, counter.functions.set(21).transact({"from": w3.eth.accounts[3]}))
    entries = logs.get_new_entries()
    assert [int.from_bytes(e["data"], "big") for e in entries] == [21]
    assert entries[0]["transactionHash"] == receipt["transactionHash"]
    assert logs.get_new_entries() == []
    assert receipt["blockHash"] in blocks.get_new_entries()
    # Without fromBlock the filter's logs are the head block's, as geth's.
    assert [e["transactionHash"] for e in w3.eth.get_filter_logs(logs.filter_id)] == [
        receipt["transactionHash"]
    ]
    assert w3.eth.uninstall_filter(logs.filter_id) is True
    gone = rpc(w3, "eth_getFilterChanges", logs.filter_id)
    assert gone["error"] == {"code": -32000, "message": "filter not found"}
    assert w3.eth.uninstall_filter(blocks.filter_id) is True


def test_a_client_holds_a_bounded_number_of_filters(w3):
    ids = [rpc(w3, "eth_newBlockFilter")["result"] for _ in range(MAX_FILTERS_PER_CLIENT)]
    over = rpc(w3, "eth_newBlockFilter")
    assert over["error"]["code"] == -32005 and over["error"]["data"]["code"] == "rpc_limit"
    assert all(rpc(w3, "eth_uninstallFilter", i)["result"] is True for i in ids)
    assert isinstance(rpc(w3, "eth_newBlockFilter")["result"], str)  # room again


def test_snapshot_then_revert_puts_the_evm_state_back(w3, counter):
    me = w3.eth.accounts[4]
    wait(w3, counter.functions.set(31).transact({"from": me}))
    snap = rpc(w3, "evm_snapshot")["result"]
    nonce, balance = w3.eth.get_transaction_count(me), w3.eth.get_balance(me)
    changed = wait(w3, counter.functions.set(32).transact({"from": me}))
    made = wait(
        w3,
        w3.eth.contract(abi=ABI, bytecode=_init(_runtime())).constructor().transact({"from": me}),
    )
    assert counter.functions.get().call() == 32 and w3.eth.get_code(made["contractAddress"])
    assert rpc(w3, "evm_revert", snap)["result"] is True
    assert counter.functions.get().call() == 31
    assert w3.eth.get_transaction_count(me) == nonce and w3.eth.get_balance(me) == balance
    assert w3.eth.get_code(made["contractAddress"]) == b""
    assert rpc(w3, "evm_revert", snap)["result"] is False  # used up
    # The undone transactions are gone from the RPC, as anvil's revert removes
    # their blocks; the same transaction sent again (same nonce, same bytes) is
    # a new one, and its receipt the new block's.
    with pytest.raises(TransactionNotFound):
        w3.eth.get_transaction_receipt(made["transactionHash"])
    again = counter.functions.set(32).transact({"from": me})
    assert again == changed["transactionHash"]
    receipt = wait(w3, again)
    assert receipt["status"] == 1 and receipt["blockNumber"] > made["blockNumber"]
    assert counter.functions.get().call() == 32
    assert wait(w3, counter.functions.set(33).transact({"from": me}))["status"] == 1


@pytest.fixture
def isolated(w3):
    """What a hardhat suite's ``beforeEach``/``afterEach`` do: a snapshot before the
    test, reverted after it."""
    snap = rpc(w3, "evm_snapshot")["result"]
    yield
    assert rpc(w3, "evm_revert", snap)["result"] is True


def test_a_change_made_in_an_isolated_test(w3, counter, isolated):
    wait(w3, counter.functions.set(71).transact({"from": w3.eth.accounts[4]}))
    assert counter.functions.get().call() == 71


def test_is_gone_in_the_next_one(w3, counter, isolated):
    assert counter.functions.get().call() == 33


def test_time_travel_moves_block_timestamp(w3):
    before = w3.eth.get_block("latest")["timestamp"]
    assert rpc(w3, "evm_increaseTime", 3600)["result"] >= 3600
    rpc(w3, "evm_mine")
    assert w3.eth.get_block("latest")["timestamp"] >= before + 3600
    target = w3.eth.get_block("latest")["timestamp"] + 86_400
    assert rpc(w3, "evm_setNextBlockTimestamp", target)["result"] is None
    rpc(w3, "evm_mine")
    assert w3.eth.get_block("latest")["timestamp"] == target
    past = rpc(w3, "evm_setNextBlockTimestamp", target - 10)
    assert past["error"]["code"] == -32602 and "block times increase" in past["error"]["message"]


def test_set_balance_comes_in_a_block(w3):
    who = w3.eth.accounts[5]
    head = w3.eth.block_number
    assert rpc(w3, "anvil_setBalance", who, hex(12345))["result"] is None
    assert w3.eth.get_balance(who) == 12345 and w3.eth.block_number > head
    rpc(w3, "hardhat_setBalance", who, hex(ANVIL_BALANCE))
    assert w3.eth.get_balance(who) == ANVIL_BALANCE


def test_trace_transaction_returns_struct_logs(w3, counter):
    receipt = wait(w3, counter.functions.set(41).transact({"from": w3.eth.accounts[6]}))
    trace = rpc(w3, "debug_traceTransaction", receipt["transactionHash"].to_0x_hex())["result"]
    ops = [step["op"] for step in trace["structLogs"]]
    assert ops[:2] == ["PUSH1", "CALLDATALOAD"]
    assert {"SSTORE", "LOG1", "JUMPI"} <= set(ops) and ops[-1] == "STOP"
    assert trace["gas"] == receipt["gasUsed"] and trace["failed"] is False
    sstore = trace["structLogs"][ops.index("SSTORE")]
    assert sstore["stack"][-2:] == [hex(41), "0x0"]  # value, slot (top last)
    assert sstore["depth"] == 1 and sstore["gasCost"] > 2000
    other = rpc(
        w3,
        "debug_traceTransaction",
        receipt["transactionHash"].to_0x_hex(),
        {"tracer": "callTracer"},
    )
    assert other["error"]["code"] == -32602


def test_get_proof_verifies_against_the_state_root_and_a_tampered_one_fails(w3, counter):
    proof = rpc(w3, "eth_getProof", counter.address, ["0x" + "00" * 32], "latest")["result"]
    ours = proof["focusflow"]
    block = w3.eth.get_block(int(ours["height"], 16))
    root = bytes(block["stateRoot"])
    assert ours["stateRoot"] == "0x" + root.hex() == proof["storageHash"]
    account, code, slot = ours["proofs"]
    for part in (account, code, slot):
        assert verifies(root, part)
    assert int(proof["storageProof"][0]["value"], 16) == counter.functions.get().call()
    stored = int.from_bytes(bytes.fromhex(slot["value"]), "big")
    assert stored == counter.functions.get().call()
    forged = (stored + 1).to_bytes(32, "big").lstrip(b"\0")
    assert not verifies(root, {**slot, "value": forged.hex()})
    # The light client's verifier of /v1/proofs takes the same parts.
    from focusflow.light.answers import proven_value
    from focusflow.light.errors import BadProofError

    class Header:
        state_root = root

    class Block:
        header = Header()
        height = int(ours["height"], 16)

    assert proven_value(slot, bytes.fromhex(slot["key"]), Block()) == bytes.fromhex(slot["value"])
    with pytest.raises(BadProofError):
        proven_value({**slot, "value": forged.hex()}, bytes.fromhex(slot["key"]), Block())


def test_get_logs_from_block_0_over_more_than_1000_blocks(w3, counter):
    wait(w3, counter.functions.set(51).transact({"from": w3.eth.accounts[7]}))
    start = w3.eth.block_number
    assert rpc(w3, "anvil_mine", hex(1_050))["result"] is None
    assert w3.eth.block_number >= start + 1_050
    logs = w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": counter.address})
    assert int.from_bytes(logs[-1]["data"], "big") == 51 and len(logs) >= 5


def test_more_logs_than_the_bound_are_refused_and_a_filter_pages_them(w3):
    deployed = wait(
        w3, w3.eth.send_transaction({"from": w3.eth.accounts[8], "data": "0x" + _init(LOOP).hex()})
    )
    loop = deployed["contractAddress"]
    flt = w3.eth.filter({"address": loop})
    n = MAX_LOG_RESULTS + 1
    call = {"to": loop, "data": "0x" + n.to_bytes(32, "big").hex(), "gas": 6_000_000}
    receipt = wait(w3, w3.eth.send_transaction({"from": w3.eth.accounts[8], **call}))
    assert receipt["status"] == 1 and len(receipt["logs"]) == n
    block = receipt["blockNumber"]
    over = rpc(w3, "eth_getLogs", {"fromBlock": hex(block), "toBlock": hex(block)})
    assert over["error"]["code"] == -32005
    assert over["error"]["message"].startswith(
        f"query returned more than {MAX_LOG_RESULTS} results"
    )
    assert len(flt.get_new_entries()) == MAX_LOG_RESULTS
    assert len(flt.get_new_entries()) == 1
    assert flt.get_new_entries() == []
    trace = rpc(w3, "debug_traceTransaction", receipt["transactionHash"].to_0x_hex())["result"]
    assert trace["truncated"] is True and len(trace["structLogs"]) == MAX_TRACE_STEPS


def test_ethers_runs_a_hardhat_style_flow(anvil, w3):
    """ethers (vendored by tests/js/build) in Node.js: a signer of the node's
    accounts, deploy, events through a polled filter, snapshot/revert, time
    travel, a trace and a proof, with no private key in the client."""
    node = shutil.which("node")
    assert node is not None, "Node.js is missing: ./dev test installs it"
    script = Path(__file__).parents[1] / "js" / "ethers_anvil.cjs"
    run = subprocess.run(
        [node, str(script), anvil.api + "/evm", "0x" + _init(_runtime()).hex()],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["signer"] == w3.eth.accounts[0]
    assert out["value"] == "42" and out["events"] == ["42"]
    assert out["reverted"] == "42" and out["changed"] == "43"
    assert out["timeMoved"] >= 7200
    assert {"SSTORE", "LOG1"} <= set(out["ops"])
    assert verifies(bytes.fromhex(out["stateRoot"][2:]), out["slotProof"])


def test_an_impersonated_account_sends_without_its_key(w3, counter):
    whale = Web3.to_checksum_address("0x" + "be" * 20)
    refused = rpc(w3, "eth_sendTransaction", {"from": whale, "to": counter.address})
    assert "not an unlocked account" in refused["error"]["message"]
    rpc(w3, "anvil_setBalance", whale, hex(10**18))
    assert rpc(w3, "anvil_impersonateAccount", whale)["result"] is None
    receipt = wait(w3, counter.functions.set(61).transact({"from": whale}))
    assert receipt["status"] == 1 and receipt["from"] == whale and receipt["to"] == counter.address
    assert counter.functions.get().call() == 61
    sent = w3.eth.get_transaction(receipt["transactionHash"])
    assert (
        sent["from"] == whale
        and sent["nonce"] == 0
        and sent["blockNumber"] == receipt["blockNumber"]
    )
    assert w3.eth.get_transaction_count(whale) == 1
    assert w3.eth.get_balance(whale) == 10**18 - receipt["gasUsed"]  # the base fee, no tip
    logs = w3.eth.get_logs({"fromBlock": receipt["blockNumber"], "toBlock": receipt["blockNumber"]})
    assert [log["transactionHash"] for log in logs] == [receipt["transactionHash"]]
    trace = rpc(w3, "debug_traceTransaction", receipt["transactionHash"].to_0x_hex())["result"]
    assert "SSTORE" in {step["op"] for step in trace["structLogs"]}
    rpc(w3, "anvil_stopImpersonatingAccount", whale)
    again = rpc(w3, "eth_sendTransaction", {"from": whale, "to": counter.address})
    assert "not an unlocked account" in again["error"]["message"]
