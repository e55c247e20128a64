"""``compile_graph``: graph -> focus -> spectrum -> d*, h*, L* -> weights -> ONNX.

Every phase is sparse: the adjacency is CSR, the SVD is randomized over sparse x
thin-dense products, the embeddings are n x d and the attention and MLP
matrices d x d. Nothing of size vocab x vocab is formed, so memory is
``O(nnz + n k)`` with k the rank of the spectrum (128 by default).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import scipy.sparse as sp

from focusflow.compile.dims import (
    DEFAULT_EPS,
    DEFAULT_MAX_LAYERS,
    Layers,
    Semcons,
    diameter_double_sweep,
    dimension_of,
    effective_rank,
    effective_rank_bounds,
    layers_of,
    semcons_of,
)
from focusflow.compile.onnx_export import export
from focusflow.compile.runner import MODEL_FILE, REPORT_FILE, VOCAB_FILE, write_vocab
from focusflow.compile.svd import TruncatedSVD, randomized_svd
from focusflow.compile.weights import (
    MAX_HOPS,
    CompiledWeights,
    LinkTable,
    build_weights,
    split_heads,
)
from focusflow.core.errors import InvalidParameterError, require_int
from focusflow.focus.result import FocusResult
from focusflow.focus.solver import compute, contraction_rate, release_operators
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.snapshot import Snapshot

Phase = Callable[[str], None]
#: report.json's document. A plain JSON object, not a record: the CLI adds its
#: own entries (the graph's source, the links it skipped) and the benches read
#: entries by name.
Report = dict[str, Any]


@dataclass
class CompileOptions:
    """Settings of a compilation; docs/compile.md gives each one's meaning.

    ``dim`` fixes d (default: d*); ``rank`` is k, the size of the spectrum d*
    is measured on; ``max_layers`` caps L*; ``floor`` is the share of phi*
    mixed into every output; ``attention_share`` the weight of the attention's
    redistribution of context mass per layer.
    """

    dim: int | None = None
    rank: int = 128
    max_layers: int = DEFAULT_MAX_LAYERS
    eps: float = DEFAULT_EPS
    seed: int = 0
    mode: str = "tri"
    alpha: float = 0.85
    min_share: float = 0.01
    max_heads: int = 16
    floor: float = 0.02
    attention_share: float = 0.5
    power_iters: int = 2
    oversample: int = 10
    eval_contexts: int = 64
    hops: int | None = None

    def check(self) -> None:
        if self.dim is not None:
            require_int("dim", self.dim, 1)
        require_int("rank", self.rank, 1)
        require_int("max_layers", self.max_layers, 1)
        require_int("eval_contexts", self.eval_contexts, 0)
        if self.hops is not None:
            require_int("hops", self.hops, 0)
            if self.hops > MAX_HOPS:
                raise InvalidParameterError(
                    f"hops must be at most {MAX_HOPS} (each costs 16x the last), got {self.hops}"
                )
        if not 0.0 < self.eps < 1.0:
            raise InvalidParameterError(f"eps must be in (0, 1), got {self.eps}")
        if not 0.0 < self.floor < 1.0:
            raise InvalidParameterError(f"floor must be in (0, 1), got {self.floor}")
        if not 0.0 <= self.attention_share <= 1.0:
            raise InvalidParameterError(
                f"attention_share must be in [0, 1], got {self.attention_share}"
            )
        if not 0.0 <= self.min_share <= 1.0:
            raise InvalidParameterError(f"min_share must be in [0, 1], got {self.min_share}")
        if self.mode not in ("tri", "diffusion"):
            raise InvalidParameterError(f"mode must be tri or diffusion, got {self.mode!r}")


@dataclass
class Compiled:
    """A compilation's products, in memory (``report`` is what report.json holds)."""

    weights: CompiledWeights
    focus: FocusResult
    svd: TruncatedSVD
    semcons: Semcons
    layers: Layers
    adjacency: sp.csr_matrix
    report: Report


def link_table(graph: Cybergraph, semcons: Semcons) -> LinkTable:
    """The links every phase reads, with their current weights, read once."""
    links = graph.links()
    weight = graph.link_weight_range(0, graph.n_links)
    return LinkTable(links.src, links.dst, weight, semcons.of_link, tuple(semcons.names))


def adjacency_of(graph: Cybergraph, table: LinkTable | None = None) -> sp.csr_matrix:
    """The weighted adjacency in particle order (rows = sources, duplicates summed)."""
    if table is None:
        links = graph.links()
        src, dst, w = links.src, links.dst, graph.link_weight_range(0, graph.n_links)
    else:
        src, dst, w = table.src, table.dst, table.weight
    n = graph.n_particles
    a = sp.csr_matrix((w, (src, dst)), shape=(n, n))
    a.sum_duplicates()
    a.eliminate_zeros()
    return a


