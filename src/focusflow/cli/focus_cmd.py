"""``focusflow focus compute``: focus of a cyberlink file or edge list;
``focusflow focus prepare``: this machine's kernels compiled ahead of it.

The option names, the TSV output and the exit statuses are a contract that
scripts and checks rely on; docs/focus.md lists them.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from focusflow.cli.common import NoCacheOpt, SkipInvalidOpt, skipped_invalid, skipped_note
from focusflow.core.errors import InputFileError, InvalidParameterError

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from focusflow.focus.params import FocusParams
    from focusflow.focus.result import FocusResult
    from focusflow.graph.cybergraph import Cybergraph
    from focusflow.graph.tables import Key

focus_app = typer.Typer(
    help="Compute focus (the tri-kernel equilibrium) of a graph.", no_args_is_help=True
)

SAMPLE = "bostrom-sample-cyberlinks.csv"


def sample_path() -> Path:
    """The bostrom sample shipped inside the package."""
    return Path(str(resources.files("focusflow.data").joinpath(SAMPLE)))


def _parse_weights(text: str) -> tuple[float, float, float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise InvalidParameterError(
            f"--weights must be three numbers like 0.5,0.3,0.2, got {text!r}"
        ) from None
    if len(values) != 3:
        raise InvalidParameterError(
            f"--weights needs three numbers (diffusion,springs,heat), got {text!r}"
        )
    return values


class FocusSummary(TypedDict):
    """``focusflow focus compute --json``: the run's summary (and the top particles)."""

    input: str
    particles: int
    links: int
    edges: int
    neurons: int
    mode: str
    #: ``blend`` (the tri-kernel's fixed point) or ``free-energy``.
    model: str
    backend: str
    iterations: int
    residual: float
    converged: bool
    contraction_rate: float | None
    entropy_nats: float
    syntropy_nats: float
    skipped_invalid_links: int
    dropped_self_links: int
    #: Per phase: ``load`` and the solver's timings.
    seconds: dict[str, float]
    #: ``[particle, value]`` rows (``[particle, value, text or None]`` with texts),
    #: with ``--json`` only.
    top: NotRequired[list[list[str | int | float | None]]]
    #: A sharded solve's report (``ShardReport.summary``): per shard its
    #: contraction rate, bytes and resident memory; halo values, cross-shard
    #: links and bytes exchanged a step; push-sum rounds; restarts.
    shards: NotRequired[dict[str, Any]]


