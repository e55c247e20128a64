"""The economy's costs: swaps per second through the chain, and reward accounting per block.

1. **Throughput.** A chain with ``economics`` 1 (gas paid in ``h``) and one
   ``cyb``/``h`` pool of ``--depth`` of each (deep enough that the circuit
   breaker, left at its default of 1,000 bps, never trips: every swap is
   ``--amount`` and the directions alternate). ``--txs`` genesis accounts, each
   funded with cyb and h, send one transaction per block, pre-signed before
   any timing. Each block goes through what a producing node does with it
   (``node.runtime``, ``node.validator``):

   * admission precheck (``Mempool.precheck``: decode, limits, fee floor and
     the Ed25519 signature), timed on one thread and on two threads, as the
     node's two admission workers run it (libsodium's verification runs
     without Python's lock, decoding holds it);
   * mempool insert (against the committed account, read as the node's
     ``account_of`` reads it), reap;
   * ``chain.produce_block(txs, verified=True)``: execution, state root, data
     root, LMDB commit. ``produce_block`` verifies signatures itself unless
     told they were verified; the node proposes with ``verified=True`` because
     admission did it, so they are checked once, in the precheck;
   * the mempool's update after the commit, and the node's collector policy
     (``BlockCollector``: everything alive frozen out of the collector).

   A follower (a second chain without a validator key) applies every block
   with ``apply_block``, which re-executes it and verifies every signature.
   The same is done with blocks of plain ``send`` transactions on a second
   pair of chains; swap and send blocks alternate, so a drift of this VM's
   speed shows in both. One untimed block of each kind runs first. Prints
   the median of each part, swaps/s, sends/s and their ratios. If swaps
   through the whole pipeline stay under ``--goal`` (or with ``--profile``),
   one more block of each kind runs under cProfile: calls and time per
   transaction of the functions that matter, side by side, and the swap
   block's top entries.

2. **Reward accounting.** Chains with 10^2 .. 10^5 bonded stakers in genesis
   (``h_mint_per_block`` and ``tenure_rate_ppb`` > 0): the economy's
   ``end_block`` (timed by wrapping the module instance's method), a whole empty
   block and its phases, and a block of one ``rewards.claim`` (the handler
   timed the same way), medians over ``--reward-blocks`` blocks at each size,
   and the ratio of the largest size to the smallest; then one more block of
   each counts the state reads, scans and writes under ``end_block`` and the
   claim. Stakers other than the one that claims are addresses without keys
   (genesis needs only the address).

A speed probe (a fixed decoding loop) runs before and after the throughput
part: this VM is shared, and its speed moves with the load.

Run from the repository root::

    python bench/economics.py            # 4,000-tx blocks, stakers up to 10^5: ~1 min quiet
    python bench/economics.py --quick    # 2,000-tx blocks, stakers up to 10^4: ~20 s
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import logging
import os
import platform
import pstats
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import cbor2

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.mempool import Mempool
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair, encode_address
from focusflow.modules.accounts import account_key, get_account
from focusflow.modules.bank import gas_balance
from focusflow.modules.dex import get_pool, pool_key
from focusflow.modules.tokens import balance_key
from focusflow.node import open_chain
from focusflow.node.runtime import BlockCollector

CHAIN_ID = "focusflow-bench"
VALIDATOR = KeyPair.from_seed(b"bench-validator".ljust(32, b"\0"))
T0 = 1_700_000_000_000
FEE = 10**6
FUNDS = 10**16
#: What a node does with Python's collector after each block: everything alive
#: frozen out of its passes (``node.runtime``); the chains here do it too.
COLLECTOR = BlockCollector()
#: Admission workers of a node (``node.runtime.ADMISSION_WORKERS``).
WORKERS = 2


def key(i: int) -> KeyPair:
    return KeyPair.from_seed(f"bench-econ-{i}".encode().ljust(32, b"\0"))


def validators() -> list[dict]:
    return [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}]


def median(rows: list[dict[str, float]], name: str) -> float:
    return statistics.median(r[name] for r in rows)


# --- 1. throughput -------------------------------------------------------------


class Node:
    """What a producing node runs around ``produce_block``: its mempool and
    ``account_of`` (``node.runtime``), and a follower that applies its blocks."""

    def __init__(self, home: str, gen: Genesis) -> None:
        self.chain = open_chain(os.path.join(home, "producer"), gen, VALIDATOR)
        self.follower = open_chain(os.path.join(home, "follower"), gen, None)
        self.mempool = Mempool(self.chain.chain_id, self.chain.params)
        self.mempool.fee_per_byte = self.fee_per_byte()
        self.workers = ThreadPoolExecutor(WORKERS, thread_name_prefix="admission")

    def fee_per_byte(self) -> int:
        with self.chain.reader() as r:
            return current_fee_per_byte(r, self.chain.params)

    def account_of(self, address: bytes):
        with self.chain.reader() as r:
            account = get_account(r, address)
            account.balance = gas_balance(r, self.chain.params, address)
            return account

    def nonce_of(self, address: bytes) -> int:
        return self.account_of(address).nonce

    def block(self, raws: list[bytes], time_ms: int, producer_only: bool = False) -> dict:
        """One block through admission, production, commit and the follower;
        the seconds of each part. ``producer_only``: admission on this thread
        only, and no follower (what the profile shows)."""
        out: dict[str, float] = {}
        t = time.perf_counter()
        checked = [self.mempool.precheck(raw) for raw in raws]
        out["precheck 1 thread"] = time.perf_counter() - t
        if not producer_only:
            t = time.perf_counter()
            chunk = (len(raws) + WORKERS - 1) // WORKERS
            parts = [raws[i : i + chunk] for i in range(0, len(raws), chunk)]
            checked = [
                tx
                for part in self.workers.map(lambda p: [self.mempool.precheck(r) for r in p], parts)
                for tx in part
            ]
            out[f"precheck {WORKERS} workers"] = time.perf_counter() - t
        t = time.perf_counter()
        for tx in checked:
            self.mempool.insert(tx, self.account_of)
        out["mempool insert"] = time.perf_counter() - t
        t = time.perf_counter()
        params = self.chain.params
        txs = self.mempool.reap(self.nonce_of, params.max_block_txs, params.max_block_bytes)
        out["reap"] = time.perf_counter() - t
        t = time.perf_counter()
        result = self.chain.produce_block(txs, time_ms=time_ms, verified=True)
        out["produce_block"] = time.perf_counter() - t
        bad = [x.code for x in result.receipts if not x.ok] + [
            x.error.code for x in result.rejected
        ]
        if bad or len(result.receipts) != len(raws):
            raise SystemExit(
                f"block {result.block.height}: {len(result.receipts)} of {len(raws)} "
                f"included, failures {sorted(set(bad))}"
            )
        for phase in ("execute", "state_root", "da", "persist"):
            out[phase] = result.timings[phase]
        t = time.perf_counter()
        self.mempool.fee_per_byte = self.fee_per_byte()
        self.mempool.update(self.account_of)
        out["mempool update"] = time.perf_counter() - t
        assert len(self.mempool) == 0
        t = time.perf_counter()
        COLLECTOR.after_block()
        out["gc freeze"] = time.perf_counter() - t
        out["pipeline"] = (
            out["precheck 1 thread"]
            + out["mempool insert"]
            + out["reap"]
            + out["produce_block"]
            + out["mempool update"]
            + out["gc freeze"]
        )
        if producer_only:
            return out
        out["pipeline, admission on workers"] = (
            out["pipeline"] - out["precheck 1 thread"] + out[f"precheck {WORKERS} workers"]
        )
        t = time.perf_counter()
        self.follower.apply_block(result.record)
        COLLECTOR.after_block()
        out["follower apply_block"] = time.perf_counter() - t
        assert self.follower.head == self.chain.head
        return out

    def close(self) -> None:
        self.workers.shutdown()
        self.chain.close()
        self.follower.close()


def swap_msg(i: int, b: int, amount: int) -> Msg:
    path = ["cyb", "h"] if (i + b) % 2 else ["h", "cyb"]
    return Msg("dex.swap", {"path": path, "amount_in": amount, "min_out": 0})


def send_msg(i: int, b: int, to: list[bytes]) -> Msg:
    return Msg("send", {"to": to[(i + 1 + b) % len(to)], "amount": 1})


def bench_throughput(
    n: int, blocks: int, depth: int, amount: int, goal: float, profile_top: int, force: bool
) -> None:
    t = time.perf_counter()
    keys = [key(i) for i in range(n + 1)]
    lp = keys[0]
    gen = Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": 1,
                "max_block_txs": max(10_000, n),
            },
            "accounts": [
                {"address": k.address, "balance": FUNDS, "stake": 0, "tokens": {"h": FUNDS}}
                for k in keys
            ],
            "validators": validators(),
        }
    )
    senders = keys[1:]
    to = [k.address_raw for k in senders]
    kinds = {
        "swap": lambda i, b: swap_msg(i, b, amount),
        "send": lambda i, b: send_msg(i, b, to),
    }
    # Nonce 0..blocks: the warm-up block, the timed blocks, and one to profile.
    signed = {
        kind: [
            [make_tx(k, CHAIN_ID, b, FEE, [msg(i, b)]).encoded for i, k in enumerate(senders)]
            for b in range(blocks + 2)
        ]
        for kind, msg in kinds.items()
    }
    print(
        f"\n## throughput: blocks of {n} txs from {n} accounts, pool cyb/h of {depth:.0e} each, "
        f"swaps of {amount:.0e} alternating directions, dex_breaker_bps at its default "
        f"(1000); {2 * (blocks + 2) * n} txs signed in {time.perf_counter() - t:.1f} s, not timed"
    )
    print(speed_probe(), "(before)")
    rows: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    profilers: dict[str, cProfile.Profile] = {}
    with tempfile.TemporaryDirectory() as home:
        nodes = {kind: Node(os.path.join(home, kind), gen) for kind in kinds}
        create = Msg("dex.create", {"a": "cyb", "b": "h", "amount_a": depth, "amount_b": depth})
        when = T0 + 1000
        for node in nodes.values():
            node.block([make_tx(lp, CHAIN_ID, 0, FEE, [create]).encoded], when)
        # The kinds alternate block by block, so a drift of the machine's
        # speed shows in both; the first block of each is a warm-up.
        for b in range(blocks + 1):
            when += 1000
            for kind, node in nodes.items():
                row = node.block(signed[kind][b], when)
                if b:
                    rows[kind].append(row)
        with nodes["swap"].chain.reader() as r:
            pool = get_pool(r, "cyb", "h")
            someone = senders[0].address_raw
            records = {
                "account": r.get(account_key(someone)),
                "h balance": r.get(balance_key(someone, "h")),
                "pool": r.get(pool_key("cyb", "h")),
            }
        assert pool is not None and pool.halted_until < nodes["swap"].chain.height
        if force or n / median(rows["swap"], "pipeline") < goal:
            when += 1000
            for kind, node in nodes.items():
                profilers[kind] = cProfile.Profile()
                profilers[kind].enable()
                node.block(signed[kind][blocks + 1], when, producer_only=True)
                profilers[kind].disable()
        for node in nodes.values():
            node.close()
    print(speed_probe(), "(after)")

    seconds = {kind: {name: median(r, name) for name in r[0]} for kind, r in rows.items()}
    rates = {kind: {name: n / s for name, s in parts.items()} for kind, parts in seconds.items()}
    print(f"\nmedian of {blocks} blocks each; rate = {n} txs / the part's median seconds")
    print("| part | swap ms | send ms | swaps/s | sends/s | sends/s / swaps/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, s_swap in seconds["swap"].items():
        sw, se = rates["swap"][name], rates["send"][name]
        ms_sw, ms_se = s_swap * 1e3, seconds["send"][name] * 1e3
        if min(ms_sw, ms_se) < 1:  # too short for a rate to mean anything
            print(f"| {name} | {ms_sw:.2f} | {ms_se:.2f} | - | - | - |")
            continue
        print(f"| {name} | {ms_sw:.1f} | {ms_se:.1f} | {sw:,.0f} | {se:,.0f} | {se / sw:.2f} |")
    print(
        "(produce_block = execute + state_root + da + persist, the commit included; "
        "pipeline = precheck on 1 thread + insert + reap + produce_block + update + gc freeze)"
    )
    sw = rates["swap"]["pipeline"]
    on_workers = rates["swap"]["pipeline, admission on workers"]
    met = "met" if sw >= goal else "MISSED"
    best = {kind: {name: n / min(x[name] for x in r) for name in r[0]} for kind, r in rows.items()}
    print(
        f"\nswaps/s through the whole pipeline (admission on one thread): {sw:,.0f} "
        f"(best block {best['swap']['pipeline']:,.0f}); with {WORKERS} admission workers: "
        f"{on_workers:,.0f}; produce_block alone: {rates['swap']['produce_block']:,.0f} "
        f"(best {best['swap']['produce_block']:,.0f}); goal {goal:,.0f}: {met}"
    )
    print(
        f"sends/s through the whole pipeline: {rates['send']['pipeline']:,.0f} "
        f"(best block {best['send']['pipeline']:,.0f}); produce_block alone: "
        f"{rates['send']['produce_block']:,.0f}; swaps/s / sends/s = "
        f"{sw / rates['send']['pipeline']:.2f} (pipeline), "
        f"{rates['swap']['produce_block'] / rates['send']['produce_block']:.2f} (produce_block)"
    )
    if profilers:
        print(
            "\n### cProfile of one block of each kind: admission on one thread, mempool, "
            "produce_block, mempool update (no follower)\n"
        )
        print(hot_spots(profilers, n))
        print(decode_costs(records))
        print("\nswap block:\n")
        print(profile_text(profilers["swap"], profile_top))


#: Functions the hot-spot table follows: (file, function), builtins as pstats names them.
HOT = [
    ("mempool.py", "precheck"),
    ("tx.py", "decode_tx"),
    ("keys.py", "verify"),
    ("mempool.py", "insert"),
    ("mempool.py", "reap"),
    ("mempool.py", "update"),
    ("execute.py", "execute_tx"),
    ("bank.py", "ante"),
    ("dex.py", "swap"),
    ("dex.py", "path_field"),
    ("dex.py", "swap_in"),
    ("dex.py", "get_pool"),
    ("dex.py", "twap_of"),
    ("dex.py", "encode"),
    ("bank.py", "send"),
    ("tokens.py", "balance_of"),
    ("accounts.py", "get_account"),
    ("encoding.py", "decode"),
    ("encoding.py", "_scan"),
    ("~", "<built-in method cbor2._cbor2.dumps>"),
    ("~", "<built-in method cbor2._cbor2.loads>"),
    ("smt.py", "update"),
    ("lmdb_store.py", "commit"),
]


LABELS = {
    "dex.encode": "dex.Pool.encode",
    "bank.send": "bank.Bank.send",
    "dex.swap": "dex.Dex.swap",
}


def hot_spots(profilers: dict[str, cProfile.Profile], n: int) -> str:
    """Calls and cumulative microseconds per transaction (under the profiler) of the
    functions in HOT, side by side for each kind of block."""
    found: dict[str, dict[tuple[str, str], tuple[int, float]]] = {}
    totals = {}
    for kind, profiler in profilers.items():
        stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        found[kind] = {}
        for (path, _line, func), (_cc, nc, _tt, ct, _callers) in stats.items():
            name = (os.path.basename(path), func)
            if name in HOT:
                calls, cum = found[kind].get(name, (0, 0.0))
                found[kind][name] = (calls + nc, cum + ct)
        totals[kind] = max(ct for (_cc, _nc, _tt, ct, _c) in stats.values())
    kinds = list(profilers)
    head = " | ".join(f"{k} calls/tx | {k} us/tx" for k in kinds)
    lines = [f"| function (cumulative) | {head} |", "| --- |" + " ---: |" * (2 * len(kinds))]
    for name in HOT:
        if not any(name in found[k] for k in kinds):
            continue
        cells = []
        for k in kinds:
            calls, cum = found[k].get(name, (0, 0.0))
            cells.append(f"{calls / n:.3g} | {cum / n * 1e6:.1f}")
        label = name[1] if name[0] == "~" else f"{name[0].removesuffix('.py')}.{name[1]}"
        label = LABELS.get(label, label)
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines.append(
        "| whole block, per tx | "
        + " | ".join(f"- | {totals[k] / n * 1e6:.1f}" for k in kinds)
        + " |"
    )
    return "\n".join(lines)


def decode_costs(records: dict[str, bytes | None]) -> str:
    """What reading a state record costs: ``decode`` (the canonical-form scan,
    the parse, and the re-encoding it compares) against the parse alone."""
    cells = []
    for name, raw in records.items():
        assert raw is not None
        us = []
        for fn in (decode, cbor2.loads):
            t = time.perf_counter()
            for _ in range(5_000):
                fn(raw)
            us.append((time.perf_counter() - t) / 5_000 * 1e6)
        cells.append(f"{name} ({len(raw)} B) {us[0]:.1f} us vs {us[1]:.1f} us")
    return (
        "\nreading one state record, decode() against cbor2.loads alone (no profiler): "
        + "; ".join(cells)
    )


def speed_probe() -> str:
    """A fixed pure-Python workload (this VM's speed drifts with other tenants
    of its host): decoding one account record 20,000 times, median of 7."""
    raw = encode([10**16, 7, 10**6])
    times = []
    for _ in range(7):
        t = time.perf_counter()
        for _ in range(20_000):
            decode(raw, "account")
        times.append(time.perf_counter() - t)
    load = os.getloadavg()[0]
    return (
        f"speed probe: {statistics.median(times) * 1e3:.1f} ms per 20,000 decodes, load {load:.2f}"
    )


def profile_text(profiler: cProfile.Profile, top: int) -> str:
    out = []
    for order, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        buf = io.StringIO()
        stats = pstats.Stats(profiler, stream=buf)
        stats.strip_dirs().sort_stats(order).print_stats(top)
        lines = buf.getvalue().splitlines()
        start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
        out.append(f"top {top} by {title}:")
        out.extend(line.rstrip() for line in lines[start:] if line.strip())
        out.append("")
    return "\n".join(out)


# --- 2. reward accounting ------------------------------------------------------


def timed(fn, sink: list[float]):
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink.append(time.perf_counter() - t)

    return wrapper


class Counting:
    """Runs ``fn(ctx, ...)`` on a layer over ``ctx.state`` that counts the reads
    and scans reaching the state under it, and the keys written."""

    def __init__(self, fn) -> None:
        self.fn = fn
        self.reads = self.scans = self.writes = 0

    def __call__(self, ctx, *args):
        base = ctx.state

        def get(k: bytes) -> bytes | None:
            self.reads += 1
            return base.get(k)

        def scan(prefix: bytes) -> list[tuple[bytes, bytes]]:
            self.scans += 1
            return base.scan(prefix)

        layer = PendingState(get, scan)
        ctx.state = layer
        try:
            return self.fn(ctx, *args)
        finally:
            ctx.state = base
            base.merge(layer)
            self.writes += len(layer.writes)


def reward_genesis(n: int, claimer: KeyPair) -> Genesis:
    """``n`` bonded stakers: ``claimer`` and ``n - 1`` addresses without keys."""
    accounts = [
        {
            "address": encode_address(hashlib.sha256(b"staker %d" % i).digest()[:20]),
            "balance": 10**9,
            "stake": 10**6 + i,
        }
        for i in range(n - 1)
    ]
    accounts.append(
        {"address": claimer.address, "balance": 10**9, "stake": 10**6, "tokens": {"h": 10**12}}
    )
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": 1,
                "h_mint_per_block": 10**9,
                "tenure_rate_ppb": 1000,
                "tenure_ramp_blocks": 100,
            },
            "accounts": accounts,
            "validators": validators(),
        }
    )


def bench_rewards_one(n: int, blocks: int) -> dict[str, float]:
    claimer = key(-1)
    t = time.perf_counter()
    gen = reward_genesis(n, claimer)
    out: dict[str, float] = {"genesis": time.perf_counter() - t}
    with tempfile.TemporaryDirectory() as home:
        t = time.perf_counter()
        chain = open_chain(home, gen, VALIDATOR)
        out["open_chain"] = time.perf_counter() - t
        COLLECTOR.after_block()
        economy = next(m for m in chain.modules if m.name == "economy")
        end_block_of = economy.end_block
        claim_of = chain.handlers["rewards.claim"]
        end_block: list[float] = []
        economy.end_block = timed(end_block_of, end_block)
        claims: list[float] = []
        chain.handlers["rewards.claim"] = timed(claim_of, claims)
        when = T0
        empty = []
        for _ in range(blocks):
            when += 1000
            t = time.perf_counter()
            r = chain.produce_block([], time_ms=when)
            empty.append(r.timings | {"block": time.perf_counter() - t})
            COLLECTOR.after_block()
        out["end_block"] = statistics.median(end_block)
        out["end_block min"] = min(end_block)
        for name in ("block", "execute", "state_root", "persist"):
            out[f"empty {name}"] = median(empty, name)
        claim_blocks: list[float] = []

        def claim_block() -> None:
            nonce = len(claim_blocks)
            raw = make_tx(claimer, CHAIN_ID, nonce, FEE, [Msg("rewards.claim", {})]).encoded
            t = time.perf_counter()
            r = chain.produce_block([raw], time_ms=when)
            claim_blocks.append(time.perf_counter() - t)
            COLLECTOR.after_block()
            (receipt,) = r.receipts
            assert receipt.ok and receipt.events[0]["stake"] > 0, receipt

        for _ in range(blocks):
            when += 1000
            claim_block()
        out["claim handler"] = statistics.median(claims)
        out["claim handler min"] = min(claims)
        out["claim block"] = statistics.median(claim_blocks)
        # One more block of each kind, untimed, counting what touches the state.
        economy.end_block = counted_end = Counting(end_block_of)
        chain.handlers["rewards.claim"] = counted_claim = Counting(claim_of)
        when += 1000
        chain.produce_block([], time_ms=when)
        when += 1000
        claim_block()
        for name, c in (("end_block", counted_end), ("claim", counted_claim)):
            out[f"{name} reads"] = c.reads / (2 if name == "end_block" else 1)
            out[f"{name} scans"] = c.scans
            out[f"{name} writes"] = c.writes / (2 if name == "end_block" else 1)
        chain.close()
    return out


def bench_rewards(sizes: list[int], blocks: int) -> None:
    print(
        f"\n## reward accounting: bonded stakers in genesis, h_mint_per_block 1e9, "
        f"tenure_rate_ppb 1000; medians of {blocks} blocks at each size"
    )
    rows = {}
    for n in sizes:
        rows[n] = bench_rewards_one(n, blocks)
        r = rows[n]
        print(
            f"(stakers {n:,}: genesis parsed in {r['genesis']:.1f} s, "
            f"open_chain {r['open_chain']:.1f} s)",
            flush=True,
        )
    print(
        "| stakers | economy end_block us (min) | empty block ms | its execute ms "
        "| its state_root ms | its persist ms | claim handler us (min) | claim block ms "
        "| end_block reads/scans/writes | claim reads/scans/writes |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, r in rows.items():
        print(
            f"| {n:,} | {r['end_block'] * 1e6:.0f} ({r['end_block min'] * 1e6:.0f}) "
            f"| {r['empty block'] * 1e3:.2f} | {r['empty execute'] * 1e3:.2f} "
            f"| {r['empty state_root'] * 1e3:.2f} | {r['empty persist'] * 1e3:.2f} "
            f"| {r['claim handler'] * 1e6:.0f} ({r['claim handler min'] * 1e6:.0f}) "
            f"| {r['claim block'] * 1e3:.2f} "
            f"| {r['end_block reads']:.0f}/{r['end_block scans']}/{r['end_block writes']:.0f} "
            f"| {r['claim reads']:.0f}/{r['claim scans']}/{r['claim writes']:.0f} |"
        )
    lo, hi = rows[sizes[0]], rows[sizes[-1]]
    names = [
        "end_block",
        "end_block min",
        "claim handler",
        "claim handler min",
        "empty block",
        "empty execute",
        "empty persist",
    ]
    ratios = ", ".join(f"{name} {hi[name] / lo[name]:.2f}x" for name in names)
    print(f"largest / smallest ({sizes[-1]:,} / {sizes[0]:,} stakers): {ratios}")
    print(
        "(reads/scans/writes: state accesses below the function in one more, untimed block; "
        "end_block's averaged over one empty block and one claim block)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="2,000-tx blocks, stakers up to 10^4")
    ap.add_argument("--txs", type=int, help="transactions (and accounts) per block")
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks of each kind")
    ap.add_argument("--depth", type=int, default=10**15, help="each reserve of the pool")
    ap.add_argument("--amount", type=int, default=10**6, help="each swap's amount_in")
    ap.add_argument("--goal", type=float, default=5_000, help="swaps/s the pipeline should reach")
    ap.add_argument("--profile", action="store_true", help="profile even if the goal is met")
    ap.add_argument("--profile-top", type=int, default=25)
    ap.add_argument("--stakers", help="comma-separated sizes (default 10^2..10^5)")
    ap.add_argument("--reward-blocks", type=int, default=50)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-rewards", action="store_true")
    args = ap.parse_args()
    # Single-machine chains: the fast-arithmetic warning is noise here.
    logging.getLogger("focusflow.chain.focus").setLevel(logging.ERROR)
    n = args.txs or (2_000 if args.quick else 4_000)
    if args.stakers:
        sizes = [int(s) for s in args.stakers.split(",")]
    else:
        sizes = [10**k for k in range(2, 5 if args.quick else 6)]
    print(
        f"# bench/economics.py on {platform.node()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    if not args.skip_throughput:
        bench_throughput(
            n, args.blocks, args.depth, args.amount, args.goal, args.profile_top, args.profile
        )
    if not args.skip_rewards:
        bench_rewards(sizes, args.reward_blocks)
    print(f"\n(whole run {time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
