"""The compiled transformer's fidelity against its depth, and d*'s bias from a top-k spectrum.

Two questions about ``focusflow.compile`` (docs/compile.md), one process run:

1. **Layers.** The compiler computes L* = 180 for the bostrom sample and 416
   for WordNet but builds 12. Does a deeper model agree better with the
   engine? Each graph is compiled once; the weights are rebuilt at
   L = 2, 6, 12, 24, 48, 96, 180 (``pipeline.with_layers``: only the depth
   changes) and measured the way the compile docs measure them:
   KL(phi*_c || q_c) against exact personalized focus (tri, as compiled,
   and diffusion, the operator the layers compile) with phi* alone as the
   baseline, and on WordNet hits@10 of held-out links (bench/infer.py's split
   and task; the model is compiled from the training graph) with the query's
   relation weighed at 1 and the others at 0.1, and without weighing. The
   forward pass is ``forward_numpy`` (the ONNX graph is tested equal to it);
   the bostrom models are also exported and timed in onnxruntime.
2. **d*.** d* = exp(H) of the normalised singular values of
   ``diag(sqrt(phi*)) A`` is computed from the top k. On the bostrom sample
   the full spectrum is a dense SVD, so d* from the top k (exact and
   randomized, as the compiler computes it) is shown for k = 16 .. all
   against the full value, with the interval the top k and the Frobenius
   norm allow (``dims.effective_rank_bounds``). WordNet's top-k spectra
   (randomized) at k = 64 .. 512 show how d* and the interval move there.

Run from the repository root::

    python bench/compile_fidelity.py            # about 8 min on 2 cores
    python bench/compile_fidelity.py --no-wordnet
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from focusflow.compile.dims import effective_rank, effective_rank_bounds
from focusflow.compile.evaluate import kl_divergence, sample_contexts
from focusflow.compile.forward import forward_numpy
from focusflow.compile.onnx_export import export
from focusflow.compile.pipeline import CompileOptions, compile_graph, with_layers
from focusflow.compile.svd import randomized_svd
from focusflow.focus.personal import personalized_focus
from focusflow.graph.importers import read_bostrom
from focusflow.graph.semcons import SemconNames
from focusflow.graph.wordnet import REL, RELATIONS, read_wordnet
from focusflow.infer import Inference, InferGraph, InferParams

# bench/infer.py's split and ranking (this script's directory is on sys.path).
from infer import NOT_TESTED, Known, Task, group_keys, hold_out, sample_queries, summarize

ROOT = Path(__file__).resolve().parents[1]
BOSTROM = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
FIGURE = ROOT / "docs" / "figures" / "compile_layers.png"
FIGURE_DIMS = ROOT / "docs" / "figures" / "compile_dstar.png"
LAYERS = (2, 6, 12, 24, 48, 96, 180)
MODES = ("tri", "diffusion")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kl_rows(exact: dict[str, list[np.ndarray]], rows: list[np.ndarray], w) -> dict:
    """Mean and median KL(phi*_c || q_c) per mode over the contexts ``rows``."""
    qs = [forward_numpy(w, r)[0] for r in rows]
    out = {}
    for m, ps in exact.items():
        kls = [kl_divergence(p, q) for p, q in zip(ps, qs, strict=True)]
        out[f"kl_{m}_mean"] = float(np.mean(kls))
        out[f"kl_{m}_median"] = float(np.median(kls))
    return out


def onnx_latency(w, vocab: int, runs: int = 100) -> tuple[float, int]:
    """Median ms of a 1 x 16 context in onnxruntime, and the model's bytes."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        files = export(w, Path(tmp) / "model.onnx")
        size = sum(f.stat().st_size for f in files)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(Path(tmp) / "model.onnx"), opts)
        rng = np.random.default_rng(0)
        batches = [rng.integers(0, vocab, (1, 16)).astype(np.int64) for _ in range(runs)]
        sess.run(None, {"particles": batches[0]})
        times = []
        for b in batches:
            t = time.perf_counter()
            sess.run(None, {"particles": b})
            times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3), size


