"""Ethereum's own state tests through our EVM plane: the published post-state roots.

Each case of ``data/state_tests`` (see its README for the source) sets up its
pre-state in the chain's keys, runs the signed transaction with the chain's
checks (``modules.evm.check_transaction``) and py-evm over ``StateAccountDB``,
then rebuilds an Ethereum Merkle-Patricia state trie from the keys the run
left (balances and nonces from the account records, code, storage) and
compares its root, and the hash of the logs, with the expected ones for the
Cancun rules. A transaction the rules refuse must leave the pre-state's root.

Blob transactions (type 3) are not taken by the chain; their cases are
skipped, and counted so that the skip cannot grow unseen.
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path

import pytest
import rlp
from eth.db.account import AccountDB
from eth.db.atomic import AtomicDB
from eth.vm.forks.cancun.transactions import CancunTransactionBuilder
from eth_hash.auto import keccak

from focusflow.chain.errors import TxError
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode
from focusflow.modules.evm import check_transaction
from focusflow.vm import evm
from focusflow.vm.evm_keys import (
    ACCOUNT_PREFIX,
    CODE_PREFIX,
    STORE_PREFIX,
    code_key,
    encode_word,
    storage_key,
)

DATA = Path(__file__).parent / "data" / "state_tests"
FORK = "Cancun"
#: Cases of blob transactions among the files (skipped, see the module docstring).
BLOB_CASES = 10


def _int(text: str) -> int:
    return int(text, 16)


def _bytes(text: str) -> bytes:
    return bytes.fromhex(text[2:] if text.startswith("0x") else text)


def _cases() -> list[tuple[str, dict, dict]]:
    out = []
    for path in sorted(DATA.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(path.read_bytes()))
        for name, test in doc.items():
            for case in test["post"].get(FORK, []):
                ix = case["indexes"]
                label = f"{path.name[:-8]}:{name}:d{ix['data']}g{ix['gas']}v{ix['value']}"
                out.append((label, test, case))
    return out


CASES = _cases()


def _pre_state(pre: dict) -> dict[bytes, bytes]:
    base: dict[bytes, bytes] = {}
    for text, account in pre.items():
        address = _bytes(text)
        base[ACCOUNT_PREFIX + address] = encode(
            [_int(account["balance"]), _int(account["nonce"]), 0]
        )
        code = _bytes(account["code"])
        if code:
            base[code_key(address)] = code
        for slot, value in account["storage"].items():
            if _int(value):
                base[storage_key(address, _int(slot))] = encode_word(_int(value))
    return base


def _mpt_root(keys: dict[bytes, bytes]) -> bytes:
    """The Ethereum state root of the accounts, code and storage in ``keys``."""
    trie = AccountDB(AtomicDB())
    for key, value in keys.items():
        if key.startswith(ACCOUNT_PREFIX):
            address = key[len(ACCOUNT_PREFIX) :]
            balance, nonce, _ = decode(value)
            trie.touch_account(address)
            trie.set_balance(address, balance)
            trie.set_nonce(address, nonce)
    for key, value in keys.items():
        if key.startswith(CODE_PREFIX):
            address = key[len(CODE_PREFIX) :]
            trie.touch_account(address)
            trie.set_code(address, value)
        elif key.startswith(STORE_PREFIX):
            rest = key[len(STORE_PREFIX) :]
            trie.touch_account(rest[:20])
            trie.set_storage(rest[:20], int.from_bytes(rest[20:], "big"), int.from_bytes(value))
    trie.persist()
    return bytes(trie.state_root)


def _logs_hash(logs: list[tuple[bytes, list[int], bytes]]) -> bytes:
    entries = [[a, [t.to_bytes(32, "big") for t in topics], d] for a, topics, d in logs]
    return bytes(keccak(rlp.encode(entries)))


def test_the_slice_is_whole():
    """The vectors are there, and only the known blob cases are skipped."""
    assert len(CASES) >= 1000
    blobs = [c for c in CASES if _bytes(c[2]["txbytes"])[:1] == b"\x03"]
    assert len(blobs) == BLOB_CASES


@pytest.mark.parametrize("label, test, case", CASES, ids=[c[0] for c in CASES])
def test_post_state_root(label, test, case):
    raw = _bytes(case["txbytes"])
    if raw[:1] == b"\x03":
        pytest.skip("blob transactions (type 3) are not taken by the chain")
    env = test["env"]
    base = _pre_state(test["pre"])
    state = PendingState(
        base.get, lambda p: sorted((k, v) for k, v in base.items() if k.startswith(p))
    )
    block = evm.EvmBlock(
        chain_id=1,
        number=_int(env["currentNumber"]),
        timestamp=_int(env["currentTimestamp"]),
        coinbase=_bytes(env["currentCoinbase"]),
        gas_limit=_int(env["currentGasLimit"]),
        base_fee=_int(env["currentBaseFee"]),
        prev_randao=_bytes(env["currentRandom"]).rjust(32, b"\0"),
    )
    logs: list = []
    refused = None
    try:
        tx = CancunTransactionBuilder.decode(raw)
        check_transaction(state, tx, bytes(tx.sender), block.base_fee, block.gas_limit, 0)
        logs = evm.apply_transaction(state, block, tx).logs
    except (TxError, evm.EvmValidationError) as exc:
        refused = exc
    if case.get("expectException"):
        assert refused is not None, f"{label}: expected {case['expectException']}, ran"
        assert not state.writes
    else:
        assert refused is None, f"{label}: refused: {refused}"
    final = dict(base)
    for key, value in state.writes.items():
        if value is None:
            final.pop(key, None)
        else:
            final[key] = value
    assert _mpt_root(final) == _bytes(case["hash"])
    assert _logs_hash(logs) == _bytes(case["logs"])


def test_calls_1024_deep_run_in_a_worker_thread():
    """A node executes blocks in a worker thread, on a thread's C stack rather
    than the main thread's: the deepest calls Ethereum allows must still run
    there and give their roots (py-evm recurses in Python once per call level)."""
    deep = [c for c in CASES if "1024" in c[0] or "RECURSIVE" in c[0]]
    assert len(deep) >= 4
    failures: list[BaseException] = []

    def run() -> None:
        for case in deep:
            try:
                test_post_state_root(*case)
            except BaseException as exc:  # noqa: BLE001 - reported to the test thread
                failures.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert not failures, failures[:1]
