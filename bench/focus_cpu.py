"""CPU benchmark of focusflow's diffusion (weighted PageRank) against peer libraries.

What it measures, in one process run:

1. An R-MAT graph (Graph500 parameters, ``edge_factor * 2**scale`` weighted
   directed edges, self-loops removed for every contender; duplicate edges
   stay and every contender sums them).
2. A float64 reference: weighted PageRank (alpha 0.85, uniform teleport,
   dangling mass spread uniformly) by scipy power iteration until the L1 change
   of successive iterates is below 1e-13. Every result is checked against it.
3. Each contender solving the same PageRank to an L1 change below 1e-6:
   focusflow's numba backend (float32 and float64), scipy power iteration,
   python-graphblas power iteration, igraph PRPACK and, on a smaller graph
   (``--nx-scale``), networkx together with focusflow on that same graph.
   Build time (graph construction from the edge arrays) and solve time are
   reported apart. focusflow's build is ``Snapshot(...)`` plus the first
   ``compute`` call's operator preparation (SELL storage, float32 copy), which
   is cached with the snapshot; its solve time is the wall time around later
   ``compute(snapshot, ...)`` calls. Solves run
   ``--repeat`` times after one untimed warm-up (numba JIT, caches) and the
   median is reported.
4. focusflow's full tri-kernel solve (diffusion + springs + heat) against its
   diffusion-only solve (stopped and reported as unfinished after
   ``--tri-budget`` seconds; ``--combinatorial`` adds the combinatorial
   Laplacian, far slower on hub-heavy graphs), and the incremental engine: a 1% and a 0.01% batch of
   new edges applied by ``FocusEngine.apply()`` against a cold solve of the
   final graph, both checked against a float64 reference of the final graph.
5. Snapshot build throughput (links/s) and peak memory per link, measured in a
   child process that only generates the edges and builds the snapshot.

It exits non-zero if any PageRank result is further than 1e-5 (L1) from the
reference, or if a focusflow section crashes. Each section also reports the
share of the CPUs that other processes took meanwhile: on a 2-core machine a
concurrent job inflates every timing, the parallel kernels' most.

Run from the repository root::

    python bench/focus_cpu.py                      # scale 20: 5 to 10 minutes on 2 cores
    python bench/focus_cpu.py --scale 14 --nx-scale 12 --repeat 1   # quick check
    python bench/focus_cpu.py --json bench.json    # also dump every number
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy
import scipy.sparse as sp

ALPHA = 0.85
TOL = 1e-6
REF_TOL = 1e-13
REF_MAX_ITER = 5000
MAX_L1_ERROR = 1e-5
PEER_MAX_ITER = 1000

# --- bookkeeping -------------------------------------------------------------


@dataclass
class Row:
    """One line of the results table."""

    contender: str
    scale: int
    build_s: float | None = None
    solve_s: float | None = None
    iterations: int | None = None
    l1_error: float | None = None
    baseline: str = ""  # contender whose solve time is the ratio's denominator
    note: str = ""
    solve_runs: list[float] = field(default_factory=list)

    @property
    def ms_per_iter(self) -> float | None:
        if self.solve_s is None or not self.iterations:
            return None
        return 1e3 * self.solve_s / self.iterations


@dataclass
class Report:
    """Everything the run measured; dumped as JSON with ``--json``."""

    args: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    foreign_load: dict[str, float] = field(default_factory=dict)

    def row(self, contender: str) -> Row | None:
        return next((r for r in self.rows if r.contender == contender), None)

    def check(self, what: str, l1_error: float) -> None:
        """Record a failure when ``l1_error`` exceeds the allowed distance."""
        ok = bool(np.isfinite(l1_error)) and l1_error <= MAX_L1_ERROR
        mark = "ok" if ok else f"FAIL (> {MAX_L1_ERROR:g})"
        log(f"    L1 error vs reference: {l1_error:.3e}  {mark}")
        if not ok:
            self.failures.append(f"{what}: L1 error {l1_error:.3e} > {MAX_L1_ERROR:g}")


def log(msg: str = "") -> None:
    print(msg, flush=True)


def _busy_cpu_s() -> float | None:
    """CPU seconds all processes have spent busy since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@contextlib.contextmanager
def section(report: Report, name: str, *, required: bool = True) -> Iterator[None]:
    """Run a benchmark section; an optional peer that cannot import is skipped.

    Any other exception is printed with its traceback; in a ``required``
    (focusflow) section it also makes the run fail. The CPU time that other
    processes took meanwhile is recorded: on a small machine it skews timings.
    """
    log(f"\n== {name} ==")
    t0 = time.perf_counter()
    busy0, own0 = _busy_cpu_s(), _own_cpu_s()
    try:
        yield
    except ImportError as exc:
        report.skipped[name] = f"import failed: {exc}"
        log(f"  skipped: {exc}")
    except Exception as exc:
        traceback.print_exc()
        sys.stdout.flush()
        if required:
            report.failures.append(f"{name}: crashed with {type(exc).__name__}: {exc}")
        else:
            report.skipped[name] = f"crashed: {type(exc).__name__}: {exc}"
    finally:
        gc.collect()
        wall = time.perf_counter() - t0
        busy1 = _busy_cpu_s()
        note = ""
        if busy0 is not None and busy1 is not None and wall > 0:
            foreign = max(0.0, (busy1 - busy0) - (_own_cpu_s() - own0))
            share = foreign / (wall * len(os.sched_getaffinity(0)))
            if foreign > 0.5:  # ignore bookkeeping noise of short sections
                report.foreign_load[name] = share
            note = f"; other processes used {100 * share:.0f}% of the CPUs"
        log(f"  ({name}: {wall:.1f} s{note})")


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def median_of(fn: Callable[[], Any], repeat: int) -> tuple[Any, float, list[float]]:
    """Run ``fn`` ``repeat`` times; the last result, the median time and all times."""
    times: list[float] = []
    out = None
    for _ in range(max(1, repeat)):
        out, t = timed(fn)
        times.append(t)
    return out, statistics.median(times), times


