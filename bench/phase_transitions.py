"""Do the graph's spectrum and its focus change regime as the graph grows?

For four families of growing graphs, per graph (``focus.phase.measure``):
the share of particles in the largest connected component of ``W + W^T``,
the spectral gap lambda_2 of that component's normalized Laplacian (LAPACK
for small components, else ARPACK Lanczos on the shifted inverse), the
engine's contraction rate kappa (tri mode, defaults, no Anderson, tol 1e-10,
numpy backend), and the entropy of the engine's focus as a share of ln n and
its syntropy ``ln n - H``. Then, per family and measure, the rule of
``focus.phase.regime_change``: the best two-segment (hinge) fit and the
largest jump, with the thresholds it states.

Families:

- Erdos-Renyi: n particles, mean degree c = 0.5 ... 4 of ``W + W^T`` (c n / 2
  random directed links), the mean of several seeds per c. The giant component
  appears at c = 1: the known transition the method must find.
- R-MAT (Graph500 parameters, 4 links per particle) of growing scale.
- WordNet (``focusflow import wordnet --out /tmp/wn/wordnet.csv``): the first
  share p of its links in one fixed random order (seed 0), i.e. bond
  percolation on WordNet with nested subgraphs, for p up to 0.2 (past it the
  gap's Lanczos run on the giant component took minutes per point on a
  two-core machine: 278 s at p = 0.4).
- The bostrom sample: the links up to height h, for growing h (the CSV's own
  CIDs as particles, every row, weight 1 per link); x is the number of those
  links, since the heights are lumpy.

Writes docs/figures/phase_<family>.png (``--quick``: under bench/out/, so
that the docs keep the full run's).

Run: ``PYTHONPATH=src python bench/phase_transitions.py --quick`` (under a
minute: smaller graphs, fewer points, no WordNet) or without ``--quick``.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from focusflow.focus.phase import (
    HINGE_GAIN,
    JUMP_RATIO,
    MIN_SPREAD,
    SLOPE_CHANGE,
    GraphPhase,
    RegimeChange,
    measure,
    regime_change,
)
from focusflow.graph.generators import random_graph, rmat_edges

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
WORDNET = Path("/tmp/wn/wordnet.csv")
FIGURES = ROOT / "docs" / "figures"
#: Where --quick writes its figures, so that the docs keep the full run's.
QUICK_FIGURES = ROOT / "bench" / "out"

#: What is plotted and tested per graph: (label, value of a GraphPhase).
MEASURES: list[tuple[str, Callable[[GraphPhase], float]]] = [
    ("giant share", lambda g: g.giant_fraction),
    ("log10 gap lambda_2 (giant)", lambda g: math.log10(g.gap) if g.gap > 0 else math.nan),
    ("kappa (engine)", lambda g: g.kappa if g.kappa is not None else math.nan),
    ("H / ln n", lambda g: g.entropy_ratio),
    ("syntropy (nats)", lambda g: g.syntropy),
]


@dataclass
class Family:
    name: str
    xlabel: str
    x: list[float]
    rows: list[list[GraphPhase]]  # per x, one graph per seed

    def values(self, pick: Callable[[GraphPhase], float]) -> np.ndarray:
        return np.array([float(np.mean([pick(g) for g in row])) for row in self.rows])


def matrix(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    return sp.csr_matrix((w, (src, dst)), shape=(n, n))


def show(g: GraphPhase, label: str, secs: float) -> None:
    kappa = f"{g.kappa:.4f}" if g.kappa is not None else "-"
    print(
        f"  {label:>10} n={g.n:7d} links={g.links:7d} comps={g.components:7d} "
        f"giant={g.giant_fraction:6.3f} gap={g.gap:.3e} kappa={kappa} it={g.iterations:3d} "
        f"H/ln n={g.entropy_ratio:.4f} J={g.syntropy:.4f}  [{secs:.1f}s]",
        flush=True,
    )


def erdos_renyi(n: int, degrees: list[float], seeds: int) -> Family:
    print(f"\nErdos-Renyi, n={n}, {seeds} seed(s) per mean degree")
    rows = []
    for c in degrees:
        row = []
        for seed in range(seeds):
            t = time.perf_counter()
            src, dst, w = random_graph(n, round(c * n / 2), seed=seed)
            g = measure(matrix(n, src, dst, w))
            show(g, f"c={c:g} s{seed}", time.perf_counter() - t)
            row.append(g)
        rows.append(row)
    return Family("erdos_renyi", "mean degree c of W + W^T", degrees, rows)


def rmat(scales: list[int], edge_factor: int) -> Family:
    print(f"\nR-MAT, {edge_factor} links per particle")
    rows = []
    for scale in scales:
        t = time.perf_counter()
        src, dst, w = rmat_edges(scale, edge_factor, seed=0)
        g = measure(matrix(1 << scale, src, dst, w))
        show(g, f"scale {scale}", time.perf_counter() - t)
        rows.append([g])
    return Family("rmat", "scale (log2 n)", [float(s) for s in scales], rows)


def wordnet(path: Path, shares: list[float]) -> Family:
    from focusflow.graph.importers import read_graph

    graph = read_graph(path, "auto", None, skip_invalid=True)
    w = graph.snapshot().to_scipy().tocoo()
    print(f"\nWordNet {path}: {w.shape[0]} particles, {w.nnz} weighted pairs; nested link shares")
    order = np.random.default_rng(0).permutation(w.nnz)
    rows = []
    for share in shares:
        t = time.perf_counter()
        k = order[: round(share * w.nnz)]
        g = measure(matrix(w.shape[0], w.row[k], w.col[k], w.data[k]))
        show(g, f"p={share:g}", time.perf_counter() - t)
        rows.append([g])
    return Family("wordnet", "share p of WordNet's links kept", shares, rows)


def bostrom(path: Path, points: int) -> Family:
    """Cuts at heights where the count of links reaches equal steps (heights
    are lumpy: most of the sample's links share a few heights), x = links."""
    heights: list[int] = []
    pairs: list[tuple[str, str]] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            heights.append(int(row["height"]))
            pairs.append((row["particle_from"], row["particle_to"]))
    order = np.argsort(np.array(heights), kind="stable")
    h_sorted = np.array(heights)[order]
    last = len(h_sorted) - 1
    cuts = sorted({int(h_sorted[round(q * last)]) for q in np.linspace(0.1, 1.0, points)})
    print(
        f"\nbostrom sample {path.name}: {len(pairs)} links, heights {h_sorted[0]}..{h_sorted[-1]}"
    )
    rows = []
    xs = []
    for h in cuts:
        t = time.perf_counter()
        ids: dict[str, int] = {}
        src, dst = [], []
        upto = int(np.searchsorted(h_sorted, h, side="right"))
        for i in order[:upto]:
            a, b = pairs[i]
            src.append(ids.setdefault(a, len(ids)))
            dst.append(ids.setdefault(b, len(ids)))
        g = measure(matrix(len(ids), np.array(src), np.array(dst), np.ones(len(src))))
        show(g, f"h={h}", time.perf_counter() - t)
        rows.append([g])
        xs.append(float(upto))
    return Family("bostrom", "links up to height h", xs, rows)


def report(family: Family) -> list[tuple[str, RegimeChange | None]]:
    print(
        f"\n{family.name}: regime changes (kink: hinge gain >= {HINGE_GAIN}, slopes differ by "
        f">= {SLOPE_CHANGE:g} of the larger; jump: step >= {JUMP_RATIO:g} x median step; "
        f"either only where the curve spans >= {MIN_SPREAD:g} of its largest magnitude)"
    )
    print(
        f"  {'measure':<26} {'spread':>7} {'hinge at':>9} {'left':>10} {'right':>10} "
        f"{'gain':>6} {'kink':>5} {'largest step':>21} {'ratio':>7} {'jump':>5}"
    )
    found: list[tuple[str, RegimeChange | None]] = []
    x = np.array(family.x)
    for label, pick in MEASURES:
        y = family.values(pick)
        ok = np.isfinite(y)
        if ok.sum() < 7:
            print(f"  {label:<26} (too few finite values)")
            found.append((label, None))
            continue
        rc = regime_change(x[ok], y[ok])
        print(
            f"  {label:<26} {rc.spread:7.3f} {rc.at:9.4g} {rc.left:10.3e} {rc.right:10.3e} "
            f"{rc.gain:6.3f} "
            f"{'yes' if rc.kink else 'no':>5} {rc.jump_from:10.4g}-{rc.jump_at:<10.4g} "
            f"{rc.jump_ratio:7.2f} "
            f"{'yes' if rc.jump else 'no':>5}"
        )
        found.append((label, rc))
    return found


def figure(family: Family, found: list[tuple[str, RegimeChange | None]], where: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(MEASURES), figsize=(3.2 * len(MEASURES), 3.0))
    x = np.array(family.x)
    for ax, (label, pick), (_, rc) in zip(axes, MEASURES, found, strict=True):
        ax.plot(x, family.values(pick), "o-", ms=3)
        if rc is not None and rc.kink:
            ax.axvline(rc.at, color="C3", ls="--", lw=1, label=f"kink {rc.at:.3g}")
        if rc is not None and rc.jump:
            ax.axvspan(
                rc.jump_from,
                rc.jump_at,
                color="C2",
                alpha=0.15,
                label=f"jump {rc.jump_from:.3g}-{rc.jump_at:.3g}",
            )
        if family.name == "wordnet":
            ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel(family.xlabel, fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    fig.suptitle(family.name, fontsize=10)
    fig.tight_layout()
    out = where / f"phase_{family.name}.png"
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out} ({out.stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small graphs, under a minute")
    ap.add_argument("--wordnet", type=Path, default=WORDNET)
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    degrees = [0.5 + 0.25 * k for k in range(15)]
    if args.quick:
        families = [
            erdos_renyi(800, degrees, 1),
            rmat(list(range(6, 13)), 4),
            bostrom(SAMPLE, 8),
        ]
    else:
        families = [
            erdos_renyi(4000, degrees, 2),
            rmat(list(range(7, 15)), 4),
            bostrom(SAMPLE, 15),
        ]
        if args.wordnet.exists():
            shares = [0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2]
            families.append(wordnet(args.wordnet, shares))
        else:
            print(f"\n{args.wordnet} not found: WordNet left out (focusflow import wordnet)")
    for family in families:
        found = report(family)
        if not args.no_figures:
            figure(family, found, QUICK_FIGURES if args.quick else FIGURES)
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
