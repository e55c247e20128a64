"""Tri mode on the wgpu device (springs by CG, heat by Chebyshev, in WGSL) against
the float64 numpy reference.

Runs on whatever adapter wgpu finds (Mesa's llvmpipe in CI), so graphs are
small. The host-side products of the operator (``pull``, ``diffusion``,
``lap_matvec``) are made to fail: every solve here must run through
``WgpuOperator.solve_tri``, so these tests check the tri kernels themselves.
"""

import numpy as np
import pytest

from focusflow.focus import compute, make_params
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.webgpu import WgpuOperator, wgpu_available
from focusflow.focus.engine import FocusEngine
from focusflow.focus.solver import prior_vector, solve
from focusflow.focus.spectral import HeatState, SpringsState
from focusflow.graph import Cybergraph, Snapshot, rmat_edges
from tests.focus.reference import dense_weights
from tests.helpers import random_weighted

OK, WHY = wgpu_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"wgpu backend unavailable: {WHY}")

#: What float32 iterates can be asked for (their L1 change stalls near 5e-8).
TOL = 1e-7


@pytest.fixture(autouse=True)
def _no_host_products(monkeypatch):
    """Tri must run on the device: a host product would hide kernel bugs."""

    def fail(*args, **kwargs):
        raise AssertionError("tri ran a host-side product, not solve_tri")

    for name in ("diffusion", "pull", "lap_matvec"):
        monkeypatch.setattr(WgpuOperator, name, fail)


