"""The economy's books after every block of seeded random transactions.

A driver sends every message type of the bank, tokens, exchange, dealers,
rewards and governance (``send`` of every denom, ``stake``, ``unstake``,
``rewards.claim``, ``economy.vote``, ``dex.create`` / ``add`` / ``remove`` /
``swap`` / ``swap_out`` / ``mint`` / ``redeem``, ``link`` for karma), valid and
not (amounts past holdings, unknown pools, bad fields, non-members voting),
and slashes a validator once from duplicate-vote evidence. After every block,
from the state's keys and the block's events alone:

* each denom's holdings (liquid balances, bonded, unbonding, pool reserves,
  the dealer reserve, the reward pool's ``held``, pool shares locked at
  creation) equal its recorded supply, and CYB's equal the genesis total less
  what the events say was burned (buyback, links, slashing);
* H's supply moves by what the events report: ``minted_h`` less ``burned_h``,
  tenure minted, learning, dealers' mints less their redemptions;
* the reward pool's totals count every bonded unit, ``held`` covers what every
  account would be paid if settled now and exceeds it by no more than one unit
  per floor taken (a block's index step, a settlement), no block's transient
  low survives it, and every tenure record is well formed;
* each pool's shares are its share supply, and its ``k`` per share squared
  never falls;
* every receipt's code is ``ok`` or a code docs/errors.md lists, and no block raises.

``test_economy_books_hold_after_every_block`` is the bounded run (three seeds
of 40 blocks, a few seconds); ``test_economy_books_hold_over_many_seeds``
(``slow``) runs 40 seeds of 200 blocks.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.pending import BlockResult
from focusflow.chain.tx import decode_tx
from focusflow.consensus import DuplicateVoteEvidence, Step, Vote
from focusflow.core.encoding import decode
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair
from focusflow.modules import EconomyParams, amm, dex, rewards
from focusflow.state_schema.accounts import ACCOUNT_PREFIX
from focusflow.state_schema.dex import POOL_PREFIX
from focusflow.state_schema.rewards import read_totals
from focusflow.state_schema.staking import UNBOND_PREFIX
from focusflow.state_schema.tokens import BALANCE_PREFIX, SUPPLY_PREFIX, supply_of
from focusflow.testing.chains import CHAIN_ID, VALIDATOR, particle
from tests.chain.test_economy import Econ, key

DOCS = Path(__file__).resolve().parents[2] / "docs"
ACTORS = [key(f"actor{i}") for i in range(6)]
DEALER = ACTORS[0]
#: A validator of little power with an account: slashed once per run.
BYZ = key("byzantine")
SENDERS = [*ACTORS, BYZ, VALIDATOR]  # recipients
BASE_DENOMS = ["cyb", "h", "v"]
LINK_BURN = 3
GENESIS_CYB = 10**13
PARTICLES = [particle(f"p{i}") for i in range(8)]


#: The first block opens the pools the buyback and most routes go through.
OPENING = [
    (ACTORS[1], Msg("dex.create", {"a": "cyb", "b": "h", "amount_a": 10**11, "amount_b": 10**11})),
    (ACTORS[2], Msg("dex.create", {"a": "h", "b": "v", "amount_a": 10**11, "amount_b": 10**10})),
]


def documented_codes() -> set[str]:
    """Every code docs/errors.md's table lists."""
    text = (DOCS / "errors.md").read_text()
    return set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))