def focus_of(graph: Cybergraph, table: LinkTable, opt: CompileOptions) -> FocusResult:
    """phi* of ``graph``, solved on a snapshot of its own.

    ``compute(graph)`` would keep the snapshot on the graph and, with it, the
    operator cached for it (the symmetric matrix and CSR copies of every
    link): at 5·10^7 links about 6 GB that the SVD and weight phases do not
    need. This one is dropped when the solve returns.
    """
    snap = Snapshot(graph.n_particles, table.src, table.dst, table.weight, order=graph.order)
    try:
        return compute(snap, mode=opt.mode, alpha=opt.alpha)
    finally:
        release_operators(snap)


def kappa_of(result: FocusResult, fallback: float) -> tuple[float, str]:
    """The measured contraction rate and where it came from."""
    diag = result.diagnostics
    rate = diag.contraction_rate
    if rate is None:
        rate = contraction_rate(diag.residual_history)
    if rate is not None and 0.0 < rate < 1.0:
        return float(rate), "solver"
    return fallback, "alpha (the solve converged too fast to measure a rate)"


def compile_graph(
    graph: Cybergraph,
    options: CompileOptions | None = None,
    *,
    phase: Phase | None = None,
) -> Compiled:
    """Compile ``graph`` into weights and a report (no files; see ``write``)."""
    opt = options or CompileOptions()
    opt.check()
    if graph.n_links == 0:
        raise InvalidParameterError("the graph has no links: nothing to compile")
    timings: dict[str, float] = {}

    def start(name: str) -> float:
        if phase is not None:
            phase(name)
        return time.perf_counter()

    t = start("adjacency")
    semcons = semcons_of(
        graph.links().neuron,
        cast(list[str], graph.neurons.keys()),  # a graph read from files: text keys
        min_share=opt.min_share,
        max_heads=opt.max_heads,
    )
    table = link_table(graph, semcons)
    a = adjacency_of(graph, table)
    timings["adjacency"] = time.perf_counter() - t

    t = start("focus")
    focus = focus_of(graph, table, opt)
    phi = np.asarray(focus.focus, dtype=np.float64)
    kappa, kappa_source = kappa_of(focus, opt.alpha)
    timings["focus"] = time.perf_counter() - t

    t = start("svd")
    k = max(opt.rank, opt.dim or 0)
    m = sp.diags(np.sqrt(phi)).dot(a).tocsr()
    svd = randomized_svd(
        m, k, oversample=opt.oversample, power_iters=opt.power_iters, seed=opt.seed
    )
    d_star = dimension_of(svd.s)
    # Where the full spectrum's effective rank lies, from the top k, the tail's
    # energy (the Frobenius norm) and a bound on the rank (the nonzero rows and
    # columns): the top k alone biases d* down.
    frobenius_sq = float(m.data @ m.data)
    max_rank = int(min(np.count_nonzero(m.getnnz(axis=1)), np.count_nonzero(m.getnnz(axis=0))))
    d_star_interval = effective_rank_bounds(svd.s, frobenius_sq, max_rank)
    d = min(opt.dim or d_star, len(svd.s))
    # Only d columns are used past here; the spectrum stays whole for the report.
    svd = TruncatedSVD(
        u=np.ascontiguousarray(svd.u[:, :d]), s=svd.s, v=np.ascontiguousarray(svd.v[:, :d])
    )
    timings["svd"] = time.perf_counter() - t

    t = start("diameter")
    diameter = diameter_double_sweep(a)
    layers = layers_of(diameter, kappa, opt.eps, opt.max_layers)
    timings["diameter"] = time.perf_counter() - t

    t = start("weights")
    weights = _weights(graph.n_particles, table, a, phi, svd, d, semcons, opt, layers.capped)
    weights.meta = {
        "d": d,
        "heads": weights.heads,
        "layers": weights.layers,
        "exact_hops": weights.hops,
        "alpha": opt.alpha,
        "floor": opt.floor,
        "attention_share": opt.attention_share,
    }
    timings["weights"] = time.perf_counter() - t

    report: Report = {
        "graph": {
            "particles": graph.n_particles,
            "links": graph.n_links,
            "edges": int(a.nnz),
            "neurons": graph.n_neurons,
        },
        "d_star": d_star,
        "effective_rank": effective_rank(svd.s),
        "d_star_interval": [float(x) for x in d_star_interval],
        "spectrum_rank_k": len(svd.s),
        "spectrum_top": [float(x) for x in svd.s[:8]],
        "d": d,
        "h_star": semcons.h_star,
        "semcons": list(semcons.names),
        "exact_hops": weights.hops,
        "hop_coverage": weights.coverage,
        "heads": semcons.n_heads,
        "head_semcons": semcons.head_names(),
        "head_shares": [float(x) for x in weights.head_share],
        "L_star_raw": layers.raw,
        "L_star": layers.capped,
        "layer_cap": layers.cap,
        "diameter_estimate": diameter,
        "diameter_method": "double-sweep BFS, undirected (a lower bound; exact on trees)",
        "steps_per_hop": layers.steps_per_hop,
        "kappa": kappa,
        "kappa_source": kappa_source,
        "eps": opt.eps,
        "focus": {
            "mode": opt.mode,
            "alpha": opt.alpha,
            "iterations": focus.iterations,
            "converged": focus.converged,
        },
        "parameters": weights.parameter_count(),
        "options": asdict(opt),
        "timings": timings,
    }
    return Compiled(weights, focus, svd, semcons, layers, a, report)


