"""The CSR snapshot against scipy, and patching against rebuilding."""

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core import InvalidParameterError
from focusflow.graph import Cybergraph, Snapshot
from focusflow.graph.column import SortedIndex
from tests.helpers import random_weighted


def _scipy_weights(n, src, dst, w):
    keep = src != dst
    return sp.csr_matrix((w[keep], (src[keep], dst[keep])), shape=(n, n))


@pytest.mark.parametrize("order", ["degree", "none"])
@pytest.mark.parametrize("seed", range(5))
def test_snapshot_matches_scipy(order, seed):
    n = 200
    src, dst, w = random_weighted(n, 1500, seed)
    snap = Snapshot(n, src, dst, w, order=order)
    ref = _scipy_weights(n, src, dst, w)
    assert abs(snap.to_scipy() - ref).max() < 1e-12
    # transpose and row sums, in internal order
    out = sp.csr_matrix((snap.out_w, snap.out_indices, snap.out_indptr), shape=(n, n))
    inn = sp.csr_matrix((snap.in_w, snap.in_indices, snap.in_indptr), shape=(n, n))
    assert abs(out.T - inn).max() == 0
    assert np.allclose(snap.out_weight, np.asarray(out.sum(axis=1)).ravel())
    for indptr, indices in ((snap.out_indptr, snap.out_indices), (snap.in_indptr, snap.in_indices)):
        for r in range(n):
            row = indices[indptr[r] : indptr[r + 1]]
            assert np.all(np.diff(row) > 0), "rows are sorted and duplicate-free"


def test_degree_order_puts_hubs_first():
    src = np.array([0, 1, 2, 3, 3, 3, 3])
    dst = np.array([3, 3, 3, 0, 1, 2, 4])
    snap = Snapshot(5, src, dst, np.ones(7))
    assert snap.perm[3] == 0
    assert np.array_equal(snap.iperm[snap.perm], np.arange(5))


def test_stake_weighting_follows_per_link_stake():
    g = Cybergraph(require_cids=False)
    # neuron a: stake 6 over 3 links; neuron b: stake 4 over 1 link; c: stake 0.
    g.add_neurons(["a", "b", "c"], [6.0, 4.0, 0.0])
    g.add_links(
        ["x", "x", "y", "x", "y", "z"],
        ["y", "z", "z", "y", "x", "z"],
        ["a", "a", "a", "b", "c", "c"],
    )
    assert g.dropped_self_links == 1  # z -> z
    w = g.snapshot().to_scipy().toarray()
    x, y, z = (g.particles.id_of(k) for k in "xyz")
    assert w[x, y] == pytest.approx(2.0 + 4.0)
    assert w[x, z] == pytest.approx(2.0)
    assert w[y, z] == pytest.approx(2.0)
    assert w[y, x] == 0.0  # zero stake weighs nothing
    assert np.all(np.isfinite(w))
    g.add_links(["x"], ["z"], weights=[1e-320])  # below MIN_WEIGHT: counts as 0
    every = g.link_weight(np.arange(g.n_links))
    assert list(every) == [2.0, 2.0, 2.0, 4.0, 0.0, 0.0]
    for first, last in ((0, 6), (2, 5), (3, 3)):
        assert np.array_equal(g.link_weight_range(first, last), every[first:last])
    for first, last in ((-1, 2), (3, 2), (0, 7)):
        with pytest.raises(IndexError):
            g.link_weight_range(first, last)
    with pytest.raises(IndexError):
        g.link_weight([6])


def test_bad_stakes_and_weights_change_nothing():
    g = Cybergraph(require_cids=False)
    g.add_links(["a"], ["b"], ["n"])
    before = g.stakes.copy()
    with pytest.raises(InvalidParameterError):
        g.set_stakes(np.array([0]), np.array([-1.0]))
    with pytest.raises(InvalidParameterError):
        g.set_stakes(np.array([0]), np.array([np.nan]))
    with pytest.raises(InvalidParameterError):
        g.add_links(["a"], ["b"], weights=[-2.0])
    assert np.array_equal(g.stakes, before)
    assert g.n_links == 1


