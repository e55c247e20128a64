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
- **counter**: ``tests/chain/counter.wat``'s ``increment``, each sender on
  its own counter (the call is mostly host functions: Python's lock bounds
  it, so the default scheduler, which learns each contract's gas from the
  block before, leaves it to the serial pass);
- **one counter**: every call on the same counter: each speculation would be
  stale and run again;
- the two counter workloads **forced**: every call run ahead whatever its
  contract (``takes_native``), to show what the default spares them.

Prints calls per second for both and serial time / scheduler time.

``--attacks`` times instead what hostile modules cost a block (it runs
against older sources too, to compare): the store of a 900 KB function
(straight-line code, or code holding 1,000 values at a time), a transaction
cycling 34 modules of 240 KB after the compiled modules were dropped (a
restart, or more contracts than memory keeps), and a call holding
99 memories of 16 MiB, with the process's peak memory. ``--limits`` measures
what the prices of ``vm.wasm`` and ``vm.wasm_scan`` stand for: compile time
and price of the worst modules the bounds allow, reading a compiled module
back, and growing memory. ``--host`` times each host function, called in a
loop until its gas runs out, against its price, and a block of the most WASM
gas it may hold.

Run from the repository root::

    python bench/wasm_blocks.py [--calls 200] [--spin 2000000] [--threads 2]
    python bench/wasm_blocks.py --attacks
    python bench/wasm_blocks.py --limits
    python bench/wasm_blocks.py --host
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import wasmtime

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.scheduler import Scheduler, takes_native
from focusflow.core.keys import KeyPair
from focusflow.modules import WasmParams
from focusflow.node import open_chain

CHAIN_ID = "focusflow-bench"
VALIDATOR = KeyPair.from_seed(b"bench-validator".ljust(32, b"\0"))
T0 = 1_700_000_000_000
FEE = 10**7
GAS = 10**8
COUNTER = (Path(__file__).parents[1] / "tests" / "chain" / "counter.wat").read_text()


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
            chain.pipeline.scheduler = scheduler
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


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def abi_module(bodies: list[bytes], locals_: int = 0, memories: int = 0) -> bytes:
    """A module of the contract ABI whose ``execute`` is ``bodies[0]``, with the
    other bodies beside it (each ``(i32, i32) -> i64`` with ``locals_`` i32
    locals, its bytes without the final ``end``) and ``memories`` extra
    memories of 256 pages."""

    def section(kind: int, body: bytes) -> bytes:
        return bytes([kind]) + leb(len(body)) + body

    def vec(items: list[bytes]) -> bytes:
        return leb(len(items)) + b"".join(items)

    n = len(bodies)
    types = section(1, vec([b"\x60\x02\x7f\x7f\x01\x7e", b"\x60\x01\x7f\x01\x7f"]))
    funcs = section(3, vec([b"\x00"] * n + [b"\x01", b"\x00", b"\x00"]))
    mems = section(5, vec([b"\x00\x01"] + [b"\x00\x80\x02"] * memories))
    exports = section(
        7,
        vec(
            [
                b"\x06memory\x02\x00",
                b"\x07execute\x00\x00",
                b"\x08allocate\x00" + leb(n),
                b"\x0binstantiate\x00" + leb(n + 1),
                b"\x05query\x00" + leb(n + 2),
            ]
        ),
    )
    decl = vec([leb(locals_) + b"\x7f"]) if locals_ else vec([])
    code = [decl + b + b"\x42\x00\x0b" for b in bodies]
    code += [b"\x00\x41\x80\x20\x0b", b"\x00\x42\x00\x0b", b"\x00\x42\x00\x0b"]
    body = section(10, vec([leb(len(c)) + c for c in code]))
    return b"\0asm\1\0\0\0" + types + funcs + mems + exports + body


