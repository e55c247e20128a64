"""``focusflow focus compute --shards``: the sharded solve from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from tests.cli.helpers import assert_user_error, run_cli

pytest.importorskip("ray")

LINKS = [
    ("a", "b", 1.0),
    ("b", "c", 2.0),
    ("c", "a", 1.0),
    ("c", "d", 1.0),
    ("d", "a", 0.5),
    ("e", "a", 1.0),
    ("d", "f", 3.0),
    ("f", "b", 1.0),
    ("g", "g", 1.0),
    ("b", "c", 0.5),
]


def _edges(tmp_path):
    path = tmp_path / "g.csv"
    # Enough lines that the readers' byte ranges cut it in several places.
    path.write_text("".join(f"{s},{d},{w}\n" for s, d, w in LINKS * 3))
    return path


def _focus_of(stdout: str) -> dict[str, float]:
    return {key: value for key, value in json.loads(stdout)["top"]}


@pytest.mark.timeout(240)
def test_shards_read_an_edge_list_in_parallel_and_agree_with_one_process(tmp_path):
    path = _edges(tmp_path)
    common = [str(path), "--tol", "1e-12", "--json", "--top", "100"]
    cmd = [sys.executable, "-m", "focusflow", "focus", "compute"]
    sharded = subprocess.run(
        [*cmd, *common, "--shards", "3"], capture_output=True, text=True, timeout=200
    )
    assert sharded.returncode == 0, sharded.stderr
    single = subprocess.run([*cmd, *common], capture_output=True, text=True, timeout=200)
    assert single.returncode == 0, single.stderr
    got, want = _focus_of(sharded.stdout), _focus_of(single.stdout)
    assert sorted(got) == sorted(want)  # the self-linked g is a particle in both
    assert sum(abs(got[k] - want[k]) for k in want) < 1e-9
    summary = json.loads(sharded.stdout)
    assert summary["backend"] == "shards" and summary["converged"]
    report = summary["shards"]
    assert report["shards"] == 3 and len(report["contraction"]) == 3
    assert report["halo_values"] > 0
    assert report["bytes_per_iteration"] >= 16 * report["halo_values"]  # tri: a buffer per term
    assert summary["particles"] == 7 and summary["links"] == 3 * (len(LINKS) - 1)
    assert np.isclose(sum(got.values()), 1.0)


def test_cluster_needs_shards(tmp_path, capsys):
    res = run_cli(capsys, "focus", "compute", _edges(tmp_path), "--cluster", "127.0.0.1:1")
    assert_user_error(res, "invalid_parameter")
    assert "--cluster needs --shards" in res.err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--shards", "0"], "shards must be between 1 and 256"),
        (["--shards", "2", "--reduce", "gossip"], "--reduce must be one of"),
        (["--shards", "2", "--backend", "cuda"], "--shards runs on the shards' CPUs"),
    ],
)
def test_bad_sharding_options_are_refused_before_any_work(tmp_path, capsys, extra, message):
    res = run_cli(capsys, "focus", "compute", _edges(tmp_path), *extra)
    assert_user_error(res, "invalid_parameter")
    assert message in res.err


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("d,e,-2", ":{line}: negative weight -2"),
        ("d,e,2,9", ":{line}: 4 fields; an edge list line has 2 or 3 columns"),
        ("d,,2", ":{line}: an empty particle id"),
        ("d,e,x", ":{line}: weight 'x' is not a number"),
    ],
)
def test_a_bad_line_read_by_a_shard_is_named_as_one_process_names_it(tmp_path, bad, message):
    """The bad line sits in the last reader's byte range, after a comment and a
    blank line: the error names its line in the whole file, with the one-process
    reader's words and code, not a worker's traceback."""
    good = [f"p{k},p{k + 1},1" for k in range(40)]
    lines = [*good[:20], "# a comment", "", *good[20:], bad, "x,y,1"]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join(lines) + "\n")
    line = lines.index(bad) + 1
    cmd = [sys.executable, "-m", "focusflow", "focus", "compute", str(path)]
    sharded = subprocess.run([*cmd, "--shards", "3"], capture_output=True, text=True, timeout=200)
    single = subprocess.run(cmd, capture_output=True, text=True, timeout=200)
    want = single.stderr.strip().splitlines()[-1]
    assert single.returncode == 2 and message.format(line=line) in want, want
    assert sharded.returncode == 2, sharded.stderr
    assert sharded.stderr.strip().splitlines()[-1] == want
    assert want.endswith("[bad_input_file]")
