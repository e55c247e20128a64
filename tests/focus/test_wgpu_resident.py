"""The wgpu backend's device-resident diffusion against independent float64 references.

Runs on whatever adapter wgpu finds (Mesa's llvmpipe in CI), so the graphs are
small. Every diffusion solve here must go through ``solve_diffusion`` (the host
step ``WgpuOperator.diffusion`` is made to fail), so these tests check the WGSL
finish pass, the reductions and the overlay kernel, not the host path.
"""

import numpy as np
import pytest

from focusflow.focus import compute, make_params
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.webgpu import TIMING_KEYS, WgpuOperator, wgpu_available
from focusflow.focus.engine import FocusEngine
from focusflow.focus.solver import prior_vector, solve
from focusflow.graph import Cybergraph, Snapshot, rmat_edges
from tests.focus.reference import dense_weights, networkx_pagerank
from tests.helpers import random_weighted

OK, WHY = wgpu_available()
pytestmark = pytest.mark.skipif(not OK, reason=f"wgpu backend unavailable: {WHY}")

#: What float32 iterates can be asked for (their L1 change stalls near 5e-8).
TOL = 1e-7


@pytest.fixture(autouse=True)
def _no_host_steps(monkeypatch):
    """Diffusion must run on the device: the host step would hide kernel bugs."""

    def fail(*args, **kwargs):
        raise AssertionError("diffusion ran through the host step, not solve_diffusion")

    monkeypatch.setattr(WgpuOperator, "diffusion", fail)


