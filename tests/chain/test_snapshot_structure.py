"""A peer's focus state is checked structure by structure before any kernel runs.

The numba kernels index the engine's arrays without bounds checks, so a
snapshot whose focus state passes every root check (the committed vector,
the engine's last result, the particle order) but carries a crafted index,
row pointer, permutation or count would make the joining node read or write
out of range on its next block. Each test here corrupts one structure of a
real chain's focus state, leaving everything the root checks read as it was,
serves it as a self-consistent snapshot (every chunk hash recomputed, as a
lying peer would) and shows the install is refused with an error that names
the structure and field, leaving the store empty. An honest state of every
focus configuration a genesis can name passes, every array in it is covered
by a check, and a node installed from a patched snapshot goes on with the
roots of the node that wrote it.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from focusflow.chain import Msg
from focusflow.chain.snapshot import (
    SnapshotError,
    check_focus_structure,
    restore_snapshot,
)
from focusflow.node import open_chain
from focusflow.store import Store
from tests.chain import golden_chain
from tests.chain.helpers import ALICE, BOB, genesis, link, new_chain, particle, tx
from tests.chain.test_snapshot import _data, _empty, _forge, _sections, _snapshot

#: Focus configurations a genesis can name: the three of the golden chains,
#: diffusion with push (fast) and without (exact), float32 storage.
CONFIGS = {
    **{name: golden_chain._focus(focus) for name, focus in golden_chain.FOCUS.items()},
    "diffusion": {"mode": "diffusion"},
    "diffusion-exact": {"mode": "diffusion", "arithmetic": "exact-v1"},
    "float32": {"mode": "tri", "precision": "float32"},
}


def _grow(chain, blocks: int) -> None:
    """A block of 1,500 links (a fresh CSR), then small blocks patched into it
    (an overlay, late links, patch records, a stake change's dirty neuron)."""
    pairs = [[particle(f"n{i}"), particle(f"n{(i * 7 + 1) % 500}")] for i in range(1500)]
    chain.produce_block([tx(ALICE, 0, Msg("link", {"links": pairs}))])
    for i in range(1, blocks):
        chain.produce_block(
            [
                tx(ALICE, i, link((f"n{i}", f"n{i + 3}"), (f"n{i + 9}", f"x{i}"))),
                tx(BOB, i - 1, link((f"n{i}", "hub"), ("hub", f"n{i * 11}"))),
            ]
        )


def _make(tmp: Path, focus: dict):
    gen = genesis(focus=focus)
    chain = new_chain(tmp / "src", gen)
    _grow(chain, 3)
    manifest = _snapshot(chain, tmp / "snaps")
    return chain, manifest, gen


@pytest.fixture(scope="module")
def tri(tmp_path_factory):
    """The default configuration's chain with a snapshot at block 3, open."""
    tmp = tmp_path_factory.mktemp("tri")
    chain, manifest, gen = _make(tmp, CONFIGS["new"])
    yield chain, manifest, gen, tmp
    chain.close()


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A diffusion chain (fast arithmetic: the engine keeps push's state)."""
    tmp = tmp_path_factory.mktemp("push")
    chain, manifest, gen = _make(tmp, CONFIGS["diffusion"])
    yield chain, manifest, gen, tmp
    chain.close()


def _refused(setup, tmp_path: Path, corrupt: Callable[[object], None], message: str) -> None:
    """Corrupt the snapshot's focus state, serve it, and see the install refused
    with ``message`` (a regular expression), the store left empty."""
    _, manifest, gen, tmp = setup
    block, state, focus = _sections(tmp, manifest)
    lying = pickle.loads(focus)
    corrupt(lying)
    forged, path = _forge(tmp_path, manifest, [block, state, pickle.dumps(lying, protocol=5)])
    store = Store(tmp_path / "dst")
    try:
        with pytest.raises(SnapshotError, match=message) as caught:
            restore_snapshot(store, forged, path, gen)
    finally:
        store.close()
    assert str(caught.value).startswith("focus state")
    assert _empty(tmp_path / "dst")


def _set(path: str, value) -> Callable[[object], None]:
    """Set ``state.<path>`` (a dotted path, last part an attribute)."""
    *parents, name = path.split(".")

    def corrupt(state) -> None:
        obj = state
        for part in parents:
            obj = getattr(obj, part)
        setattr(obj, name, value(getattr(obj, name)) if callable(value) else value)

    return corrupt


def _at(path: str, index: int, value) -> Callable[[object], None]:
    """Write ``value`` (or ``value(array)``) at ``state.<path>[index]``, on a copy."""

    def change(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[index] = value(array) if callable(value) else value
        return array

    return _set(path, change)


def _swap_down(path: str) -> Callable[[object], None]:
    """Make a row pointer decrease once (rows with entries keep their sum)."""

    def change(ptr: np.ndarray) -> np.ndarray:
        ptr = ptr.copy()
        i = int(np.flatnonzero(np.diff(ptr) > 0)[0]) + 1
        ptr[i] = ptr[i - 1] - 1 if ptr[i - 1] > 0 else ptr[i + 1] + 1
        return ptr

    return _set(path, change)


def _swap(path: str) -> Callable[[object], None]:
    def change(array: np.ndarray) -> np.ndarray:
        array = array.copy()
        array[[0, 1]] = array[[1, 0]]
        return array

    return _set(path, change)


SNAP = "engine._snap"
N = 1503  # particles of the fixture's chain at block 3
CORRUPTIONS = {
    # the snapshot's CSRs
    "csr index out of range": (
        _at(f"{SNAP}.out_indices", 1234, 99999),
        r"_snapshot\.out_indices\[1234\] = 99999 out of range \[0, \d+\)",
    ),
    "in-link index negative": (
        _at(f"{SNAP}.in_indices", 7, -3),
        r"_snapshot\.in_indices\[7\] = -3 out of range",
    ),
    "indptr not monotone": (
        _swap_down(f"{SNAP}.in_indptr"),
        r"_snapshot\.in_indptr\[\d+\] = -?\d+ is below _snapshot\.in_indptr\[\d+\]|"
        r"_snapshot\.in_indptr\[\d+\] = -?\d+ is below",
    ),
    "indptr not ending at nnz": (
        _at(f"{SNAP}.out_indptr", -1, lambda a: a[-1] + 1),
        r"_snapshot\.out_indptr\[\d+\] = \d+, not the \d+ entries",
    ),
    "indptr not starting at 0": (
        _at(f"{SNAP}.out_indptr", 0, 1),
        r"_snapshot\.out_indptr\[0\] = 1, not 0",
    ),
    "wrong dtype": (
        _set(f"{SNAP}.out_indices", lambda a: a.astype(np.int64)),
        r"_snapshot\.out_indices has dtype <i8, not int32",
    ),
    "big-endian dtype": (
        _set(f"{SNAP}.in_indptr", lambda a: a.astype(">i8")),
        r"_snapshot\.in_indptr has dtype >i8, not int64",
    ),
    "wrong length": (
        _set(f"{SNAP}.out_w", lambda a: a[:-1].copy()),
        r"_snapshot\.out_w has length \d+, not \d+",
    ),
    "two-dimensional": (
        _set(f"{SNAP}.out_weight", lambda a: a.reshape(1, -1).copy()),
        r"_snapshot\.out_weight has 2 dimensions, not 1",
    ),
    "negative weight": (
        _at(f"{SNAP}.out_w", 3, -1.0),
        r"_snapshot\.out_w\[3\] = -1\.0 is not finite and >= 0",
    ),
    "NaN weight": (
        _at(f"{SNAP}.in_w", 5, np.nan),
        r"_snapshot\.in_w\[5\] = nan is not finite and >= 0",
    ),
    # permutations and entry maps
    "not a permutation": (
        _at(f"{SNAP}.perm", 0, lambda a: a[1]),
        r"_snapshot\.perm is not a permutation: \d+ appears 2 times",
    ),
    "inverse permutation wrong": (
        _swap(f"{SNAP}.iperm"),
        r"_snapshot\.iperm\[\d+\] = \d+ is not the inverse permutation's",
    ),
    "entry map not the transpose": (
        _swap(f"{SNAP}.in_to_out"),
        r"_snapshot\.out_to_in\[\d+\] = \d+ is not the inverse permutation's",
    ),
    "link's entry out of range": (
        _at(f"{SNAP}.link_entry", 10, 10**6),
        r"_snapshot\.link_entry\[10\] = 1000000 out of range \[-1, \d+\)",
    ),
    "entry's links out of range": (
        _at(f"{SNAP}.entry_link_ids", 0, 10**6),
        r"_snapshot\.entry_link_ids\[0\] = 1000000 out of range",
    ),
    # the overlay and the late links
    "overlay source out of range": (
        lambda s: s.engine._snap._ov_cols[0]._data.__setitem__(0, 99999),
        r"_snapshot\._ov_cols\[0\]\._data\[0\] = 99999 out of range",
    ),
    "overlay key index past its buffer": (
        _set(f"{SNAP}._ov_out._len", 10**6),
        r"_snapshot\._ov_out\._len = 1000000 out of range",
    ),
    "overlay index values unequal buffers": (
        lambda s: s.engine._snap._ov_out._bufs.__setitem__(
            0, (s.engine._snap._ov_out._bufs[0][0], np.zeros(1, dtype=np.int64))
        ),
        r"_snapshot\._ov_out\._bufs\[0\]\[1\] has length 1, not \d+",
    ),
    "late link's entry code out of range": (
        lambda s: s.engine._snap._late._data.__setitem__(0, -(10**6)),
        r"_snapshot\._late\._data\[0\] = -1000000 out of range",
    ),
    "column length past its buffer": (
        _set("graph._src._len", 10**6),
        r"graph\._src\._len = 1000000 out of range \[0, \d+\]",
    ),
    # the graph
    "particle id of a link out of range": (
        lambda s: s.graph._dst._data.__setitem__(3, N + 40),
        rf"graph\._dst\._data\[3\] = {N + 40} out of range \[0, {N}\)",
    ),
    "neuron id of a link out of range": (
        lambda s: s.graph._neuron._data.__setitem__(0, 50),
        r"graph\._neuron\._data\[0\] = 50 out of range \[-1, \d+\)",
    ),
    "negative stake": (
        lambda s: s.graph._stake._data.__setitem__(0, -5.0),
        r"graph\._stake\._data\[0\] = -5\.0 is not finite and >= 0",
    ),
    "neudeg not the links' count": (
        lambda s: s.graph._neudeg._data.__setitem__(0, 10**9),
        r"graph\._neudeg\[0\] = 1000000000, not \d+ \(its links\)",
    ),
    "neuron link index out of range": (
        _at("graph._neuron_link_order", 0, 10**7),
        r"graph\._neuron_link_order\[0\] = 10000000 out of range",
    ),
    "key table index not the list's": (
        lambda s: s.graph.particles._index.__setitem__(s.graph.particles._keys[0], 10**6),
        r"graph\.particles\._index\[b.*\] = 1000000, not its position 0",
    ),
    "delta log batch out of range": (
        lambda s: s.graph.log._entries[1].batch.src.__setitem__(0, 10**6),
        r"graph\.log\._entries\[1\]\.batch\.src\[0\] = 1000000 out of range",
    ),
    "patch record out of range": (
        lambda s: s.graph._patches[0].base_entries.__setitem__(0, 10**6),
        r"graph\._patches\[0\]\.base_entries\[0\] = 1000000 out of range",
    ),
    # the operator and its matrices
    "SELL slot index out of range": (
        _at("engine._op.sell.sidx", 5, 99999),
        r"engine\._op\.sell\.sidx\[5\] = 99999 out of range",
    ),
    "SELL group pointer inconsistent": (
        _at("engine._op.sell.glen", 0, lambda a: a[0] + 1),
        r"engine\._op\.sell\.gptr\[0\] = \d+, not \d+ \(each group's slots: glen \* C\)",
    ),
    "SELL row stored twice": (
        _at("engine._op.sell.grows", 1, lambda a: a[0]),
        r"engine\._op\.sell\.grows stores row \d+ (2|0) times, not once",
    ),
    "SELL chunk bounds not its groups'": (
        _at("engine._op.sell_bounds", 1, 10**6),
        r"engine\._op\.sell_bounds\[1\] = 1000000, not \d+",
    ),
    "overlay in-rows pointer": (
        _at("engine._op.ov_ptr", -1, 10**6),
        r"engine\._op\.ov_ptr\[\d+\] = 1000000, not the \d+ entries",
    ),
    "symmetric matrix index out of range": (
        _at("engine._op._sym.sidx", 2, N + 1),
        rf"engine\._op\._sym\.sidx\[2\] = {N + 1} out of range \[0, {N}\)",
    ),
    "buffer of the wrong length": (
        lambda s: s.engine._op._buf.__setitem__(0, np.zeros(3)),
        r"engine\._op\._buf\[0\] has length 3, not \d+",
    ),
    "operator chunk count": (
        _set("engine._op.parts", 10**6),
        r"engine\._op\.parts = 1000000 out of range \[64, 64\]",
    ),
    "springs residual and right-hand side of other lengths": (
        _set("engine._springs.rhs", lambda a: a[:10].copy()),
        r"engine\._springs\.rhs is not of the residual's length",
    ),
    "focus vector of the wrong length": (
        _set("engine._phi", lambda a: a[:-1].copy()),
        r"engine\._phi has length \d+, not \d+",
    ),
    # what the unpickler admits beyond the engine's own fields
    "an attribute the class does not set": (
        _set("engine._op.kernels", 1),
        r"engine\._op\.kernels is not an attribute this structure has",
    ),
    "another admitted class in place of a structure": (
        lambda s: setattr(s.engine._op, "sell", s.engine._op._sym),
        r"engine\._op\.sell is a ScaledSymmetric, not a SellMatrix",
    ),
    "an array that no check covers": (
        lambda s: s.engine.result.diagnostics.timings.__setitem__("x", np.zeros(3)),
        r"engine\.result\.diagnostics\.timings\['x'\] is an array that no check covers",
    ),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_a_corrupt_structure_is_refused_naming_its_field(tri, tmp_path, name):
    corrupt, message = CORRUPTIONS[name]
    _refused(tri, tmp_path, corrupt, message)


def test_push_candidates_that_in_cand_does_not_mark_are_refused(pushed, tmp_path):
    """A listed candidate that ``_in_cand`` does not mark would be appended
    again by push, past the end of the candidate list."""

    def corrupt(state) -> None:
        engine = state.engine
        engine._cand = np.arange(len(engine._cand), dtype=np.int64)
        engine._ncand = 2
        engine._in_cand = np.zeros(len(engine._in_cand), dtype=np.bool_)

    _refused(pushed, tmp_path, corrupt, r"engine\._in_cand\[0\] = False, but _cand lists it 1")


def test_push_candidate_count_past_the_list_is_refused(pushed, tmp_path):
    _refused(pushed, tmp_path, _set("engine._ncand", 10**6), r"engine\._ncand = 1000000")


def test_the_fixture_states_have_what_the_corruptions_touch(tri, pushed):
    """The corruptions above reach real structures (an overlay, patch records,
    a symmetric matrix, push's candidates), not fields a small state lacks."""
    state = pickle.loads(_sections(tri[3], tri[1])[2])
    assert state.graph.n_particles == N
    assert state.engine._snap.overlay_nnz and state.graph._patches
    assert state.engine._snap.n_links > state.engine._snap.base_links
    assert state.engine._op._sym is not None and state.engine._springs.rhs is not None
    assert state.graph._patches[0].base_entries is not None
    push = pickle.loads(_sections(pushed[3], pushed[1])[2])
    assert push.engine.uses_push and hasattr(push.engine, "_cand")


def _arrays(root: object) -> list[tuple[str, np.ndarray]]:
    """Every numpy array reachable from ``root`` by attributes, slots and
    container items, with its path (the test's own walk, independent of the
    loader's)."""
    out, seen, stack = [], set(), [("state", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or isinstance(obj, str | bytes | int | float):
            continue
        seen.add(id(obj))
        if isinstance(obj, np.ndarray):
            out.append((path, obj))
        elif isinstance(obj, dict):
            stack.extend((f"{path}[{k!r}]", v) for k, v in obj.items())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(obj))
        else:
            fields = dict(getattr(obj, "__dict__", {}))
            for klass in type(obj).__mro__:
                for slot in getattr(klass, "__slots__", ()):
                    if hasattr(obj, slot):
                        fields[slot] = getattr(obj, slot)
            stack.extend((f"{path}.{k}", v) for k, v in fields.items())
    return out


@pytest.mark.parametrize("config", list(CONFIGS))
def test_every_array_of_a_real_state_is_covered_by_a_check(tmp_path, config):
    """A real state of each configuration, before any link, after a fresh CSR
    and after patched blocks, passes; and every array in it (integer ones
    above all) is one a structure check validated."""
    chain = new_chain(tmp_path / "c", genesis(focus=CONFIGS[config]))
    states = [pickle.loads(pickle.dumps(chain.focus, protocol=5))]
    _grow(chain, 1)
    states.append(pickle.loads(pickle.dumps(chain.focus, protocol=5)))
    for i in range(1, 4):
        chain.produce_block([tx(ALICE, i, link((f"n{i}", f"n{i + 3}"), (f"y{i}", "hub")))])
    states.append(pickle.loads(pickle.dumps(chain.focus, protocol=5)))
    chain.close()
    for state in states:
        covered = check_focus_structure(state)
        arrays = _arrays(state)
        uncovered = [path for path, a in arrays if id(a) not in covered]
        assert not uncovered, uncovered
    integer = [p for p, a in _arrays(states[-1]) if a.dtype.kind in "iub"]
    assert len(integer) > 30


def test_an_honest_patched_snapshot_installs_and_goes_on_with_the_same_roots(tri, tmp_path):
    src, manifest, gen, tmp = tri
    assert manifest.height == 3
    store = Store(tmp_path / "dst")
    restore_snapshot(store, manifest, _data(tmp, manifest), gen)
    dst = open_chain(store, gen)
    for record in src.records(4):
        assert dst.apply_block(record).block.header == record.block.header
    source_height = src.height
    for i in range(3, 6):
        record = src.produce_block(
            [tx(ALICE, i, link((f"n{i * 5}", f"n{i + 40}"), (f"z{i}", "hub")))]
        ).record
        assert dst.apply_block(record).block.header.focus_root == record.block.header.focus_root
    assert dst.height == src.height == source_height + 3
    assert dst.focus.root == src.focus.root
    dst.close()


def test_error_messages_name_structure_field_and_bounds(tri, tmp_path):
    """The example of the refusal: which array, which entry, its value, the range."""
    _refused(
        tri,
        tmp_path,
        _at(f"{SNAP}.out_indices", 1234, 99999),
        re.escape("focus state: graph._snapshot.out_indices[1234] = 99999 out of range [0, ")
        + rf"{N}\)",
    )
