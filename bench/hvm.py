"""Interactions per second of the interaction-net VM (``focusflow.rewrite``), beside HVM2.

What it measures, in one process run:

1. HVM2's published example programs (``tests/rewrite/programs/``, left
   unchanged on disk) at several sizes: ``stress`` (fun depth d, loop length
   65,536), ``sum_rec`` (n), ``sum_tree`` (tree depth d, its two constants),
   ``sort_bitonic`` (depth d, its three constants) and ``sort_radix`` (2^d
   numbers; the 24 key bits stay). A size variant is the program's text with
   its size constants edited in memory; at the published size the edited text
   is the file itself (checked).
2. Each run must give its expected result and interaction count (asserted).
   Results are HVM2's published ones and their closed forms (sum of 0..2^d-1
   mod 2^24 for both sorts and ``sum_rec``, 2^d for ``sum_tree``, 0 for
   ``stress``). Interaction counts are closed forms of counts measured with
   HVM2's own interpreter and C runtime: ``stress`` 2^d(6L+22)-10,
   ``sum_rec`` 24*2^n-17, ``sum_tree`` 42*2^d-27, ``sort_bitonic``
   2^(d-1)(25d^2+77d+105)-27 and ``sort_radix`` 2^d(2d+1864)-10d+201 (the
   last three fitted to HVM2's interpreter at d = 2 to 14..20, and exact at
   the benchmark sizes it was also run at: bitonic 18, 1,257,111,525; radix
   19, 997,195,787).
3. Ours: ``focusflow.rewrite.run.run_text`` on one thread (numba). The first
   call in the process loads the kernel (from numba's cache when it is there);
   that time is reported apart, and with ``--compile`` the cold compile is
   measured too, in a child process with an empty numba cache. Per program and
   size, one untimed warm-up run, then ``--repeat`` timed runs; the time is the
   reduction's (parsing, building and readback excluded, as HVM2's ``- TIME``)
   and the median is reported, with MIPS = interactions / median time.
4. HVM2, when ``--hvm PATH`` names a binary: the same texts (written to a
   temporary folder), each run ``--repeat`` times in fresh processes (no JIT,
   so no warm-up), parsing its ``Result:``, ``- ITRS:`` and ``- MIPS:`` lines
   (the reduction time is ITRS / MIPS: ``- TIME`` has two decimals only); its
   result and count are checked like ours. ``--hvm-mode`` picks how:
   ``run-c`` (``PATH run-c FILE``, the C runtime with its build's thread
   count), ``gen-c`` (``PATH gen-c FILE`` to C, compiled here with
   ``gcc -O3 -DTPC_L2=k``, run at each of ``--hvm-threads``; compile time
   excluded; ``gen-c+ARGS`` passes ARGS after FILE, for a build whose gen-c
   takes more, and the label says whether the C has a compiled or an
   interpreted book; where ``--hvm`` names a checkout of HVM2's source, the
   script writes the C file itself, HVM2's ``src/hvm.c`` and ``src/run.c``
   with the book in its byte format and interpreted, as ``run-c`` runs it) or
   ``run`` (``PATH run FILE``, the Rust reference interpreter). ``gen-cu`` is
   HVM2's CUDA runtime: ``--hvm`` then names a checkout of HVM2's source (no
   binary is needed), and the script writes the
   ``.cu`` file that ``hvm gen-cu FILE`` would write (HVM2's ``src/hvm.cu`` and
   ``src/run.cu`` with the book in its byte format, from our parser's book,
   which numbers nodes, variables and definitions as HVM2's does), compiled
   with ``nvcc -O3 -arch=sm_XX`` for the GPU at hand; its ``- TIME`` is the
   host's ``clock()`` around the reduction, which the blocking copies of its
   loop keep equal to wall time. Ours and each HVM2 runner take turns, run by
   run, so a change of load hits them alike.
   ``auto`` (default) takes ``run-c`` if the binary has it, else ``gen-c``
   if gcc is here, else ``run``. The table gives ours / HVM2 in MIPS (above 1:
   ours is faster). Without ``--hvm`` HVM2's published figures are printed
   instead, with their sources, and HVM2 itself is not run.

It prints the goal (at least 100 MIPS on one thread of this 2-core CPU with
numba) and whether each row meets it; the goal of sorting 2^19 numbers by
bitonic sort is a GPU goal, outside this CPU evaluator. Load average before
and after and the share of the CPUs other processes took during the
measurements are printed: on 2 cores a concurrent job skews every number,
HVM2's multi-threaded runs the most. Each row is warmed up once, then the
``--repeat`` runs are passes over all rows, so that a slow stretch of a shared
machine hits one run of many rows rather than every run of a few. Once
``--budget`` seconds have passed, no further pass starts (each row keeps the
runs it has), and rows not yet warmed up are skipped (and listed). It exits
non-zero if a result or an interaction count of ours is wrong (HVM2's failures
are printed).

Run from the repository root::

    python bench/hvm.py --quick                   # 2 sizes of each, ours alone: ~10 s
    python bench/hvm.py                           # 3 sizes of each, ours alone: ~30 s
    python bench/hvm.py --hvm /path/to/hvm        # + HVM2's C runtime, 1 and 2 threads: ~2 min
    python bench/hvm.py --hvm /path/to/hvm --hvm-mode run --compile   # its interpreter
    python bench/hvm.py --hvm /path/to/hvm --hvm-mode "gen-c,gen-c+0 compiled" --hvm-threads 1
    python bench/hvm.py --hvm /path/to/HVM --hvm-mode gen-c   # HVM2's C runtime from its source
    python bench/hvm.py --backend cuda --hvm /path/to/HVM --hvm-mode gen-cu   # both on the GPU
    python bench/hvm.py --backend cuda --schedule local   # the CUDA evaluator's other schedules
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from focusflow.rewrite.schedules import DEFAULT_SCHEDULE, SCHEDULES

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS_DIR = ROOT / "tests" / "rewrite" / "programs"
GOAL_MIPS = 100.0
GOAL_GPU_MIPS = 5_000
GOAL_BITONIC_S = 0.27  # HVM2 paper: 2^19 numbers on an RTX 4090
LIBS = ("-lm", "-lpthread", "-ldl")  # what HVM2's C runtime links against
STRESS_LOOP = 65536  # stress's loop length (kept): ITRS = 2^d (6L + 22) - 10


def _sum_below(d: int) -> str:
    """Sum of 0 .. 2^d - 1, as a u24: what both sorts and sum_rec return."""
    return str(((1 << d) * ((1 << d) - 1) // 2) % (1 << 24))


@dataclass(frozen=True)
class Program:
    """A published program, how its size is edited, and what it must give."""

    name: str
    label: str  # the size as the table shows it, "{n}" for the size
    published: int  # the size of the file on disk
    edits: tuple[str, ...]  # each occurs once; "{n}" marks the size constant
    expect: Callable[[int], tuple[str, int]]  # size -> (result, interactions)
    full: tuple[int, ...]
    quick: tuple[int, ...]
    gpu: tuple[int, ...] = ()  # added on a GPU back end

    def text(self, size: int) -> str:
        text = (PROGRAMS_DIR / f"{self.name}.hvm").read_text()
        for edit in self.edits:
            old = edit.format(n=self.published)
            if text.count(old) != 1:
                raise ValueError(f"{self.name}: {old!r} occurs {text.count(old)} times")
            text = text.replace(old, edit.format(n=size))
        return text


PROGRAMS = (
    Program(
        "stress",
        "d={n} (L=65536)",
        8,
        ("@fun ~ ({n} a)",),
        lambda d: ("0", (1 << d) * (6 * STRESS_LOOP + 22) - 10),
        (4, 6, 8),
        (4, 6),
        (12, 14),
    ),
    Program(
        "sum_rec",
        "n={n}",
        20,
        ("@sum ~ ({n} (0 a))",),
        lambda n: (_sum_below(n), 24 * (1 << n) - 17),
        (16, 18, 20),
        (16, 18),
    ),
    Program(
        "sum_tree",
        "d={n}",
        20,
        ("@sum ~ ({n} (@main__C0 a))", "@gen ~ ({n} (0 a))"),
        lambda d: (str((1 << d) % (1 << 24)), 42 * (1 << d) - 27),
        (16, 18, 20),
        (16, 18),
    ),
    Program(
        "sort_bitonic",
        "d={n}",
        12,
        ("@sum ~ ({n} (@main__C1", "@gen ~ ({n} (0 a))", "@sort ~ ({n} (0 (@main__C0"),
        lambda d: (_sum_below(d), (1 << (d - 1)) * (25 * d * d + 77 * d + 105) - 27),
        (10, 12, 14),
        (10, 12),
        (19,),
    ),
    Program(
        "sort_radix",
        "n=2^{n}",
        16,
        ("@gen ~ ({n} (0 a))",),
        lambda d: (_sum_below(d), (1 << d) * (2 * d + 1864) - 10 * d + 201),
        (12, 14, 16),
        (12, 14),
        (19,),
    ),
)

# HVM2's published figures, printed when HVM2 is not run here.
PAPER_TABLE = (
    # program, its size, C seconds (24 threads), CUDA seconds, interactions if it is this example
    ("sort_bitonic", "n = 2^19", 9.38, 0.27, PROGRAMS[3].expect(19)[1]),
    ("sort_radix", "n = 2^19", 2.95, 0.82, PROGRAMS[4].expect(19)[1]),
    (
        "sum_tree",
        "d = 14, b = 2^20 (counted as stress d=14, L=2^20)",
        128.83,
        6.97,
        (1 << 14) * (6 * (1 << 20) + 22) - 10,
    ),
)


# --- bookkeeping ------------------------------------------------------------------


@dataclass
class Timing:
    """One contender's runs of one program at one size."""

    seconds: list[float] = field(default_factory=list)
    mips_runs: list[float] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)  # HVM2's interaction counts
    error: str = ""

    @property
    def median_s(self) -> float:
        return statistics.median(self.seconds) if self.seconds else float("nan")

    @property
    def mips(self) -> float:
        return statistics.median(self.mips_runs) if self.mips_runs else float("nan")


