"""Semantic rollups under regional and global hubs, simulated: latency, throughput, hub load.

Runs :mod:`focusflow.consensus.rollup_sim` (a seeded discrete-event model; its
docstring states every assumption) for a set of scenarios at ``--rollups``
rollups and prints three markdown tables:

1. per scenario: local finality, global rank sync (to the global hubs' agreement,
   and delivered back to the link's rollup), committed links/s, global snapshots,
   the busiest first-level hub's packets/s and verification load, and which of the
   design's targets (≤ 0.5 s local finality and ≤ 3 s global sync, both at p99;
   2.1·10⁸ links/s) the scenario meets;
2. fault locality: the sync latency of the rollups a fault hits beside the others';
3. hub verification load against the number of rollups, flat (one hub) and
   hierarchical (regional hubs of 32 rollups).

"vm" is the rollup measured on this project (7,000 links/s on a 2-vCPU VM, local
finality calibrated on the 4-validator loopback run); "gpu" is an assumed GPU
rollup at 2.1·10⁸ / 10³ = 210,000 links/s with a shorter BFT round.

Run from the repository root::

    python bench/rollup_sim.py                       # 1000 rollups, 60 simulated s
    python bench/rollup_sim.py --rollups 200 --seed 2 --duration 30
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

from focusflow.consensus.rollup_sim import (
    GPU_PROFILE,
    TARGET_LINKS_PER_S,
    VM_PROFILE,
    Faults,
    Params,
    Percentiles,
    RollupSimulation,
    simulate,
)


def fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    return "never" if math.isinf(x) else f"{x:.2f}"


def scenarios(n: int, duration: float) -> list[tuple[str, Params, Faults]]:
    vm = replace(VM_PROFILE, rollups=n, duration=duration)
    gpu = replace(GPU_PROFILE, rollups=n, duration=duration)
    third = duration / 3
    return [
        ("vm, merge 1 s", vm, Faults()),
        ("vm, merge 2 s", replace(vm, merge_interval=2.0, global_interval=2.0), Faults()),
        ("vm, merge 3 s", replace(vm, merge_interval=3.0, global_interval=3.0), Faults()),
        ("gpu, merge 1 s", gpu, Faults()),
        ("gpu, merge 1 s, utilisation 0.7", replace(gpu, utilisation=0.7), Faults()),
        ("gpu, merge 3 s", replace(gpu, merge_interval=3.0, global_interval=3.0), Faults()),
        ("gpu, regions of 64", replace(gpu, region_size=64), Faults()),
        ("gpu, all 3 global hubs must agree", replace(gpu, quorum=3), Faults()),
        ("gpu, 10% rollups halt at 1/3", gpu, Faults(halted_fraction=0.1, halt_at=third)),
        ("gpu, global hub 0 down", gpu, Faults(global_down=frozenset({0}))),
        ("gpu, global hubs 0 and 1 down", gpu, Faults(global_down=frozenset({0, 1}))),
        (
            "gpu, region 0 partitioned 10 s",
            gpu,
            Faults(partitions=((0, third, third + 10.0),)),
        ),
        ("gpu, flat (one hub)", replace(gpu, topology="flat"), Faults()),
        ("gpu, 21-validator rollups", replace(gpu, header_signatures=15), Faults()),
        (
            "gpu, flat, 21-validator rollups",
            replace(gpu, topology="flat", header_signatures=15),
            Faults(),
        ),
        ("gpu, hub hashes each Δ-rank entry", replace(gpu, delta_entries_per_link=1.0), Faults()),
        (
            "gpu, hub hashes each Δ-rank entry, 16 cores",
            replace(gpu, delta_entries_per_link=1.0, hub_cores=16),
            Faults(),
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rollups", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--duration", type=float, default=60.0, help="simulated seconds per run")
    args = ap.parse_args()
    n, seed = args.rollups, args.seed

    print(f"{n} rollups, seed {seed}, {args.duration:g} simulated s per run\n")
    print(
        "| scenario | local finality p50 / p99 s | sync to hubs p50 / p99 s "
        "| sync delivered p50 / p95 / p99 / max s | blocks never synced | snapshots "
        "| links/s | busiest hub packets/s | its load core·s/s (cores) "
        "| finality ≤ 0.5 s | sync ≤ 3 s | 2.1e8 links/s | CPU s |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|:-:|:-:|:-:|---:|")
    locality: list[tuple[str, Percentiles, Percentiles]] = []
    for name, params, faults in scenarios(n, args.duration):
        started = time.process_time()
        sim = RollupSimulation(params, seed=seed, faults=faults)
        r = sim.run()
        cpu = time.process_time() - started
        assert r.violations == (), r.violations
        ok = r.meets()
        yes = {True: "yes", False: "**no**"}
        d = r.sync_delivered
        print(
            f"| {name} | {fmt(r.local_finality.p50)} / {fmt(r.local_finality.p99)} "
            f"| {fmt(r.sync_to_hub.p50)} / {fmt(r.sync_to_hub.p99)} "
            f"| {fmt(d.p50)} / {fmt(d.p95)} / {fmt(d.p99)} / {fmt(d.max)} "
            f"| {r.uncovered_blocks} | {r.snapshots} | {r.links_per_s:.3g} "
            f"| {r.hub_packets_per_s:.0f} | {r.hub_load:.2f} ({params.hub_cores}) "
            f"| {yes[ok['local_finality']]} | {yes[ok['global_sync']]} "
            f"| {yes[ok['throughput']]} | {cpu:.1f} |",
            flush=True,
        )
        if sim.halted:
            hit = sorted(sim.halted)
            locality.append((name, sim.sync_latencies(hit), sim.sync_latencies(others(sim, hit))))
        for g, _, _ in faults.partitions:
            hit = sim.members[g]
            locality.append((name, sim.sync_latencies(hit), sim.sync_latencies(others(sim, hit))))

    print("\nFault locality: sync delivered (s) of the rollups hit and of the others\n")
    print("| scenario | hit: blocks / p50 / p99 / max | others: blocks / p50 / p99 / max |")
    print("|---|---|---|")
    for name, hit_p, rest in locality:
        print(
            f"| {name} | {hit_p.count} / {fmt(hit_p.p50)} / {fmt(hit_p.p99)} / {fmt(hit_p.max)} "
            f"| {rest.count} / {fmt(rest.p50)} / {fmt(rest.p99)} / {fmt(rest.max)} |"
        )

    print(
        "\nHub verification load against rollups (gpu profile, 3 signatures + "
        f"{GPU_PROFILE.proof_hashes}-hash proof per packet, 20 simulated s): "
        "the flat hub against the busiest regional hub (32 rollups)\n"
    )
    print(
        "| rollups | flat hub packets/s | flat load core·s/s | flat sync p99 s "
        "| regional packets/s | regional load core·s/s | hierarchy sync p99 s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for count in (250, 500, 1000, 2000, 4000):
        base = replace(GPU_PROFILE, rollups=count, duration=20.0)
        flat = simulate(replace(base, topology="flat"), seed=seed)
        tree = simulate(base, seed=seed)
        print(
            f"| {count} | {flat.hub_packets_per_s:.0f} | {flat.hub_load:.2f} "
            f"| {fmt(flat.sync_delivered.p99)} | {tree.hub_packets_per_s:.0f} "
            f"| {tree.hub_load:.3f} | {fmt(tree.sync_delivered.p99)} |",
            flush=True,
        )
    print(
        f"\nThroughput target {TARGET_LINKS_PER_S:.3g} links/s = rollups × links/s per "
        "rollup × utilisation; at 1000 rollups it needs 210,000 links/s each at full use."
    )


def others(sim: RollupSimulation, hit: list[int]) -> list[int]:
    excluded = set(hit)
    return [r for r in range(sim.p.rollups) if r not in excluded]


if __name__ == "__main__":
    main()