def _random_batch(rng, g, names, new_particles):
    m = int(rng.integers(1, 40))
    pool = names + [f"new{len(names)}_{i}" for i in range(new_particles)]
    s = rng.integers(0, len(pool), m)
    d = rng.integers(0, len(pool), m)
    neurons = [f"n{i}" for i in rng.integers(0, 12, m)]
    g.add_links([pool[i] for i in s], [pool[i] for i in d], neurons)
    names.extend(pool[len(names) :])
    if rng.random() < 0.5:
        ids = rng.integers(0, g.n_neurons, 3)
        stakes = rng.random(3) * 10
        stakes[rng.random(3) < 0.3] = 0.0
        g.set_stakes(ids, stakes)


def _patched_graph(rng, m):
    """``m`` links by 12 neurons among 60 particles, in a graph that never
    compacts (every batch is a patch); returns it and the particle names."""
    g = Cybergraph(require_cids=False, compact_ratio=10.0)
    names = [f"p{i}" for i in range(60)]
    g.add_links(
        [names[i] for i in rng.integers(0, 60, m)],
        [names[i] for i in rng.integers(0, 60, m)],
        [f"n{i}" for i in rng.integers(0, 12, m)],
    )
    return g, names


@pytest.mark.parametrize("seed", range(4))
def test_patched_snapshot_equals_rebuilt(seed):
    rng = np.random.default_rng(seed)
    g, names = _patched_graph(rng, 600)
    snap = g.snapshot()
    for _ in range(25):
        # (read before the batch: snapshot() itself would take the patch)
        before = snap.ov_w.copy(), snap.out_w.copy()
        matrix_before = snap.to_scipy()
        _random_batch(rng, g, names, int(rng.integers(0, 3)))
        snap, info = g.refresh()
        assert info is not None, "small batches patch, they do not rebuild"
        # the patch record names every entry whose weight it rewrote, and every new pair
        ov_changed = np.flatnonzero(snap.ov_w[: len(before[0])] != before[0])
        assert set(ov_changed) <= set(info.overlay_entries)
        assert set(range(len(before[0]), len(snap.ov_w))) <= set(info.overlay_entries)
        assert set(np.flatnonzero(snap.out_w != before[1])) <= set(info.base_entries)
        # ...and its changes add up to the difference of the two matrices
        _assert_changes_add_up(matrix_before, info.changes, snap)
        fresh = Snapshot(g.n_particles, *_links(g))
        patched = snap.to_scipy()
        assert abs(patched - fresh.to_scipy()).max() < 1e-12
        # zero-stake entries are exactly zero, not rounding dust
        dense_p, dense_f = patched.toarray(), fresh.to_scipy().toarray()
        assert np.array_equal(dense_p == 0, dense_f == 0)
        rows = np.asarray(patched.sum(axis=1)).ravel()
        out_weight = snap.to_particle_order(snap.out_weight)
        assert np.allclose(out_weight, rows, rtol=1e-12, atol=0)
        assert np.array_equal(out_weight == 0, rows == 0), "a vanished row is exactly 0"
        _check_overlay_forms(snap)


def _assert_changes_add_up(before, changes, snap):
    """``before`` (particle order, maybe fewer particles) plus ``changes``
    (internal ids) is the snapshot's matrix now."""
    n = snap.n
    src, dst, delta = changes
    moved = sp.csr_matrix((delta, (src, dst)), shape=(n, n))
    grown = sp.csr_matrix(
        (
            before.data,
            before.indices,
            np.concatenate([before.indptr, np.full(n - before.shape[0], before.nnz)]),
        ),
        shape=(n, n),
    )
    back = snap.perm
    assert abs(grown + moved[back][:, back] - snap.to_scipy()).max() < 1e-12


def _check_overlay_forms(snap):
    """The overlay's full CSRs and its compact in-rows describe the same entries."""
    n = snap.n
    out = sp.csr_matrix((snap.ov_out_w, snap.ov_out_indices, snap.ov_out_indptr), shape=(n, n))
    inn = sp.csr_matrix((snap.ov_in_w, snap.ov_in_indices, snap.ov_in_indptr), shape=(n, n))
    assert abs(out.T - inn).max() == 0 if out.nnz else inn.nnz == 0
    rows, ptr, indices, weights = snap.overlay_in_rows()
    assert np.all(np.diff(rows) > 0)
    assert np.array_equal(np.flatnonzero(np.diff(snap.ov_in_indptr)), rows)
    assert np.array_equal(indices, snap.ov_in_indices)
    assert np.array_equal(weights, snap.ov_in_w)
    assert np.array_equal(ptr, snap.ov_in_indptr[np.concatenate([rows, [n]])])