def _weights(
    n: int,
    table: LinkTable,
    a: sp.csr_matrix,
    phi: np.ndarray,
    svd: TruncatedSVD,
    d: int,
    semcons: Semcons,
    opt: CompileOptions,
    layers: int,
) -> CompiledWeights:
    head_mats, head_share = split_heads(n, table.src, table.dst, table.weight, semcons)
    return build_weights(
        a,
        phi,
        svd.u[:, :d],
        svd.v[:, :d],
        head_mats,
        head_share,
        table,
        alpha=opt.alpha,
        layers=layers,
        floor=opt.floor,
        attention_share=opt.attention_share,
        hops=opt.hops,
    )


def with_layers(compiled: Compiled, graph: Cybergraph, layers: int) -> CompiledWeights:
    """``compiled``'s weights rebuilt at depth ``layers`` (what a compilation
    with ``max_layers=layers`` builds: only the weights depend on the cap),
    without redoing the focus, SVD and diameter phases."""
    require_int("layers", layers, 1)
    opt = CompileOptions(**compiled.report["options"])
    d = compiled.weights.dim
    phi = np.asarray(compiled.focus.focus, dtype=np.float64)
    table = link_table(graph, compiled.semcons)
    return _weights(
        graph.n_particles,
        table,
        compiled.adjacency,
        phi,
        compiled.svd,
        d,
        compiled.semcons,
        opt,
        layers,
    )


def write(
    compiled: Compiled,
    graph: Cybergraph,
    out_dir: str | Path,
    *,
    phase: Phase | None = None,
    eval_contexts: int | None = None,
    seed: int | None = None,
    evaluated: Callable[[int, int], None] | None = None,
) -> Report:
    """Write ``model.onnx``, ``vocab.tsv`` and (after measuring KL, where the
    options ask for contexts) ``report.json``; ``evaluated(done, total)`` hears
    of each context measured: one exact focus solve each, the long part on a
    large graph."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = compiled.report
    opts = report["options"]
    timings = report["timings"]
    if phase is not None:
        phase("onnx")
    t = time.perf_counter()
    written = export(compiled.weights, out / MODEL_FILE)
    keys = graph.particles.keys()
    write_vocab(out / VOCAB_FILE, [str(k) for k in keys])
    timings["onnx"] = time.perf_counter() - t
    report["files"] = {p.name: p.stat().st_size for p in [*written, out / VOCAB_FILE]}
    count = opts["eval_contexts"] if eval_contexts is None else eval_contexts
    if count:
        from focusflow.compile.evaluate import evaluate

        if phase is not None:
            phase("evaluate")
        t = time.perf_counter()
        report["kl"] = evaluate(
            graph,
            compiled.weights,
            compiled.focus.focus,
            count=count,
            seed=opts["seed"] if seed is None else seed,
            focus_params={"mode": opts["mode"], "alpha": opts["alpha"]},
            progress=None if evaluated is None else lambda done: evaluated(done, count),
        )
        timings["evaluate"] = time.perf_counter() - t
    else:
        report["kl"] = None
    timings["compile_total"] = sum(
        v for k, v in timings.items() if k not in ("evaluate", "compile_total")
    )
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def compile_to(
    graph: Cybergraph,
    out_dir: str | Path,
    options: CompileOptions | None = None,
    *,
    phase: Phase | None = None,
) -> Report:
    """Compile ``graph`` and write the model directory; returns the report."""
    compiled = compile_graph(graph, options, phase=phase)
    return write(compiled, graph, out_dir, phase=phase)
