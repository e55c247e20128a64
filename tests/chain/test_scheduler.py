"""The block scheduler: speculative runs merged in order give the serial block, bit for bit.

A chain whose scheduler runs transactions ahead (in a thread pool, or one by
one in a shuffled order: the orders a pool may finish in) and a chain that
runs every transaction serially produce the same blocks, receipts and roots
from the same transactions; a conflict (a transaction that read what an
earlier one of the block wrote) is run again.
"""

from __future__ import annotations

import random

import wasmtime
from eth_account import Account

from focusflow.chain import Genesis, Msg, decode_tx
from focusflow.chain.scheduler import COOLDOWN_CALLS, Scheduler, Speculation, takes_native
from focusflow.core.keys import KeyPair, encode_address
from focusflow.testing.chains import CHAIN_ID, VALIDATOR, link, new_chain, tx
from focusflow.vm import wasm
from tests.chain.test_evm import KEY as ETH_KEY
from tests.chain.test_evm import SENDER as ETH_SENDER
from tests.chain.test_evm import eth
from tests.chain.test_wasm import call_msg, code

T0 = 1_700_000_000_000
FEE = 10**7  # the size's minimum and the WASM gas of these calls
KEYS = [KeyPair.from_seed(f"scheduler-{i}".encode().ljust(32, b"\0")) for i in range(6)]


def _genesis() -> Genesis:
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": "diffusion"}},
            "accounts": [
                *({"address": k.address, "balance": 10**12, "stake": 10**6} for k in KEYS),
                {"address": encode_address(ETH_SENDER), "balance": 10**18, "stake": 0},
            ],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


class Net:
    """Two chains fed the same transactions: one with ``scheduler``, one serial."""

    def __init__(self, tmp_path, scheduler: Scheduler) -> None:
        self.fast = new_chain(tmp_path / "fast", _genesis())
        self.fast.pipeline.scheduler = scheduler
        self.slow = new_chain(tmp_path / "slow", _genesis())
        self.slow.pipeline.scheduler = Scheduler(speculable=lambda _tx: False)
        self.nonces = {k.address: 0 for k in KEYS}
        self.eth_nonce = 0
        self.t = T0

    def signed(self, key: KeyPair, *msgs: Msg) -> bytes:
        raw = tx(key, self.nonces[key.address], *msgs, fee=FEE)
        self.nonces[key.address] += 1
        return raw

    def block(self, txs: list[bytes]):
        self.t += 1000
        a = self.fast.produce_block(txs, time_ms=self.t)
        b = self.slow.produce_block(txs, time_ms=self.t)
        assert [r.code for r in a.receipts] == [r.code for r in b.receipts]
        assert [r.events for r in a.receipts] == [r.events for r in b.receipts]
        assert a.record.encode() == b.record.encode()
        assert self.fast.head == self.slow.head
        return a

    def deploy_counter(self, key: KeyPair) -> bytes:
        r = self.block([self.signed(key, Msg("wasm.store", {"code": code()}))])
        body = {"code": r.receipts[0].events[0]["code"], "msg": b"{}", "label": "c", "gas": 10**6}
        r = self.block([self.signed(key, Msg("wasm.instantiate", body))])
        assert r.receipts[0].code == "ok", r.receipts[0].log
        return r.receipts[0].events[0]["contract"]

    def count(self, contract: bytes) -> int:
        with self.fast.reader() as r:
            return int.from_bytes(r.get(wasm.storage_key(contract, b"count")), "little")


def _increment(contract: bytes) -> Msg:
    return Msg("wasm.execute", {"contract": contract, "msg": call_msg("increment"), "gas": 10**6})


def test_a_conflict_is_run_again_and_the_rest_merged(tmp_path):
    net = Net(tmp_path, Scheduler(speculable=takes_native))
    a, b = net.deploy_counter(KEYS[0]), net.deploy_counter(KEYS[0])
    stats = net.fast.scheduler.stats
    before = (stats.merged, stats.rerun)
    # KEYS[3]'s call reads the count KEYS[1]'s wrote: its speculation is stale.
    block = [
        net.signed(KEYS[1], _increment(a)),
        net.signed(KEYS[2], _increment(b)),
        net.signed(KEYS[3], _increment(a)),
        net.signed(KEYS[4], link(("x", "y"))),
    ]
    r = net.block(block)
    assert [x.code for x in r.receipts] == ["ok"] * 4
    assert (net.count(a), net.count(b)) == (2, 1)
    assert (stats.merged - before[0], stats.rerun - before[1]) == (3, 1)
    answers = [int.from_bytes(x.events[0]["answer"], "little") for x in r.receipts[:3]]
    assert answers == [1, 1, 2]


def test_random_mixed_blocks_in_any_order_of_runs_are_the_serial_blocks(tmp_path):
    """Sends (some overdrawn), links, WASM calls on two counters and Ethereum
    transactions, every native one run ahead in a shuffled order."""
    rng = random.Random(7)

    def shuffled(fn, items):
        order = list(items)
        rng.shuffle(order)
        return [fn(i) for i in order]

    net = Net(tmp_path, Scheduler(speculable=takes_native, runner=shuffled))
    counters = [net.deploy_counter(KEYS[0]), net.deploy_counter(KEYS[5])]
    stats = net.fast.scheduler.stats
    for _ in range(12):
        txs = []
        for _ in range(rng.randint(2, 9)):
            key = rng.choice(KEYS)
            kind = rng.random()
            if kind < 0.3:
                to = rng.choice(KEYS).address
                amount = rng.choice([1, 10**4, 2 * 10**12])  # the last is an overdraft
                txs.append(net.signed(key, Msg("send", {"to": to, "amount": amount})))
            elif kind < 0.55:
                names = rng.sample("abcdef", 2)
                txs.append(net.signed(key, link((names[0], names[1]))))
            elif kind < 0.85:
                txs.append(net.signed(key, _increment(rng.choice(counters))))
            else:
                to = rng.choice(KEYS).address_raw
                txs.append(eth(net.eth_nonce, to[:20], value=rng.randint(1, 99)))
                net.eth_nonce += 1
        net.block(txs)
    assert stats.merged > 0 and stats.rerun > 0


