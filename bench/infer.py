"""Benchmark of ``focusflow.infer``: link prediction on WordNet against baselines.

One process run, one protocol for every method:

1. **Split.** WordNet 3.0's synset-to-synset links (every relation but ``sense``
   and ``lemma``, which stay in the training graph) are grouped with their
   inverse counterpart where the data has one (hypernym <-> hyponym, the three
   holonym <-> meronym pairs, instance_*, domain_* <-> member_of_domain_*; the
   symmetric relations antonym, similar_to, verb_group, also_see,
   derivationally_related and attribute pair a link with its reverse). 10 % of
   the groups of each relation are held out (seed 0), both links of a group
   together: the test set. A second 10 % of the remaining groups (seed 1) is
   the validation set, scored on the training graph minus those links; the
   semcon weight of other relations is picked there, never on the test set.
2. **Task.** Given head h and relation r, rank every synset as the tail
   (lemma particles and h itself are masked out for every method alike);
   filtered: every other known true tail of (h, r) is removed from the ranking
   (known = training + test links for the test, training-minus-validation +
   validation links for the validation). Ties are broken uniformly at random,
   in expectation: MRR and hits@k are exact expectations over the tie order.
3. **Methods.** focus-flow inference (``Inference.predict([h],
   semcons={r: 1}, other_semcons=x)``, modes tri and diffusion); networkx
   personalized PageRank (``nx.pagerank(G, personalization={h: 1})`` on the
   weighted training DiGraph) on a small subsample, and the same power
   iteration batched in scipy (networkx's algorithm, dangling rule and stop
   rule; checked against networkx on that subsample) on the full sample;
   Adamic-Adar (``nx.adamic_adar_index`` on the undirected training graph,
   scored for the candidates within 2 hops of h, 0 elsewhere, which is exact);
   the compiled transformer (``focusflow.compile`` of the training graph,
   ``CompiledModel.predict([[h]], factors)``, with the same semcon weighting
   as focus-flow, and without: ``factors`` = None).
4. **Also.** Per-query latency (median, p95; queries that built a snapshot or
   warmed a cache excluded), focus-flow latency on an R-MAT graph of 2^20
   links, KL(phi*_c || q_c) of the compiled model against its layer count L,
   and the published WN18RR numbers as an anchor (a different split).

Run from the repository root::

    python bench/infer.py              # about 10-15 min on 2 cores
    python bench/infer.py --quick      # about 3 min
    python bench/infer.py --json infer.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.special import digamma

from focusflow.compile.evaluate import kl_divergence
from focusflow.compile.forward import forward_numpy
from focusflow.compile.pipeline import CompileOptions, compile_graph, with_layers, write
from focusflow.compile.runner import CompiledModel
from focusflow.focus import compute
from focusflow.graph.generators import rmat_edges
from focusflow.graph.wordnet import REL, RELATIONS, read_wordnet
from focusflow.infer import Inference, InferGraph, InferParams

#: Inverse relation pairs; a symmetric relation is its own inverse.
PAIRS = (
    ("hypernym", "hyponym"),
    ("instance_hypernym", "instance_hyponym"),
    ("member_holonym", "member_meronym"),
    ("substance_holonym", "substance_meronym"),
    ("part_holonym", "part_meronym"),
    ("domain_topic", "member_of_domain_topic"),
    ("domain_region", "member_of_domain_region"),
    ("domain_usage", "member_of_domain_usage"),
)
SYMMETRIC = (
    "antonym",
    "similar_to",
    "verb_group",
    "also_see",
    "derivationally_related",
    "attribute",
)
NOT_TESTED = ("sense", "lemma")
SEMCON_VALUES = (0.0, 0.1, 1.0)
HITS = (1, 3, 10)
#: Published WN18RR results (RotatE, Sun et al. 2019): a context anchor only.
ROTATE = {"mrr": 0.476, "hits@1": 0.428, "hits@3": 0.492, "hits@10": 0.571}
BITS = 19  # particle ids < 2^19 (WordNet has 264,965)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the split ----------------------------------------------------------------
def inverse_table() -> np.ndarray:
    inv = np.full(len(RELATIONS), -1, dtype=np.int64)
    for a, b in PAIRS:
        inv[REL[a]], inv[REL[b]] = REL[b], REL[a]
    for r in SYMMETRIC:
        inv[REL[r]] = REL[r]
    return inv


def group_keys(src: np.ndarray, dst: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """One int64 key per link, shared by a link and its inverse counterpart."""
    inv = inverse_table()
    r = rel.astype(np.int64)
    s, d = src.astype(np.int64), dst.astype(np.int64)
    ir = inv[r]
    canon = np.where(ir >= 0, np.minimum(r, ir), r)
    sym = ir == r
    flip = (ir >= 0) & ~sym & (r != canon)
    a = np.where(sym, np.minimum(s, d), np.where(flip, d, s))
    b = np.where(sym, np.maximum(s, d), np.where(flip, s, d))
    return (canon << (2 * BITS)) | (a << BITS) | b


def hold_out(keys: np.ndarray, rel: np.ndarray, eligible: np.ndarray, frac: float, seed: int):
    """A bool mask: ``frac`` of the key groups of each (canonical) relation."""
    rng = np.random.default_rng(seed)
    canon = keys >> (2 * BITS)
    held = np.zeros(len(keys), dtype=bool)
    for c in np.unique(canon[eligible]):
        uk = np.unique(keys[eligible & (canon == c)])
        pick = rng.choice(uk, size=max(1, round(frac * len(uk))), replace=False)
        held |= eligible & (canon == c) & np.isin(keys, pick)
    return held


def inverse_coverage(src, dst, rel) -> dict[str, float]:
    """Share of each relation's links whose inverse counterpart is in the data."""
    inv = inverse_table()
    have = set(
        ((rel.astype(np.int64) << (2 * BITS)) | (src.astype(np.int64) << BITS) | dst).tolist()
    )
    out = {}
    for r in range(len(RELATIONS)):
        if inv[r] < 0 or RELATIONS[r] in NOT_TESTED:
            continue
        sel = np.flatnonzero(rel == r)
        want = (inv[r] << (2 * BITS)) | (dst[sel].astype(np.int64) << BITS) | src[sel]
        out[RELATIONS[r]] = float(np.mean([k in have for k in want.tolist()]))
    return out


