"""Ethereum transactions per second: through focusflow's chain against py-evm alone.

The same signed transactions (EIP-1559, one sender per 100 transactions so
nonces stay in order) run three ways, side by side in one process:

- **py-evm alone**: a Cancun state over py-evm's own account database
  (``AtomicDB`` + its trie), ``apply_transaction`` one after another, the
  state root made once at the end;
- **our EVM plane**: the same py-evm interpreter over the chain state
  (``vm.evm.apply_transaction`` into a ``PendingState``), no block around it;
- **our chain**: ``Chain.produce_block`` with the transactions as a block
  (signature recovery, checks, execution, the sparse Merkle tree, LMDB commit).

Workloads: plain value transfers, and calls that write a fresh storage slot
and emit a log (a token transfer's shape: two storage writes less). Prints
transactions per second and our time over py-evm's (the plane's cost on top
of the bare interpreter).

Run from the repository root::

    python bench/vm.py --txs 2000
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

from eth_account import Account

from focusflow.chain import Genesis
from focusflow.chain.eth_tx import decode_eth_tx, evm_chain_id
from focusflow.chain.state import PendingState
from focusflow.core.keys import KeyPair, encode_address
from focusflow.node import open_chain
from focusflow.vm import evm

CHAIN_ID = "focusflow-bench"
VALIDATOR = KeyPair.from_seed(b"bench-validator".ljust(32, b"\0"))
#: Stores calldata[0:32] at slot calldata[32:64] and logs it.
STORE = bytes.fromhex("602035600035815560005260206000a000")
INIT = bytes([0x60, len(STORE)]) + bytes.fromhex("80600b6000396000f3") + STORE
PER_SENDER = 100


def keys(n: int) -> list:
    return [Account.from_key((i + 1).to_bytes(32, "big")) for i in range(n)]


def signed(senders, n: int, to: bytes | None, data_of) -> list[bytes]:
    out = []
    cid = evm_chain_id(CHAIN_ID)
    for i in range(n):
        acct = senders[i // PER_SENDER]
        tx = {
            "chainId": cid,
            "nonce": i % PER_SENDER + (1 if to is not None and i // PER_SENDER == 0 else 0),
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "gas": 100_000,
            "to": to if to is not None else "0x" + "11" * 20,
            "value": 1 if data_of is None else 0,
            "data": b"" if data_of is None else data_of(i),
        }
        out.append(bytes(Account.sign_transaction(tx, acct.key).raw_transaction))
    return out


def genesis(senders) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": {"focus": {"mode": "diffusion"}, "evm_block_gas_limit": 10**12},
            "accounts": [
                {"address": encode_address(bytes.fromhex(a.address[2:])), "balance": 10**18}
                for a in senders
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def bare_pyevm(senders, deploy: bytes | None, raws: list[bytes]) -> float:
    from eth.constants import BLANK_ROOT_HASH
    from eth.db.atomic import AtomicDB
    from eth.vm.forks.cancun.state import CancunState

    from focusflow.vm.evm import _context

    block = evm.EvmBlock(evm_chain_id(CHAIN_ID), 1, 1_700_000_001, b"\1" * 20, 10**12, 1)
    state = CancunState(AtomicDB(), _context(block), BLANK_ROOT_HASH)
    for a in senders:
        state.set_balance(bytes.fromhex(a.address[2:]), 10**18)
    state.lock_changes()
    state.make_state_root()
    txs = [decode_eth_tx(r).eth for r in raws]
    for t in txs:
        _ = t.sender  # recovery outside the timing, as ours is below
    if deploy is not None:
        state.apply_transaction(decode_eth_tx(deploy).eth)
        state.lock_changes()
    t0 = time.perf_counter()
    for t in txs:
        state.apply_transaction(t)
        state.lock_changes()
    state.make_state_root()
    return time.perf_counter() - t0


def our_plane(senders, deploy: bytes | None, raws: list[bytes]) -> float:
    from focusflow.core.encoding import encode
    from focusflow.vm.evm_state import ACCOUNT_PREFIX

    base: dict[bytes, bytes] = {}
    for a in senders:
        base[ACCOUNT_PREFIX + bytes.fromhex(a.address[2:])] = encode([10**18, 0, 0])
    state = PendingState(base.get)
    block = evm.EvmBlock(evm_chain_id(CHAIN_ID), 1, 1_700_000_001, b"\1" * 20, 10**12, 1)
    txs = [decode_eth_tx(r).eth for r in raws]
    for t in txs:
        _ = t.sender
    if deploy is not None:
        evm.apply_transaction(state, block, decode_eth_tx(deploy).eth)
    t0 = time.perf_counter()
    for t in txs:
        evm.apply_transaction(state, block, t)
    return time.perf_counter() - t0


def our_chain(senders, deploy: bytes | None, raws: list[bytes]) -> float:
    with tempfile.TemporaryDirectory() as d:
        chain = open_chain(d, genesis(senders), VALIDATOR)
        if deploy is not None:
            chain.produce_block([deploy], time_ms=1_700_000_001_000)
        t0 = time.perf_counter()
        result = chain.produce_block(raws, time_ms=1_700_000_002_000)
        seconds = time.perf_counter() - t0
        assert len(result.receipts) == len(raws), [r.error for r in result.rejected][:3]
        assert all(r.code == "ok" for r in result.receipts)
        chain.close()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=2000)
    args = ap.parse_args()
    n = args.txs
    senders = keys((n + PER_SENDER - 1) // PER_SENDER)
    deployer = senders[0]
    deploy_raw = bytes(
        Account.sign_transaction(
            {"chainId": evm_chain_id(CHAIN_ID), "nonce": 0, "maxFeePerGas": 10,
             "maxPriorityFeePerGas": 1, "gas": 200_000, "to": None, "data": INIT},
            deployer.key,
        ).raw_transaction
    )  # fmt: skip
    from eth_utils import to_checksum_address

    contract = to_checksum_address(_create_address(deployer.address))
    workloads = {
        "value transfers": (None, signed(senders, n, None, None)),
        "storage write + log": (
            deploy_raw,
            signed(senders, n, contract, lambda i: (i + 1).to_bytes(32, "big") * 2),
        ),
    }
    print(f"{platform.processor() or platform.machine()}, {n} transactions per run")
    print(f"{'workload':22s} {'py-evm tx/s':>12s} {'plane tx/s':>11s} {'chain tx/s':>11s} "
          f"{'plane/py-evm':>13s} {'chain/py-evm':>13s}")  # fmt: skip
    for name, (deploy, raws) in workloads.items():
        bare = bare_pyevm(senders, deploy, raws)
        plane = our_plane(senders, deploy, raws)
        whole = our_chain(senders, deploy, raws)
        print(
            f"{name:22s} {n / bare:12.0f} {n / plane:11.0f} {n / whole:11.0f} "
            f"{plane / bare:13.2f} {whole / bare:13.2f}"
        )


def _create_address(address: str) -> str:
    from eth.vm.forks.cancun.state import generate_contract_address

    return "0x" + bytes(generate_contract_address(bytes.fromhex(address[2:]), 0)).hex()


if __name__ == "__main__":
    main()
