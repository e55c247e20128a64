"""``focusflow query datalog --graph FILE`` checks the program before it reads
the file: a program with an error is refused at once with its own error code
(it used to be refused after the whole file had loaded, 25 s for WordNet).

The graph given is one that reading would fail on differently (a missing
file, a named pipe: not a regular file), so the program's error code in the
answer shows the file was never opened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import cli_program


def datalog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "query", "datalog", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_error(proc: subprocess.CompletedProcess[str], code: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].endswith(f"[{code}]"), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("program", "output", "code", "said"),
    [
        ('r(y) :- link("a", y', "r", "query_syntax", "line 1, column 20"),
        ('r(y) :- lnk("a", y).', "r", "query_invalid", "unknown relation lnk"),
        ('r(y) :- link("a", y).', "s", "query_invalid", ""),
    ],
)
def test_a_bad_program_is_refused_before_a_missing_file(tmp_path, program, output, code, said):
    line = one_error(datalog(program, "--graph", str(tmp_path / "absent.tsv"), "-o", output), code)
    assert said in line and "absent.tsv" not in line


def test_a_bad_program_never_opens_the_graph(tmp_path):
    """A named pipe blocks whoever opens it for reading until a writer comes."""
    pipe = tmp_path / "graph.tsv"
    os.mkfifo(pipe)
    one_error(datalog('r(y) :- link("a", y', "--graph", str(pipe), "-o", "r"), "query_syntax")


def test_a_good_program_still_reads_the_graph(tmp_path):
    edges = tmp_path / "edges.tsv"
    edges.write_text("a b\nb c\nc d\n")
    proc = datalog(
        'r(y) :- link("a", y). r(y) :- r(x), link(x, y).', "--graph", str(edges), "-o", "r"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["y", "b", "c", "d"]


def test_a_bad_program_loads_no_file_reader(tmp_path):
    """Neither Arrow nor pandas (the file readers) nor DuckDB is even imported."""
    edges = tmp_path / "edges.tsv"
    edges.write_text("a b\n")
    argv = ["query", "datalog", 'r(y) :- link("a", y', "--graph", str(edges), "-o", "r"]
    watched = ("pyarrow", "pandas", "duckdb")
    proc = subprocess.run(
        [sys.executable, "-c", cli_program(argv, (), watched)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "[query_syntax]" in proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"loaded": []}
