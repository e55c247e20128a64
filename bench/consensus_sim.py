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

With ``--engines`` it compares consensus engines instead, in one run on the same
seeds: finality latency (simulated seconds per decided height: heights run one
after another, so this is the time from one decision to the next) and messages
delivered per height, each engine's and its ratio to the first engine's, with
the failure probability of the Snowman parameters at that set size (a third of
the validators, rounded down, lying). Signatures are checked once per network
there (``verification="shared"``): it changes no simulated time or message.

Run from the repository root::

    python bench/consensus_sim.py                  # 4 and 100 validators, ~1 minute
    python bench/consensus_sim.py --validators 4 7 --heights 50
    python bench/consensus_sim.py --engines tendermint,snowman,fallback --validators 4 16 64
    python bench/consensus_sim.py --engines tendermint,snowman,snowman:notarised --validators 4 16
"""

from __future__ import annotations

import argparse
import time

from focusflow.consensus.actions import Accept, Decide
from focusflow.consensus.engine import ENGINES
from focusflow.consensus.notarise import ACCEPT_ROUND
from focusflow.consensus.sim import Simulation
from focusflow.consensus.snowball import SnowmanParams, failure_probability


def run(n: int, heights: int, seed: int, check_signatures: bool) -> dict:
    sim = Simulation(
        n,
        seed=seed,
        verification="per_node" if check_signatures else "off",
        measure_cpu=True,
    )
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


def run_engine(engine: str, n: int, heights: int, seed: int) -> dict:
    """``engine`` is a name of ENGINES, or ``NAME:notarised`` for a polling engine
    whose decisions are certified by attestations (as the node runs it)."""
    name, _, mode = engine.partition(":")
    sim = Simulation(n, seed=seed, engine=name, notarise=mode == "notarised")
    wall = time.perf_counter()
    sim.run(1e9, stop=lambda s: s.min_honest_height() >= heights)
    wall = time.perf_counter() - wall
    done = sim.min_honest_height()
    polled = sum(
        1
        for d in sim.committed.values()
        if isinstance(d, Accept) or (isinstance(d, Decide) and d.round == ACCEPT_ROUND)
    )
    return {
        "heights": done,
        "latency_s": sim.now / done,
        "messages": sim.delivered / done,
        "polled": polled,
        "wall_s": wall,
        "violations": len(sim.violations),
    }


def compare_engines(engines: list[str], validators: list[int], heights: int, seed: int) -> None:
    params = SnowmanParams()
    print(
        f"Snowman parameters: k={params.k} alpha_preference={params.alpha_preference} "
        f"alpha_confidence={params.alpha_confidence} beta={params.beta} "
        f"concurrent_polls={params.concurrent_polls}"
    )
    base = engines[0]
    print(
        "| validators | engine | heights | latency s/height | messages/height "
        f"| latency / {base} | messages / {base} | polled heights | wall s "
        "| P[fail] liars only | P[fail] static split |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in validators:
        h = heights or (20 if n <= 4 else 10 if n <= 16 else 3)
        byz = (n - 1) // 3
        risk = failure_probability(params, n, byz)
        first: dict | None = None
        for engine in engines:
            r = run_engine(engine, n, h, seed)
            assert r["violations"] == 0
            first = first or r
            print(
                f"| {n} | {engine} | {r['heights']} | {r['latency_s']:.3f} "
                f"| {r['messages']:.0f} | {r['latency_s'] / first['latency_s']:.2f} "
                f"| {r['messages'] / first['messages']:.2f} | {r['polled']} | {r['wall_s']:.1f} "
                f"| {risk['byzantine_only']:.1e} ({byz} of {n}) | {risk['split']:.1e} |",
                flush=True,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--validators", type=int, nargs="+", default=[4, 100])
    ap.add_argument(
        "--heights", type=int, default=0, help="heights per run (default: 200 for n <= 10, else 5)"
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--engines", default="", help=f"compare engines, comma-separated, from {ENGINES}"
    )
    args = ap.parse_args()
    if args.engines:
        engines = args.engines.split(",")
        if any(e.partition(":")[0] not in ENGINES for e in engines):
            ap.error(f"engines are among {ENGINES} (NAME:notarised certifies polled decisions)")
        compare_engines(engines, args.validators, args.heights, args.seed)
        return
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