def test_a_pool_of_threads_gives_the_serial_block(tmp_path):
    net = Net(tmp_path, Scheduler(speculable=takes_native, threads=2))
    counters = [net.deploy_counter(KEYS[0]) for _ in range(3)]
    for round_ in range(3):
        net.block(
            [net.signed(k, _increment(counters[(i + round_) % 3])) for i, k in enumerate(KEYS)]
        )
    assert sum(net.count(c) for c in counters) == 18
    assert net.fast.scheduler.stats.merged >= 3


SPIN = """
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
  (func (export "execute") (param i32 i32) (result i64) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (i32.const 400000)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $db_write (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 1))
    (i64.const 0))
  (func (export "query") (param i32 i32) (result i64) (i64.const 0)))
"""


def test_the_default_runs_ahead_only_calls_it_learned_are_heavy_and_free(tmp_path):
    """A contract whose calls ran long is run ahead from the next block on; a
    light one (the counter) never is; one whose speculation went stale cools
    down: its next calls run serially."""
    net = Net(tmp_path, Scheduler(threads=2))
    sched = net.fast.scheduler
    light = net.deploy_counter(KEYS[0])
    r = net.block([net.signed(KEYS[0], Msg("wasm.store", {"code": wasmtime.wat2wasm(SPIN)}))])
    body = {"code": r.receipts[0].events[0]["code"], "msg": b"{}", "label": "s", "gas": 10**6}
    r = net.block([net.signed(KEYS[0], Msg("wasm.instantiate", body))])
    heavy = r.receipts[0].events[0]["contract"]

    def spin() -> Msg:
        return Msg("wasm.execute", {"contract": heavy, "msg": b"{}", "gas": 10**8})

    net.block([net.signed(KEYS[1], spin()), net.signed(KEYS[2], _increment(light))])
    assert sched.stats.speculated == 0  # nothing learned yet
    r = net.block(
        [net.signed(k, spin()) for k in KEYS[1:4]] + [net.signed(KEYS[4], _increment(light))]
    )
    assert (sched.stats.speculated, sched.stats.merged) == (3, 3)
    # A stale speculation cools the contract down for COOLDOWN_CALLS calls.
    probe = decode_tx(net.signed(KEYS[5], spin()))
    assert sched.takes_heavy_wasm(probe)
    sched.learn(r.receipts[0], rerun=True)
    assert not sched.takes_heavy_wasm(probe)
    for _ in range(COOLDOWN_CALLS):
        sched.learn(r.receipts[0], rerun=False)
    assert sched.takes_heavy_wasm(probe)
    assert not sched.takes_heavy_wasm(decode_tx(net.signed(KEYS[5], _increment(light))))


def test_what_a_speculation_read_decides_whether_it_holds():
    spec = Speculation(3, reads={b"/a/1"}, prefixes=[b"/p/"])
    assert spec.holds(3, {b"/b"})
    assert not spec.holds(2, {b"/b"})  # another place in the block
    assert not spec.holds(3, {b"/a/1"})  # a key it read was written
    assert not spec.holds(3, {b"/p/9"})  # a key under a prefix it scanned
    assert not Speculation(3, usable=False).holds(3, set())


def test_ethereum_transactions_are_not_taken():
    raw = Account.sign_transaction(
        {"chainId": 1, "nonce": 0, "gas": 21000, "gasPrice": 1, "to": bytes(20), "value": 0},
        ETH_KEY,
    ).raw_transaction
    assert not takes_native(decode_tx(bytes(raw)))


def test_a_run_that_uses_a_module_section_is_run_again_and_leaves_the_blocks_alone(monkeypatch):
    """A speculation merges writes, fees and deltas only: a run that looked up a
    module's block section (the exchange's halted pools) must be run again
    serially, and what it did to the section must not reach the block's (nor
    the other runs', on other threads)."""
    from focusflow.chain import execute
    from focusflow.chain.module import BlockContext
    from focusflow.chain.params import ChainParams
    from focusflow.chain.state import PendingState
    from focusflow.modules.dex import HaltedPools

    def halting(ctx, handlers, ante, tx, position, verified):
        ctx.section(HaltedPools).pools.add(f"pool-{position}")

    monkeypatch.setattr(execute, "execute_tx", halting)
    ctx = BlockContext(
        chain_id=CHAIN_ID,
        height=2,
        time_ms=T0,
        proposer=b"\0" * 20,
        params=ChainParams(),
        state=PendingState(lambda _key: None),
    )
    ctx.section(HaltedPools).pools.add("already")
    txs = [decode_tx(tx(KEYS[i], 0, link(f"a{i}", f"b{i}"), fee=FEE)) for i in range(3)]
    done = Scheduler(speculable=lambda _tx: True).speculate(ctx, {}, None, txs, verified=True)
    assert sorted(done) == [0, 1, 2]
    assert not any(spec.usable for spec in done.values())
    assert ctx.section(HaltedPools).pools == {"already"}
