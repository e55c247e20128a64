"""The rollups' focus exchange on chains: a hub and two rollups in one process,
a relayer per rollup carrying rank and inflow packets (each proven on chain),
and the hub's committed global snapshot compared with one process's focus on
the union of the rollups' links."""

from __future__ import annotations

import itertools
import random

import pytest

from focusflow.chain import Genesis, Msg
from focusflow.chain.chain import Chain
from focusflow.chain.committer import BLOCK_EVENTS_PREFIX
from focusflow.chain.rollup_engine import UNIT, rank_params
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import decode
from focusflow.focus.buckets import particle_bucket
from focusflow.focus.rollup_rank import union_focus
from focusflow.modules import ante, default_modules
from focusflow.modules.rank_hub import demand_shares
from focusflow.node.relay import LocalEndpoint, Path, Relayer
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.ibc import decode_ack
from focusflow.state_schema.rank import (
    PENDING_KEY,
    POOL_ADDRESS,
    snapshot_entries,
    snapshot_record,
)
from focusflow.store import Store, height_key
from focusflow.testing.chains import ALICE, BALANCE, STAKE, VALIDATOR, make_tx

T0 = 1_700_000_000_000
HUB = "hub-rank"
BUCKETS = 2


def _ref(chain_id: str, bucket: int | None = None) -> dict:
    doc = {
        "chain_id": chain_id,
        "genesis_time_ms": T0,
        "validators": [{"public_key": VALIDATOR.public_key.hex(), "power": 1}],
    }
    return doc if bucket is None else {"bucket": bucket, **doc}


def _genesis(chain_id: str, bucket: int | None, mode: str) -> Genesis:
    section: dict = {
        "role": "hub" if bucket is None else "rollup",
        "buckets": BUCKETS,
        "merge_interval_ms": 100,
        "hub": _ref(HUB),
        "rollups": [_ref(f"r{b}", b) for b in range(BUCKETS)],
    }
    if bucket is not None:
        section["bucket"] = bucket
    return Genesis.from_json(
        {
            "chain_id": chain_id,
            "genesis_time_ms": T0,
            "params": {"focus": {"mode": mode, "arithmetic": "exact-v2"}},
            "accounts": [{"address": ALICE.address, "balance": BALANCE, "stake": STAKE}],
            "validators": [{"name": "v", "public_key": VALIDATOR.public_key.hex(), "power": 1}],
            "interchain": section,
        }
    )


class Net:
    """A hub and two rollups sharing one clock (a second a block)."""

    def __init__(self, tmp_path, mode: str) -> None:
        self.mode = mode
        self.ticks = itertools.count(1)
        ids = [HUB, *(f"r{b}" for b in range(BUCKETS))]
        self.chains = [
            Chain(
                Store(tmp_path / cid),
                _genesis(cid, None if i == 0 else i - 1, mode),
                default_modules(),
                ante,
                validator_key=VALIDATOR,
            )
            for i, cid in enumerate(ids)
        ]
        self.ends = [LocalEndpoint(c, ALICE, self.clock) for c in self.chains]
        self.relayers = [Relayer(self.ends[0], e, Path("rank", "rank")) for e in self.ends[1:]]
        self.nonces = [0] * len(self.chains)
        self.links: list[tuple[bytes, bytes, bytes]] = []

    def clock(self) -> int:
        return T0 + 1000 * next(self.ticks)

    def nonce(self, i: int) -> int:
        with self.chains[i].reader() as r:
            return get_account(r, ALICE.address_raw).nonce

    def link(self, pairs: list[tuple[bytes, bytes]]) -> None:
        """Each link on the rollup that owns it."""
        for b in range(BUCKETS):
            mine = [[s, d] for s, d in pairs if particle_bucket(s, BUCKETS) == b]
            if not mine:
                continue
            chain = self.chains[b + 1]
            tx = make_tx(
                ALICE, chain.chain_id, self.nonce(b + 1), 1_000_000, [Msg("link", {"links": mine})]
            )
            result = chain.produce_block([tx.encoded], time_ms=self.clock())
            assert [r.code for r in result.receipts] == ["ok"], result.receipts
            self.links += [(s, d, ALICE.address_raw) for s, d in mine]

    def step(self) -> None:
        for relayer in self.relayers:
            relayer.step()
        for chain in self.chains:
            chain.produce_block([], time_ms=self.clock())

    def snapshot(self) -> tuple[int, dict[bytes, int]]:
        with self.chains[0].reader() as r:
            record = snapshot_record(r)
            if record is None:
                return -1, {}
            return record.round, dict(snapshot_entries(r, record))

    def l1(self) -> float:
        params = rank_params(self.chains[0].params.focus)
        ref = union_focus(self.links, {ALICE.address_raw: STAKE}, params)
        _, snap = self.snapshot()
        keys = set(ref) | set(snap)
        return sum(abs(snap.get(k, 0) / UNIT - ref.get(k, 0.0)) for k in keys)


