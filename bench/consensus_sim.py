"""CPU cost of the consensus state machine per height, on the seeded simulator.

All validators of a simulated network run in this one process, each verifying
every signature it receives (``verification="per_node"``), with Ed25519 from
``cryptography``. Values are the simulator's few-byte blocks: the cost measured
is consensus alone, not block transfer or execution. Reported per validator count:

- heights decided and simulated time, and rounds per height (1.0 = no failed round);
- CPU time spent inside the state machines (the simulator's own event loop is
  not counted), per height for the whole network and per validator: what a real
  node pays per block for consensus alone (signature checks, tallies, rules,
  signing; no network, no block execution);
- the share of CPU in Ed25519 verification, measured by running the same seed
  again with signature checks off (``verification="off"``, never in tests).

Run from the repository root::

    python bench/consensus_sim.py                  # 4 and 100 validators, ~1 minute
    python bench/consensus_sim.py --validators 4 7 --heights 50
"""

from __future__ import annotations

import argparse
import time

from focusflow.consensus.sim import Simulation


def run(n: int, heights: int, seed: int, check_signatures: bool) -> dict:
    sim = Simulation(n, seed=seed, verification="per_node" if check_signatures else "off")
    wall = time.perf_counter()
    sim.run(1e9, stop=lambda s: len(s.committed) >= heights and s.min_honest_height() >= heights)
    wall = time.perf_counter() - wall
    cpu = sim.machine_cpu_s
    done = sim.min_honest_height()
    rounds = sum(d.round + 1 for d in sim.committed.values() if d.height <= done)
    return {
        "n": n,
        "heights": done,
        "sim_s": sim.now,
        "rounds_per_height": rounds / done,
        "wall_s": wall,
        "cpu_s": cpu,
        "cpu_per_height_ms": 1e3 * cpu / done,
        "cpu_per_node_height_ms": 1e3 * cpu / done / n,
        "deliveries": sim.delivered,
        "violations": len(sim.violations),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, nargs="+", default=[4, 100])
    ap.add_argument(
        "--heights", type=int, default=0, help="heights per run (default: 200 for n <= 10, else 5)"
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(
        "| validators | heights | rounds/height | sim s | wall s | machine CPU ms/height "
        "| CPU ms/height/validator | w/o signature checks | verify share |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in args.validators:
        heights = args.heights or (200 if n <= 10 else 5)
        full = run(n, heights, args.seed, True)
        bare = run(n, heights, args.seed, False)
        assert full["violations"] == 0 and bare["violations"] == 0
        share = 1 - bare["cpu_per_height_ms"] / full["cpu_per_height_ms"]
        print(
            f"| {n} | {full['heights']} | {full['rounds_per_height']:.2f} "
            f"| {full['sim_s']:.2f} | {full['wall_s']:.2f} | {full['cpu_per_height_ms']:.1f} "
            f"| {full['cpu_per_node_height_ms']:.2f} "
            f"| {bare['cpu_per_node_height_ms']:.2f} | {share:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