def conservation_genesis(rng: random.Random) -> Genesis:
    """Six actors (the first a dealer), a small validator to slash, and the
    economy's rules all on: mint, tenure with a short ramp, learning, rebates,
    the protocol's swap fee, breakers, dealers."""
    accounts = []
    for k in [*ACTORS, BYZ]:
        stake = rng.choice([0, 1, 10**6, 10**9])
        accounts.append(
            {
                "address": k.address,
                "balance": GENESIS_CYB - stake,
                "stake": stake if k is not BYZ else 10**8,
                "tokens": {"h": 10**13, "v": 10**12},
            }
        )
    # The validator that signs every block keeps far more than 2/3 of the power
    # whatever the small one stakes; it never unstakes.
    accounts[-1]["balance"] = 10**6
    accounts.append({"address": VALIDATOR.address, "balance": 0, "stake": 10**11})
    return Genesis.from_json(
        {
            "chain_id": CHAIN_ID,
            "genesis_time_ms": 1_700_000_000_000,
            "params": {
                "focus": {"mode": "diffusion"},
                "economics": 1,
                "fee_base": 1_000,
                "gas_target_bytes": 1_500,
                "h_mint_per_block": 1_001,
                "tenure_rate_ppb": 10**6,
                "tenure_ramp_blocks": rng.choice([1, 3, 6]),
                "learning_per_block": 10**9,
                "learning_window": 20,
                "spend_rebate_bps": rng.choice([0, 1_500]),
                "dex_protocol_bps": rng.choice([0, 1_667]),
                "dex_breaker_bps": rng.choice([300, 2_000]),
                "dex_breaker_blocks": 1,
                "dex_twap_window_ms": 8_000,
                "dealer_period": 4,
                "dex_dealers": [{"address": DEALER.address, "quota": 10**10}],
                "link_burn": LINK_BURN,
                "evidence_max_age": 3,
                "epoch_blocks": 1,
                "unbonding_blocks": 5,
            },
            "accounts": accounts,
            "validators": [
                {"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 100},
                {"name": "byz", "public_key": BYZ.public_key.hex(), "power": 1},
            ],
        }
    )


# --- the messages ---------------------------------------------------------------------


def amount(rng: random.Random) -> int:
    """Log-uniform from 1 to 10^13, now and then an edge."""
    if rng.random() < 0.05:
        return rng.choice([1, 2, 999, 1_000, 1_001, 2**63 - 1])
    return max(1, int(10 ** rng.uniform(0, 13)))


@dataclass
class Market:
    """The pools open before the block: their pairs, and every denom to draw."""

    pairs: list[tuple[str, str]]

    @property
    def denoms(self) -> list[str]:
        return [*BASE_DENOMS, *(dex.share_denom(a, b) for a, b in self.pairs)]

    def denom(self, rng: random.Random) -> str:
        return rng.choice([*BASE_DENOMS, *self.denoms, "w"])

    def pair(self, rng: random.Random) -> tuple[str, str]:
        """Mostly an open pool's pair (either way round), else any two denoms."""
        if self.pairs and rng.random() < 0.75:
            a, b = rng.choice(self.pairs)
            return (a, b) if rng.random() < 0.5 else (b, a)
        a = self.denom(rng)
        return a, rng.choice([d for d in [*self.denoms, "w"] if d != a])

    def path(self, rng: random.Random, longest: int) -> list[str]:
        """Mostly a walk through open pools, 1 to ``longest`` hops, else any denoms."""
        if not self.pairs or rng.random() < 0.2:
            return rng.sample([*self.denoms, "w"], k=min(rng.randint(2, longest + 1), 4))
        path = list(self.pair(rng))
        for _ in range(rng.randint(0, longest - 1)):
            ahead = [b for a, b in self.pairs if a == path[-1]]
            ahead += [a for a, b in self.pairs if b == path[-1]]
            ahead = [d for d in ahead if d not in path]
            if not ahead:
                break
            path.append(rng.choice(ahead))
        return path


def bad_body(rng: random.Random) -> dict[str, Any]:
    """A body no handler takes."""
    return rng.choice(
        [
            {"amount": 0},
            {"amount": -5},
            {"amount": "7"},
            {"nope": 1},
            {"a": "BAD", "b": "h", "amount_a": 5, "amount_b": 5},
            {"path": ["h"], "amount_in": 5, "min_out": 0},
            {"path": ["h", "h"], "amount_in": 5, "min_out": 0},
            {"params": {"economics": 0}},
            {"params": {"split_base_bps": 20_000}},
            {"links": [[b"\0", b"\0"]]},
        ]
    )


def random_msg(rng: random.Random, kind: str, market: Market) -> Msg:
    """One message of type ``kind``, mostly well formed."""
    if rng.random() < 0.05:
        return Msg(kind, bad_body(rng))
    return Msg(kind, BODIES[kind](rng, market))


def _send(rng: random.Random, market: Market) -> dict[str, Any]:
    body: dict[str, Any] = {"to": rng.choice(SENDERS).address_raw, "amount": amount(rng)}
    d = market.denom(rng)
    if d != "cyb" or rng.random() < 0.5:
        body["denom"] = d
    return body


def _vote(rng: random.Random, market: Market | None = None) -> dict[str, Any]:
    name, values = rng.choice(
        [
            ("split_base_bps", [0, 2_500, 5_000, 10_000]),
            ("split_slope_bps", [0, 10_000, 30_000]),
            ("h_mint_per_block", [0, 1_001, 10**6]),
            ("tenure_rate_ppb", [0, 10**6, 10**8]),
            ("tenure_ramp_blocks", [1, 4, 12]),
            ("spend_rebate_bps", [0, 3_000]),
            ("dex_fee_bps", [0, 30, 500]),
            ("dex_breaker_bps", [0, 300, 2_000]),
            ("learning_per_block", [0, 10**9]),
        ]
    )
    return {"params": {name: rng.choice(values)}}


def _swap(rng: random.Random, market: Market) -> dict[str, Any]:
    path = market.path(rng, 3)
    return {"path": path, "amount_in": amount(rng), "min_out": rng.choice([0, 0, 10**12])}


def _swap_out(rng: random.Random, market: Market) -> dict[str, Any]:
    path = market.path(rng, 2)
    cap = rng.choice([10**13, 10**13, 10**5])
    return {"path": path, "amount_out": int(10 ** rng.uniform(0, 10)), "max_in": cap}


def _pool_body(rng: random.Random, market: Market, fields: tuple[str, ...]) -> dict[str, Any]:
    a, b = market.pair(rng)
    body: dict[str, Any] = {"a": a, "b": b}
    for name in fields:
        body[name] = rng.choice([0, 0, 0, 1, 10**12]) if name.startswith("min") else amount(rng)
    return body


def _create(rng: random.Random, market: Market) -> dict[str, Any]:
    """Mostly a pair without a pool (else ``pool_exists``)."""
    a = market.denom(rng)
    b = rng.choice([d for d in [*market.denoms, "w"] if d != a])
    return {"a": a, "b": b, "amount_a": amount(rng), "amount_b": amount(rng)}


BODIES: dict[str, Callable[[random.Random, Market], dict[str, Any]]] = {
    "send": _send,
    "stake": lambda rng, m: {"amount": amount(rng)},
    "unstake": lambda rng, m: {"amount": amount(rng)},
    "rewards.claim": lambda rng, m: {},
    "economy.vote": _vote,
    "dex.create": _create,
    "dex.add": lambda rng, m: _pool_body(rng, m, ("max_a", "max_b", "min_shares")),
    "dex.remove": lambda rng, m: {
        **_pool_body(rng, m, ("min_a", "min_b")),
        "shares": int(10 ** rng.uniform(0, 11)),
    },
    "dex.swap": _swap,
    "dex.swap_out": _swap_out,
    "dex.mint": lambda rng, m: {"amount": int(10 ** rng.uniform(0, 9))},
    "dex.redeem": lambda rng, m: {"amount": int(10 ** rng.uniform(0, 9))},
    "link": lambda rng, m: {"links": [rng.sample(PARTICLES, 2) for _ in range(rng.randint(1, 3))]},
}
#: The message types drawn, the common ones more often.
MESSAGE_KINDS = [*BODIES, "send", "stake", "unstake", "rewards.claim", "dex.swap", "dex.add"]


def sender_of(rng: random.Random, kinds: list[str]) -> KeyPair:
    """Mostly an actor (the dealer for the dealers' messages), now and then anyone."""
    if rng.random() < 0.1:
        return rng.choice([*ACTORS, BYZ])
    if {"dex.mint", "dex.redeem"} & set(kinds) and rng.random() < 0.8:
        return DEALER
    return rng.choice(ACTORS)


def random_tx(econ: Econ, rng: random.Random, market: Market) -> tuple[bytes, str]:
    """A transaction of one or two random messages (the block's validator votes
    and claims), and its messages' types."""
    if rng.random() < 0.04:
        msgs = [Msg("economy.vote", _vote(rng)), Msg("rewards.claim", {})]
        return econ.tx(VALIDATOR, *msgs), "economy.vote+rewards.claim"
    kinds = [rng.choice(MESSAGE_KINDS) for _ in range(rng.choice([1, 1, 1, 2]))]
    msgs = [random_msg(rng, k, market) for k in kinds]
    return econ.tx(sender_of(rng, kinds), *msgs), "+".join(kinds)


# --- the books ------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the events say happened, summed from genesis."""

    genesis_cyb: int
    burned_cyb: int = 0
    slashed: int = 0
    reserve: int = 0
    floors: int = 0
    blocks: int = 0
    ops: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    #: Transactions by their messages' types and outcome.
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)

    def h_change(self, result: BlockResult) -> int:
        """H's supply change the block's events report; adds CYB burns as it goes."""
        change = 0
        events = [e for r in result.receipts for e in r.events] + list(result.events)
        for e in events:
            change += e.get("tenure_minted", 0)
            kind = e.get("type")
            if kind == "rewards.claim":
                change += e["learning"]
            elif kind == "dealer.mint":
                change += e["h"]
                self.reserve += e["cyb"]
            elif kind == "dealer.redeem":
                change -= e["h"]
                self.reserve -= e["cyb"]
            elif kind == "economy":
                change += e["minted_h"] - e["burned_h"]
                self.burned_cyb += e["burned_cyb"]
            elif kind == "link":
                self.burned_cyb += e["count"] * LINK_BURN
            elif kind == "slash":
                self.burned_cyb += e["amount"]
                self.slashed += 1
            if kind in ("stake", "unstake", "rewards.claim", "slash"):
                self.floors += 2  # the settlement's floor, and the block end's for a rise
        self.floors += 1  # the block's index step
        return change