def l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - b).sum())


# --- graphs and the reference -------------------------------------------------


@dataclass
class Edges:
    """The edge list every contender gets: self-loops removed, duplicates kept."""

    n: int
    src: np.ndarray
    dst: np.ndarray
    weight: np.ndarray
    raw_edges: int

    @property
    def m(self) -> int:
        return len(self.src)


def drop_self_loops(
    src: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = src != dst
    return src[keep], dst[keep], weight[keep]


def make_edges(scale: int, edge_factor: int, seed: int) -> Edges:
    from focusflow.graph import rmat_edges

    src, dst, weight = rmat_edges(scale, edge_factor, seed=seed)
    raw = len(src)
    src, dst, weight = drop_self_loops(src, dst, weight)
    return Edges(1 << scale, src, dst, weight, raw)


def concat_edges(e: Edges, src: np.ndarray, dst: np.ndarray, weight: np.ndarray) -> Edges:
    return Edges(
        e.n,
        np.concatenate([e.src, src]),
        np.concatenate([e.dst, dst]),
        np.concatenate([e.weight, weight]),
        e.raw_edges + len(src),
    )


@dataclass
class ScipyPageRank:
    """``P^T`` as CSR (rows of ``P`` normalised to 1) and the dangling mask."""

    pt: sp.csr_matrix
    dangling: np.ndarray


def scipy_build(e: Edges) -> ScipyPageRank:
    a = sp.csr_matrix((e.weight, (e.src, e.dst)), shape=(e.n, e.n))  # sums duplicates
    out = np.asarray(a.sum(axis=1)).ravel()
    dangling = out <= 0.0
    inv = np.where(dangling, 0.0, 1.0 / np.where(dangling, 1.0, out))
    pt = (sp.diags(inv) @ a).T.tocsr()
    return ScipyPageRank(pt, dangling)


def scipy_power(
    g: ScipyPageRank, tol: float, x0: np.ndarray | None = None, max_iter: int = PEER_MAX_ITER
) -> tuple[np.ndarray, int, float]:
    """Power iteration until the L1 change is below ``tol``: ``(x, iterations, change)``."""
    n = g.pt.shape[0]
    x = np.full(n, 1.0 / n) if x0 is None else x0 / x0.sum()
    change = float("inf")
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (it is returned)
        y = ALPHA * (g.pt @ x)
        y += (ALPHA * x[g.dangling].sum() + 1.0 - ALPHA) / n
        change = float(np.abs(y - x).sum())
        x = y
        if change < tol:
            break
    return x, it, change


def reference(e: Edges, x0: np.ndarray | None = None) -> tuple[np.ndarray, int, float]:
    """Float64 ground truth (L1 change < 1e-13), optionally warm-started."""
    x, it, change = scipy_power(scipy_build(e), REF_TOL, x0, REF_MAX_ITER)
    if change >= REF_TOL:
        log(f"  WARNING: reference stopped at L1 change {change:.2e} after {it} iterations")
    return x, it, change


# --- focusflow ------------------------------------------------------------------


def warm_up_jit(combinatorial: bool) -> float:
    """Compile (or load from numba's cache) every kernel on a tiny graph."""
    from focusflow.focus import compute
    from focusflow.focus.engine import FocusEngine
    from focusflow.graph import Cybergraph, Snapshot

    t0 = time.perf_counter()
    e = make_edges(10, 8, seed=12345)
    snap = Snapshot(e.n, e.src, e.dst, e.weight)
    for precision in ("float32", "float64"):
        compute(snap, mode="diffusion", backend="numba", precision=precision, tol=TOL)
    compute(snap, mode="tri", backend="numba", precision="float64", tol=TOL)
    if combinatorial:
        compute(
            snap,
            mode="tri",
            backend="numba",
            precision="float64",
            tol=TOL,
            laplacian="combinatorial",
        )
    g = Cybergraph(require_cids=False)
    g.particles.intern(np.arange(e.n).astype(str))
    half = e.m // 2
    g.add_link_ids(e.src[:half], e.dst[:half], None, e.weight[:half])
    eng = FocusEngine(g, mode="diffusion", tol=TOL, backend="numba")
    eng.compute()
    more = slice(half, half + 20)
    g.add_link_ids(e.src[more], e.dst[more], None, e.weight[more])
    eng.apply()
    return time.perf_counter() - t0


def bench_ours(report: Report, e: Edges, ref: np.ndarray, scale: int, repeat: int, tag: str = ""):
    """focusflow diffusion in float32 and float64; returns the snapshot."""
    from focusflow.focus import compute
    from focusflow.graph import Snapshot

    def build() -> Snapshot:
        return Snapshot(e.n, e.src, e.dst, e.weight)

    snap, t_build = timed(build)
    log(f"  Snapshot build: {t_build:.3f} s ({e.m / t_build / 1e6:.2f} M links/s, nnz {snap.nnz})")
    base = f"ours numba float32{tag}"
    for precision in ("float32", "float64"):
        name = f"ours numba {precision}{tag}"
        log(f"  {name}")

        def solve(precision: str = precision):
            return compute(snap, mode="diffusion", backend="numba", precision=precision, tol=TOL)

        # The first call prepares the operator (SELL storage, float32 copy) and
        # caches it on the snapshot: that is build work, counted in build time.
        first = solve()
        prep = first.diagnostics.timings["prepare"]
        log(f"    operator preparation (first call, counted as build) {prep:.3f} s")
        res, t_med, runs = median_of(solve, repeat)
        tm = res.diagnostics.timings
        log(
            f"    solve {t_med:.3f} s (median of {len(runs)}: "
            f"{', '.join(f'{t:.3f}' for t in runs)}); diagnostics: prepare "
            f"{tm['prepare']:.3f} s, iterate {tm['solve']:.3f} s; {res.iterations} iterations, "
            f"converged={res.converged}, final change {res.residual:.2e}"
        )
        err = l1(res.focus, ref)
        report.check(name, err)
        report.rows.append(
            Row(
                name,
                scale,
                t_build + prep,
                t_med,
                res.iterations,
                err,
                base,
                "build = Snapshot + operator preparation; solve = wall time of compute(snapshot)",
                runs,
            )
        )
        report.sections[f"{name} diagnostics"] = {
            "prepare_s": tm["prepare"],
            "iterate_s": tm["solve"],
            "mass": float(res.focus.sum()),
            "converged": res.converged,
        }
    return snap


class TimeBudgetError(Exception):
    """Raised from a progress callback to stop a solve that runs past its budget."""

    def __init__(self, iterations: int, residual: float, seconds: float) -> None:
        super().__init__(f"stopped after {iterations} iterations, {seconds:.0f} s")
        self.iterations = iterations
        self.residual = residual
        self.seconds = seconds


def bench_tri(report: Report, snap: Any, scale: int, laplacian: str, budget_s: float) -> None:
    """One full tri-kernel solve, stopped (and reported as such) after ``budget_s``."""
    from focusflow.focus import compute

    name = f"ours tri ({laplacian} laplacian), float64"
    log(f"  {name} (time budget {budget_s:g} s)")
    t0 = time.perf_counter()
    history: list[tuple[int, float, float]] = []

    def progress(it: int, residual: float) -> None:
        elapsed = time.perf_counter() - t0
        history.append((it, residual, elapsed))
        if elapsed > budget_s:
            raise TimeBudgetError(it, residual, elapsed)

    def tri(**choices):
        """A float64 numba tri solve of ``snap`` (tol TOL unless ``choices`` say)."""
        return compute(
            snap,
            **{
                "mode": "tri",
                "backend": "numba",
                "precision": "float64",
                "tol": TOL,
                "laplacian": laplacian,
                **choices,
            },
        )

    try:
        res = tri(progress=progress)
    except TimeBudgetError as stop:
        log(
            f"    NOT FINISHED within the budget: {stop}; residual {stop.residual:.2e}; "
            f"residuals every 5 iterations: "
            f"{', '.join(f'{r:.1e}' for _, r, _ in history[::5])}"
        )
        report.sections[name] = {
            "finished": False,
            "seconds": stop.seconds,
            "iterations": stop.iterations,
            "residual": stop.residual,
            "history": history,
        }
        report.rows.append(
            Row(
                name,
                scale,
                None,
                stop.seconds,
                stop.iterations,
                None,
                "ours numba float32",
                "stopped at the time budget",
            )
        )
        return
    t = time.perf_counter() - t0
    tm = res.diagnostics.timings
    phi = res.focus
    sane = bool(np.all(np.isfinite(phi)) and phi.min() >= 0 and abs(phi.sum() - 1) < 1e-9)
    diff = report.row("ours numba float64")
    f32 = report.row("ours numba float32")
    ratio64 = t / diff.solve_s if diff and diff.solve_s else None
    ratio32 = t / f32.solve_s if f32 and f32.solve_s else None
    log(
        f"    total {t:.3f} s, {res.iterations} iterations, converged={res.converged}, "
        f"final change {res.residual:.2e}; diffusion {tm['diffusion']:.3f} s, springs "
        f"{tm['springs']:.3f} s, heat {tm['heat']:.3f} s, springs and heat side by side "
        f"{tm.get('springs_heat', 0.0):.3f} s, laplacian setup "
        f"{tm.get('laplacian_setup', 0.0):.3f} s; inner {res.diagnostics.inner}"
    )
    if ratio64 is not None:
        log(
            f"    tri / diffusion-only float64 solve: {ratio64:.2f}x"
            + (f" (vs float32: {ratio32:.2f}x)" if ratio32 else "")
        )
    if not sane:
        report.failures.append(f"{name}: focus not a distribution (finite, >= 0, sum 1)")
        log("    FAIL: focus is not a probability distribution")
    # The diffusion times exclude the operator's preparation (SELL storage);
    # the tri solve's own preparation is the symmetric matrix (its Laplacian
    # setup above). Solved again on the prepared operator, with both endings
    # (docs/focus.md, finish), the comparison is like for like.
    prepared = {}
    tight = tri(tol=1e-11).focus
    for finish in ("bounded", "fixed"):
        t1 = time.perf_counter()
        again = tri(finish=finish)
        dt = time.perf_counter() - t1
        r64 = dt / diff.solve_s if diff and diff.solve_s else None
        prepared[finish] = {
            "seconds": dt,
            "iterations": again.iterations,
            "inner": again.diagnostics.inner,
            "ratio_to_diffusion_f64": r64,
            "l1_to_tight": float(np.abs(again.focus - tight).sum()),
        }
        log(
            f"    again on the prepared operator, finish={finish}: {dt:.3f} s, "
            f"{again.iterations} iterations, inner {again.diagnostics.inner}, L1 to a "
            f"solve at tol 1e-11 {prepared[finish]['l1_to_tight']:.2e}"
            + (f"; / diffusion float64: {r64:.2f}x" if r64 else "")
        )
    report.sections[name] = {
        "finished": True,
        "seconds": t,
        "iterations": res.iterations,
        "converged": res.converged,
        "residual": res.residual,
        "timings": tm,
        "inner": res.diagnostics.inner,
        "ratio_to_diffusion_f64": ratio64,
        "ratio_to_diffusion_f32": ratio32,
        "sane": sane,
        "prepared": prepared,
    }
    report.rows.append(
        Row(
            name,
            scale,
            None,
            t,
            res.iterations,
            None,
            "ours numba float32",
            "not PageRank: no reference",
        )
    )


# --- peers ----------------------------------------------------------------------


def bench_scipy(report: Report, e: Edges, ref: np.ndarray, scale: int, repeat: int) -> None:
    name = "scipy power iteration"
    g, t_build = timed(lambda: scipy_build(e))
    (x, it, change), t_med, runs = median_of(lambda: scipy_power(g, TOL), repeat)
    log(f"  build {t_build:.3f} s, solve {t_med:.3f} s, {it} iterations, change {change:.2e}")
    err = l1(x, ref)
    report.check(name, err)
    report.rows.append(
        Row(
            name,
            scale,
            t_build,
            t_med,
            it,
            err,
            "ours numba float32",
            "csr P^T @ x, single thread",
            runs,
        )
    )


def bench_graphblas(report: Report, e: Edges, ref: np.ndarray, scale: int, repeat: int) -> None:
    import graphblas as gb
    from graphblas import Matrix, Vector, binary, monoid, semiring, unary

    name = "python-graphblas"
    n = e.n

    def build() -> tuple[Any, Any]:
        a = Matrix.from_coo(e.src, e.dst, e.weight, nrows=n, ncols=n, dup_op=binary.plus)
        out = a.reduce_rowwise(monoid.plus).new()
        inv = out.apply(unary.minv).new()
        p = inv.diag().mxm(a, semiring.plus_times).new()  # D^-1 A
        pt = p.T.new()  # stored by rows of P^T: mxv is then a parallel pull
        linked = np.zeros(n, dtype=bool)
        linked[out.to_coo()[0]] = True
        dang = np.flatnonzero(~linked)
        dmask = Vector.from_coo(dang, np.ones(len(dang)), size=n)
        return pt, dmask

    def solve(pt: Any, dmask: Any) -> tuple[np.ndarray, int, float]:
        x = Vector.from_scalar(1.0 / n, n)
        change = float("inf")
        it = 0
        for it in range(1, PEER_MAX_ITER + 1):  # noqa: B007 (it is returned)
            dm = x.ewise_mult(dmask, binary.times).reduce(monoid.plus).value or 0.0
            y = Vector.from_scalar((ALPHA * dm + 1.0 - ALPHA) / n, n)
            t = pt.mxv(x, semiring.plus_times).new()
            y(accum=binary.plus) << t.apply(binary.times, right=ALPHA)
            change = float(y.ewise_add(x, binary.minus).apply(unary.abs).reduce(monoid.plus).value)
            x = y
            if change < TOL:
                break
        return x.to_dense(fill_value=0.0), it, change

    (pt, dmask), t_build = timed(build)
    (x, it, change), t_med, runs = median_of(lambda: solve(pt, dmask), repeat)
    threads = gb.ss.config["nthreads"] if hasattr(gb, "ss") else "?"
    log(
        f"  build {t_build:.3f} s, solve {t_med:.3f} s, {it} iterations, change {change:.2e} "
        f"({threads} threads)"
    )
    err = l1(x, ref)
    report.check(name, err)
    report.rows.append(
        Row(
            name,
            scale,
            t_build,
            t_med,
            it,
            err,
            "ours numba float32",
            f"P^T.mxv(x), SuiteSparse, {threads} threads",
            runs,
        )
    )


def bench_igraph(report: Report, e: Edges, ref: np.ndarray, scale: int, repeat: int) -> None:
    import igraph

    name = "igraph PRPACK"

    def build() -> Any:
        # A list of tuples builds faster than a numpy (E, 2) int array (both go
        # through Python objects; bench/RESULTS.md, focus_cpu.py).
        g = igraph.Graph(
            n=e.n, edges=list(zip(e.src.tolist(), e.dst.tolist(), strict=True)), directed=True
        )
        g.es["weight"] = e.weight
        return g

    def solve(g: Any) -> np.ndarray:
        return np.asarray(
            g.pagerank(weights="weight", damping=ALPHA, implementation="prpack", directed=True)
        )

    g, t_build = timed(build)
    x, t_med, runs = median_of(lambda: solve(g), repeat)
    log(f"  build {t_build:.3f} s, solve {t_med:.3f} s (PRPACK's own tolerance)")
    err = l1(x, ref)
    report.check(name, err)
    report.rows.append(
        Row(
            name,
            scale,
            t_build,
            t_med,
            None,
            err,
            "ours numba float32",
            "single thread; graph built from a list of tuples",
            runs,
        )
    )


def bench_networkx(report: Report, e: Edges, ref: np.ndarray, scale: int, tag: str) -> None:
    import networkx as nx

    name = "networkx pagerank"

    def build() -> Any:
        # A DiGraph keeps one edge per pair: sum duplicates first (scipy COO -> CSR).
        a = sp.coo_matrix(sp.csr_matrix((e.weight, (e.src, e.dst)), shape=(e.n, e.n)))
        g = nx.DiGraph()
        g.add_nodes_from(range(e.n))
        g.add_weighted_edges_from(zip(a.row.tolist(), a.col.tolist(), a.data.tolist(), strict=True))
        return g

    def solve(g: Any) -> np.ndarray:
        pr = nx.pagerank(g, alpha=ALPHA, tol=TOL / e.n, weight="weight", max_iter=PEER_MAX_ITER)
        return np.fromiter((pr[i] for i in range(e.n)), dtype=np.float64, count=e.n)

    g, t_build = timed(build)
    x, t = timed(lambda: solve(g))
    log(f"  build {t_build:.3f} s, solve {t:.3f} s (tol = 1e-6 / N: L1 change < 1e-6)")
    err = l1(x, ref)
    report.check(name, err)
    report.rows.append(
        Row(
            name,
            scale,
            t_build,
            t,
            None,
            err,
            f"ours numba float32{tag}",
            "one run; includes nx's own conversion to scipy",
            [t],
        )
    )


# --- incremental ----------------------------------------------------------------


def bench_incremental(report: Report, e: Edges, ref: np.ndarray, args: argparse.Namespace) -> None:
    """FocusEngine.apply() after a 1% and then a 0.01% batch, against cold solves."""
    from focusflow.focus import compute
    from focusflow.focus.engine import FocusEngine
    from focusflow.graph import Cybergraph, Snapshot, rmat_edges

    g = Cybergraph(require_cids=False)
    _, t_intern = timed(lambda: g.particles.intern(np.arange(e.n).astype(str)))
    _, t_add = timed(lambda: g.add_link_ids(e.src, e.dst, None, e.weight))
    eng = FocusEngine(g, mode="diffusion", tol=TOL, backend="numba")
    r0, t_cold_engine = timed(eng.compute)
    err0 = l1(r0.focus, ref)
    log(
        f"  Cybergraph: intern {e.n} particles {t_intern:.3f} s, add {e.m} links "
        f"{t_add:.3f} s; engine cold compute (snapshot build + solve + push polish) "
        f"{t_cold_engine:.3f} s, {r0.iterations} iterations"
    )
    report.check("engine cold compute", err0)
    report.sections["engine cold"] = {
        "intern_s": t_intern,
        "add_links_s": t_add,
        "compute_s": t_cold_engine,
        "iterations": r0.iterations,
        "l1_error": err0,
    }

    new_src, new_dst, new_w = rmat_edges(args.scale, args.edge_factor, seed=args.seed + 1000)
    total = len(new_src)
    cuts = [("1%", 0, max(1, total // 100))]
    cuts.append(("0.01%", cuts[0][2], cuts[0][2] + max(1, total // 10_000)))
    current, current_ref = e, ref
    for label, lo, hi in cuts:
        name = f"incremental {label} batch"
        log(f"  {name}: {hi - lo} new R-MAT edges (seed {args.seed + 1000})")
        bs, bd, bw = drop_self_loops(new_src[lo:hi], new_dst[lo:hi], new_w[lo:hi])
        _, t_ingest = timed(lambda bs=bs, bd=bd, bw=bw: g.add_link_ids(bs, bd, None, bw))
        res, t_apply = timed(eng.apply)
        tm = res.diagnostics.timings
        current = concat_edges(current, bs, bd, bw)
        (current_ref, ref_it, _), t_ref = timed(lambda c=current, x=current_ref: reference(c, x))
        err_inc = l1(res.focus, current_ref)
        log(
            f"    add_link_ids {t_ingest:.4f} s; apply {t_apply:.4f} s (patch "
            f"{tm.get('patch', 0):.4f}, residual {tm.get('residual', 0):.4f}, push "
            f"{tm.get('push', 0):.4f}); {res.diagnostics.inner}; overlay nnz "
            f"{g.snapshot().overlay_nnz}; reference of the final graph: {ref_it} iterations "
            f"warm-started, {t_ref:.1f} s"
        )
        report.check(f"{name} (incremental)", err_inc)

        fresh, t_rebuild = timed(lambda c=current: Snapshot(c.n, c.src, c.dst, c.weight))

        def cold(snap: Any, precision: str = "float64") -> Any:
            return compute(snap, mode="diffusion", backend="numba", precision=precision, tol=TOL)

        cold(fresh)
        r_cold, t_cold, _ = median_of(lambda f=fresh: cold(f), args.repeat)
        err_cold = l1(r_cold.focus, current_ref)
        _, t_cold32, _ = median_of(lambda f=fresh: cold(f, "float32"), args.repeat)
        patched = g.snapshot()
        cold(patched)
        r_patched, t_cold_patched, _ = median_of(lambda p=patched: cold(p), args.repeat)
        err_patched = l1(r_patched.focus, current_ref)
        log(
            f"    cold float64 solve on the final graph {t_cold:.3f} s ({r_cold.iterations} "
            f"iterations; on the patched snapshot {t_cold_patched:.3f} s); cold float32 solve "
            f"{t_cold32:.3f} s; snapshot rebuild {t_rebuild:.3f} s"
        )
        report.check(f"{name} (cold float64)", err_cold)
        report.check(f"{name} (cold on patched snapshot)", err_patched)
        speed = t_cold / t_apply
        speed_rebuild = (t_cold + t_rebuild) / t_apply
        speed32 = t_cold32 / t_apply
        log(
            f"    L1 error: incremental {err_inc:.3e}, cold {err_cold:.3e} -> incremental is "
            f"{'as accurate or better' if err_inc <= err_cold else 'LESS accurate'}"
        )
        log(
            f"    speed-up of apply(): {speed:.1f}x vs cold f64 solve, {speed32:.1f}x vs cold "
            f"f32 solve, {speed_rebuild:.1f}x vs rebuild + cold f64 solve (goal >= 20x)"
        )
        report.sections[name] = {
            "edges": len(bs),
            "ingest_s": t_ingest,
            "apply_s": t_apply,
            "apply_timings": tm,
            "apply_inner": res.diagnostics.inner,
            "apply_converged": res.converged,
            "apply_residual": res.residual,
            "cold_f64_solve_s": t_cold,
            "cold_f32_solve_s": t_cold32,
            "cold_f64_patched_solve_s": t_cold_patched,
            "rebuild_s": t_rebuild,
            "cold_iterations": r_cold.iterations,
            "l1_incremental": err_inc,
            "l1_cold": err_cold,
            "l1_cold_patched": err_patched,
            "speedup_vs_cold_f64": speed,
            "speedup_vs_cold_f32": speed32,
            "speedup_vs_rebuild_and_cold": speed_rebuild,
            "incremental_at_least_as_accurate": err_inc <= err_cold,
        }
        del fresh, patched, r_cold, r_patched
        gc.collect()


# --- snapshot memory (child process) ----------------------------------------------

_CHILD = r"""
import gc, json, sys, time
import numpy as np
from focusflow.graph import Snapshot, rmat_edges

def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(line.split()[1]) * 1024
    return out

scale, edge_factor, seed = (int(v) for v in sys.argv[1:4])
Snapshot(4, np.array([0, 1, 2]), np.array([1, 2, 3]), np.ones(3))  # load numba's cache
src, dst, w = rmat_edges(scale, edge_factor, seed=seed)
keep = src != dst
src, dst, w = src[keep], dst[keep], w[keep]
del keep
gc.collect()
after_gen = status()
try:  # reset the peak RSS (Linux >= 4.0), so the generator's temporaries do not count
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    reset = True
except OSError:
    reset = False
base = status()
t = time.perf_counter()
snap = Snapshot(1 << scale, src, dst, w)
build = time.perf_counter() - t
end = status()
print(json.dumps({"links": int(len(src)), "nnz": int(snap.nnz), "build_s": build,
                  "after_gen": after_gen, "base": base, "end": end, "peak_reset": reset}))
"""


def bench_memory(report: Report, args: argparse.Namespace) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(args.scale), str(args.edge_factor), str(args.seed)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    children_maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    links = out["links"]
    base_rss = out["base"]["VmRSS"]
    peak = out["end"]["VmHWM"] if out["peak_reset"] else children_maxrss
    peak_per_link = (peak - base_rss) / links
    kept_per_link = (out["end"]["VmRSS"] - base_rss) / links
    rate = links / out["build_s"]
    log(
        f"  child: {links} links, nnz {out['nnz']}, Snapshot build {out['build_s']:.3f} s = "
        f"{rate / 1e6:.2f} M links/s"
    )
    log(
        f"  RSS after generating the edges {base_rss / 2**20:.0f} MiB; peak during build "
        f"{peak / 2**20:.0f} MiB -> {peak_per_link:.1f} bytes/link above it at peak, "
        f"{kept_per_link:.1f} bytes/link kept by the snapshot"
    )
    log(
        f"  (peak reset via /proc/self/clear_refs: {out['peak_reset']}; the generator's own "
        f"peak was {out['after_gen']['VmHWM'] / 2**20:.0f} MiB; getrusage(RUSAGE_CHILDREN)"
        f".ru_maxrss = {children_maxrss / 2**20:.0f} MiB is not usable here: it counts this "
        f"process's image that the child held between fork and exec)"
    )
    report.sections["snapshot memory"] = {
        **out,
        "links_per_s": rate,
        "peak_bytes_per_link": peak_per_link,
        "kept_bytes_per_link": kept_per_link,
        "ru_maxrss_children": children_maxrss,
    }


# --- machine and summary ------------------------------------------------------------


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "loadavg_start": loadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        info["cpu"] = models[0] if models else platform.processor()
    except OSError:
        info["cpu"] = platform.processor()
    for mod in ("numba", "igraph", "graphblas", "networkx"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = "not installed"
    with contextlib.suppress(ImportError):
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    with contextlib.suppress(ImportError, AttributeError, KeyError):
        import graphblas

        info["graphblas_threads"] = graphblas.ss.config["nthreads"]
    return info


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_summary(report: Report) -> None:
    log("\n## Results\n")
    log(
        f"PageRank alpha {ALPHA}, stop at L1 change < {TOL:g}; reference: float64 power "
        f"iteration to L1 change < {REF_TOL:g}. Times are medians; ratio = contender solve / "
        f"ours float32 solve on the same graph.\n"
    )
    log(
        "| contender | scale | build s | solve s | iterations | ms/iter | L1 error vs ref | ratio |"
    )
    log("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in report.rows:
        base = report.row(r.baseline)
        ratio = r.solve_s / base.solve_s if base and base.solve_s and r.solve_s else None
        log(
            f"| {r.contender} | {r.scale} | {fmt(r.build_s, '.3f')} | {fmt(r.solve_s, '.3f')} | "
            f"{fmt(r.iterations, 'd')} | {fmt(r.ms_per_iter, '.2f')} | "
            f"{fmt(r.l1_error, '.2e')} | {fmt(ratio, '.2f')} |"
        )
    log("")
    ours = report.row("ours numba float32")
    peers = [
        r
        for r in report.rows
        if r.contender in ("scipy power iteration", "python-graphblas", "igraph PRPACK")
        and r.solve_s
    ]
    if ours and ours.solve_s and peers:
        best = min(peers, key=lambda r: r.solve_s or float("inf"))
        ratio = (best.solve_s or 0.0) / ours.solve_s
        report.sections["best peer ratio"] = {"peer": best.contender, "ratio": ratio}
        log(
            f"- best peer / ours (float32) solve: {best.contender} {best.solve_s:.3f} s / "
            f"{ours.solve_s:.3f} s = {ratio:.2f}x (goal >= 2x: "
            f"{'met' if ratio >= 2 else 'NOT met'})"
        )
        ours_total = (ours.build_s or 0.0) + ours.solve_s
        best_total = min(peers, key=lambda r: (r.build_s or 0.0) + (r.solve_s or 0.0))
        bt = (best_total.build_s or 0.0) + (best_total.solve_s or 0.0)
        log(
            f"- best peer / ours build + solve: {best_total.contender} {bt:.3f} s / "
            f"{ours_total:.3f} s = {bt / ours_total:.2f}x"
        )
    nxr = report.row("networkx pagerank")
    if nxr and nxr.solve_s:
        base = report.row(nxr.baseline)
        if base and base.solve_s:
            log(
                f"- networkx / ours float32 at scale {nxr.scale}: {nxr.solve_s / base.solve_s:.1f}x"
            )
    f64 = report.row("ours numba float64")
    for key, val in report.sections.items():
        if not (key.startswith("ours tri") and isinstance(val, dict)):
            continue
        r = val.get("ratio_to_diffusion_f64")
        if val.get("finished") and r is not None:
            ready = val["prepared"]
            rb = ready["bounded"]["ratio_to_diffusion_f64"]
            rf = ready["fixed"]["ratio_to_diffusion_f64"]
            log(
                f"- {key}, operator prepared as for diffusion / diffusion-only float64 "
                f"solve: {rb:.2f}x (goal <= 5x: {'met' if rb <= 5 else 'NOT met'}); "
                f"finish=fixed (chains): {rf:.2f}x (L1 to a tol-1e-11 solve: "
                f"{ready['bounded']['l1_to_tight']:.1e} and {ready['fixed']['l1_to_tight']:.1e}); "
                f"first solve with the Laplacian "
                f"setup: {r:.2f}x; vs float32 diffusion: {val['ratio_to_diffusion_f32']:.2f}x"
            )
        elif f64 and f64.solve_s:
            low = val["seconds"] / f64.solve_s
            log(
                f"- {key}: not finished in {val['seconds']:.1f} s ({val['iterations']} "
                f"iterations, residual {val['residual']:.1e}): ratio > {low:.0f}x (goal <= 5x: "
                f"NOT met)"
            )
    for key, val in report.sections.items():
        if key.startswith("incremental") and isinstance(val, dict):
            log(
                f"- {key} ({val['edges']} edges): apply {val['apply_s'] * 1e3:.1f} ms; "
                f"speed-up {val['speedup_vs_cold_f64']:.1f}x vs cold f64 solve, "
                f"{val['speedup_vs_cold_f32']:.1f}x vs cold f32 solve, "
                f"{val['speedup_vs_rebuild_and_cold']:.1f}x vs rebuild + cold solve "
                f"(goal >= 20x: {'met' if val['speedup_vs_cold_f64'] >= 20 else 'NOT met'}); "
                f"L1 error {val['l1_incremental']:.2e} incremental vs {val['l1_cold']:.2e} "
                f"cold"
            )
    mem = report.sections.get("snapshot memory")
    if isinstance(mem, dict):
        log(
            f"- snapshot build: {mem['links_per_s'] / 1e6:.2f} M links/s; peak "
            f"{mem['peak_bytes_per_link']:.1f} bytes/link, kept "
            f"{mem['kept_bytes_per_link']:.1f} bytes/link (child process)"
        )
    m = report.machine
    log(
        f"- machine: {m.get('cpu')}, nproc {m.get('nproc')}, {m.get('platform')}, "
        f"{m.get('date')}; load average at start {m.get('loadavg_start')}, at end "
        f"{m.get('loadavg_end')} (other processes on these cores skew every timing)"
    )
    log(
        f"- versions: python {m.get('python')}, numpy {m.get('numpy')}, scipy {m.get('scipy')}, "
        f"numba {m.get('numba')} ({m.get('numba_threads')} threads), igraph {m.get('igraph')}, "
        f"graphblas {m.get('graphblas')} ({m.get('graphblas_threads')} threads), networkx "
        f"{m.get('networkx')}"
    )
    busy = {k: v for k, v in report.foreign_load.items() if v > 0.1}
    if busy:
        log(
            "- WARNING: other processes took CPU time during timed sections, those timings "
            "are inflated (parallel kernels suffer most): "
            + ", ".join(f"{k} {100 * v:.0f}%" for k, v in busy.items())
        )
    for name, why in report.skipped.items():
        log(f"- skipped {name}: {why}")
    if report.failures:
        log("\nFAILED:")
        for f in report.failures:
            log(f"  - {f}")
    else:
        log("\nAll checks passed.")


# --- main ----------------------------------------------------------------------------


def run_main_graph(report: Report, args: argparse.Namespace) -> None:
    """Sections 1-4 on the ``--scale`` graph (its arrays are freed on return)."""
    graph: list[tuple[Edges, np.ndarray]] = []
    with section(report, f"R-MAT graph and float64 reference (scale {args.scale})"):
        e, t_gen = timed(lambda: make_edges(args.scale, args.edge_factor, args.seed))
        log(
            f"  {e.n} nodes, {e.raw_edges} edges generated in {t_gen:.1f} s, {e.m} after "
            f"dropping self-loops"
        )
        (ref, it, change), t_ref = timed(lambda: reference(e))
        log(f"  reference: {it} iterations, final L1 change {change:.1e}, {t_ref:.1f} s")
        report.sections["graph"] = {
            "n": e.n,
            "raw_edges": e.raw_edges,
            "edges": e.m,
            "generate_s": t_gen,
            "reference_iterations": it,
            "reference_s": t_ref,
        }
        graph.append((e, ref))
    if not graph:
        return
    e, ref = graph.pop()

    snaps: list[Any] = []
    with section(report, "ours: focusflow numba diffusion"):
        snaps.append(bench_ours(report, e, ref, args.scale, args.repeat))
    if snaps:
        with section(report, "ours: tri-kernel (normalized Laplacian)"):
            bench_tri(report, snaps[0], args.scale, "normalized", args.tri_budget)
        if args.combinatorial:
            with section(report, "ours: tri-kernel (combinatorial Laplacian)"):
                bench_tri(report, snaps[0], args.scale, "combinatorial", args.tri_budget)
    snaps.clear()
    gc.collect()

    with section(report, "peer: scipy power iteration", required=False):
        bench_scipy(report, e, ref, args.scale, args.repeat)
    with section(report, "peer: python-graphblas", required=False):
        bench_graphblas(report, e, ref, args.scale, args.repeat)
    if args.skip_slow:
        report.skipped["peer: igraph PRPACK"] = "--skip-slow"
    else:
        with section(report, "peer: igraph PRPACK", required=False):
            bench_igraph(report, e, ref, args.scale, args.repeat)

    with section(report, "ours: incremental FocusEngine"):
        bench_incremental(report, e, ref, args)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--scale", type=int, default=20, help="R-MAT scale: 2**scale nodes")
    p.add_argument("--edge-factor", type=int, default=16, help="edges per node")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nx-scale", type=int, default=16, help="scale of the networkx comparison")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per solve (median)")
    p.add_argument("--json", metavar="OUT", help="write every number to this JSON file")
    p.add_argument("--skip-slow", action="store_true", help="skip igraph and networkx")
    p.add_argument(
        "--combinatorial",
        action="store_true",
        help="also run tri with the combinatorial Laplacian (slow)",
    )
    p.add_argument(
        "--tri-budget",
        type=float,
        default=300.0,
        metavar="S",
        help="stop each tri solve after this many seconds (reported as unfinished)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = Report(args=vars(args))
    report.machine = machine_info()
    t_start = time.perf_counter()
    log(
        f"focus_cpu benchmark: scale {args.scale}, edge factor {args.edge_factor}, seed "
        f"{args.seed}, repeat {args.repeat}; {report.machine['cpu']}, nproc "
        f"{report.machine['nproc']}; load average {report.machine['loadavg_start']}"
    )

    with section(report, "JIT warm-up (not timed)"):
        log(f"  {warm_up_jit(args.combinatorial):.1f} s")

    run_main_graph(report, args)
    gc.collect()

    if args.skip_slow:
        report.skipped["networkx"] = "--skip-slow"
    else:
        tag = f" @ nx scale {args.nx_scale}"
        with section(report, f"networkx comparison (scale {args.nx_scale})"):
            small = make_edges(args.nx_scale, args.edge_factor, args.seed)
            small_ref, it, _ = reference(small)
            log(f"  {small.n} nodes, {small.m} edges; reference {it} iterations")
            bench_ours(report, small, small_ref, args.nx_scale, args.repeat, tag)
            try:
                bench_networkx(report, small, small_ref, args.nx_scale, tag)
            except ImportError as exc:
                report.skipped["networkx"] = f"import failed: {exc}"
                log(f"  networkx skipped: {exc}")

    with section(report, "snapshot build memory (child process)"):
        bench_memory(report, args)

    report.sections["wall_s"] = time.perf_counter() - t_start
    report.machine["loadavg_end"] = loadavg()
    print_summary(report)
    log(f"\ntotal wall time {report.sections['wall_s']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(asdict(report), f, indent=1, default=_jsonable)
        log(f"wrote {args.json}")
    return 1 if report.failures else 0


def _jsonable(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
