"""How far the engine's focus is from the minimiser of the free energy F.

For a graph (the bostrom sample by default, or WordNet written by
``focusflow import wordnet --out FILE``), with the engine's default parameters:

1. the engine's focus phi* (tri, numpy float64 reference backend, tol 1e-12);
2. F's terms at phi*, at the uniform distribution, at PageRank (diffusion
   mode) and at the degree distribution pi_L (the Laplacian's own equilibrium);
3. for each temperature T, the minimiser phi_T of F over the simplex
   (``FreeEnergyModel.minimize``, started at phi*), and: the L1 distance
   ||phi_T - phi*||_1, the overlap of their top-100 particles, F at both,
   both entropies, and the Boltzmann residual ||phi_T - softmax(-E(phi_T)/T)||_1
   that says how well phi_T was found;
4. the size of F's gradient at phi* along the simplex (zero iff phi* were a
   stationary point of F at T = 0).

Run: ``PYTHONPATH=src python bench/free_energy.py`` (bostrom sample) or
``PYTHONPATH=src python bench/free_energy.py --graph /tmp/wn/wordnet.csv``.
docs/focus.md ("Free energy") quotes its output.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from focusflow.focus import compute
from focusflow.focus.energy import FreeEnergyModel
from focusflow.graph.importers import read_graph

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "bostrom-sample-cyberlinks.csv"


def top_overlap(a: np.ndarray, b: np.ndarray, k: int = 100) -> int:
    """Particles among both vectors' k largest (ties broken by particle id)."""
    order_a = np.lexsort((np.arange(len(a)), -a))[:k]
    order_b = np.lexsort((np.arange(len(b)), -b))[:k]
    return len(set(order_a.tolist()) & set(order_b.tolist()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", type=Path, default=SAMPLE)
    ap.add_argument("--temperatures", default="1,0.1,0.01,0.001")
    ap.add_argument("--max-iter", type=int, default=20_000, help="L-BFGS iterations per T")
    args = ap.parse_args()

    t = time.perf_counter()
    graph = read_graph(args.graph, "auto", None, skip_invalid=True)
    print(f"graph {args.graph.name}: {graph.n_particles} particles, {graph.n_links} links")
    phi = compute(graph, tol=1e-12, backend="numpy").focus
    pagerank = compute(graph, mode="diffusion", tol=1e-12, backend="numpy").focus
    model = FreeEnergyModel(graph)
    print(f"engine and model built in {time.perf_counter() - t:.1f}s")
    n = model.n
    deg = np.zeros(n)
    deg[model.linked] = 1.0 / model.sigma[model.linked] ** 2
    points = {
        "engine phi*": phi,
        "uniform": np.full(n, 1.0 / n),
        "pagerank": pagerank,
        "degree pi_L": deg / deg.sum(),
    }
    print(f"{'at':<12} {'E_spring':>9} {'E_diff':>9} {'C_heat':>9} {'energy':>9} {'entropy':>8}")
    for name, x in points.items():
        e = model.terms(x)
        print(
            f"{name:<12} {e.spring:9.4f} {e.diffusion:9.4f} {e.heat:9.4f} "
            f"{e.energy:9.4f} {e.entropy:8.4f}"
        )
    g = model.energy_gradient(phi)
    tangent = g - g.mean()
    print(
        f"T=0 gradient at phi* along the simplex: ||g - mean||_2 = "
        f"{np.linalg.norm(tangent):.3e} (||g||_2 = {np.linalg.norm(g):.3e})"
    )
    print(
        f"L1 phi* to pagerank {np.abs(phi - pagerank).sum():.4f}, "
        f"to pi_L {np.abs(phi - points['degree pi_L']).sum():.4f}"
    )
    print(
        f"{'T':>7} {'L1(phi_T,phi*)':>15} {'top100':>7} {'F(phi_T)':>10} {'F(phi*)':>10} "
        f"{'H(phi_T)':>9} {'H(phi*)':>8} {'boltzmann':>10} {'secs':>6}"
    )
    for temp in (float(x) for x in args.temperatures.split(",")):
        t = time.perf_counter()
        x = model.minimize(temp, x0=phi, max_iter=args.max_iter)
        print(
            f"{temp:7.0e} {np.abs(x - phi).sum():15.4f} {top_overlap(x, phi):7d} "
            f"{model.value(x, temp):10.4f} {model.value(phi, temp):10.4f} "
            f"{model.terms(x).entropy:9.4f} {model.terms(phi).entropy:8.4f} "
            f"{model.boltzmann_residual(x, temp):10.2e} {time.perf_counter() - t:6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