def holdings(econ: Econ) -> tuple[Counter[str], dict[str, int]]:
    """Every denom's holdings from the state's keys, and every recorded supply."""
    held: Counter[str] = Counter()
    with econ.chain.reader() as r:
        for _, raw in r.items(ACCOUNT_PREFIX):
            balance, _, bonded = decode(raw, "account")
            held["cyb"] += balance + bonded
        for _, raw in r.items(UNBOND_PREFIX):
            held["cyb"] += decode(raw, "unbonding")
        for k, raw in r.items(BALANCE_PREFIX):
            held[k[len(BALANCE_PREFIX) + 20 :].decode()] += decode(raw, "balance")
        for pool in pools_of(r):
            held[pool.a] += pool.reserve_a
            held[pool.b] += pool.reserve_b
            held[dex.share_denom(pool.a, pool.b)] += amm.MINIMUM_LIQUIDITY
        held["cyb"] += dex.dealer_reserve(r)
        totals = read_totals(r)
        held["h"] += 0 if totals is None else totals.held
        supplies = {
            k[len(SUPPLY_PREFIX) :].decode(): decode(v, "supply") for k, v in r.items(SUPPLY_PREFIX)
        }
    return held, supplies


def pools_of(r) -> list[dex.Pool]:
    found = []
    for k, _ in r.items(POOL_PREFIX):
        pool = dex.get_pool(r, *k[len(POOL_PREFIX) :].decode().split("|"))
        assert pool is not None
        found.append(pool)
    return found


