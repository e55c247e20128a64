"""The design's local update rule, run to F's minimiser: under which step sizes,
how fast, with which sign and renormalisation.

For each graph and temperature T:

1. phi_T = ``FreeEnergyModel.minimize(T)`` (L-BFGS, polished), and at it the
   curvature of F along the simplex (``LocalRule.step_bound``: Lanczos on the
   projected Hessian), the bound eta_max = 2 / mu_max, the best step
   2 / (mu_min + mu_max) and the rates they predict;
2. the corrected rule (shift renormalisation, exact total) from the uniform
   distribution at eta = f * eta_max for several f: L1 to phi_T per step, the
   measured rate, and the status (converged / left the simplex);
3. at the best step: the divide renormalisation (where it settles), gossiped
   totals (rounds for relative error 1e-10, and a few rounds only), and the
   design's sign;
4. the design's sign across temperatures: where it ends (support, largest
   entry, L1 to phi_T).

Graphs: random directed graphs with a ring through all particles (connected,
so gossip can run), and in the full run the largest connected component of
the bostrom sample. Writes docs/figures/local_rule_convergence.png and
docs/figures/local_rule_design_sign.png (``--quick``: the same names under
bench/out/, so that the docs keep the full run's).

Run: ``PYTHONPATH=src python bench/local_rule.py --quick`` (under a minute) or
without ``--quick`` (a few minutes).
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from focusflow.focus.local_rule import LocalRule, LocalRun

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
FIGURES = ROOT / "docs" / "figures"
#: Where --quick writes its figures, so that the docs keep the full run's.
QUICK_FIGURES = ROOT / "bench" / "out"
FRACTIONS = (0.25, 0.5, 0.95, 1.05)
#: Gossip runs needing more averaging rounds a step than this are reported, not run.
GOSSIP_CAP = 2000


def ring_graph(n: int, m: int, seed: int) -> sp.csr_matrix:
    """``m`` random directed links plus a ring through all ``n`` particles."""
    rng = np.random.default_rng(seed)
    src = np.r_[rng.integers(0, n, m), np.arange(n)]
    dst = np.r_[rng.integers(0, n, m), (np.arange(n) + 1) % n]
    w = np.r_[rng.random(m) + 0.05, np.full(n, 0.5)]
    return sp.csr_matrix((w, (src, dst)), shape=(n, n))


def sample_component(path: Path) -> sp.csr_matrix:
    """The largest weakly connected component of the sample's links (weight 1 each)."""
    from scipy.sparse.csgraph import connected_components

    ids: dict[str, int] = {}
    src, dst = [], []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            src.append(ids.setdefault(row["particle_from"], len(ids)))
            dst.append(ids.setdefault(row["particle_to"], len(ids)))
    n = len(ids)
    w = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, labels = connected_components(w, directed=True, connection="weak")
    big = np.flatnonzero(labels == np.bincount(labels).argmax())
    sub: sp.csr_matrix = w[big][:, big].tocsr()
    return sub


def rate_of(run: LocalRun, floor: float = 1e-11, window: int = 20) -> float:
    """Geometric mean of the L1 ratio over the last ``window`` steps above ``floor``."""
    tail = run.l1[run.l1 > floor]
    if len(tail) < 3:
        return float("nan")
    k = min(window, len(tail) - 1)
    return float((tail[-1] / tail[-1 - k]) ** (1.0 / k))


def steps_to(run: LocalRun, level: float) -> int | None:
    below = np.flatnonzero(run.l1 < level)
    return int(below[0]) + 1 if len(below) else None


