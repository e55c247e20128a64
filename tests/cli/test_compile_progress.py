"""``focusflow compile`` as a user runs it with its output going to a log: the
phases show as lines (a spinner shows nothing off a terminal), and the KL
evaluation, which took three quarters of a 24-minute WordNet compile, runs
only when asked for."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

PHASES = ("loading edges.tsv", "adjacency", "focus", "svd", "diameter", "weights", "onnx")


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    f = tmp_path_factory.mktemp("compile") / "edges.tsv"
    ring = [f"p{i} p{(i + 1) % 40}" for i in range(40)]
    chords = [f"p{i} p{(i * 7) % 40} 2" for i in range(0, 40, 3)]
    f.write_text("\n".join(ring + chords) + "\n")
    return f


def compile_(edges, out, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "compile", "--graph", str(edges), "--out", str(out),
         "--rank", "8", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip


def test_phases_are_logged_as_lines_and_kl_is_not_measured_by_default(edges, tmp_path):
    proc = compile_(edges, tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    # a phase's first line; a long one is said again with its time (", 12 s")
    starts = [ln for ln in lines if ln.startswith("compile: ") and ", " not in ln]
    assert starts == [f"compile: {p}" for p in PHASES]
    assert "not measured (--evaluate measures it)" in proc.stderr
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert report["kl"] is None and "evaluate" not in report["timings"]


@pytest.mark.parametrize("args", [("--evaluate", "--eval-contexts", "3"), ("--eval-contexts", "3")])
def test_the_evaluation_runs_when_asked_for_and_says_so(edges, tmp_path, args):
    proc = compile_(edges, tmp_path / "m", *args)
    assert proc.returncode == 0, proc.stderr
    assert "compile: evaluate" in proc.stderr.splitlines()
    assert "KL(phi*_c || q_c) over 3 contexts" in proc.stderr
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert report["kl"]["contexts"] == 3


def test_eval_contexts_zero_skips_it_even_with_evaluate(edges, tmp_path):
    proc = compile_(edges, tmp_path / "m", "--evaluate", "--eval-contexts", "0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "m" / "report.json").read_text())["kl"] is None


def test_a_counted_phase_logs_its_count_and_the_time_left(capsys):
    from focusflow.cli.common import PhaseProgress

    with PhaseProgress("compile", interval=0.0) as progress:
        progress.phase("evaluate", 64, "contexts")
        progress.advance(16)
        progress.advance(64)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "compile: evaluate 0/64 contexts"
    assert lines[1].startswith("compile: evaluate 16/64 contexts, ") and lines[1].endswith(" left")
    assert lines[2] == "compile: evaluate 64/64 contexts"


def test_a_long_phase_that_cannot_count_is_said_again_in_a_log(capsys):
    import time

    from focusflow.cli.common import PhaseProgress

    with PhaseProgress("compile", interval=0.1) as progress:
        progress.phase("svd")
        time.sleep(0.6)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "compile: svd"
    assert len(lines) >= 2 and all(ln.startswith("compile: svd, ") for ln in lines[1:]), lines