class Known:
    """True tails of (h, r) in a set of links, for filtering."""

    def __init__(self, src, dst, rel):
        self.tails: dict[tuple[int, int], list[int]] = defaultdict(list)
        for s, d, r in zip(src.tolist(), dst.tolist(), rel.tolist(), strict=True):
            self.tails[(s, r)].append(d)

    def others(self, h: int, r: int, t: int) -> np.ndarray:
        return np.array([x for x in self.tails.get((h, r), ()) if x != t], dtype=np.int64)


# --- ranking ------------------------------------------------------------------
def rank_stats(scores: np.ndarray, t: int, drop: np.ndarray, not_candidate: np.ndarray) -> dict:
    """Expected reciprocal rank and hits@k of ``t`` under random tie order."""
    s = np.array(scores, dtype=np.float64)
    s[not_candidate] = -np.inf
    s[drop] = -np.inf
    st = s[t]
    if not np.isfinite(st):
        st = -np.inf
    greater = int(np.count_nonzero(s > st))
    ties = int(np.count_nonzero(s == st)) - 1
    m = ties + 1  # t's rank is uniform over greater+1 .. greater+m
    rr = (digamma(greater + m + 1) - digamma(greater + 1)) / m
    out = {"rr": float(rr), "rank": greater + (m + 1) / 2}
    for k in HITS:
        out[f"hits@{k}"] = max(0, min(m, k - greater)) / m
    return out


