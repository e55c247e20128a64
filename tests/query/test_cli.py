"""``focusflow query datalog --graph``: TSV and JSON out, programs from files, the
bostrom sample, and errors with their code and position."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT.parent / "shared" / "data" / "bostrom-sample-cyberlinks.csv"
CMD = [sys.executable, "-m", "focusflow", "query", "datalog"]


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CMD, *args], capture_output=True, text=True, timeout=120, input=stdin, cwd=ROOT
    )


@pytest.fixture
def edges(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text("a\tb\t1\nb\tc\t2\nc\ta\t1\nd\te\t0.5\n")
    return path


def test_tsv_json_and_program_files(edges, tmp_path):
    program = "r(x, y) :- link(x, y).\nr(x, y) :- r(x, z), link(z, y)."
    tsv = _run(program, "--graph", str(edges), "--output", "r")
    assert tsv.returncode == 0, tsv.stderr
    lines = tsv.stdout.splitlines()
    assert lines[0] == "x\ty" and len(lines) == 1 + 9 + 1  # a, b, c reach each other; d -> e
    file = tmp_path / "w.dl"
    file.write_text('heavy(x, y, w) :- weight(x, y, w), w >= 1, x != "c".\n')
    doc = json.loads(_run(f"@{file}", "--graph", str(edges), "--output", "heavy", "--json").stdout)
    assert doc == {
        "relation": "heavy",
        "columns": ["x", "y", "w"],
        "rows": [["a", "b", 1.0], ["b", "c", 2.0]],
        "total": 2,
    }
    piped = _run(
        "@-",
        "--graph",
        str(edges),
        "--output",
        "r",
        "--limit",
        "1",
        "--json",
        stdin="r(x) :- particle(x), !link(x, _).",
    )
    assert json.loads(piped.stdout)["rows"] == [["e"]]


def test_errors_carry_their_code_and_position(edges):
    bad = _run("r(x) :- link(x, y)\nq(", "--graph", str(edges), "--output", "r")
    assert bad.returncode == 2
    assert "line 2, column 1" in bad.stderr and "[query_syntax]" in bad.stderr
    unknown = _run("r(x) :- lnk(x, _).", "--graph", str(edges), "--output", "r")
    assert "did you mean link" in unknown.stderr and "[query_invalid]" in unknown.stderr
    both = _run("r(x) :- link(x, _).", "--graph", str(edges), "--node", "http://x", "--output", "r")
    assert both.returncode == 2 and "[invalid_parameter]" in both.stderr


@pytest.mark.skipif(not SAMPLE.exists(), reason="the shared bostrom sample is absent")
def test_the_bostrom_sample_with_neurons_and_operators():
    program = """
    authors(n, c) :- stake(n, _), c = count : { neuron_link(n, _, _) }.
    top(n) :- authors(n, c), c >= 50.
    """
    # The sample holds one link whose particles are not CIDs (line 239): without
    # --skip-invalid it stops the command there, with it the answer counts it.
    stopped = _run(program, "--graph", str(SAMPLE), "--output", "top")
    assert stopped.returncode == 2 and ":239:" in stopped.stderr
    assert "--skip-invalid" in stopped.stderr
    sample = ("--graph", str(SAMPLE), "--skip-invalid")
    run = _run(program, *sample, "--output", "top", "--json")
    doc = json.loads(run.stdout)
    assert doc["total"] >= 1 and all(row[0].startswith("bostrom") for row in doc["rows"])
    assert doc["skipped_invalid_links"] == 1
    assert "skipped 1 links whose particles are not CIDs" in run.stderr
    comp = _run("c(n) :- n = count : { component(_, _) }.", *sample, "--output", "c", "--json")
    count = json.loads(comp.stdout)["rows"][0][0]
    particles = _run("c(n) :- n = count : { particle(_) }.", *sample, "--output", "c", "--json")
    assert count == json.loads(particles.stdout)["rows"][0][0] > 1000