def _poison(op: WgpuOperator) -> None:
    """NaN in every vector and scalar buffer a tri solve writes before reading
    (huge counts in the indirect dispatch arguments)."""
    queue = op.device.queue
    scratch = op.scratch_buffers()
    assert "tri_hacc" in scratch and "tri_dims" in scratch
    for name, buf in scratch.items():
        if name not in ("prior", "tri_dims"):
            queue.write_buffer(buf, 0, np.full(buf.size // 4, np.nan, dtype=np.float32))
    # the indirect product counts CG writes (the full counts before them are input)
    queue.write_buffer(scratch["tri_dims"], 36, np.full(9, 2**31, dtype=np.uint32))


def _device_solve(snap: Snapshot, **overrides):
    """A tri solve on a fresh operator with poisoned buffers; (focus, diagnostics)."""
    op = get_backend("wgpu").operator(snap)
    params = make_params(mode="tri", tol=TOL, **overrides)
    op.setup_laplacian(params.laplacian)
    _poison(op)
    prior = prior_vector(snap, params.prior)
    phi, diag = solve(op, params, prior, springs_state=SpringsState(), heat_state=HeatState())
    assert np.all(np.isfinite(phi))
    return snap.to_particle_order(phi), diag, op


@pytest.mark.parametrize("seed", range(3))
def test_parity_random_graphs(seed):
    """Dangling and isolated nodes, duplicate edges, zero weights, self-loops."""
    n = 150 + 100 * seed
    src, dst, w = random_weighted(n, 5 * n, seed, zero_frac=0.2, dup_frac=0.2)
    assert (dense_weights(n, src, dst, w).sum(axis=1) == 0).sum() > 0, "dangling nodes"
    snap = Snapshot(n, src, dst, w)
    ref = compute(snap, mode="tri", backend="numpy", tol=1e-12)
    focus, diag, _ = _device_solve(snap)
    assert diag.converged and diag.residual < TOL
    assert diag.inner["cg_iterations"] > 0 and diag.inner["heat_terms"] > 0
    assert abs(focus.sum() - 1.0) < 1e-12
    assert np.abs(focus - ref.focus).sum() < 1e-6


@pytest.mark.parametrize(
    "overrides",
    [
        {"anderson": 0},
        {"prior": "stake", "alpha": 0.7},
        {"laplacian": "combinatorial"},
        {"weights": (0.6, 0.4, 0.0)},
        {"weights": (0.6, 0.0, 0.4)},
        {"anderson": 5, "mu": 0.3, "tau": 2.0},
    ],
    ids=["plain", "stake", "combinatorial", "no-heat", "no-springs", "aa5"],
)
def test_parity_parameters(overrides):
    n = 250
    src, dst, w = random_weighted(n, 5 * n, 7, zero_frac=0.2, dup_frac=0.2)
    snap = Snapshot(n, src, dst, w)
    ref = compute(snap, mode="tri", backend="numpy", tol=1e-12, **overrides)
    focus, diag, _ = _device_solve(snap, **overrides)
    assert diag.converged
    assert np.abs(focus - ref.focus).sum() < 1e-6


def test_hub_rows_of_the_symmetric_matrix():
    """Rows of W + W^T over 128 entries take the chunked long-row path."""
    src, dst, w = rmat_edges(10, 8, seed=3)
    snap = Snapshot(1 << 10, src, dst, w)
    ref = compute(snap, mode="tri", backend="numpy", tol=1e-12)
    focus, diag, op = _device_solve(snap)
    assert op.diagnostics().symmetric_long_rows > 0, "the graph exercises the chunked long-row path"
    assert diag.converged
    assert np.abs(focus - ref.focus).sum() < 1e-6


def test_same_iterations_as_the_host_solver():
    """Same stop rule and inner-solve schedule: the outer iteration counts agree."""
    n = 300
    src, dst, w = random_weighted(n, 6 * n, 2)
    snap = Snapshot(n, src, dst, w)
    host = compute(snap, mode="tri", backend="numpy", tol=TOL)
    _, diag, _ = _device_solve(snap)
    assert abs(diag.iterations - host.diagnostics.iterations) <= 2


def test_engine_deltas_patch_or_rebuild_the_device_matrix():
    """Delta batches on a wgpu tri engine each match a cold numpy solve; repeated
    pairs patch the device matrix's values (hub rows included), new pairs rebuild it."""
    rng = np.random.default_rng(4)
    n = 300
    names = np.array([f"p{i}" for i in range(n)], dtype=object)
    src = np.concatenate([rng.integers(0, n, 1200), np.zeros(200, dtype=np.int64)])
    dst = np.concatenate([rng.integers(0, n, 1200), rng.integers(1, n, 200)])
    g = Cybergraph(require_cids=False)
    g.add_links(names[src], names[dst], [f"n{i}" for i in rng.integers(0, 30, len(src))])
    engine = FocusEngine(g, mode="tri", backend="wgpu", tol=TOL)
    engine.compute()
    op = engine.operator
    start = op.diagnostics()
    assert start.symmetric_long_rows > 0, "particle 0 is a hub of the symmetric matrix"
    for kind in ("repeat", "new", "repeat", "stake"):
        if kind == "repeat":
            pick = np.concatenate([rng.integers(0, 1200, 20), rng.integers(1200, 1400, 10)])
            g.add_links(names[src[pick]], names[dst[pick]], [f"n{i}" for i in pick % 30])
            res = engine.apply()
        elif kind == "new":
            a, b = rng.integers(0, n, 30), rng.integers(0, n, 30)
            g.add_links(names[a], names[b], [f"n{i}" for i in rng.integers(0, 30, 30)])
            res = engine.apply()
        else:
            res = engine.apply(stakes={"n3": 5.0, "n7": 0.5})
        assert engine.operator is op
        cold = compute(g, mode="tri", backend="numpy", tol=1e-12)
        assert res.diagnostics.converged
        assert np.abs(res.focus - cold.focus).sum() < 1e-6, kind
    seen = op.diagnostics()
    assert seen.symmetric_builds == start.symmetric_builds + 1, "new pairs rebuilt it once"
    assert seen.symmetric_patches == 3, "repeated pairs and stakes patched its values"
    # new particles: the device vectors are made for the new size, the in-link
    # matrix stays (its product zeroes the new rows), the symmetric one is rebuilt
    fresh = np.array([f"q{i}" for i in range(12)], dtype=object)
    g.add_links(fresh, names[rng.integers(0, n, 12)], [f"n{i}" for i in range(12)])
    res = engine.apply()
    grown = engine.operator.diagnostics()
    assert engine.operator.n == n + 12
    assert grown.matrix_builds == seen.matrix_builds and grown.appended_rows == 12
    cold = compute(g, mode="tri", backend="numpy", tol=1e-12)
    assert res.diagnostics.converged
    assert np.abs(res.focus - cold.focus).sum() < 1e-6


def test_parallel_read_back_conversion():
    """The multi-core conversion of a large read-back vector: same values as
    numpy's, mass 1, and a non-finite or empty mass refused."""
    from focusflow.focus.backends.webgpu_storage import PARALLEL_READBACK, normalised

    x = np.random.default_rng(0).random(PARALLEL_READBACK + 1001).astype(np.float32)
    view = np.frombuffer(memoryview(x.tobytes()).toreadonly(), dtype=np.float32)
    out = normalised(view)
    ref = x.astype(np.float64) / x.sum(dtype=np.float64)
    assert out.dtype == np.float64
    assert np.abs(out - ref).max() <= 1e-15 * ref.max()
    assert abs(out.sum() - 1.0) < 1e-12
    for bad in (np.nan, 0.0):
        y = x.copy()
        y[:] = 0.0 if bad == 0.0 else y
        y[7] = bad
        with pytest.raises(FloatingPointError):
            normalised(y)


def test_cg_batches_past_the_stop_change_nothing(monkeypatch):
    """However many CG iterations a batch records, the device stops at the same
    one (the flag), the answer is the same to the bit, and once CG has stopped
    the indirect product counts are zero (no product for the empty iterations)."""
    n = 200
    src, dst, w = random_weighted(n, 5 * n, 9)
    snap = Snapshot(n, src, dst, w)
    runs = []
    for first in (1, 40):
        monkeypatch.setattr(WgpuOperator, "cg_first_batch", first)
        focus, diag, op = _device_solve(snap)
        seen = op.diagnostics()
        dims = seen.symmetric_dispatch_counts
        assert min(dims[:3]) >= 1 and not any(dims[9:])
        runs.append((focus, diag.inner["cg_iterations"], seen.cg_batches))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert runs[0][1] == runs[1][1]
    assert runs[0][2] > runs[1][2], "a batch of 1 needs more waits"


def test_value_patch_of_several_long_rows():
    """New values in a matrix with many long rows (stored grouped by row in
    length order, not sorted by entry) give the product of a fresh build."""
    from focusflow.focus.backends.webgpu_storage import DeviceSell

    src, dst, w = rmat_edges(10, 16, seed=3)
    snap = Snapshot(1 << 10, src, dst, w)
    op = get_backend("wgpu").operator(snap)
    m = op.sell
    assert m.nlong > 2 and not np.all(np.diff(m.long_entries) > 0)
    weights = snap.in_w.copy()
    rng = np.random.default_rng(0)
    entries = np.sort(rng.choice(len(weights), 500, replace=False))
    weights[entries] = rng.random(500)
    m.update(op, entries, weights)
    fresh = DeviceSell(op, snap.in_indptr, snap.in_indices, weights)
    z = rng.random(snap.n)
    assert np.array_equal(op.product(m, z), op.product(fresh, z))


def test_the_diffusion_start_stays_on_the_device(monkeypatch):
    """A cold tri solve's diffusion start runs on the device and its iterate is
    the tri loop's start there: one read-back per solve (the answer), the
    host's count of start steps, and the host's answer."""
    n = 300
    src, dst, w = random_weighted(n, 6 * n, 4)
    snap = Snapshot(n, src, dst, w)
    host = compute(snap, mode="tri", backend="numpy", tol=TOL)
    reads = []
    current = WgpuOperator.current

    def counted(self, *args, **kwargs):
        reads.append(1)
        return current(self, *args, **kwargs)

    monkeypatch.setattr(WgpuOperator, "current", counted)
    focus, diag, _ = _device_solve(snap)
    assert len(reads) == 1
    started = diag.inner["diffusion_start_iterations"]
    assert started > 0 and diag.timings["diffusion_start"] > 0
    assert abs(started - host.diagnostics.inner["diffusion_start_iterations"]) <= 1
    assert np.abs(focus - host.focus).sum() < 1e-6
