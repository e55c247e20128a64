"""Hebbian link factors (focus.hebbian) against static stake weights: held-out links.

What it measures, in one process run, on two graphs:

- **WordNet 3.0**, split as bench/infer.py splits it (10 % of each relation's
  link groups held out, seed 0); the task is its filtered tail prediction
  (rank every synset as the tail of (h, r)), answered by focus-flow inference
  in diffusion mode with the query's relation at 1 and the others at 0.1 (the
  validated setting of bench/infer.py);
- **the bostrom sample**: 10 % of its links held out (seed 0); the task is
  to rank every particle as the target of a held-out link from its source,
  filtered by the source's other known targets, by focus-flow inference
  (diffusion and tri; the links' semcons are neurons, not relations, so no
  weighting).

The workload: ``--blocks`` blocks of the training graph. Each block commits
the graph's focus (tri, the chain's mode) under the current weights
``stake · h``, and the Hebbian rule updates ``h`` from it. After the last
block the held-out links are ranked on the final weights, and on the static
weights (``h = 1``) in the same run, over the same queries. Several (eta,
delta, cap, mass cap) settings; for each it prints hits@10 and MRR side by
side with static, their ratio, and the queries each one ranks better and
worse (by reciprocal rank).

Run from the repository root::

    python bench/hebbian.py                    # 18 min on 2 cores at load 2-7 (its WordNet queries)
    python bench/hebbian.py --blocks 3 --no-wordnet --no-figure   # quick check
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from focusflow.focus.hebbian import HebbianParams, eligible_links, particle_owners, run_blocks
from focusflow.focus.solver import compute, release_operators
from focusflow.graph.importers import read_bostrom
from focusflow.graph.snapshot import Snapshot
from focusflow.graph.wordnet import REL, RELATIONS, read_wordnet
from focusflow.infer import Inference, InferGraph, InferParams

# bench/infer.py's split and ranking (this script's directory is on sys.path).
from infer import NOT_TESTED, Known, Task, group_keys, hold_out, sample_queries, summarize

ROOT = Path(__file__).resolve().parents[1]
BOSTROM = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
FIGURE = ROOT / "docs" / "figures" / "hebbian_hits.png"

#: (eta, delta, cap, mass_cap): from barely moving to pumped hard.
SETTINGS = (
    HebbianParams(eta=0.01, delta=0.1, cap=2.0, mass_cap=0.01),
    HebbianParams(eta=0.1, delta=0.1, cap=2.0, mass_cap=0.05),
    HebbianParams(eta=0.1, delta=0.5, cap=4.0, mass_cap=0.05),
    HebbianParams(eta=1.0, delta=0.1, cap=4.0, mass_cap=0.2),
    HebbianParams(eta=1.0, delta=0.5, cap=4.0, mass_cap=1.0),
    HebbianParams(eta=10.0, delta=0.1, cap=16.0, mass_cap=1.0),
)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def label(p: HebbianParams) -> str:
    return f"eta {p.eta:g}, delta {p.delta:g}, cap {p.cap:g}, mass {p.mass_cap:g}"


class Workload:
    """The training graph's links, stakes and what the rule needs of them."""

    def __init__(self, ig: InferGraph, neuron: np.ndarray) -> None:
        self.ig = ig
        self.base = ig.weight.copy()
        owner = particle_owners(ig.n, ig.src, ig.dst, neuron)
        self.eligible = eligible_links(ig.src, ig.dst, neuron, owner)

    def focus(self, w: np.ndarray, x0: np.ndarray | None) -> np.ndarray:
        snap = Snapshot(self.ig.n, self.ig.src, self.ig.dst, w, patchable=False)
        try:
            return np.asarray(compute(snap, mode="tri", x0=x0).focus, dtype=np.float64)
        finally:
            release_operators(snap)

    def factors(self, params: HebbianParams, blocks: int) -> np.ndarray:
        h, _ = run_blocks(
            self.base, self.ig.src, self.ig.dst, self.eligible, params, blocks, self.focus
        )
        return h

    def weighted(self, h: np.ndarray) -> InferGraph:
        ig = self.ig
        return InferGraph(ig.n, ig.src, ig.dst, self.base * h, ig.semcon, ig.semcons, ig.keys)


