"""WASM calls per second through a chain block: the serial pass against the scheduler.

The same block of ``wasm.execute`` transactions (one per sender, as a block of
many users' calls is) is produced twice, side by side in one process: by a
chain that runs every transaction serially, and by one whose scheduler
(``chain.scheduler``) runs them ahead on a pool of threads against the
block-start state and merges their write-sets in block order. Both blocks must
have the same root. Workloads:

- **compute**: a contract that runs a loop of ``--spin`` iterations and
  writes its result (wasmtime runs it without Python's lock, so threads run
  calls at once);
- **counter**: ``docs/examples/counter.wat``'s ``increment``, each sender on
  its own counter (the call is mostly host functions: Python's lock bounds
  it, so the default scheduler, which learns each contract's gas from the
  block before, leaves it to the serial pass);
- **one counter**: every call on the same counter: each speculation would be
  stale and run again;
- the two counter workloads **forced**: every call run ahead whatever its
  contract (``takes_native``), to show what the default spares them.

Prints calls per second for both and serial time / scheduler time.

Run from the repository root::

    python bench/wasm_blocks.py [--calls 200] [--spin 2000000] [--threads 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import wasmtime

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.scheduler import Scheduler, takes_native
from focusflow.core.keys import KeyPair
from focusflow.node import open_chain

CHAIN_ID = "focusflow-bench"
VALIDATOR = KeyPair.from_seed(b"bench-validator".ljust(32, b"\0"))
T0 = 1_700_000_000_000
FEE = 10**7
GAS = 10**8
COUNTER = (Path(__file__).parents[1] / "docs" / "examples" / "counter.wat").read_text()


def spin_wat(iterations: int) -> str:
    return f"""
(module
  (import "env" "db_write" (func $db_write (param i32 i32 i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 0) "r")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "allocate") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
  (func (export "execute") (param i32 i32) (result i64) (local $i i32) (local $a i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const {iterations})))
      (local.set $a (i32.add (i32.mul (local.get $a) (i32.const 31)) (local.get $i)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (i32.store (i32.const 32) (local.get $a))
    (call $db_write (i32.const 0) (i32.const 1) (i32.const 32) (i32.const 4))
    (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))
"""


def genesis(keys: list[KeyPair]) -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}},
            "accounts": [{"address": k.address, "balance": 10**15, "stake": 0} for k in keys],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


def deploy(chain, key: KeyPair, wasm: bytes, copies: int, t: int) -> tuple[list[bytes], int]:
    """Store ``wasm`` and instantiate it ``copies`` times; the contracts and the next time."""
    store = Msg("wasm.store", {"code": wasm})
    r = chain.produce_block([make_tx(key, CHAIN_ID, 0, FEE, [store]).encoded], time_ms=t)
    code_hash = r.receipts[0].events[0]["code"]
    body = {"code": code_hash, "msg": b"{}", "gas": 10**6}
    msgs = [Msg("wasm.instantiate", {**body, "label": str(i)}) for i in range(copies)]
    batches = [msgs[i : i + 50] for i in range(0, copies, 50)]
    txs = [make_tx(key, CHAIN_ID, 1 + j, FEE, b).encoded for j, b in enumerate(batches)]
    r = chain.produce_block(txs, time_ms=t + 1000)
    assert all(x.code == "ok" for x in r.receipts) and len(r.receipts) == len(txs)
    made = [e for x in r.receipts for e in x.events if e["type"] == "wasm.instantiate"]
    contracts = [e["contract"] for e in made]
    return contracts, t + 2000


WORKLOADS = {
    # name: (contract, one contract for all calls, every call run ahead)
    "compute": ("spin", False, False),
    "counter": ("counter", False, False),
    "counter, forced": ("counter", False, True),
    "one counter": ("counter", True, False),
    "one counter, forced": ("counter", True, True),
}


def run(workload: str, calls: int, spin: int, threads: int) -> tuple[float, float, int, int]:
    """Serial and scheduler seconds of the timed block, the scheduler's runs
    again in it, the calls. Each chain first builds one untimed block of the
    same calls (nonce 0), from which the default scheduler learns which
    contracts are heavy."""
    contract, shared, forced = WORKLOADS[workload]
    keys = [KeyPair.from_seed(f"bench-{i}".encode().ljust(32, b"\0")) for i in range(calls + 1)]
    wat = spin_wat(spin) if contract == "spin" else COUNTER
    copies = 1 if shared else calls
    times = []
    roots = []
    reruns = 0
    ahead = (
        Scheduler(speculable=takes_native, threads=threads)
        if forced
        else Scheduler(threads=threads)
    )
    for scheduler in (Scheduler(speculable=lambda _tx: False), ahead):
        with tempfile.TemporaryDirectory() as d:
            chain = open_chain(d, genesis(keys), VALIDATOR)
            chain.scheduler = scheduler
            contracts, t = deploy(chain, keys[0], wasmtime.wat2wasm(wat), copies, T0 + 1000)
            body = {"msg": b'{"increment": {}}', "gas": GAS}

            msgs = [
                [Msg("wasm.execute", {**body, "contract": contracts[i % copies]})]
                for i in range(calls)
            ]
            blocks = [
                [
                    make_tx(k, CHAIN_ID, nonce, FEE, m).encoded
                    for k, m in zip(keys[1:], msgs, strict=True)
                ]
                for nonce in (0, 1)
            ]
            chain.produce_block(blocks[0], time_ms=t)
            before = scheduler.stats.rerun
            t0 = time.perf_counter()
            r = chain.produce_block(blocks[1], time_ms=t + 1000)
            times.append(time.perf_counter() - t0)
            assert [x.code for x in r.receipts] == ["ok"] * calls, r.receipts[0].log
            roots.append(chain.head)
            reruns = scheduler.stats.rerun - before
            chain.close()
    assert roots[0] == roots[1], "the scheduler's block differs from the serial one"
    return times[0], times[1], reruns, calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--spin", type=int, default=2_000_000, help="loop iterations per compute call")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # The chains here are single machines: the fast-arithmetic warning is noise.
    logging.getLogger("focusflow.chain.focus").setLevel(logging.ERROR)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"{args.calls} calls per block, scheduler threads {args.threads}"
    )
    print(
        f"{'workload':20s} {'round':>5s} {'serial calls/s':>15s} {'scheduler calls/s':>18s} "
        f"{'serial/scheduler':>17s} {'run again':>10s}"
    )
    for workload in WORKLOADS:
        for k in range(args.rounds):
            serial, sched, reruns, n = run(workload, args.calls, args.spin, args.threads)
            print(
                f"{workload:20s} {k + 1:5d} {n / serial:15.0f} {n / sched:18.0f} "
                f"{serial / sched:17.2f} {reruns:10d}"
            )


if __name__ == "__main__":
    main()