def layers_bostrom(args) -> dict:
    log("bostrom sample: compile, exact personalized focus of the contexts")
    g = read_bostrom(BOSTROM, skip_invalid=True)
    c = compile_graph(g, CompileOptions(seed=0, eval_contexts=0))
    if args.dims_only:
        return {"compiled": c}
    phi = np.asarray(c.focus.focus, dtype=np.float64)
    contexts = sample_contexts(phi, args.contexts, 0)
    rows = [np.asarray(ctx, dtype=np.int64)[None, :] for ctx in contexts]
    exact: dict[str, list[np.ndarray]] = {}
    for m in MODES:
        exact[m] = []
        for ctx in contexts:
            f = personalized_focus(g, ctx, x0=phi, mode=m, alpha=0.85).focus
            exact[m].append(f / f.sum())
    base = phi / phi.sum()
    out = {
        "graph": "bostrom sample",
        "L_star_raw": c.report["L_star_raw"],
        "d": c.weights.dim,
        "contexts": len(contexts),
        "kl_phi_alone": {
            m: float(np.mean([kl_divergence(p, base) for p in exact[m]])) for m in MODES
        },
        "rows": [],
    }
    for layers in LAYERS:
        w = with_layers(c, g, layers)
        row = {"layers": layers, **kl_rows(exact, rows, w)}
        row["onnx_ms"], row["onnx_bytes"] = onnx_latency(w, g.n_particles)
        out["rows"].append(row)
        log(
            f"  L={layers}: KL tri {row['kl_tri_mean']:.3f}, diffusion "
            f"{row['kl_diffusion_mean']:.3f}; ONNX {row['onnx_ms']:.2f} ms"
        )
    out["compiled"] = c
    return out


def layers_wordnet(args) -> dict:
    log("WordNet: bench/infer.py's split, compile the training graph")
    wn = read_wordnet()
    testable = ~np.isin(wn.rel, [REL[r] for r in NOT_TESTED])
    keys = group_keys(wn.src, wn.dst, wn.rel)
    test = hold_out(keys, wn.rel, testable, 0.10, 0)
    g = wn.to_graph(~test)
    if g.n_particles != wn.n_particles:
        raise SystemExit("a particle lost all its links in the split: ids would shift")
    test_q = sample_queries(wn, test, args.queries, 0)
    task = Task(test_q, Known(wn.src[testable], wn.dst[testable], wn.rel[testable]), wn.is_synset)
    t = time.perf_counter()
    c = compile_graph(g, CompileOptions(seed=0, eval_contexts=0))
    log(f"  compiled in {time.perf_counter() - t:.0f} s (L* raw {c.report['L_star_raw']})")
    if args.dims_only:
        return {"compiled": c}
    names = SemconNames(tuple(c.report["semcons"]))
    ig = InferGraph.from_cybergraph(g)
    heads = test_q[: args.kl_queries, 0]
    exact = {}
    for m in MODES:
        engine = Inference(ig, InferParams(mode=m, context_weight=1.0))
        exact[m] = [engine.predict([int(h)]).probs for h in heads]
    phi = c.focus.focus / c.focus.focus.sum()
    out = {
        "graph": "WordNet (training split)",
        "L_star_raw": c.report["L_star_raw"],
        "d": c.weights.dim,
        "contexts": len(heads),
        "kl_phi_alone": {
            m: float(np.mean([kl_divergence(p, phi) for p in exact[m]])) for m in MODES
        },
        "rows": [],
    }
    rows = [np.array([[int(h)]]) for h in heads]
    groups = task.by(args.queries, True)
    for layers in LAYERS:
        w = with_layers(c, g, layers)
        row = {"layers": layers, **kl_rows(exact, rows, w)}
        ranked: list[dict] = []
        plain: list[dict] = []
        times: list[float] = []
        for (r, h), idx in groups.items():
            f = names.factors({"wordnet:" + RELATIONS[r]: 1.0}, 0.1)
            t = time.perf_counter()
            q = forward_numpy(w, np.array([[h]]), f)[0]
            times.append(time.perf_counter() - t)
            q0 = forward_numpy(w, np.array([[h]]))[0]
            ranked.extend(task.score(i, q) for i in idx)
            plain.extend(task.score(i, q0) for i in idx)
        row["test"] = summarize(ranked)
        row["test_plain"] = summarize(plain)
        row["forward_ms"] = float(np.median(times) * 1e3)
        out["rows"].append(row)
        log(
            f"  L={layers}: KL tri {row['kl_tri_mean']:.3f}, diffusion "
            f"{row['kl_diffusion_mean']:.3f}; hits@10 {row['test']['hits@10']:.3f} "
            f"(plain {row['test_plain']['hits@10']:.3f}); forward {row['forward_ms']:.1f} ms"
        )
    out["compiled"] = c
    return out


