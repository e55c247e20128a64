"""``focusflow compile``: a transformer compiled from a graph file or a node, as ONNX.

Writes ``DIR/model.onnx``, ``DIR/vocab.tsv`` and ``DIR/report.json``
(docs/compile.md). Bad input ends with one ``error:`` line and exit status 2,
as in ``focusflow focus compute``; the phases show on stderr. It needs the
``compile`` extra (onnx, onnxruntime); without it the command ends with
``missing_extra`` and the install line.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from focusflow.cli.common import (
    NoCacheOpt,
    PhaseProgress,
    SkipInvalidOpt,
    skipped_invalid,
    skipped_note,
)
from focusflow.core.errors import InputFileError, InvalidParameterError

if TYPE_CHECKING:
    from focusflow.compile.pipeline import Report

#: Contexts ``--evaluate`` measures KL on (CompileOptions' own default).
DEFAULT_EVAL_CONTEXTS = 64


def compile_cmd(
    graph_file: Path | None = typer.Option(None, "--graph", help="Cyberlink CSV or edge list."),
    node: str | None = typer.Option(
        None, "--node", help="A node's URL: compile its committed graph (read page by page)."
    ),
    fmt: str = typer.Option("auto", "--format", help="auto, bostrom or edges."),
    out: Path = typer.Option(..., "--out", help="Directory to write the model into."),
    dim: int | None = typer.Option(None, "--dim", help="Embedding dimension (default: d*)."),
    rank: int = typer.Option(128, "--rank", help="Singular values d* is measured on (k)."),
    max_layers: int = typer.Option(12, "--max-layers", help="Cap of L*."),
    eps: float = typer.Option(1e-3, "--eps", help="Precision in L*, in (0, 1)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the SVD and the KL contexts."),
    mode: str = typer.Option("tri", "--mode", help="Focus of the compilation: tri or diffusion."),
    hops: int | None = typer.Option(
        None, "--hops", help="Exact diffusion steps through the hop tables, 0-3 (default: auto)."
    ),
    evaluate: bool = typer.Option(
        False,
        "--evaluate",
        help="Also measure KL(phi*_c || q_c) against exact personalized focus "
        f"({DEFAULT_EVAL_CONTEXTS} contexts, one focus solve each: on a large graph "
        "it can take longer than the compilation).",
    ),
    eval_contexts: int | None = typer.Option(
        None,
        "--eval-contexts",
        min=0,
        help=f"Contexts the KL evaluation runs on (implies --evaluate unless 0; "
        f"default {DEFAULT_EVAL_CONTEXTS} with --evaluate).",
        show_default=False,
    ),
    skip_invalid: SkipInvalidOpt = False,
    no_cache: NoCacheOpt = False,
    as_json: bool = typer.Option(False, "--json", help="Print the report on stdout."),
) -> None:
    """Compile a graph into a transformer (ONNX) whose output approximates focus."""
    from focusflow.core.extras import require_extra

    require_extra("compile", "focusflow compile")  # onnx, onnxruntime: the compile extra
    from focusflow.compile.pipeline import CompileOptions, compile_graph, write

    if (graph_file is None) == (node is None):
        raise InvalidParameterError("give exactly one of --graph FILE, --node URL")
    if fmt not in ("auto", "bostrom", "edges"):
        raise InvalidParameterError(f"--format must be auto, bostrom or edges, got {fmt!r}")
    if eval_contexts is None:
        eval_contexts = DEFAULT_EVAL_CONTEXTS if evaluate else 0
    options = CompileOptions(
        dim=dim,
        rank=rank,
        max_layers=max_layers,
        eps=eps,
        seed=seed,
        mode=mode,
        eval_contexts=eval_contexts,
        hops=hops,
    )
    options.check()
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: exists and is not a directory")
    if graph_file is not None:
        # checked before the progress lines start: a missing file is one error line
        from focusflow.graph.importers import check_input_file

        check_input_file(graph_file)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    with PhaseProgress("compile") as progress:
        source = graph_file.name if graph_file is not None else node
        progress.phase(f"loading {source}")
        t0 = time.perf_counter()
        if graph_file is not None:
            from focusflow.graph.importers import read_graph

            graph = read_graph(
                graph_file, fmt, skip_invalid=skip_invalid, cache=False if no_cache else None
            )
            origin: dict[str, object] = {"graph": str(graph_file)}
        else:
            assert node is not None
            from focusflow.cli.common import client
            from focusflow.cli.node_graph import read_node_graph

            def pages(what: str, got: int, total: int) -> None:
                if progress.name != f"reading {what} from the node":
                    progress.phase(f"reading {what} from the node", total, what)
                progress.advance(got)

            with client(None, node) as api:
                fetched = read_node_graph(api, pages)
            graph = fetched.graph
            origin = {
                "node": fetched.url,
                "heights": [fetched.first_height, fetched.last_height],
            }
        t_load = time.perf_counter() - t0
        compiled = compile_graph(graph, options, phase=progress.phase)
        compiled.report["timings"]["load"] = t_load
        compiled.report["source"] = origin
        compiled.report["skipped_invalid_links"] = skipped_invalid(graph)
        try:
            report = write(
                compiled,
                graph,
                out,
                phase=progress.phase,
                evaluated=lambda done, total: progress.advance(done, total, "contexts"),
            )
        except OSError as exc:
            raise InputFileError(f"{out}: cannot write: {exc.strerror}") from None
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    _summary(err, report, out)


def _summary(err: Console, r: Report, out: Path) -> None:
    g, t = r["graph"], r["timings"]
    err.print(
        f"focusflow compile: {g['particles']} particles, {g['links']} links -> {out}/model.onnx"
    )
    lo, hi = r["d_star_interval"]
    err.print(
        f"d* {r['d_star']} from the top {r['spectrum_rank_k']} (the full spectrum's: "
        f"{lo:.1f} to {hi:.1f}; d {r['d']}), h* {r['h_star']} "
        f"({r['heads']} heads), L* {r['L_star_raw']} -> {r['L_star']} "
        f"(diameter >= {r['diameter_estimate']}, kappa {r['kappa']:.3f}, eps {r['eps']:g})"
    )
    phases = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if k != "compile_total")
    err.print(f"time: compile {t['compile_total']:.2f} s ({phases})")
    note = skipped_note(r.get("skipped_invalid_links", 0))
    if note:
        err.print(note)
    kl = r.get("kl")
    if not kl:
        err.print("KL against exact personalized focus: not measured (--evaluate measures it)")
    else:
        err.print(
            f"KL(phi*_c || q_c) over {kl['contexts']} contexts: mean {kl['kl_mean']:.3f}, "
            f"median {kl['kl_median']:.3f} (phi* alone: {kl['baseline_phi_kl_mean']:.3f})"
        )
