"""The rollups' focus exchange on chains: a hub and two rollups in one process,
a relayer per rollup carrying rank and inflow packets (each proven on chain),
and the hub's committed global snapshot compared with one process's focus on
the union of the rollups' links."""

from __future__ import annotations

import random

import pytest

from focusflow.chain.chain import Chain
from focusflow.chain.committer import BLOCK_EVENTS_PREFIX
from focusflow.chain.rollup_engine import UNIT
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import decode
from focusflow.focus.buckets import particle_bucket
from focusflow.modules.rank_hub import demand_shares
from focusflow.state_schema.accounts import get_account
from focusflow.state_schema.ibc import decode_ack
from focusflow.state_schema.rank import FEES_PREFIX, PENDING_KEY, POOL_ADDRESS
from focusflow.store import height_key
from focusflow.testing.rank_net import RankNet as Net
from focusflow.testing.rank_net import random_links

BUCKETS = 2


@pytest.mark.parametrize(("mode", "rounds"), [("tri", 8), ("diffusion", 25)])
def test_the_hubs_snapshot_reaches_the_union_focus(tmp_path, mode, rounds):
    net = Net(tmp_path, mode)
    net.channels()
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
    net.channels()
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
    net.channels()
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
    with hub.reader() as r:
        in_flight = sum(int(decode(v, "fees")) for _, v in r.items(FEES_PREFIX))
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


def test_an_inflow_no_honest_hub_could_send_is_refused_and_the_rollup_goes_on(tmp_path):
    """A hub whose inflow names a particle of another bucket: the rollup refuses
    it in its acknowledgement (rank_unsupported), its blocks go on, and the next
    honest inflow is taken."""
    net = Net(tmp_path, "diffusion")
    net.channels()
    net.link(random_links(6))
    for _ in range(3):
        net.step()
    hub_module = next(m for m in net.chains[0].modules if m.name == "interchain")
    honest_engine = hub_module.hub._engine

    def lying_engine(*args, **kwargs):  # type: ignore[no-untyped-def]
        cached = honest_engine(*args, **kwargs)
        honest_inflow = cached.engine.inflow

        def inflow(bucket):  # type: ignore[no-untyped-def]
            doc = honest_inflow(bucket)
            other = next(
                raw_cid_bytes(f"o{i}".encode())
                for i in range(100)
                if particle_bucket(raw_cid_bytes(f"o{i}".encode()), BUCKETS) != bucket
            )
            doc["inflow"] = sorted([*doc["inflow"], [other, 1]])
            return doc

        cached.engine.inflow = inflow
        return cached

    hub_module.hub._engine = lying_engine
    for _ in range(3):
        net.step()
    rollup = net.chains[1]
    acks = [decode_ack(raw) for _, raw in net.ends[1].acks("rank", "channel-0", 1, 256)]
    assert (False, b"rank_unsupported") in acks
    height = rollup.height
    hub_module.hub._engine = honest_engine
    hub_module.hub._cache = None
    for _ in range(4):
        net.step()
    assert rollup.height > height
    assert not _events(rollup, "rank.failed")


def test_a_rank_larger_than_a_packet_travels_in_parts(tmp_path):
    """A bucket whose rank is several times one packet's limit: the rollup sends
    it in parts, the relayer carries them in transactions under the size limit,
    the hub puts them together, and the snapshot still reaches the union focus."""
    net = Net(tmp_path, "tri")
    net.channels()
    net.link(random_links(7, n=2500, m=7000))
    for _ in range(4):
        net.step()
    sent = _events(net.chains[1], "rank.sent")
    assert max(e["packets"] for e in sent) >= 2
    assert net.l1() < 1e-4


def test_parts_are_taken_in_order_only(tmp_path):
    from focusflow.chain.errors import MalformedMessageError
    from focusflow.chain.state import PendingState
    from focusflow.core.encoding import encode
    from focusflow.modules.rank_parts import PART_BYTES, split, take

    store: dict[bytes, bytes] = {}
    state = PendingState(store.get)
    message = bytes(range(256)) * (PART_BYTES // 100)
    parts = split(message)
    assert len(parts) == 3
    assert [take(state, b"/kv/p", p) for p in parts] == [None, None, message]
    assert take(state, b"/kv/p", split(b"one")[0]) == b"one"
    bad = [
        [parts[1]],  # not the first
        [parts[0], parts[2]],  # one skipped
        [parts[0], encode([1, 4, b"x"])],  # the count changed
        [encode([0, 10**6, b"x"])],  # too many parts
        [encode(["0", 1, b"x"])],  # not a part
    ]
    for sequence in bad:
        state = PendingState(store.get)
        with pytest.raises(MalformedMessageError):
            for p in sequence:
                take(state, b"/kv/p", p)
        assert state.get(b"/kv/p") is None  # what was gathered is dropped


def test_relayers_opening_at_once_each_take_their_own_connection(tmp_path):
    """Two relayers open connections on the hub at the same time (one per
    rollup): each takes the connection its own step made, and a connection
    begun and not finished is taken up again rather than a new one begun."""
    from focusflow.chain import Msg
    from focusflow.testing.rank_net import HUB

    net = Net(tmp_path, "tri")
    hub_end = net.ends[0]
    submit = hub_end.submit
    raced: list[bool] = []

    def racing_submit(msgs):  # type: ignore[no-untyped-def]
        code = submit(msgs)
        if not raced and any(m.type == "ibc.conn_open_init" for m in msgs):
            raced.append(True)  # the other relayer's init lands before this one reads
            submit([Msg("ibc.conn_open_init", {"client": "r1", "counterparty_client": HUB})])
        return code

    hub_end.submit = racing_submit  # type: ignore[method-assign]
    net.channels()
    assert raced
    clients = sorted(end.client for _, end in hub_end.connections())
    assert clients == ["r0", "r1"]
    net.link(random_links(8))
    for _ in range(4):
        net.step()
    assert net.l1() < 1e-4