def straight(size: int) -> bytes:
    """Straight-line code: ``local.get 0; local.get 1; i32.add; local.set 0``."""
    return b"\x20\x00\x20\x01\x6a\x21\x00" * (size // 7)


def held_loads(height: int, size: int) -> bytes:
    """Runs of ``height`` loads held on the stack at once, summed and stored."""
    run = b"".join(b"\x41\x00\x28\x02" + leb(4 * k + 64) for k in range(height))
    run = b"\x41\x00" + run + b"\x6a" * (height - 1) + b"\x36\x02\x00"
    return run * (size // len(run))


def held_locals(count: int, size: int) -> bytes:
    """Runs that load into ``count`` locals, then sum them all and store."""
    sets = b"".join(
        b"\x41\x00\x28\x02" + leb(4 * k + 64) + b"\x21" + leb(k + 2) for k in range(count)
    )
    sums = b"\x20\x02" + b"".join(b"\x20" + leb(k + 2) + b"\x6a" for k in range(1, count))
    run = b"\x41\x00" + sets + sums + b"\x36\x02\x00"
    return run * (size // len(run))


def touch_memories(memories: int) -> bytes:
    """Writes a byte to every 4 KiB of memory 1 .. ``memories`` (multi-memory)."""
    out = b""
    for m in range(1, memories + 1):
        out += (
            b"\x41\x00\x21\x02\x02\x40\x03\x40\x20\x02\x41\x80\x80\x80\x08\x4f\x0d\x01"
            b"\x20\x02\x41\x01\x3a\x40" + leb(m) + b"\x00\x20\x02\x41\x80\x20\x6a\x21\x02"
            b"\x0c\x00\x0b\x0b"
        )
    return out


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def attacks() -> None:
    """Block seconds of hostile stores and calls, against whatever sources run.

    Where the sources keep compiled modules on disk (``keep_artifacts``), they
    do here, as a node keeps them in its home."""
    from focusflow.core.hashing import sha256
    from focusflow.vm import wasm

    key = KeyPair.from_seed(b"bench-attacker".ljust(32, b"\0"))
    with tempfile.TemporaryDirectory() as d:
        if hasattr(wasm, "keep_artifacts"):
            wasm.keep_artifacts(Path(d) / "wasm")
        chain = open_chain(Path(d) / "data", genesis([key]), VALIDATOR)
        t, nonce = T0 + 1000, 0

        def block(*txs: list[Msg]) -> tuple[float, list]:
            nonlocal t, nonce
            signed = []
            for msgs in txs:
                signed.append(make_tx(key, CHAIN_ID, nonce, 10**9, msgs).encoded)
                nonce += 1
            t0 = time.perf_counter()
            r = chain.produce_block(signed, time_ms=t)
            t += 1000
            return time.perf_counter() - t0, r.receipts

        for name, body in (
            ("straight-line function", straight(900_000)),
            ("function holding 1,000 loads at a time", held_loads(1000, 900_000)),
        ):
            huge = abi_module([body])
            took, (receipt,) = block([Msg("wasm.store", {"code": huge})])
            print(f"store of a {len(huge) // 1000} KB {name}: {took:.2f} s", receipt.code)
        body = straight(60_000)
        codes = [abi_module([body] * 4 + [b"\x41" + leb(i) + b"\x1a"]) for i in range(34)]
        took, receipts = block(*[[Msg("wasm.store", {"code": c})] for c in codes])
        print(
            f"store of 34 modules of {len(codes[0]) // 1000} KB in one block: {took:.2f} s",
            {r.code for r in receipts},
        )
        inst = {"msg": b"{}", "gas": 10**7, "label": "c"}
        _, (receipt,) = block([Msg("wasm.instantiate", {**inst, "code": sha256(c)}) for c in codes])
        contracts = [e["contract"] for e in receipt.events if e["type"] == "wasm.instantiate"]
        wasm._MODULES.clear()
        call = {"msg": b"{}", "gas": 10**7}
        took, (receipt,) = block([Msg("wasm.execute", {**call, "contract": c}) for c in contracts])
        print(f"34 of them cycled in one transaction, none in memory: {took:.2f} s", receipt.code)
        many = abi_module([touch_memories(99)], locals_=1, memories=99)
        before = peak_rss_mb()
        took, (receipt,) = block([Msg("wasm.store", {"code": many})])
        if receipt.code == "ok":
            _, (receipt,) = block([Msg("wasm.instantiate", {**inst, "code": sha256(many)})])
            run = {"contract": receipt.events[0]["contract"], "msg": b"{}", "gas": 10**9}
            took, (receipt,) = block([Msg("wasm.execute", run)])
            gas = receipt.events[0]["gas_used"] if receipt.events else "-"
            print(f"call touching 99 memories of 16 MiB: {took:.2f} s, {receipt.code}, gas {gas}")
        else:
            print(f"store of a module of 99 memories of 16 MiB: {took:.2f} s, {receipt.code}")
        print(f"peak memory of the process: {before:.0f} MB before, {peak_rss_mb():.0f} MB after")
        chain.close()
        if hasattr(wasm, "keep_artifacts"):
            wasm.keep_artifacts(None)


#: A call of each host function in a loop, by name: its import and its call.
HOST_LOOPS = {
    "db_read": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 0) (i32.const 3)))"),
    "db_write": (
        "(param i32 i32 i32 i32)",
        "(call $h (i32.const 0) (i32.const 3) (i32.const 0) (i32.const 3))",
    ),
    "db_remove": ("(param i32 i32)", "(call $h (i32.const 0) (i32.const 3))"),
    "focus_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 4) (i32.const 1)))"),
    "karma_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 8) (i32.const 44)))"),
    "twap_of": ("(param i32 i32) (result i64)", "(drop (call $h (i32.const 60) (i32.const 5)))"),
}


