"""CUDA backend parity with the float64 reference (runs where a GPU is present).

On machines without CuPy or a GPU every test here is skipped with the reason;
bench/focus_gpu.py runs them on the device machine.
"""

import numpy as np
import pytest

from focusflow.focus import compute
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.cuda import cuda_available
from focusflow.focus.engine import FocusEngine
from focusflow.focus.result import DeferredFocusResult
from focusflow.graph import Cybergraph, Snapshot, rmat_edges
from tests.focus.reference import as_matrix, graph_matrix
from tests.helpers import random_weighted

OK, WHY = cuda_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"cuda backend unavailable: {WHY}")


@pytest.mark.parametrize("precision", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["diffusion", "tri"])
@pytest.mark.parametrize("seed", range(4))
def test_cuda_matches_reference(mode, precision, seed):
    n = 300 + 200 * seed
    src, dst, w = random_weighted(n, 6 * n, seed)
    a = as_matrix(n, src, dst, w)
    ref = compute(a, mode=mode, backend="numpy", tol=1e-12)
    res = compute(a, mode=mode, backend="cuda", precision=precision, tol=1e-9)
    assert res.converged
    assert np.abs(res.focus - ref.focus).sum() < 1e-6


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_cuda_follows_a_prior_vector(mode):
    """A non-uniform teleport vector: the finish pass reads it (a uniform one
    is passed as a value), also after a solve with the uniform prior."""
    n = 700
    src, dst, w = random_weighted(n, 6 * n, 21)
    snap = Snapshot(n, src, dst, w)  # one snapshot: both solves use one cuda operator
    prior = np.random.default_rng(3).random(n) ** 4
    compute(snap, mode=mode, backend="cuda", precision="float32", tol=1e-9)
    ref = compute(snap, mode=mode, backend="numpy", tol=1e-12, prior=prior)
    res = compute(snap, mode=mode, backend="cuda", precision="float32", tol=1e-9, prior=prior)
    uniform = compute(snap, mode=mode, backend="numpy", tol=1e-12)
    assert np.abs(res.focus - ref.focus).sum() < 1e-6
    assert np.abs(ref.focus - uniform.focus).sum() > 1e-2


def test_hub_rows_take_the_chunked_path():
    # R-MAT hubs exceed the long-row threshold, so warps share them.
    src, dst, w = rmat_edges(14, 16, seed=2)
    a = as_matrix(1 << 14, src, dst, w)
    ref = compute(a, mode="diffusion", backend="numpy", tol=1e-12)
    res = compute(a, mode="diffusion", backend="cuda", precision="float32", tol=1e-9)
    assert np.abs(res.focus - ref.focus).sum() < 1e-6


def test_poisoned_outputs_are_all_written():
    import cupy

    n = 5000
    src, dst, w = random_weighted(n, 40_000, 9)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("cuda").operator(snap, "float32")
    ref_op = get_backend("numpy").operator(snap)
    x = np.random.default_rng(0).random(n)
    x /= x.sum()
    prior = np.full(n, 1.0 / n)
    y_ref = np.empty(n)
    ref_op.diffusion(x, y_ref, 0.85, prior)
    y = cupy.full(n, cupy.nan)
    op.ylink.fill(cupy.nan)
    op.z.fill(cupy.nan)
    op.diffusion(cupy.asarray(x), y, 0.85, cupy.asarray(prior))
    got = cupy.asnumpy(y)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(cupy.asnumpy(op.z)))
    assert np.abs(got - y_ref).sum() < 1e-6
    op.setup_laplacian("normalized")
    ref_op.setup_laplacian("normalized")
    out = cupy.full(n, cupy.nan)
    op.lap_matvec(cupy.asarray(x), out)
    out_ref = np.empty(n)
    ref_op.lap_matvec(x, out_ref)
    assert np.abs(cupy.asnumpy(out) - out_ref).sum() < 1e-6


def _add_weighted_links(rng, g, names, top, m):
    """``m`` links with random weights between the first ``top`` names."""
    g.add_links(
        names[rng.integers(0, top, m)], names[rng.integers(0, top, m)], weights=rng.random(m)
    )


def _neuron_graph(rng, size, top, m, neurons, **options):
    """A graph of ``m`` links by ``neurons`` neurons between the first ``top`` of
    ``size`` particle names (the rest left for later blocks); returns it and the names."""
    g = Cybergraph(require_cids=False, **options)
    names = np.array([f"p{i}" for i in range(size)], dtype=object)
    g.add_links(
        names[rng.integers(0, top, m)],
        names[rng.integers(0, top, m)],
        [f"n{i}" for i in rng.integers(0, neurons, m)],
    )
    return g, names