def summarize(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    return {
        "n": len(rows),
        "mrr": float(np.mean([r["rr"] for r in rows])),
        **{f"hits@{k}": float(np.mean([r[f"hits@{k}"] for r in rows])) for k in HITS},
        "mean_rank": float(np.mean([r["rank"] for r in rows])),
    }


def latency(times: list[float]) -> dict:
    if not times:
        return {}
    ms = np.asarray(times) * 1e3
    return {
        "queries": len(ms),
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
    }


class Task:
    """Queries (h, r, t) with their filter; scoring helpers shared by every method."""

    def __init__(self, queries: np.ndarray, known: Known, is_synset: np.ndarray):
        self.q = queries  # [m, 3] h, r, t
        self.known = known
        self.not_candidate = ~is_synset

    def score(self, i: int, scores: np.ndarray) -> dict:
        h, r, t = (int(x) for x in self.q[i])
        drop = np.append(self.known.others(h, r, t), h)
        return rank_stats(scores, t, drop, self.not_candidate)

    def by(self, count: int, keyed_by_relation: bool) -> dict[tuple, list[int]]:
        """The first ``count`` queries grouped by (r, h) (or by h), in r order."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i in range(min(count, len(self.q))):
            h, r, _ = (int(x) for x in self.q[i])
            groups[(r, h) if keyed_by_relation else (h,)].append(i)
        return dict(sorted(groups.items()))


# --- methods ------------------------------------------------------------------
def run_focusflow(
    ig: InferGraph,
    task: Task,
    count: int,
    mode: str,
    other: float,
    *,
    tol: float = 1e-4,
    lift: dict[float, np.ndarray] | None = None,
    path: str = "auto",
) -> dict:
    """Focus-flow inference on the first ``count`` queries; ``lift`` scores
    ``phi*_c / phi**beta`` as well (beta -> phi*) for the proposals. ``path``
    is ``InferParams.path``; the share of answers the local path gave is
    ``local_share``."""
    engine = Inference(ig, InferParams(mode=mode, tol=tol, path=path))
    local = 0
    rows: list[tuple[int, dict]] = []
    lifted: dict[float, list[dict]] = defaultdict(list)
    warm, cold, iters = [], [], []
    last_r = None
    for (r, h), idx in task.by(count, True).items():
        name = "wordnet:" + RELATIONS[r]
        t0 = time.perf_counter()
        pred = engine.predict([h], semcons={name: 1.0}, other_semcons=other)
        dt = time.perf_counter() - t0
        (cold if r != last_r else warm).append(dt)
        last_r = r
        iters.append(pred.focus.iterations if pred.focus is not None else 0)
        local += pred.path == "local"
        for i in idx:
            rows.append((i, task.score(i, pred.probs)))
            for beta, phi in (lift or {}).items():
                lifted[beta].append(task.score(i, pred.probs / np.maximum(phi, 1e-300) ** beta))
    rows.sort()
    out = {
        "method": f"focus-flow {mode}" + ("" if path == "auto" else f" ({path})"),
        "other_semcons": other,
        "tol": tol,
        "path": path,
        "local_share": local / max(len(iters), 1),
        **summarize([r for _, r in rows]),
        "latency": latency(warm),
        "cold_first_query_ms": float(np.mean(cold) * 1e3) if cold else None,
        "solver_iterations_mean": float(np.mean(iters)) if iters else None,
        "per_query": [r for _, r in rows],
    }
    if lift:
        out["lift"] = {str(b): summarize(v) for b, v in lifted.items()}
    return out


def weighted_csr(ig: InferGraph) -> sp.csr_matrix:
    a = sp.csr_matrix((ig.weight, (ig.src, ig.dst)), shape=(ig.n, ig.n))
    a.sum_duplicates()
    a.eliminate_zeros()
    return a


def ppr_scipy(a: sp.csr_matrix, heads: np.ndarray, alpha=0.85, max_iter=100, tol=1e-6):
    """networkx's ``_pagerank_scipy`` for many one-particle personalizations at
    once: the same update, dangling mass to the personalization, and its stop
    rule (L1 change < n * tol per column). Returns an n x len(heads) array."""
    n = a.shape[0]
    out_w = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros(n)
    np.divide(1.0, out_w, out=inv, where=out_w != 0)
    pt = (sp.diags(inv) @ a).T.tocsr()
    dangling = out_w == 0
    cols = np.arange(len(heads))
    x = np.full((n, len(heads)), 1.0 / n)
    done = np.zeros(len(heads), dtype=bool)
    result = np.zeros_like(x)
    for _ in range(max_iter):
        last = x
        x = alpha * (pt @ last)
        x[heads, cols] += alpha * last[dangling].sum(axis=0) + (1 - alpha)
        err = np.abs(x - last).sum(axis=0)
        newly = (err < n * tol) & ~done
        result[:, newly] = x[:, newly]
        done |= newly
        if done.all():
            return result
    raise RuntimeError("personalized PageRank did not converge")


def run_ppr_scipy(
    a: sp.csr_matrix, task: Task, count: int, batch: int, keep: int
) -> tuple[dict, dict]:
    """Batched PPR on the first ``count`` queries; the score vectors of the heads
    of the first ``keep`` queries are returned for the check against networkx."""
    groups = list(task.by(count, False).items())
    kept_heads = {int(task.q[i][0]) for i in range(min(keep, len(task.q)))}
    rows, per_query_s = [], []
    scores_of: dict[int, np.ndarray] = {}
    for start in range(0, len(groups), batch):
        chunk = groups[start : start + batch]
        heads = np.array([g[0][0] for g in chunk], dtype=np.int64)
        t0 = time.perf_counter()
        x = ppr_scipy(a, heads)
        per_query_s.append((time.perf_counter() - t0) / len(heads))
        for j, ((h,), idx) in enumerate(chunk):
            col = x[:, j]
            if h in kept_heads:
                scores_of[h] = col.copy()
            for i in idx:
                rows.append((i, task.score(i, col)))
    rows.sort()
    return (
        {
            "method": "PPR, scipy batched (networkx's algorithm)",
            **summarize([r for _, r in rows]),
            "latency": {
                "amortized_ms_per_query": float(np.mean(per_query_s) * 1e3),
                "batch": batch,
            },
            "per_query": [r for _, r in rows],
        },
        scores_of,
    )


def run_ppr_networkx(g: nx.DiGraph, task: Task, count: int, scipy_scores: dict) -> dict:
    rows, times, l1 = [], [], []
    n = g.number_of_nodes()
    for (h,), idx in task.by(count, False).items():
        t0 = time.perf_counter()
        pr = nx.pagerank(g, alpha=0.85, personalization={h: 1.0}, weight="weight")
        times.append(time.perf_counter() - t0)
        s = np.zeros(n)
        s[np.fromiter(pr.keys(), dtype=np.int64)] = np.fromiter(pr.values(), dtype=np.float64)
        if h in scipy_scores:
            l1.append(float(np.abs(s - scipy_scores[h]).sum()))
        for i in idx:
            rows.append((i, task.score(i, s)))
    rows.sort()
    return {
        "method": "PPR, networkx pagerank",
        **summarize([r for _, r in rows]),
        "latency": latency(times),
        "max_l1_vs_scipy_batched": max(l1) if l1 else None,
        "per_query": [r for _, r in rows],
    }


def run_adamic_adar(u: nx.Graph, task: Task, count: int, is_synset: np.ndarray) -> dict:
    rows, times, sizes = [], [], []
    n = u.number_of_nodes()
    for (h,), idx in task.by(count, False).items():
        t0 = time.perf_counter()
        near = set()
        for v in u[h]:
            near.add(v)
            near.update(u[v])
        near.discard(h)
        cands = [c for c in near if is_synset[c]]
        s = np.zeros(n)
        for _, c, p in nx.adamic_adar_index(u, [(h, c) for c in cands]):
            s[c] = p
        times.append(time.perf_counter() - t0)
        sizes.append(len(cands))
        for i in idx:
            rows.append((i, task.score(i, s)))
    rows.sort()
    return {
        "method": "Adamic-Adar, networkx",
        **summarize([r for _, r in rows]),
        "latency": latency(times),
        "candidates_within_2_hops_median": float(np.median(sizes)),
        "per_query": [r for _, r in rows],
    }


COMPILED = "compiled transformer (ONNX)"
COMPILED_PLAIN = "compiled transformer (ONNX), no semcon input"


def run_compiled(model: CompiledModel, task: Task, count: int, other: float | None) -> dict:
    """The compiled model on the first ``count`` queries: with ``other`` set, each
    query weighs its relation 1 and the rest ``other`` (as focus-flow is asked);
    with None, every relation at 1."""
    model.predict(np.array([[int(task.q[0, 0])]]))  # warm-up
    rows, times = [], []
    for (r, h), idx in task.by(count, True).items():
        factors = None
        if other is not None:
            factors = model.factors({"wordnet:" + RELATIONS[r]: 1.0}, other)
        t0 = time.perf_counter()
        q = model.predict(np.array([[h]], dtype=np.int64), factors)[0]
        times.append(time.perf_counter() - t0)
        for i in idx:
            rows.append((i, task.score(i, q)))
    rows.sort()
    return {
        "method": COMPILED if other is not None else COMPILED_PLAIN,
        "other_semcons": other,
        **summarize([r for _, r in rows]),
        "latency": latency(times),
        "per_query": [r for _, r in rows],
    }


def kl_against_layers(ig, c, graph, heads, layer_values, task, count) -> list[dict]:
    """KL(phi*_c || q_c) for contexts [h] and hits@10 of forward_numpy, per L."""
    exact = {}
    for mode in ("tri", "diffusion"):
        engine = Inference(ig, InferParams(mode=mode, context_weight=1.0))
        exact[mode] = [engine.predict([int(h)]).probs for h in heads]
    phi = c.focus.focus / c.focus.focus.sum()
    base = {m: float(np.mean([kl_divergence(p, phi) for p in exact[m]])) for m in exact}
    out = []
    groups = task.by(count, False)
    for layers in layer_values:
        w = c.weights if layers == c.weights.meta["layers"] else with_layers(c, graph, layers)
        row = {"layers": layers, **{f"kl_phi_alone_{m}": base[m] for m in base}}
        for mode, ps in exact.items():
            kls = [
                kl_divergence(p, forward_numpy(w, np.array([[int(h)]]))[0])
                for h, p in zip(heads, ps, strict=True)
            ]
            row[f"kl_{mode}_mean"] = float(np.mean(kls))
            row[f"kl_{mode}_median"] = float(np.median(kls))
        ranks = []
        for (h,), idx in groups.items():
            q = forward_numpy(w, np.array([[h]]))[0]
            ranks.extend(task.score(i, q) for i in idx)
        row["test"] = summarize(ranks)
        out.append(row)
        log(
            f"  L={layers}: KL tri {row['kl_tri_mean']:.3f}, diffusion "
            f"{row['kl_diffusion_mean']:.3f}; hits@10 {row['test']['hits@10']:.3f}"
        )
    return out


def rmat_latency(queries: int, seed: int) -> list[dict]:
    src, dst, w = rmat_edges(16, 16, seed=seed)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], w[keep]
    n = 1 << 16
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], np.arange(n).astype(str).tolist()
    )
    rng = np.random.default_rng(seed)
    has_out = np.unique(src)
    ctx = rng.choice(has_out, size=queries + 2, replace=False)
    out = []
    for mode in ("tri", "diffusion"):
        engine = Inference(ig, InferParams(mode=mode))
        for h in ctx[:2]:
            engine.predict([int(h)])  # warm-up: snapshot, operator storage, JIT
        times = []
        for h in ctx[2:]:
            t0 = time.perf_counter()
            engine.predict([int(h)])
            times.append(time.perf_counter() - t0)
        out.append({"mode": mode, "links": len(src), "particles": n, **latency(times)})
        log(
            f"  R-MAT 16 ({len(src)} links) {mode}: median {out[-1]['median_ms']:.1f} ms, "
            f"p95 {out[-1]['p95_ms']:.1f} ms"
        )
    return out


# --- the run --------------------------------------------------------------------
def pair(s: np.ndarray, d: np.ndarray) -> np.ndarray:
    return (np.minimum(s, d).astype(np.int64) << BITS) | np.maximum(s, d)


def sample_queries(wn, mask: np.ndarray, count: int, seed: int) -> np.ndarray:
    idx = np.flatnonzero(mask)
    rng = np.random.default_rng(seed)
    pick = rng.choice(idx, size=min(count, len(idx)), replace=False)
    return np.stack([wn.src[pick], wn.rel[pick], wn.dst[pick]], axis=1).astype(np.int64)


def infer_graph(wn, mask) -> tuple[InferGraph, object]:
    g = wn.to_graph(mask)
    if g.n_particles != wn.n_particles:
        raise SystemExit("a particle lost all its links in the split: ids would shift")
    return InferGraph.from_cybergraph(g), g


def fmt_row(name: str, s: dict, lat: str) -> str:
    return (
        f"| {name} | {s['n']} | {s['mrr']:.3f} | {s['hits@1']:.3f} | {s['hits@3']:.3f} | "
        f"{s['hits@10']:.3f} | {lat} |"
    )


def lat_text(r: dict) -> str:
    lat = r.get("latency", {})
    if "median_ms" in lat:
        return f"{lat['median_ms']:.2f} / {lat['p95_ms']:.2f}"
    if "amortized_ms_per_query" in lat:
        return f"{lat['amortized_ms_per_query']:.1f} (amortized, batch {lat['batch']})"
    return "-"


def subset(result: dict, count: int) -> dict:
    """A method's metrics over the first ``count`` queries (a common subsample)."""
    return summarize(result["per_query"][:count]) if "per_query" in result else {}


def compare_paths(ig: InferGraph, task: Task, counts: dict[str, int]) -> None:
    """Hits@10 and MRR of both of inference's paths on the same test queries, with
    the other semcons at the validated 0.1 (bench/RESULTS.md): ``auto`` (a local
    push first, the whole graph when it would reach too far) against the
    whole-graph solve alone, and the share of answers the local path gave."""
    for mode, count in counts.items():
        for path in ("whole-graph", "auto"):
            r = run_focusflow(ig, task, count, mode, 0.1, path=path)
            log(
                f"  {mode} {path:11s}: {count} queries, hits@10 {r['hits@10']:.3f}, "
                f"MRR {r['mrr']:.3f}, local {r['local_share']:.0%}, "
                f"median {r['latency']['median_ms']:.1f} ms"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer queries (about 3 min)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--paths",
        action="store_true",
        help="only the test split's focus-flow queries, by each path (local first, whole graph)",
    )
    args = ap.parse_args()
    # Query counts (prefixes of one seeded sample), sized for ~10 min on 2 cores:
    # test, diffusion, tri, networkx, validation diffusion / tri, KL contexts, R-MAT.
    quick = (300, 100, 30, 3, 60, 15, 4, 8)
    counts = quick if args.quick else (1000, 200, 50, 5, 100, 20, 8, 10)
    n_test, n_diff, n_tri, n_nx, n_val_diff, n_val_tri, n_kl, n_rmat = counts
    t_start = time.perf_counter()
    out: dict = {
        "cpus": os.cpu_count(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "quick": args.quick,
        "seed": args.seed,
    }

    log("reading WordNet")
    wn = read_wordnet()
    testable = ~np.isin(wn.rel, [REL[r] for r in NOT_TESTED])
    keys = group_keys(wn.src, wn.dst, wn.rel)
    out["inverse_coverage"] = inverse_coverage(wn.src, wn.dst, wn.rel)
    test = hold_out(keys, wn.rel, testable, 0.10, args.seed)
    val = hold_out(keys, wn.rel, testable & ~test, 0.10, args.seed + 1)
    train = ~test
    log(f"links {wn.n_links}: test {test.sum()}, validation {val.sum()}, training {train.sum()}")
    out["split"] = {
        "links": int(wn.n_links),
        "testable": int(testable.sum()),
        "test": int(test.sum()),
        "validation": int(val.sum()),
        "training": int(train.sum()),
    }
    # Leakage check: a test pair (h, t) still joined by some training link.
    train_pairs = np.unique(pair(wn.src[train & testable], wn.dst[train & testable]))
    test_q = sample_queries(wn, test, n_test, args.seed)
    joined = np.isin(pair(test_q[:, 0], test_q[:, 2]), train_pairs)
    out["split"]["sampled_test_pairs_still_linked_in_training"] = float(joined.mean())
    val_q = sample_queries(wn, val, max(n_val_diff, n_val_tri), args.seed + 1)

    t = time.perf_counter()
    ig, g = infer_graph(wn, train)
    ig_val, _ = infer_graph(wn, train & ~val)
    out["build_s"] = time.perf_counter() - t
    test_task = Task(
        test_q, Known(wn.src[testable], wn.dst[testable], wn.rel[testable]), wn.is_synset
    )
    val_known = train & testable
    val_task = Task(
        val_q, Known(wn.src[val_known], wn.dst[val_known], wn.rel[val_known]), wn.is_synset
    )

    if args.paths:
        compare_paths(ig, test_task, {"diffusion": n_diff, "tri": n_tri})
        return

    # 1. validation: other_semcons, tol, and a lift of phi*_c by the global focus.
    log("validation: other_semcons per mode")
    out["validation"] = {}
    chosen = {}
    gphi = {}
    for mode, count in (("diffusion", n_val_diff), ("tri", n_val_tri)):
        f = np.asarray(compute(ig_val.snapshot(None), mode=mode, alpha=0.85).focus, dtype=float)
        gphi[mode] = f / f.sum()
        rows = []
        for other in SEMCON_VALUES:
            r = run_focusflow(
                ig_val, val_task, count, mode, other, lift={0.5: gphi[mode], 1.0: gphi[mode]}
            )
            r.pop("per_query")
            rows.append(r)
            log(
                f"  {mode} other={other}: hits@10 {r['hits@10']:.3f}, MRR {r['mrr']:.3f}, "
                f"median {r['latency']['median_ms']:.1f} ms"
            )
        best = max(rows, key=lambda r: (r["hits@10"], r["mrr"]))
        chosen[mode] = best["other_semcons"]
        out["validation"][mode] = rows
    log(f"  chosen on validation: {chosen}")
    log("validation: proposals (tol 1e-3; phi*_c / phi*^beta)")
    proposals = []
    for mode, count in (("diffusion", n_val_diff), ("tri", n_val_tri)):
        r = next(x for x in out["validation"][mode] if x["other_semcons"] == chosen[mode])
        proposals.append(r)
        r3 = run_focusflow(ig_val, val_task, count, mode, chosen[mode], tol=1e-3)
        r3.pop("per_query")
        proposals.append(r3)
        log(
            f"  {mode}: tol 1e-4 hits@10 {r['hits@10']:.3f} ({r['latency']['median_ms']:.1f} ms)"
            f", tol 1e-3 {r3['hits@10']:.3f} ({r3['latency']['median_ms']:.1f} ms); lift 0.5 "
            f"{r['lift']['0.5']['hits@10']:.3f}, lift 1 {r['lift']['1.0']['hits@10']:.3f}"
        )
    out["validation"]["proposals"] = proposals

    # 2. test: focus-flow with the validated choice.
    results = []
    for mode, count in (("diffusion", n_diff), ("tri", n_tri)):
        log(f"test: focus-flow {mode}, other_semcons={chosen[mode]}, {count} queries")
        results.append(run_focusflow(ig, test_task, count, mode, chosen[mode]))
        log(f"  hits@10 {results[-1]['hits@10']:.3f}, MRR {results[-1]['mrr']:.3f}")
    ours = {r["method"]: r for r in results}

    # 3. baselines.
    a = weighted_csr(ig)
    log("test: PPR (scipy batched, networkx's algorithm)")
    ppr, ppr_scores = run_ppr_scipy(a, test_task, n_test, batch=64, keep=n_nx)
    results.append(ppr)
    log(f"  hits@10 {ppr['hits@10']:.3f}, MRR {ppr['mrr']:.3f}")
    log("test: networkx pagerank on a subsample")
    t = time.perf_counter()
    dg = nx.DiGraph()
    dg.add_nodes_from(range(ig.n))
    coo = a.tocoo()
    dg.add_weighted_edges_from(
        zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist(), strict=True)
    )
    out["networkx_digraph_build_s"] = time.perf_counter() - t
    results.append(run_ppr_networkx(dg, test_task, n_nx, ppr_scores))
    log(
        f"  {n_nx} queries, median {results[-1]['latency']['median_ms']:.0f} ms, "
        f"max L1 vs scipy {results[-1]['max_l1_vs_scipy_batched']}"
    )
    del dg, ppr_scores
    log("test: Adamic-Adar")
    und = nx.Graph()
    und.add_nodes_from(range(ig.n))
    und.add_edges_from(zip(coo.row.tolist(), coo.col.tolist(), strict=True))
    results.append(run_adamic_adar(und, test_task, n_test, wn.is_synset))
    log(f"  hits@10 {results[-1]['hits@10']:.3f}, MRR {results[-1]['mrr']:.3f}")
    del und, coo

    # 4. the compiled transformer.
    log("compiling the training graph (max_layers 12)")
    t = time.perf_counter()
    c = compile_graph(g, CompileOptions(seed=args.seed, eval_contexts=0, max_layers=12))
    with tempfile.TemporaryDirectory() as tmp:
        report = write(c, g, tmp, eval_contexts=0)
        compile_s = time.perf_counter() - t
        model = CompiledModel.load(tmp)
        comp = run_compiled(model, test_task, n_test, chosen["diffusion"])
        comp_plain = run_compiled(model, test_task, n_test, None)
        del model
    comp["compile_s"] = compile_s
    comp["compile_report"] = {
        k: report[k]
        for k in ("d", "h_star", "heads", "L_star_raw", "L_star", "kappa", "parameters")
    }
    results.extend([comp, comp_plain])
    log(
        f"  compile {compile_s:.1f} s; hits@10 {comp['hits@10']:.3f} (without semcons "
        f"{comp_plain['hits@10']:.3f}), median {comp['latency']['median_ms']:.2f} ms"
    )
    log("KL(phi*_c || q_c) against the layer count")
    heads = test_q[:n_kl, 0]
    out["kl_vs_layers"] = kl_against_layers(ig, c, g, heads, (2, 4, 8, 12), test_task, n_tri)
    del c

    log("R-MAT latency (2^16 particles, 2^20 links)")
    out["rmat"] = rmat_latency(n_rmat, args.seed)

    # --- report -----------------------------------------------------------------
    head = (
        "| method | queries | MRR | hits@1 | hits@3 | hits@10 | latency median / p95 ms |\n"
        "|---|---:|---:|---:|---:|---:|---|"
    )
    print(
        f"\nWordNet 3.0, filtered tail prediction; {out['split']['test']} test links "
        f"({n_test} sampled), training graph {out['split']['training']} links"
    )
    print("\nValidation (training minus validation links; picks other_semcons):\n")
    print("| mode | other_semcons | queries | MRR | hits@10 | median ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in ("diffusion", "tri"):
        for r in out["validation"][mode]:
            mark = " (chosen)" if r["other_semcons"] == chosen[mode] else ""
            print(
                f"| {mode} | {r['other_semcons']}{mark} | {r['n']} | {r['mrr']:.3f} | "
                f"{r['hits@10']:.3f} | {r['latency']['median_ms']:.1f} |"
            )
    print("\nProposals on validation (chosen other_semcons):\n")
    print("| mode | variant | MRR | hits@10 | median ms |\n|---|---|---:|---:|---:|")
    for r in proposals:
        print(
            f"| {r['method']} | tol {r['tol']:g} | {r['mrr']:.3f} | {r['hits@10']:.3f} | "
            f"{r['latency']['median_ms']:.1f} |"
        )
        for beta, s in r.get("lift", {}).items():
            print(
                f"| {r['method']} | phi*_c / phi*^{beta} | {s['mrr']:.3f} | "
                f"{s['hits@10']:.3f} | - |"
            )
    print("\nTest, each method on its own query count (the first N of one seeded sample):\n")
    print(head)
    for r in results:
        print(fmt_row(r["method"], r, lat_text(r)))
    print(f"\nTest, every method on the common first {n_tri} queries:\n")
    print(head)
    common = {}
    for r in results:
        if r["n"] >= n_tri:
            common[r["method"]] = subset(r, n_tri)
            print(fmt_row(r["method"], common[r["method"]], lat_text(r)))
    nxr = next(r for r in results if r["method"] == "PPR, networkx pagerank")
    ppr_nx_sub = subset(ppr, nxr["n"])
    print(
        f"\nnetworkx pagerank on its {nxr['n']} queries: hits@10 {nxr['hits@10']:.3f}, "
        f"MRR {nxr['mrr']:.3f}; the scipy batched PPR on the same: hits@10 "
        f"{ppr_nx_sub['hits@10']:.3f}, MRR {ppr_nx_sub['mrr']:.3f}; max L1 between them "
        f"{nxr['max_l1_vs_scipy_batched']:.2e}"
    )
    print(
        f"\nAnchor (published, WN18RR split, not comparable): RotatE MRR {ROTATE['mrr']}, "
        f"hits@10 {ROTATE['hits@10']}"
    )

    print(
        "\nKL(phi*_c || q_c) of the compiled model, contexts [h] of the first "
        f"{n_kl} test queries; hits@10 of forward_numpy on the first {n_tri}:\n"
    )
    print(
        "| L | KL tri mean (phi* alone) | KL diffusion mean (phi* alone) | hits@10 |\n"
        "|---:|---|---|---:|"
    )
    for r in out["kl_vs_layers"]:
        print(
            f"| {r['layers']} | {r['kl_tri_mean']:.3f} ({r['kl_phi_alone_tri']:.3f}) | "
            f"{r['kl_diffusion_mean']:.3f} ({r['kl_phi_alone_diffusion']:.3f}) | "
            f"{r['test']['hits@10']:.3f} |"
        )
    print("\nR-MAT scale 16, edge factor 16:\n")
    for r in out["rmat"]:
        print(
            f"  {r['mode']}: {r['links']} links, median {r['median_ms']:.1f} ms, "
            f"p95 {r['p95_ms']:.1f} ms ({r['queries']} queries after warm-up)"
        )

    # Per relation (hits@10 on the full sample where a method ran on it).
    per_rel: dict = {}
    rels = test_q[:, 1]
    print("\nhits@10 per relation (queries among the first N of each method):\n")
    names = [r["method"] for r in results if "per_query" in r and r["n"] >= n_tri]
    print("| relation | " + " | ".join(names) + " |\n|---|" + "---:|" * len(names))
    for rel_id in np.unique(rels[:n_tri]):
        cells = []
        for r in results:
            if r["method"] not in names:
                continue
            sel = [q for i, q in enumerate(r["per_query"]) if rels[i] == rel_id]
            cells.append(f"{np.mean([q['hits@10'] for q in sel]):.2f} ({len(sel)})" if sel else "-")
            per_rel.setdefault(RELATIONS[rel_id], {})[r["method"]] = cells[-1]
        print(f"| {RELATIONS[rel_id]} | " + " | ".join(cells) + " |")
    out["per_relation_hits10"] = per_rel

    # Ratios and goals, on the common subsample.
    ff = {m: common[f"focus-flow {m}"] for m in ("tri", "diffusion")}
    best_ff_mode = max(ff, key=lambda m: ff[m]["hits@10"])
    best_ff = ff[best_ff_mode]
    baselines = {k: v for k, v in common.items() if not k.startswith(("focus-flow", "compiled"))}
    comp_c = common[COMPILED]
    ratios = {}
    print(f"\nRatios on the common {n_tri} queries:")
    for m, s in ff.items():
        for b, bs in baselines.items():
            ratios[f"{m} hits@10 / {b}"] = s["hits@10"] / max(bs["hits@10"], 1e-12)
    for m, s in ff.items():
        ratios[f"compiled hits@10 / {m}"] = comp_c["hits@10"] / max(s["hits@10"], 1e-12)
        ratios[f"compiled latency / {m}"] = (
            comp["latency"]["median_ms"] / ours[f"focus-flow {m}"]["latency"]["median_ms"]
        )
    for k, v in ratios.items():
        print(f"  {k}: {v:.3f}")
    rmat_ms = {r["mode"]: r["median_ms"] for r in out["rmat"]}
    goals = {
        "focus-flow at or above both baselines on hits@10": all(
            best_ff["hits@10"] >= bs["hits@10"] for bs in baselines.values()
        ),
        "compiled within 20% of focus-flow hits@10": comp_c["hits@10"] >= 0.8 * best_ff["hits@10"],
        "compiled at 1/100 of focus-flow latency": comp["latency"]["median_ms"]
        <= 0.01 * ours[f"focus-flow {best_ff_mode}"]["latency"]["median_ms"],
        "focus-flow tri under 50 ms on 10^6 links": rmat_ms["tri"] < 50,
        "focus-flow diffusion under 50 ms on 10^6 links": rmat_ms["diffusion"] < 50,
    }
    print(f"\nGoals (focus-flow = its best mode on the common sample, {best_ff_mode}):")
    for k, v in goals.items():
        print(f"  {k}: {'met' if v else 'NOT met'}")
    out.update(
        {
            "results": results,
            "chosen_other_semcons": chosen,
            "common": common,
            "ratios": ratios,
            "goals": goals,
            "rotate_wn18rr": ROTATE,
            "counts": {
                "test": n_test,
                "diffusion": n_diff,
                "tri": n_tri,
                "networkx": n_nx,
                "val_diffusion": n_val_diff,
                "val_tri": n_val_tri,
                "kl": n_kl,
            },
            "total_s": time.perf_counter() - t_start,
        }
    )
    print(f"\ntotal {out['total_s']:.0f} s")
    if args.json is not None:
        for r in results:
            r.pop("per_query", None)
        args.json.write_text(json.dumps(out, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