def study(name: str, rule: LocalRule, temperature: float, steps: int) -> dict[str, object]:
    t0 = time.perf_counter()
    target = rule.model.minimize(temperature)
    bound = rule.step_bound(target, temperature)
    n = rule.n
    print(
        f"\n{name}: n={n} T={temperature:g}  min phi_T={target.min():.3e}  "
        f"mu_min={bound.mu_min:.4g} mu_max={bound.mu_max:.4g}  "
        f"lambda_max(Q)+T/min phi={bound.lipschitz:.4g} "
        f"(T/min phi={temperature / target.min():.4g})"
    )
    print(
        f"  eta_max=2/mu_max={bound.eta_max:.4g}  eta_best={bound.eta_best:.4g} "
        f"(rate {bound.rate_best:.4f})  [{time.perf_counter() - t0:.1f}s]"
    )
    print(
        f"  {'rule':<30} {'eta':>10} {'status':>13} {'steps':>6} {'L1 end':>10} "
        f"{'rate':>7} {'predicted':>9} {'to 1e-6':>7}"
    )
    runs: dict[str, LocalRun] = {}

    def show(label: str, eta: float, run: LocalRun, predicted: float | None = None) -> None:
        end = run.l1[-1] if len(run.l1) else float("nan")
        pred = f"{predicted:9.4f}" if predicted is not None else f"{'':9}"
        reach = steps_to(run, 1e-6)
        print(
            f"  {label:<30} {eta:10.4g} {run.status:>13} {run.steps:6d} {end:10.3e} "
            f"{rate_of(run):7.4f} {pred} {reach if reach is not None else '-':>7}",
            flush=True,
        )
        runs[label] = run

    for f in FRACTIONS:
        eta = f * bound.eta_max
        run = rule.run(temperature, eta, steps, target=target, tol=1e-15)
        show(f"corrected, {f:g} eta_max", eta, run, bound.rate(eta))
    eta = bound.eta_best
    show(
        "corrected, eta_best",
        eta,
        rule.run(temperature, eta, steps, target=target, tol=1e-15),
        bound.rate(eta),
    )
    # The bound is local: the first step from uniform stays positive only
    # below 1 / (n max_i (g_i - mean g)); past it each particle keeps half.
    g = rule.gradient(np.full(n, 1.0 / n), temperature)
    eta_first = 1.0 / (n * float((g - g.mean()).max()))
    guard = 0.5 if eta >= eta_first else 0.0
    tag = ", guard 0.5" if guard else ""
    print(f"  first step from uniform stays positive for eta < {eta_first:.4g}")
    if guard:
        for f in (0.95, 1.05):
            eta_f = f * bound.eta_max
            run = rule.run(temperature, eta_f, steps, target=target, tol=1e-15, guard=guard)
            show(f"corrected, {f:g} eta_max{tag}", eta_f, run, bound.rate(eta_f))
        show(
            f"corrected, eta_best{tag}",
            eta,
            rule.run(temperature, eta, steps, target=target, tol=1e-15, guard=guard),
            bound.rate(eta),
        )
    show(
        f"divide, eta_best{tag}",
        eta,
        rule.run(temperature, eta, steps, renorm="divide", target=target, tol=1e-15, guard=guard),
    )
    rounds = rule.gossip_rounds_for(1e-10) if rule.connected else 0
    if rounds > GOSSIP_CAP:
        print(
            f"  gossip: {rounds} rounds a step for relative error 1e-10 "
            f"(rho={rule.gossip_rate():.6f}): past {GOSSIP_CAP}, not run"
        )
    elif rounds:
        run = rule.run(
            temperature,
            eta,
            steps,
            total="gossip",
            gossip_rounds=rounds,
            target=target,
            tol=1e-15,
            guard=guard,
        )
        show(f"gossip {rounds} rounds, eta_best{tag}", eta, run, bound.rate(eta))
        worst = run.total_error.max() if len(run.total_error) else float("nan")
        print(f"    rho={rule.gossip_rate():.6f}, largest relative total error {worst:.2e}")
        few = rule.run(
            temperature,
            eta,
            steps,
            total="gossip",
            gossip_rounds=5,
            target=target,
            tol=1e-15,
            guard=guard,
        )
        show(f"gossip 5 rounds, eta_best{tag}", eta, few)
        if len(few.total_error):
            print(
                f"    largest relative total error {few.total_error.max():.2e}, mass at the "
                f"end {few.mass[-1]:.6f}"
            )
    show(
        "design sign, eta_best",
        eta,
        rule.run(temperature, eta, steps, sign="design", target=target, tol=1e-15),
    )
    return {"name": name, "T": temperature, "bound": bound, "runs": runs, "n": n}


