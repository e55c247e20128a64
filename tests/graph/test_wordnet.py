"""WordNet 3.0 read from Debian's wordnet-base, checked against facts of the database.

The expected values were read off the data files and agree with nltk's WordNet
(``wn.synset('dog.n.01').hypernyms()`` and so on). The database is required,
not optional: ``./dev test`` installs wordnet-base, and a missing one fails
here with the command that installs it instead of skipping silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from focusflow.core.cid import cid_of_text
from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.focus import compute
from focusflow.graph import read_bostrom
from focusflow.graph.wordnet import (
    DEFAULT_DIR,
    RELATIONS,
    WordNet,
    cids_of_texts,
    particles_file_for,
    read_particle_texts,
    read_wordnet,
    write_wordnet,
)

DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def require_wordnet() -> Path:
    """The database directory, or a failure that says how to install it."""
    root = Path(DEFAULT_DIR)
    missing = [f for f in (*DATA_FILES, "index.noun") if not (root / f).is_file()]
    if missing:
        pytest.fail(
            f"WordNet 3.0 is not installed ({root}/{missing[0]} missing): "
            "apt-get install wordnet-base (./dev test does)"
        )
    return root


@pytest.fixture(scope="module")
def wn() -> WordNet:
    return read_wordnet(require_wordnet())


def out_of(wn: WordNet, text: str, relation: str) -> set[str]:
    """Texts of the particles ``text`` links to by ``relation``."""
    i = wn.index_of(text)
    pick = (wn.src == i) & (wn.rel == RELATIONS.index(relation))
    return set(wn.texts[wn.dst[pick]].tolist())


def test_hypernyms_of_dog(wn):
    assert out_of(wn, "dog.n.01", "hypernym") == {"canine.n.02", "domestic_animal.n.01"}
    assert "dog.n.01" in out_of(wn, "canine.n.02", "hyponym")
    assert out_of(wn, "dog.n.01", "member_holonym") == {"canis.n.01", "pack.n.06"}


def test_antonym_of_good(wn):
    assert out_of(wn, "good.a.01", "antonym") == {"bad.a.01"}
    assert out_of(wn, "bad.a.01", "antonym") == {"good.a.01"}


def test_lexical_pointers_join_synsets_by_pos(wn):
    """``\\`` is a pertainym for adjectives and 'derived from adjective' for adverbs."""
    assert out_of(wn, "quickly.r.01", "derived_from_adjective") == {"quick.s.01", "rapid.s.01"}
    assert out_of(wn, "national.a.01", "pertainym") == {"state.n.04"}  # its word "nation"
    assert out_of(wn, "galore.s.01", "similar_to") == {"many.a.01"}


def test_synset_counts_equal_the_data_lines(wn):
    letters = np.array([t.rsplit(".", 2)[1] for t in wn.texts[wn.is_synset].tolist()])
    got = {
        "noun": int((letters == "n").sum()),
        "verb": int((letters == "v").sum()),
        "adj": int(np.isin(letters, ["a", "s"]).sum()),
        "adv": int((letters == "r").sum()),
    }
    assert got == {"noun": 82115, "verb": 13767, "adj": 18156, "adv": 3621}
    root = require_wordnet()
    for name in DATA_FILES:
        with (root / name).open() as fh:
            lines = sum(1 for line in fh if not line.startswith("  "))
        assert lines == got[name.split(".")[1]]
    assert len(set(wn.texts.tolist())) == wn.n_particles


def test_lemmas_are_words_linked_both_ways(wn):
    assert "dog.n.01" in out_of(wn, "dog", "sense")
    assert "chase.v.01" in out_of(wn, "dog", "sense")  # the verb "to dog"
    assert out_of(wn, "dog.n.01", "lemma") == {"dog", "domestic dog", "canis familiaris"}
    assert not wn.is_synset[wn.index_of("domestic dog")]
    assert wn.glosses[wn.index_of("domestic dog")] == ""
    assert wn.glosses[wn.index_of("dog.n.01")].startswith("a member of the genus Canis")
    # Satellites are 's' and lose their syntactic marker, as nltk names them.
    assert "galore" in out_of(wn, "galore.s.01", "lemma")
    sense = RELATIONS.index("sense")
    lemma = RELATIONS.index("lemma")
    assert (wn.rel == sense).sum() == (wn.rel == lemma).sum() == 206941


def test_links_are_deduplicated_and_have_no_self_links(wn):
    key = (wn.src.astype(np.int64) << 32 | wn.dst.astype(np.int64)) * 64 + wn.rel
    assert len(np.unique(key)) == wn.n_links
    assert not (wn.src == wn.dst).any()
    assert wn.src.dtype == wn.dst.dtype == np.int32 and wn.rel.dtype == np.int16
    assert set(np.unique(wn.rel).tolist()) == set(range(len(RELATIONS)))


def test_text_to_cid_round_trip(wn):
    cids = wn.cids()
    assert cids.tolist() == [cid_of_text(t) for t in wn.texts.tolist()]
    by_cid = dict(zip(cids.tolist(), wn.texts.tolist(), strict=True))
    assert by_cid[cid_of_text("dog.n.01")] == "dog.n.01"
    assert by_cid[cid_of_text("dog")] == "dog"
    assert cids_of_texts([]).tolist() == []
    assert wn.neuron_of("hypernym") == wn.neuron_of(0) == "wordnet:hypernym"
    with pytest.raises(KeyError):
        wn.neuron_of("cousin")


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(InputFileError, match="wordnet-base") as exc:
        read_wordnet(tmp_path / "nowhere")
    assert "nowhere" in str(exc.value)
    with pytest.raises(InputFileError, match=r"data\.noun.*wordnet-base"):
        read_wordnet(tmp_path)


def test_default_directory_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_WORDNET", str(tmp_path / "elsewhere"))
    with pytest.raises(InputFileError, match="elsewhere"):
        read_wordnet()


def corrupt_copy(tmp_path: Path, name: str, old: str, new: str) -> tuple[Path, int]:
    """A copy of the database with ``old`` replaced by ``new`` on the first line
    holding it in ``name``; returns the directory and that line's number."""
    root = require_wordnet()
    copy = tmp_path / "wn"
    copy.mkdir()
    for f in root.iterdir():
        if f.is_file() and f.name != name:
            (copy / f.name).symlink_to(f)
    lines = (root / name).read_text().split("\n")
    number = next(n for n, line in enumerate(lines) if old in line)
    lines[number] = lines[number].replace(old, new, 1)
    (copy / name).write_text("\n".join(lines))
    return copy, number + 1