def _write_tsv(
    result: FocusResult, ids: np.ndarray, sink: IO[bytes], texts: dict[str, str] | None = None
) -> None:
    """``particle<TAB>value`` rows of ``ids``, formatted and written by Arrow in bulk;
    ``particle<TAB>value<TAB>text`` with ``texts`` (a particle without one: empty).

    Focus values take the shortest decimal form that reads back to the same
    float64 (cyberank values are integers); Arrow formats them, which matters at
    millions of particles. Only the rows written are gathered (``--top``
    writes a few of many).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    from focusflow.graph.arrow_csv import numeric_array, string_array

    ids = np.asarray(ids, dtype=np.int64)
    keys = result.keys
    if keys is not None:
        names = string_array([keys[i] for i in ids.tolist()])
    else:
        names = pc.cast(numeric_array(ids), pa.string())
    values = result.cyberank if result.cyberank is not None else result.focus
    columns = {"particle": names, "value": numeric_array(np.asarray(values)[ids])}
    if texts is not None:
        shown = [texts.get(keys[i], "") if keys is not None else "" for i in ids.tolist()]
        columns["text"] = string_array(shown)
    table = pa.table(columns)
    # A key or text holding a tab, a line break or a quote is quoted (RFC 4180),
    # and then every field is; the usual file has none and is written bare.
    plain = not any(
        pc.any(pc.match_substring_regex(table[c], '[\t\n\r"]')).as_py()
        for c in ("particle", "text")
        if c in columns
    )
    options = pcsv.WriteOptions(
        include_header=False, delimiter="\t", quoting_style="none" if plain else "needed"
    )
    pcsv.write_csv(table, sink, write_options=options)


def _particle_texts(graph: Path, texts: Path | None) -> dict[str, str] | None:
    """``cid -> text`` from ``texts``, else from the particles file beside ``graph``
    (what ``focusflow import wordnet --out`` writes), else None."""
    from focusflow.graph.wordnet import particles_file_for, read_particle_texts

    if texts is not None:
        return read_particle_texts(texts)
    beside = particles_file_for(graph)
    return read_particle_texts(beside) if beside.is_file() else None


def _choose_model(settings: dict[str, Any], model: str, temperature: float) -> None:
    """``--model`` and ``--temperature`` into the solve's settings. The
    free-energy model's minimiser fixes its own bits, and its parameters must
    name an exact arithmetic, whose sums do not group by the thread count."""
    if model not in ("blend", "free-energy"):
        raise InvalidParameterError(f"--model must be blend or free-energy, got {model!r}")
    if model == "free-energy":
        settings.update(
            model=model, temperature=temperature, arithmetic="exact-v3", thread_sums=False
        )


def _warm_engine(settings: dict[str, Any], backend: str) -> threading.Thread:
    """Solve a three-link graph with the same settings in a background thread.

    The engine's fixed cost (numba's import and first dispatch, then each
    kernel loaded from the cache: over half a second) is paid while the file
    is read, most of which runs in Arrow's threads without the GIL. The thread
    is joined before the real solve; whatever fails in it fails again, with
    its error, in the real solve. It is not a daemon: a command that stops on
    an error before the join exits after it, never while numba is loading.
    """

    def run() -> None:
        try:
            import numpy as np

            from focusflow.focus import compute, make_params
            from focusflow.graph.cybergraph import Cybergraph

            g = Cybergraph(require_cids=False)
            ids = g.particles.intern_distinct(["a", "b", "c"])
            g.add_link_ids(ids[[0, 1, 2]], ids[[1, 2, 0]], None, np.ones(3))
            compute(g, make_params(**settings), backend=backend)
        except Exception:  # noqa: BLE001 - the real solve raises it again
            pass

    thread = threading.Thread(target=run, name="warm-engine")
    thread.start()
    return thread


def _small_file(path: Path, stakes: Path | None) -> bool:
    """Whether the input is small enough that NumPy solves it sooner than numba starts."""
    from focusflow.graph.importers import SMALL_FILE_BYTES

    try:
        size = path.stat().st_size + (stakes.stat().st_size if stakes is not None else 0)
    except OSError:
        return False  # the reader says what is wrong with it
    return size <= SMALL_FILE_BYTES


@focus_app.command("compute")
def compute_cmd(
    input: Path | None = typer.Argument(
        None, help="Cyberlink CSV or edge list; default: the shipped bostrom sample."
    ),
    fmt: str = typer.Option("auto", "--format", help="auto, bostrom or edges."),
    stakes: Path | None = typer.Option(None, "--stakes", help="CSV neuron,stake (bostrom format)."),
    mode: str = typer.Option("tri", "--mode", help="tri, diffusion or cyberank."),
    alpha: float = typer.Option(0.85, "--alpha", help="Damping of diffusion, in (0, 1)."),
    mu: float = typer.Option(1.0, "--mu", help="Screening of springs, > 0."),
    tau: float = typer.Option(1.0, "--tau", help="Time of the heat kernel, > 0."),
    weights: str = typer.Option(
        "0.5,0.3,0.2", "--weights", help="Blend diffusion,springs,heat; sums to 1."
    ),
    tol: float = typer.Option(
        1e-6, "--tol", help="Stop when the L1 change is below this (L-inf in cyberank)."
    ),
    max_iter: int = typer.Option(2048, "--max-iter", help="Iteration cap, at most 2048."),
    backend: str = typer.Option(
        "auto",
        "--backend",
        help="auto, cuda, wgpu, numba or numpy (auto: numpy for files up to 256 KiB).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the whole ranking as TSV here."),
    top: int | None = typer.Option(None, "--top", help="Print the K particles with most focus."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    laplacian: str = typer.Option("normalized", "--laplacian", help="normalized or combinatorial."),
    precision: str = typer.Option("float64", "--precision", help="float64 or float32 storage."),
    anderson: int | None = typer.Option(
        None,
        "--anderson",
        help="Anderson acceleration window (default 2 for diffusion, 6 for tri); "
        "0 = the plain iteration.",
    ),
    skip_invalid: SkipInvalidOpt = False,
    no_cache: NoCacheOpt = False,
    texts: Path | None = typer.Option(
        None,
        "--texts",
        help="Particles file (cid<TAB>text<TAB>gloss) whose texts are printed beside the "
        "CIDs; default: INPUT's X.particles.tsv when it exists.",
    ),
    shards: int | None = typer.Option(
        None,
        "--shards",
        help="Solve on N shards, each a Ray actor (the 'cluster' extra); an edge list is "
        "read in parallel by the shards.",
    ),
    cluster: str | None = typer.Option(
        None,
        "--cluster",
        help="Ray cluster address (host:port of its head, or 'auto'); default: a local "
        "Ray started for this call. Needs --shards.",
    ),
    reduce: str = typer.Option(
        "all-reduce",
        "--reduce",
        help="How shards sum the solve's global quantities: all-reduce (exact) or push-sum.",
    ),
    model: str = typer.Option(
        "blend",
        "--model",
        help="blend (the tri-kernel's fixed point) or free-energy (F's minimiser at "
        "--temperature, the same bits on every machine; on numba).",
    ),
    temperature: float = typer.Option(
        1.0, "--temperature", help="The free-energy model's temperature T, > 0."
    ),
) -> None:
    """Compute focus and write `particle<TAB>focus`, most focus first (and a third
    column, the particle's text, when a particles file is given or beside INPUT)."""
    settings: dict[str, Any] = {
        "mode": mode,
        "alpha": alpha,
        "mu": mu,
        "tau": tau,
        "weights": _parse_weights(weights),
        "tol": tol,
        "max_iter": max_iter,
        "laplacian": laplacian,
        "precision": precision,
        "anderson": anderson,
        # a one-shot solve takes the fastest sums, as compute() does
        "thread_sums": True,
    }
    _choose_model(settings, model, temperature)
    path = input if input is not None else sample_path()
    if backend == "auto" and model == "blend" and _small_file(path, stakes):
        # numba's start-up (its import, each kernel loaded from the cache) costs
        # more than the whole solve of a small graph in NumPy: same results.
        backend = "numpy"
    # NumPy has no start-up to hide behind the file's reading.
    warm = _warm_engine(settings, backend) if backend != "numpy" else None
    # Imported here: every other CLI command starts without loading numba.
    from focusflow.focus import compute, entropy, make_params, syntropy
    from focusflow.focus.backends import backend_names
    from focusflow.graph.importers import read_graph

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    params = make_params(**settings)
    if backend not in backend_names():
        raise InvalidParameterError(
            f"--backend must be one of {', '.join(backend_names())}, got {backend!r}"
        )
    if top is not None and top < 0:
        raise InvalidParameterError(f"--top must be >= 0, got {top}")
    if stakes is not None and not stakes.exists():
        raise InputFileError(f"{stakes}: no such file")
    _check_sharding(shards, cluster, backend)
    table = _particle_texts(path, texts)
    interactive = err.is_terminal
    columns = [
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=True, disable=not interactive) as bar:
        task = bar.add_task(f"loading {path.name}", total=None, info="")

        def progress(it: int, res: float) -> None:
            bar.update(task, completed=it, info=f"iter {it} residual {res:.2e}")

        t0 = time.perf_counter()
        if shards is not None:
            bar.update(task, description=f"solving on {shards} shards", total=params.max_iter)
            result, counts = sharded_solve(
                path,
                fmt,
                stakes,
                skip_invalid,
                params,
                shards,
                cluster,
                reduce,
                progress,
                cache=False if no_cache else None,
            )
            t_load = 0.0
        else:
            graph = read_graph(
                path, fmt, stakes, skip_invalid=skip_invalid, cache=False if no_cache else None
            )
            t_load = time.perf_counter() - t0
            bar.update(task, description="solving", total=params.max_iter, completed=0, info="")
            if warm is not None:
                warm.join()
            result = compute(graph, params, backend=backend, progress=progress)
            counts = graph_counts(graph)
    focus = result.focus
    ordered = result.order()
    d = result.diagnostics
    summary: FocusSummary = {
        "input": str(path),
        "particles": counts["particles"],
        "links": counts["links"],
        "edges": counts["edges"],
        "neurons": counts["neurons"],
        "skipped_invalid_links": counts["skipped_invalid_links"],
        "dropped_self_links": counts["dropped_self_links"],
        "mode": params.mode,
        "model": params.model,
        "backend": result.backend,
        "iterations": d.iterations,
        "residual": d.residual,
        "converged": d.converged,
        "contraction_rate": d.contraction_rate,
        "entropy_nats": entropy(focus / focus.sum()) if focus.sum() > 0 else 0.0,
        "syntropy_nats": syntropy(focus / focus.sum()) if focus.sum() > 0 else 0.0,
        "seconds": {"load": t_load, **{k: v for k, v in d.timings.items()}},
    }
    _add_shards(summary, result)
    if out is not None:
        try:
            with out.open("wb") as fh:
                _write_tsv(result, ordered, fh, table)
        except OSError as exc:
            raise InputFileError(f"{out}: cannot write: {exc.strerror}") from None
    shown = ordered[:top] if top is not None else (ordered if out is None else ordered[:0])
    if as_json:
        keys = result.keys
        summary["top"] = [
            [
                keys[i] if keys is not None else str(i),
                int(result.cyberank[i]) if result.cyberank is not None else float(focus[i]),
                *([table.get(keys[i]) if keys is not None else None] if table is not None else []),
            ]
            for i in shown.tolist()
        ]
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    elif len(shown):
        sys.stdout.flush()
        _write_tsv(result, shown, sys.stdout.buffer, table)
    sys.stdout.flush()
    _print_summary(err, summary, params.tol)


def _add_shards(summary: FocusSummary, result: FocusResult) -> None:
    """A sharded solve's report in the summary (``ShardReport.summary``)."""
    report = getattr(result, "shards", None)
    if report is not None:
        summary["shards"] = report.summary()


def _check_sharding(shards: int | None, cluster: str | None, backend: str) -> None:
    """``--cluster`` only with ``--shards``, which runs on CPUs."""
    if cluster is not None and shards is None:
        raise InvalidParameterError("--cluster needs --shards")
    if shards is not None and backend not in ("auto", "numba", "numpy"):
        raise InvalidParameterError(
            f"--shards runs on the shards' CPUs; --backend {backend} is not for it"
        )


def graph_counts(graph: Cybergraph) -> dict[str, int]:
    """What the summary says about a graph read in this process."""
    return {
        "particles": graph.n_particles,
        "links": graph.n_links,
        "edges": graph.snapshot(patchable=False).nnz,
        "neurons": graph.n_neurons,
        "skipped_invalid_links": skipped_invalid(graph),
        "dropped_self_links": graph.dropped_self_links,
    }


def sharded_solve(
    path: Path,
    fmt: str,
    stakes: Path | None,
    skip_invalid: bool,
    params: FocusParams,
    shards: int,
    cluster: str | None,
    reduce: str,
    progress: Callable[[int, float], None],
    *,
    cache: bool | None = None,
) -> tuple[FocusResult, dict[str, int]]:
    """Focus on ``shards`` Ray actors: an edge list read by the shards in
    parallel, any other input read here and cut into shards."""
    from focusflow.focus.result import FocusResult
    from focusflow.focus.shards.api import compute_file_sharded, compute_sharded, diagnostics_of
    from focusflow.focus.shards.solve import REDUCES
    from focusflow.graph.importers import detect_format, edge_list_separator, read_graph

    if reduce not in REDUCES:
        raise InvalidParameterError(f"--reduce must be one of {', '.join(REDUCES)}, got {reduce!r}")
    chosen = detect_format(path) if fmt == "auto" else fmt
    if chosen == "edges" and stakes is None:
        sep = edge_list_separator(path)
        keys, phi, report = compute_file_sharded(
            path,
            sep,
            params,
            shards,
            cluster=cluster,
            reduce=reduce,
            progress=progress,
        )
        links = sum(int(i["links_in"]) for i in report.shard_info)
        result = FocusResult(
            focus=phi,
            params=params,
            backend="shards",
            diagnostics=diagnostics_of(report),
            keys=cast("list[Key]", keys),
        )
        result.shards = report  # type: ignore[attr-defined]
        counts = {
            "particles": len(keys),
            "links": links,
            "edges": links,
            "neurons": 0,
            "skipped_invalid_links": 0,
            "dropped_self_links": 0,
        }
        return result, counts
    graph = read_graph(path, fmt, stakes, skip_invalid=skip_invalid, cache=cache)
    result = compute_sharded(
        graph,
        params,
        shards,
        cluster=cluster,
        reduce=reduce,
        progress=progress,
    )
    return result, graph_counts(graph)


@focus_app.command("prepare")
def prepare_cmd(
    backend: list[str] = typer.Option(
        ["numba", "cuda"],
        "--backend",
        help="A backend to prepare (repeatable): numba, cuda.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object per backend."),
) -> None:
    """Compile and cache the focus kernels, so the first solve is fast.

    A fresh install compiles them inside its first solve (tens of seconds with
    a GPU); this pays it once. A backend that cannot run here is skipped with
    the reason; the exit status is 0 unless a named backend does not exist.
    """
    from focusflow.focus.backends import backend_names
    from focusflow.focus.prepare import Prepared, prepare

    known = [b for b in backend_names() if b != "auto"]
    for name in backend:
        if name not in known:
            raise InvalidParameterError(f"unknown backend {name!r}: use one of {', '.join(known)}")
    err = Console(stderr=True, highlight=False, soft_wrap=True)

    def report(done: Prepared) -> None:
        if as_json:
            print(json.dumps(dataclasses.asdict(done)), flush=True)
        elif done.available:
            err.print(f"{done.backend}: kernels compiled and cached in {done.seconds:.1f} s")
        else:
            err.print(f"{done.backend}: skipped ({done.reason})", markup=False)

    err.print(f"preparing the focus kernels of {', '.join(backend)} (once per install)")
    prepare(backend, report)


def _print_summary(err: Console, s: FocusSummary, tol: float) -> None:
    secs = s["seconds"]
    phases = ", ".join(
        f"{k} {secs[k]:.3f}" for k in ("diffusion", "springs", "heat") if secs.get(k)
    )
    err.print(
        f"focusflow: {s['particles']} particles, {s['links']} links ({s['edges']} edges), "
        f"{s['neurons']} neurons; mode {s['mode']}, backend {s['backend']}"
    )
    state = "converged" if s["converged"] else "NOT converged"
    rate = f", contraction {s['contraction_rate']:.3f}" if s["contraction_rate"] else ""
    err.print(
        f"{state} in {s['iterations']} iterations, residual {s['residual']:.3e} (tol {tol:g}){rate}"
    )
    err.print(f"entropy {s['entropy_nats']:.4f} nats, syntropy {s['syntropy_nats']:.4f} nats")
    err.print(
        f"time: load {secs['load']:.3f} s, solve {secs.get('solve', secs.get('total', 0)):.3f} s"
        + (f" ({phases})" if phases else "")
    )
    note = skipped_note(s["skipped_invalid_links"])
    if note:
        err.print(note)
    if not s["converged"]:
        err.print(
            f"warning: not converged after {s['iterations']} iterations; raise --max-iter or --tol"
        )
