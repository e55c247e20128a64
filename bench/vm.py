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

Workloads: plain value transfers, and ERC-20 ``transfer`` calls on a minimal
token assembled here (no Solidity compiler is fetched): balances in a
mapping, two reads, two writes (the recipient's slot fresh), a ``Transfer``
log. Prints transactions per second and our time over py-evm's (the plane's
cost on top of the bare interpreter). Then a devnet is started and
``eth_call`` of the token's ``balanceOf`` is timed over HTTP (p50, p95).

``--rpc-load`` measures instead what hostile calls cost block production: a
devnet at one block a second, its blocks per second alone, then while
``--clients`` threads of one address send ``eth_call``s of a loop at the gas
cap without pause, and what those calls were answered (and a cheap call's
latency meanwhile).

``--precompiles`` measures each precompile's gas a second, called in a loop
by one contract, against a loop of the cheapest opcodes in the same run: how
much longer than a block of plain code a block filled with it would take.

Run from the repository root::

    python bench/vm.py --txs 2000
    python bench/vm.py --rpc-load --clients 16 --seconds 20
    python bench/vm.py --precompiles
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from eth_account import Account
from eth_utils import keccak, to_checksum_address

from focusflow.chain import Genesis
from focusflow.chain.eth_tx import decode_eth_tx, evm_chain_id
from focusflow.chain.state import PendingState
from focusflow.core.keys import KeyPair, encode_address
from focusflow.node import open_chain
from focusflow.vm import evm

CHAIN_ID = "focusflow-bench"
VALIDATOR = KeyPair.from_seed(b"bench-validator".ljust(32, b"\0"))
PER_SENDER = 100

OPS = {
    "STOP": 0x00, "ADD": 0x01, "SUB": 0x03, "LT": 0x10, "EQ": 0x14, "SHR": 0x1C,
    "SHA3": 0x20, "CALLER": 0x33, "CALLDATALOAD": 0x35, "CODECOPY": 0x39, "SLOAD": 0x54,
    "SSTORE": 0x55, "MSTORE": 0x52, "JUMPI": 0x57, "JUMPDEST": 0x5B, "DUP1": 0x80,
    "DUP2": 0x81, "DUP3": 0x82, "SWAP1": 0x90, "LOG3": 0xA3, "RETURN": 0xF3, "REVERT": 0xFD,
}  # fmt: skip


def asm(items: list) -> bytes:
    """EVM bytecode of ``items``: opcode names, ``("push", value, width)``,
    ``("label", name)`` (a JUMPDEST) and ``("to", name)`` (PUSH2 of a label)."""
    sizes = {"push": lambda it: 1 + it[2], "label": lambda it: 1, "to": lambda it: 3}
    where, at = {}, 0
    for it in items:
        if isinstance(it, tuple) and it[0] == "label":
            where[it[1]] = at
        at += 1 if isinstance(it, str) else sizes[it[0]](it)
    out = bytearray()
    for it in items:
        if isinstance(it, str):
            out.append(OPS[it])
        elif it[0] == "push":
            out += bytes([0x5F + it[2]]) + it[1].to_bytes(it[2], "big")
        elif it[0] == "label":
            out.append(OPS["JUMPDEST"])
        else:
            out += b"\x61" + where[it[1]].to_bytes(2, "big")
    return bytes(out)


def _slot_of(address_items: list) -> list:
    """keccak(address . 0): the balance slot of an address (Solidity's mapping at slot 0)."""
    return [*address_items, ("push", 0, 1), "MSTORE", ("push", 0, 1), ("push", 0x20, 1),
            "MSTORE", ("push", 0x40, 1), ("push", 0, 1), "SHA3"]  # fmt: skip


def p1(v: int) -> tuple:
    return ("push", v, 1)


#: A minimal ERC-20: ``transfer(address,uint256)`` and ``balanceOf(address)``,
#: balances in a mapping at slot 0, a ``Transfer`` event, revert on short balance.
TRANSFER_TOPIC = int.from_bytes(keccak(text="Transfer(address,address,uint256)"), "big")
ERC20 = asm(
    [p1(0), "CALLDATALOAD", p1(0xE0), "SHR",
     "DUP1", ("push", 0xA9059CBB, 4), "EQ", ("to", "transfer"), "JUMPI",
     "DUP1", ("push", 0x70A08231, 4), "EQ", ("to", "balance"), "JUMPI",
     ("label", "fail"), p1(0), "DUP1", "REVERT",
     ("label", "balance"), *_slot_of([p1(4), "CALLDATALOAD"]), "SLOAD",
     p1(0), "MSTORE", p1(0x20), p1(0), "RETURN",
     ("label", "transfer"), *_slot_of(["CALLER"]), "DUP1", "SLOAD", p1(0x24), "CALLDATALOAD",
     "DUP1", "DUP3", "LT", ("to", "fail"), "JUMPI", "SWAP1", "SUB", "SWAP1", "SSTORE",
     *_slot_of([p1(4), "CALLDATALOAD"]), "DUP1", "SLOAD", p1(0x24), "CALLDATALOAD", "ADD",
     "SWAP1", "SSTORE", p1(0x24), "CALLDATALOAD", p1(0), "MSTORE",
     p1(4), "CALLDATALOAD", "CALLER", ("push", TRANSFER_TOPIC, 32), p1(0x20), p1(0), "LOG3",
     p1(1), p1(0), "MSTORE", p1(0x20), p1(0), "RETURN"]
)  # fmt: skip