def host_loop(name: str) -> bytes:
    """A contract whose ``execute`` calls the host function ``name`` until its
    gas ends (a stored key, a CID's text, an address, a pair with a pool)."""
    import wasmtime

    params, body = HOST_LOOPS[name]
    address = KeyPair.from_seed(b"bench-attacker".ljust(32, b"\0")).address
    return wasmtime.wat2wasm(f"""(module
      (import "env" "{name}" (func $h {params}))
      (memory (export "memory") 1)
      (data (i32.const 0) "key")
      (data (i32.const 4) "Q")
      (data (i32.const 8) "{address}")
      (data (i32.const 60) "cyb h")
      (func (export "allocate") (param i32) (result i32) (i32.const 1024))
      (func (export "instantiate") (param i32 i32) (result i64) (i64.const 0))
      (func (export "execute") (param i32 i32) (result i64) (loop $l {body} (br $l)) (i64.const 0))
      (func (export "query") (param i32 i32) (result i64) (i64.const 0)))""")


def host() -> None:
    """What a host call costs against its price: one call of each host
    function looped until 10^8 gas run out (CPU and wall seconds, ns a gas),
    then a block of the most WASM gas it may hold, every call looping the
    dearest host function per gas. Runs against older sources too."""
    from focusflow.chain.state import PendingState
    from focusflow.core.encoding import encode
    from focusflow.core.hashing import sha256
    from focusflow.vm import wasm

    gas = 10**8
    address = b"\x07" * 20
    head = ("host function", "price", "calls", "wall s", "cpu s", "ns/gas")
    print(f"{head[0]:14s} " + " ".join(f"{h:>7s}" for h in head[1:]))
    worst, worst_ns = "", 0.0
    for name in HOST_LOOPS:
        code = host_loop(name)
        data = {
            wasm.contract_key(address): encode([sha256(code), b"\0" * 20, "loop"]),
            wasm.code_key(sha256(code)): code,
            wasm.storage_key(address, b"key"): b"value",
        }
        state = PendingState(data.get, lambda _prefix: [])
        env = wasm.WasmEnv(CHAIN_ID, 1, T0)
        price = (
            wasm.HOST_CALL_GAS[name] if isinstance(wasm.HOST_CALL_GAS, dict) else wasm.HOST_CALL_GAS
        )
        twap = lambda _b, _q: 1 << 64  # noqa: E731 - a pool at par
        with contextlib.suppress(wasm.WasmError):
            wasm.call(state, env, address, "execute", None, {}, 10**6, twap_of=twap)
        wall, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(wasm.WasmOutOfGasError):
            wasm.call(state, env, address, "execute", None, {}, gas, twap_of=twap)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ns = cpu * 1e9 / gas
        print(f"{name:14s} {price:7d} {gas // price:8d} {wall:7.2f} {cpu:7.2f} {ns:7.2f}")
        if ns > worst_ns:
            worst, worst_ns = name, ns
    limit = getattr(WasmParams(), "wasm_block_gas_limit", None)
    if limit is None:
        print(f"no WASM gas per block: a block of 100 calls of 10^9 gas of {worst} runs about "
              f"{100 * 10**9 * worst_ns / 1e9:.0f} s")  # fmt: skip
        return
    key = KeyPair.from_seed(b"bench-attacker".ljust(32, b"\0"))
    with tempfile.TemporaryDirectory() as d:
        chain = open_chain(Path(d) / "data", genesis([key]), VALIDATOR)
        deployed, t = deploy(chain, key, host_loop(worst), 1, T0 + 1000)
        most = WasmParams.of(chain.params).wasm_max_gas
        body = {"contract": deployed[0], "msg": b"{}", "gas": most}
        fee = 10**6 + most // WasmParams.of(chain.params).wasm_gas_per_unit
        txs = [
            make_tx(key, CHAIN_ID, 2 + i, fee, [Msg("wasm.execute", body)]).encoded
            for i in range(2 * limit // most)
        ]
        wall = time.perf_counter()
        r = chain.produce_block(txs, time_ms=t + 1000)
        wall = time.perf_counter() - wall
        print(f"a block of {len(txs)} calls of {most:.0e} gas looping {worst}: {len(r.receipts)} "
              f"taken (wasm_block_gas_limit {limit:.0e}), {wall:.1f} s")  # fmt: skip
        chain.close()


def limits() -> None:
    """Compile time and price of the worst modules the bounds allow, and the
    costs the per-call prices stand for. Times are CPU seconds of this process
    (a compile runs on several threads): what it takes from a validator, and
    less exposed to other loads on the machine than wall time."""
    from focusflow.vm import wasm, wasm_scan

    def fill(body: bytes, locals_: int = 0) -> list[bytes]:
        """As many copies of ``body`` as the size and compile caps allow."""
        one = wasm_scan.scan(abi_module([body], locals_)).compile_gas()
        each = wasm_scan.scan(abi_module([body, body], locals_)).compile_gas() - one
        by_gas = (wasm_scan.MAX_COMPILE_GAS - one) // each + 1
        return [body] * min(wasm.MAX_CODE_BYTES // (len(body) + 8), by_gas)

    body = wasm_scan.MAX_BODY_BYTES - 64
    shapes = {
        "straight-line code, 64 KiB bodies": (fill(straight(body)), 0),
        "8 loads held, 64 KiB bodies": (fill(held_loads(8, body)), 0),
        "32 loads held, 64 KiB bodies": (fill(held_loads(32, body)), 0),
        "63 loads held, 64 KiB bodies": (fill(held_loads(63, body)), 0),
        "1,000 locals held, 64 KiB bodies": (fill(held_locals(1000, body), 1000), 1000),
        "9,997 functions of one instruction": ([b"\x01"] * (wasm_scan.MAX_FUNCTIONS - 3), 0),
        "1,024 nested blocks": (fill(b"\x02\x40" * 1024 + b"\x0b" * 1024), 0),
    }
    print(
        f"{'module':36s} {'KiB':>5s} {'funcs':>5s} {'gas':>9s} {'check s':>7s} "
        f"{'compile s':>9s} {'wall s':>6s} {'gas/ns':>6s}"
    )
    for name, (bodies, locals_) in shapes.items():
        code = abi_module(bodies, locals_=locals_)
        c0, w0 = time.process_time(), time.perf_counter()
        gas = wasm.compile_gas(code)
        c1 = time.process_time()
        wasmtime.Module(wasm.engine(), code)
        c2, w2 = time.process_time(), time.perf_counter()
        print(
            f"{name:36s} {len(code) / 1024:5.0f} {len(bodies):5d} {gas / 1e9:7.2f}e9 "
            f"{c1 - c0:7.2f} {c2 - c1:9.2f} {w2 - w0:6.2f} {gas / (c2 - c0) / 1e9:6.1f}"
        )
    loads(fill(straight(body)))
    memory_pages()


def loads(bodies: list[bytes]) -> None:
    """CPU time of reading a compiled module back from disk, per byte of module."""
    from focusflow.vm import wasm

    code = abi_module(bodies)
    with tempfile.TemporaryDirectory() as d:
        wasm.keep_artifacts(Path(d))
        wasm.load_module(code)
        wasm.forget_compiled()
        t0 = time.process_time()
        for _ in range(10):
            wasm.load_module(code)
            wasm.forget_compiled()
        took = (time.process_time() - t0) / 10
        wasm.keep_artifacts(None)
    print(
        f"read back from disk, {len(code) // 1024} KiB module: {took * 1e3:.1f} ms "
        f"({took * 1e9 / len(code):.1f} ns a byte; LOAD_GAS_PER_BYTE {wasm.LOAD_GAS_PER_BYTE})"
    )


def memory_pages() -> None:
    """CPU time of a page of memory grown, touched every 4 KiB and freed."""
    from focusflow.vm import wasm

    grow = wasmtime.wat2wasm("""(module (memory (export "memory") 1)
      (func (export "f") (param $n i32) (local $a i32)
        (drop (memory.grow (local.get $n)))
        (block $d (loop $l
          (br_if $d (i32.ge_u (local.get $a) (i32.mul (memory.size) (i32.const 65536))))
          (i32.store8 (local.get $a) (i32.const 1))
          (local.set $a (i32.add (local.get $a) (i32.const 4096))) (br $l)))))""")
    module = wasmtime.Module(wasm.engine(), grow)
    spent = []
    for pages in (0, 255):
        best = float("inf")
        for _ in range(20):
            t0 = time.process_time()
            store = wasmtime.Store(wasm.engine())
            store.set_fuel(10**9)
            wasmtime.Instance(store, module, []).exports(store)["f"](store, pages)
            del store
            best = min(best, time.process_time() - t0)
        spent.append(best)
    per_page = (spent[1] - spent[0]) / 255
    price = wasm.MEMORY_GAS_PER_PAGE
    print(
        f"a page grown, touched and freed: {per_page * 1e6:.1f} us "
        f"(MEMORY_GAS_PER_PAGE {price}: {price / (per_page * 1e9):.1f} gas/ns)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--spin", type=int, default=2_000_000, help="loop iterations per compute call")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--attacks", action="store_true", help="time hostile stores and calls")
    ap.add_argument("--limits", action="store_true", help="measure what the prices stand for")
    ap.add_argument("--host", action="store_true", help="time host calls against their prices")
    args = ap.parse_args()
    # The chains here are single machines: the fast-arithmetic warning is noise.
    logging.getLogger("focusflow.chain.focus").setLevel(logging.ERROR)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    if args.host:
        host()
        return
    if args.attacks or args.limits:
        attacks() if args.attacks else limits()
        return
    print(f"{args.calls} calls per block, scheduler threads {args.threads}")
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
