"""Incremental updates equal a cold solve on the final graph, batch after batch."""

import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.focus.engine import FocusEngine
from focusflow.graph import Cybergraph, Cyberlink
from tests.focus.reference import graph_matrix


def _grow(rng, g, names, batch):
    m = int(rng.integers(1, 25))
    fresh = [f"b{batch}_{i}" for i in range(int(rng.integers(0, 3)))]
    pool = names + fresh
    s = rng.integers(0, len(pool), m)
    d = rng.integers(0, len(pool), m)
    if rng.random() < 0.5:
        g.add_links(
            [pool[i] for i in s], [pool[i] for i in d], [f"n{i}" for i in rng.integers(0, 40, m)]
        )
    else:
        g.add_links([pool[i] for i in s], [pool[i] for i in d], weights=rng.random(m) * 3)
    names.extend(fresh)
    if rng.random() < 0.3:
        ids = rng.integers(0, g.n_neurons, 2)
        stakes = rng.random(2) * 4
        stakes[rng.random(2) < 0.3] = 0.0
        g.set_stakes(ids, stakes)


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_hundred_delta_batches_match_cold_solves(mode):
    rng = np.random.default_rng(42)
    g = Cybergraph(require_cids=False, compact_ratio=0.5)
    names = [f"p{i}" for i in range(150)]
    s = rng.integers(0, 150, 600)
    d = rng.integers(0, 150, 600)
    g.add_links(
        [names[i] for i in s[:300]],
        [names[i] for i in d[:300]],
        [f"n{i}" for i in rng.integers(0, 40, 300)],
    )
    g.add_links([names[i] for i in s[300:]], [names[i] for i in d[300:]], weights=rng.random(300))
    tol = 1e-9
    engine = FocusEngine(g, mode=mode, tol=tol)
    engine.compute()
    patched = rebuilt = 0
    for batch in range(100):
        epoch = g.epoch
        _grow(rng, g, names, batch)
        res = engine.apply()
        patched += g.epoch == epoch
        rebuilt += g.epoch != epoch
        cold = compute(g, mode=mode, tol=1e-13)
        assert np.abs(res.focus - cold.focus).sum() < 10 * tol, f"batch {batch}"
        assert res.focus.sum() == pytest.approx(1.0, abs=1e-12)
    assert patched > 50 and rebuilt >= 1, "both the patch and the compaction paths ran"


def test_push_path_does_local_work_for_a_small_block():
    rng = np.random.default_rng(1)
    n = 20_000
    g = Cybergraph(require_cids=False)
    names = np.array([f"p{i}" for i in range(n)], dtype=object)
    src, dst = rng.integers(0, n, 100_000), rng.integers(0, n, 100_000)
    g.add_links(names[src], names[dst], weights=rng.random(100_000))
    # A link moves focus by about 1e-4 here; with tol 1e-3 that is a local change
    # (a perturbation far above tol spreads over the whole graph before it decays,
    # and then passes over the graph are the right tool).
    engine = FocusEngine(g, mode="diffusion", backend="numba", tol=1e-3)
    assert engine.uses_push
    engine.compute()
    for _ in range(5):
        g.add_links(
            names[rng.integers(0, n, 3)], names[rng.integers(0, n, 3)], weights=rng.random(3)
        )
        res = engine.apply()
        inner = res.diagnostics.inner
        assert inner["sweeps"] == 0, "a 3-link block is settled without passes over the graph"
        assert inner["push_work"] < 100_000, "push work stays below one pass over the edges"
        cold = compute(g, mode="diffusion", tol=1e-12)
        assert np.abs(res.focus - cold.focus).sum() < 1e-3


def test_engine_notices_snapshot_refreshed_elsewhere():
    rng = np.random.default_rng(3)
    g = Cybergraph(require_cids=False)
    names = [f"p{i}" for i in range(300)]
    g.add_links(
        [names[i] for i in rng.integers(0, 300, 1500)],
        [names[i] for i in rng.integers(0, 300, 1500)],
        weights=rng.random(1500),
    )
    engine = FocusEngine(g, mode="diffusion", tol=1e-8)
    engine.compute()
    g.add_links(["p1", "p2"], ["p3", "p4"], weights=[5.0, 5.0])
    g.snapshot()  # another consumer takes the patch first
    res = engine.apply()
    cold = compute(g, mode="diffusion", tol=1e-13)
    assert np.abs(res.focus - cold.focus).sum() < 1e-7


