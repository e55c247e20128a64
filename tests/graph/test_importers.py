import numpy as np
import pytest

from focusflow.core import InputFileError, InvalidCIDError
from focusflow.graph import detect_format, read_bostrom, read_edge_list, read_graph


def test_bostrom_sample_loads(sample_path):
    g = read_bostrom(sample_path)
    assert g.n_neurons == 14
    assert g.n_particles == 1302
    # 1,280 lines; one neuron repeated one link, which counts once.
    assert g.n_links == 1279
    assert np.all(g.stakes == 1.0)
    assert g.neudeg.sum() == g.n_links


def test_bad_cid_in_original_sample_names_the_line(shared_sample_path):
    with pytest.raises(InvalidCIDError) as info:
        read_bostrom(shared_sample_path)
    assert ":239:" in str(info.value) and "'Q'" in str(info.value)


def test_skip_invalid_drops_only_bad_links(shared_sample_path):
    g = read_bostrom(shared_sample_path, skip_invalid=True)
    assert g.skipped_invalid == 1
    assert g.n_links == 1279
    assert "Q" not in g.particles and "m" not in g.particles


def test_stakes_file_sets_stakes_and_new_neurons(sample_path, tmp_path):
    stakes = tmp_path / "stakes.csv"
    first = read_bostrom(sample_path).neurons.key_of(0)
    stakes.write_text(f"neuron,stake\n{first},500\nbostrom1unknown,7\n")
    g = read_bostrom(sample_path, stakes)
    assert g.stakes[g.neurons.id_of(first)] == 500
    assert g.stakes[g.neurons.id_of("bostrom1unknown")] == 7
    assert g.n_neurons == 15


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("neuron,stake\nn1,-5\n", "negative stake"),
        ("neuron,stake\nn1,abc\n", "not a number"),
        ("who,amount\nn1,5\n", "neuron,stake"),
    ],
)
def test_bad_stakes_file_is_refused(sample_path, tmp_path, body, message):
    stakes = tmp_path / "stakes.csv"
    stakes.write_text(body)
    with pytest.raises(InputFileError, match=message):
        read_bostrom(sample_path, stakes)


def test_missing_file_and_missing_columns(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_graph(tmp_path / "nope.csv")
    f = tmp_path / "x.csv"
    f.write_text("neuron,particle_from\nn,Qm\n")
    with pytest.raises(InputFileError, match="missing column 'particle_to'"):
        read_bostrom(f)


@pytest.mark.parametrize("sep", ["\t", " ", ",", "  "])
def test_edge_list_separators_comments_and_weights(tmp_path, sep):
    f = tmp_path / "edges.txt"
    lines = [
        "# a comment",
        f"a{sep}b{sep}2.5",
        f"b{sep}c{sep}1",
        "",
        f"a{sep}b{sep}0.5",
        f"c{sep}a{sep}0",
    ]
    f.write_text("\n".join(lines) + "\n")
    assert detect_format(f) == "edges"
    g = read_edge_list(f)
    assert g.particles.keys() == ["a", "b", "c"]
    snap = g.snapshot()
    w = snap.to_scipy().toarray()
    assert w[0, 1] == pytest.approx(3.0)  # duplicates add up
    assert w[1, 2] == 1.0 and w[2, 0] == 0.0


def test_edge_list_without_weights_defaults_to_one(tmp_path):
    f = tmp_path / "edges.txt"
    f.write_text("x y\ny z\nz x\n")
    w = read_edge_list(f).snapshot().to_scipy().toarray()
    assert w.sum() == 3.0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("a b -1\n", "negative weight"),
        ("a b heavy\n", "not a number"),
        ("a b 1 extra\n", "2 or 3 columns"),
        ("a\n", "2 or 3 columns"),
    ],
)
def test_bad_edge_lists_are_refused(tmp_path, body, message):
    f = tmp_path / "edges.txt"
    f.write_text(body)
    with pytest.raises(InputFileError, match=message):
        read_edge_list(f)


def test_bad_cid_in_a_bostrom_file_names_its_line(sample_path, tmp_path):
    lines = sample_path.read_text().splitlines()
    lines.insert(5, "bostrom1someone,QmNotACid,Qm,1,2022-01-01 00:00:00")
    f = tmp_path / "links.csv"
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidCIDError) as info:
        read_bostrom(f)
    assert ":6:" in str(info.value) and "QmNotACid" in str(info.value)
    g = read_bostrom(f, skip_invalid=True)
    assert g.skipped_invalid == 1 and g.n_links == 1279