@pytest.mark.parametrize(
    ("old", "new", "why"),
    [
        ("00001740 03 n 01 entity", "00001740 03 n zz entity", "w_cnt"),
        ("~ 00001930 n 0000", "? 00001930 n 0000", "pointer '\\?'"),
        ("~ 00001930 n 0000", "~ 99999999 n 0000", "lacks"),
        ("~ 00001930 n 0000", "~ 00001930 n 00g0", "four hex digits"),
        ("| that which is perceived", "  that which is perceived", "gloss"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path, old, new, why):
    copy, number = corrupt_copy(tmp_path, "data.noun", old, new)
    with pytest.raises(InputFileError, match=why) as exc:
        read_wordnet(copy)
    assert f"data.noun:{number}:" in str(exc.value)


def test_malformed_index_line(tmp_path):
    copy, number = corrupt_copy(tmp_path, "index.adv", "'tween r 1", "'tween r x")
    with pytest.raises(InputFileError, match=f"index.adv:{number}:"):
        read_wordnet(copy)


def test_masked_graph_has_exactly_the_masked_links_and_focus_runs(wn):
    near = {wn.index_of(t) for t in ("dog.n.01", "canine.n.02", "domestic_animal.n.01")}
    mask = np.isin(wn.src, list(near)) & (wn.rel != RELATIONS.index("hyponym"))
    graph = wn.to_graph(mask)
    assert graph.n_links == int(mask.sum())
    cids = wn.cids()
    keys = graph.particles.keys()
    batch = graph.links()
    got = {
        (keys[s], keys[d], graph.neurons.keys()[n])
        for s, d, n in zip(
            batch.src.tolist(), batch.dst.tolist(), batch.neuron.tolist(), strict=True
        )
    }
    want = {
        (cids[s], cids[d], wn.neuron_of(int(r)))
        for s, d, r in zip(wn.src[mask], wn.dst[mask], wn.rel[mask], strict=True)
    }
    assert got == want
    assert graph.n_particles == len(np.unique(np.concatenate([wn.src[mask], wn.dst[mask]])))
    assert np.all(graph.stakes == 1.0)
    result = compute(graph)
    assert result.focus.shape == (graph.n_particles,)
    assert abs(float(result.focus.sum()) - 1.0) < 1e-6


def test_subset_renumbers_particles(wn):
    small = wn.subset(np.arange(wn.n_links) < 40)
    assert small.n_links == 40
    assert small.texts[small.src].tolist() == wn.texts[wn.src[:40]].tolist()
    assert small.texts[small.dst].tolist() == wn.texts[wn.dst[:40]].tolist()
    with pytest.raises(InvalidParameterError, match="mask"):
        wn.subset(np.ones(3, dtype=bool))


def test_written_files_read_back(tmp_path, wn):
    small = wn.subset(np.isin(wn.src, [wn.index_of("dog.n.01"), wn.index_of("dog")]))
    graph_path, particles_path = write_wordnet(small, tmp_path / "dogs.csv")
    assert particles_path == particles_file_for(graph_path) == tmp_path / "dogs.particles.tsv"
    assert graph_path.read_text().startswith("neuron,particle_from,particle_to,height,timestamp\n")
    graph = read_bostrom(graph_path)
    assert graph.n_links == small.n_links
    assert set(graph.neurons.keys()) == {small.neuron_of(int(r)) for r in np.unique(small.rel)}
    texts = read_particle_texts(particles_path)
    assert texts == dict(zip(small.cids().tolist(), small.texts.tolist(), strict=True))
    assert set(texts) == set(graph.particles.keys())
    bad = tmp_path / "bad.particles.tsv"
    bad.write_text("cid\ttext\tgloss\nonly-one-field\n")
    with pytest.raises(InputFileError, match=r"bad\.particles\.tsv:2"):
        read_particle_texts(bad)