def rank_queries(ig: InferGraph, task: Task, count: int, mode: str, relation: bool) -> list[dict]:
    """Per-query rank statistics of focus-flow inference on the first ``count``
    (the whole-graph solve at inference's default tol 1e-3: on WordNet the
    local push gives up, bench/RESULTS.md)."""
    engine = Inference(ig, InferParams(mode=mode, path="whole-graph"))
    rows: list[tuple[int, dict]] = []
    for key, idx in task.by(count, relation).items():
        if relation:
            r, h = key
            pred = engine.predict([h], semcons={"wordnet:" + RELATIONS[r]: 1.0}, other_semcons=0.1)
        else:
            (h,) = key
            pred = engine.predict([h])
        rows.extend((i, task.score(i, pred.probs)) for i in idx)
    rows.sort()
    return [r for _, r in rows]


def compare(
    work: Workload,
    task: Task,
    args,
    modes: tuple[str, ...],
    relation: bool,
    settings: tuple[HebbianParams, ...],
    count: int,
) -> dict:
    static = {m: rank_queries(work.ig, task, count, m, relation) for m in modes}
    out: dict[str, Any] = {
        "static": {m: summarize(v) for m, v in static.items()},
        "settings": [],
    }
    for m, s in out["static"].items():
        log(f"  static, {m}: hits@10 {s['hits@10']:.3f}, MRR {s['mrr']:.3f} ({s['n']} queries)")
    for params in settings:
        t = time.perf_counter()
        h = work.factors(params, args.blocks)
        sim_s = time.perf_counter() - t
        row: dict[str, Any] = {
            "params": params,
            "simulate_s": sim_s,
            "mean_factor": float(h.mean()),
            "share_boosted": float(np.mean(h > 1.0)),
            "share_at_cap": float(np.mean(h >= params.cap)),
        }
        ig = work.weighted(h)
        for m in modes:
            rows = rank_queries(ig, task, count, m, relation)
            s = summarize(rows)
            diff = np.array([a["rr"] - b["rr"] for a, b in zip(rows, static[m], strict=True)])
            row[m] = {
                **s,
                "ratio_hits10": s["hits@10"] / max(out["static"][m]["hits@10"], 1e-12),
                "ratio_mrr": s["mrr"] / max(out["static"][m]["mrr"], 1e-12),
                "wins": int(np.sum(diff > 0)),
                "losses": int(np.sum(diff < 0)),
            }
            log(
                f"  {label(params)}, {m}: hits@10 {s['hits@10']:.3f} "
                f"(x{row[m]['ratio_hits10']:.3f}), MRR {s['mrr']:.3f}; factors mean "
                f"{row['mean_factor']:.3f}, boosted {row['share_boosted']:.1%}, at cap "
                f"{row['share_at_cap']:.1%}; simulated in {sim_s:.1f} s"
            )
        out["settings"].append(row)
    return out


def wordnet(args) -> dict:
    log("WordNet: split as bench/infer.py")
    wn = read_wordnet()
    testable = ~np.isin(wn.rel, [REL[r] for r in NOT_TESTED])
    keys = group_keys(wn.src, wn.dst, wn.rel)
    test = hold_out(keys, wn.rel, testable, 0.10, 0)
    g = wn.to_graph(~test)
    if g.n_particles != wn.n_particles:
        raise SystemExit("a particle lost all its links in the split: ids would shift")
    ig = InferGraph.from_cybergraph(g)
    work = Workload(ig, g.links().neuron)
    test_q = sample_queries(wn, test, args.queries, 0)
    task = Task(test_q, Known(wn.src[testable], wn.dst[testable], wn.rel[testable]), wn.is_synset)
    log(
        f"  {ig.n_links} training links, {len(test_q)} test queries; "
        f"{work.eligible.mean():.1%} of links eligible for a boost"
    )
    out = compare(work, task, args, ("diffusion",), True, SETTINGS, args.queries)
    out["eligible_share"] = float(work.eligible.mean())
    return out