def test_apply_accepts_cyberlinks_and_stakes():
    g = Cybergraph(require_cids=False)
    g.add_links(["a", "b"], ["b", "c"], ["n1", "n2"])
    engine = FocusEngine(g, mode="tri")
    engine.compute()
    res = engine.apply([Cyberlink("c", "a", "n3")], {"n1": 5.0})
    assert g.n_links == 3 and g.stakes[g.neurons.id_of("n1")] == 5.0
    cold = compute(g, mode="tri", tol=1e-12)
    assert np.abs(res.focus - cold.focus).sum() < 1e-5


def test_numba_products_after_patches_that_add_particles():
    """The operator keeps its row groups across patches that add particles; the
    new rows (overlay in-links only) must still be written by every product,
    also into an output buffer full of garbage."""
    from focusflow.focus.backends.numba_cpu import NumbaOperator

    rng = np.random.default_rng(5)
    g = Cybergraph(require_cids=False)
    src, dst = rng.integers(0, 400, (2, 3000))
    g.add_links([f"p{i}" for i in src], [f"p{i}" for i in dst])
    snap = g.snapshot()
    op = NumbaOperator(snap)
    for block in range(4):
        src, dst = rng.integers(0, 400 + 8 * (block + 1), (2, 60))
        g.add_links([f"p{i}" for i in src], [f"p{i}" for i in dst])
        patched, info = g.refresh()
        assert patched is snap and info is not None and patched.n > info.n_before
        op.refresh(info)
        z = rng.random(snap.n)
        out = np.full(snap.n, np.nan)
        total = op.pull(z, out, 0.5)
        expected = 0.5 * (snap.to_scipy().T @ snap.to_particle_order(z))
        assert np.allclose(snap.to_particle_order(out), expected, rtol=1e-12, atol=1e-15)
        assert total == pytest.approx(expected.sum(), rel=1e-12)


def _cold_from_links(g, tol, mode="diffusion"):
    """A cold reference built from the graph's link columns, leaving its snapshot alone."""
    return compute(graph_matrix(g), mode=mode, backend="numpy", tol=tol).focus


def _block(rng, g, names, k):
    """Block ``k``: kinds that keep every held weight (anonymous links, new
    particles, a new neuron's first links, the stake of a neuron without links)
    alternate with kinds that re-weigh held links (an old neuron links again,
    a linked neuron's stake moves)."""
    m = int(rng.integers(5, 30))
    fresh = [f"q{k}_{i}" for i in range(int(rng.integers(0, 4)))]
    names.extend(fresh)
    s, d = rng.integers(0, len(names), (2, m))
    src, dst = [names[i] for i in s], [names[i] for i in d]
    kind = k % 5
    if kind == 0:
        g.add_links(src, dst, [f"n{i}" for i in rng.integers(0, 10, m)])
    elif kind in (1, 3):
        g.add_links(src, dst, weights=rng.random(m) * 2)
        if kind == 3:
            g.add_neurons([f"idle{k}"], [3.0])
    elif kind == 2:
        g.add_links(src, dst, [f"new{k}_{i % 2}" for i in range(m)])
    else:
        g.add_links(src, dst, weights=rng.random(m))
        g.set_stakes([g.neurons.id_of(f"new{k - 2}_0")], [rng.random() * 4])
    return kind


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_blocks_with_final_weights_skip_the_host_patch(mode):
    """On an operator that takes raw links (here the reference one, as on the
    GPU), blocks whose links keep every held weight reach focus without the
    host patch; a block that re-weighs held links patches everything pending
    at once. Every answer equals a cold solve, and so does the host snapshot
    when it finally catches up."""
    rng = np.random.default_rng(17)
    g = Cybergraph(require_cids=False, compact_ratio=2.0)
    names = [f"p{i}" for i in range(120)]
    s, d = rng.integers(0, 120, (2, 500))
    g.add_links([names[i] for i in s], [names[i] for i in d], [f"n{i % 10}" for i in range(500)])
    tol = 1e-10
    engine = FocusEngine(g, mode=mode, backend="numpy", tol=tol)
    engine.compute()
    deferred = patched = 0
    for k in range(40):
        before = g.n_links
        kind = _block(rng, g, names, k)
        res = engine.apply()
        if kind in (1, 2, 3):
            assert engine.deferred_links >= g.n_links - before > 0, f"block {k} deferred"
            assert g.pending_links == engine.deferred_links, "the host snapshot waits"
            steps = {"links", "links_check", "links_weights", "links_ids", "append"}
            assert steps <= set(res.diagnostics.timings), "a deferred block reports its steps"
            deferred += 1
        else:
            assert engine.deferred_links == 0 and g.pending_links == 0, f"block {k} patched"
            patched += 1
        assert len(res.focus) == g.n_particles
        err = np.abs(res.focus - _cold_from_links(g, 1e-13, mode)).sum()
        assert err < 10 * tol, f"block {k}: L1 {err:.2e}"
    assert deferred == 24 and patched == 16
    # The host snapshot catches up when someone asks for it, and equals the graph.
    g.add_links(["p1", "p2", "x"], ["p3", "p4", "p5"], weights=[4.0, 4.0, 1.0])
    engine.apply()
    assert g.pending_links > 0
    snap = g.snapshot()
    assert abs(snap.to_scipy() - graph_matrix(g)).max() < 1e-12
    # ...and the engine goes on from a snapshot patched behind its back.
    g.add_links(["p5"], ["p6"], ["n3"])
    res = engine.apply()
    assert engine.deferred_links == 0
    assert np.abs(res.focus - _cold_from_links(g, 1e-13, mode)).sum() < 10 * tol