@dataclass
class Row:
    program: str
    size: int
    label: str
    result: str
    interactions: int
    ours: Timing = field(default_factory=Timing)
    hvm: dict[str, Timing] = field(default_factory=dict)
    skipped: str = ""


def log(msg: str = "") -> None:
    print(msg, flush=True)


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


class ForeignLoad:
    """CPU time other processes took while measuring, from /proc/stat."""

    def __init__(self) -> None:
        self.busy0, self.own0, self.t0 = self._busy(), self._own(), time.perf_counter()

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
        except OSError:
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields)
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        import resource

        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def share(self) -> float | None:
        busy = self._busy()
        if busy is None or self.busy0 is None:
            return None
        wall = time.perf_counter() - self.t0
        foreign = max(0.0, (busy - self.busy0) - (self._own() - self.own0))
        return foreign / (wall * len(os.sched_getaffinity(0))) if wall > 0 else None


# --- ours ---------------------------------------------------------------------------


def load_kernel() -> float:
    """The first run in this process: loads (or compiles) our kernel."""
    t = time.perf_counter()
    from focusflow.rewrite.run import run_text

    out = run_text("@main = a & @f ~ (1 a)\n@f = (x x)", backend=OURS["backend"],
                   threads=OURS["threads"])  # fmt: skip
    assert out.result == "1" and out.interactions == 3, out
    return time.perf_counter() - t


