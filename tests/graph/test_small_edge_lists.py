"""Small irregular edge lists are read line by line in Python (importing pandas
costs more than reading them); the result and every error must be those of the
general reader that large files take."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from focusflow.core.errors import InputFileError
from focusflow.graph import importers

BODIES = [
    "a b\nb c 2\nc a\n",
    "# comment\na\tb\t0.5\n\nb\tc\nc\ta\t3 # trailing\n",
    "a,b\nb, c,2\nc,a\n",
    "x  y\ny   z 4\n",
    "NA null\nnull nan 2\n",  # ids pandas would take for missing values
]
BAD = [
    "a b\nb c 1 2 3\n",
    "a b\nc\n",
    "a b\nb c heavy\n",
    "a b\nb c -2\n",
    "a b\nb c nan\n",
    "a b\nb c NA\n",
    "a,b\nb,,2\n",  # an empty id
]


@pytest.mark.parametrize("body", BODIES)
def test_small_files_read_as_the_general_reader_reads_them(tmp_path, monkeypatch, body):
    f = tmp_path / "edges.txt"
    f.write_text(body)
    graphs = []
    for small in (True, False):
        monkeypatch.setattr(importers, "SMALL_FILE_BYTES", 1 << 20 if small else -1)
        g = importers.read_edge_list(f)
        graphs.append((g.n_particles, g.n_links, _edges(g)))
    assert graphs[0] == graphs[1]


def _edges(g) -> list[tuple[str, str, float]]:
    keys = g.particles.keys()
    links = g.links()
    rows = zip(links.src.tolist(), links.dst.tolist(), links.weight.tolist(), strict=True)
    return sorted((str(keys[s]), str(keys[d]), float(w)) for s, d, w in rows)


@pytest.mark.parametrize("body", BAD)
def test_small_files_are_refused_with_the_general_readers_line(tmp_path, monkeypatch, body):
    f = tmp_path / "edges.txt"
    f.write_text(body)
    errors = []
    for small in (True, False):
        monkeypatch.setattr(importers, "SMALL_FILE_BYTES", 1 << 20 if small else -1)
        with pytest.raises(InputFileError) as caught:
            importers.read_edge_list(f)
        errors.append(str(caught.value).split(": ", 1)[0])
    assert errors[0] == errors[1] == f"{f}:2"


def test_focus_compute_solves_a_small_file_in_numpy_without_numba(tmp_path):
    """A small input's solve does not wait for numba's solver kernels to load:
    NumPy solves it."""
    edges = tmp_path / "edges.tsv"
    edges.write_text("a b\nb c 2\nc a\nd a\n")
    code = (
        "import sys; from focusflow.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "import gc; from numba.core.dispatcher import Dispatcher\n"
        "print(sorted({o.py_func.__module__ for o in gc.get_objects()\n"
        "              if isinstance(o, Dispatcher) and o.overloads}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "focus", "compute", str(edges), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary, loaded = proc.stdout.rsplit("\n", 2)[0], proc.stdout.strip().splitlines()[-1]
    assert json.loads(summary)["backend"] == "numpy"
    # the graph's CSR kernels load; the numba solver's do not
    assert "focusflow.focus.backends" not in loaded and "graph.csr" in loaded, loaded