def test_out_weight_after_a_dominant_stake_vanishes():
    """A row whose weight nearly cancels is summed again: no rounding dust left."""
    g = Cybergraph(require_cids=False, compact_ratio=10.0)
    g.add_neurons(["whale", "minnow"], [1e12, 3e-3])
    g.add_links(["p", "q"], ["q", "p"], ["minnow", "minnow"])
    g.snapshot()
    g.add_links(["p", "p", "q"], ["r", "s", "s"], ["whale", "whale", "minnow"])
    g.refresh()
    g.set_stakes(g.add_neurons(["whale"]), np.array([0.0]))
    snap, info = g.refresh()
    assert info is not None
    out_weight = snap.to_particle_order(snap.out_weight)
    weight = {k: out_weight[g.particles.id_of(k)] for k in "pqrs"}
    assert weight["p"] == pytest.approx(1e-3, rel=1e-14)
    assert weight["q"] == pytest.approx(2e-3, rel=1e-14)
    assert weight["r"] == weight["s"] == 0.0


def _links(g):
    links = g.links()
    return links.src, links.dst, g.link_weight(np.arange(g.n_links))


def test_compaction_rebuilds_when_overlay_grows():
    g = Cybergraph(require_cids=False, compact_ratio=0.1)
    g.add_links([f"a{i}" for i in range(100)], [f"b{i}" for i in range(100)])
    g.snapshot()
    epoch = g.epoch
    g.add_links([f"c{i}" for i in range(50)], [f"d{i}" for i in range(50)])
    snap, info = g.refresh()
    assert info is None and g.epoch == epoch + 1
    assert snap.overlay_nnz == 0 and snap.nnz == 150


@pytest.mark.parametrize("sizes", [[0, 0], [0, 5], [5, 0], [1000, 37, 0, 5], [37, 1000, 3, 2000]])
def test_sorted_index_keeps_held_keys_before_equal_new_ones(sizes):
    rng = np.random.default_rng(sum(sizes))
    index = SortedIndex()
    held = np.empty(0, dtype=np.int64)
    for size in sizes:
        new = np.sort(rng.integers(0, 200, size))
        index.merge(new, np.arange(len(held), len(held) + size))
        held = np.concatenate([held, new])
        order = np.argsort(held, kind="stable")
        assert np.array_equal(index.keys, held[order])
        assert np.array_equal(index.values, order)