def dims_rows(m: sp.csr_matrix, ks: list[int], full: np.ndarray | None) -> list[dict]:
    """d* from the top k (exact where ``full`` is given, and randomized as the
    compiler computes it) and the interval the Frobenius norm allows."""
    fro2 = float(m.multiply(m).sum())
    max_rank = int(min(np.count_nonzero(m.getnnz(axis=1)), np.count_nonzero(m.getnnz(axis=0))))
    out = []
    for k in ks:
        if k >= min(m.shape) - 1:
            continue
        t = time.perf_counter()
        s = randomized_svd(m, k, seed=0).s
        secs = time.perf_counter() - t
        lo, hi = effective_rank_bounds(s, fro2, max_rank)
        row = {
            "k": k,
            "d_randomized": effective_rank(s),
            "lower": lo,
            "upper": hi,
            "tail_energy": max(0.0, 1.0 - float(np.sum(s.astype(np.float64) ** 2)) / fro2),
            "svd_s": secs,
        }
        if full is not None:
            row["d_exact_top_k"] = effective_rank(full[:k])
        out.append(row)
        log(
            f"  k={k}: d* {row['d_randomized']:.1f} (randomized, {secs:.1f} s)"
            + (f", {row['d_exact_top_k']:.1f} (exact top k)" if full is not None else "")
            + f"; interval [{lo:.1f}, {hi:.1f}], tail energy {row['tail_energy']:.2e}"
        )
    return out


def dims(c, label: str, ks: list[int], dense: bool) -> dict:
    phi = np.asarray(c.focus.focus, dtype=np.float64)
    m = sp.diags(np.sqrt(phi)).dot(c.adjacency).tocsr()
    full = None
    if dense:
        full = np.linalg.svd(m.toarray(), compute_uv=False)
        log(f"{label}: full spectrum ({len(full)} values), d* {effective_rank(full):.2f}")
    out: dict[str, Any] = {"graph": label, "rows": dims_rows(m, ks, full)}
    if full is not None:
        out["d_full"] = effective_rank(full)
        out["full_nonzero"] = int(np.count_nonzero(full > full[0] * 1e-12))
    return out


def print_layers(res: dict) -> None:
    print(
        f"\n{res['graph']}: {res['contexts']} contexts, d = {res['d']}, L* raw "
        f"{res['L_star_raw']}; KL of phi* alone: tri {res['kl_phi_alone']['tri']:.3f}, "
        f"diffusion {res['kl_phi_alone']['diffusion']:.3f}\n"
    )
    wn = "test" in res["rows"][0]
    head = "| L | KL tri mean / median | KL diffusion mean / median |"
    head += (
        " hits@10 (relation 1, others 0.1) | hits@10 (no weighing) | MRR | forward ms |"
        if wn
        else " ONNX 1x16 ms | ONNX bytes |"
    )
    print(head)
    print("|---:|---|---|" + ("---:|---:|---:|---:|" if wn else "---:|---:|"))
    for r in res["rows"]:
        line = (
            f"| {r['layers']} | {r['kl_tri_mean']:.4f} / {r['kl_tri_median']:.4f} | "
            f"{r['kl_diffusion_mean']:.4f} / {r['kl_diffusion_median']:.4f} |"
        )
        if wn:
            line += (
                f" {r['test']['hits@10']:.3f} | {r['test_plain']['hits@10']:.3f} | "
                f"{r['test']['mrr']:.4f} | {r['forward_ms']:.1f} |"
            )
        else:
            line += f" {r['onnx_ms']:.3f} | {r['onnx_bytes']:,} |"
        print(line)
    first = next(r for r in res["rows"] if r["layers"] == 12)
    last = res["rows"][-1]
    for m in MODES:
        print(
            f"  KL {m}: L={last['layers']} / L=12 = "
            f"{last[f'kl_{m}_mean'] / first[f'kl_{m}_mean']:.4f}"
        )


def print_dims(res: dict) -> None:
    print(
        f"\nd* of {res['graph']}"
        + (f" (full spectrum: {res['d_full']:.2f})" if "d_full" in res else "")
        + "\n"
    )
    exact = "d_full" in res
    print(
        "| k | d* randomized top k |"
        + (" d* exact top k | full / top k |" if exact else "")
        + " interval from top k + Frobenius | tail energy |"
    )
    print("|---:|---:|" + ("---:|---:|" if exact else "") + "---|---:|")
    for r in res["rows"]:
        line = f"| {r['k']} | {r['d_randomized']:.2f} |"
        if exact:
            line += f" {r['d_exact_top_k']:.2f} | {res['d_full'] / r['d_exact_top_k']:.3f} |"
        line += f" [{r['lower']:.2f}, {r['upper']:.2f}] | {r['tail_energy']:.2e} |"
        print(line)


