"""The Arrow reader reads every regular file exactly as the general pandas reader
does (same keys in the same order, same links, same weights), and hands every
irregular one back to it instead of guessing."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.graph import arrow_csv, plain_csv, read_bostrom
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import (
    BOSTROM_COLUMNS,
    _bostrom_columns_pandas,
    _edge_separator,
    _first_data_line,
    _read_edge_list_pandas,
    _regular_delimiter,
    read_edge_list,
)


@pytest.fixture(autouse=True)
def _arrow_reads_small_files(monkeypatch):
    """These files are small: without this the plain reader would take the
    plain ones (tests/graph/test_plain_csv.py compares it with Arrow's)."""
    monkeypatch.setattr(plain_csv, "MAX_BYTES", -1)


def _same_graph(a, b) -> None:
    assert a.particles.keys() == b.particles.keys()
    la, lb = a.links(), b.links()
    for name in ("src", "dst", "neuron", "weight"):
        np.testing.assert_array_equal(getattr(la, name), getattr(lb, name), err_msg=name)
    assert a.dropped_self_links == b.dropped_self_links


def _delimiter(path):
    line = _first_data_line(path)
    return _regular_delimiter(line, _edge_separator(line))


def _both(path):
    fast = _delimiter(path)
    assert fast is not None
    arrow_csv.read_edges(path, *fast)  # regular: the fast path takes it
    sep = _edge_separator(_first_data_line(path))
    return read_edge_list(path), _read_edge_list_pandas(path, sep, None)


REGULAR = {
    "tab3": "a\tb\t2.5\nb\tc\t1\n\na\tb\t0.5\nc\ta\t0\nc\tc\t4\n",
    "comma2": "x,y\ny,z\nz,x\nx,y\n",
    "space3": "1 2 0.25\n2 3 1e-3\n3 1 7\n",
    "comments": "# header line\n#\tlooks\t1\na\tb\t1\n# mid comment\nb\ta\t2\n",
    "quoted": '"a,b",c,1\nc,"a,b",2\n',
    "unicode": "ящик\tкот\t1\nкот\t🐈\t2\n",
    "crlf": "a\tb\t1\r\nb\tc\t2\r\n",
}


@pytest.mark.parametrize("name", sorted(REGULAR))
def test_regular_files_read_the_same_by_both_readers(tmp_path, name):
    f = tmp_path / "edges.txt"
    f.write_bytes(REGULAR[name].encode())
    _same_graph(*_both(f))


def test_an_rmat_file_reads_the_same_by_both_readers(tmp_path):
    src, dst, w = rmat_edges(10, seed=3)
    f = tmp_path / "rmat.tsv"
    rows = zip(src.tolist(), dst.tolist(), w.tolist(), strict=True)
    f.write_text("".join(f"v{s}\tv{d}\t{x!r}\n" for s, d, x in rows))
    fast, slow = _both(f)
    _same_graph(fast, slow)
    assert fast.dropped_self_links > 0  # R-MAT repeats and self-loops are both exercised


def test_keys_shared_across_many_chunks(tmp_path, monkeypatch):
    """Ids come from one hashing pass over every chunk of both columns: with
    Arrow cutting the file into many blocks, keys first seen in a later block
    or only as targets keep the general reader's first-seen order."""
    monkeypatch.setattr(arrow_csv, "MIN_BLOCK_BYTES", 1 << 10)
    monkeypatch.setattr(arrow_csv, "MAX_BLOCK_BYTES", 1 << 10)
    src, dst, w = rmat_edges(9, seed=5)
    f = tmp_path / "rmat.tsv"
    rows = zip(src.tolist(), dst.tolist(), w.tolist(), strict=True)
    f.write_text("".join(f"v{s}\tw{d}\t{x!r}\n" for s, d, x in rows))
    names = ["src", "dst", "weight"]
    table = arrow_csv._read(f, names, {}, delimiter="\t", header=False, comments=False)
    assert table["src"].num_chunks > 10
    _same_graph(*_both(f))


IRREGULAR = {
    "ragged": "a\tb\t1\nc\td\n",
    "bad weight": "a\tb\theavy\n",
    "negative weight": "a\tb\t-1\n",
    "hash inside": "a#x\tb\t1\n",
    "trailing comment": "a\tb\t1 # note\n",
    "leading space": "a\t b\t1\n",
    "empty key": "a\t\t1\n",
    "dst comment": "a\t#b\t1\n",
}


@pytest.mark.parametrize("name", sorted(IRREGULAR))
def test_irregular_files_go_to_the_general_reader(tmp_path, name):
    f = tmp_path / "edges.txt"
    f.write_text(IRREGULAR[name])
    fast = _delimiter(f)
    with pytest.raises(arrow_csv.IrregularFileError):
        arrow_csv.read_edges(f, *fast)


def test_runs_of_spaces_are_not_a_delimiter_for_arrow(tmp_path):
    f = tmp_path / "edges.txt"
    f.write_text("a  b  1\n")
    assert _delimiter(f) is None


def _same_bostrom(fast, slow) -> None:
    assert fast.src.keys == slow.src.keys and fast.neuron.keys == slow.neuron.keys
    for name in ("src", "dst", "neuron"):
        np.testing.assert_array_equal(getattr(fast, name).ids, getattr(slow, name).ids)
    np.testing.assert_array_equal(fast.rows, slow.rows)


def test_bostrom_columns_read_the_same_by_both_readers(shared_sample_path, tmp_path):
    _same_bostrom(
        arrow_csv.read_bostrom_columns(shared_sample_path, BOSTROM_COLUMNS),
        _bostrom_columns_pandas(shared_sample_path),
    )
    lines = shared_sample_path.read_text().splitlines()
    f = tmp_path / "dups.csv"
    f.write_text("\n".join(lines + lines[1:40] + lines[100:101]) + "\n")  # repeated links
    fast = arrow_csv.read_bostrom_columns(f, BOSTROM_COLUMNS)
    _same_bostrom(fast, _bostrom_columns_pandas(f))
    assert len(fast.rows) == len(lines) - 2  # 1 repeat in the sample itself


def test_skipping_invalid_links_forgets_keys_seen_only_there(tmp_path, shared_sample_path):
    lines = shared_sample_path.read_text().splitlines()
    cid = lines[1].split(",")[1]
    # A new neuron whose only link is invalid, placed first: neither it nor the
    # invalid particle may be interned, and the rest keep their first-seen order.
    bad = f"bostrom1onlybad,{cid},QmNotACid,1,2022-01-01 00:00:00"
    f = tmp_path / "links.csv"
    f.write_text("\n".join([lines[0], bad, *lines[1:]]) + "\n")
    g = read_bostrom(f, skip_invalid=True)
    ref = read_bostrom(shared_sample_path, skip_invalid=True)
    assert g.skipped_invalid == 2
    assert g.particles.keys() == ref.particles.keys()
    assert g.neurons.keys() == ref.neurons.keys()
    np.testing.assert_array_equal(g.links().src, ref.links().src)


def _odd_keys_by_compute(keys) -> tuple[bool, bool]:
    """``_odd_keys`` as Arrow's compute functions state it, string by string."""
    import pyarrow.compute as pc

    def any_of(mask) -> bool:
        return bool(pc.any(mask).as_py())

    empty = len(keys) > 0 and pc.min(pc.utf8_length(keys)).as_py() == 0
    comments = any_of(pc.starts_with(keys, "#"))
    irregular = (
        any_of(pc.match_substring(pc.utf8_slice_codeunits(keys, 1), "#"))
        or any_of(pc.starts_with(keys, " "))
        or empty
    )
    return comments, irregular


@pytest.mark.parametrize("seed", range(200))
def test_key_checks_on_buffers_agree_with_arrow_compute(seed):
    """The keys' checks read UTF-8 bytes with numpy (no pyarrow.compute import):
    the same answers as Arrow's string functions, on keys with multibyte
    characters, and on a slice of an array (its buffers start before it)."""
    import random

    import pyarrow as pa

    rng = random.Random(seed)
    alphabet = ["a", "#", " ", "я", "🐈", "b", "é"]
    weights = [8, 1, 1, 2, 1, 8, 2]
    keys = [
        "".join(rng.choices(alphabet, weights, k=rng.randint(0 if rng.random() < 0.05 else 1, 4)))
        for _ in range(rng.randint(1, 12))
    ]
    array = pa.array(keys, type=pa.string())
    for part in (array, array.slice(rng.randint(0, len(keys) - 1))):
        want = _odd_keys_by_compute(part)
        assert arrow_csv._odd_keys(part) == want, part.to_pylist()
        assert arrow_csv._has_empty(part) == ("" in part.to_pylist())
