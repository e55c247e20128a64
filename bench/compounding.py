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

Fine-tuning is the loop's middle step; it runs on a GPU (docs/compile.md,
*Fine-tuning*; at lr 1e-4 it lowered the held-out walk loss by 0.32 nats).
Without it the proposals come from the compiled model itself, which is what
the loop proposes without a GPU.
With it the loop runs in three parts, on one split:

1. ``--prepare DIR`` (CPU): the WordNet ball's split, its training graph
   compiled as above and focus-flow walks drawn on that training graph alone
   (``bench/finetune.py``'s ``prepare_dir``), written to ``DIR`` with the
   split (``split.npz``); the held-out links are in neither the compiled
   model nor the walks, and the command checks both;
2. on the GPU machine, with ``DIR`` carried, the compiled init fine-tuned,
   kept at its best held-out walk loss and asked for its implicit links
   (``python3 src/focusflow/compile/finetune.py --inits compiled ...``,
   the command ``--prepare`` prints);
3. ``--prepared DIR --proposals OUT/implicit_links.tsv`` (CPU): the same
   split, the compiled model's own proposals and the fine-tuned model's
   side by side, each staked at the same ``K``; with ``finetuned.npz``
   beside the file, the fine-tuned model's own ranking of the held-out
   links too.

Run from the repository root::

    python bench/compounding.py                          # bostrom sample and a WordNet ball
    python bench/compounding.py --graphs bostrom         # a minute
    python bench/compounding.py --ball 5000 --prepare scratch/ft/loop
    python bench/compounding.py --prepared scratch/ft/loop \\
        --proposals OUT/implicit_links.tsv --no-figure --json loop.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

# bench/finetune.py's graph and walk preparation (this script's directory is on sys.path).
from finetune import WalkPlan, links_graph, prepare_dir, wordnet_ball
from focusflow.compile.finetune import load_arrays, weights_arrays
from focusflow.compile.forward import forward_numpy
from focusflow.compile.pipeline import CompileOptions, compile_graph
from focusflow.compile.weights import CompiledWeights
from focusflow.graph import Cybergraph
from focusflow.graph.importers import read_bostrom
from focusflow.infer import Inference, InferGraph, InferParams

# bench/infer.py's ranking and summaries.
from infer import Known, Task, summarize

ROOT = Path(__file__).resolve().parents[1]
BOSTROM = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
FIGURE = ROOT / "docs" / "figures" / "compounding.png"
#: Next particles kept per particle when proposals are drawn (as implicit_links).
PER_PARTICLE = 5
#: Share of a graph's links held out, and the split's seed.
HELD_OUT = 0.10
SPLIT_SEED = 0
#: The proposals of the compiled model itself, the loop without fine-tuning.
COMPILED = "compiled"
FINETUNED = "fine-tuned"


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
    """The graph of ``keys`` and the weighted links ``src -> dst`` (finetune's
    ``links_graph``, which the walk processes rebuild it with)."""
    graph: Cybergraph = links_graph(keys, src, dst, w)
    return graph


def proposals(weights: Any, n: int, src: np.ndarray, dst: np.ndarray, limit: int) -> np.ndarray:
    """[k, 2] (from, to) the compiled model finds likeliest and the graph lacks,
    most probable first, at most ``limit``.

    Each particle alone as the context proposes its ``PER_PARTICLE``
    likeliest next particles among those it does not link to (itself
    excluded, probabilities renormalised without it): the rule of
    ``implicit_links``, so that the fine-tuned model's file and these are
    drawn alike.
    """
    found: list[tuple[float, int, int]] = []
    for lo in range(0, n, 256):
        ids = np.arange(lo, min(lo + 256, n), dtype=np.int64)
        rows = np.arange(len(ids))
        out = forward_numpy(weights, ids[:, None]).astype(np.float64)
        out[rows, ids] = 0.0
        out /= out.sum(axis=1, keepdims=True)
        mine = (src >= lo) & (src < lo + len(ids))
        out[src[mine] - lo, dst[mine]] = -1.0
        out[rows, ids] = -1.0
        top = np.argsort(-out, axis=1, kind="stable")[:, :PER_PARTICLE]
        for row, i in enumerate(ids.tolist()):
            found.extend((float(out[row, j]), i, j) for j in top[row].tolist() if out[row, j] >= 0)
    found.sort(key=lambda x: (-x[0], x[1], x[2]))
    return np.array([(i, j) for _, i, j in found[:limit]], dtype=np.int64).reshape(-1, 2)


def read_proposals(
    path: Path, keys: list[str], src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, int]:
    """[k, 2] (from, to) of an ``implicit_links`` file in its order (most probable
    first), and how many of its rows were dropped: pairs the training graph
    links or a particle to itself, and repeats (none, from ``implicit_links``
    run on this split). A key not among ``keys`` means the file belongs to
    another graph, and stops the run."""
    n = len(keys)
    index = {k: i for i, k in enumerate(keys)}
    linked = set((src * n + dst).tolist())
    seen: set[int] = set()
    pairs: list[tuple[int, int]] = []
    dropped = 0
    lines = path.read_text().splitlines()
    if not lines or lines[0].split("\t")[:2] != ["from", "to"]:
        raise SystemExit(f"{path}: not an implicit_links file (no from/to header)")
    for line in lines[1:]:
        a, b = line.split("\t")[:2]
        if a not in index or b not in index:
            raise SystemExit(f"{path}: particle {a if a not in index else b} is not in the split")
        i, j = index[a], index[b]
        if i == j or i * n + j in linked or i * n + j in seen:
            dropped += 1
            continue
        seen.add(i * n + j)
        pairs.append((i, j))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), dropped