def test_engine_on_cuda_follows_blocks():
    rng = np.random.default_rng(5)
    g = Cybergraph(require_cids=False)
    names = np.array([f"p{i}" for i in range(3100)], dtype=object)
    _add_weighted_links(rng, g, names, 3000, 20_000)
    engine = FocusEngine(g, mode="diffusion", backend="cuda", tol=1e-9)
    engine.compute()
    answers = []
    for block in range(5):
        # the last blocks bring particles the graph has not seen
        _add_weighted_links(rng, g, names, 3000 + 50 * max(0, block - 2), 200)
        res = engine.apply()
        assert isinstance(res, DeferredFocusResult), "focus stays on the GPU until read"
        answers.append((res, compute(g, mode="diffusion", backend="numpy", tol=1e-12).focus))
    # Read back only now: each result is its own block's focus, not the latest.
    for res, cold in answers:
        assert len(res.focus) == len(cold)
        assert np.abs(res.focus - cold).sum() < 1e-7


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_tri_on_hub_rows_matches_reference(precision):
    # Springs and heat run as pair passes over W + W^T, whose hub rows take the
    # chunked path (two columns summed per warp, atomics per chunk).
    src, dst, w = rmat_edges(13, 16, seed=4)
    a = as_matrix(1 << 13, src, dst, w)
    ref = compute(a, mode="tri", backend="numpy", tol=1e-12)
    res = compute(a, mode="tri", backend="cuda", precision=precision, tol=1e-9)
    assert res.converged
    assert np.abs(res.focus - ref.focus).sum() < 1e-6


def test_springs_heat_pass_matches_numba_into_poisoned_buffers():
    import cupy

    from focusflow.focus.spectral import SpringsState, heat_coefficients

    n = 4000
    src, dst, w = random_weighted(n, 30_000, 11)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("cuda").operator(snap, "float64")
    ref = get_backend("numba").operator(snap, "float64")
    op.setup_laplacian("normalized")
    ref.setup_laplacian("normalized")
    op._x2.fill(cupy.nan)
    op._acc2.fill(cupy.nan)
    rng = np.random.default_rng(3)
    phi = rng.random(n)
    phi /= phi.sum()
    v = rng.random(n)
    coeffs = heat_coefficients(1.0, 1e-12)
    s_ref, h_ref = ref.springs_heat(phi, 1.0, SpringsState(), 1e-10, 500, True, v, coeffs)
    state = SpringsState()
    s_gpu, h_gpu = op.springs_heat(
        cupy.asarray(phi), 1.0, state, 1e-10, 500, True, cupy.asarray(v), coeffs
    )
    assert state.iterations > 0
    assert np.abs(cupy.asnumpy(s_gpu) - s_ref).sum() < 1e-8
    assert np.abs(cupy.asnumpy(h_gpu) - h_ref).sum() < 1e-8 * np.abs(h_ref).sum()


def test_tri_engine_on_cuda_follows_blocks():
    rng = np.random.default_rng(6)
    g = Cybergraph(require_cids=False)
    # Blocks reach past the first 2000 particles: new particles join the graph.
    names = np.array([f"p{i}" for i in range(2100)], dtype=object)
    _add_weighted_links(rng, g, names, 2000, 12_000)
    engine = FocusEngine(g, mode="tri", backend="cuda", tol=1e-9)
    engine.compute()
    for _ in range(4):
        _add_weighted_links(rng, g, names, 2100, 150)
        res = engine.apply()
        cold = compute(g, mode="tri", backend="numpy", tol=1e-12)
        assert res.converged
        assert np.abs(res.focus - cold.focus).sum() < 1e-7