def bostrom(args) -> dict:
    log("bostrom sample: 10 % of links held out")
    g = read_bostrom(BOSTROM, skip_invalid=True)
    full = InferGraph.from_cybergraph(g)
    neuron = g.links().neuron
    rng = np.random.default_rng(0)
    test = np.zeros(full.n_links, dtype=bool)
    test[rng.choice(full.n_links, size=round(0.1 * full.n_links), replace=False)] = True
    train = ~test
    # Stakes are 1 a neuron: a link weighs 1 / (its neuron's training links).
    deg = np.bincount(neuron[train], minlength=int(neuron.max()) + 1).astype(np.float64)
    ig = InferGraph(
        full.n,
        full.src[train],
        full.dst[train],
        1.0 / deg[neuron[train]],
        full.semcon[train],
        full.semcons,
        full.keys,
    )
    work = Workload(ig, neuron[train])
    queries = np.stack(
        [full.src[test], np.zeros(int(test.sum()), dtype=np.int64), full.dst[test]], axis=1
    )
    task = Task(
        queries,
        Known(full.src, full.dst, np.zeros(full.n_links, dtype=np.int64)),
        np.ones(full.n, dtype=bool),
    )
    log(
        f"  {ig.n_links} training links, {len(queries)} test queries; "
        f"{work.eligible.mean():.1%} of links eligible for a boost"
    )
    out = compare(work, task, args, ("diffusion", "tri"), False, SETTINGS, len(queries))
    out["eligible_share"] = float(work.eligible.mean())
    return out


def table(name: str, res: dict, modes: tuple[str, ...]) -> None:
    print(f"\n{name} ({res['eligible_share']:.1%} of links eligible)\n")
    print(
        "| setting | mode | hits@10 static | hits@10 Hebbian | ratio | MRR static | "
        "MRR Hebbian | ratio | better / worse | mean factor | at cap |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for row in res["settings"]:
        for m in modes:
            s, h = res["static"][m], row[m]
            print(
                f"| {label(row['params'])} | {m} | {s['hits@10']:.3f} | {h['hits@10']:.3f} | "
                f"{h['ratio_hits10']:.3f} | {s['mrr']:.3f} | {h['mrr']:.3f} | "
                f"{h['ratio_mrr']:.3f} | {h['wins']} / {h['losses']} | "
                f"{row['mean_factor']:.3f} | {row['share_at_cap']:.1%} |"
            )


def figure(results: dict[str, tuple[dict, str]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 3.6), dpi=90)
    axes = np.atleast_1d(axes)
    for ax, (name, (res, mode)) in zip(axes, results.items(), strict=True):
        vals = [row[mode]["hits@10"] for row in res["settings"]]
        ax.bar(range(len(vals)), vals, color="#4878a8")
        ax.axhline(res["static"][mode]["hits@10"], color="#c44e52", lw=1.5, label="static")
        ax.set_xticks(range(len(vals)))
        ax.set_xticklabels(
            [
                f"η{r['params'].eta:g} δ{r['params'].delta:g}\nc{r['params'].cap:g}"
                for r in res["settings"]
            ],
            fontsize=7,
        )
        ax.set_title(f"{name} ({mode}, {res['static'][mode]['n']} queries)", fontsize=9)
        ax.set_ylabel("hits@10")
        ax.legend(fontsize=8)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE)
    log(f"figure: {FIGURE} ({FIGURE.stat().st_size / 1e3:.0f} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=200, help="WordNet test queries")
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--no-wordnet", action="store_true")
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args()
    load = os.getloadavg()
    log(f"cpus {os.cpu_count()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    t = time.perf_counter()
    results: dict[str, tuple[dict, str]] = {}
    b = bostrom(args)
    results["bostrom sample"] = (b, "diffusion")
    if not args.no_wordnet:
        w = wordnet(args)
        results["WordNet"] = (w, "diffusion")
    print(f"\n{args.blocks} blocks of tri focus each; held-out links ranked after the last")
    table("bostrom sample", b, ("diffusion", "tri"))
    if not args.no_wordnet:
        table("WordNet", w, ("diffusion",))
    if not args.no_figure:
        figure(results)
    load = os.getloadavg()
    print(f"\ntotal {time.perf_counter() - t:.0f} s; load at the end {load[0]:.2f}")


if __name__ == "__main__":
    main()