def weights_from_arrays(arrays: dict[str, np.ndarray]) -> CompiledWeights:
    """``CompiledWeights`` of arrays in ``save_weights``' layout (a fine-tuned
    model's ``finetuned.npz``), so that ``forward_numpy`` ranks with them."""
    sem = arrays["hop_sem"]
    return CompiledWeights(
        phi=arrays["phi"],
        emb_att=arrays["emb_att"],
        emb_in=arrays["emb_in"],
        hop_idx=arrays["hop_idx"],
        hop_p=arrays["hop_p"],
        hop_sem=sem,
        hop_rest=arrays["hop_rest"],
        unemb=arrays["unemb"],
        w_q=arrays["w_q"],
        w_k=arrays["w_k"],
        head_share=arrays["head_share"],
        prop_t=arrays["prop_t"],
        basis_mass=arrays["basis_mass"],
        alpha=float(arrays["alpha"]),
        layers=int(arrays["layers"]),
        floor=float(arrays["floor"]),
        attention_share=float(arrays["attention_share"]),
        hops=int(arrays["hops"]),
        semcon_names=tuple(f"semcon {k}" for k in range(int(sem.max(initial=0)) + 1)),
    )


def weights_diff(weights: CompiledWeights, arrays: dict[str, np.ndarray]) -> float:
    """Largest absolute difference between ``weights`` and saved arrays of the same
    compilation; a shape mismatch (another graph) stops the run."""
    mine = weights_arrays(weights)
    worst = 0.0
    for name, value in mine.items():
        other = arrays[name]
        if np.shape(value) != np.shape(other):
            raise SystemExit(f"{name}: {np.shape(value)} here, {np.shape(other)} prepared")
        if np.size(value):
            worst = max(worst, float(np.max(np.abs(np.asarray(value, float) - other))))
    return worst


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