def test_a_neuron_linking_again_reweighs_its_deferred_links():
    """A neuron's first links are deferred with weight stake/neudeg; when it
    links again its neudeg moves, so the block must patch (not append), or the
    held links would keep their old weight."""
    g = Cybergraph(require_cids=False, compact_ratio=10.0)
    g.add_links(["a", "b", "c"], ["b", "c", "a"], ["n", "n", "n"])
    engine = FocusEngine(g, mode="diffusion", backend="numpy", tol=1e-12)
    engine.compute()
    g.add_links(["a", "a"], ["c", "d"], ["m", "m"])
    engine.apply()
    assert engine.deferred_links == 2
    g.add_links(["d"], ["b"], ["m"])
    res = engine.apply()
    assert engine.deferred_links == 0
    assert np.abs(res.focus - _cold_from_links(g, 1e-14)).sum() < 1e-10


def test_engine_takes_the_patches_it_missed_from_the_graph():
    """Another reader refreshes the snapshot between blocks (the engine's
    record of those patches would be lost): the engine takes the graph's kept
    records instead of re-reading everything, and still equals a cold solve."""
    rng = np.random.default_rng(21)
    g = Cybergraph(require_cids=False, compact_ratio=10.0)
    names = [f"p{i}" for i in range(200)]
    s, d = rng.integers(0, 200, (2, 1500))
    g.add_links([names[i] for i in s], [names[i] for i in d], [f"n{i % 15}" for i in range(1500)])
    engine = FocusEngine(g, mode="tri", backend="numba", tol=1e-10)
    engine.compute()
    sell = engine._op.sell
    for k in range(6):
        for _ in range(k % 3):  # zero, one or two patches taken by someone else
            s, d = rng.integers(0, 210, (2, 20))
            g.add_links([f"p{i}" for i in s], [f"p{i}" for i in d], [f"n{i}" for i in s % 15])
            g.snapshot()
        s, d = rng.integers(0, 200, (2, 20))
        g.add_links([names[i] for i in s], [names[i] for i in d], [f"n{i}" for i in d % 15])
        res = engine.apply()
        assert engine._op.sell is sell, f"block {k}: no full re-read"
        err = np.abs(res.focus - _cold_from_links(g, 1e-13, "tri")).sum()
        assert err < 1e-8, f"block {k}: L1 {err:.2e}"


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_deferred_blocks_through_compaction(mode):
    """Deferred blocks bring new particles until the snapshot must be rebuilt;
    the rebuild takes the operator's vector, longer than the old snapshot
    (particles it never numbered), into the new layout, and every answer
    equals a cold solve."""
    rng = np.random.default_rng(33)
    g = Cybergraph(require_cids=False, compact_ratio=0.3)
    s, d = rng.integers(0, 100, (2, 400))
    g.add_links([f"p{i}" for i in s], [f"p{i}" for i in d], weights=rng.random(400))
    engine = FocusEngine(g, mode=mode, backend="numpy", tol=1e-10)
    engine.compute()
    rebuilt_after_deferred = 0
    top = 100
    for k in range(12):
        top += 6
        s, d = rng.integers(0, top, (2, 30))
        epoch, deferred = g.epoch, engine.deferred_links
        g.add_links([f"p{i}" for i in s], [f"p{i}" for i in d], weights=rng.random(30))
        res = engine.apply()
        if g.epoch != epoch and deferred:
            rebuilt_after_deferred += 1
            assert engine.deferred_links == 0 and g.pending_links == 0
        err = np.abs(res.focus - _cold_from_links(g, 1e-13, mode)).sum()
        assert err < 1e-9, f"block {k}: L1 {err:.2e}"
    assert rebuilt_after_deferred >= 1
