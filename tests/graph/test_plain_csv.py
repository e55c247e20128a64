"""The plain reader returns exactly Arrow's columns for every small file it
takes, takes the plain files it is meant for, and leaves every other file to
the readers before it, so a read gives the same graph or the same error with it
as without it."""

from __future__ import annotations

import random

import numpy as np
import pytest

from focusflow.core.cid import cid_of_text
from focusflow.core.errors import FocusflowError
from focusflow.graph import arrow_csv, plain_csv
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import (
    BOSTROM_COLUMNS,
    _edge_separator,
    _first_data_line,
    _regular_delimiter,
    read_graph,
)

_CHOSEN_FOR = plain_csv.chosen_for


@pytest.fixture(autouse=True)
def _plain_first(monkeypatch):
    """Other tests have imported pyarrow into this process, after which every
    file would go to Arrow: here a small file goes to the plain reader first."""
    monkeypatch.setattr(plain_csv, "chosen_for", lambda size: size <= plain_csv.MAX_BYTES)


def test_the_plain_reader_is_chosen_for_small_files_until_pyarrow_is_imported():
    import pyarrow.csv  # noqa: F401

    assert not _CHOSEN_FOR(100)  # the fresh process's side: tests/graph/test_lazy_imports.py


def _same_columns(a: arrow_csv.BostromColumns, b: arrow_csv.BostromColumns) -> None:
    for name in ("src", "dst", "neuron"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.keys == y.keys, name
        assert x.ids.dtype == y.ids.dtype, name
        np.testing.assert_array_equal(x.ids, y.ids, err_msg=name)
    assert a.rows.dtype == b.rows.dtype
    np.testing.assert_array_equal(a.rows, b.rows)
    (data_a, off_a), (data_b, off_b) = a.particle_text, b.particle_text
    assert off_a.dtype == off_b.dtype == np.int64
    np.testing.assert_array_equal(off_a, off_b)
    assert bytes(data_a[: off_a[-1]]) == bytes(data_b[: off_b[-1]])


def _wordnet_like(rows: int, seed: int) -> str:
    """A bostrom file as ``import wordnet --out`` writes it: CIDv1 particles, a
    neuron per relation, height 0, an empty timestamp; repeats and self-links."""
    rng = random.Random(seed)
    cids = [cid_of_text(f"word {i}") for i in range(rows // 3 + 2)]
    relations = ["wordnet:sense", "wordnet:lemma", "wordnet:hypernym", "wordnet:hyponym"]
    lines = ["neuron,particle_from,particle_to,height,timestamp"]
    for _ in range(rows):
        lines.append(f"{rng.choice(relations)},{rng.choice(cids)},{rng.choice(cids)},0,")
    return "\n".join(lines) + "\n"


def test_bostrom_sample_reads_as_arrow_reads_it(sample_path, tmp_path):
    _same_columns(
        plain_csv.read_bostrom_columns(sample_path, BOSTROM_COLUMNS),
        arrow_csv.read_bostrom_columns(sample_path, BOSTROM_COLUMNS),
    )
    lines = sample_path.read_text().splitlines()
    f = tmp_path / "dups.csv"
    f.write_text("\n".join(lines + lines[1:40] + lines[100:101]))  # repeats, no final newline
    plain = plain_csv.read_bostrom_columns(f, BOSTROM_COLUMNS)
    _same_columns(plain, arrow_csv.read_bostrom_columns(f, BOSTROM_COLUMNS))
    assert len(plain.rows) < len(lines) + 39


@pytest.mark.parametrize("seed", range(3))
def test_a_wordnet_like_file_reads_as_arrow_reads_it(tmp_path, seed):
    f = tmp_path / "wordnet.csv"
    f.write_text(_wordnet_like(3000, seed))
    plain = plain_csv.read_bostrom_columns(f, BOSTROM_COLUMNS)
    _same_columns(plain, arrow_csv.read_bostrom_columns(f, BOSTROM_COLUMNS))
    assert len(plain.rows) < 3000  # repeated links were dropped, as Arrow's reader drops them


def test_columns_in_another_order_and_extra_columns(tmp_path):
    f = tmp_path / "links.csv"
    a, b, c = (cid_of_text(w) for w in "abc")
    f.write_text(f"x,particle_to,neuron,particle_from\n1,{a},n1,{b}\n2,{c},n2,{a}\n3,{a},n1,{b}\n")
    _same_columns(
        plain_csv.read_bostrom_columns(f, BOSTROM_COLUMNS),
        arrow_csv.read_bostrom_columns(f, BOSTROM_COLUMNS),
    )


def _edges(path):
    line = _first_data_line(path)
    fast = _regular_delimiter(line, _edge_separator(line))
    assert fast is not None
    return fast


PLAIN_EDGES = {
    "tab3": "a\tb\t2.5\nb\tc\t1\na\tb\t0.5\nc\ta\t0\nc\tc\t4\n",
    "comma2": "x,y\ny,z\nz,x\nx,y\n",
    "space3": "1 2 0.25\n2 3 1e-3\n3 1 7E+2\n",
    "unicode": "ящик\tкот\t1\nкот\t🐈\t2",
    "trailing space in a key": "a \tb\t1\nb\ta \t2\n",
}


@pytest.mark.parametrize("name", sorted(PLAIN_EDGES))
def test_plain_edge_lists_read_as_arrow_reads_them(tmp_path, name):
    f = tmp_path / "edges.txt"
    f.write_bytes(PLAIN_EDGES[name].encode())
    plain = plain_csv.read_edges(f, *_edges(f))
    arrow = arrow_csv.read_edges(f, *_edges(f))
    for x, y in zip(plain[:2], arrow[:2], strict=True):
        assert x.keys == y.keys and x.ids.dtype == y.ids.dtype == np.int32
        np.testing.assert_array_equal(x.ids, y.ids)
    if arrow[2] is None:
        assert plain[2] is None
    else:
        assert plain[2] is not None and plain[2].dtype == np.float64
        assert plain[2].tobytes() == arrow[2].tobytes()  # the same doubles, bit for bit


def test_an_rmat_file_reads_as_arrow_reads_it(tmp_path):
    src, dst, w = rmat_edges(11, seed=7)
    f = tmp_path / "rmat.tsv"
    rows = zip(src.tolist(), dst.tolist(), w.tolist(), strict=True)
    f.write_text("".join(f"v{s}\tv{d}\t{x!r}\n" for s, d, x in rows))
    assert f.stat().st_size <= plain_csv.MAX_BYTES
    plain = plain_csv.read_edges(f, "\t", 3)
    arrow = arrow_csv.read_edges(f, "\t", 3)
    assert plain[0].keys == arrow[0].keys
    for x, y in zip(plain, arrow, strict=True):
        ids_x, ids_y = (x, y) if isinstance(x, np.ndarray) else (x.ids, y.ids)
        assert ids_x.dtype == ids_y.dtype and ids_x.tobytes() == ids_y.tobytes()


NOT_PLAIN_EDGES = {
    "blank line": "a\tb\t1\n\nb\tc\t2\n",
    "comment": "# header\na\tb\t1\n",
    "hash in a key": "a#x\tb\t1\n",
    "quoted": '"a,b",c,1\n',
    "crlf": "a\tb\t1\r\nb\tc\t2\r\n",
    "ragged": "a\tb\t1\nc\td\n",
    "bad weight": "a\tb\theavy\n",
    "negative weight": "a\tb\t-1\n",
    "signed weight": "a\tb\t+1\n",
    "weight nan": "a\tb\tnan\n",
    "weight inf": "a\tb\tinf\n",
    "huge weight": "a\tb\t1e999\n",
    "weight with spaces": "a\tb\t 1\n",
    "weight 1_000": "a\tb\t1_000\n",
    "weight 1.": "a\tb\t1.\n",
    "empty weight": "a\tb\t\n",
    "leading space": "a\t b\t1\n",
    "empty key": "a\t\t1\n",
    "byte-order mark": "\ufeffa\tb\t1\n",
    "four fields": "a\tb\t1\t2\n",
}


@pytest.mark.parametrize("name", sorted(NOT_PLAIN_EDGES))
def test_anything_else_is_left_to_arrow(tmp_path, name):
    f = tmp_path / "edges.txt"
    f.write_bytes(NOT_PLAIN_EDGES[name].encode())
    line = _first_data_line(f)
    fast = _regular_delimiter(line, _edge_separator(line)) or ("\t", 3)
    with pytest.raises(plain_csv.NotPlainError):
        plain_csv.read_edges(f, *fast)


NOT_PLAIN_BOSTROM = {
    "no header": "",
    "a column missing": "neuron,particle_from,height\nn,a,1\n",
    "a column twice": "neuron,particle_from,particle_to,neuron\nn,a,b,m\n",
    "header with spaces": "neuron, particle_from, particle_to\nn,a,b\n",
    "ragged": "neuron,particle_from,particle_to\nn,a,b\nn,a\n",
    "blank line": "neuron,particle_from,particle_to\nn,a,b\n\nn,b,a\n",
    "empty field": "neuron,particle_from,particle_to\nn,,b\n",
    "quoted": 'neuron,particle_from,particle_to\n"n",a,b\n',
    "not utf-8": b"neuron,particle_from,particle_to\nn,\xff,b\n",
}


@pytest.mark.parametrize("name", sorted(NOT_PLAIN_BOSTROM))
def test_a_bostrom_file_it_is_unsure_of_is_left_to_arrow(tmp_path, name):
    body = NOT_PLAIN_BOSTROM[name]
    f = tmp_path / "links.csv"
    f.write_bytes(body if isinstance(body, bytes) else body.encode())
    with pytest.raises(plain_csv.NotPlainError):
        plain_csv.read_bostrom_columns(f, BOSTROM_COLUMNS)


def test_a_file_past_the_limit_is_left_to_arrow(tmp_path, monkeypatch):
    f = tmp_path / "edges.txt"
    f.write_text("a\tb\t1\n" * 100)
    plain_csv.read_edges(f, "\t", 3)
    monkeypatch.setattr(plain_csv, "MAX_BYTES", 599)
    with pytest.raises(plain_csv.NotPlainError):
        plain_csv.read_edges(f, "\t", 3)


def _outcome(path, fmt: str) -> tuple[object, ...]:
    """A read's whole result: the graph's arrays, or the error's type and text."""
    try:
        g = read_graph(path, fmt, skip_invalid=True, cache=False)
    except FocusflowError as exc:
        return (type(exc).__name__, exc.code, str(exc))
    links = g.links()
    return (
        g.particles.keys(),
        g.neurons.keys(),
        g.skipped_invalid,
        g.dropped_self_links,
        *(getattr(links, n).tobytes() for n in ("src", "dst", "neuron", "weight")),
    )


def _with_and_without(path, fmt: str, monkeypatch) -> None:
    with_plain = _outcome(path, fmt)
    with monkeypatch.context() as patch:
        patch.setattr(plain_csv, "MAX_BYTES", -1)
        assert _outcome(path, fmt) == with_plain


@pytest.mark.parametrize(
    "body", [*PLAIN_EDGES.values(), *(b for b in NOT_PLAIN_EDGES.values())], ids=repr
)
def test_edge_lists_read_the_same_with_and_without_it(tmp_path, monkeypatch, body):
    f = tmp_path / "edges.txt"
    f.write_bytes(body.encode())
    _with_and_without(f, "edges", monkeypatch)


@pytest.mark.parametrize("name", sorted(NOT_PLAIN_BOSTROM))
def test_bostrom_files_read_the_same_with_and_without_it(tmp_path, monkeypatch, name):
    body = NOT_PLAIN_BOSTROM[name]
    f = tmp_path / "links.csv"
    f.write_bytes(body if isinstance(body, bytes) else body.encode())
    _with_and_without(f, "bostrom", monkeypatch)


def test_the_sample_and_bad_cids_read_the_same_with_and_without_it(
    sample_path, tmp_path, monkeypatch
):
    _with_and_without(sample_path, "bostrom", monkeypatch)
    lines = sample_path.read_text().splitlines()
    f = tmp_path / "bad.csv"
    f.write_text("\n".join([*lines[:5], "bostrom1x,QmNotACid,QmAlsoNot,1,2", *lines[5:]]) + "\n")
    _with_and_without(f, "bostrom", monkeypatch)  # skipped under --skip-invalid
    with pytest.raises(FocusflowError, match=r"bad\.csv:6: invalid CID"):
        read_graph(f, "bostrom", cache=False)


_ALPHABET = ["a", "b", "Qm", "1", "0.5", "1e3", "-", "#", " ", "\t", ",", '"', "\n", "\r", ""]


@pytest.mark.parametrize("seed", range(150))
def test_random_small_files_read_the_same_with_and_without_it(tmp_path, monkeypatch, seed):
    """Fuzz: files made of the tokens that steer the readers (delimiters,
    comments, quotes, signs, spaces, line ends) read to the same graph or the
    same error whichever reader decides them."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(1, 6)):
        n = rng.choice([2, 3, 3, 3])
        sep = rng.choice(["\t", ",", " "])
        fields = ["".join(rng.choice(_ALPHABET[:6]) for _ in range(rng.randint(1, 2)))]
        fields += ["".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 2)))]
        if n == 3:
            fields.append(rng.choice(["1", "0.25", "2e-3", "-1", "x", "", "1 ", "1.", "+2"]))
        if rng.random() < 0.7:  # mostly clean lines, so the plain reader takes some files
            fields = [f.strip(' \t,\n\r#"') or "k" for f in fields]
            fields[-1] = fields[-1] if n == 2 else rng.choice(["1", "0.25", "2e-3"])
        lines.append(sep.join(fields))
    f = tmp_path / "edges.txt"
    f.write_text("\n".join(lines) + rng.choice(["\n", ""]))
    _with_and_without(f, "edges", monkeypatch)