def run(
    name: str,
    keys: list[str],
    parts: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ks: list[float],
    opts: CompileOptions,
    *,
    extra: dict[str, np.ndarray] | None = None,
    finetuned: CompiledWeights | None = None,
    prepared: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """The loop once on the split ``parts`` = (src, dst, weight, held-out mask).

    The compiled model's own proposals are always staked; ``extra`` adds
    other sources' proposals (the fine-tuned model's, read from its file),
    each staked at the same ``K`` and ranked on the same held-out links.
    ``finetuned`` is the fine-tuned model, ranked on them as the compiled one
    is; ``prepared`` the weights the fine-tuning started from, checked
    against this compilation.
    """
    src, dst, w, test = parts
    n = len(keys)
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
    out: dict[str, Any] = {
        "particles": n,
        "train": int(train.sum()),
        "test": n_test,
        "compile_s": compile_s,
    }
    if prepared is not None:
        out["prepared_weights_diff"] = weights_diff(compiled.weights, prepared)
        log(f"  max |difference| from the prepared weights: {out['prepared_weights_diff']:.2e}")
    limit = int(max(ks) * n_test)
    t = time.perf_counter()
    sources = {COMPILED: proposals(compiled.weights, n, src[train], dst[train], limit)}
    out["propose_s"] = time.perf_counter() - t
    sources.update(extra or {})
    held = set((src[test] * n + dst[test]).tolist())
    unlinked = n * (n - 1) - int(train.sum())
    before_inf = rank_inference(base, task)
    before_cmp = rank_compiled(compiled.weights, task)
    out["before"] = {"inference": before_inf, "compiled": before_cmp}
    log(
        f"  before: inference hits@10 {before_inf['hits@10']:.3f} MRR {before_inf['mrr']:.3f}; "
        f"compiled hits@10 {before_cmp['hits@10']:.3f} MRR {before_cmp['mrr']:.3f}"
    )
    if finetuned is not None:
        out["before"][FINETUNED] = rank_compiled(finetuned, task)
        r = out["before"][FINETUNED]
        log(f"  fine-tuned model: hits@10 {r['hits@10']:.3f} MRR {r['mrr']:.3f}")
    out["proposals"] = {
        source: {"count": len(prop), "held_out_in_top": _recovered(prop[:limit], n, held)}
        for source, prop in sources.items()
    }
    out["after"] = []
    stake = float(np.median(w[train]))
    for k in ks:
        count = int(k * n_test)
        mine = set((sources[COMPILED][:count] @ np.array([n, 1])).tolist())
        for source, prop in sources.items():
            take = prop[:count]
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
                "source": source,
                "k": k,
                "staked": len(take),
                "recovered": _recovered(take, n, held),
                "same_as_compiled": len(mine & set((take @ np.array([n, 1])).tolist())),
                "chance": len(take) * n_test / unlinked,
                "inference": rank_inference(g2, task),
                "compiled": rank_compiled(recompiled.weights, task),
                "recompile_s": recompile_s,
            }
            out["after"].append(row)
            log(
                f"  {source} proposals, staked {len(take)} ({k:g} x held out): recovered "
                f"{row['recovered']} (chance {row['chance']:.2f}); inference hits@10 "
                f"{row['inference']['hits@10']:.3f} MRR {row['inference']['mrr']:.3f}; "
                f"recompiled hits@10 {row['compiled']['hits@10']:.3f} "
                f"MRR {row['compiled']['mrr']:.3f}"
            )
    return out


def _recovered(take: np.ndarray, n: int, held: set[int]) -> int:
    """How many (from, to) rows of ``take`` are held-out links."""
    return sum(1 for i, j in take.tolist() if i * n + j in held)