def cold_compile() -> float | None:
    """Seconds a fresh process takes to import and run a tiny program with an
    empty numba cache (the cold compile of the kernel); None if it failed."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from focusflow.rewrite.run import run_text\n"
        "run_text('@main = 42'); print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
    if proc.returncode != 0:
        log(f"  cold compile failed: {proc.stderr.strip()[-500:]}")
        return None
    return float(proc.stdout.strip().splitlines()[-1])


#: Which evaluator of ours runs, and on how many CPU threads (set by main).
OURS: dict[str, Any] = {"backend": "numba", "threads": 1, "schedule": DEFAULT_SCHEDULE}


def run_ours(row: Row, text: str, timed: bool = True) -> bool:
    """One run of ours, checked; its time kept if ``timed``. False on a failure."""
    from focusflow.rewrite.run import run_text

    try:
        out = run_text(text, backend=OURS["backend"], threads=OURS["threads"],
                       schedule=OURS["schedule"])  # fmt: skip
    except Exception as exc:  # a refused program or an outgrown heap is a failure
        row.ours.error = f"{type(exc).__name__}: {exc}"
        return False
    if (out.result, out.interactions) != (row.result, row.interactions):
        want = f"want {row.result} / {row.interactions:,}"
        row.ours.error = f"got {out.result} / {out.interactions:,}, {want}"
        return False
    if timed:
        row.ours.seconds.append(out.seconds)
        row.ours.mips_runs.append(out.interactions / out.seconds / 1e6)
    return True


# --- HVM2 ---------------------------------------------------------------------------

_LINE = re.compile(r"^(Result:|- ITRS:|- TIME:|- MIPS:)\s*(.*?)\s*$", re.M)


def parse_hvm(stdout: str) -> dict[str, str]:
    return {k: v.removesuffix("s") for k, v in _LINE.findall(stdout)}


def hvm2_source(src: Path, text: str, ext: str = "cu") -> str:
    """What ``hvm gen-cu`` writes for ``text`` (``ext`` "cu"): HVM2's CUDA
    runtime and IO driver (from the checkout ``src``) with the book in its
    byte format; with ``ext`` "c", the same for its C runtime, the book
    interpreted as ``hvm run-c`` runs it (``hvm gen-c`` also compiles the
    book's definitions to C, which only HVM2's own compiler writes)."""
    from focusflow.rewrite.book_bytes import book_bytes
    from focusflow.rewrite.parse import load_book

    book = book_bytes(load_book(text))
    code = "#define IO\n\n" + (src / "src" / f"hvm.{ext}").read_text()
    code = code.replace(
        "//COMPILED_BOOK_BUF//", "static const u8 BOOK_BUF[] = {" + ", ".join(map(str, book)) + "};"
    )
    code = code.replace("#define WITHOUT_MAIN", "#define WITH_MAIN")
    code += "\n\n" + (src / "src" / f"run.{ext}").read_text()
    return code.replace(f'#include "hvm.{ext}"', "")


def cuda_arch() -> str:
    """``sm_XY`` of the first GPU (through CuPy), for nvcc's ``-arch``."""
    from focusflow.rewrite.cuda import _cupy

    cc = _cupy().cuda.Device(0).compute_capability
    return f"sm_{cc}"


