"""``focusflow hvm run``: HVM2's printed lines, ``--json``, and precise errors."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focusflow.rewrite.show import normalize_names
from tests.cli.helpers import assert_user_error, run_cli
from tests.rewrite.test_programs import U24

PROGRAMS = Path(__file__).parent / "programs"


def test_prints_result_and_counts_as_hvm2(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "numerics_u24.hvm")
    assert out.code == 0, out
    lines = out.out.splitlines()
    assert lines[0] == f"Result: {U24}"  # HVM2's published snapshot
    assert lines[1] == "- ITRS: 89"
    assert re.fullmatch(r"- TIME: \d+\.\d\ds", lines[2])
    assert re.fullmatch(r"- MIPS: \d+\.\d\d", lines[3])
    assert len(lines) == 4


def test_json(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "tuples.hvm", "--json")
    assert out.code == 0, out
    body = out.json()
    assert set(body) == {"result", "interactions", "seconds", "mips"}
    assert re.fullmatch(r"\(\(0 \(3 \(4 \(5 \(6 \(7 \(8 \(1 \(2 (v\w+)\)+ \1\)", body["result"])
    assert body["interactions"] == 48_144
    assert body["seconds"] >= 0 and body["mips"] >= 0


def test_a_slow_kernel_load_is_announced_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run compiles the CPU evaluator for about half a minute: a note
    says so, on stderr, and only when loading it takes long."""
    import time

    from focusflow.cli import hvm_cmd
    from focusflow.rewrite import cpu

    loaded = cpu.prepare
    monkeypatch.setattr(hvm_cmd, "COMPILE_NOTE_S", 0.05)
    monkeypatch.setattr(cpu, "prepare", lambda: time.sleep(0.5) or loaded())
    slow = run_cli(capsys, "hvm", "run", PROGRAMS / "tuples.hvm", "--json")
    assert slow.code == 0, slow
    assert "compiling the CPU evaluator" in slow.err
    assert slow.json()["interactions"] == 48_144
    monkeypatch.setattr(cpu, "prepare", loaded)
    monkeypatch.setattr(hvm_cmd, "COMPILE_NOTE_S", 5.0)
    fast = run_cli(capsys, "hvm", "run", PROGRAMS / "tuples.hvm", "--json")
    assert fast.code == 0, fast
    assert "compiling" not in fast.err


def test_threads_give_the_same_result_and_count(capsys: pytest.CaptureFixture[str]) -> None:
    one = run_cli(capsys, "hvm", "run", PROGRAMS / "tuples.hvm", "--json")
    two = run_cli(capsys, "hvm", "run", PROGRAMS / "tuples.hvm", "--threads", "2", "--json")
    assert one.code == two.code == 0, (one, two)
    assert one.json()["interactions"] == two.json()["interactions"] == 48_144
    assert normalize_names(one.json()["result"]) == normalize_names(two.json()["result"])


def test_unknown_or_missing_backend_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm", "--backend", "tpu")
    assert_user_error(out, "hvm_backend_unavailable")
    assert "'tpu'" in out.err and "numba, cuda, wgpu" in out.err
    from focusflow.rewrite import cuda

    if not cuda.available()[0]:  # no CuPy or GPU here: refused with the reason
        out = run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm", "--backend", "cuda")
        assert_user_error(out, "hvm_backend_unavailable")
        assert "cannot run here" in out.err


def test_errors_are_one_line_with_their_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.hvm"
    bad.write_text("@main = (a\n  b")
    out = run_cli(capsys, "hvm", "run", bad)
    assert_user_error(out, "hvm_syntax")
    assert "line 2, column 4" in out.err
    assert_user_error(run_cli(capsys, "hvm", "run", PROGRAMS / "empty.hvm"), "hvm_missing_main")
    assert_user_error(run_cli(capsys, "hvm", "run", tmp_path / "none.hvm"), "bad_input_file")
    # an error of the run itself comes after the CPU evaluator has loaded: a
    # run before it takes the first load's note (a compile, on a cold cache)
    assert run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm").code == 0
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "sum_rec.hvm", "--heap", "64")
    assert_user_error(out, "hvm_out_of_memory")


