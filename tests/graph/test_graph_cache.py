"""The graph cache: a hit is the graph a parse gives, and anything else is a miss.

Every test lowers ``MIN_SOURCE_BYTES`` so small files are cached, and counts
the parses by wrapping the readers: a hit must not parse.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from focusflow.graph import graph_cache, importers
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.graph_cache import MAGIC, SUFFIX
from focusflow.graph.importers import read_graph


@pytest.fixture(autouse=True)
def small_files_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_cache, "MIN_SOURCE_BYTES", 0)
    monkeypatch.delenv(graph_cache.ENV, raising=False)
    monkeypatch.delenv(graph_cache.ENV_DIR, raising=False)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the readers called (a hit calls none)."""
    calls: list[str] = []
    for name in ("read_bostrom", "read_edge_list"):
        real = getattr(importers, name)

        def counted(*args: object, _real=real, _name=name, **kw: object) -> Cybergraph:
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(importers, name, counted)
    return calls


def assert_same_graph(a: Cybergraph, b: Cybergraph) -> None:
    """Every column, table, count and log batch of two graphs equal, dtypes too."""
    assert a.particles.keys() == b.particles.keys()
    assert a.neurons.keys() == b.neurons.keys()
    for name in ("_src", "_dst", "_neuron", "_weight", "_stake", "_neudeg"):
        x, y = getattr(a, name).values, getattr(b, name).values
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("require_cids", "default_stake", "dropped_self_links", "skipped_invalid"):
        assert getattr(a, name) == getattr(b, name), name
    assert a._dirty_neurons == b._dirty_neurons
    ea, eb = a.log.since(0), b.log.since(0)
    assert [(e.seq, type(e.batch)) for e in ea] == [(e.seq, type(e.batch)) for e in eb]
    for x, y in zip(ea, eb, strict=True):
        for field in vars(x.batch):
            u, v = getattr(x.batch, field), getattr(y.batch, field)
            assert u.dtype == v.dtype, field
            np.testing.assert_array_equal(u, v, err_msg=field)
    assert a._snapshot is None and b._snapshot is None


def bostrom_file(path: Path, rows: int = 400, seed: int = 1) -> Path:
    """A bostrom CSV with repeated links, a self-link and one particle that is not a CID."""
    from focusflow.core.cid import cid_of_text

    rng = np.random.default_rng(seed)
    cids = [cid_of_text(f"p{k}") for k in range(120)]
    lines = ["neuron,particle_from,particle_to,height,timestamp"]
    for i in range(rows):
        s, d = rng.integers(0, len(cids), 2)
        lines.append(f"n{rng.integers(0, 9)},{cids[s]},{cids[d]},{i},")
    lines.append(f"n1,{cids[3]},{cids[3]},0,")
    lines.append(f"n2,{cids[4]},not-a-cid,0,")
    lines += lines[1:20]  # the same neuron's same links again
    path.write_text("\n".join(lines) + "\n")
    return path