def test_fused_anderson_steps_match_the_numba_ones():
    import cupy

    from focusflow.focus.anderson import Anderson

    n = 5000
    src, dst, w = random_weighted(n, 30_000, 12)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("cuda").operator(snap, "float64")
    step = get_backend("numba").operator(snap, "float64")  # the map being accelerated
    prior = np.full(n, 1.0 / n)
    host = Anderson(3, n)
    dev = Anderson(3, n, cupy, op.anderson_kernels)
    x = np.random.default_rng(4).random(n)
    x /= x.sum()
    for _ in range(6):
        gx = np.empty(n)
        res = step.diffusion(x, gx, 0.85, prior)
        out_host = np.full(n, np.nan)
        out_dev = cupy.full(n, cupy.nan)
        got_host = host.step(x, gx, res, out_host)
        got_dev = cupy.asnumpy(dev.step(cupy.asarray(x), cupy.asarray(gx), res, out_dev))
        assert np.all(np.isfinite(got_dev))
        assert np.abs(got_dev - got_host).sum() < 1e-10
        x = got_host.copy()
    assert host.window.k == dev.window.k == 3 and host.restarts == dev.restarts == 0


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
def test_cuda_engine_defers_the_host_patch_and_catches_up(mode):
    """Blocks of anonymous links (some with new particles) go to the device
    as raw links (into W, and for tri into W + W^T and its degrees); a block of
    an old neuron's links patches everything pending and replaces them. Each
    block's focus equals a cold float64 solve."""
    import cupy

    rng = np.random.default_rng(8)
    g, names = _neuron_graph(rng, 2400, 2000, 15_000, 30)
    engine = FocusEngine(g, mode=mode, backend="cuda", tol=1e-9)
    engine.compute()
    for block in range(7):
        before = g.n_links
        if block == 4:
            k = 150
            g.add_links(
                names[rng.integers(0, 2000, k)], names[rng.integers(0, 2000, k)], ["n3"] * k
            )
        else:
            _add_weighted_links(rng, g, names, 2000 + 25 * block, 150)
        engine._op.ylink.fill(cupy.nan)
        res = engine.apply()
        if block == 4:
            assert engine.deferred_links == 0 and g.pending_links == 0
        else:
            assert engine.deferred_links >= g.n_links - before and g.pending_links > 0
        ref = compute(graph_matrix(g), mode=mode, backend="numpy", tol=1e-12).focus
        assert len(res.focus) == g.n_particles
        assert np.abs(res.focus - ref).sum() < 1e-7, f"block {block}"


@pytest.mark.parametrize("kind", ["normalized", "combinatorial"])
def test_laplacian_follows_patches_and_raw_links(kind):
    """The device's W + W^T takes a block's weight changes (a patch, a stake
    going to zero included) or its raw links (new particles included) without
    a rebuild; its Laplacian product then equals the reference operator's on a
    snapshot built afresh, into a poisoned output."""
    import cupy

    from focusflow.focus.backends.numpy_ref import NumpyOperator

    rng = np.random.default_rng(9)
    g, names = _neuron_graph(rng, 800, 600, 6000, 20, compact_ratio=10.0)
    snap = g.snapshot()
    op = get_backend("cuda").operator(snap, "float64")
    op.setup_laplacian(kind)
    sym = op._sym
    for block in range(4):
        k = 200
        if block % 2:  # raw links, reaching new particles
            first = g.n_links
            top = 600 + 40 * block
            g.add_links(
                names[rng.integers(0, top, k)],
                names[rng.integers(0, top, k)],
                weights=rng.random(k),
            )
            ids = np.arange(first, g.n_links)
            links = g.links()
            perm = _extended_perm(snap, g.n_particles)
            op.append_links(
                perm[links.src[ids]], perm[links.dst[ids]], g.link_weight(ids), g.n_particles
            )
        else:  # a patch: links of known neurons, one neuron's stake to zero
            g.add_links(
                names[rng.integers(0, 600, k)],
                names[rng.integers(0, 600, k)],
                [f"n{i}" for i in rng.integers(0, 20, k)],
            )
            g.set_stakes([g.neurons.id_of(f"n{block}")], [0.0])
            patched, info = g.refresh(old_rows=False)
            assert patched is snap and info is not None
            op.refresh(info)
        op.setup_laplacian(kind)
        assert op._sym is sym, "updated in place, not rebuilt"
        n = g.n_particles
        links = g.links()
        fresh = Snapshot(n, links.src, links.dst, g.link_weight(np.arange(g.n_links)))
        ref = NumpyOperator(fresh)
        ref.setup_laplacian(kind)
        x = rng.random(n)
        want = np.empty(n)
        ref.lap_matvec(fresh.to_internal_order(x), want)
        perm = _extended_perm(snap, n)
        x_dev = np.empty(n)
        x_dev[perm] = x
        out = cupy.full(n, cupy.nan)
        op.lap_matvec(cupy.asarray(x_dev), out)
        got = cupy.asnumpy(out)[perm]
        assert np.allclose(got, fresh.to_particle_order(want), rtol=1e-9, atol=1e-12)


def _extended_perm(snap, n):
    """Internal id of each particle: the snapshot's order, later particles their own."""
    return np.concatenate([snap.perm, np.arange(len(snap.perm), n)])
