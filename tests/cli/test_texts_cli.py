"""Particle texts in the CLI, as a user's shell runs it: ``query cid`` with no node,
``focus compute`` beside a particles file or with ``--texts``, ``query search`` and
``infer --node`` against a devnet whose texts came in a link transaction.

Commands whose point is what runs where (no node, a separate process) run in a
subprocess; the rest in-process (``run_cli``), as the other CLI tests do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from focusflow.core.cid import cid_of_text
from focusflow.testing.process import SOURCE, node_env
from tests.cli.helpers import assert_user_error, run_cli

WORDS = ["Cats", "mammals", "dogs", "animals"]
PAIRS = [("Cats", "mammals"), ("dogs", "mammals"), ("mammals", "animals"), ("Cats", "animals")]


def _cli(*args: object, home=None, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    env = node_env(SOURCE)
    if home is not None:
        env["FOCUSFLOW_HOME"] = str(home)
    argv = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"focusflow", *argv],
        capture_output=True,
        timeout=timeout,
        env=env,
    )


def test_query_cid_is_a_hash_that_needs_no_node(tmp_path):
    done = _cli("query", "cid", "Cats", home=tmp_path / "no-node-here")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == cid_of_text("Cats")
    as_json = _cli("query", "cid", "Cats", "--json", home=tmp_path / "no-node-here")
    assert json.loads(as_json.stdout) == {"cid": cid_of_text("Cats")}
    bad = _cli("query", "cid", b"\xff", home=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.decode().strip().splitlines() == [
        "error: the text is not valid UTF-8 [invalid_parameter]"
    ]


@pytest.fixture
def graph(tmp_path):
    path = tmp_path / "small.csv"
    path.write_text(
        "neuron,particle_from,particle_to,height,timestamp\n"
        + "".join(f"n,{cid_of_text(a)},{cid_of_text(b)},0,0\n" for a, b in PAIRS)
    )
    return path


def _particles(path, words):
    path.write_text("cid\ttext\tgloss\n" + "".join(f"{cid_of_text(w)}\t{w}\t\n" for w in words))
    return path


def test_focus_compute_prints_texts_beside_the_cids(graph, tmp_path):
    # No particles file: two columns, as before.
    plain = _cli("focus", "compute", graph, "--top", 4)
    assert plain.returncode == 0, plain.stderr
    assert all(len(line.split("\t")) == 2 for line in plain.stdout.decode().splitlines())
    # The particles file beside the graph is read by default; a particle it
    # lacks ("animals") has an empty text.
    _particles(tmp_path / "small.particles.tsv", WORDS[:3])
    beside = _cli("focus", "compute", graph, "--top", 4)
    assert beside.returncode == 0, beside.stderr
    rows = [line.split("\t") for line in beside.stdout.decode().splitlines()]
    assert {cid: text for cid, _, text in rows} == {
        cid_of_text("Cats"): "Cats",
        cid_of_text("mammals"): "mammals",
        cid_of_text("dogs"): "dogs",
        cid_of_text("animals"): "",
    }
    # --texts names another file; --json rows carry the text (null without one).
    other = _particles(tmp_path / "other.tsv", ["animals"])
    summary = json.loads(
        _cli("focus", "compute", graph, "--top", 4, "--texts", other, "--json").stdout
    )
    texts = {cid: text for cid, _, text in summary["top"]}
    assert texts[cid_of_text("animals")] == "animals" and texts[cid_of_text("Cats")] is None
    missing = _cli("focus", "compute", graph, "--texts", tmp_path / "absent.tsv")
    assert missing.returncode == 2
    assert missing.stderr.decode().strip().endswith("[bad_input_file]")


def test_search_and_infer_show_the_texts_a_link_carried(env, capsys):
    linked = run_cli(capsys, "tx", "link", "Search-Cats", "search-mammals", "--wait", "--json")
    assert linked.code == 0, linked.err
    assert linked.json()["texts"] == {"carried": 2}
    cats = cid_of_text("Search-Cats")
    for query, match in (("search-cats", "exact"), ("SEARCH-C", "prefix"), ("ch-ca", "substring")):
        found = run_cli(capsys, "query", "search", query, "--json")
        assert found.code == 0, found.err
        rows = [r for r in found.json()["results"] if r["cid"] == cats]
        assert rows and rows[0]["text"] == "Search-Cats" and rows[0]["match"] == match
    # A separate process, as a user's shell: the human table shows the text.
    table = _cli("query", "search", "search-cats", home=env.home)
    assert table.returncode == 0, table.stderr
    assert "Search-Cats" in table.stdout.decode()
    assert_user_error(run_cli(capsys, "query", "search", "x" * 300), "malformed")

    inferred = _cli(
        "infer", "--node", env.api, "--context", "Search-Cats", "--top", 3, "--json", home=env.home
    )
    assert inferred.returncode == 0, inferred.stderr
    doc = json.loads(inferred.stdout)
    assert doc["context"] == [{"particle": cats, "text": "Search-Cats"}]
    shown = {p["particle"]: p.get("text") for p in doc["particles"]}
    assert shown[cid_of_text("search-mammals")] == "search-mammals"


def test_datalog_text_relation_over_a_file(capsys, graph, tmp_path):
    _particles(tmp_path / "small.particles.tsv", WORDS[:3])
    program = 'heavy(P, T) :- text(P, T), focus(P, F), F > 0.1. cats(P) :- text(P, "Cats").'
    heavy = run_cli(capsys, "query", "datalog", program, "-o", "heavy", "--graph", graph, "--json")
    assert heavy.code == 0, heavy.err
    assert heavy.json()["columns"] == ["P", "T"]
    assert sorted(t for _, t in heavy.json()["rows"]) == ["Cats", "dogs", "mammals"]
    cats = run_cli(capsys, "query", "datalog", program, "-o", "cats", "--graph", graph, "--json")
    assert cats.json()["rows"] == [[cid_of_text("Cats")]]
    # --texts names the file instead; without one beside, the relation is empty.
    (tmp_path / "small.particles.tsv").unlink()
    other = _particles(tmp_path / "other.tsv", ["animals"])
    args = ("query", "datalog", "t(P, T) :- text(P, T).", "-o", "t", "--graph", graph, "--json")
    assert run_cli(capsys, *args).json()["rows"] == []
    named = run_cli(capsys, *args, "--texts", other).json()["rows"]
    assert named == [[cid_of_text("animals"), "animals"]]


def test_datalog_text_relation_over_a_node(env, capsys):
    linked = run_cli(capsys, "tx", "link", "Datalog-Cats", "datalog-mammals", "--wait", "--json")
    assert linked.code == 0, linked.err
    program = (
        'cats(P) :- text(P, "Datalog-Cats").\n'
        'kin(T) :- text(P, "Datalog-Cats"), link(P, Q), text(Q, T).'
    )
    cats = run_cli(capsys, "query", "datalog", program, "-o", "cats", "--json")
    assert cats.code == 0, cats.err
    assert cats.json()["rows"] == [[cid_of_text("Datalog-Cats")]]
    kin = run_cli(capsys, "query", "datalog", program, "-o", "kin", "--json")
    assert kin.json()["rows"] == [["datalog-mammals"]]
    refused = run_cli(capsys, "query", "datalog", program, "-o", "cats", "--texts", "x.tsv")
    assert_user_error(refused, "invalid_parameter")