@dataclass
class HvmRunner:
    """One way of running HVM2: a label and how to turn a program file into argv."""

    label: str
    mode: str  # run, run-c, gen-c, gen-cu
    threads: int | None = None  # gen-c only: 2^TPC_L2 threads
    gen_args: tuple[str, ...] = ()  # gen-c only: more arguments after FILE
    built: dict[str, Path] = field(default_factory=dict)

    def argv(self, hvm: str, path: Path) -> list[str]:
        if self.mode in ("run", "run-c"):
            return [hvm, self.mode, str(path)]
        exe = self.built.get(str(path))
        if exe is None:
            exe = self.build(hvm, path)
        return [str(exe)]

    def c_file(self, hvm: str, path: Path) -> Path:
        """``hvm gen-c path [gen_args]``, written once next to ``path``
        (for gen-cu, and gen-c where ``hvm`` is a checkout of HVM2's source:
        the file composed from the checkout)."""
        if self.mode == "gen-cu":
            cu_file = path.with_suffix(".cu")
            if not cu_file.exists():
                cu_file.write_text(hvm2_source(Path(hvm), path.read_text()))
            return cu_file
        slug = "-".join(self.gen_args) or "plain"
        c_file = path.with_name(f"{path.stem}.{slug}.c")
        if Path(hvm).is_dir():
            if self.gen_args:
                raise RuntimeError("gen-c+ARGS needs an HVM2 binary, not a checkout")
            if not c_file.exists():
                c_file.write_text(hvm2_source(Path(hvm), path.read_text(), "c"))
            return c_file
        if not c_file.exists():
            gen = subprocess.run(
                [hvm, "gen-c", str(path), *self.gen_args],
                capture_output=True,
                text=True,
                timeout=120,
            )
            if gen.returncode != 0 or "int main" not in gen.stdout:
                raise RuntimeError(f"gen-c failed: {gen.stderr.strip()[-300:]}")
            c_file.write_text(gen.stdout)
        return c_file

    def build(self, hvm: str, path: Path) -> Path:
        """The executable of ``path``: gen-c's file through gcc at this
        runner's thread count, or gen-cu's through nvcc for this GPU."""
        source = self.c_file(hvm, path)
        if self.mode == "gen-cu":
            exe = source.with_suffix(".cuda")
            argv = ["nvcc", "-O3", f"-arch={cuda_arch()}", "-w", str(source), "-o", str(exe)]
        else:
            assert self.threads is not None
            exe = source.with_suffix(f".t{self.threads}")
            tpc_l2 = self.threads.bit_length() - 1
            argv = ["gcc", "-O3", f"-DTPC_L2={tpc_l2}", str(source), "-o", str(exe), *LIBS]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip()[-300:]}")
        self.built[str(path)] = exe
        return exe


