"""The `focusflow focus compute` contract, run as a real subprocess."""

import json
import subprocess
import sys

import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.graph import read_bostrom


def run(*args, check=False):
    proc = subprocess.run(
        [sys.executable, "-m", "focusflow", "focus", "compute", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def parse_tsv(text):
    rows = [line.split("\t") for line in text.strip().splitlines()]
    return [(k, float(v)) for k, v in rows]


def test_default_input_is_shipped_sample_and_top_prints_tsv(sample_path):
    proc = run("--top", 7, check=True)
    rows = parse_tsv(proc.stdout)
    assert len(rows) == 7
    values = [v for _, v in rows]
    assert values == sorted(values, reverse=True)
    ref = compute(read_bostrom(sample_path)).top(7)
    assert [k for k, _ in rows] == [k for k, _ in ref]
    assert np.allclose(values, [v for _, v in ref])
    # summary on stderr, not on stdout
    assert "particles" in proc.stderr and "iterations" in proc.stderr
    assert "syntropy" in proc.stderr


def test_out_writes_every_particle_sorted(sample_path, tmp_path):
    out = tmp_path / "focus.tsv"
    proc = run(sample_path, "--mode", "diffusion", "--out", out, check=True)
    assert proc.stdout == ""
    rows = parse_tsv(out.read_text())
    assert len(rows) == 1302
    assert sum(v for _, v in rows) == pytest.approx(1.0)
    values = [v for _, v in rows]
    assert values == sorted(values, reverse=True)


def test_json_summary(sample_path):
    proc = run(sample_path, "--json", "--top", 3, "--weights", "0.6,0.2,0.2", check=True)
    summary = json.loads(proc.stdout)
    assert summary["particles"] == 1302 and summary["links"] == 1279
    assert summary["converged"] and summary["residual"] < 1e-6
    assert len(summary["top"]) == 3
    assert summary["syntropy_nats"] > 0


def test_edge_list_and_cyberank_output(tmp_path):
    f = tmp_path / "g.tsv"
    f.write_text("# my graph\na\tb\t2\nb\tc\t1\nc\ta\t1\nd\ta\t1\n")
    proc = run(f, "--mode", "diffusion", "--top", 4, check=True)
    assert {k for k, _ in parse_tsv(proc.stdout)} == {"a", "b", "c", "d"}
    proc = run(f, "--mode", "cyberank", "--top", 4, check=True)
    values = [v for _, v in parse_tsv(proc.stdout)]
    assert all(float(v).is_integer() for v in values), "cyberank prints uint64(rank*1e15)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.csv"], "no such file"),
        (["--weights", "0.5,0.3,0.1"], "sum to 1"),
        (["--weights", "1,0"], "three numbers"),
        (["--alpha", "1.5"], "alpha"),
        (["--alpha", "0"], "alpha"),
        (["--tol", "-1"], "tol"),
        (["--max-iter", "5000"], "max_iter"),
        (["--mode", "pagerank"], "mode"),
        (["--backend", "gpu9"], "backend"),
        (["--alpha", "abc"], "alpha"),
        (["--model", "entropy"], "--model must be blend or free-energy"),
        (["--model", "free-energy", "--temperature", "0"], "temperature must be > 0"),
        (["--model", "free-energy", "--backend", "numpy"], "numba backend only"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(args, message):
    proc = run(*args)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert message in lines[0]
    assert proc.stdout == ""


def test_bad_cid_and_negative_stake(shared_sample_path, sample_path, tmp_path):
    proc = run(shared_sample_path)
    assert proc.returncode != 0 and ":239:" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run(shared_sample_path, "--skip-invalid", "--top", 1, check=True)
    assert "skipped 1 links" in proc.stderr
    stakes = tmp_path / "stakes.csv"
    stakes.write_text("neuron,stake\nsomeone,-3\n")
    proc = run(sample_path, "--stakes", stakes)
    assert proc.returncode != 0 and "negative stake" in proc.stderr


def test_bad_cid_exits_with_one_line(sample_path, tmp_path):
    f = tmp_path / "links.csv"
    f.write_text(
        sample_path.read_text().replace(
            "QmPcfxEfW317u3bbz8MbEhjoMZ5HMFsx5TbsEHWPd1kLLw", "notacid", 1
        )
    )
    proc = run(f)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid CID 'notacid'" in lines[0] and ":2:" in lines[0]


def test_the_free_energy_model_is_the_libraries_minimiser(sample_path):
    """``--model free-energy --temperature T`` prints F's exact minimiser, as
    ``compute`` gives it in Python, and says so in the summary."""
    proc = run(
        sample_path,
        "--model",
        "free-energy",
        "--temperature",
        0.5,
        "--json",
        "--top",
        5,
        check=True,
    )
    summary = json.loads(proc.stdout)
    assert summary["model"] == "free-energy" and summary["backend"] == "numba"
    assert summary["converged"]
    ref = compute(
        read_bostrom(sample_path), model="free-energy", temperature=0.5, arithmetic="exact-v3"
    )
    assert [k for k, _ in summary["top"]] == [k for k, _ in ref.top(5)]
    assert [v for _, v in summary["top"]] == [v for _, v in ref.top(5)]