def _fill_nan(op: WgpuOperator, buf) -> None:
    """NaN in every float of a device buffer (what a kernel must overwrite)."""
    op.device.queue.write_buffer(buf, 0, np.full(buf.size // 4, np.nan, dtype=np.float32))


def _dense_pagerank(n, src, dst, w, alpha=0.85, prior=None) -> np.ndarray:
    """Float64 reference: dense power iteration to 1e-14 (dangling mass to the prior)."""
    a = dense_weights(n, src, dst, w)
    out = a.sum(axis=1)
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    u = np.full(n, 1.0 / n) if prior is None else prior
    x = np.full(n, 1.0 / n)
    for _ in range(10_000):
        y = alpha * (p.T @ x) + (alpha * x[out <= 0].sum() + 1.0 - alpha) * u
        done = np.abs(y - x).sum() < 1e-14
        x = y
        if done:
            break
    return x / x.sum()


@pytest.mark.parametrize("seed", range(4))
def test_parity_random_graphs(seed):
    """Dangling and isolated nodes, duplicate edges, zero weights, self-loops."""
    n = 150 + 120 * seed
    src, dst, w = random_weighted(n, 5 * n, seed, zero_frac=0.2, dup_frac=0.2)
    a = dense_weights(n, src, dst, w)
    assert (a.sum(axis=1) == 0).sum() > 0, "the graph has dangling nodes"
    ref = networkx_pagerank(a, 0.85)
    res = compute(Snapshot(n, src, dst, w), mode="diffusion", backend="wgpu", tol=TOL, anderson=0)
    assert res.converged
    assert res.diagnostics.residual < TOL
    assert abs(res.focus.sum() - 1.0) < 1e-12
    assert np.abs(res.focus - ref).sum() < 1e-6


def test_parity_stake_prior_and_damping():
    n = 300
    src, dst, w = random_weighted(n, 4 * n, 11)
    snap = Snapshot(n, src, dst, w)
    res = compute(snap, mode="diffusion", backend="wgpu", tol=TOL, prior="stake", alpha=0.7)
    u = snap.to_particle_order(prior_vector(snap, "stake"))
    ref = _dense_pagerank(n, src, dst, w, alpha=0.7, prior=u)
    assert res.converged
    assert np.abs(res.focus - ref).sum() < 1e-6


def test_hub_rows_and_poisoned_buffers():
    """Rows over 128 entries take the chunked path; every vector buffer the
    kernels write starts as NaN, so an entry the kernels skip shows up."""
    src, dst, w = rmat_edges(11, 16, seed=5)
    n = 1 << 11
    snap = Snapshot(n, src, dst, w)
    op = get_backend("wgpu").operator(snap)
    assert op.diagnostics().matrix_long_rows > 0, "the graph exercises the chunked long-row path"
    scratch = op.scratch_buffers()
    for name in ("x0", "x1", "z", "pull_in", "pull_out", "part", "stats"):
        _fill_nan(op, scratch[name])
    prior = np.full(n, 1.0 / n)
    phi, diag = solve(op, make_params(mode="diffusion", weights=(1.0, 0.0, 0.0), tol=TOL), prior)
    assert diag.converged
    keep = src != dst
    ref = _dense_pagerank(n, src[keep], dst[keep], w[keep])
    assert np.all(np.isfinite(phi))
    assert np.abs(snap.to_particle_order(phi) - ref).sum() < 1e-6


def test_steps_keep_mass_and_report_the_l1_change():
    """Each step's iterate has mass 1 (no float32 leak over many steps) and the
    reported L1 change equals the change between the read-back iterates."""
    n = 2000
    src, dst, w = random_weighted(n, 3 * n, 3)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("wgpu").operator(snap)
    x0 = np.random.default_rng(0).random(n)
    op.start_diffusion(np.full(n, 1.0 / n), x0 / x0.sum(), 0.85)
    prev = op.current(normalise=False)
    for step in range(60):
        (l1,) = op.steps(1)
        cur = op.current(normalise=False)
        assert abs(cur.sum() - 1.0) < 1e-6, f"mass leaked at step {step}"
        exact = np.abs(cur - prev).sum()
        assert abs(l1 - exact) <= 1e-6 * exact + 1e-12
        prev = cur
    # a batch reports one change per step, in order
    changes = op.steps(5)
    assert len(changes) == 5 and all(np.isfinite(changes))


def test_deterministic():
    """Fixed-shape reductions: two solves give bit-identical answers."""
    n = 500
    src, dst, w = random_weighted(n, 6 * n, 8)
    a = Snapshot(n, src, dst, w)
    r1 = compute(a, mode="diffusion", backend="wgpu", tol=TOL)
    r2 = compute(a, mode="diffusion", backend="wgpu", tol=TOL)
    assert np.array_equal(r1.focus, r2.focus)
    assert r1.diagnostics.residual_history == r2.diagnostics.residual_history


def test_engine_apply_after_new_links():
    """Blocks add links between known particles (patched values and overlay rows)
    and new particles; each apply matches a float64 solve of the final graph."""
    rng = np.random.default_rng(9)
    g = Cybergraph(require_cids=False)
    names = np.array([f"p{i}" for i in range(400)], dtype=object)
    g.add_links(
        names[rng.integers(0, 300, 2000)],
        names[rng.integers(0, 300, 2000)],
        [f"n{i}" for i in rng.integers(0, 25, 2000)],
    )
    engine = FocusEngine(g, mode="diffusion", backend="wgpu", tol=TOL)
    engine.compute()
    saw_overlay = False
    for _ in range(3):
        g.add_links(
            names[rng.integers(0, 400, 60)],
            names[rng.integers(0, 400, 60)],
            [f"n{i}" for i in rng.integers(0, 30, 60)],
        )
        res = engine.apply()
        saw_overlay |= engine.operator.diagnostics().overlay_rows > 0
        assert res.converged
        cold = compute(g, mode="diffusion", backend="numpy", tol=1e-13, anderson=0)
        assert np.abs(res.focus - cold.focus).sum() < 1e-6
    assert saw_overlay, "the blocks exercised the overlay kernel"


def test_solve_reports_where_its_time_went():
    """The device solve's parts are in the timings and fit inside its wall time."""
    n = 400
    src, dst, w = random_weighted(n, 4 * n, 4)
    res = compute(Snapshot(n, src, dst, w), mode="diffusion", backend="wgpu", tol=TOL)
    t = res.diagnostics.timings
    parts = [t[key] for key in TIMING_KEYS]
    assert all(p >= 0 for p in parts)
    assert t["device_wait"] > 0 and t["device_readback"] > 0
    assert sum(parts) <= t["diffusion"] <= sum(parts) + 0.05 + 0.5 * t["diffusion"]


def test_uniform_prior_and_start_stay_on_the_device():
    """A uniform prior is a flag (its buffer is never read: NaN there stays
    harmless) and a uniform start is a fill; a non-uniform prior afterwards is
    uploaded and used, and a new uniform array switches back."""
    n = 350
    src, dst, w = random_weighted(n, 4 * n, 12)
    snap = Snapshot(n, src, dst, w)
    op = get_backend("wgpu").operator(snap)
    params = make_params(mode="diffusion", weights=(1.0, 0.0, 0.0), tol=TOL)
    ref = _dense_pagerank(n, src, dst, w)
    uniform = np.full(n, 1.0 / n)
    solve(op, params, uniform)
    assert op.diagnostics().uniform_prior
    scratch = op.scratch_buffers()
    for name in ("prior", "x0", "x1"):
        _fill_nan(op, scratch[name])
    phi, diag = solve(op, params, uniform)
    assert diag.converged and np.all(np.isfinite(phi))
    assert np.abs(snap.to_particle_order(phi) - ref).sum() < 1e-6
    stake = prior_vector(snap, "stake")
    phi, diag = solve(op, params, stake)
    ref_stake = _dense_pagerank(n, src, dst, w, prior=snap.to_particle_order(stake))
    assert diag.converged
    assert np.abs(snap.to_particle_order(phi) - ref_stake).sum() < 1e-6
    phi, diag = solve(op, params, np.full(n, 1.0 / n))
    assert np.abs(snap.to_particle_order(phi) - ref).sum() < 1e-6


@pytest.mark.parametrize("alpha", [0.85, 0.95])
def test_anderson_on_the_device(alpha):
    """Anderson mixing on the device: the float64 answer, fewer steps than the
    plain iteration, and as many as the host mixing needs; every buffer it
    writes (history included) starts as NaN."""
    scale = 12
    n = 1 << scale
    src, dst, w = rmat_edges(scale, 8, seed=3)
    keep = src != dst
    snap = Snapshot(n, src[keep], dst[keep], w[keep])
    ref = compute(snap, mode="diffusion", backend="numpy", tol=1e-13, anderson=0, alpha=alpha)
    host = compute(snap, mode="diffusion", backend="numpy", tol=1e-6, anderson=2, alpha=alpha)
    op = get_backend("wgpu").operator(snap)
    prior = np.full(n, 1.0 / n)
    # one step with the window makes its history buffers, then all start as NaN
    solve(op, make_params(mode="diffusion", weights=(1.0, 0.0, 0.0), anderson=2, max_iter=1), prior)
    scratch = op.scratch_buffers()
    assert "anderson_hist" in scratch
    for name, buf in scratch.items():
        if name != "prior":
            _fill_nan(op, buf)
    runs = {}
    for m in (2, 0):
        params = make_params(
            mode="diffusion", weights=(1.0, 0.0, 0.0), tol=1e-6, anderson=m, alpha=alpha
        )
        phi, diag = solve(op, params, prior)
        assert diag.converged and diag.residual < 1e-6
        assert np.abs(snap.to_particle_order(phi) - ref.focus).sum() < 1e-6
        runs[m] = diag.iterations
    assert runs[2] < runs[0]
    assert runs[2] <= host.iterations + 1


@pytest.mark.parametrize("m", [2, 3])
def test_anderson_with_a_full_reduction_grid(monkeypatch, m):
    """With many workgroups every Gram product still reaches the host: each
    value's partial sums have their own rows (found on an H100 at 4M particles,
    where the mix silently became a plain step). The grid is capped low here so
    a small graph fills it."""
    monkeypatch.setattr("focusflow.focus.backends.webgpu_storage.MAX_PARTS", 8)
    scale = 14
    n = 1 << scale
    src, dst, w = rmat_edges(scale, 4, seed=5)
    keep = src != dst
    snap = Snapshot(n, src[keep], dst[keep], w[keep])
    ref = compute(snap, mode="diffusion", backend="numpy", tol=1e-13, anderson=0)
    op = get_backend("wgpu").operator(snap)
    prior = np.full(n, 1.0 / n)
    runs = {}
    for mm in (m, 0):
        params = make_params(mode="diffusion", weights=(1.0, 0.0, 0.0), tol=1e-6, anderson=mm)
        phi, diag = solve(op, params, prior)
        assert np.abs(snap.to_particle_order(phi) - ref.focus).sum() < 1e-6
        runs[mm] = diag.iterations
    assert runs[m] < runs[0] - 1, runs


def test_anderson_stopped_early_returns_its_last_step():
    """Two steps mix nothing (the first mix would come third), so an Anderson
    solve cut at two steps returns exactly the plain iteration's second step:
    the answer is read from the buffer the last submitted step wrote."""
    n = 600
    src, dst, w = random_weighted(n, 4 * n, 21)
    op = get_backend("wgpu").operator(Snapshot(n, src, dst, w))
    prior = np.full(n, 1.0 / n)
    out = {}
    for m in (0, 2):
        params = make_params(
            mode="diffusion", weights=(1.0, 0.0, 0.0), tol=TOL, anderson=m, max_iter=2
        )
        out[m] = solve(op, params, prior)
    assert not out[2][1].converged and out[2][1].iterations == 2
    assert np.array_equal(out[0][0], out[2][0])
    assert out[0][1].residual_history == out[2][1].residual_history
