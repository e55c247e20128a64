"""``focusflow infer`` on graph files and compiled models, as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from focusflow.core.cid import cid_of_text
from tests.cli.helpers import assert_user_error, run_cli

EDGES = "\n".join(
    [
        "# src dst weight",
        "a b 10",
        "a c 0.1",
        "c d 1",
        "b e 0.1",
        "e a 1",
        "d a 1",
    ]
)


@pytest.fixture
def edges(tmp_path):
    path = tmp_path / "g.tsv"
    path.write_text(EDGES + "\n")
    return path


def test_one_context_as_json_and_as_a_table(capsys, edges):
    r = run_cli(capsys, "infer", "--graph", edges, "--context", "a", "--top", "2", "--json")
    assert r.code == 0, r.err
    doc = r.json()
    assert doc["context"] == [{"particle": "a"}]
    assert doc["particles"][0]["particle"] == "b"
    # A five-particle graph: the push from the context certifies its bound.
    assert doc["path"] == "local" and 0 <= doc["error_bound"] < 0.1
    table = run_cli(capsys, "infer", "--graph", edges, "--context", "a", "--top", "2")
    assert table.code == 0 and " b " in table.out and "probability" in table.out


def test_contexts_file_writes_the_tsv(capsys, edges, tmp_path):
    contexts = tmp_path / "ctx.tsv"
    contexts.write_text("a\n# a comment\n\nc\td\n")
    out = tmp_path / "out.tsv"
    r = run_cli(
        capsys, "infer", "--graph", edges, "--contexts", contexts, "--out", out, "--top", "2"
    )
    assert r.code == 0, r.err
    rows = [line.split("\t") for line in out.read_text().splitlines()]
    assert rows[0] == ["line", "rank", "particle", "probability"]
    assert [(x[0], x[1]) for x in rows[1:]] == [("1", "1"), ("1", "2"), ("4", "1"), ("4", "2")]
    assert rows[1][2] == "b"
    assert abs(sum(float(x[3]) for x in rows[1:3]) - 1.0) < 0.5


def test_a_bad_line_names_the_file_and_line(capsys, edges, tmp_path):
    contexts = tmp_path / "ctx.tsv"
    contexts.write_text("a\nnope\n")
    r = run_cli(
        capsys, "infer", "--graph", edges, "--contexts", contexts, "--out", tmp_path / "o.tsv"
    )
    assert_user_error(r, "invalid_parameter")
    assert f"{contexts}:2:" in r.err and "unknown_particle" in r.err


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--context", "zzz"], "unknown_particle"),
        (["--context", "a", "--mode", "nope"], "invalid_parameter"),
        (["--context", "a", "--semcon", "x"], "invalid_parameter"),
        (["--context", "a", "--semcon", "x=1"], "unknown_semcon"),
        (["--context", "a", "--top", "0"], "invalid_parameter"),
        (["--context", "a", "--walk", "2", "--top-p", "0"], "invalid_parameter"),
        ([], "invalid_parameter"),
    ],
)
def test_bad_input_exits_2_with_its_code(capsys, edges, args, code):
    assert_user_error(run_cli(capsys, "infer", "--graph", edges, *args), code)


def test_exactly_one_source(capsys, edges, tmp_path):
    assert_user_error(run_cli(capsys, "infer", "--context", "a"), "invalid_parameter")
    both = run_cli(capsys, "infer", "--graph", edges, "--model", tmp_path, "--context", "a")
    assert_user_error(both, "invalid_parameter")


def test_walk_is_reproducible(capsys, edges):
    args = ["infer", "--graph", edges, "--context", "a", "--walk", "4", "--seed", "9", "--json"]
    first, again = run_cli(capsys, *args), run_cli(capsys, *args)
    assert first.code == 0, first.err
    assert first.json()["steps"] == [
        {**s, "seconds": first.json()["steps"][i]["seconds"]}
        for i, s in enumerate(again.json()["steps"])
    ]


def test_texts_beside_the_graph_are_shown(capsys, tmp_path):
    words = ["cats", "mammals", "dogs", "animals"]
    graph = tmp_path / "small.csv"
    graph.write_text(
        "neuron,particle_from,particle_to,height,timestamp\n"
        + "".join(
            f"n,{cid_of_text(a)},{cid_of_text(b)},0,0\n"
            for a, b in [("cats", "mammals"), ("dogs", "mammals"), ("mammals", "animals")]
        )
    )
    (tmp_path / "small.particles.tsv").write_text(
        "cid\ttext\tgloss\n" + "".join(f"{cid_of_text(w)}\t{w}\t\n" for w in words)
    )
    r = run_cli(capsys, "infer", "--graph", graph, "--context", "cats", "--top", "1", "--json")
    assert r.code == 0, r.err
    assert r.json()["particles"][0]["text"] == "mammals"


def test_a_particles_file_is_checked_where_it_is_read(capsys, tmp_path):
    words = ["cats", "mammals", "dogs"]
    graph = tmp_path / "small.csv"
    graph.write_text(
        "neuron,particle_from,particle_to,height,timestamp\n"
        + "".join(
            f"n,{cid_of_text(a)},{cid_of_text(b)},0,0\n"
            for a, b in [("cats", "mammals"), ("dogs", "mammals")]
        )
    )
    texts = tmp_path / "small.particles.tsv"
    args = ("infer", "--graph", graph, "--context", "cats", "--top", "1", "--json")
    # The line of the particle shown has two fields: named by its line.
    texts.write_text(
        "cid\ttext\tgloss\n" + f"{cid_of_text('cats')}\tcats\t\n{cid_of_text('mammals')}\tmammals\n"
    )
    r = run_cli(capsys, *args)
    assert_user_error(r, "bad_input_file")
    assert "small.particles.tsv:3:" in r.err
    texts.write_text("cid,text\n" + "".join(f"{cid_of_text(w)}\t{w}\t\n" for w in words))
    assert_user_error(run_cli(capsys, *args), "bad_input_file")
    # A particle without a line is shown without text.
    texts.write_text("cid\ttext\tgloss\n" + f"{cid_of_text('cats')}\tcats\t\n")
    r = run_cli(capsys, *args)
    assert r.code == 0, r.err
    assert "text" not in r.json()["particles"][0]


def test_a_compiled_model_answers_the_same_question(capsys, shared_sample_path, tmp_path):
    out = tmp_path / "model"
    made = run_cli(
        capsys,
        "compile",
        "--graph",
        shared_sample_path,
        "--skip-invalid",
        "--out",
        out,
        "--eval-contexts",
        "2",
    )
    assert made.code == 0, made.err
    assert "skipped 1 links whose particles are not CIDs" in made.err
    assert json.loads((out / "report.json").read_text())["skipped_invalid_links"] == 1
    vocab = (out / "vocab.tsv").read_text().splitlines()
    key = vocab[1].split("\t")[-1]
    r = run_cli(capsys, "infer", "--model", out, "--context", key, "--top", "5", "--json")
    assert r.code == 0, r.err
    probs = np.array([p["probability"] for p in r.json()["particles"]])
    assert len(probs) == 5 and np.all(np.diff(probs) <= 0)
    assert key not in [p["particle"] for p in r.json()["particles"]]
    unknown = run_cli(capsys, "infer", "--model", out, "--context", "not in the vocab")
    assert_user_error(unknown, "unknown_particle")


def test_skip_invalid_over_a_graph_file_counts_what_it_dropped(capsys, shared_sample_path):
    """The shared sample's line 239 is not a link between CIDs: it stops the command,
    or with --skip-invalid is dropped and counted in the answer and on stderr."""
    first = shared_sample_path.read_text().splitlines()[1].split(",")[1]
    args = ("infer", "--graph", shared_sample_path, "--context", first, "--top", "2", "--json")
    stopped = run_cli(capsys, *args)
    assert_user_error(stopped, "invalid_cid")
    assert ":239:" in stopped.err and "--skip-invalid" in stopped.err
    r = run_cli(capsys, *args, "--skip-invalid")
    assert r.code == 0, r.err
    assert r.json()["skipped_invalid_links"] == 1 and len(r.json()["particles"]) == 2
    assert "skipped 1 links whose particles are not CIDs" in r.err


def test_a_compiled_model_weighs_semcons(capsys, tmp_path):
    a = "bostrom1ay267fakkrgfy9lf2m7wsj8uez2dgylhtkdf9k"
    b = "bostrom1d8754xqa9245pctlfcyv8eah468neqzn3a0y0t"
    cid = {t: str(cid_of_text(t)) for t in ("x", "y1", "y2", "z")}
    rows = [(a, "x", "y1"), (b, "x", "y2"), (a, "y1", "z"), (b, "y2", "z"), (a, "z", "x")]
    csv = tmp_path / "links.csv"
    csv.write_text(
        "neuron,particle_from,particle_to,height,timestamp\n"
        + "".join(f"{n},{cid[f]},{cid[t]},1,2021-11-06 03:52:13\n" for n, f, t in rows)
    )
    out = tmp_path / "model"
    made = run_cli(capsys, "compile", "--graph", csv, "--out", out, "--eval-contexts", "0")
    assert made.code == 0, made.err
    for neuron, want in ((a, "y1"), (b, "y2")):
        r = run_cli(
            capsys,
            "infer",
            "--model",
            out,
            "--context",
            "x",
            "--semcon",
            f"{neuron}=1",
            "--other-semcons",
            "0",
            "--top",
            "1",
            "--json",
        )
        assert r.code == 0, r.err
        assert r.json()["particles"][0]["particle"] == cid[want]
    unknown = run_cli(capsys, "infer", "--model", out, "--context", "x", "--semcon", "nope=1")
    assert_user_error(unknown, "unknown_semcon")