def random_links(seed: int, n: int = 60, m: int = 180) -> list[tuple[bytes, bytes]]:
    rng = random.Random(seed)
    cids = [raw_cid_bytes(f"p{seed}-{i}".encode()) for i in range(n)]
    out = set()
    while len(out) < m:
        a, b = rng.sample(cids, 2)
        out.add((a, b))
    return sorted(out)


@pytest.mark.parametrize(("mode", "rounds"), [("tri", 8), ("diffusion", 60)])
def test_the_hubs_snapshot_reaches_the_union_focus(tmp_path, mode, rounds):
    net = Net(tmp_path, mode)
    for relayer in net.relayers:
        relayer.channel()
    net.link(random_links(1))
    errors = []
    for _ in range(rounds):
        net.step()
        errors.append(net.l1())
    assert errors[-1] < 1e-4, errors
    assert net.snapshot()[0] >= 3
    # Links added after convergence move the snapshot to the new union focus.
    net.link(random_links(2, m=60))
    for _ in range(rounds):
        net.step()
    assert net.l1() < 1e-4


def test_a_packet_the_rollups_state_does_not_support_is_refused(tmp_path):
    """A rank packet whose claims break the bounds an honest rollup keeps (here:
    a particle of the other bucket) is acknowledged with rank_unsupported and
    changes nothing on the hub; the hub keeps merging the honest buckets."""
    net = Net(tmp_path, "diffusion")
    for relayer in net.relayers:
        relayer.channel()
    net.link(random_links(3))
    for _ in range(4):
        net.step()
    rollup = net.chains[1]
    module = next(m for m in rollup.modules if m.name == "interchain")
    engine_solve = module.rollup._engine

    def lying_engine(*args, **kwargs):
        cached = engine_solve(*args, **kwargs)
        honest = cached.engine.solve

        def solve(inflow):
            packet = honest(inflow)
            other = next(
                raw_cid_bytes(f"x{i}".encode())
                for i in range(100)
                if particle_bucket(raw_cid_bytes(f"x{i}".encode()), BUCKETS) == 1
            )
            packet["owned"] = sorted([*packet["owned"], [other, 1]])
            return packet

        cached.engine.solve = solve
        return cached

    module.rollup._engine = lying_engine
    round_before, snap_before = net.snapshot()
    honest_before = {c: v for c, v in snap_before.items() if particle_bucket(c, BUCKETS) == 1}
    for _ in range(3):
        net.step()
    acks = [decode_ack(raw) for _, raw in net.ends[0].acks("rank", "channel-0", 1, 256)]
    assert (False, b"rank_unsupported") in acks
    with net.chains[0].reader() as r:
        assert r.get(PENDING_KEY) is None
    round_after, snap_after = net.snapshot()
    assert all(particle_bucket(c, BUCKETS) == 0 or c in snap_before for c in snap_after)
    assert round_after > round_before  # the hub keeps merging
    assert {c for c in snap_after if particle_bucket(c, BUCKETS) == 1} == set(honest_before)


def _events(chain: Chain, kind: str) -> list[dict]:
    out = []
    with chain.reader() as r:
        for height in range(1, chain.height + 1):
            raw = r.index(BLOCK_EVENTS_PREFIX + height_key(height))
            out += [e for e in (decode(raw, "events") if raw else []) if e.get("type") == kind]
    return out


def test_the_demand_pool_is_split_by_focus_and_conserved_to_the_unit(tmp_path):
    net = Net(tmp_path, "tri")
    for relayer in net.relayers:
        relayer.channel()
    net.link(random_links(4))
    hub = net.chains[0]

    def pool(chain: Chain) -> int:
        with chain.reader() as r:
            return get_account(r, POOL_ADDRESS).balance

    for _ in range(6):
        net.step()
    collected = sum(e["amount"] for e in _events(hub, "rank.pool"))
    sent = sum(e["fees"] for e in _events(hub, "rank.merged"))
    assert collected > 0 and sent > 0
    in_flight = 0
    for channel in ("channel-0", "channel-1"):
        for packet in net.ends[0].packets("rank", channel, 256):
            in_flight += decode(packet.data, "inflow")["fees"]
    received = sum(pool(c) for c in net.chains[1:])
    assert collected == pool(hub) + sent
    assert sent == received + in_flight


def test_demand_shares_follow_the_weights_and_add_up_exactly():
    assert demand_shares(10, [1, 1, 1]) == [4, 3, 3]
    assert demand_shares(7, [0, 0]) == [4, 3]
    assert demand_shares(1000, [UNIT // 4, 3 * UNIT // 4]) == [250, 750]
    rng = random.Random(5)
    for _ in range(200):
        weights = [rng.randrange(0, 10**15) for _ in range(rng.randrange(1, 9))]
        pool = rng.randrange(0, 10**12)
        shares = demand_shares(pool, weights)
        assert sum(shares) == pool
        total = sum(weights) or 1
        assert all(abs(s - pool * w / total) <= 1 for s, w in zip(shares, weights, strict=True))
