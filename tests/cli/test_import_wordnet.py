"""``focusflow import wordnet``: to files that ``read_bostrom`` reads, and into a devnet.

Needs Debian's wordnet-base (``./dev test`` installs it); without it the tests
fail with the command that installs it rather than skip.
"""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.cli.import_cmd import neuron_key
from focusflow.core.cid import cid_of_text
from focusflow.graph import read_bostrom
from focusflow.graph.wordnet import RELATIONS, read_particle_texts, read_wordnet
from focusflow.testing.devnet import start_devnet
from tests.cli.helpers import assert_user_error, run_cli
from tests.graph.test_wordnet import require_wordnet


def test_out_writes_what_read_bostrom_reads_back(tmp_path, capsys):
    root = require_wordnet()
    out = tmp_path / "wordnet.csv"
    result = run_cli(capsys, "import", "wordnet", "--out", out, "--dir", root, "--json")
    assert result.code == 0, result.err
    report = result.json()
    wn = read_wordnet(root)
    assert report["particles"] == wn.n_particles == report["synsets"] + report["lemmas"]
    assert report["synsets"] == 82115 + 13767 + 18156 + 3621
    assert report["links"] == wn.n_links == sum(report["links_per_relation"].values())
    assert set(report["links_per_relation"]) == set(RELATIONS)
    assert report["particles_file"] == str(tmp_path / "wordnet.particles.tsv")

    graph = read_bostrom(out)
    assert graph.n_links == report["links"]
    assert graph.n_particles == report["particles"]
    texts = read_particle_texts(report["particles_file"])
    assert texts[cid_of_text("dog.n.01")] == "dog.n.01"
    assert len(texts) == report["particles"]


def test_limit_writes_the_first_links(tmp_path, capsys):
    require_wordnet()
    out = tmp_path / "first.csv"
    result = run_cli(capsys, "import", "wordnet", "--out", out, "--limit", 25)
    assert result.code == 0, result.err
    assert "25 links" in result.out
    assert read_bostrom(out).n_links == 25


def test_exactly_one_of_out_and_node(tmp_path, capsys):
    assert_user_error(run_cli(capsys, "import", "wordnet"), "invalid_parameter")
    both = run_cli(
        capsys, "import", "wordnet", "--out", tmp_path / "x.csv", "--node", "http://127.0.0.1:1"
    )
    assert_user_error(both, "invalid_parameter")
    assert not (tmp_path / "x.csv").exists()


def test_missing_database_says_how_to_install_it(tmp_path, capsys):
    result = run_cli(
        capsys, "import", "wordnet", "--out", tmp_path / "x.csv", "--dir", tmp_path / "none"
    )
    assert_user_error(result, "bad_input_file")
    assert "wordnet-base" in result.err


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("wordnet") / "home", timeout=240)
    yield net
    net.stop()


def test_node_loads_the_first_links_with_one_neuron_per_relation(devnet, capsys, monkeypatch):
    require_wordnet()
    monkeypatch.setenv("FOCUSFLOW_HOME", str(devnet.home))
    args = ("import", "wordnet", "--node", devnet.api, "--limit", 60, "--batch", 20, "--json")
    first = run_cli(capsys, *args)
    assert first.code == 0, first.err
    report = first.json()
    assert report["links"] == report["links_sent"] == 60 and report["failed"] == []

    wn = read_wordnet()
    rel = wn.rel[:60]
    assert report["neurons"] == len(np.unique(rel))
    chain_id = run_cli(capsys, "query", "status", "--json").json()["chain_id"]
    for r, count in zip(*np.unique(rel, return_counts=True), strict=True):
        address = neuron_key(chain_id, wn.neuron_of(int(r))).address
        account = run_cli(capsys, "query", "account", address, "--json").json()
        assert account["neudeg"] == count, RELATIONS[r]

    # The node finds a synset by hashing its name, and holds its links.
    links = run_cli(capsys, "query", "links", "entity.n.01", "--json").json()
    entity = wn.index_of("entity.n.01")
    out = wn.dst[:60][wn.src[:60] == entity]
    assert {x["cid"] for x in links["links"]} == set(wn.cids()[out].tolist())
    assert cid_of_text("physical_entity.n.01") in {x["cid"] for x in links["links"]}

    # The texts the CIDs were made from went to the node, which shows them.
    used = np.unique(np.concatenate([wn.src[:60], wn.dst[:60]]))
    assert report["texts_stored"] == len(used) and report["texts_unknown"] == 0
    shown = {x["cid"]: x["text"] for x in links["links"]}
    assert shown[cid_of_text("physical_entity.n.01")] == "physical_entity.n.01"
    particle = run_cli(capsys, "query", "particle", "entity.n.01", "--json").json()
    assert particle["text"] == "entity.n.01"

    again = run_cli(capsys, *args).json()
    assert again["links_on_chain_before"] == 60 and again["links_sent"] == 0