def figure_layers(layer_results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(layer_results), figsize=(5.0 * len(layer_results), 3.5), dpi=90)
    axes = np.atleast_1d(axes)
    for ax, res in zip(axes, layer_results, strict=True):
        ls = [r["layers"] for r in res["rows"]]
        for m, col in zip(MODES, ("#4878a8", "#c44e52"), strict=True):
            ax.plot(
                ls, [r[f"kl_{m}_mean"] for r in res["rows"]], "o-", color=col, label=f"KL vs {m}"
            )
        ax.axvline(12, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(ls)
        ax.set_xticklabels([str(x) for x in ls])
        ax.set_xlabel(f"layers L (12 built; L* raw {res['L_star_raw']})")
        ax.set_ylabel("mean KL(φ*_c ‖ q_c), nats")
        ax.set_title(res["graph"], fontsize=9)
        if "test" in res["rows"][0]:
            ax2 = ax.twinx()
            ax2.plot(
                ls,
                [r["test"]["hits@10"] for r in res["rows"]],
                "s--",
                color="#55a868",
                label="hits@10",
            )
            ax2.set_ylabel("hits@10", color="#55a868")
            ax2.set_ylim(0, max(0.3, max(r["test"]["hits@10"] for r in res["rows"]) * 1.2))
            ax2.legend(fontsize=7, loc="center right")
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE)
    plt.close(fig)
    log(f"figure: {FIGURE} ({FIGURE.stat().st_size / 1e3:.0f} KB)")


def figure_dims(dim_results: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(dim_results), figsize=(5.0 * len(dim_results), 3.5), dpi=90)
    axes = np.atleast_1d(axes)
    for ax, res in zip(axes, dim_results, strict=True):
        ks = [r["k"] for r in res["rows"]]
        ax.plot(
            ks, [r["d_randomized"] for r in res["rows"]], "o-", label="d* from top k (randomized)"
        )
        ax.fill_between(
            ks,
            [r["lower"] for r in res["rows"]],
            [r["upper"] for r in res["rows"]],
            alpha=0.25,
            label="interval (top k + Frobenius)",
        )
        if "d_full" in res:
            ax.axhline(
                res["d_full"], color="#c44e52", lw=1.2, label=f"full spectrum {res['d_full']:.1f}"
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("k")
        ax.set_ylabel("d*")
        ax.set_title(res["graph"], fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(FIGURE_DIMS)
    plt.close(fig)
    log(f"figure: {FIGURE_DIMS} ({FIGURE_DIMS.stat().st_size / 1e3:.0f} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contexts", type=int, default=32, help="bostrom KL contexts")
    ap.add_argument("--queries", type=int, default=200, help="WordNet hits@10 queries")
    ap.add_argument("--kl-queries", type=int, default=16, help="WordNet KL contexts")
    ap.add_argument("--no-wordnet", action="store_true")
    ap.add_argument("--no-figure", action="store_true")
    ap.add_argument(
        "--dims-only", action="store_true", help="only part 2 (d*), without the layer sweeps"
    )
    args = ap.parse_args()
    load = os.getloadavg()
    log(f"cpus {os.cpu_count()}, load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    t0 = time.perf_counter()
    layer_results = [layers_bostrom(args)]
    dim_results = [
        dims(layer_results[0]["compiled"], "bostrom sample", [16, 32, 64, 128, 256], True)
    ]
    if not args.no_wordnet:
        wn = layers_wordnet(args)
        layer_results.append(wn)
        dim_results.append(
            dims(wn["compiled"], "WordNet (training split)", [64, 128, 256, 512], False)
        )
    if not args.dims_only:
        for res in layer_results:
            print_layers(res)
    for res in dim_results:
        print_dims(res)
    if not args.no_figure:
        if not args.dims_only:
            figure_layers(layer_results)
        figure_dims(dim_results)
    load = os.getloadavg()
    print(f"\ntotal {time.perf_counter() - t0:.0f} s; load at the end {load[0]:.2f}")


if __name__ == "__main__":
    main()