def probe(hvm: str, mode: str, folder: Path) -> bool:
    """Whether ``hvm mode`` runs a tiny program and prints its result."""
    path = folder / "probe.hvm"
    path.write_text("@main = 42\n")
    try:
        if mode == "gen-c":
            if shutil.which("gcc") is None:
                return False
            argv = HvmRunner("probe", "gen-c", 1).argv(hvm, path)
        elif mode == "gen-cu":
            if shutil.which("nvcc") is None or not (Path(hvm) / "src" / "hvm.cu").exists():
                return False
            argv = HvmRunner("probe", "gen-cu").argv(hvm, path)
        else:
            argv = [hvm, mode, str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, RuntimeError, subprocess.TimeoutExpired):
        return False
    return parse_hvm(proc.stdout).get("Result:") == "42"


def hvm_runners(hvm: str, modes: str, threads: list[int], folder: Path) -> list[HvmRunner]:
    wanted = [m.strip() for m in modes.split(",") if m.strip()]
    if wanted == ["auto"]:
        wanted = next(([m] for m in ("run-c", "gen-c", "run") if probe(hvm, m, folder)), [])
        if not wanted:
            raise SystemExit(f"{hvm}: neither run-c, gen-c nor run works")
        log(f"  --hvm-mode auto: {wanted[0]}")
    runners: list[HvmRunner] = []
    for mode in wanted:
        if mode == "run":
            runners.append(HvmRunner("HVM2 run (Rust interpreter, 1 thread)", "run"))
        elif mode == "run-c":
            runners.append(HvmRunner("HVM2 run-c (C runtime, its build's threads)", "run-c"))
        elif mode == "gen-cu":
            if not probe(hvm, "gen-cu", folder):
                raise SystemExit(f"gen-cu: no nvcc, or {hvm} is not a checkout of HVM2 that runs")
            runners.append(
                HvmRunner(
                    f"HVM2 CUDA runtime (gen-cu of {hvm}; nvcc -O3 -arch={cuda_arch()})", "gen-cu"
                )
            )
        elif mode.split("+")[0] == "gen-c":
            extra = tuple(mode.partition("+")[2].split())
            probe_file = folder / "probe.hvm"
            probe_file.write_text("@main = 42\n")
            c_text = HvmRunner("", "gen-c", 1, extra).c_file(hvm, probe_file).read_text()
            book = "compiled book" if "\n#define COMPILED" in c_text else "interpreted book"
            shown = f"gen-c of {hvm}" if Path(hvm).is_dir() else f"gen-c {' '.join(extra)}".strip()
            for t in threads:
                label = f"HVM2 C runtime ({shown}: {book}; gcc -O3), {t} thread{'s' * (t > 1)}"
                runners.append(HvmRunner(label, "gen-c", t, extra))
        else:
            raise SystemExit(f"unknown --hvm-mode {mode!r}")
    return runners


def run_hvm(row: Row, runner: HvmRunner, hvm: str, path: Path, timeout: float) -> None:
    """One run of HVM2 in a fresh process, checked like ours."""
    timing = row.hvm.setdefault(runner.label, Timing())
    if timing.error:
        return
    try:
        argv = runner.argv(hvm, path)
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        timing.error = f"no result within {timeout:g} s"
        return
    except RuntimeError as exc:
        timing.error = str(exc)
        return
    out = parse_hvm(proc.stdout)
    try:
        itrs, mips = int(out["- ITRS:"]), float(out["- MIPS:"])
    except (KeyError, ValueError):
        tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])[-200:]
        timing.error = f"exit {proc.returncode}: {tail}"
        return
    if out.get("Result:") != row.result or (itrs != row.interactions and runner.mode != "gen-cu"):
        timing.error = f"got {out.get('Result:')} / {itrs:,}"
        return
    # HVM2's CUDA runtime gives the right result with a count that depends on
    # its schedule (a node it moves out of a block's memory follows variables
    # that the other runtimes leave for a later interaction): kept and shown
    timing.counts.append(itrs)
    timing.mips_runs.append(mips)
    timing.seconds.append(itrs / mips / 1e6 if mips > 0 else float("nan"))