def edge_file(path: Path, weighted: bool = True) -> Path:
    rng = np.random.default_rng(5)
    lines = []
    for _ in range(500):
        s, d = rng.integers(0, 60, 2)
        lines.append(f"v{s}\tv{d}" + (f"\t{rng.random():.6f}" if weighted else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def cache_of(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


# --- hits -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["bostrom", "bostrom+stakes", "edges", "edges-unweighted"])
def test_a_hit_is_the_parsed_graph(tmp_path: Path, parses: list[str], kind: str) -> None:
    stakes = None
    if kind.startswith("bostrom"):
        src = bostrom_file(tmp_path / "links.csv")
        if kind.endswith("stakes"):
            stakes = tmp_path / "stakes.csv"
            stakes.write_text("neuron,stake\nn3,5.5\nn1,0\nnew,2\nn3,7\n")
    else:
        src = edge_file(tmp_path / "edges.tsv", weighted=kind == "edges")
    fresh = read_graph(src, stakes=stakes, skip_invalid=True, cache=False)
    assert not cache_of(src).exists()
    first = read_graph(src, stakes=stakes, skip_invalid=True)
    assert cache_of(src).exists()
    second = read_graph(src, stakes=stakes, skip_invalid=True)
    assert len(parses) == 2  # the uncached read and the first; the second is a hit
    assert_same_graph(fresh, first)
    assert_same_graph(fresh, second)
    if kind.startswith("bostrom"):
        assert second.skipped_invalid == 1 and second.dropped_self_links >= 1
    if kind.endswith("stakes"):
        assert second.stakes[second.neurons.id_of("n3")] == 7.0


def test_the_shared_sample_round_trips(shared_sample_path: Path, tmp_path: Path) -> None:
    src = tmp_path / shared_sample_path.name
    shutil.copyfile(shared_sample_path, src)
    fresh = read_graph(src, skip_invalid=True, cache=False)
    read_graph(src, skip_invalid=True)
    assert_same_graph(fresh, read_graph(src, skip_invalid=True))


# --- misses -----------------------------------------------------------------------


def test_an_edited_source_is_parsed_again(tmp_path: Path, parses: list[str]) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    read_graph(src)
    stat = src.stat()
    text = src.read_text()
    edited = text.replace("v1\t", "v9\t", 1)  # the same size, another graph
    assert len(edited) == len(text) and edited != text
    src.write_text(edited)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even the mtime kept
    got = read_graph(src)
    assert parses == ["read_edge_list", "read_edge_list"]
    assert_same_graph(got, read_graph(src, cache=False))
    read_graph(src)
    assert len(parses) == 3  # the rewritten cache is used


def test_other_options_or_stakes_are_misses(tmp_path: Path, parses: list[str]) -> None:
    src = bostrom_file(tmp_path / "links.csv")
    stakes = tmp_path / "stakes.csv"
    stakes.write_text("neuron,stake\nn3,5\n")
    read_graph(src, skip_invalid=True)
    read_graph(src, stakes=stakes, skip_invalid=True)
    stakes.write_text("neuron,stake\nn3,6\n")
    got = read_graph(src, stakes=stakes, skip_invalid=True)
    assert len(parses) == 3
    assert got.stakes[got.neurons.id_of("n3")] == 6.0
    with pytest.raises(Exception, match="not-a-cid"):
        read_graph(src)  # without --skip-invalid the file's error, never the cache


def test_a_corrupt_cache_is_rebuilt(tmp_path: Path, parses: list[str]) -> None:
    src = bostrom_file(tmp_path / "links.csv")
    fresh = read_graph(src, skip_invalid=True)
    cache = cache_of(src)
    good = cache.read_bytes()
    for at in (len(good) // 2, len(good) - 1, 20):  # a column, the checksum, the header
        broken = bytearray(good)
        broken[at] ^= 0x40
        cache.write_bytes(bytes(broken))
        assert_same_graph(fresh, read_graph(src, skip_invalid=True))
        assert cache.read_bytes() == good  # written again
    cache.write_bytes(good[: len(good) // 3])  # truncated
    assert_same_graph(fresh, read_graph(src, skip_invalid=True))
    assert len(parses) == 5
    assert_same_graph(fresh, read_graph(src, skip_invalid=True))
    assert len(parses) == 5


def test_an_unwritable_directory_only_costs_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv(graph_cache.ENV_DIR, str(blocker))  # a file where a directory should be
    with caplog.at_level(logging.DEBUG, logger="focusflow.graph.cache"):
        got = read_graph(src)
    assert_same_graph(got, read_graph(src, cache=False))
    assert "not written" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edges.tsv", "not-a-dir"]


def test_the_cache_directory_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    where = tmp_path / "caches" / "graphs"  # made when first written to
    monkeypatch.setenv(graph_cache.ENV_DIR, str(where))
    read_graph(src)
    (cached,) = where.iterdir()
    assert cached.name.startswith("edges.tsv.") and cached.name.endswith(SUFFIX)
    assert not cache_of(src).exists()


@pytest.mark.parametrize("value", ["0", "off", "false", "NO"])
def test_turned_off_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str], value: str
) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    monkeypatch.setenv(graph_cache.ENV, value)
    read_graph(src)
    read_graph(src)
    assert len(parses) == 2 and not cache_of(src).exists()


def test_small_sources_are_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(graph_cache, "MIN_SOURCE_BYTES", 1 << 20)
    src = edge_file(tmp_path / "edges.tsv")
    read_graph(src)
    assert not cache_of(src).exists()


def test_concurrent_writers_leave_one_whole_file(tmp_path: Path) -> None:
    src = bostrom_file(tmp_path / "links.csv", rows=3000)
    fresh = read_graph(src, skip_invalid=True, cache=False)
    got: list[Cybergraph] = []
    threads = [
        threading.Thread(target=lambda: got.append(read_graph(src, skip_invalid=True)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4
    for g in got:
        assert_same_graph(fresh, g)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["links.csv", "links.csv" + SUFFIX]
    assert_same_graph(fresh, read_graph(src, skip_invalid=True))


# --- hostile files ----------------------------------------------------------------


def _forge(cache: Path, header_edit=None, body_edit=None) -> None:
    """Rewrite a cache with its header or columns changed and a valid checksum,
    as someone who knows the format would."""
    raw = cache.read_bytes()
    length = int.from_bytes(raw[8:12], "little")
    header = json.loads(raw[12 : 12 + length])
    body = bytearray(raw[12 + length : -32])
    if header_edit is not None:
        header_edit(header)
    if body_edit is not None:
        body_edit(header, body)
    text = json.dumps(header).encode()
    head = MAGIC + len(text).to_bytes(4, "little") + text
    cache.write_bytes(head + bytes(body) + hashlib.sha256(head + bytes(body)).digest())


def _section_at(header: dict, name: str) -> int:
    at = 0
    for section, dtype, n in graph_cache._sections(header["counts"]):
        if section == name:
            return at
        at += dtype.itemsize * n
    raise KeyError(name)


def _set_src(value: int):
    def edit(header: dict, body: bytearray) -> None:
        at = _section_at(header, "src")
        body[at : at + 4] = value.to_bytes(4, "little", signed=True)

    return edit


def _rename_particle(header: dict, body: bytearray) -> None:
    at = _section_at(header, "particle_text")
    body[at : at + 3] = b"zz!"  # the first key is no longer a CID


def _repeat_particle(header: dict, body: bytearray) -> None:
    at = _section_at(header, "particle_text")
    first = bytes(body[at : at + 59])
    body[at + 60 : at + 119] = first  # the second key the first's twin


@pytest.mark.parametrize(
    ("header_edit", "body_edit"),
    [
        (lambda h: h["counts"].update(links=10**15), None),  # huge: refused before reading
        (lambda h: h["counts"].update(links=h["counts"]["links"] + 1), None),  # a size mismatch
        (lambda h: h["counts"].update(particles=-1), None),
        (lambda h: h["counts"].update(particles="7"), None),
        (None, _rename_particle),
        (None, _repeat_particle),
        (None, _set_src(-3)),
        (None, _set_src(10**6)),
        (lambda h: h["counts"].update(dropped_self_links=10**12), None),
        (lambda h: h.update(source_sha256="0" * 64), None),
        (lambda h: h["options"].update(skip_invalid=False), None),
        (lambda h: h.update(focusflow="0.0.0"), None),
    ],
)
def test_forged_caches_are_refused(
    tmp_path: Path, parses: list[str], header_edit, body_edit
) -> None:
    src = bostrom_file(tmp_path / "links.csv")
    fresh = read_graph(src, skip_invalid=True)
    _forge(cache_of(src), header_edit, body_edit)
    got = read_graph(src, skip_invalid=True)
    assert len(parses) == 2  # parsed again
    assert_same_graph(fresh, got)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"FFGRAPH",
        b"NOTMAGIC" + b"\x00" * 100,
        MAGIC + (2**32 - 1).to_bytes(4, "little") + b"{}",  # a header of 4 GiB declared
        MAGIC + (10).to_bytes(4, "little") + b"not json!!" + b"\x00" * 64,
        MAGIC + (2).to_bytes(4, "little") + b"[]" + b"\x00" * 64,
    ],
)
def test_foreign_files_are_refused_with_bounded_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parses: list[str], content: bytes
) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    cache_of(src).write_bytes(content)
    asked: list[int] = []
    real = graph_cache._read_exact

    def recording(fd: int, size: int) -> bytearray:
        asked.append(size)
        return real(fd, size)

    monkeypatch.setattr(graph_cache, "_read_exact", recording)
    got = read_graph(src)
    assert parses == ["read_edge_list"]
    assert_same_graph(got, read_graph(src, cache=False))
    assert all(size <= max(len(content), 12) for size in asked)


def test_a_fifo_in_the_cache_place_does_not_block(tmp_path: Path, parses: list[str]) -> None:
    src = edge_file(tmp_path / "edges.tsv")
    os.mkfifo(cache_of(src))
    got = read_graph(src)
    assert parses == ["read_edge_list"]
    assert_same_graph(got, read_graph(src, cache=False))


def test_an_unreadable_stakes_file_is_never_a_hit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stakes file that cannot be hashed must not match the cache of a read
    without one: the read goes to the reader, whose error names the file."""
    src = bostrom_file(tmp_path / "links.csv")
    read_graph(src, skip_invalid=True)  # the cache of the read without stakes
    stakes = tmp_path / "stakes.csv"
    stakes.write_text("neuron,stake\nn3,5\n")

    monkeypatch.setattr(graph_cache, "stakes_digest", lambda path: None)  # as for EACCES
    monkeypatch.setattr(
        importers, "read_stakes", lambda path: (_ for _ in ()).throw(OSError("cannot read"))
    )
    with pytest.raises(OSError, match="cannot read"):
        read_graph(src, stakes=stakes, skip_invalid=True)