def test_many_larger_patches_equal_a_rebuild():
    """Forty blocks of hundreds of links over a hub-heavy graph: the overlay's
    sorted indexes grow through several reallocations, pairs repeat across
    blocks, stakes move and vanish; the patched snapshot stays the rebuilt one."""
    rng = np.random.default_rng(99)
    n = 800
    hubs = rng.zipf(1.6, 40_000) % n  # skewed endpoints: long rows and repeated pairs
    g = Cybergraph(require_cids=False, compact_ratio=100.0)
    g.add_neurons([f"n{i}" for i in range(30)], rng.random(30) * 5)
    names = np.array([f"p{i}" for i in range(n + 200)], dtype=object)
    neurons = np.array([f"n{i}" for i in range(30)], dtype=object)
    g.add_links(
        names[hubs[:3000]], names[rng.integers(0, n, 3000)], neurons[rng.integers(0, 30, 3000)]
    )
    g.snapshot()
    for block in range(40):
        m = int(rng.integers(100, 600))
        top = n + 5 * block  # later blocks bring new particles
        g.add_links(
            names[
                np.concatenate(
                    [hubs[rng.integers(0, len(hubs), m // 2)], rng.integers(0, top, m - m // 2)]
                )
            ],
            names[rng.integers(0, top, m)],
            neurons[rng.integers(0, 30, m)],
        )
        if block % 3 == 0:
            ids = rng.integers(0, 30, 4)
            stakes = rng.random(4) * 5
            stakes[:2] = 0.0 if block % 2 else stakes[:2]
            g.set_stakes(ids, stakes)
        snap, info = g.refresh()
        assert info is not None
    fresh = Snapshot(g.n_particles, *_links(g))
    patched = snap.to_scipy()
    assert snap.overlay_nnz > 5000
    assert abs(patched - fresh.to_scipy()).max() < 1e-12
    assert np.array_equal(patched.toarray() == 0, fresh.to_scipy().toarray() == 0)
    rows = np.asarray(patched.sum(axis=1)).ravel()
    out_weight = snap.to_particle_order(snap.out_weight)
    assert np.allclose(out_weight, rows, rtol=1e-12, atol=0)
    assert np.array_equal(out_weight == 0, rows == 0)
    _check_overlay_forms(snap)


def test_patches_of_weighted_links_equal_a_rebuild():
    """Edge-list links (explicit weights, no neuron) only ever add to their
    entries: the patch adds the block's weights instead of summing each
    entry's links again; duplicates within and across blocks, self-links and
    zero weights included."""
    rng = np.random.default_rng(5)
    n = 300
    names = np.array([f"p{i}" for i in range(n + 60)], dtype=object)
    g = Cybergraph(require_cids=False, compact_ratio=100.0)
    g.add_links(
        names[rng.integers(0, n, 4000)], names[rng.integers(0, n, 4000)], weights=rng.random(4000)
    )
    g.snapshot()
    for block in range(30):
        m = int(rng.integers(1, 400))
        src = rng.integers(0, n + 2 * block, m)
        dst = rng.integers(0, n + 2 * block, m)
        dst[: m // 10] = src[: m // 10]  # self-links, dropped
        w = rng.random(m)
        w[rng.random(m) < 0.1] = 0.0
        g.add_links(names[src], names[dst], weights=w)
        g.add_links(names[src[:5]], names[dst[:5]], weights=w[:5])  # the same pairs again
        snap, info = g.refresh()
        assert info is not None
        fresh = Snapshot(g.n_particles, *_links(g))
        assert abs(snap.to_scipy() - fresh.to_scipy()).max() < 1e-12
        rows = np.asarray(fresh.to_scipy().sum(axis=1)).ravel()
        assert np.allclose(snap.to_particle_order(snap.out_weight), rows, rtol=1e-12, atol=0)
    _check_overlay_forms(snap)


def test_merged_patch_records_add_up_across_patches():
    """The graph keeps its last patches' records; merged, their changes add up
    to the difference of the matrices across all of them."""
    from focusflow.graph.cybergraph import KEPT_PATCHES
    from focusflow.graph.snapshot import merge_patches

    rng = np.random.default_rng(4)
    g, names = _patched_graph(rng, 400)
    snap = g.snapshot()
    start, before = snap.version, snap.to_scipy()
    for _ in range(5):
        _random_batch(rng, g, names, 1)
        g.snapshot()
    merged = g.patches_since(start)
    assert merged.version_before == start and merged.n_before == before.shape[0]
    _assert_changes_add_up(before, merged.changes, snap)
    assert g.patches_since(snap.version) is None, "nothing to merge after the last patch"
    for _ in range(KEPT_PATCHES):
        _random_batch(rng, g, names, 1)
        g.snapshot()
    assert g.patches_since(start) is None, "older records are dropped"
    records = g._patches
    with pytest.raises(ValueError):
        merge_patches([records[0], records[2]])


def test_particles_added_after_the_snapshot_keep_their_ids():
    """Vectors and ids reaching past the snapshot (particles an operator took
    before the next patch numbered them) map as that patch will map them."""
    rng = np.random.default_rng(7)
    g, names = _patched_graph(rng, 200)
    snap = g.snapshot()
    n = snap.n
    ids = np.array([0, n - 1, n, n + 3])
    assert list(snap.internal_ids(ids)) == [snap.perm[0], snap.perm[n - 1], n, n + 3]
    vec = rng.random(n + 4)
    order = snap.to_particle_order(vec)
    assert np.array_equal(order[:n], vec[:n][snap.perm]) and np.array_equal(order[n:], vec[n:])
    g.add_links([f"x{i}" for i in range(4)], names[:4], weights=np.ones(4))  # particles n .. n+3
    patched = g.snapshot()
    assert patched is snap and snap.n == n + 4
    assert list(snap.internal_ids(ids)) == list(snap.perm[ids]), "the patch numbered them so"
    assert np.array_equal(snap.to_particle_order(vec), order)


def test_overlay_keys_are_the_overlay_csrs_without_their_row_pointers():
    """``overlay_keys`` gives what the full overlay CSRs hold, in O(overlay):
    the row pointer counted from the keys' rows, the columns and weights in
    key order, for both directions, after patches that add and re-weigh."""
    from focusflow.graph.snapshot import KEY_MASK, KEY_SHIFT

    rng = np.random.default_rng(7)
    g, names = _patched_graph(rng, 300)
    snap = g.snapshot()
    for _ in range(4):
        _random_batch(rng, g, names, 1)
        snap, info = g.refresh()
        assert info is not None and snap.overlay_nnz
        for direction in ("out", "in"):
            keys, w = snap.overlay_keys(direction)
            ptr = np.searchsorted(keys >> KEY_SHIFT, np.arange(snap.n + 1), side="left")
            want = (
                (snap.ov_out_indptr, snap.ov_out_indices, snap.ov_out_w)
                if direction == "out"
                else (snap.ov_in_indptr, snap.ov_in_indices, snap.ov_in_w)
            )
            assert np.array_equal(ptr, want[0])
            assert np.array_equal((keys & KEY_MASK).astype(np.int32), want[1])
            assert w.tobytes() == np.asarray(want[2], dtype=np.float64).tobytes()
    with pytest.raises(ValueError, match="neither"):
        snap.overlay_keys("both")


def test_new_particles_are_written_past_the_end_and_copies_stay_apart():
    """A patch that adds particles writes them past the arrays' ends into
    room ``_grow`` left (no copy of five particle-sized arrays a block), and
    gives what a copy that grows would: the same values, a valid structure.
    A deep copy shares the permutations' and row pointers' buffer; the two
    growing by different amounts, and the head rewriting its row weights,
    leave each the values a snapshot grown alone holds."""
    import copy
    import pickle

    from focusflow.core.structure import Check

    rng = np.random.default_rng(3)
    g, names = _patched_graph(rng, 300)
    snap = g.snapshot()
    g.add_links(["a0"], names[:1], weights=np.ones(1))
    assert g.snapshot() is snap
    held = {name: snap._room[name] for name in ("perm", "iperm", "out_indptr", "in_indptr")}
    for i in range(1, 6):  # later particles go into the room the first growth left
        g.add_links([f"a{i}"], names[:1], weights=np.ones(1))
        g.snapshot()
    for name, buf in held.items():
        arr = getattr(snap, name)
        assert arr.base is buf and len(arr) == snap.n + (name.endswith("indptr"))
    snap.check_structure(Check())

    twin = copy.deepcopy(snap)
    assert twin.perm is snap.perm
    head_before = (snap.perm.copy(), snap.out_indptr.copy(), snap.out_weight.copy())
    twin_weight = twin.out_weight.copy()
    snap._grow(snap.n + 7)
    snap.out_weight[-7:] = 5.0
    twin._grow(twin.n + 3)
    n = len(head_before[0])
    assert np.array_equal(twin.perm, np.concatenate([head_before[0], np.arange(n, n + 3)]))
    assert np.array_equal(snap.perm, np.concatenate([head_before[0], np.arange(n, n + 7)]))
    assert np.array_equal(twin.out_indptr[: n + 1], head_before[1])
    assert np.all(twin.out_indptr[n:] == head_before[1][-1])
    assert np.array_equal(twin.out_weight, np.concatenate([twin_weight, np.zeros(3)]))
    assert np.all(snap.out_weight[-7:] == 5.0)
    snap.check_structure(Check())
    twin.check_structure(Check())

    # A pickle holds the arrays, not the room; one made before there was room loads.
    back = pickle.loads(pickle.dumps(snap))
    assert back._room == {} and np.array_equal(back.perm, snap.perm)
    back.check_structure(Check())
    old = snap.__getstate__()
    del old["_room"]
    legacy = Snapshot.__new__(Snapshot)
    legacy.__setstate__(old)
    legacy.check_structure(Check())
    # A pickle that names buffers as room (another field's array) gets none.
    hostile = snap.__getstate__()
    hostile["_room"] = {"perm": snap.out_indptr, "out_weight": snap.out_w}
    loaded = Snapshot.__new__(Snapshot)
    loaded.__setstate__(hostile)
    assert loaded._room == {}
