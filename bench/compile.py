"""Benchmark of ``focusflow.compile``: compile time per phase, SVD, ONNX latency.

What it measures, in one process run, on each graph (the bostrom sample, the
WordNet graph when ``focusflow.graph.wordnet`` can read the database, and
R-MAT graphs of the given scales with ``edge_factor * 2**scale`` links):

1. ``compile_graph`` with the default options, each phase timed (adjacency,
   focus, svd, diameter, weights, onnx), d*, h*, L* raw and capped, kappa, the
   diameter estimate and the model's size; the goals are under 60 s for
   WordNet and under 600 s for a 10^6-particle graph.
2. KL(phi*_c || q_c) on seeded random contexts of 1-4 particles (tri mode, as
   the compilation; and diffusion, the operator the layers compile), with the
   KL of phi* alone as the baseline; skipped past ``--eval-max-scale``.
3. Our randomized SVD against ``scipy.sparse.linalg.svds`` (ARPACK) on the same
   ``diag(sqrt(phi*)) A``, k = ``--svd-k`` (100, as the published bostrom
   compilation): time, and the relative error of the top singular values
   against svds; svds only up to ``--svds-max-scale`` (beyond it svds takes
   many minutes; bench/RESULTS.md).
4. The ONNX forward pass through onnxruntime on the CPU: batch 1, a context of
   16 particles, median and 90th percentile of ``--runs`` calls after a
   warm-up; the goal is under 5 ms on the WordNet model.

Run from the repository root::

    python bench/compile.py                        # scales 17 and 20 (about 10 min on 2 cores)
    python bench/compile.py --scale 14 --no-wordnet   # quick check
    python bench/compile.py --json compile.json    # also dump every number
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from focusflow.compile.evaluate import evaluate
from focusflow.compile.pipeline import CompileOptions, compile_graph, write
from focusflow.compile.runner import CompiledModel
from focusflow.compile.svd import randomized_svd, svds_reference
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import read_bostrom

BOSTROM = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def rmat_graph(scale: int, edge_factor: int, seed: int = 0) -> Cybergraph:
    """An R-MAT graph as a Cybergraph of anonymous weighted links (self-loops dropped)."""
    src, dst, w = rmat_edges(scale, edge_factor, seed=seed)
    g = Cybergraph(require_cids=False)
    g.add_particles(np.arange(1 << scale).astype(str).astype(object))
    g.add_link_ids(src, dst, None, w)
    return g


def wordnet_graph() -> Cybergraph | None:
    try:
        from focusflow.graph.wordnet import read_wordnet

        return read_wordnet().to_graph()
    except Exception as exc:  # the database or the reader may be missing
        print(f"wordnet: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def svd_compare(m: sp.csr_matrix, k: int, run_svds: bool, seed: int) -> dict:
    k = min(k, min(m.shape) - 2)
    t = time.perf_counter()
    ours = randomized_svd(m, k, seed=seed)
    t_ours = time.perf_counter() - t
    out = {"k": k, "randomized_s": t_ours}
    if run_svds:
        t = time.perf_counter()
        ref = svds_reference(m, k, seed=seed)
        t_ref = time.perf_counter() - t
        rel = np.abs(ours.s - ref.s) / ref.s[0]
        out.update(
            {
                "svds_s": t_ref,
                "speedup": t_ref / t_ours,
                "top10_max_rel_err": float(np.max(np.abs(ours.s[:10] / ref.s[:10] - 1))),
                "all_k_max_err_rel_to_s1": float(rel.max()),
                "d_star_ours": float(np.exp(_entropy(ours.s))),
                "d_star_svds": float(np.exp(_entropy(ref.s))),
            }
        )
    return out


def _entropy(s: np.ndarray) -> float:
    p = s[s > 0] / s[s > 0].sum()
    return float(-(p * np.log(p)).sum())


def latency(directory: Path, vocab: int, runs: int, seed: int) -> dict:
    model = CompiledModel.load(directory)
    rng = np.random.default_rng(seed)
    batches = [rng.integers(0, vocab, (1, 16)) for _ in range(runs)]
    model.predict(batches[0])
    times = []
    for b in batches:
        t = time.perf_counter()
        model.predict(b)
        times.append(time.perf_counter() - t)
    ms = np.asarray(times) * 1e3
    return {"median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90))}


def bench_graph(name: str, g: Cybergraph, args, evaluate_kl: bool, run_svds: bool) -> dict:
    print(f"== {name}: {g.n_particles} particles, {g.n_links} links", file=sys.stderr)
    phases: list[tuple[str, float]] = []
    c = compile_graph(
        g,
        CompileOptions(seed=args.seed, eval_contexts=0),
        phase=lambda p: phases.append((p, time.perf_counter())),
    )
    with tempfile.TemporaryDirectory() as tmp:
        report = write(c, g, tmp, eval_contexts=0)
        t = report["timings"]
        row = {
            "graph": name,
            **report["graph"],
            "d_star": report["d_star"],
            "h_star": report["h_star"],
            "heads": report["heads"],
            "L_star_raw": report["L_star_raw"],
            "L_star": report["L_star"],
            "kappa": report["kappa"],
            "exact_hops": report["exact_hops"],
            "hop_coverage": report["hop_coverage"],
            "diameter": report["diameter_estimate"],
            "parameters": report["parameters"],
            "model_bytes": sum(v for k, v in report["files"].items() if k.startswith("model.")),
            "timings": t,
            "latency": latency(Path(tmp), g.n_particles, args.runs, args.seed),
        }
    if evaluate_kl:
        for mode in ("tri", "diffusion"):
            t0 = time.perf_counter()
            row[f"kl_{mode}"] = evaluate(
                g,
                c.weights,
                c.focus.focus,
                count=args.eval_contexts,
                seed=args.seed,
                focus_params={"mode": mode},
            )
            row[f"kl_{mode}"]["seconds"] = time.perf_counter() - t0
    m = sp.diags(np.sqrt(c.focus.focus)).dot(c.adjacency).tocsr()
    row["svd"] = svd_compare(m, args.svd_k, run_svds, args.seed)
    row["peak_rss_gb"] = peak_rss_gb()
    _print_row(row)
    return row


def _print_row(r: dict) -> None:
    t = r["timings"]
    phases = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "compile_total")
    print(
        f"{r['graph']}: d* {r['d_star']}, h* {r['h_star']} ({r['heads']} heads), "
        f"L* {r['L_star_raw']} -> {r['L_star']} (diam >= {r['diameter']}, "
        f"kappa {r['kappa']:.3f}); {r['exact_hops']} exact hops (tables hold "
        f"{r['hop_coverage']:.2f}); {r['parameters']} parameters, "
        f"{r['model_bytes'] / 1e6:.1f} MB"
    )
    print(f"  compile {t['compile_total']:.2f} s ({phases}); peak RSS {r['peak_rss_gb']:.2f} GB")
    lat = r["latency"]
    print(f"  ONNX batch 1 x 16: median {lat['median_ms']:.3f} ms, p90 {lat['p90_ms']:.3f} ms")
    for mode in ("tri", "diffusion"):
        kl = r.get(f"kl_{mode}")
        if kl:
            print(
                f"  KL vs phi*_c ({mode}): mean {kl['kl_mean']:.3f}, median "
                f"{kl['kl_median']:.3f}; phi* alone {kl['baseline_phi_kl_mean']:.3f} "
                f"(ratio {kl['kl_mean'] / kl['baseline_phi_kl_mean']:.2f})"
            )
    s = r["svd"]
    line = f"  SVD k={s['k']}: randomized {s['randomized_s']:.2f} s"
    if "svds_s" in s:
        line += (
            f", svds {s['svds_s']:.2f} s (x{s['speedup']:.1f}); top-10 rel err "
            f"{s['top10_max_rel_err']:.1e}, all-k err/s1 {s['all_k_max_err_rel_to_s1']:.1e}; "
            f"d* {s['d_star_ours']:.1f} vs {s['d_star_svds']:.1f}"
        )
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, nargs="*", default=[17, 20])
    ap.add_argument("--edge-factor", type=int, default=16)
    ap.add_argument("--svd-k", type=int, default=100)
    ap.add_argument("--svds-max-scale", type=int, default=17)
    ap.add_argument("--eval-contexts", type=int, default=16)
    ap.add_argument("--eval-max-scale", type=int, default=17)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-wordnet", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"cpus: {os.cpu_count()}", file=sys.stderr)
    rows = []
    if BOSTROM.exists():
        g = read_bostrom(BOSTROM, skip_invalid=True)
        rows.append(bench_graph("bostrom-sample", g, args, True, True))
    if not args.no_wordnet:
        g = wordnet_graph()
        if g is not None:
            rows.append(bench_graph("wordnet", g, args, True, True))
            if rows[-1]["timings"]["compile_total"] > 60:
                print("  goal missed: WordNet compile over 60 s")
            if rows[-1]["latency"]["median_ms"] > 5:
                print("  goal missed: WordNet forward pass over 5 ms")
            del g
    for scale in args.scale:
        t = time.perf_counter()
        g = rmat_graph(scale, args.edge_factor)
        print(f"rmat-{scale}: built in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        row = bench_graph(
            f"rmat-{scale}", g, args, scale <= args.eval_max_scale, scale <= args.svds_max_scale
        )
        if g.n_particles >= 1 << 20 and row["timings"]["compile_total"] > 600:
            print("  goal missed: 10^6-particle compile over 600 s")
        rows.append(row)
        del g
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
