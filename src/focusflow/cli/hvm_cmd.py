"""``focusflow hvm run FILE.hvm``: run an HVM2 IR program on the rewrite VM.

Prints what HVM2's ``hvm run`` prints (``Result: ...`` then the ``- ITRS``,
``- TIME`` and ``- MIPS`` lines), or with ``--json`` one object
``{"result", "interactions", "seconds", "mips"}``. ``--backend`` picks the
evaluator (numba on the CPU with ``--threads``, cuda, wgpu); one this machine
cannot run is refused with ``hvm_backend_unavailable`` and the reason.
``--io`` performs the program's IO calls (``hvm run-c``'s driver): what the
program writes to stdout comes first, then these lines. ``--schedule`` picks
how the cuda evaluator schedules its rounds (``rewrite.schedules``).
``--max-interactions`` and ``--timeout`` stop a run that has not reached
normal form by then (a net can reduce forever in constant memory); a file
over ``MAX_PROGRAM_BYTES`` is refused with ``bad_input_file``. The first
numba run after an install compiles the evaluator (about 10 s on a 2-core
machine, once: numba caches it); when loading it takes longer than
``COMPILE_NOTE_S`` a note on stderr says so. ``--backend wgpu`` on a machine
whose only WebGPU adapter is a CPU one (Mesa's llvmpipe, a software renderer)
runs, but hundreds of times slower than numba: one ``warning:`` line on stderr
says so and names the faster choice. docs/hvm.md.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import typer

from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.rewrite.schedules import DEFAULT_SCHEDULE

#: Seconds the CPU evaluator may take to load before a note says it is being
#: compiled (loading it from numba's cache takes well under one).
COMPILE_NOTE_S = 2.0
#: The largest program file ``hvm run`` reads, in bytes. HVM2's example
#: programs are a few kilobytes; the parser reads about 0.7 MB a second, so a
#: program this size takes a minute and a half to parse.
MAX_PROGRAM_BYTES = 64 << 20

hvm_app = typer.Typer(help="Run HVM2 interaction-net programs (IR text).", no_args_is_help=True)


@hvm_app.command("run")
def run_cmd(
    file: Path = typer.Argument(..., help="The program, HVM2 IR text (.hvm)."),
    backend: str = typer.Option("numba", "--backend", help="Evaluator: numba, cuda or wgpu."),
    threads: int = typer.Option(1, "--threads", help="CPU threads of the numba evaluator."),
    heap: int = typer.Option(
        0, "--heap", help="Node slots (and variable slots) of the heap; 0: the back end's default."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    schedule: str = typer.Option(
        DEFAULT_SCHEDULE,
        "--schedule",
        help="The cuda evaluator's: auto (fork, handing the net over to spread where fork "
        "runs it slowly, and spread moving to local where the net turns out to be a few "
        "long sequential chains), spread (work over the GPU's threads), "
        "chains (each sequential chain run in one thread), local (chains, with each "
        "block's new nodes in its shared memory) or fork (HVM2's schedule: each thread "
        "keeps its pairs across launches, work spreads along &! marks; fastest on "
        "programs that fork wider than the GPU, slow on ones that fork less).",
    ),
    io: bool = typer.Option(
        False,
        "--io",
        help="Perform the program's IO calls (files, stdin, stdout, time) as HVM2's "
        "C runtime does; numba only. The program can read and write files.",
    ),
    max_interactions: int = typer.Option(
        0,
        "--max-interactions",
        help="Stop with hvm_interaction_limit if the run has not reached normal form "
        "after this many interactions; 0: no limit.",
    ),
    timeout: float = typer.Option(
        0.0,
        "--timeout",
        help="Stop with hvm_timeout if the run has not reached normal form after this "
        "many seconds of reduction; 0: no limit.",
    ),
) -> None:
    """Normalise @main of FILE and print the result and its interaction count."""
    from focusflow.rewrite.cpu import max_threads
    from focusflow.rewrite.io_driver import IoDriver
    from focusflow.rewrite.limits import Limits
    from focusflow.rewrite.parse import load_book
    from focusflow.rewrite.run import check_schedule, run_book

    if threads < 1:
        raise InvalidParameterError(f"--threads must be at least 1, got {threads}")
    if heap and not 16 <= heap <= 1 << 29:
        raise InvalidParameterError(f"--heap must be between 16 and {1 << 29}, got {heap}")
    if max_interactions < 0:
        raise InvalidParameterError(f"--max-interactions must be 0 or more, got {max_interactions}")
    if not timeout >= 0 or timeout == float("inf"):
        raise InvalidParameterError(f"--timeout must be 0 or a number of seconds, got {timeout}")
    check_schedule(backend, schedule)
    limits = Limits(max_interactions or None, timeout or None)
    # parsed before the CPU evaluator loads (a compile of seconds the first
    # time): a program's error comes at once
    book = load_book(_read_program(file))
    if backend != "numba" and threads > 1:
        print(f"note: --threads applies to numba; {backend} picks its own", file=sys.stderr)
    elif threads > max_threads():
        print(f"note: --threads {threads}: this machine runs {max_threads()}", file=sys.stderr)
    if backend == "numba":
        _load_cpu_kernels()
    elif backend == "wgpu":
        _warn_if_software_adapter()
    size = heap or None
    driver = IoDriver() if io else None
    out = run_book(
        book,
        nodes=size,
        vars_=size,
        backend=backend,
        threads=threads,
        io=driver,
        schedule=schedule,
        limits=limits,
    )
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


def _read_program(file: Path) -> str:
    """The program's text, read up to ``MAX_PROGRAM_BYTES``: a path such as
    /dev/zero, or a generator's runaway output, is refused rather than read
    whole into memory."""
    try:
        with file.open("rb") as f:
            data = f.read(MAX_PROGRAM_BYTES + 1)
        if len(data) > MAX_PROGRAM_BYTES:
            raise InputFileError(
                f"{file} is larger than {MAX_PROGRAM_BYTES} bytes, the most a program may have"
            )
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {file}: {exc}") from None


def _warn_if_software_adapter() -> None:
    """One warning line when the WebGPU adapter wgpu would run on is the CPU
    (llvmpipe and the like): the run is correct but far slower than numba's
    (about 270x on a 2-core machine, docs/hvm.md), which a user asking for the
    GPU back end would not expect. Nothing when there is no adapter at all:
    the run then refuses with hvm_backend_unavailable."""
    from focusflow.focus.backends.webgpu_storage import wgpu_available

    found, adapter = wgpu_available()
    if found and not wgpu_available(require_gpu=True)[0]:
        print(
            f"warning: --backend wgpu runs on a CPU adapter ({adapter.removeprefix('wgpu on ')}), "
            "a software renderer hundreds of times slower than the CPU evaluator: "
            "use --backend numba (with --threads N) on this machine",
            file=sys.stderr,
            flush=True,
        )


def _load_cpu_kernels() -> None:
    """Load (or, the first time, compile) the CPU evaluator before the program
    runs, saying so on stderr if it takes long: a silent compile of seconds
    would look like a program that hangs."""
    from focusflow.rewrite import cpu

    note = threading.Timer(
        COMPILE_NOTE_S,
        lambda: print(
            "note: compiling the CPU evaluator (once; numba keeps it for later runs)",
            file=sys.stderr,
            flush=True,
        ),
    )
    note.daemon = True
    note.start()
    try:
        cpu.prepare()
    finally:
        note.cancel()
