"""A network of rollups in one process for tests and benchmarks: a hub and B
rollup chains (this process their validator, a shared clock of a second a
block), a relayer per rollup on the ``rank`` port through in-process
endpoints, and one process's focus on the union of their links to compare the
hub's committed snapshot with."""

from __future__ import annotations

import itertools
import random
from pathlib import Path as FsPath
from typing import Any

from focusflow.chain import Genesis, Msg, make_tx
from focusflow.chain.chain import Chain
from focusflow.chain.rollup_engine import UNIT, rank_params
from focusflow.core.cid import raw_cid_bytes
from focusflow.focus.buckets import particle_bucket
from focusflow.focus.rollup_rank import union_focus
from focusflow.modules import ante, default_modules
from focusflow.node.relay import LocalEndpoint, Path, Relayer
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.rank import snapshot_entries, snapshot_record
from focusflow.store import Store
from focusflow.testing.chains import ALICE, BALANCE, STAKE, VALIDATOR

T0 = 1_700_000_000_000
HUB = "hub-rank"


def _ref(chain_id: str, bucket: int | None = None) -> dict[str, Any]:
    doc = {
        "chain_id": chain_id,
        "genesis_time_ms": T0,
        "validators": [{"public_key": VALIDATOR.public_key.hex(), "power": 1}],
    }
    return doc if bucket is None else {"bucket": bucket, **doc}


def _genesis(chain_id: str, bucket: int | None, mode: str, buckets: int) -> Genesis:
    section: dict[str, Any] = {
        "role": "hub" if bucket is None else "rollup",
        "buckets": buckets,
        "merge_interval_ms": 100,
        "hub": _ref(HUB),
        "rollups": [_ref(f"r{b}", b) for b in range(buckets)],
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


class RankNet:
    """A hub and ``buckets`` rollups sharing one clock (a second a block)."""

    def __init__(self, path: FsPath, mode: str, buckets: int = 2) -> None:
        self.mode = mode
        self.buckets = buckets
        self.ticks = itertools.count(1)
        ids = [HUB, *(f"r{b}" for b in range(buckets))]
        self.chains = [
            Chain(
                Store(path / cid),
                _genesis(cid, None if i == 0 else i - 1, mode, buckets),
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
        for b in range(self.buckets):
            mine = [[s, d] for s, d in pairs if particle_bucket(s, self.buckets) == b]
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

    def channels(self) -> None:
        """Open every rollup's channel to the hub."""
        for relayer in self.relayers:
            relayer.channel()

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
    """``m`` distinct links among ``n`` particles, drawn from ``seed``."""
    rng = random.Random(seed)
    cids = [raw_cid_bytes(f"p{seed}-{i}".encode()) for i in range(n)]
    out: set[tuple[bytes, bytes]] = set()
    while len(out) < m:
        a, b = rng.sample(cids, 2)
        out.add((a, b))
    return sorted(out)