def test_a_program_file_is_read_up_to_its_bound(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A file of the most bytes a program may have is read and parsed (NULs:
    a syntax error at its first character); one byte more, or an endless
    file, is refused before it is read whole."""
    from focusflow.cli.hvm_cmd import MAX_PROGRAM_BYTES

    at, over = tmp_path / "at.hvm", tmp_path / "over.hvm"
    for path, size in ((at, MAX_PROGRAM_BYTES), (over, MAX_PROGRAM_BYTES + 1)):
        with path.open("wb") as f:
            f.truncate(size)  # sparse: no disk written
    out = run_cli(capsys, "hvm", "run", at)
    assert_user_error(out, "hvm_syntax")
    assert "line 1, column 1" in out.err
    for path in (over, Path("/dev/zero")):
        out = run_cli(capsys, "hvm", "run", path)
        assert_user_error(out, "bad_input_file")
        assert f"larger than {MAX_PROGRAM_BYTES} bytes" in out.err


def test_schedule_is_checked_and_applies_to_cuda_only(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm", "--schedule", "eager")
    assert_user_error(out, "invalid_parameter")
    assert "'eager'" in out.err and "spread, chains, local" in out.err
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm", "--schedule", "chains")
    assert_user_error(out, "invalid_parameter")
    assert "--backend cuda only" in out.err
    from focusflow.rewrite import cuda

    if cuda.available()[0]:
        sum_rec = PROGRAMS / "sum_rec.hvm"
        args = ("--backend", "cuda", "--json", "--schedule")
        runs = [run_cli(capsys, "hvm", "run", sum_rec, *args, s) for s in cuda.SCHEDULES]
        assert [r.code for r in runs] == [0] * len(cuda.SCHEDULES), runs
        assert len({(r.json()["result"], r.json()["interactions"]) for r in runs}) == 1


def test_a_bad_flag_or_program_is_refused_before_the_cpu_evaluator_loads(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Loading may mean a compile of seconds, with a note on stderr: a flag
    that cannot work, or a program that does not parse, is refused first."""
    from focusflow.cli import hvm_cmd

    loads: list[int] = []
    monkeypatch.setattr(hvm_cmd, "_load_cpu_kernels", lambda: loads.append(1))
    for schedule in ("eager", "chains"):
        out = run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm", "--schedule", schedule)
        assert_user_error(out, "invalid_parameter")
    bad = tmp_path / "bad.hvm"
    bad.write_text("@main = (a\n  b")
    assert_user_error(run_cli(capsys, "hvm", "run", bad), "hvm_syntax")
    assert_user_error(run_cli(capsys, "hvm", "run", PROGRAMS / "empty.hvm"), "hvm_missing_main")
    assert loads == []
    assert run_cli(capsys, "hvm", "run", PROGRAMS / "list.hvm").code == 0
    assert loads == [1]


#: Runs forever in constant memory: each expansion of @loop meets a copy of
#: its own root and calls @loop again.
LOOP = "@main = * & @loop ~ (x y)\n@loop = (a b) & @loop ~ (a b)\n"


@pytest.mark.parametrize("threads", [1, 2])
def test_ctrl_c_stops_a_run_that_never_ends(tmp_path: Path, threads: int) -> None:
    """A compiled loop never sees a signal: the kernel hands control back to
    Python every few million interactions, where Ctrl-C is raised, and the
    CLI exits with 130 and says so (typer returned 130, which exited 0)."""
    program = tmp_path / "loop.hvm"
    program.write_text(LOOP)
    # A suite started in the background of a shell inherits SIGINT ignored,
    # and so would the child (Python then installs no handler of its own):
    # the child takes the handler a terminal's foreground process has.
    child = (
        "import signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from focusflow.cli.main import main\n"
        "from focusflow.rewrite.run import run_text\n"
        f"run_text('@main = 1', threads={threads})\n"  # the kernel loaded before the clock
        "print('go', flush=True)\n"
        f"main(['hvm', 'run', {str(program)!r}, '--threads', '{threads}'])\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "go\n", proc.communicate(timeout=60)
            time.sleep(2.0)  # well inside the endless run
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.strip().endswith("error: interrupted"), err