def design_sweep(name: str, rule: LocalRule, temps: list[float], steps: int) -> list[tuple]:
    print(f"\n{name}: the design's sign across T (eta_best of each T, from uniform)")
    print(
        f"  {'T':>7} {'status':>10} {'steps':>6} {'support':>8} {'max phi':>8} "
        f"{'L1 to phi_T':>11} {'corrected L1':>12}"
    )
    rows = []
    for temp in temps:
        target = rule.model.minimize(temp)
        eta = rule.step_bound(target, temp).eta_best
        run = rule.run(temp, eta, steps, sign="design", target=target, tol=1e-15)
        ok = rule.run(temp, eta, steps, target=target, tol=1e-15)
        rows.append(
            (temp, int(run.support[-1]), float(run.phi.max()), float(run.l1[-1]), float(ok.l1[-1]))
        )
        print(
            f"  {temp:7.3g} {run.status:>10} {run.steps:6d} {run.support[-1]:8d} "
            f"{run.phi.max():8.4f} {run.l1[-1]:11.4f} {ok.l1[-1]:12.2e}",
            flush=True,
        )
    return rows


def figures(studies: list[dict], sweep: list[tuple], sweep_n: int, where: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    where.mkdir(parents=True, exist_ok=True)
    cols = min(2, len(studies))
    rows = -(-len(studies) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.6 * cols, 4.2 * rows), squeeze=False)
    for ax, s in zip(axes.ravel(), studies, strict=True):
        colours = [f"C{i}" for i in range(10)] + ["black", "olive", "navy"]
        for k, (label, run) in enumerate(s["runs"].items()):
            if not len(run.l1):
                continue
            style = "--" if "design" in label else (":" if "divide" in label else "-")
            if "gossip" in label:
                style = "-."
            tag = label + (" (left)" if run.status == "left_simplex" else "")
            ax.semilogy(
                np.arange(1, len(run.l1) + 1),
                np.maximum(run.l1, 1e-17),
                style,
                label=tag,
                lw=1.0,
                color=colours[k % len(colours)],
            )
        span = max(len(r.l1) for label, r in s["runs"].items() if "design" not in label)
        ax.set_xlim(0, 1.05 * span)
        ax.set_title(f"{s['name']}, n={s['n']}, T={s['T']:g}", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel("L1 to F's minimiser")
        ax.set_ylim(1e-16, 10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(where / "local_rule_convergence.png", dpi=100)
    plt.close(fig)

    temps = [r[0] for r in sweep]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogx(temps, [r[1] for r in sweep], "o-", label="design sign: particles holding focus")
    ax.set_xlabel("temperature T")
    ax.set_ylabel(f"support at the end (of {sweep_n})")
    ax2 = ax.twinx()
    ax2.semilogx(temps, [r[3] for r in sweep], "s--", color="C1", label="design sign: L1 to phi_T")
    ax2.semilogx(
        temps,
        [max(r[4], 1e-17) for r in sweep],
        "^:",
        color="C2",
        label="corrected sign: L1 to phi_T",
    )
    ax2.set_yscale("symlog", linthresh=1e-3)
    ax2.set_ylabel("L1 to F's minimiser")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="center left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(where / "local_rule_design_sign.png", dpi=100)
    plt.close(fig)
    for f in ("local_rule_convergence.png", "local_rule_design_sign.png"):
        print(f"wrote {where / f} ({(where / f).stat().st_size // 1024} KB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small graph, under a minute")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    small = LocalRule(ring_graph(60, 240, 1))
    if args.quick:
        studies = [study("random+ring", small, 0.1, 1500), study("random+ring", small, 1.0, 1500)]
        temps = [0.01, 0.1, 1.0, 10.0, 100.0]
    else:
        larger = LocalRule(ring_graph(400, 1600, 2))
        sample = LocalRule(sample_component(SAMPLE))
        studies = [
            study("random+ring", small, 0.1, 3000),
            study("random+ring", small, 1.0, 3000),
            study("random+ring", larger, 0.1, 2000),
            study("bostrom sample, largest component", sample, 0.1, 2000),
        ]
        temps = [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0]
    sweep = design_sweep("random+ring", small, temps, 6000)
    if not args.no_figures:
        figures(studies, sweep, small.n, QUICK_FIGURES if args.quick else FIGURES)
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
