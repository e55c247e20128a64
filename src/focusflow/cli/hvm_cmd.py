"""``focusflow hvm run FILE.hvm``: run an HVM2 IR program on the rewrite VM.

Prints what HVM2's ``hvm run`` prints (``Result: ...`` then the ``- ITRS``,
``- TIME`` and ``- MIPS`` lines), or with ``--json`` one object
``{"result", "interactions", "seconds", "mips"}``. Only the numba back end
exists so far; another ``--backend`` is refused (``hvm_backend_unavailable``)
and ``--threads`` above 1 runs on one thread with a note on stderr. docs/hvm.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from focusflow.core.errors import FocusflowError, InputFileError, InvalidParameterError

BACKENDS = ("numba",)

hvm_app = typer.Typer(help="Run HVM2 interaction-net programs (IR text).", no_args_is_help=True)


class HvmBackendUnavailableError(FocusflowError):
    """The requested VM back end is not part of this build (only numba is)."""

    code = "hvm_backend_unavailable"


@hvm_app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., help="The program, HVM2 IR text (.hvm)."),
    backend: str = typer.Option("numba", "--backend", help="Evaluator: numba."),
    threads: int = typer.Option(1, "--threads", help="Threads (more than 1 runs on one, so far)."),
    heap: int = typer.Option(
        1 << 26, "--heap", help="Node slots (and variable slots) of the heap.", show_default=True
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Normalise @main of FILE and print the result and its interaction count."""
    if backend not in BACKENDS:
        raise HvmBackendUnavailableError(
            f"--backend {backend!r} is not available; this build has: {', '.join(BACKENDS)}"
        )
    if threads < 1:
        raise InvalidParameterError(f"--threads must be at least 1, got {threads}")
    if not 16 <= heap <= 1 << 29:
        raise InvalidParameterError(f"--heap must be between 16 and {1 << 29}, got {heap}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {file}: {exc}") from None
    if threads > 1:
        print(f"note: --threads {threads}: this back end runs on one thread", file=sys.stderr)
    from focusflow.rewrite.run import run_text

    out = run_text(text, nodes=heap, vars_=heap)
    if as_json:
        body = {
            "result": out.result,
            "interactions": out.interactions,
            "seconds": out.seconds,
            "mips": out.mips,
        }
        print(json.dumps(body))
        return
    print(f"Result: {out.result}")
    print(f"- ITRS: {out.interactions}")
    print(f"- TIME: {out.seconds:.2f}s")
    print(f"- MIPS: {out.mips:.2f}")
