"""The economy (``params.economics`` 1): stake rewards against an exact reference,
their cost, the EIP-1559 base fee and the fee split, the supply of every token
after random blocks, and the refusals.

The references here are written from the rules in docs/economics.md, not from
the modules: stake rewards are credited to every staker every block as exact
fractions (``fractions.Fraction``), tenure is summed block by block, and the
supply is followed from the blocks' events alone.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.chain import Chain
from focusflow.chain.errors import InsufficientFeeError
from focusflow.chain.fees import current_fee_per_byte
from focusflow.chain.mempool import Mempool
from focusflow.chain.params import ChainParams
from focusflow.chain.pending import BlockResult
from focusflow.chain.tx import decode_tx
from focusflow.core.encoding import decode
from focusflow.core.keys import KeyPair
from focusflow.modules import DexParams, EconomyParams, rewards
from focusflow.modules.tokens import is_denom
from focusflow.node.runtime import NodeRuntime
from focusflow.state_schema.accounts import ACCOUNT_PREFIX, get_account
from focusflow.state_schema.dex import POOL_PREFIX, RESERVE_KEY, get_pool
from focusflow.state_schema.rewards import read_totals
from focusflow.state_schema.staking import UNBOND_PREFIX
from focusflow.state_schema.tokens import BALANCE_PREFIX, balance_of, supply_of
from focusflow.testing.chains import ALICE, BOB, CAROL, CHAIN_ID, VALIDATOR, link, new_chain

GENESIS_MS = 1_700_000_000_000
BLOCK_MS = 1_000
BPS = 10_000
PPB = 10**9
#: A fee far above the least one (the rest is the proposer's tip).
FEE = 10**7
#: What every test account holds of each token.
PLENTY = 10**15


def key(name: str) -> KeyPair:
    return KeyPair.from_seed(name.encode().ljust(32, b"\0"))


def econ_genesis(holders: list[tuple[KeyPair, int, int, int]], **params: Any) -> Genesis:
    """A genesis under the economy; ``holders`` are ``(key, cyb, stake, h)``."""
    accounts = []
    for k, cyb, stake, h in holders:
        entry: dict[str, Any] = {"address": k.address, "balance": cyb, "stake": stake}
        if h:
            entry["tokens"] = {"h": h}
        accounts.append(entry)
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": GENESIS_MS,
            "params": {"focus": {"mode": "diffusion"}, "economics": 1, **params},
            "accounts": accounts,
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
        }
    )


class Econ:
    """A chain whose blocks come one second apart, with the nonces of the block
    being built kept here (so one sender may put several transactions in it)."""

    def __init__(self, path: Path, genesis: Genesis) -> None:
        self.chain: Chain = new_chain(path, genesis)
        self.params: ChainParams = genesis.params
        self._nonces: dict[bytes, int] = {}

    def close(self) -> None:
        self.chain.store.close()

    def tx(self, sender: KeyPair, *msgs: Msg, fee: int = FEE) -> bytes:
        address = sender.address_raw
        if address not in self._nonces:
            self._nonces[address] = self.account(sender).nonce
        nonce = self._nonces[address]
        self._nonces[address] = nonce + 1
        return make_tx(sender, CHAIN_ID, nonce, fee, msgs).encoded

    def forget_nonces(self) -> None:
        """Number the next transactions from the committed nonces again."""
        self._nonces.clear()

    def block(self, txs: Sequence[bytes] = ()) -> BlockResult:
        self.forget_nonces()
        height = self.chain.height + 1
        return self.chain.produce_block(list(txs), time_ms=GENESIS_MS + BLOCK_MS * height)

    def account(self, k: KeyPair):
        with self.chain.reader() as r:
            return get_account(r, k.address_raw)

    def h(self, address: bytes) -> int:
        with self.chain.reader() as r:
            return balance_of(r, address, "h")

    def supply(self) -> int:
        with self.chain.reader() as r:
            return supply_of(r, "h")

    def fee_per_byte(self) -> int:
        with self.chain.reader() as r:
            return current_fee_per_byte(r, self.params)

    def pool(self):
        with self.chain.reader() as r:
            return get_pool(r, "cyb", "h")

    def totals(self) -> rewards.Totals:
        with self.chain.reader() as r:
            found = read_totals(r)
        assert found is not None
        return found


@pytest.fixture
def open_econ():
    """Opens chains (``open_econ(path, genesis)``) and closes their stores after
    the test: each maps a large address space, and a process has room for few."""
    opened: list[Econ] = []

    def open_(path: Path, genesis: Genesis) -> Econ:
        opened.append(Econ(path, genesis))
        return opened[-1]

    yield open_
    for econ in opened:
        econ.close()


def economy_event(result: BlockResult) -> dict[str, Any]:
    (event,) = [e for e in result.events if e.get("type") == "economy"]
    return event


def least_fee(params: ChainParams, size: int, per_byte: int) -> int:
    """docs/economics.md: ``fee_base + base_fee * size``."""
    return params.fee_base + per_byte * size


def tx_at(sender: KeyPair, nonce: int, msgs: tuple[Msg, ...], fee_for: Callable[[int], int]):
    """A transaction whose fee is ``fee_for(its own encoded size)``."""
    fee = fee_for(200)
    for _ in range(8):
        encoded = make_tx(sender, CHAIN_ID, nonce, fee, msgs).encoded
        wanted = fee_for(len(encoded))
        if wanted == fee:
            return encoded
        fee = wanted
    raise AssertionError("the fee and the size do not settle")


def fee_of(encoded: bytes) -> int:
    return decode_tx(encoded, 1 << 20).fee


def send_h(to: KeyPair, amount: int = 1) -> Msg:
    return Msg("send", {"to": to.address_raw, "amount": amount, "denom": "h"})


# --- 1. stake rewards against an exact reference ---------------------------------------


class ExactRewards:
    """Stake rewards credited every block to the stake bonded throughout it (each
    staker's least stake in the block, its low) as exact fractions, with what
    the chain's floors may keep from each: under one unit per settlement (each
    floors ``bonded * Δindex / 10^27`` once, and a staker whose stake rose in a
    block is settled for its low at the block's end) plus ``low / 10^27`` per
    block (each block's index step ``amount * 10^27 // total`` is floored)."""

    def __init__(self, bonded: list[int]) -> None:
        n = len(bonded)
        self.bonded = list(bonded)
        self.low = list(bonded)
        self.exact = [Fraction(0)] * n  # owed since genesis
        self.slack = [Fraction(0)] * n
        self.paid = [0] * n
        self.settlements = [0] * n
        self.distributed = 0

    def begin_block(self) -> None:
        self.low = list(self.bonded)

    def distribute(self, amount: int) -> None:
        """The block's end: ``amount`` to the lows; a staker above its low is settled."""
        for i, (low, now) in enumerate(zip(self.low, self.bonded, strict=True)):
            self.settlements[i] += now > low
        total = sum(self.low)
        if not total:
            return
        self.distributed += amount
        for i, stake in enumerate(self.low):
            self.exact[i] += Fraction(amount * stake, total)
            self.slack[i] += Fraction(stake, rewards.SCALE)

    def check(self, i: int, pending_settlement: int = 0) -> None:
        owed = self.exact[i] - self.paid[i]
        assert owed >= 0, f"staker {i} was paid {-owed} more than its exact share"
        bound = self.settlements[i] + pending_settlement + self.slack[i]
        assert owed < bound, (i, float(owed), self.settlements[i])

    def apply(self, i: int, kind: str, amount: int, receipt) -> None:
        """One transaction's outcome, checked against what the rules allow."""
        if kind == "claim":
            if receipt.code == "nothing_to_claim":
                self.check(i, pending_settlement=1)  # it would have floored once more
                return
            assert receipt.code == "ok", receipt.log
            (event,) = receipt.events
            assert event["learning"] == 0
            self.paid[i] += event["stake"]
            self.settlements[i] += 1
            self.check(i)
            return
        if kind == "unstake" and amount > self.bonded[i]:
            assert receipt.code == "insufficient_funds"
            return
        assert receipt.code == "ok", receipt.log
        self.bonded[i] += amount if kind == "stake" else -amount
        self.low[i] = min(self.low[i], self.bonded[i])
        self.settlements[i] += 1


def random_op(rng: random.Random, bonded: int) -> tuple[str, int] | None:
    roll = rng.random()
    if roll < 0.12:
        return "claim", 0
    if roll < 0.25:
        return "stake", rng.choice([1, rng.randint(1, 10**7)])
    if roll < 0.38:
        return "unstake", rng.randint(1, bonded + 3)  # now and then more than bonded
    return None


@pytest.mark.parametrize("seed", [2024, 7])
def test_stake_rewards_stay_within_rounding_of_an_exact_reference(open_econ, tmp_path, seed):
    """Random stakes, unstakes and claims over many blocks: every claim pays at
    most what exact per-block crediting gives, and less only by the floors'
    bound (:class:`ExactRewards`)."""
    rng = random.Random(seed)
    stakers = [key(f"staker{i}") for i in range(6)]
    initial = [10**6, 3 * 10**6 + 1, 7, 0, 123_456_789, 1]
    minted = 1_000_003
    genesis = econ_genesis(
        [(k, PLENTY, s, PLENTY) for k, s in zip(stakers, initial, strict=True)],
        h_mint_per_block=minted,
    )
    econ = open_econ(tmp_path, genesis)
    params = econ.params
    ref = ExactRewards(initial)
    per_byte = max(params.fee_per_byte, params.base_fee_min)
    last = 60
    for height in range(1, last + 1):
        ref.begin_block()
        ops: list[tuple[int, str, int]] = []
        for i in range(len(stakers)):
            op = ("claim", 0) if height == last else random_op(rng, ref.bonded[i])
            if op is not None:
                ops.append((i, *op))
        txs = [
            econ.tx(stakers[i], Msg(kind, {"amount": amount}))
            if kind != "claim"
            else econ.tx(stakers[i], Msg("rewards.claim", {}))
            for i, kind, amount in ops
        ]
        result = econ.block(txs)
        assert not result.rejected
        for (i, kind, amount), receipt in zip(ops, result.receipts, strict=True):
            ref.apply(i, kind, amount, receipt)
        # The block's distribution, computed from the rule, not read from the chain.
        base = sum(least_fee(params, len(t), per_byte) for t in txs)
        sold = base * EconomyParams.of(params).split_base_bps // BPS  # no pool: no premium
        amount = base - sold + minted
        event = economy_event(result)
        assert (event["base_fees"], event["sold_h"], event["minted_h"]) == (base, sold, minted)
        assert event["to_stake"] == (amount if sum(ref.low) else 0)
        if height == last:  # every staker claimed: nothing is owed but the rounding
            for i in range(len(stakers)):
                ref.check(i)
        ref.distribute(amount)
        per_byte = event["fee_per_byte"]

    assert sum(ref.settlements) > 40
    assert sum(ref.paid) > (last - 2) * minted  # claims really pay
    # The pool holds what was distributed and not paid: the dust and the last block's.
    held = econ.totals().held
    assert held == ref.distributed - sum(ref.paid) == sum(ref.exact) - sum(ref.paid)


def brute_ramp_sum(t0: int, t1: int, ramp: int) -> int:
    return sum(min(t, ramp) for t in range(t0, t1 + 1))


def test_ramp_sum_equals_the_brute_force_sum():
    rng = random.Random(7)
    cases = [(0, 0, 1), (1, 1, 1), (5, 4, 3), (0, 10, 10), (10, 11, 10), (11, 20, 10)]
    for _ in range(400):
        ramp = rng.randint(1, 60)
        t0 = rng.randint(-5, 90)
        cases.append((t0, t0 + rng.randint(-3, 120), ramp))
    for t0, t1, ramp in cases:
        assert rewards.ramp_sum(t0, t1, ramp) == brute_ramp_sum(t0, t1, ramp), (t0, t1, ramp)


def tenure_by_blocks(bonded: int, start: int, last: int, height: int, rate: int, ramp: int) -> int:
    """Tenure of ``bonded`` bonded since ``start`` for blocks ``last + 1 .. height``:
    each block ``t`` blocks after the start earns ``rate * min(t, R) / R`` ppb
    of the stake, summed exactly, floored once."""
    owed = Fraction(0)
    for block in range(last + 1, height + 1):
        owed += Fraction(bonded * rate * min(block - start, ramp), ramp * PPB)
    return int(owed)


def test_tenure_earned_equals_a_block_by_block_sum():
    rng = random.Random(11)
    for _ in range(300):
        ramp = rng.randint(1, 80)
        params = ChainParams.from_dict(
            dict(tenure_rate_ppb=rng.randint(1, 10**9), tenure_ramp_blocks=ramp)
        )
        start = rng.randint(0, 50)
        last = start + rng.randint(0, 100)
        height = last + rng.randint(0, 150)
        bonded = rng.choice([1, 7, rng.randint(1, 10**15)])
        earner = rewards.Earner(tenure_start=start, last_height=last)
        expected = tenure_by_blocks(
            bonded, start, last, height, EconomyParams.of(params).tenure_rate_ppb, ramp
        )
        assert rewards.tenure_earned(bonded, earner, height, params) == expected
    unbonded = rewards.Earner(tenure_start=-1, last_height=3)
    assert (
        rewards.tenure_earned(
            10**9, unbonded, 50, ChainParams.from_dict(dict(tenure_rate_ppb=10**6))
        )
        == 0
    )


def lots_tenure(lots: Sequence[Sequence[int]], last: int, height: int, rate: int, ramp: int) -> int:
    """Tenure of ``lots`` (``[start, amount]``) for blocks ``last + 1 .. height``:
    each lot earns, in the block ``t`` blocks after its start, ``rate * min(t,
    R) / R`` ppb of itself; summed exactly over lots and blocks, floored once."""
    owed = Fraction(0)
    for start, amount in lots:
        for block in range(max(last + 1, start), height + 1):
            owed += Fraction(amount * rate * min(block - start, ramp), ramp * PPB)
    return int(owed)


def test_a_chain_pays_tenure_as_the_block_by_block_sum(open_econ, tmp_path):
    """Only tenure flows (every base fee is sold, nothing minted per block):
    each claim pays the block-by-block sum, lot by lot, over the blocks that
    ended since the last settlement. A top-up is a lot of its own; a partial
    unstake takes the youngest lots first and keeps the older ones' tenure."""
    rate, ramp = 10**7, 10
    genesis = econ_genesis(
        [(ALICE, PLENTY, 10**6 + 3, PLENTY), (BOB, PLENTY, 0, PLENTY)],
        tenure_rate_ppb=rate,
        tenure_ramp_blocks=ramp,
        split_base_bps=BPS,
    )
    econ = open_econ(tmp_path, genesis)
    claimed: dict[str, list[int]] = {"alice": [], "bob": []}
    for height in range(1, 27):
        txs = []
        if height == 3:
            txs.append(econ.tx(BOB, Msg("stake", {"amount": 777_777})))
        if height == 5:
            txs.append(econ.tx(BOB, Msg("stake", {"amount": 50_000})))
        if height == 6:
            txs.append(econ.tx(ALICE, Msg("stake", {"amount": 2 * 10**6})))
        if height == 9:  # takes the 50,000 of block 5 and 27,777 of block 3
            txs.append(econ.tx(BOB, Msg("unstake", {"amount": 77_777})))
        if height in (15, 25):
            txs.append(econ.tx(ALICE, Msg("rewards.claim", {})))
        if height == 20:
            txs.append(econ.tx(BOB, Msg("rewards.claim", {})))
        result = econ.block(txs)
        assert all(r.code == "ok" for r in result.receipts), result.receipts
        assert economy_event(result)["to_stake"] == 0
        for r in result.receipts:
            for e in r.events:
                if e["type"] == "rewards.claim":
                    name = "alice" if e["neuron"] == ALICE.address_raw else "bob"
                    claimed[name].append(e["stake"])
    alice = [[0, 10**6 + 3], [6, 2 * 10**6]]
    # The top-up in block 6 settled blocks 1 .. 5, which the first claim also pays.
    first = lots_tenure(alice[:1], 0, 5, rate, ramp) + lots_tenure(alice, 5, 14, rate, ramp)
    assert claimed["alice"] == [first, lots_tenure(alice, 14, 24, rate, ramp)]
    bob_before = lots_tenure([[3, 777_777]], 3, 4, rate, ramp)
    bob_before += lots_tenure([[3, 777_777], [5, 50_000]], 4, 8, rate, ramp)
    after = lots_tenure([[3, 750_000]], 8, 19, rate, ramp)
    assert claimed["bob"] == [bob_before + after]
    assert claimed["bob"][0] > 0


def test_learning_pays_karma_for_the_blocks_since_the_last_claim(open_econ, tmp_path):
    """``karma * learning_per_block * blocks // 10^15``: blocks since the last
    claim (or since the neuron's record was made), at most the window."""
    per_block, window = 10**6, 50
    genesis = econ_genesis(
        [(ALICE, PLENTY, 10**6, PLENTY), (BOB, PLENTY, 10**6, PLENTY)],
        learning_per_block=per_block,
        learning_window=window,
    )
    econ = open_econ(tmp_path, genesis)
    links = [econ.tx(ALICE, link(("a", "b"), ("b", "c"))), econ.tx(BOB, link(("c", "a")))]
    assert [r.code for r in econ.block(links).receipts] == ["ok", "ok"]

    def claim_at(height: int, claims: int = 1) -> list[Any]:
        while econ.chain.height < height - 1:
            econ.block()
        # The karma the block reads: the head's (its parent's), as the chain keeps it.
        karma = econ.chain.tip.karma_of(ALICE.address_raw)
        assert karma > 0
        result = econ.block([econ.tx(ALICE, Msg("rewards.claim", {})) for _ in range(claims)])
        return [karma, *result.receipts]

    # The first claim, four blocks after the links and five after genesis.
    karma, receipt = claim_at(5)
    assert receipt.events[0]["learning"] == karma * per_block * 5 // 10**15
    # Much later: the window caps it; a second claim in the block learns nothing.
    karma, first, second = claim_at(5 + window + 20, claims=2)
    assert first.events[0]["learning"] == karma * per_block * window // 10**15
    assert second.code == "nothing_to_claim"


# --- 2. the cost does not grow with the number of stakers ----------------------------


@dataclass
class Work:
    reads: int = 0
    writes: int = 0


def _counting(state, work: Work) -> Callable[[], None]:
    """Count ``state``'s reads (a scan counts one plus a row per entry) from now
    on; returns the function that stops counting."""
    get, scan = state.get, state.scan

    def counted_get(k: bytes):
        work.reads += 1
        return get(k)

    def counted_scan(prefix: bytes):
        rows = scan(prefix)
        work.reads += 1 + len(rows)
        return rows

    state.get, state.scan = counted_get, counted_scan

    def stop() -> None:
        del state.get, state.scan

    return stop


def measured_block(econ: Econ, stake: int) -> tuple[Work, Work]:
    """The work of the economy's end of block, and of a ``rewards.claim``, in a
    block of ``econ``, whose genesis accounts (:func:`holders_genesis`) bond ``stake``."""
    holders = HOLDERS
    economy = next(m for m in econ.chain.modules if m.name == "economy")
    end, claim = Work(), Work()
    original_end = economy.end_block
    original_claim = econ.chain.handlers["rewards.claim"]

    def end_block(ctx) -> None:
        before = dict(ctx.state.writes)
        stop = _counting(ctx.state, end)
        try:
            original_end(ctx)
        finally:
            stop()
        end.writes = sum(
            1 for k, v in ctx.state.writes.items() if k not in before or before[k] != v
        )

    def claim_handler(ctx, body) -> None:
        stop = _counting(ctx.state, claim)
        try:
            original_claim(ctx, body)
        finally:
            stop()
            claim.writes = len(ctx.state.writes)

    econ.block([econ.tx(holders[0], send_h(holders[1]))])  # a first block: fees, mint
    economy.end_block = end_block
    econ.chain.handlers["rewards.claim"] = claim_handler
    result = econ.block([econ.tx(holders[1], Msg("rewards.claim", {}))])
    assert result.receipts[0].code == ("ok" if stake else "nothing_to_claim")
    return end, claim


HOLDERS = [key(f"holder{i}") for i in range(1000)]


def holders_genesis(n: int, stake: int) -> Genesis:
    return econ_genesis(
        [(k, 10**9, stake, 10**12) for k in HOLDERS[:n]],
        h_mint_per_block=1_000,
        tenure_rate_ppb=1_000,
    )


@pytest.mark.parametrize("stake", [10**6, 0], ids=["bonded", "nothing-bonded"])
def test_end_of_block_and_claim_cost_the_same_at_10_and_1000_stakers(open_econ, tmp_path, stake):
    few = open_econ(tmp_path / "few", holders_genesis(10, stake))
    many = open_econ(tmp_path / "many", holders_genesis(1000, stake))
    few_end, few_claim = measured_block(few, stake)
    many_end, many_claim = measured_block(many, stake)
    assert few_end.writes > 0 and few_end.reads > 0
    assert (many_end.reads, many_end.writes) == (few_end.reads, few_end.writes)
    assert (many_claim.reads, many_claim.writes) == (few_claim.reads, few_claim.writes)


# --- 3. EIP-1559 and the split of the base fees -------------------------------------


def next_base_fee(base: int, used: int, params: ChainParams) -> int:
    """docs/economics.md's rule, written out."""
    target, d = params.gas_target_bytes, params.base_fee_change_denominator
    used = min(used, 2 * target)  # EIP-1559's limit: twice the target
    if used > target:
        return base + max(1, base * (used - target) // (target * d))
    return max(params.base_fee_min, base - base * (target - used) // (target * d))


def test_base_fee_follows_eip1559_and_pays_the_proposer_only_tips(open_econ, tmp_path):
    senders = [ALICE, BOB, CAROL]
    genesis = econ_genesis(
        [(k, PLENTY, 10**6, PLENTY) for k in senders],
        gas_target_bytes=400,
        base_fee_change_denominator=4,
        base_fee_min=10,
        fee_per_byte=1_000,
    )
    econ = open_econ(tmp_path, genesis)
    params = econ.params
    base = econ.fee_per_byte()
    assert base == 1_000
    history = [base]
    proposer_cyb = econ.account(VALIDATOR).balance

    def run(txs: list[bytes]) -> BlockResult:
        nonlocal base
        proposer_before = econ.h(VALIDATOR.address_raw)
        result = econ.block(txs)
        assert not result.rejected
        assert all(r.code == "ok" for r in result.receipts), result.receipts
        used = sum(len(t) for t in txs)
        expected = next_base_fee(base, used, params)
        tips = sum(fee_of(t) - least_fee(params, len(t), base) for t in txs)
        assert economy_event(result)["base_fees"] == sum(
            least_fee(params, len(t), base) for t in txs
        )
        assert economy_event(result)["fee_per_byte"] == expected == econ.fee_per_byte()
        assert econ.h(VALIDATOR.address_raw) - proposer_before == tips
        base = expected
        history.append(base)
        return result

    # Blocks over the target (about 3 times it, counted as twice) raise the base
    # fee by the rule: 1/denominator each.
    for _ in range(3):
        run([econ.tx(k, send_h(ALICE)) for k in senders for _ in range(3)])
    assert history[0] < history[1] < history[2] < history[3]
    # A block under the target but not empty lowers it in proportion.
    run([econ.tx(BOB, send_h(ALICE))])
    assert history[4] < history[3]
    # Empty blocks lower it to base_fee_min, and it stays there.
    while base > params.base_fee_min:
        before = base
        run([])
        assert base < before
    run([])
    assert base == params.base_fee_min
    # Just over the target at the floor: at least one unit up.
    nonces = {k.address_raw: econ.account(k).nonce for k in senders}
    txs = [
        tx_at(BOB, nonces[BOB.address_raw], (send_h(ALICE),) * 3, lambda s: FEE + s),
        tx_at(CAROL, nonces[CAROL.address_raw], (send_h(ALICE),), lambda s: FEE + s),
    ]
    used, target = sum(map(len, txs)), params.gas_target_bytes
    assert 0 < (used - target) * base < target * params.base_fee_change_denominator
    run(txs)
    assert base == params.base_fee_min + 1

    # A fee one unit under the least one is refused; the least one is taken and
    # leaves the proposer no tip.
    nonce = econ.account(BOB).nonce
    low = tx_at(BOB, nonce, (send_h(ALICE),), lambda s: least_fee(params, s, base) - 1)
    carol = econ.account(CAROL).nonce
    exact = tx_at(CAROL, carol, (send_h(ALICE),), lambda s: least_fee(params, s, base))
    pool = Mempool(CHAIN_ID, params)
    pool.fee_per_byte = econ.fee_per_byte()
    with pytest.raises(InsufficientFeeError):
        pool.precheck(low)
    pool.precheck(exact)
    proposer_before = econ.h(VALIDATOR.address_raw)
    econ.forget_nonces()
    result = econ.chain.produce_block([low, exact], time_ms=GENESIS_MS + 10**7)
    assert [r.error.code for r in result.rejected] == ["insufficient_fee"]
    assert result.rejected[0].tx.encoded == low
    assert [r.code for r in result.receipts] == ["ok"], result.receipts[0].log
    assert econ.h(VALIDATOR.address_raw) == proposer_before
    assert econ.account(BOB).nonce == nonce
    assert econ.account(VALIDATOR).balance == proposer_cyb  # tips are H, never CYB


def premium_split(cyb: int, h: int, base_bps: int, slope_bps: int) -> int:
    """The buyback share docs/economics.md gives for a pool of ``cyb`` and ``h`` at par 1."""
    premium = int((Fraction(cyb, h) - 1) * BPS)  # rounded towards zero
    return max(0, min(BPS, base_bps + slope_bps * premium // BPS))


@pytest.mark.parametrize(
    ("cyb_per_h", "slope", "expected"),
    [
        (Fraction(1), 2_000, 5_000),  # at par: split_base_bps
        (Fraction(100_005, 100_000), 2_000, 5_000),  # within a basis point of par
        (Fraction(123_456, 100_000), 2_000, 5_469),  # a premium: more is sold
        (Fraction(87_654, 100_000), 2_000, 4_753),  # a discount: less is sold
        (Fraction(123_456, 100_000), 30_000, BPS),  # held at 10,000
        (Fraction(3, 10), 10_000, 0),  # held at 0
    ],
    ids=["par", "near-par", "premium", "discount", "clamped-high", "clamped-low"],
)
def test_base_fees_split_by_the_premium_of_h(open_econ, tmp_path, cyb_per_h, slope, expected):
    h_reserve = 10**15
    cyb_reserve = int(h_reserve * cyb_per_h)
    assert premium_split(cyb_reserve, h_reserve, 5_000, slope) == expected
    genesis = econ_genesis(
        [(k, 10 * PLENTY, 10**6, 10 * PLENTY) for k in (ALICE, BOB, CAROL)],
        fee_base=100_000,
        split_base_bps=5_000,
        split_slope_bps=slope,
        h_mint_per_block=1_000,
    )
    econ = open_econ(tmp_path, genesis)
    create = Msg(
        "dex.create", {"a": "cyb", "b": "h", "amount_a": cyb_reserve, "amount_b": h_reserve}
    )
    first = econ.block([econ.tx(ALICE, create)])
    assert first.receipts[0].code == "ok", first.receipts[0].log
    # The pool's own block reads its opening price: the exact ratio.
    assert economy_event(first)["buyback_bps"] == expected
    for _ in range(2):
        pool = econ.pool()
        supply = econ.supply()
        # The TWAP is the price the last blocks left, which their buybacks moved a
        # hair from the opening one (at par, a hair under it: still 0 bps, as the
        # premium is rounded towards zero).
        now = premium_split(pool.reserve_a, pool.reserve_b, 5_000, slope)
        assert now == expected
        result = econ.block([econ.tx(BOB, send_h(CAROL, 5)), econ.tx(CAROL, send_h(BOB, 5))])
        assert [r.code for r in result.receipts] == ["ok", "ok"]
        event = economy_event(result)
        base = event["base_fees"]
        sold = base * now // BPS
        assert event["buyback_bps"] == now
        assert event["sold_h"] == sold
        assert event["to_stake"] == base - sold + event["minted_h"]
        after = econ.pool()
        if sold:
            kept = sold * (BPS - DexParams.of(econ.params).dex_fee_bps)
            bought = kept * pool.reserve_a // (pool.reserve_b * BPS + kept)
            assert event["burned_cyb"] == bought > 0
            assert after.reserve_b == pool.reserve_b + sold
            assert after.reserve_a == pool.reserve_a - bought
        else:
            assert event["burned_cyb"] == 0
            assert (after.reserve_a, after.reserve_b) == (pool.reserve_a, pool.reserve_b)
        # The H sold stays in the pool: the supply grows by the mint alone.
        assert econ.supply() - supply == event["minted_h"]


def test_without_a_pool_the_premium_is_zero_and_the_buyback_burns_h(open_econ, tmp_path):
    genesis = econ_genesis(
        [(k, PLENTY, 10**6, PLENTY) for k in (ALICE, BOB)],
        fee_base=100_000,
        split_base_bps=3_000,
        split_slope_bps=10_000,
        h_mint_per_block=1_000,
    )
    econ = open_econ(tmp_path, genesis)
    supply = econ.supply()
    result = econ.block([econ.tx(ALICE, send_h(BOB))])
    event = economy_event(result)
    assert event["buyback_bps"] == 3_000
    assert event["sold_h"] == event["base_fees"] * 3_000 // BPS > 0
    assert event["burned_cyb"] == 0
    assert econ.supply() - supply == event["minted_h"] - event["sold_h"]


def test_a_buyback_that_would_trip_the_breaker_burns_h_and_halts_nothing(open_econ, tmp_path):
    genesis = econ_genesis(
        [(k, PLENTY, 10**6, PLENTY) for k in (ALICE, BOB)],
        fee_base=100_000,
        dex_breaker_bps=1_000,
        dex_breaker_blocks=5,
    )
    econ = open_econ(tmp_path, genesis)
    create = Msg("dex.create", {"a": "cyb", "b": "h", "amount_a": 20_000, "amount_b": 20_000})
    for txs in (
        [econ.tx(ALICE, create)],
        [econ.tx(BOB, Msg("dex.swap", {"path": ["cyb", "h"], "amount_in": 100, "min_out": 1}))],
    ):
        supply = econ.supply()
        result = econ.block(txs)
        assert [r.code for r in result.receipts] == ["ok"], result.receipts[0].log
        event = economy_event(result)
        assert event["sold_h"] >= 50_000  # more than the pool's 20,000 H: past the breaker
        assert event["burned_cyb"] == 0
        assert econ.supply() - supply == -event["sold_h"]
        assert econ.pool().halted_until == -1
    pool = econ.pool()
    assert (pool.reserve_a, pool.reserve_b) == (20_000 + 100, 20_000 - 99)


# --- 4. the supply of every token after random blocks ------------------------------


@dataclass
class TenureModel:
    """Tenure minted at each settlement, from the rule (block by block, lot by
    lot): a settlement in block ``h`` pays blocks up to ``h - 1``; a top-up is
    a lot of its own (one per block, at most ``rewards.MAX_LOTS``, past which
    the neighbours whose older lot loses least merge at the younger's start);
    unbonding takes the youngest lots first."""

    rate: int
    ramp: int
    lots: dict[bytes, list[list[int]]] = field(default_factory=dict)
    last: dict[bytes, int] = field(default_factory=dict)

    def settle(self, address: bytes, height: int) -> int:
        last = self.last.get(address, height)
        self.last[address] = max(last, height - 1)
        lots = self.lots.get(address, [])
        minted = lots_tenure(lots, last, height - 1, self.rate, self.ramp)
        # Lots fully ramped from this block on merge at the youngest of their starts.
        ramped = [i for i, lot in enumerate(lots) if height - lot[0] >= self.ramp]
        if ramped:
            k = ramped[-1]
            lots[: k + 1] = [[lots[k][0], sum(lot[1] for lot in lots[: k + 1])]]
        return minted

    def bonded_change(self, address: bytes, before: int, after: int, height: int) -> int:
        minted = self.settle(address, height)
        lots = self.lots.setdefault(address, [])
        if after > before:
            amount = after - before
            if lots and lots[-1][0] == height:
                lots[-1][1] += amount
                return minted
            lots.append([height, amount])
            if len(lots) > rewards.MAX_LOTS:
                loss = [lots[i][1] * (lots[i + 1][0] - lots[i][0]) for i in range(len(lots) - 1)]
                i = loss.index(min(loss))
                lots[i : i + 2] = [[lots[i + 1][0], lots[i][1] + lots[i + 1][1]]]
            return minted
        gone = before - after
        while gone:
            take = min(gone, lots[-1][1])
            lots[-1][1] -= take
            gone -= take
            if not lots[-1][1]:
                lots.pop()
        return minted


ACTORS = (ALICE, BOB, CAROL)

OP_MESSAGES: dict[str, Callable[[int, KeyPair], Msg]] = {
    "send_h": lambda amount, other: send_h(other, amount),
    "send_cyb": lambda amount, other: Msg("send", {"to": other.address_raw, "amount": amount}),
    "stake": lambda amount, _: Msg("stake", {"amount": amount}),
    "unstake": lambda amount, _: Msg("unstake", {"amount": amount}),
    "claim": lambda _, __: Msg("rewards.claim", {}),
    "swap_in": lambda amount, _: Msg(
        "dex.swap", {"path": ["cyb", "h"], "amount_in": amount, "min_out": 0}
    ),
    "swap_back": lambda amount, _: Msg(
        "dex.swap", {"path": ["h", "cyb"], "amount_in": amount, "min_out": 0}
    ),
    "swap_out": lambda amount, _: Msg(
        "dex.swap_out", {"path": ["h", "cyb"], "amount_out": amount, "max_in": 10**12}
    ),
    "add": lambda amount, _: Msg(
        "dex.add", {"a": "cyb", "b": "h", "max_a": amount, "max_b": amount, "min_shares": 0}
    ),
    "remove": lambda amount, _: Msg(
        "dex.remove", {"a": "cyb", "b": "h", "shares": amount // 4 + 1, "min_a": 0, "min_b": 0}
    ),
    # CAROL is the dealer; the others are refused.
    "mint": lambda amount, _: Msg("dex.mint", {"amount": amount}),
    "redeem": lambda amount, _: Msg("dex.redeem", {"amount": amount}),
}


def op_message(kind: str, amount: int, other: KeyPair) -> Msg:
    return OP_MESSAGES[kind](amount, other)


op_strategy = st.tuples(
    st.integers(0, 2),
    st.sampled_from(sorted(OP_MESSAGES)),
    st.integers(1, 10**9),
    st.integers(0, 2),
)


@dataclass
class Holdings:
    h_held: int
    h_supply: int
    cyb: int


def holdings(chain: Chain) -> Holdings:
    """Every holding of H and CYB, summed from the state's keys."""
    with chain.reader() as r:
        h_balances = sum(
            int(decode(v, "balance"))
            for k, v in r.items(BALANCE_PREFIX)
            if k[len(BALANCE_PREFIX) + 20 :] == b"h"
        )
        accounts = [decode(v, "account") for _, v in r.items(ACCOUNT_PREFIX)]
        liquid = sum(a[0] for a in accounts)
        bonded = sum(a[2] for a in accounts)
        unbonding = sum(int(decode(v, "unbonding")) for _, v in r.items(UNBOND_PREFIX))
        pools = [
            get_pool(r, *k[len(POOL_PREFIX) :].decode().split("|")) for k, _ in r.items(POOL_PREFIX)
        ]
        pool_h = sum(p.reserve_a if p.a == "h" else p.reserve_b for p in pools if "h" in (p.a, p.b))
        pool_cyb = sum(
            p.reserve_a if p.a == "cyb" else p.reserve_b for p in pools if "cyb" in (p.a, p.b)
        )
        raw_reserve = r.get(RESERVE_KEY)
        reserve = 0 if raw_reserve is None else int(decode(raw_reserve, "reserve"))
        # Pin escrows: no transaction here opens one.
        assert not list(r.items(b"/kv/pins/req/"))
        totals = read_totals(r)
        held = 0 if totals is None else totals.held
        # Every account's claim on the reward pool, as settling it now would give.
        owed = 0
        for k, v in r.items(rewards.ACCOUNT_REWARD_PREFIX):
            e = rewards.Earner(*decode(v, "reward"))
            stake = get_account(r, k[len(rewards.ACCOUNT_REWARD_PREFIX) :]).bonded
            owed += e.accrued + stake * (totals.index - e.index_at) // rewards.SCALE
        # Pool shares: holders' plus the 1,000 locked, the supply and the pool's count.
        for p in pools:
            denom = f"lp/{p.a}/{p.b}".encode()
            held_shares = sum(
                int(decode(v, "balance"))
                for k, v in r.items(BALANCE_PREFIX)
                if k[len(BALANCE_PREFIX) + 20 :] == denom
            )
            assert held_shares + 1_000 == supply_of(r, denom.decode()) == p.shares
        h_supply = supply_of(r, "h")
    assert 0 <= owed <= held, (owed, held)
    return Holdings(
        h_held=h_balances + pool_h + held,
        h_supply=h_supply,
        cyb=liquid + bonded + unbonding + pool_cyb + reserve,
    )


def reported_h(result: BlockResult) -> int:
    """The change of H's supply the block's events report, tenure aside."""
    change = 0
    for receipt in result.receipts:
        for e in receipt.events:
            if e["type"] == "rewards.claim":
                change += e["learning"]
            elif e["type"] == "dealer.mint":
                change += e["h"]
            elif e["type"] == "dealer.redeem":
                change -= e["h"]
    event = economy_event(result)
    change += event["minted_h"]
    if event["sold_h"] and not event["burned_cyb"]:
        change -= event["sold_h"]  # the pool could not take it: burned
    # The stake share with nothing bonded is burned: it is what to_stake lacks.
    change -= event["base_fees"] - event["sold_h"] + event["minted_h"] - event["to_stake"]
    return change


def run_supply_blocks(blocks: list[list[tuple[int, str, int, int]]]) -> None:
    rate, ramp = 50_000, 4
    genesis = econ_genesis(
        [(ALICE, 10**13, 10**6, 10**13), (BOB, 10**13, 0, 10**13), (CAROL, 10**13, 5, 10**13)],
        h_mint_per_block=1_001,
        tenure_rate_ppb=rate,
        tenure_ramp_blocks=ramp,
        dex_protocol_bps=1_667,
        dex_dealers=[{"address": CAROL.address, "quota": 10**10}],
        evidence_max_age=1,
        epoch_blocks=1,
        unbonding_blocks=3,
    )
    lots = {ALICE.address_raw: [[0, 10**6]], CAROL.address_raw: [[0, 5]]}
    tenure = TenureModel(rate, ramp, lots=lots, last=dict.fromkeys(lots, 0))
    with tempfile.TemporaryDirectory() as d:
        econ = Econ(Path(d), genesis)
        try:
            supply_blocks(econ, blocks, tenure)
        finally:
            econ.close()


def supply_blocks(
    econ: Econ, blocks: list[list[tuple[int, str, int, int]]], tenure: TenureModel
) -> None:
    """Run ``blocks`` after the pool's; after each, check the supply and holdings."""
    create = Msg("dex.create", {"a": "cyb", "b": "h", "amount_a": 10**10, "amount_b": 10**10})
    before = holdings(econ.chain)
    assert before.h_held == before.h_supply
    plan = [[(0, "create", 0, 0)], *blocks]
    for ops in plan:
        height = econ.chain.height + 1
        txs = []
        for actor, kind, amount, other in ops:
            msg = create if kind == "create" else op_message(kind, amount, ACTORS[other])
            txs.append(econ.tx(ACTORS[actor], msg))
        bonded_before = {k.address_raw: econ.account(k).bonded for k in ACTORS}
        result = econ.block(txs)
        assert not result.rejected
        minted_tenure = 0
        bonded = dict(bonded_before)
        for (actor, kind, amount, _), receipt in zip(ops, result.receipts, strict=True):
            address = ACTORS[actor].address_raw
            if receipt.code != "ok" or kind not in ("stake", "unstake", "claim"):
                continue
            if kind == "claim":
                minted_tenure += tenure.settle(address, height)
                continue
            now = bonded[address] + (amount if kind == "stake" else -amount)
            minted_tenure += tenure.bonded_change(address, bonded[address], now, height)
            bonded[address] = now
        assert bonded == {k.address_raw: econ.account(k).bonded for k in ACTORS}
        after = holdings(econ.chain)
        assert after.h_held == after.h_supply
        assert after.h_supply - before.h_supply == reported_h(result) + minted_tenure
        assert before.cyb - after.cyb == economy_event(result)["burned_cyb"]
        before = after


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(st.lists(op_strategy, max_size=6), min_size=2, max_size=6))
def test_supply_follows_the_events_after_every_block(blocks):
    run_supply_blocks(blocks)


def test_supply_follows_the_events_through_unbonding_and_dealers():
    """A fixed sequence through the paths the random one may miss: stake,
    unbonding to zero and its release, dealer mint and redeem, claims, a
    swap that trips the breaker (the buyback then burns H), and blocks with
    nothing bonded (the stake share is burned)."""
    run_supply_blocks(
        [
            [(1, "stake", 10**6, 0), (2, "mint", 10**6, 0), (0, "swap_in", 10**6, 0)],
            [(1, "unstake", 10**6, 0), (2, "redeem", 10**5, 0), (0, "claim", 0, 0)],
            [(0, "add", 10**7, 0), (2, "claim", 0, 0), (1, "claim", 0, 0)],
            [(0, "remove", 10**6, 0), (0, "swap_out", 10**4, 0), (1, "swap_in", 5 * 10**9, 0)],
            [(1, "stake", 5, 0), (0, "send_h", 7, 1), (1, "send_cyb", 9, 2)],
            [(1, "claim", 0, 0), (0, "unstake", 10**6, 0), (1, "unstake", 5, 0)],
            [(2, "unstake", 5, 0)],
            [(0, "send_h", 1, 2)],
        ]
    )


def grammar_denom(text: str) -> bool:
    """docs/economics.md's denoms, by brute force: a lowercase letter and up to
    15 more letters or digits (not ``lp``), or ``lp/<a>/<b>`` of two, split at
    any ``/``."""
    if not text:
        return False
    if "/" not in text:
        return (
            text != "lp"
            and text[0].isalpha()
            and len(text) <= 16
            and all(c.islower() or c.isdigit() for c in text)
            and text.isascii()
        )
    if not text.startswith("lp/"):
        return False
    rest = text[3:]
    return any(
        rest[i] == "/" and grammar_denom(rest[:i]) and grammar_denom(rest[i + 1 :])
        for i in range(len(rest))
    )


def test_denoms_are_read_by_their_grammar_in_linear_time():
    """Every short text is a denom exactly when the grammar derives it, and a
    deeply nested text of the longest length is judged at once (a reading that
    tries every split takes time exponential in the nesting: one message
    could hold every validator)."""
    rng = random.Random(3)
    pieces = ["lp/", "lp", "/", "a", "b", "h", "1", "cyb", "Z", ""]
    texts = ["lp/cyb/h", "lp/lp/a/b/c", "lp/a/lp/b/c", "lp/a/b/c", "a" * 16, "a" * 17]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 9))) for _ in range(20_000)]
    for text in texts:
        assert is_denom(text) == grammar_denom(text), text
    nested = "lp/" * 20 + "a" + "/a" * 20
    assert len(nested) <= 128 and is_denom(nested)
    hard = [("lp/" * n + "a/" * n)[:128] for n in range(10, 43)]
    hard += [("lp/" * n + "a")[:128] for n in range(10, 43)]
    started = time.perf_counter()
    assert not any(is_denom(text) for text in hard)
    assert time.perf_counter() - started < 0.5


# --- 5. refusals ----------------------------------------------------------------------


def test_claim_with_nothing_earned_changes_only_fee_and_nonce(open_econ, tmp_path):
    genesis = econ_genesis(
        [(ALICE, PLENTY, 10**6, PLENTY), (BOB, PLENTY, 0, PLENTY)], h_mint_per_block=1_000
    )
    econ = open_econ(tmp_path, genesis)
    econ.block()
    for sender in (BOB, ALICE):  # never staked; staked, but claims twice in a block
        claims = 1 if sender is BOB else 2
        txs = [econ.tx(sender, Msg("rewards.claim", {})) for _ in range(claims)]
        account = econ.account(sender)
        h = econ.h(sender.address_raw)
        with econ.chain.reader() as r:
            earner = rewards.earner(r, sender.address_raw)
        held = econ.totals().held
        result = econ.block(txs)
        last = result.receipts[-1]
        assert last.code == "nothing_to_claim"
        assert last.events == []
        paid = sum(e["stake"] for r in result.receipts[:-1] for e in r.events)
        # The pool gives what the first claim took and gets the block's share.
        assert econ.totals().held == held - paid + economy_event(result)["to_stake"]
        after = econ.account(sender)
        assert after.nonce == account.nonce + len(txs)
        assert (after.balance, after.bonded) == (account.balance, account.bonded)
        assert econ.h(sender.address_raw) == h - FEE * len(txs) + paid
        with econ.chain.reader() as r:
            now = rewards.earner(r, sender.address_raw)
        if sender is BOB:
            assert earner is None and now is None
        else:
            assert paid > 0
            # Tenure is paid for the blocks that ended: up to the claim's parent.
            assert now.accrued == 0 and now.last_height == econ.chain.height - 1


def test_claim_on_a_one_token_chain_is_nothing_to_claim(open_econ, tmp_path):
    genesis = econ_genesis([(ALICE, PLENTY, 10**6, 0)], economics=0)
    econ = open_econ(tmp_path, genesis)
    econ.block()
    account = econ.account(ALICE)
    result = econ.block([econ.tx(ALICE, Msg("rewards.claim", {}), fee=1_000)])
    assert result.receipts[0].code == "nothing_to_claim"
    after = econ.account(ALICE)
    assert after.nonce == account.nonce + 1
    assert after.balance == account.balance - 1_000
    assert after.bonded == account.bonded
    assert not [e for e in result.events if e.get("type") == "economy"]
    with econ.chain.reader() as r:
        assert read_totals(r) is None
        assert supply_of(r, "h") == 0


def test_the_fee_comes_out_of_h_to_the_last_unit(open_econ, tmp_path):
    """An account holding one unit of H less than its fee is refused; holding
    exactly the fee, it pays it and is left with none."""
    genesis = econ_genesis([(ALICE, PLENTY, 10**6, PLENTY), (BOB, PLENTY, 0, 10**6)])
    econ = open_econ(tmp_path, genesis)
    short = econ.tx(BOB, send_h(ALICE), fee=10**6 + 1)
    econ.forget_nonces()
    exact = econ.tx(BOB, Msg("send", {"to": ALICE.address_raw, "amount": 5}), fee=10**6)
    result = econ.block([short])
    assert [r.error.code for r in result.rejected] == ["insufficient_funds"]
    result = econ.block([exact])
    assert [r.code for r in result.receipts] == ["ok"]
    assert econ.h(BOB.address_raw) == 0
    assert econ.account(BOB).balance == PLENTY - 5


def test_an_account_without_h_cannot_send_transactions(open_econ, tmp_path):
    genesis = econ_genesis([(ALICE, PLENTY, 10**6, PLENTY), (BOB, PLENTY, 10**6, 0)])
    econ = open_econ(tmp_path, genesis)
    econ.block()
    runtime = SimpleNamespace(chain=econ.chain)
    assert NodeRuntime.account_of(runtime, BOB.address_raw).balance == 0  # its H
    raw = econ.tx(BOB, Msg("send", {"to": ALICE.address_raw, "amount": 1}))
    pool = Mempool(CHAIN_ID, econ.params)
    pool.fee_per_byte = econ.fee_per_byte()
    with pytest.raises(Exception) as refused:
        pool.add(raw, lambda a: NodeRuntime.account_of(runtime, a))
    assert getattr(refused.value, "code", None) == "insufficient_funds"
    account = econ.account(BOB)
    result = econ.block([raw])
    assert result.receipts == []
    assert [r.error.code for r in result.rejected] == ["insufficient_funds"]
    assert econ.account(BOB) == account
    assert account.balance == PLENTY and account.bonded == 10**6