def erc20_init(supply: int) -> bytes:
    """Creation code: the whole supply to the deployer, then the runtime returned."""
    head = [*_slot_of(["CALLER"]), ("push", supply, 32), "SWAP1", "SSTORE"]
    size = len(asm(head)) + len(asm([("push", 0, 2)] * 2 + ["DUP1", p1(0), "CODECOPY",
                                     p1(0), "RETURN"]))  # fmt: skip
    tail = [("push", len(ERC20), 2), "DUP1", ("push", size, 2), p1(0), "CODECOPY", p1(0), "RETURN"]
    return asm(head + tail) + ERC20


def keys(n: int) -> list:
    return [Account.from_key((i + 1).to_bytes(32, "big")) for i in range(n)]


def transfers(senders, n: int) -> list[bytes]:
    """``n`` value transfers, ``PER_SENDER`` from each sender in nonce order."""
    out = []
    cid = evm_chain_id(CHAIN_ID)
    for i in range(n):
        acct = senders[i // PER_SENDER]
        tx = {
            "chainId": cid,
            "nonce": i % PER_SENDER,
            "maxFeePerGas": 10,
            "maxPriorityFeePerGas": 1,
            "gas": 21_000,
            "to": "0x" + "11" * 20,
            "value": 1,
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
    from focusflow.vm.evm_keys import ACCOUNT_PREFIX

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


def erc20_txs(deployer, n: int) -> tuple[bytes, list[bytes]]:
    """The token's deployment and ``n`` transfers from the deployer, each to a new
    holder (a fresh balance slot, as a token's first payment to someone is)."""
    cid = evm_chain_id(CHAIN_ID)
    base = {"chainId": cid, "maxFeePerGas": 10, "maxPriorityFeePerGas": 1}
    deploy = {**base, "nonce": 0, "gas": 500_000, "to": None, "data": erc20_init(10**30)}
    token = to_checksum_address(_create_address(deployer.address))
    raws = [bytes(Account.sign_transaction(deploy, deployer.key).raw_transaction)]
    for i in range(n):
        to = (0x1000 + i).to_bytes(20, "big")
        data = bytes.fromhex("a9059cbb") + to.rjust(32, b"\0") + (7).to_bytes(32, "big")
        tx = {**base, "nonce": i + 1, "gas": 100_000, "to": token, "data": data}
        raws.append(bytes(Account.sign_transaction(tx, deployer.key).raw_transaction))
    return raws[0], raws[1:]


def _bn128_inputs() -> tuple[bytes, bytes, bytes]:
    """Inputs of ECADD (G + G), ECMUL (G times a large scalar) and ECPAIRING
    (two points whose product is 1), from py_ecc's generators."""
    from py_ecc import bn128

    def word(v: int) -> bytes:
        return int(v).to_bytes(32, "big")

    g1 = word(1) + word(2)
    (x_r, x_i), (y_r, y_i) = (c.coeffs for c in bn128.G2)
    g2 = word(x_i) + word(x_r) + word(y_i) + word(y_r)
    minus_g1 = word(1) + word(bn128.field_modulus - 2)
    return g1 + g1, g1 + word(2**255 - 19), g1 + g2 + minus_g1 + g2


def precompile_rates(gas: int) -> None:
    """Gas a second of each precompile on this chain's EVM, called in a loop by
    one contract until ``gas`` runs out, against a loop of the cheapest opcodes
    in the same run: how long a block filled with each would take, relative to
    one of plain code."""
    from focusflow.chain.state import PendingState
    from focusflow.vm import evm
    from focusflow.vm.evm_keys import code_key

    block = evm.EvmBlock(
        chain_id=5, number=1, timestamp=1, coinbase=bytes(20), gas_limit=30_000_000, base_fee=0
    )
    ecadd, ecmul, ecpairing = _bn128_inputs()
    sig = bytes.fromhex("aa" * 32) + (27).to_bytes(32, "big") + bytes.fromhex("11" * 32) * 2
    cases = {
        "ECRECOVER 0x01": (1, sig),
        "SHA256 0x02, 1 KiB": (2, bytes(1024)),
        "RIPEMD160 0x03, 1 KiB": (3, bytes(1024)),
        "IDENTITY 0x04, 1 KiB": (4, bytes(1024)),
        "MODEXP 0x05, 2048-bit": (5, (256).to_bytes(32, "big") * 3 + b"\xff" * 512 + b"\xfe" * 256),
        "ECADD 0x06": (6, ecadd),
        "ECMUL 0x07": (7, ecmul),
        "ECPAIRING 0x08, 2 points": (8, ecpairing),
        "BLAKE2F 0x09, 12 rounds": (9, (12).to_bytes(4, "big") + bytes(208) + b"\x01"),
        "BLAKE2F 0x09, 10^4 rounds": (9, (10_000).to_bytes(4, "big") + bytes(208) + b"\x01"),
    }

    def rate(code: bytes, data: bytes) -> float:
        target = b"\x22" * 20
        state = PendingState({code_key(target): code}.get, lambda _prefix: [])
        t0 = time.perf_counter()
        out = evm.call(state, block, sender=b"\x11" * 20, to=target, data=data, gas=gas)
        return out.gas_used / (time.perf_counter() - t0)

    # JUMPDEST PUSH1 0 JUMP: the cheapest opcodes, the rate a block's gas limit is set by.
    plain = rate(bytes.fromhex("5b600056"), b"")
    print(f"{'precompile':26s} {'gas/s':>12s} {'x slower than plain code':>25s}")
    print(f"{'(plain code loop)':26s} {plain:12,.0f} {1.0:25.2f}")
    for name, (address, data) in cases.items():
        # Copy the calldata to memory, then STATICCALL the precompile with it
        # forever: CALLDATASIZE PUSH0 PUSH0 CALLDATACOPY, JUMPDEST, PUSH1 0x40
        # PUSH2 0x1000 CALLDATASIZE PUSH0 PUSH1 address GAS STATICCALL POP, PUSH1 4 JUMP.
        loop = bytes.fromhex("365f5f375b604061100036" + "5f60") + bytes([address])
        loop += bytes.fromhex("5afa50600456")
        got = rate(loop, data)
        print(f"{name:26s} {got:12,.0f} {plain / got:25.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--txs", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=300, help="eth_call requests timed")
    ap.add_argument("--no-rpc", action="store_true", help="skip the devnet eth_call run")
    ap.add_argument("--rpc-load", action="store_true", help="block rate under cap-gas calls")
    ap.add_argument("--clients", type=int, default=16, help="--rpc-load's calling threads")
    ap.add_argument("--seconds", type=float, default=20.0, help="--rpc-load's time per phase")
    ap.add_argument("--precompiles", action="store_true", help="gas/s of each precompile")
    ap.add_argument("--gas", type=int, default=3_000_000, help="--precompiles' gas per run")
    args = ap.parse_args()
    if args.precompiles:
        precompile_rates(args.gas)
        return
    if args.rpc_load:
        rpc_load(args.clients, args.seconds)
        return
    n = args.txs
    senders = keys((n + PER_SENDER - 1) // PER_SENDER)
    deploy, token_transfers = erc20_txs(senders[0], n)
    workloads = {
        "value transfers": (None, transfers(senders, n)),
        "ERC-20 transfers": (deploy, token_transfers),
    }
    print(f"{platform.processor() or platform.machine()}, {n} transactions per run")
    print(f"{'workload':18s} {'py-evm tx/s':>12s} {'plane tx/s':>11s} {'chain tx/s':>11s} "
          f"{'plane/py-evm':>13s} {'chain/py-evm':>13s}")  # fmt: skip
    for name, (first, raws) in workloads.items():
        bare = bare_pyevm(senders, first, raws)
        plane = our_plane(senders, first, raws)
        whole = our_chain(senders, first, raws)
        print(
            f"{name:18s} {n / bare:12.0f} {n / plane:11.0f} {n / whole:11.0f} "
            f"{plane / bare:13.2f} {whole / bare:13.2f}"
        )
    if not args.no_rpc:
        rpc_latency(args.calls)


@contextlib.contextmanager
def devnet(block_time: str) -> Iterator[str]:
    """A devnet process on a free loopback port (this tree's code, or the one
    ``PYTHONPATH`` names); yields its API's base URL once it answers."""
    import os
    import socket
    import subprocess
    import sys

    import httpx

    from focusflow.node.home import init_devnet

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = Path(tempfile.mkdtemp()) / "home"
    init_devnet(home)
    # Loopback is rate-limited like any client by default; the bench is one client.
    (home / "config.json").write_text(json.dumps({"api_limits": {"exempt_loopback": True}}))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "focusflow", "devnet", "--home", str(home), "--port", str(port),
         "--block-time", block_time],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{api}/v1/status", timeout=5).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield api
    finally:
        proc.terminate()
        proc.wait(30)


def rpc_latency(calls: int) -> None:
    """``eth_call`` of ``balanceOf`` on a real devnet over HTTP (keep-alive), after
    deploying the token with the test mnemonic's first account."""
    import statistics

    import httpx

    from focusflow.node.home import eth_dev_accounts

    with devnet("0.2s") as api, httpx.Client(timeout=30) as client:
        url = api + "/evm"

        def rpc(method: str, *params):
            doc = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}
            reply = client.post(url, json=doc).json()
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return reply["result"]

        address, key = eth_dev_accounts()[0]
        chain_id = int(rpc("eth_chainId"), 16)
        deploy = {"chainId": chain_id, "nonce": 0, "gas": 500_000, "maxFeePerGas": 10,
                  "maxPriorityFeePerGas": 1, "to": None, "data": erc20_init(10**30)}  # fmt: skip
        raw = bytes(Account.sign_transaction(deploy, key).raw_transaction)
        tx_hash = rpc("eth_sendRawTransaction", "0x" + raw.hex())
        while (receipt := rpc("eth_getTransactionReceipt", tx_hash)) is None:
            time.sleep(0.05)
        token = receipt["contractAddress"]
        data = "0x70a08231" + address.rjust(32, b"\0").hex()
        call = {"to": token, "data": data}
        for _ in range(20):
            rpc("eth_call", call, "latest")
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            out = rpc("eth_call", call, "latest")
            times.append(time.perf_counter() - t0)
        assert int(out, 16) == 10**30
        times.sort()
        p50 = statistics.median(times) * 1e3
        p95 = times[int(0.95 * (len(times) - 1))] * 1e3
        print(f"eth_call balanceOf over HTTP on a devnet: p50 {p50:.2f} ms, p95 {p95:.2f} ms "
              f"({calls} calls)")  # fmt: skip


#: JUMPDEST; PUSH1 0; JUMP: as a call's initcode, a loop that ends when its gas does.
LOOP = "0x5b600056"


def rpc_load(clients: int, seconds: float) -> None:
    """Blocks per second of a devnet at 1 s blocks, alone and while ``clients``
    threads send cap-gas ``eth_call``s of ``LOOP`` without pause; what those
    calls were answered, and a cheap call's latency meanwhile."""
    import statistics
    import threading
    from collections import Counter

    import httpx

    with devnet("1s") as api:
        status = httpx.Client(base_url=api, timeout=60)

        def height() -> int:
            return int(status.get("/v1/status").json()["height"])

        def rate() -> float:
            h0, t0 = height(), time.monotonic()
            time.sleep(seconds)
            return (height() - h0) / (time.monotonic() - t0)

        time.sleep(3)
        alone = rate()
        stop = threading.Event()
        answers: Counter[str] = Counter()
        doc = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [{"data": LOOP}]}

        def ask(c: httpx.Client, request: dict, tally: Counter[str]) -> None:
            try:
                reply = c.post(api + "/evm", json=request)
                error = reply.json().get("error", {})
                data = error.get("data")
                kind = data.get("code") if isinstance(data, dict) else None
                tally[kind or str(error.get("code", "result"))] += 1
            except httpx.HTTPError as exc:
                tally[type(exc).__name__] += 1

        def attacker() -> None:
            with httpx.Client(timeout=120) as c:
                while not stop.is_set():
                    ask(c, doc, answers)

        threads = [threading.Thread(target=attacker) for _ in range(clients)]
        for t in threads:
            t.start()
        cheap: list[float] = []
        probed: Counter[str] = Counter()
        probe = {"jsonrpc": "2.0", "id": 2, "method": "eth_call", "params": [{"data": "0x00"}]}

        def prober() -> None:
            with httpx.Client(timeout=120) as c:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    ask(c, probe, probed)
                    cheap.append(time.perf_counter() - t0)
                    time.sleep(0.5)

        watcher = threading.Thread(target=prober)
        watcher.start()
        loaded = rate()
        stop.set()
        for t in [*threads, watcher]:
            t.join()
        status.close()
    p50 = statistics.median(cheap) * 1e3 if cheap else float("nan")
    print(f"blocks/s alone {alone:.2f}; with {clients} clients of cap-gas eth_call "
          f"{loaded:.2f} ({seconds:g} s each)")  # fmt: skip
    print(f"answers: {dict(answers)}; a cheap eth_call meanwhile (same address): p50 "
          f"{p50:.0f} ms, max {max(cheap) * 1e3:.0f} ms, answers {dict(probed)}")  # fmt: skip


def _create_address(address: str) -> str:
    from eth.vm.forks.cancun.state import generate_contract_address

    return "0x" + bytes(generate_contract_address(bytes.fromhex(address[2:]), 0)).hex()


if __name__ == "__main__":
    main()