def prebuild(runners: list[HvmRunner], hvm: str, paths: list[Path]) -> None:
    """gen-c and gcc (gen-cu and nvcc) for every program and thread count,
    before any timing; a failure shows as that row's error later."""
    from concurrent.futures import ThreadPoolExecutor

    builds = [(r, p) for r in runners if r.mode in ("gen-c", "gen-cu") for p in paths]
    if not builds:
        return
    t = time.perf_counter()
    for r, p in builds:  # gen-c once per program, shared by the thread counts
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            r.c_file(hvm, p)

    def build(rp: tuple[HvmRunner, Path]) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            rp[0].build(hvm, rp[1])

    # gcc builds take two cores at most (the 2-core dev VM stays usable); nvcc,
    # about a minute a file, takes up to eight on the GPU machine
    most = 8 if any(r.mode == "gen-cu" for r in runners) else 2
    with ThreadPoolExecutor(max(1, min(most, len(os.sched_getaffinity(0))))) as pool:
        list(pool.map(build, builds))
    log(f"{len(builds)} binaries built: {time.perf_counter() - t:.1f} s (not timed)")


# --- report -------------------------------------------------------------------------


def fmt_mips(t: Timing) -> str:
    if t.error:
        return "FAIL"
    return f"{t.mips:,.1f}" if t.mips_runs else "-"


def print_table(rows: list[Row], runners: list[HvmRunner]) -> None:
    head = "| program | size | interactions | result | ours s | ours MIPS (best) |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
    for i in range(1, len(runners) + 1):
        head += f" HVM2 [{i}] MIPS | ours / HVM2 [{i}] |"
        rule += " ---: | ---: |"
    log(head)
    log(rule)
    for row in rows:
        if row.skipped:
            log(f"| {row.program} | {row.label} | {row.interactions:,} | skipped: {row.skipped} |")
            continue
        best = f" ({max(row.ours.mips_runs):,.1f})" if row.ours.mips_runs else ""
        line = (
            f"| {row.program} | {row.label} | {row.interactions:,} | {row.result} "
            f"| {row.ours.median_s:.3f} | {fmt_mips(row.ours)}{best} |"
        )
        for r in runners:
            t = row.hvm.get(r.label, Timing())
            ratio = (
                f"{row.ours.mips / t.mips:.2f}"
                if t.mips_runs and row.ours.mips_runs and not (t.error or row.ours.error)
                else "-"
            )
            line += f" {fmt_mips(t)} | {ratio} |"
        log(line)
    for i, r in enumerate(runners, 1):
        log(f"[{i}] {r.label}")
    for row in rows:
        for label, t in [("ours", row.ours), *row.hvm.items()]:
            if t.error:
                log(f"FAIL {row.program} {row.label} {label}: {t.error}")
            off = sorted({c for c in t.counts if c != row.interactions})
            if off:
                log(
                    f"count {row.program} {row.label} {label}: the right result in "
                    f"{', '.join(f'{c:,}' for c in t.counts)} interactions against "
                    f"{row.interactions:,} (its MIPS are of its own count)"
                )


