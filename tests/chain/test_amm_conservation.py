"""No sequence of pool operations mints value: the exchange's own handlers
(``modules.dex``), run as the chain runs them, under random operations.

Each operation runs the module's handler in a child of the block's state,
kept only when it succeeds, as ``chain.execute`` runs a message; blocks end
with the module's ``end_block`` (a tripped breaker halts its pool) and the
clock moves on, so the TWAP and the breakers see time. Pools are opened
between base denoms and pool shares alike (a pool may hold another's shares).

After every operation:

* every denom is conserved: the holders' balances (the protocol account's
  cut among them), the pools' reserves and the 1,000 shares each pool locked
  add up to what the genesis gave (base denoms) or to the recorded supply,
  which equals the pool's count (shares);
* no pool's ``k / S^2`` (its invariant per share, squared) falls, and a swap
  never lowers ``k``: liquidity changes and swaps round for the pool;
* a refused operation changes nothing; a swap that trips a breaker halts the
  pool for the rest of the block (``pool_halted``) and ``dex_breaker_blocks``
  after it;
* a swap and the swap of all its output straight back return no more than went
  in; a deposit withdrawn at once returns no more of either side.

Beside them, the formulas alone case by case (a swap, an exact-out input with
the protocol's cut, a deposit, a withdrawal: ``k`` and ``k`` per share never
fall), 20,000 cases bounded and 300,000 ``slow``.

The bounded runs take seconds; ``test_pool_books_long_run`` (``slow``) runs
1,500 sequences of up to 120 operations (about three minutes).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from focusflow.chain.errors import PoolHaltedError, TxError
from focusflow.chain.module import BlockContext, TxContext
from focusflow.chain.params import ChainParams
from focusflow.chain.state import PendingState
from focusflow.core.encoding import decode
from focusflow.modules import DexParams, amm, dex
from focusflow.modules.accounts import credit
from focusflow.modules.tokens import mint
from focusflow.state_schema.accounts import ACCOUNT_PREFIX
from focusflow.state_schema.dex import POOL_PREFIX
from focusflow.state_schema.tokens import BALANCE_PREFIX, balance_of, supply_of

BASE = ["cyb", "h", "v"]
TRADERS = [hashlib.sha256(f"trader{i}".encode()).digest()[:20] for i in range(3)]
T0 = 1_700_000_000_000


class Ledger:
    """A committed key-value store the blocks' states write through."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def scan(self, prefix: bytes) -> list[tuple[bytes, bytes]]:
        return sorted((k, v) for k, v in self.data.items() if k.startswith(prefix))

    def commit(self, state: PendingState) -> None:
        for key, value in state.writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


def book(state: PendingState) -> tuple[Counter[str], dict[str, dex.Pool]]:
    """Every denom's holdings (balances, reserves, locked shares) and every pool."""
    held: Counter[str] = Counter()
    for _, raw in state.scan(ACCOUNT_PREFIX):
        held["cyb"] += decode(raw, "account")[0]
    for key, raw in state.scan(BALANCE_PREFIX):
        held[key[len(BALANCE_PREFIX) + 20 :].decode()] += decode(raw, "balance")
    pools = {}
    for key, _ in state.scan(POOL_PREFIX):
        a, b = key[len(POOL_PREFIX) :].decode().split("|")
        pool = dex.get_pool(state, a, b)
        assert pool is not None
        pools[f"{a}|{b}"] = pool
        held[a] += pool.reserve_a
        held[b] += pool.reserve_b
        held[dex.share_denom(a, b)] += amm.MINIMUM_LIQUIDITY
    return held, pools


parts = st.integers(1, 10_000)  # a part of a holding, in basis points
#: A part of a reserve, in parts per million: mostly small trades, some past any breaker.
ppm = st.one_of(st.integers(1, 300), st.integers(1, 30_000), st.integers(1, 10**6))
who = st.integers(0, len(TRADERS) - 1)
denom_index = st.integers(0, 7)
hop_counts = st.integers(1, 3)