def table(name: str, res: dict[str, Any]) -> None:
    """The markdown table of one graph; a ``proposals`` column when several
    sources were staked, with how many of each row's staked proposals the
    compiled model's row also staked."""
    b = res["before"]
    several = len(res.get("proposals", {COMPILED: 0})) > 1
    print(
        f"\n{name}: {res['particles']:,} particles, {res['train']:,} training links, "
        f"{res['test']:,} held out; compile {res['compile_s']:.1f} s, proposals "
        f"{res['propose_s']:.1f} s\n"
    )
    lead = "| proposals " if several else ""
    same = "| same as compiled's " if several else ""
    print(
        f"{lead}| staked proposals | recovered (chance) {same}| inference hits@10 "
        "| inference MRR | compiled hits@10 | compiled MRR "
        "| hits@10 after / before (inference, compiled) |"
    )
    print(
        ("|---" if several else "") + "|---|---:" + ("|---:" if several else "") + "|---:" * 5 + "|"
    )
    print(
        ("| none | | | " if several else "| none | ") + f"| {b['inference']['hits@10']:.3f} "
        f"| {b['inference']['mrr']:.3f} | {b['compiled']['hits@10']:.3f} "
        f"| {b['compiled']['mrr']:.3f} | |"
    )
    for r in res["after"]:
        ri, rc = (
            _ratio(r[kind]["hits@10"], b[kind]["hits@10"]) for kind in ("inference", "compiled")
        )
        print(
            (f"| {r['source']} " if several else "")
            + f"| {r['staked']:,} ({r['k']:g} x held out) | {r['recovered']} ({r['chance']:.2f}) "
            + (f"| {r['same_as_compiled']:,} " if several else "")
            + f"| {r['inference']['hits@10']:.3f} | {r['inference']['mrr']:.3f} "
            f"| {r['compiled']['hits@10']:.3f} | {r['compiled']['mrr']:.3f} "
            f"| {ri}, {rc} |"
        )
    if FINETUNED in b:
        f, c = b[FINETUNED], b["compiled"]
        print(
            f"\nThe models themselves on the held-out links, before staking: compiled "
            f"hits@10 {c['hits@10']:.3f} MRR {c['mrr']:.3f}; fine-tuned hits@10 "
            f"{f['hits@10']:.3f} MRR {f['mrr']:.3f}."
        )


def _ratio(after: float, before: float) -> str:
    """after / before, or "n/a" where before is 0 (no ratio to read)."""
    return f"{after / before:.2f}x" if before > 0 else "n/a"


