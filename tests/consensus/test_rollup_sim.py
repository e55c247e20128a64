"""The rollup hierarchy simulator (focusflow.consensus.rollup_sim) on small networks.

Each test checks a property the benchmark's conclusions rest on: replay per seed,
latencies bounded below by the modelled fixed delays and above by them plus the
merge waits, faults that stay local (halted rollups, a partitioned region), the
2-of-3 rule of the global hubs, and a flat hub's verification load growing with
the number of rollups while a regional hub's does not.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from focusflow.consensus.rollup_sim import (
    Delay,
    Faults,
    Params,
    RollupSimulation,
    SimulationLimitError,
    fixed_path_s,
    simulate,
)
from focusflow.core.errors import InvalidParameterError

SMALL = Params(rollups=64, region_size=16, duration=14.0, warmup=2.0, drain=5.0)


def constant(p: Params) -> Params:
    """The same network with every delay constant (sigma 0) and no block jitter."""
    return replace(
        p,
        block_jitter=0.0,
        rollup_commit=replace(p.rollup_commit, sigma=0.0),
        regional_link=replace(p.regional_link, sigma=0.0),
        wan_link=replace(p.wan_link, sigma=0.0),
        hub_commit=replace(p.hub_commit, sigma=0.0),
        global_commit=replace(p.global_commit, sigma=0.0),
    )


def test_a_seed_replays_and_seeds_differ() -> None:
    a, b = simulate(SMALL, seed=7), simulate(SMALL, seed=7)
    assert a == b
    assert a.sync_delivered.count > 1000
    assert simulate(SMALL, seed=8) != a
    assert a.violations == ()


@pytest.mark.parametrize("topology", ["hierarchy", "flat"])
def test_latency_lies_between_the_fixed_delays_and_them_plus_the_waits(topology: str) -> None:
    p = replace(SMALL, topology=topology)
    hub_floor, back_floor = fixed_path_s(p)
    random_run = RollupSimulation(p, seed=3)
    random_run.run()
    assert random_run.sync_latencies(to="hub").count > 0
    assert min(x for xs in random_run.to_hub for x in xs) >= hub_floor
    assert min(x for xs in random_run.delivered for x in xs) >= back_floor

    # With constant delays and short merge intervals the latency is the fixed path
    # plus the medians plus at most one merge wait and one epoch wait (and a little
    # verification queueing): a stage dropped or added shows at one end.
    c = constant(replace(p, merge_interval=0.02, global_interval=0.02))
    sim = RollupSimulation(c, seed=3)
    report = sim.run()
    medians = (
        c.wan_link.median + c.global_commit.median
        if topology == "flat"
        else c.regional_link.median
        + c.hub_commit.median
        + c.wan_link.median
        + c.global_commit.median
        + 3 * c.wan_link.median
    )
    waits = c.merge_interval + (c.global_interval if topology == "hierarchy" else 0.0)
    back = c.wan_link.median + (c.regional_link.median if topology == "hierarchy" else 0.0)
    # Without jitter every rollup cuts at once: a packet may wait for all others of
    # its hub, an aggregate for those of all regions.
    size = c.rollups if topology == "flat" else c.region_size
    queueing = (size * c.packet_verify_s(0.0) + c.regions * c.aggregate_verify_s) / c.hub_cores
    assert report.sync_to_hub.count > 1000
    assert min(x for xs in sim.to_hub for x in xs) >= hub_floor + medians - 1e-9
    assert report.sync_to_hub.max <= hub_floor + medians + waits + queueing
    assert min(x for xs in sim.delivered for x in xs) >= back_floor + medians + back - 1e-9
    assert report.sync_delivered.max <= back_floor + medians + back + waits + queueing

    # At the default 1 s intervals the waits are real: latencies spread over them.
    spread = simulate(constant(p), seed=3).sync_to_hub
    assert spread.max - spread.p50 > 0.3 * (p.merge_interval)


def test_local_finality_is_the_window_plus_the_commit_round() -> None:
    c = constant(SMALL)
    report = simulate(c, seed=1)
    commit = c.rollup_commit.floor + c.rollup_commit.median
    assert report.local_finality.max <= commit + c.block_interval + 1e-9
    assert report.local_finality.p50 >= commit
    assert report.local_finality.p50 == pytest.approx(commit + c.block_interval / 2, abs=0.02)


def test_throughput_is_capacity_times_utilisation_of_the_running_rollups() -> None:
    p = replace(SMALL, utilisation=0.7)
    report = simulate(p, seed=1)
    assert report.links_per_s == pytest.approx(64 * 7000 * 0.7, rel=0.02)
    halted = simulate(p, seed=1, faults=Faults(halted_fraction=0.25, halt_at=0.0))
    assert halted.links_per_s == pytest.approx(48 * 7000 * 0.7, rel=0.02)


def test_halted_rollups_do_not_stall_the_others() -> None:
    base = simulate(SMALL, seed=5)
    faults = Faults(halted_fraction=0.25, halt_at=4.0)
    sim = RollupSimulation(SMALL, seed=5, faults=faults)
    report = sim.run()
    assert len(sim.halted) == 16
    others = [r for r in range(SMALL.rollups) if r not in sim.halted]
    theirs = sim.sync_latencies(others)
    assert sim.uncovered(others) == 0
    assert theirs.p99 <= base.sync_delivered.p99 * 1.15
    assert report.snapshots == base.snapshots
    # The halted rollups' buckets stay in every snapshot at their last height.
    for r in sim.halted:
        assert sim.covered[r] == len(sim.commits[r])
    assert report.violations == ()


@pytest.mark.parametrize("down", [0, 1, 2])
def test_one_global_hub_down_snapshots_still_complete(down: int) -> None:
    epochs = int(SMALL.duration / SMALL.global_interval)
    report = simulate(SMALL, seed=2, faults=Faults(global_down=frozenset({down})))
    assert report.failed_epochs == 0
    assert report.snapshots >= epochs - 3
    assert report.uncovered_blocks == 0
    assert report.sync_delivered.p99 < 4.0  # one epoch in three pays the view change
    assert report.violations == ()


def test_two_global_hubs_down_no_snapshot_is_global() -> None:
    epochs = int(SMALL.duration / SMALL.global_interval)
    report = simulate(SMALL, seed=2, faults=Faults(global_down=frozenset({0, 2})))
    assert report.snapshots == 0
    assert report.failed_epochs == epochs
    assert math.isinf(report.sync_delivered.p50)
    assert report.uncovered_blocks == report.local_finality.count


def test_all_three_rule_stops_with_one_hub_down() -> None:
    all_three = replace(SMALL, quorum=3)
    assert simulate(all_three, seed=2).snapshots > 0
    report = simulate(all_three, seed=2, faults=Faults(global_down=frozenset({1})))
    assert report.snapshots == 0


def test_a_partitioned_region_lags_alone_and_catches_up() -> None:
    p = replace(SMALL, duration=20.0)
    sim = RollupSimulation(p, seed=4, faults=Faults(partitions=((0, 4.0, 9.0),)))
    report = sim.run()
    region0 = sim.members[0]
    others = [r for r in range(p.rollups) if r not in region0]
    assert sim.sync_latencies(region0).max >= 4.0
    assert sim.sync_latencies(others).max < 4.0
    assert sim.uncovered() == 0  # after the heal its blocks are covered too
    # Nothing reaches the region's rollups during the partition: snapshots that
    # became global meanwhile are held and delivered after the heal.
    lo, hi = p.warmup, p.duration - p.drain
    for r in region0:
        commits = [c for c in sim.commits[r] if lo <= c <= hi]
        for c, latency in zip(commits, sim.delivered[r], strict=False):
            assert not 4.0 <= c + latency < 9.0
    assert report.violations == ()


def test_flat_hub_load_grows_linearly_regional_load_does_not() -> None:
    loads = []
    for n in (50, 100, 200):
        flat = Params(rollups=n, topology="flat", duration=8.0, warmup=2.0, drain=3.0)
        loads.append(simulate(flat, seed=1).hub_load)
        expected = n / flat.block_interval * flat.packet_verify_s(0.0)
        assert loads[-1] == pytest.approx(expected, rel=0.08)
    assert loads[1] / loads[0] == pytest.approx(2.0, rel=0.1)
    assert loads[2] / loads[0] == pytest.approx(4.0, rel=0.1)
    regional = [
        simulate(replace(SMALL, rollups=n, duration=8.0, drain=3.0), seed=1).hub_load
        for n in (64, 256)
    ]
    assert regional[1] == pytest.approx(regional[0], rel=0.15)


def test_an_overloaded_hub_falls_behind() -> None:
    flat = Params(
        rollups=200, topology="flat", hub_cores=1, header_signatures=15, duration=10.0, drain=3.0
    )
    report = simulate(flat, seed=1)
    assert report.hub_load > 1.0
    assert report.hub_backlog > 100
    assert report.uncovered_blocks > 0
    assert math.isinf(report.sync_delivered.p99)


def test_bounds_and_parameters_are_checked() -> None:
    with pytest.raises(SimulationLimitError):
        simulate(replace(SMALL, max_events=500), seed=1)
    for bad in (
        replace(SMALL, quorum=4),
        replace(SMALL, rollups=0),
        replace(SMALL, merge_interval=0.0),
        replace(SMALL, warmup=10.0, drain=5.0),
        replace(SMALL, utilisation=1.5),
    ):
        with pytest.raises(InvalidParameterError):
            simulate(bad)
    with pytest.raises(InvalidParameterError):
        simulate(SMALL, faults=Faults(global_down=frozenset({3})))
    with pytest.raises(InvalidParameterError):
        simulate(SMALL, faults=Faults(partitions=((9, 1.0, 2.0),)))


def test_delay_draws() -> None:
    import random

    rng = random.Random(0)
    assert Delay(0.1, 0.2, 0.0).draw(rng) == pytest.approx(0.3)
    draws = sorted(Delay(0.1, 0.2).draw(rng) for _ in range(2001))
    assert draws[0] >= 0.1
    assert draws[1000] == pytest.approx(0.3, abs=0.02)


def test_snapshots_reach_each_rollup_in_order() -> None:
    """The hub-to-rollup channel is ordered: a later snapshot (covering higher
    heights) never arrives before an earlier one."""
    sim = RollupSimulation(replace(SMALL, merge_interval=0.05, global_interval=0.05), seed=6)
    sim.run()
    lo, hi = SMALL.warmup, SMALL.duration - SMALL.drain
    for r in range(SMALL.rollups):
        commits = [c for c in sim.commits[r] if lo <= c <= hi]
        arrivals = [c + x for c, x in zip(commits, sim.delivered[r], strict=False)]
        assert arrivals == sorted(arrivals)