class PoolBooks(RuleBasedStateMachine):
    """Random exchange operations on real module state, its books checked after each."""

    @initialize(
        fee=st.sampled_from([0, 1, 30, 1_000]),
        protocol=st.sampled_from([0, 1_667, 10_000]),
        breaker=st.sampled_from([0, 1, 300, 5_000]),
        halt=st.sampled_from([0, 2]),
        funds=st.lists(st.integers(10**3, 10**20), min_size=9, max_size=9),
    )
    def setup(self, fee, protocol, breaker, halt, funds):
        self.params = ChainParams.from_dict(
            {
                "economics": 1,
                "dex_fee_bps": fee,
                "dex_protocol_bps": protocol,
                "dex_breaker_bps": breaker,
                "dex_breaker_blocks": halt,
                "dex_twap_window_ms": 8_000,
            }
        )
        self.module = dex.Dex()
        self.handlers = self.module.handlers()
        self.ledger = Ledger()
        genesis = PendingState(self.ledger.get, self.ledger.scan)
        self.totals: Counter[str] = Counter()
        for i, trader in enumerate(TRADERS):
            for j, denom in enumerate(BASE):
                amount = funds[3 * i + j]
                if denom == "cyb":
                    credit(genesis, trader, amount)
                else:
                    mint(genesis, trader, denom, amount)
                self.totals[denom] += amount
        self.ledger.commit(genesis)
        self.height, self.time_ms = 1, T0
        self.begin_block()
        self.k_per_share: dict[str, Fraction] = {}
        self.counts: Counter[str] = Counter()
        self.create(0, 0, 1, 5_000, 5_000)  # cyb/h, the first trader's

    # -- the harness: blocks and messages, as the chain runs them --
    def begin_block(self) -> None:
        self.block = BlockContext(
            chain_id="amm",
            height=self.height,
            time_ms=self.time_ms,
            proposer=b"",
            params=self.params,
            state=PendingState(self.ledger.get, self.ledger.scan),
        )

    def run(self, sender: int, kind: str, body: dict) -> str:
        """One message in a child state, kept only on success; its code."""
        before = dict(self.block.state.writes)
        child = self.block.state.child()
        ctx = TxContext(self.block, TRADERS[sender], 0, 0, child)
        try:
            self.handlers[kind](ctx, body)
        except TxError as exc:
            assert self.block.state.writes == before
            self.counts[f"{kind}:{exc.code}"] += 1
            return exc.code
        self.block.state.merge(child)
        self.counts[f"{kind}:ok"] += 1
        return "ok"

    def denoms(self) -> list[str]:
        _, pools = book(self.block.state)
        return [*BASE, *(dex.share_denom(p.a, p.b) for p in pools.values())]

    def pick(self, index: int) -> str:
        denoms = self.denoms()
        return denoms[index % len(denoms)]

    def pool_pair(self, index: int) -> tuple[str, str] | None:
        _, pools = book(self.block.state)
        if not pools:
            return None
        pool = list(pools.values())[index % len(pools)]
        return pool.a, pool.b

    def held(self, sender: int, denom: str) -> int:
        return balance_of(self.block.state, TRADERS[sender], denom)

    def reserves(self) -> dict[str, tuple[int, int, int]]:
        _, pools = book(self.block.state)
        return {k: (p.reserve_a, p.reserve_b, p.shares) for k, p in pools.items()}

    # -- rules --
    @rule(sender=who, i=denom_index, j=denom_index, pa=parts, pb=parts)
    def create(self, sender, i, j, pa, pb):
        """A pool of any two denoms (the same one twice now and then)."""
        denoms = self.denoms()
        a, b = denoms[i % len(denoms)], denoms[(i + j) % len(denoms)]
        amount_a = max(1, self.held(sender, a) * pa // 10_000)
        amount_b = max(1, self.held(sender, b) * pb // 10_000)
        body = {"a": a, "b": b, "amount_a": amount_a, "amount_b": amount_b}
        self.run(sender, "dex.create", body)

    @rule(sender=who, i=denom_index, pa=parts, pb=parts, strict=st.booleans())
    def add(self, sender, i, pa, pb, strict):
        found = self.pool_pair(i)
        if found is None:
            return
        a, b = found
        max_a = max(1, self.held(sender, a) * pa // 10_000)
        max_b = max(1, self.held(sender, b) * pb // 10_000)
        body = {"a": a, "b": b, "max_a": max_a, "max_b": max_b, "min_shares": 10**30 * strict}
        self.run(sender, "dex.add", body)

    @rule(sender=who, i=denom_index, p=parts)
    def remove(self, sender, i, p):
        found = self.pool_pair(i)
        if found is None:
            return
        a, b = found
        shares = max(1, self.held(sender, dex.share_denom(a, b)) * p // 10_000)
        body = {"a": a, "b": b, "shares": shares, "min_a": 0, "min_b": 0}
        self.run(sender, "dex.remove", body)

    @rule(
        sender=who, i=denom_index, j=denom_index, p=ppm, hops=st.integers(1, 3), walk=st.booleans()
    )
    def swap(self, sender, i, j, p, hops, walk):
        """A swap through open pools (or, now and then, of any denoms), of a part of
        the first pool's reserve, at most what the sender holds."""
        path = self.walk(i, j, hops) if walk or not self.reserves() else None
        if path is None:
            path = [self.pick(i), self.pick(i + j + 1), self.pick(i + 2 * j + 2)][: hops + 1]
        pool = dex.get_pool(self.block.state, path[0], path[1]) if path[0] != path[1] else None
        scale = pool.reserves(path[0])[0] if pool else self.held(sender, path[0])
        amount = max(1, min(scale * p // 10**6, self.held(sender, path[0])))
        self.swap_path(sender, path, amount)

    def walk(self, i: int, j: int, hops: int) -> list[str] | None:
        """A path of up to ``hops`` hops through open pools, from pool ``i`` either way."""
        found = self.pool_pair(i)
        if found is None:
            return None
        path = list(found[::-1] if j % 2 else found)
        pairs = [(p.a, p.b) for p in book(self.block.state)[1].values()]
        for step in range(hops - 1):
            ahead = [y for x, y in pairs if x == path[-1]] + [x for x, y in pairs if y == path[-1]]
            ahead = [d for d in ahead if d not in path]
            if not ahead:
                break
            path.append(ahead[(j + step) % len(ahead)])
        return path

    def swap_path(self, sender: int, path: list[str], amount: int) -> tuple[str, int]:
        """Swap ``amount`` along ``path``; the code and what came out. Checks that
        ``k`` never falls, and the breaker's halt when it trips."""
        before = self.reserves()
        got = self.held(sender, path[-1])
        body = {"path": path, "amount_in": amount, "min_out": 0}
        code = self.run(sender, "dex.swap", body)
        for name, (ra, rb, s) in self.reserves().items():
            ra0, rb0, s0 = before[name]
            assert s == s0 and ra * rb >= ra0 * rb0, name
        if code == "circuit_breaker":
            self.check_halted(sender, path)
        return code, self.held(sender, path[-1]) - got

    def check_halted(self, sender: int, path: list[str]) -> None:
        """A tripped pool takes no more swaps in the block."""
        assert self.block.section(dex.HaltedPools).pools
        for key in self.block.section(dex.HaltedPools).pools:
            self.swap_refused_as_halted(*key.split("|"))

    def swap_refused_as_halted(self, a: str, b: str) -> None:
        """A swap of one unit of ``a`` for ``b`` (by a trader who holds one) is refused."""
        holders = [i for i in range(len(TRADERS)) if self.held(i, a) > 0]
        if holders:
            again = {"path": [a, b], "amount_in": 1, "min_out": 0}
            assert self.run(holders[0], "dex.swap", again) == PoolHaltedError.code

    @rule(sender=who, i=denom_index, j=denom_index, p=ppm, hops=st.integers(1, 2))
    def swap_out(self, sender, i, j, p, hops):
        """Exactly a part of the last pool's reserve out, through open pools."""
        path = self.walk(i, j, hops)
        if path is None:
            return
        last = dex.get_pool(self.block.state, path[-2], path[-1])
        assert last is not None
        want = max(1, last.reserves(path[-2])[1] * p // 10**6)
        before = self.reserves()
        body = {"path": path, "amount_out": want, "max_in": self.held(sender, path[0])}
        self.run(sender, "dex.swap_out", body)
        for name, (ra, rb, s) in self.reserves().items():
            ra0, rb0, s0 = before[name]
            assert s == s0 and ra * rb >= ra0 * rb0, name

    @rule(sender=who, i=denom_index, p=ppm, flip=st.booleans())
    def round_trip(self, sender, i, p, flip):
        """Swap in, then all the output straight back: never more than went in."""
        found = self.pool_pair(i)
        if found is None:
            return
        a, b = found[::-1] if flip else found
        pool = dex.get_pool(self.block.state, a, b)
        assert pool is not None
        x = max(1, min(pool.reserves(a)[0] * p // 10**6, self.held(sender, a)))
        code, out = self.swap_path(sender, [a, b], x)
        if code != "ok":
            return
        code, back = self.swap_path(sender, [b, a], out)
        assert code != "ok" or back <= x, (x, out, back)

    @rule(sender=who, i=denom_index, pa=parts, pb=parts)
    def add_then_remove(self, sender, i, pa, pb):
        """A deposit withdrawn at once returns no more of either side."""
        found = self.pool_pair(i)
        if found is None:
            return
        a, b = found
        share = dex.share_denom(a, b)
        start = [self.held(sender, d) for d in (a, b, share)]
        self.add(sender, i, pa, pb, False)
        minted = self.held(sender, share) - start[2]
        if minted <= 0:
            return
        body = {"a": a, "b": b, "shares": minted, "min_a": 0, "min_b": 0}
        if self.run(sender, "dex.remove", body) == "ok":
            assert self.held(sender, a) <= start[0] and self.held(sender, b) <= start[1]

    @rule(dt=st.sampled_from([1, 1_000, 3_000, 20_000]))
    def next_block(self, dt):
        """End the block (halting tripped pools) and move the clock on."""
        self.module.end_block(self.block)
        for key in self.block.section(dex.HaltedPools).pools:
            pool = dex.get_pool(self.block.state, *key.split("|"))
            assert pool is not None
            assert pool.halted_until == self.height + DexParams.of(self.params).dex_breaker_blocks
        self.ledger.commit(self.block.state)
        self.height += 1
        self.time_ms += dt
        self.begin_block()

    @precondition(lambda self: DexParams.of(self.params).dex_breaker_blocks > 0)
    @rule()
    def halted_pools_stay_halted(self):
        """A pool halted until a later height refuses swaps until then."""
        _, pools = book(self.block.state)
        for pool in pools.values():
            if pool.halted_until >= self.height:
                self.swap_refused_as_halted(pool.a, pool.b)

    # -- invariants --
    @invariant()
    def every_denom_is_conserved(self):
        held, pools = book(self.block.state)
        for denom in BASE:
            assert held[denom] == self.totals[denom], denom
        for pool in pools.values():
            share = dex.share_denom(pool.a, pool.b)
            assert held[share] == supply_of(self.block.state, share) == pool.shares
            assert pool.reserve_a > 0 and pool.reserve_b > 0
        assert all(held[d] == self.totals[d] for d in held if not d.startswith("lp/"))

    @invariant()
    def k_per_share_never_falls(self):
        _, pools = book(self.block.state)
        for name, pool in pools.items():
            now = Fraction(pool.reserve_a * pool.reserve_b, pool.shares**2)
            assert now >= self.k_per_share.get(name, now), name
            self.k_per_share[name] = now


TestPoolBooks = PoolBooks.TestCase
TestPoolBooks.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.mark.slow
@pytest.mark.timeout(3_600)
def test_pool_books_long_run():
    """Many more and longer sequences than the bounded run."""
    long_run = settings(
        max_examples=1_500,
        stateful_step_count=120,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    PoolBooks.TestCase.settings = long_run
    try:
        PoolBooks.TestCase().runTest()
    finally:
        PoolBooks.TestCase.settings = TestPoolBooks.settings


def test_breakers_and_every_operation_were_reached():
    """The bounded run's operations reach every outcome worth checking: a
    hypothesis run of fixed seed counts what happened."""
    seen: Counter[str] = Counter()

    class Counting(PoolBooks):
        def teardown(self):
            seen.update(self.counts)

    case = Counting.TestCase
    case.settings = settings(
        max_examples=40,
        stateful_step_count=40,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    case().runTest()
    for outcome in (
        "dex.create:ok",
        "dex.add:ok",
        "dex.remove:ok",
        "dex.swap:ok",
        "dex.swap_out:ok",
        "dex.swap:circuit_breaker",
        "dex.swap:pool_halted",
    ):
        assert seen[outcome] > 0, (outcome, seen)


# --- the arithmetic alone, case by case --------------------------------------------------


def log_uniform(rng: random.Random, top: int) -> int:
    return max(1, int(2 ** rng.uniform(0, top)))


def check_arithmetic_case(rng: random.Random) -> None:
    """One random case of each formula of ``modules.amm`` (and the exact-out gross-up):
    a swap never lowers ``k``, an exact-out input buys at least what it pays out,
    a deposit and a withdrawal never lower ``k`` per share."""
    r_in, r_out, s = log_uniform(rng, 100), log_uniform(rng, 100), log_uniform(rng, 100)
    fee, protocol = rng.choice([0, 1, 30, 1_000, 9_999]), rng.choice([0, 1, 1_667, 10_000])
    params = ChainParams.from_dict(dict(dex_fee_bps=fee, dex_protocol_bps=protocol))
    x = log_uniform(rng, 110)
    net = x - amm.protocol_cut(x, fee, protocol)
    out = amm.amount_out(net, r_in, r_out, fee)
    if 0 < out < r_out:
        assert (r_in + net) * (r_out - out) >= r_in * r_out
    want = rng.randint(1, r_out - 1) if r_out > 1 else 0
    if want:
        needed = amm.amount_in(want, r_in, r_out, fee)
        gross = dex.gross_up(needed, params)
        paid = gross - amm.protocol_cut(gross, fee, protocol)
        assert paid >= needed and amm.amount_out(paid, r_in, r_out, fee) >= want
        assert (r_in + paid) * (r_out - want) >= r_in * r_out
    a, b, minted = amm.deposit(log_uniform(rng, 100), log_uniform(rng, 100), r_in, r_out, s)
    if minted > 0:
        assert (r_in + a) * (r_out + b) * s * s >= r_in * r_out * (s + minted) ** 2
    burned = rng.randint(1, s)
    out_a, out_b = amm.withdrawal(burned, r_in, r_out, s)
    if burned < s:
        assert (r_in - out_a) * (r_out - out_b) * s * s >= r_in * r_out * (s - burned) ** 2


def test_amm_arithmetic_never_lowers_k_bounded():
    rng = random.Random(5)
    for _ in range(20_000):
        check_arithmetic_case(rng)


@pytest.mark.slow
def test_amm_arithmetic_never_lowers_k_300_000_cases():
    rng = random.Random(300_000)
    for _ in range(300_000):
        check_arithmetic_case(rng)
