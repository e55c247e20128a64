"""The compounding loop once, end to end: compile -> implicit links -> stake -> recompile.

The design's loop: a graph compiles into a transformer, the model proposes
the links it finds likely and the graph lacks ("implicit links"), people stake
the ones they accept, and the graph, now richer, compiles again. Whether that
compounds is a measurable claim: do the accepted proposals make the graph
better at predicting links it has not seen? This script runs the loop once on
held-out links and says.

For each graph: 10 % of its links are held out (seed 0). The training graph
compiles (``compile.compile_graph``, the library's defaults); each particle
alone as the context gives the compiled model's likeliest next particles
(``forward_numpy``: the same function the ONNX export and the fine-tuning
module compute), and the pairs the training graph does not link, most
probable first, are the proposals (what ``compile.finetune.implicit_links``
lists for a fine-tuned model, and what ``focusflow tx link --proposals``
links). The top ``K`` are staked: added as links weighing the training
links' median weight (a user's stake spread as others spread theirs). Then,
on the training graph and on the graph with the proposals, in one run:

- **recovered**: how many proposals are held-out links, against the number a
  random unlinked pair would hit (chance);
- **inference**: hits@10 and MRR of focus-flow inference (diffusion, the
  whole-graph solve) ranking each held-out link's target from its source,
  filtered by the source's other known targets;
- **recompiled**: the same ranking by the compiled model before and by the
  model compiled again after staking.

Fine-tuning is the loop's optional middle step; it runs on a GPU
(docs/compile.md, *Fine-tuning*), where the compiled initialisation gained
0.03 nats of held-out loss at best before overfitting. Here the proposals
come from the compiled model itself, which is what the loop proposes without
a GPU.

Run from the repository root::

    python bench/compounding.py                          # bostrom sample and a WordNet ball
    python bench/compounding.py --graphs bostrom         # a minute
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from focusflow.compile.forward import forward_numpy
from focusflow.compile.pipeline import CompileOptions, compile_graph
from focusflow.graph import Cybergraph
from focusflow.graph.importers import read_bostrom
from focusflow.infer import Inference, InferGraph, InferParams

# bench/infer.py's ranking and summaries (this script's directory is on sys.path).
from infer import Known, Task, summarize

ROOT = Path(__file__).resolve().parents[1]
BOSTROM = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
FIGURE = ROOT / "docs" / "figures" / "compounding.png"
#: Next particles kept per particle when proposals are drawn (as implicit_links).
PER_PARTICLE = 5


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def split(
    g: Cybergraph, frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The graph's links as (src, dst, weight) and a held-out mask; self-links
    and repeated pairs dropped first, so a held-out pair is not also trained on."""
    links = g.links()
    src, dst = np.asarray(links.src, np.int64), np.asarray(links.dst, np.int64)
    w = g.link_weight_range(0, g.n_links)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    _, first = np.unique(src * g.n_particles + dst, return_index=True)
    first.sort()
    src, dst, w = src[first], dst[first], w[first]
    rng = np.random.default_rng(seed)
    test = np.zeros(len(src), dtype=bool)
    test[rng.choice(len(src), size=round(frac * len(src)), replace=False)] = True
    return src, dst, w, test