def check_rewards(econ: Econ, ledger: Ledger) -> None:
    """The reward pool's totals and every earner's record."""
    params = econ.chain.params
    with econ.chain.reader() as r:
        totals = read_totals(r)
        assert totals is not None
        assert not list(r.items(rewards.BLOCK_LOW_PREFIX)), "a block's low outlived it"
        bonded = {
            k[len(ACCOUNT_PREFIX) :]: decode(v, "account")[2] for k, v in r.items(ACCOUNT_PREFIX)
        }
        assert totals.total_bonded == sum(bonded.values())
        owed = 0
        for k, v in r.items(rewards.ACCOUNT_REWARD_PREFIX):
            address = k[len(rewards.ACCOUNT_REWARD_PREFIX) :]
            e = rewards.Earner(*decode(v, "reward"))
            stake = bonded.get(address, 0)
            assert e.index_at <= totals.index
            owed += e.accrued + stake * (totals.index - e.index_at) // rewards.SCALE
            check_lots(e, stake, econ.chain.height, EconomyParams.of(params).tenure_ramp_blocks)
    assert owed <= totals.held, (owed, totals.held)
    # Each floor keeps under a unit: past settlements and index steps, and each
    # account's share floored here.
    slack = ledger.floors + len(bonded)
    assert totals.held - owed <= slack, (totals.held - owed, slack)


def check_lots(e: rewards.Earner, stake: int, height: int, ramp: int) -> None:
    """Lots are younger than the oldest, rising, positive, within the bound,
    and leave the oldest lot something; nothing bonded, no tenure."""
    if stake <= 0:
        assert e.tenure_start == -1 and e.lots == []
        return
    assert 0 <= e.tenure_start <= height
    starts = [e.tenure_start, *(s for s, _ in e.lots)]
    assert starts == sorted(set(starts)) and starts[-1] <= height
    assert all(a > 0 for _, a in e.lots)
    assert sum(a for _, a in e.lots) < stake
    assert len(e.lots) <= rewards.MAX_LOTS - 1