def print_published() -> None:
    log("\nHVM2 was not run (no --hvm). Its published figures, for scale only (other machines):")
    log(
        "- HVM2 extended abstract, section 6, Table 1 'Benchmarks for Sorting Algorithms' "
        "(C: AMD Ryzen 9 7900X, 24 threads; CUDA: RTX 4090, 32,768 threads); MIPS computed "
        "here from the interaction counts of these examples at that size, if the paper's "
        "programs are these examples:"
    )
    log("| program | size | C s | C MIPS | CUDA s | CUDA MIPS |")
    log("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, size, c_s, cu_s, itrs in PAPER_TABLE:
        log(
            f"| {name} | {size} | {c_s:.2f} | {itrs / c_s / 1e6:,.0f} "
            f"| {cu_s:.2f} | {itrs / cu_s / 1e6:,.0f} |"
        )
    log(
        "- HVM2 paper (HVM2.typst), abstract: 400 MIPS on an Apple M3 Max on one thread, "
        "5,200 MIPS on 16 threads, 74,000 MIPS on an RTX 4090."
    )
    log(
        "- HVM2 examples/stress/main.py: 120,264,589,303 interactions; HVM-CPU 268 s on one "
        "thread (449 MIPS, M3 Max), 14 s on 12 threads (8,590 MIPS), HVM-GPU 2 s on an RTX 4090."
    )


def print_goals(rows: list[Row]) -> None:
    done = [r for r in rows if r.ours.mips_runs and not r.ours.error]
    if not done:
        return
    met = [r for r in done if r.ours.mips >= GOAL_MIPS]
    itrs = sum(r.interactions for r in done)
    secs = sum(r.ours.median_s for r in done)
    largest = {}
    for r in done:
        largest[r.program] = r
    if OURS["backend"] != "numba":
        bitonic = [r for r in done if r.program == "sort_bitonic" and r.size == 19]
        best = max(done, key=lambda r: r.ours.mips)
        log(
            f"\nGoal: >= {GOAL_GPU_MIPS:,} MIPS on the GPU: best row {best.program} "
            f"{best.label} {best.ours.mips:,.0f} MIPS: "
            + ("met." if best.ours.mips >= GOAL_GPU_MIPS else "missed.")
        )
        for r in bitonic:
            verdict = "met" if r.ours.median_s < GOAL_BITONIC_S else "missed"
            log(
                f"Goal: bitonic sort of 2^19 numbers under {GOAL_BITONIC_S} s (HVM2 on an "
                f"RTX 4090): {r.ours.median_s:.3f} s: {verdict}."
            )
            for label, t in r.hvm.items():
                if t.seconds and not t.error:
                    log(f"  the same sort by {label}: {t.median_s:.3f} s")
        return
    log(
        f"\nGoal: >= {GOAL_MIPS:.0f} MIPS on this CPU with numba ({OURS['threads']} "
        f"thread(s)): met on {len(met)} of {len(done)} rows; all rows together "
        f"{itrs / secs / 1e6:,.1f} MIPS ({itrs:,} interactions in {secs:.2f} s); at each "
        "program's largest size: "
        + ", ".join(f"{p} {r.ours.mips:,.1f}" for p, r in largest.items())
        + "."
    )
    log("Goal: bitonic sort of 2^19 numbers: a GPU goal (run with --backend cuda).")


# --- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="two smaller sizes of each program")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per size (median)")
    p.add_argument("--programs", help="comma-separated subset of " + ", ".join(
        pr.name for pr in PROGRAMS))  # fmt: skip
    p.add_argument(
        "--hvm",
        metavar="PATH",
        help="an HVM2 binary to run side by side (for gen-cu: a checkout of its source)",
    )
    p.add_argument(
        "--hvm-mode",
        default="auto",
        help="comma-separated: run-c, gen-c, gen-cu, run (see above), or gen-c+ARGS to pass "
        "ARGS (space-separated) to gen-c after the file; auto picks one",
    )
    p.add_argument(
        "--hvm-threads",
        help="gen-c thread counts, powers of 2 (default: 1 and the most this machine has)",
    )
    p.add_argument("--hvm-timeout", type=float, default=120.0, help="seconds per HVM2 run")
    p.add_argument("--compile", action="store_true", help="also time a cold numba compile")
    p.add_argument("--backend", default="numba", help="our evaluator: numba, cuda or wgpu")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of numba")
    p.add_argument(
        "--schedule",
        default=DEFAULT_SCHEDULE,
        help="the CUDA evaluator's: " + ", ".join(SCHEDULES),
    )
    p.add_argument(
        "--budget",
        type=float,
        help="start no further pass (nor warm-up) after this many seconds (default 170, quick 60)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    OURS["backend"], OURS["threads"], OURS["schedule"] = args.backend, args.threads, args.schedule
    budget = args.budget if args.budget is not None else (60.0 if args.quick else 170.0)
    nproc = len(os.sched_getaffinity(0))
    programs = [pr for pr in PROGRAMS if not args.programs or pr.name in args.programs.split(",")]
    import numba

    log(
        f"# bench/hvm.py{' --quick' if args.quick else ''} on {platform.node()}, {cpu_model()}, "
        f"{nproc} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {loadavg()}; Python {platform.python_version()}, numba {numba.__version__}"
        f"; ours: --backend {args.backend} --threads {args.threads} --schedule {args.schedule}"
    )
    t_start = time.perf_counter()
    if args.compile:
        cold = cold_compile()
        if cold is not None:
            log(f"cold numba compile (fresh process, empty cache, import + tiny run): {cold:.1f} s")
    log(f"kernel load, first run in this process (not timed below): {load_kernel():.2f} s")

    rows: list[Row] = []
    for pr in programs:
        sizes = pr.quick if args.quick else pr.full
        for size in sizes + (pr.gpu if args.backend != "numba" and not args.quick else ()):
            result, itrs = pr.expect(size)
            rows.append(Row(pr.name, size, pr.label.format(n=size), result, itrs))
    for pr in programs:  # the edits give back the file at its published size
        assert pr.text(pr.published) == (PROGRAMS_DIR / f"{pr.name}.hvm").read_text()

    runners: list[HvmRunner] = []
    with tempfile.TemporaryDirectory(prefix="hvm-bench-") as tmp:
        folder = Path(tmp)
        if args.hvm:
            threads = (
                [int(t) for t in args.hvm_threads.split(",")]
                if args.hvm_threads
                else sorted({1, 1 << (nproc.bit_length() - 1)})
            )
            runners = hvm_runners(args.hvm, args.hvm_mode, threads, folder)
        texts = {id(row): next(p for p in programs if p.name == row.program).text(row.size)
                 for row in rows}  # fmt: skip
        paths = {id(row): folder / f"{row.program}_{row.size}.hvm" for row in rows}
        if runners:
            for row in rows:
                paths[id(row)].write_text(texts[id(row)])
            prebuild(runners, args.hvm, list(paths.values()))
        load = ForeignLoad()
        live: list[Row] = []
        for row in rows:  # the warm-ups, as far as the budget goes
            if time.perf_counter() - t_start > budget:
                row.skipped = f"--budget {budget:g} s spent"
                continue
            run_ours(row, texts[id(row)], timed=False)
            live.append(row)
        # Passes over all rows, ours and HVM2's runners in turn within each: a
        # slow stretch of a shared machine then costs one run of each row it
        # overlaps, not every run of the few rows measured during it.
        for done in range(args.repeat):
            if done and time.perf_counter() - t_start > budget:
                log(f"  --budget {budget:g} s spent after {done} of {args.repeat} passes")
                break
            for row in live:
                if not row.ours.error:
                    run_ours(row, texts[id(row)])
                for r in runners:
                    run_hvm(row, r, args.hvm, paths[id(row)], args.hvm_timeout)
            log(f"  pass {done + 1} of {args.repeat} done, {time.perf_counter() - t_start:.0f} s")
        for row in live:
            msg = f"  {row.program} {row.label}: ours {fmt_mips(row.ours)} MIPS"
            for r in runners:
                msg += f"; [{runners.index(r) + 1}] "
                msg += fmt_mips(row.hvm[r.label])
            log(msg)
        share = load.share()

    log(
        f"\nMedians of up to {args.repeat} runs, one a pass over all rows (ours after one "
        "warm-up run); MIPS = interactions / "
        "reduction time; ours / HVM2 is the ratio of MIPS (above 1: ours is faster). "
        "Every result and interaction count was checked (FAIL lines list a mismatch)."
    )
    print_table(rows, runners)
    if not runners:
        print_published()
    print_goals(rows)
    log(
        f"\nload average at the end {loadavg()}; other processes took "
        + (f"{100 * share:.0f}%" if share is not None else "?")
        + f" of the CPUs meanwhile; whole run {time.perf_counter() - t_start:.0f} s"
    )
    failed = [r for r in rows if r.ours.error or (not r.skipped and not r.ours.seconds)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