def build(keys: list[str], src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> Cybergraph:
    g = Cybergraph(require_cids=False)
    g.add_particles(keys)
    g.add_link_ids(src, dst, weights=w)
    return g


def proposals(weights: Any, n: int, src: np.ndarray, dst: np.ndarray, limit: int) -> np.ndarray:
    """[k, 2] (from, to) the compiled model finds likeliest and the graph lacks,
    most probable first, at most ``limit`` (``implicit_links`` on the compiled
    weights)."""
    linked = set((src * n + dst).tolist())
    found: list[tuple[float, int, int]] = []
    for lo in range(0, n, 256):
        ids = np.arange(lo, min(lo + 256, n), dtype=np.int64)
        out = forward_numpy(weights, ids[:, None]).astype(np.float64)
        out[np.arange(len(ids)), ids] = 0.0
        out /= out.sum(axis=1, keepdims=True)
        top = np.argsort(-out, axis=1, kind="stable")[:, : PER_PARTICLE + 8]
        for row, i in enumerate(ids.tolist()):
            kept = 0
            for j in top[row].tolist():
                if i * n + j in linked or j == i:
                    continue
                found.append((float(out[row, j]), i, j))
                kept += 1
                if kept == PER_PARTICLE:
                    break
    found.sort(key=lambda x: (-x[0], x[1], x[2]))
    return np.array([(i, j) for _, i, j in found[:limit]], dtype=np.int64).reshape(-1, 2)


def rank_inference(g: Cybergraph, task: Task) -> dict:
    engine = Inference(
        InferGraph.from_cybergraph(g), InferParams(mode="diffusion", path="whole-graph")
    )
    rows = []
    for (h,), idx in task.by(len(task.q), False).items():
        probs = engine.predict([h]).probs
        rows.extend(task.score(i, probs) for i in idx)
    return summarize(rows)


def rank_compiled(weights: Any, task: Task) -> dict:
    rows = []
    for (h,), idx in task.by(len(task.q), False).items():
        probs = forward_numpy(weights, np.array([[h]], dtype=np.int64))[0].astype(np.float64)
        rows.extend(task.score(i, probs) for i in idx)
    return summarize(rows)


def run(name: str, g: Cybergraph, ks: list[float], opts: CompileOptions) -> dict:
    keys = [str(k) for k in list(g.particles.keys())]
    n = len(keys)
    src, dst, w, test = split(g, 0.10, 0)
    train = ~test
    base = build(keys, src[train], dst[train], w[train])
    queries = np.stack([src[test], np.zeros(int(test.sum()), np.int64), dst[test]], axis=1)
    task = Task(queries, Known(src, dst, np.zeros(len(src), np.int64)), np.ones(n, dtype=bool))
    n_test = int(test.sum())
    log(f"{name}: {n} particles, {int(train.sum())} training links, {n_test} held out")

    t = time.perf_counter()
    compiled = compile_graph(base, opts)
    compile_s = time.perf_counter() - t
    log(
        f"  compiled in {compile_s:.1f} s: d {compiled.weights.dim}, "
        f"{compiled.weights.layers} layers"
    )
    limit = int(max(ks) * n_test)
    t = time.perf_counter()
    prop = proposals(compiled.weights, n, src[train], dst[train], limit)
    propose_s = time.perf_counter() - t
    held = set((src[test] * n + dst[test]).tolist())
    unlinked = n * (n - 1) - int(train.sum())
    before_inf = rank_inference(base, task)
    before_cmp = rank_compiled(compiled.weights, task)
    out: dict[str, Any] = {
        "particles": n,
        "train": int(train.sum()),
        "test": n_test,
        "compile_s": compile_s,
        "propose_s": propose_s,
        "before": {"inference": before_inf, "compiled": before_cmp},
        "after": [],
    }
    log(
        f"  before: inference hits@10 {before_inf['hits@10']:.3f} MRR {before_inf['mrr']:.3f}; "
        f"compiled hits@10 {before_cmp['hits@10']:.3f} MRR {before_cmp['mrr']:.3f}"
    )
    stake = float(np.median(w[train]))
    for k in ks:
        take = prop[: int(k * n_test)]
        hits = sum(1 for i, j in take.tolist() if i * n + j in held)
        g2 = build(
            keys,
            np.concatenate([src[train], take[:, 0]]),
            np.concatenate([dst[train], take[:, 1]]),
            np.concatenate([w[train], np.full(len(take), stake)]),
        )
        t = time.perf_counter()
        recompiled = compile_graph(g2, opts)
        recompile_s = time.perf_counter() - t
        row = {
            "k": k,
            "staked": len(take),
            "recovered": hits,
            "chance": len(take) * n_test / unlinked,
            "inference": rank_inference(g2, task),
            "compiled": rank_compiled(recompiled.weights, task),
            "recompile_s": recompile_s,
        }
        out["after"].append(row)
        log(
            f"  staked {len(take)} ({k:g} x held out): recovered {hits} (chance "
            f"{row['chance']:.2f}); inference hits@10 {row['inference']['hits@10']:.3f} "
            f"MRR {row['inference']['mrr']:.3f}; recompiled hits@10 "
            f"{row['compiled']['hits@10']:.3f} MRR {row['compiled']['mrr']:.3f}"
        )
    return out


def table(name: str, res: dict) -> None:
    b = res["before"]
    print(
        f"\n{name}: {res['particles']:,} particles, {res['train']:,} training links, "
        f"{res['test']:,} held out; compile {res['compile_s']:.1f} s, proposals "
        f"{res['propose_s']:.1f} s\n"
    )
    print(
        "| staked proposals | recovered (chance) | inference hits@10 | inference MRR "
        "| compiled hits@10 | compiled MRR | hits@10 after / before (inference, compiled) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| none | | {b['inference']['hits@10']:.3f} | {b['inference']['mrr']:.3f} "
        f"| {b['compiled']['hits@10']:.3f} | {b['compiled']['mrr']:.3f} | |"
    )
    for r in res["after"]:
        ri, rc = (
            _ratio(r[kind]["hits@10"], b[kind]["hits@10"]) for kind in ("inference", "compiled")
        )
        print(
            f"| {r['staked']:,} ({r['k']:g} x held out) | {r['recovered']} ({r['chance']:.2f}) "
            f"| {r['inference']['hits@10']:.3f} | {r['inference']['mrr']:.3f} "
            f"| {r['compiled']['hits@10']:.3f} | {r['compiled']['mrr']:.3f} "
            f"| {ri}, {rc} |"
        )


def _ratio(after: float, before: float) -> str:
    """after / before, or "n/a" where before is 0 (no ratio to read)."""
    return f"{after / before:.2f}x" if before > 0 else "n/a"


def figure(results: dict[str, dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        xs = np.array([0] + [r["staked"] for r in res["after"]], dtype=float)
        for kind, marker, shift in (("inference", "o", -0.01), ("compiled", "s", 0.01)):
            ys = np.array(
                [res["before"][kind]["hits@10"]] + [r[kind]["hits@10"] for r in res["after"]]
            )
            # One standard error of a share of ``test`` queries: what a change must exceed.
            se = np.sqrt(ys * (1 - ys) / res["test"])
            ax.errorbar(xs + shift * xs.max(), ys, yerr=se, marker=marker, capsize=3, label=kind)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{name.split(' around')[0]}: {res['test']:,} held-out links", fontsize=10)
        ax.set_xlabel("proposals staked")
        ax.set_ylabel("hits@10 on held-out links (±1 s.e.)")
        ax.legend()
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=120)
    log(f"wrote {FIGURE}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--graphs", nargs="+", default=["bostrom", "wordnet"])
    ap.add_argument("--ball", type=int, default=3000, help="WordNet ball size (particles)")
    ap.add_argument("--centre", default="dog.n.01")
    ap.add_argument("--k", default="0.5,1,4", help="proposals staked, in held-out links")
    ap.add_argument("--no-figure", action="store_true")
    args = ap.parse_args()
    ks = [float(x) for x in args.k.split(",")]
    opts = CompileOptions(mode="diffusion", eval_contexts=0)
    print(
        f"compounding loop, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, dict] = {}
    for name in args.graphs:
        if name == "bostrom":
            g = read_bostrom(BOSTROM, skip_invalid=True)
            label = "bostrom sample"
        elif name == "wordnet":
            from finetune import wordnet_ball

            g, _ = wordnet_ball(args.ball, args.centre)
            label = f"WordNet ball of {args.ball:,} around {args.centre}"
        else:
            raise SystemExit(f"unknown graph {name!r}: bostrom or wordnet")
        results[label] = run(label, g, ks, opts)
        table(label, results[label])
    if not args.no_figure:
        figure(results)


if __name__ == "__main__":
    main()
