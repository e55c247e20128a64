"""HVM2's IO driver: its published IO programs, and each IO function on its own.

The expected results and outputs of the programs are HVM2's published snapshots
(``tests/snapshots/run__io_file@*.snap`` in github.com/HigherOrderCO/HVM at
commit 6542760), which ``hvm run-c`` produced in HVM2's repository: there
``./LICENSE`` is the Apache License, whose first 47 bytes are 33 spaces and
``Apache License``; the tests give the programs a working directory with such
a file. The single-call programs below are written here, in HVM2's encodings
(docs/hvm.md, "IO").
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import time
from pathlib import Path

import pytest

from focusflow.rewrite.errors import (
    HvmBackendUnavailableError,
    HvmOutOfMemoryError,
    HvmReadbackError,
)
from focusflow.rewrite.io_driver import IoDriver
from focusflow.rewrite.run import run_text
from focusflow.rewrite.show import normalize_names
from tests.cli.helpers import assert_user_error, run_cli

PROGRAMS = Path(__file__).parent / "programs"
HEAP = 1 << 20
LICENSE_HEAD = " " * 33 + "Apache License\n" + " " * 27 + "Version 2.0, January 2004\n"

DONE_OK_ERA = "((@IO/Done/tag (@IO/MAGIC (((0 (* x0)) x0) x1))) x1)"
# (file, published output, published result)
PUBLISHED = [
    ("demo_io.hvm", " " * 33 + "Apache License\n", DONE_OK_ERA),
    ("io/basic.hvm", " " * 33 + "Apache License\n", DONE_OK_ERA),
    ("io/invalid-name.hvm", "", "((@IO/Done/tag (@IO/MAGIC (((1 (((1 x0) x0) x1)) x1) x2))) x2)"),
    ("io/open1.hvm", "", "((@IO/Done/tag (@IO/MAGIC (((0 (3 x0)) x0) x1))) x1)"),
    ("io/open2.hvm", "", "((@IO/Done/tag (@IO/MAGIC (((1 (((2 (+2 x0)) x0) x1)) x1) x2))) x2)"),
    ("io/open3.hvm", "", "((@IO/Done/tag (@IO/MAGIC (((1 (((0 x0) x0) x1)) x1) x2))) x2)"),
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "LICENSE").write_text(LICENSE_HEAD)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(text: str, stdin: bytes = b"", threads: int = 1, heap: int = HEAP):
    out = io.BytesIO()
    driver = IoDriver(stdin=io.BytesIO(stdin), stdout=out, stderr=io.BytesIO())
    result = run_text(text, nodes=heap, vars_=heap, threads=threads, io=driver)
    return result, out.getvalue(), driver


@pytest.mark.parametrize(("name", "output", "result"), PUBLISHED, ids=[p[0] for p in PUBLISHED])
@pytest.mark.parametrize("threads", [1, 2])
def test_published_io_program(workdir: Path, name: str, output: str, result: str, threads: int):
    got, printed, _ = _run((PROGRAMS / name).read_text(), threads=threads)
    assert printed.decode() == output
    assert normalize_names(got.result) == result


def test_without_the_driver_a_program_stops_at_its_first_call(workdir: Path) -> None:
    plain = run_text((PROGRAMS / "demo_io.hvm").read_text(), nodes=HEAP, vars_=HEAP)
    assert normalize_names(plain.result).startswith("((@IO/Call/tag (@IO/MAGIC ")
    driven, _, driver = _run((PROGRAMS / "demo_io.hvm").read_text())
    assert driver.calls == 5  # OPEN READ WRITE WRITE CLOSE
    assert driven.interactions > plain.interactions
    # The same count on every run and thread count: expansions included.
    assert _run((PROGRAMS / "demo_io.hvm").read_text(), threads=2)[0].interactions == (
        driven.interactions
    )


# --- single calls, written in HVM2's encodings --------------------------------------
_fresh = itertools.count()
MAGIC = "(13683217 16719857)"


def ctr(tag: int, *args: str) -> str:
    """``λt ((((t tag) a0) a1) ...)`` as IR."""
    v = f"t{next(_fresh)}"
    inner = v
    for a in reversed(args):
        inner = f"({a} {inner})"
    return f"(({tag} {inner}) {v})"


def string(text: str) -> str:
    out = ctr(0)
    for ch in reversed(text.encode()):
        out = ctr(1, str(ch), out)
    return out


def call(name: str, arg: str) -> str:
    """``@main``: one IO call whose answer is wrapped in IO/Done."""
    r = f"r{next(_fresh)}"
    return (
        "@IO/Call/tag = 1\n@IO/Done/tag = 0\n"
        f"@main = {ctr(1, MAGIC, string(name), arg, f'({r} {ctr(0, MAGIC, r)})')}\n"
    )


def answer(text: str) -> str:
    """The answer inside ``IO/Done MAGIC answer``, its variables renamed."""
    names = normalize_names(text)
    prefix = "((0 ((13683217 16719857) ("
    assert names.startswith(prefix), names
    return names


OK_ERA = "((0 ((13683217 16719857) (((0 (* x0)) x0) x1))) x1)"


def err_inner(code: int) -> str:
    return f"((0 ((13683217 16719857) (((1 (((2 (+{code} x0)) x0) x1)) x1) x2))) x2)"


ERR_TYPE = "((0 ((13683217 16719857) (((1 (((0 x0) x0) x1)) x1) x2))) x2)"
ERR_NAME = "((0 ((13683217 16719857) (((1 (((1 x0) x0) x1)) x1) x2))) x2)"


def test_write_and_flush_reach_the_stream() -> None:
    got, printed, _ = _run(call("WRITE", f"(1 {string('hi there')})"))
    assert printed == b"hi there" and answer(got.result) == OK_ERA
    got, _, _ = _run(call("FLUSH", "1"))
    assert answer(got.result) == OK_ERA


def test_read_answers_a_byte_list_and_stops_at_the_end() -> None:
    got, _, _ = _run(call("READ", "(0 3)"), stdin=b"abcdef")
    assert answer(got.result) == normalize_names(ctr(0, MAGIC, ctr(0, string("abc"))))
    got, _, _ = _run(call("READ", "(0 10)"), stdin=b"xy")  # fewer bytes than asked: EOF
    assert answer(got.result) == normalize_names(ctr(0, MAGIC, ctr(0, string("xy"))))


def test_seek_then_errors_of_each_kind() -> None:
    assert answer(_run(call("SEEK", "(0 (2 0))"), stdin=b"abcd")[0].result) == OK_ERA
    assert answer(_run(call("SEEK", "(0 (2 7))"))[0].result) == ERR_TYPE  # whence 7
    assert answer(_run(call("READ", "9"))[0].result) == ERR_TYPE  # not a pair
    assert answer(_run(call("READ", "(9 1)"))[0].result) == err_inner(errno.EBADF)
    assert answer(_run(call("CLOSE", "42"))[0].result) == err_inner(errno.EBADF)
    # Native code is not loaded into the runtime: the name is not offered.
    assert answer(_run(call("DL_OPEN", f"({string('libc.so.6')} 0)"))[0].result) == ERR_NAME


def test_close_of_a_standard_stream_flushes_it_and_keeps_it() -> None:
    assert answer(_run(call("CLOSE", "1"))[0].result) == OK_ERA


def test_get_time_and_sleep() -> None:
    before = time.monotonic_ns()
    got = normalize_names(_run(call("GET_TIME", "*"))[0].result)
    after = time.monotonic_ns()
    head = "((0 ((13683217 16719857) (((0 (("
    assert got.startswith(head), got
    high, low = got[len(head) :].split(")")[0].split()
    ns = (int(high) << 24) | int(low)
    mask = (1 << 48) - 1
    assert (before & mask) <= ns <= (after & mask) or (after & mask) < (before & mask)
    start = time.perf_counter()
    ns = 200_000_000  # 0.2 s as two u24 halves
    sleep = call("SLEEP", f"({ns >> 24} {ns & 0xFFFFFF})")
    assert answer(_run(sleep)[0].result) == OK_ERA
    assert time.perf_counter() - start >= 0.2


def test_open_write_read_files(workdir: Path) -> None:
    got, _, _ = _run(call("OPEN", f"({string('new.txt')} {string('w')})"))
    assert answer(got.result) == "((0 ((13683217 16719857) (((0 (3 x0)) x0) x1))) x1)"
    assert (workdir / "new.txt").exists()  # "w" creates it
    got, _, _ = _run(call("OPEN", f"({string('missing/x')} {string('r')})"))
    assert answer(got.result) == err_inner(errno.ENOENT)
    got, _, _ = _run(call("OPEN", f"({string('new.txt')} {string('q')})"))  # no such mode
    assert answer(got.result) == err_inner(errno.EINVAL)


def test_a_read_larger_than_the_heap_is_a_clean_out_of_memory_error() -> None:
    with pytest.raises(HvmOutOfMemoryError, match="node slots"):
        _run(call("READ", "(0 4096)"), stdin=b"z" * 4096, heap=1 << 12)


def test_a_reference_that_expands_to_references_forever_is_a_readback_error() -> None:
    # A root that expands to a reference and back never gives a constructor.
    with pytest.raises(HvmReadbackError, match="@loop expands to a reference 4096 times"):
        _run("@main = @loop\n@loop = @main\n")


def test_only_the_cpu_evaluator_drives_io() -> None:
    with pytest.raises(HvmBackendUnavailableError, match="numba evaluator only"):
        run_text(call("FLUSH", "1"), backend="wgpu", io=IoDriver())


def test_cli_io_flag(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "demo_io.hvm", "--io", "--json")
    assert out.code == 0, out
    lines = out.out.splitlines()
    assert lines[0] == " " * 33 + "Apache License"
    assert normalize_names(json.loads(lines[1])["result"]) == DONE_OK_ERA
    out = run_cli(capsys, "hvm", "run", PROGRAMS / "demo_io.hvm", "--io", "--backend", "cuda")
    assert_user_error(out, "hvm_backend_unavailable")