def k_per_share(econ: Econ) -> dict[str, tuple[int, int, int]]:
    with econ.chain.reader() as r:
        return {f"{p.a}|{p.b}": (p.reserve_a, p.reserve_b, p.shares) for p in pools_of(r)}


def check_block(
    econ: Econ, result: BlockResult, ledger: Ledger, before: dict[str, Any], codes: set[str]
) -> dict[str, Any]:
    """Every book after ``result``; returns what the next block compares with."""
    for receipt in result.receipts:
        assert receipt.code == "ok" or receipt.code in codes, (receipt.code, receipt.log)
        ledger.codes[receipt.code] += 1
    ledger.ops += len(result.receipts)
    ledger.blocks += 1
    change = ledger.h_change(result)
    held, supplies = holdings(econ)
    assert held.pop("cyb") == ledger.genesis_cyb - ledger.burned_cyb
    assert {d: n for d, n in held.items() if n} == supplies
    assert supplies["h"] - before["h"] == change
    with econ.chain.reader() as r:
        assert dex.dealer_reserve(r) == ledger.reserve
        for p in pools_of(r):
            assert p.shares == supply_of(r, dex.share_denom(p.a, p.b))
            assert p.reserve_a > 0 and p.reserve_b > 0
    check_rewards(econ, ledger)
    pools = k_per_share(econ)
    for name, (ra, rb, s) in pools.items():
        if name in before["pools"]:
            ra0, rb0, s0 = before["pools"][name]
            assert Fraction(ra * rb, s * s) >= Fraction(ra0 * rb0, s0 * s0), name
    return {"h": supplies["h"], "pools": pools}


def double_vote(height: int) -> DuplicateVoteEvidence:
    a = Vote.sign(BYZ, CHAIN_ID, height, 0, Step.PREVOTE, sha256(b"block a"))
    b = Vote.sign(BYZ, CHAIN_ID, height, 0, Step.PREVOTE, sha256(b"block b"))
    return DuplicateVoteEvidence.of(a, b)


def run_seed(path: Path, seed: int, blocks: int) -> Ledger:
    """``blocks`` blocks of random transactions under ``seed``, every book checked after each."""
    rng = random.Random(seed)
    genesis = conservation_genesis(rng)
    econ = Econ(path, genesis)
    codes = documented_codes()
    ledger = Ledger(sum(a.balance + a.stake for a in genesis.accounts))
    try:
        _, supplies = holdings(econ)
        before: dict[str, Any] = {"h": supplies["h"], "pools": {}}
        slash_at = rng.randint(3, max(3, blocks - 2))
        for height in range(1, blocks + 1):
            if height == slash_at:
                assert econ.chain.add_evidence(double_vote(height - 1))
            with econ.chain.reader() as r:
                market = Market([(p.a, p.b) for p in pools_of(r)])
            drawn = [(econ.tx(*o), "dex.create") for o in OPENING] if height == 1 else []
            drawn += [random_tx(econ, rng, market) for _ in range(rng.randint(0, 8))]
            txs = [raw for raw, _ in drawn]
            kinds = {decode_tx(raw, 1 << 20).hash: kind for raw, kind in drawn}
            result = econ.block(txs)
            before = check_block(econ, result, ledger, before, codes)
            for receipt in result.receipts:
                ledger.outcomes[kinds[receipt.tx_hash], receipt.code] += 1
    finally:
        econ.close()
    return ledger


def test_economy_books_hold_after_every_block(tmp_path):
    """Three seeds of 40 blocks: the books hold, and every message type was
    both taken and refused somewhere."""
    outcomes: Counter[tuple[str, str]] = Counter()
    for seed in (1, 2, 3):
        ledger = run_seed(tmp_path / str(seed), seed, 40)
        assert ledger.slashed == 1
        outcomes.update(ledger.outcomes)
    taken = {k for (kinds, code) in outcomes if code == "ok" for k in kinds.split("+")}
    refused = {k for (kinds, code) in outcomes if code != "ok" for k in kinds.split("+")}
    assert taken == refused == set(BODIES)
    assert outcomes.total() > 400


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100, 140))
def test_economy_books_hold_over_many_seeds(tmp_path, seed):
    """40 seeds of 200 blocks (about 36,000 transactions in all)."""
    ledger = run_seed(tmp_path, seed, 200)
    assert ledger.slashed == 1
    assert ledger.ops > 600