def figure(results: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        sources = list(dict.fromkeys(r["source"] for r in res["after"]))
        series = [(kind, source) for source in sources for kind in ("inference", "compiled")]
        for n_series, (kind, source) in enumerate(series):
            rows = [r for r in res["after"] if r["source"] == source]
            xs = np.array([0] + [r["staked"] for r in rows], dtype=float)
            ys = np.array([res["before"][kind]["hits@10"]] + [r[kind]["hits@10"] for r in rows])
            # One standard error of a share of ``test`` queries: what a change must exceed.
            se = np.sqrt(ys * (1 - ys) / res["test"])
            shift = (n_series - (len(series) - 1) / 2) * 0.01 * xs.max()
            model = "recompiled" if kind == "compiled" else kind
            label = kind if len(sources) == 1 else f"{model}, {source} proposals"
            marker = "o" if kind == "inference" else "s"
            line = "-" if source == COMPILED else "--"
            ax.errorbar(xs + shift, ys, yerr=se, marker=marker, ls=line, capsize=3, label=label)
        ax.set_ylim(bottom=0)
        ax.set_title(f"{name.split(' around')[0]}: {res['test']:,} held-out links", fontsize=10)
        ax.set_xlabel("proposals staked")
        ax.set_ylabel("hits@10 on held-out links (±1 s.e.)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    log(f"wrote {path}")


def prepare_loop(out: Path, ball: int, centre: str, walks: int, procs: int) -> None:
    """Stage 1 of the loop with fine-tuning: the WordNet ball's split, its
    training graph compiled and walked (``prepare_dir``), the split saved
    beside them, and the checks that no held-out link reached the model or
    the walks."""
    g, texts = wordnet_ball(ball, centre)
    keys = [str(k) for k in list(g.particles.keys())]
    src, dst, w, test = split(g, HELD_OUT, SPLIT_SEED)
    train = ~test
    label = f"WordNet ball of {ball:,} around {centre}"
    rebuild = (links_graph, (keys, src[train], dst[train], w[train]))
    base = build(*rebuild[1])
    log(f"{label}: {len(keys)} particles, {int(train.sum())} training, {int(test.sum())} held out")
    meta = prepare_dir(
        out,
        base,
        texts,
        options=loop_options(),
        plan=WalkPlan(count=walks, procs=procs),
        rebuild=rebuild,
        label=label,
    )
    n = len(keys)
    split_meta = {
        "graph": label,
        "ball": ball,
        "centre": centre,
        "held_out_links": HELD_OUT,
        "split_seed": SPLIT_SEED,
        "compile_mode": loop_options().mode,
    }
    np.savez_compressed(
        out / "split.npz",
        keys=np.asarray(keys),
        src=src,
        dst=dst,
        w=w,
        test=test,
        meta=np.asarray(json.dumps(split_meta)),
    )
    data = load_arrays(out / "data.npz")
    held = set((src[test] * n + dst[test]).tolist())
    trained = set((src[train] * n + dst[train]).tolist())
    model_links = set((data["src"].astype(np.int64) * n + data["dst"]).tolist())
    if data["keys"].tolist() != keys or model_links != trained or model_links & held:
        raise SystemExit("the prepared graph is not the split's training graph")
    seqs = np.vstack([data["train"], data["test"]]).astype(np.int64)
    prev, nxt = seqs[:, :-1].ravel(), seqs[:, 1:].ravel()
    ok = (prev >= 0) & (nxt >= 0)
    pairs = (prev[ok] * n + nxt[ok]).tolist()
    on_held = sum(1 for x in pairs if x in held)
    on_train = sum(1 for x in pairs if x in trained)
    log(
        f"checked: the compiled graph and the walks' graph are the {len(trained)} training "
        f"links, none of the {len(held)} held out; of {len(pairs)} walk steps, {on_train} "
        f"follow a training link and {on_held} land on a held-out pair (reached through "
        "other training links: the walks' next particle is drawn from the whole graph's focus)"
    )
    meta.update(split_meta, walk_steps_on_held_out_pairs=on_held, walk_steps_on_links=on_train)
    (out / "prepare.json").write_text(json.dumps(meta, indent=1) + "\n")
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"\n{rel}: {size:.1f} MiB. On the GPU machine, with {rel} carried:\n")
    print(gpu_command(out))


def gpu_command(out: Path) -> str:
    """Stage 2: the compiled init alone, three learning rates, each run kept at
    and stopped 300 steps past its best held-out loss, all links written.

    Sized for an H100 or H200: a step of batch 64 with its share of the
    held-out measurements took about 74 ms there (4,000 in 296 s,
    docs/compile.md), so the 3 x 1,200 steps at most take about 4.5
    minutes, a run whose best is early stops after about 350, and
    ``--max-seconds`` ends training at 5 minutes whatever the machine's
    speed, leaving the implicit links a few seconds."""
    rel = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    return (
        "PYTHONUNBUFFERED=1 python3 src/focusflow/compile/finetune.py "
        f"--data {rel}/data.npz --weights {rel}/weights.npz --check {rel}/check.npz "
        "--out $OUT --inits compiled --lr 1e-3,1e-4,1e-5 --steps 1200 --eval-every 50 "
        "--patience 300 --max-seconds 300 --limit 0"
    )


def loop_options() -> CompileOptions:
    """The compilation of every graph in this script (and of the prepared one)."""
    return CompileOptions(mode="diffusion", eval_contexts=0)


def run_prepared(prepared: Path, tsv: Path, ks: list[float]) -> tuple[str, dict[str, Any]]:
    """Stage 3: the prepared split, with the fine-tuned model's proposals from ``tsv``
    (and its weights, ``finetuned.npz`` beside it, when there) beside the compiled
    model's own."""
    z = load_arrays(prepared / "split.npz")
    meta = json.loads(str(z["meta"]))
    keys = z["keys"].tolist()
    src, dst, w, test = z["src"], z["dst"], z["w"], z["test"].astype(bool)
    train = ~test
    fine, dropped = read_proposals(tsv, keys, src[train], dst[train])
    log(f"{tsv}: {len(fine)} proposals ({dropped} rows dropped: linked, self or repeated)")
    weights_file = tsv.parent / "finetuned.npz"
    finetuned = weights_from_arrays(load_arrays(weights_file)) if weights_file.is_file() else None
    res = run(
        meta["graph"],
        keys,
        (src, dst, w, test),
        ks,
        loop_options(),
        extra={FINETUNED: fine},
        finetuned=finetuned,
        prepared=load_arrays(prepared / "weights.npz"),
    )
    res["proposals_file"] = {"path": str(tsv), "rows_dropped": dropped}
    info = tsv.parent / "finetune.json"
    if info.is_file():
        ft = json.loads(info.read_text())
        res["finetune"] = {"device": ft.get("device"), "proposals_from": ft.get("proposals_from")}
        src_run = ft.get("proposals_from")
        if src_run is not None:
            log(
                f"  fine-tuned: {src_run['run']}, weights of step {src_run['step']} "
                f"(held-out walk loss {src_run['held_out']:.4f}, "
                f"{src_run['held_out_at_init']:.4f} at step 0), on {ft.get('device')}"
            )
    return meta["graph"], res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--graphs", nargs="+", default=["bostrom", "wordnet"])
    ap.add_argument("--ball", type=int, default=3000, help="WordNet ball size (particles)")
    ap.add_argument("--centre", default="dog.n.01")
    ap.add_argument("--k", default="0.5,1,4", help="proposals staked, in held-out links")
    ap.add_argument("--no-figure", action="store_true")
    ap.add_argument("--figure", type=Path, help=f"the figure's file (default {FIGURE})")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument(
        "--prepare",
        type=Path,
        metavar="DIR",
        help="write the WordNet ball's split and fine-tuning inputs to DIR, and stop",
    )
    ap.add_argument("--walks", type=int, default=10000, help="fine-tuning walks (--prepare)")
    ap.add_argument("--procs", type=int, default=2, help="walk processes (--prepare)")
    ap.add_argument("--prepared", type=Path, metavar="DIR", help="a --prepare directory")
    ap.add_argument(
        "--proposals",
        type=Path,
        metavar="FILE",
        help="implicit links of the model fine-tuned on --prepared DIR, staked beside "
        "the compiled model's own",
    )
    args = ap.parse_args()
    ks = [float(x) for x in args.k.split(",")]
    if args.prepare is not None:
        os.environ.setdefault("NUMBA_NUM_THREADS", "1")
        prepare_loop(args.prepare.resolve(), args.ball, args.centre, args.walks, args.procs)
        return
    if (args.prepared is None) != (args.proposals is None):
        raise SystemExit("--prepared DIR and --proposals FILE go together")
    if not args.no_figure and importlib.util.find_spec("matplotlib") is None:
        # Said now, not after the runs: the figure is drawn last.
        raise SystemExit("the figure needs matplotlib (the bench extra): install it or --no-figure")
    opts = loop_options()
    print(
        f"compounding loop, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, dict[str, Any]] = {}
    if args.prepared is not None:
        label, results[label] = run_prepared(args.prepared, args.proposals, ks)
        table(label, results[label])
    for name in [] if args.prepared is not None else args.graphs:
        if name == "bostrom":
            g = read_bostrom(BOSTROM, skip_invalid=True)
            label = "bostrom sample"
        elif name == "wordnet":
            g, _ = wordnet_ball(args.ball, args.centre)
            label = f"WordNet ball of {args.ball:,} around {args.centre}"
        else:
            raise SystemExit(f"unknown graph {name!r}: bostrom or wordnet")
        keys = [str(k) for k in list(g.particles.keys())]
        results[label] = run(label, keys, split(g, HELD_OUT, SPLIT_SEED), ks, opts)
        table(label, results[label])
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
        log(f"wrote {args.json}")
    if not args.no_figure:
        default = FIGURE.with_name("compounding-finetune.png") if args.prepared else FIGURE
        figure(results, args.figure or default)


if __name__ == "__main__":
    main()
