"""The tri-kernel against an independent dense computation, and its operators."""

import numpy as np
import pytest
import scipy.linalg as sl

from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute
from focusflow.focus.backends import get_backend
from focusflow.focus.params import make_params
from focusflow.focus.spectral import (
    HeatState,
    SpringsState,
    blend,
    blend_series,
    heat,
    heat_series,
    springs,
)
from focusflow.graph import Snapshot
from tests.focus.reference import as_matrix, dense_laplacian, dense_tri, dense_weights
from tests.helpers import random_weighted


@pytest.mark.parametrize(
    "algorithm",
    [
        {"springs_method": "cg"},
        {"springs_method": "series"},
        {"start": "uniform", "heat_reuse": "exact", "finish": "fixed", "springs_method": "cg"},
    ],
)
@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("seed", range(6))
def test_tri_equals_dense_reference(laplacian, backend, seed, algorithm):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(4, 60))
    src, dst, w = random_weighted(n, int(rng.integers(1, 4 * n)), seed)
    params = dict(
        alpha=float(rng.uniform(0.6, 0.95)),
        mu=float(rng.uniform(0.3, 3.0)),
        tau=float(rng.uniform(0.2, 3.0)),
    )
    lam = rng.dirichlet([1, 1, 1]) * 0.8
    lam[0] += 0.2
    lam = tuple(float(x) for x in lam / lam.sum())
    ref = dense_tri(dense_weights(n, src, dst, w), lam=lam, laplacian=laplacian, **params)
    res = compute(
        as_matrix(n, src, dst, w),
        mode="tri",
        weights=lam,
        laplacian=laplacian,
        tol=1e-13,
        backend=backend,
        **params,
        **algorithm,
    )
    assert res.converged
    assert np.abs(res.focus - ref).sum() < 1e-8


def test_initial_vector_does_not_matter():
    src, dst, w = random_weighted(50, 200, 3)
    a = as_matrix(50, src, dst, w)
    rng = np.random.default_rng(0)
    results = [compute(a, tol=1e-12, x0=rng.random(50)).focus for _ in range(3)]
    results.append(compute(a, tol=1e-12, x0=np.eye(50)[7]).focus)
    for r in results[1:]:
        assert np.abs(r - results[0]).sum() < 1e-9


@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
def test_operators_match_expm_and_direct_solve(laplacian):
    n = 40
    src, dst, w = random_weighted(n, 160, 11)
    snap = Snapshot(n, src, dst, w, order="none")
    op = get_backend("numba").operator(snap)
    op.setup_laplacian(laplacian)
    lap = dense_laplacian(dense_weights(n, src, dst, w), laplacian)
    phi = np.random.default_rng(1).random(n)
    phi /= phi.sum()
    h = heat(op, phi, 1.7, HeatState(), 1e-13)
    assert np.abs(h - sl.expm(-1.7 * lap) @ phi).sum() < 1e-10
    s = springs(op, phi, 0.7, SpringsState(), 1e-13, 10_000)
    assert np.abs(s - np.linalg.solve(lap + 0.7 * np.eye(n), 0.7 * phi)).sum() < 1e-10
    # mass is preserved by both
    assert h.sum() == pytest.approx(1.0, abs=1e-12)
    assert s.sum() == pytest.approx(1.0, abs=1e-10)


@pytest.mark.parametrize("share", [0.01, 0.1])
@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
@pytest.mark.parametrize("seed", range(4))
def test_bounded_exact_steps_add_at_most_their_share_of_tol(share, laplacian, seed):
    """Springs and heat at the tolerances of a bounded exact step: their
    outputs' L1 errors against the dense operators stay within ``exact_share``
    of tol (1 % by default, the promise in docs/focus.md; 0.1 is inference's),
    the bound TriPolicy.exact_tolerances promises, while the tolerances are
    looser than the fixed cg_tol and heat_tol (so the steps are cheaper)."""
    from focusflow.focus.policy import TriPolicy
    from focusflow.focus.solver import spread_of

    rng = np.random.default_rng(200 + seed)
    n = int(rng.integers(20, 80))
    src, dst, w = random_weighted(n, int(rng.integers(n, 4 * n)), 300 + seed)
    op = get_backend("numba").operator(Snapshot(n, src, dst, w, order="none"))
    op.setup_laplacian(laplacian)
    lap = dense_laplacian(dense_weights(n, src, dst, w), laplacian)
    phi = rng.random(n) ** 4  # uneven, as focus is
    phi /= phi.sum()
    tol, mu, tau = 1e-6, 0.8, 1.4
    params = make_params(mode="tri", tol=tol, exact_share=share)
    sigma = op.lap_sigma
    inv = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0), 0.0)
    spread = spread_of(op, phi, float(np.linalg.norm(inv)))
    cg_tol, heat_tol = TriPolicy.of(params).exact_tolerances(spread)
    assert cg_tol > params.cg_tol and heat_tol > params.heat_tol
    s = springs(op, phi, mu, SpringsState(), cg_tol, 10_000)
    h = heat(op, phi, tau, HeatState(), heat_tol)
    s_err = np.abs(s - np.linalg.solve(lap + mu * np.eye(n), mu * phi)).sum()
    h_err = np.abs(h - sl.expm(-tau * lap) @ phi).sum()
    assert s_err <= share * tol and h_err <= share * tol
    # Solvers usually beat their tolerance, so also the worst case the
    # tolerances allow: an error of norm tol * ||sigma phi||_2 in the symmetric
    # frame, shaped to grow the most on its way back through 1 / sigma.
    for inner in (cg_tol, heat_tol):
        e = inv * inner * np.linalg.norm(sigma * phi) / np.linalg.norm(inv)
        assert np.abs(e * inv).sum() <= share * tol * (1 + 1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_a_bounded_finish_is_as_accurate_as_the_stop_rule_promises(seed):
    """At the default tol the answer of the bounded finish stays within the
    stop rule's reach of the dense fixed point (a step below tol leaves at most
    tol / (1 - k) to go, k = lambda_d alpha + lambda_s + lambda_h the
    composite's contraction bound), with fewer or equal inner steps than the
    fixed finish."""
    rng = np.random.default_rng(400 + seed)
    n = int(rng.integers(30, 120))
    src, dst, w = random_weighted(n, int(rng.integers(2 * n, 6 * n)), 500 + seed)
    ref = dense_tri(dense_weights(n, src, dst, w))
    a = as_matrix(n, src, dst, w)
    tol = 1e-6
    bounded = compute(a, tol=tol, backend="numba")
    fixed = compute(a, tol=tol, backend="numba", finish="fixed")
    k = 0.5 * 0.85 + 0.3 + 0.2
    assert bounded.converged and np.abs(bounded.focus - ref).sum() <= tol / (1 - k)
    inner = bounded.diagnostics.inner
    assert inner["heat_terms"] <= fixed.diagnostics.inner["heat_terms"]


def _heat_setup(seed: int, laplacian: str = "normalized"):
    n = 40
    src, dst, w = random_weighted(n, 160, seed)
    op = get_backend("numba").operator(Snapshot(n, src, dst, w, order="none"))
    op.setup_laplacian(laplacian)
    return op, dense_weights(n, src, dst, w)


def _heat_error(op, lap, phi, out, tau) -> float:
    """The error of a heat result in the norm its bound is kept in."""
    return float(np.linalg.norm(op.lap_sigma * (out - sl.expm(-tau * lap) @ phi)))


def _assert_heat_within(op, lap, phi, out, tau, tol) -> None:
    assert _heat_error(op, lap, phi, out, tau) <= tol * np.linalg.norm(op.lap_sigma * phi)


def _distribution(n: int, seed: int) -> np.ndarray:
    phi = np.random.default_rng(seed).random(n)
    return phi / phi.sum()


@pytest.mark.parametrize(
    ("series", "laplacian"),
    [("heat", "normalized"), ("heat", "combinatorial"), ("blend", "normalized")],
)
def test_series_increments_keep_their_error_bound(series, laplacian):
    """A converging sequence with tolerances that follow its change, as the
    solver's: every result stays within the bound it reports and within its
    budget, and some are increments that cost fewer terms than a fresh series.
    For heat and for the springs and heat blend (``springs_method="series"``)."""
    tau, mu, share = 1.3, 1.0, 0.6
    op, weights = _heat_setup(12, laplacian)
    lap = dense_laplacian(weights, laplacian)
    n = op.n
    c = tau * op.lam_max / 2
    if series == "heat":
        dense = sl.expm(-tau * lap)

        def apply(phi, state, tol):
            return heat(op, phi, tau, state, tol)

        def fresh_terms(tol):
            return len(heat_series(c, tol)[0])
    else:
        springs_op = mu * np.linalg.inv(lap + mu * np.eye(n))
        dense = share * springs_op + (1 - share) * sl.expm(-tau * lap)

        def apply(phi, state, tol):
            return blend(op, phi, mu, tau, share, state, tol)

        def fresh_terms(tol):
            return len(blend_series(c, mu, op.lam_max, share, tol)[0])

    rng = np.random.default_rng(3)
    target, noise = rng.random(n), rng.random(n) - 0.5
    state = HeatState()
    cheaper = 0
    for k, tol in enumerate([1e-2, 5e-3, 1e-3, 3e-4, 1e-4, 2e-5, 5e-6, 1e-7, 1e-9, 1e-11]):
        phi = target + 0.3**k * noise * target
        phi /= phi.sum()
        before = state.terms
        out = apply(phi, state, tol)
        err = float(np.linalg.norm(op.lap_sigma * (out - dense @ phi)))
        scale = float(np.linalg.norm(op.lap_sigma * phi))
        assert err <= state.err + 1e-14 * scale
        assert state.err <= tol * scale
        cheaper += state.terms - before < fresh_terms(tol)
    assert cheaper >= 3


def test_exact_reuse_is_fresh_outside_the_exact_phase():
    """``heat_reuse="exact"`` (the chain's first algorithm): loose applications
    are fresh series, and the exact phase builds on an exact result."""
    tau = 1.0
    op, weights = _heat_setup(16)
    lap = dense_laplacian(weights, "normalized")
    c = tau * op.lam_max / 2
    state = HeatState()
    for k, tol in enumerate([1e-3, 1e-2, 1e-2]):
        phi = _distribution(op.n, 20 + k)
        out = heat(op, phi, tau, state, tol, "exact", exact=False)
        assert np.array_equal(out, heat(op, phi, tau, HeatState(), tol, "exact", exact=False))
    phi = _distribution(op.n, 30)
    heat(op, phi, tau, state, 1e-12, "exact", exact=True)
    near = 0.999 * phi + 0.001 * _distribution(op.n, 31)
    before = state.terms
    out = heat(op, near, tau, state, 1e-12, "exact", exact=True)
    assert state.terms - before < len(heat_series(c, 1e-12)[0])
    _assert_heat_within(op, lap, near, out, tau, 2e-12)


def test_heat_does_not_build_on_a_looser_result():
    """A tight application after a loose one on nearly the same vector: the
    loose result's error does not fit the tight budget, so it is not reused."""
    tau = 1.0
    op, weights = _heat_setup(13)
    lap = dense_laplacian(weights, "normalized")
    phi = _distribution(op.n, 4)
    state = HeatState()
    heat(op, phi, tau, state, 1e-2)
    near = phi.copy()
    near[0] *= 1 + 1e-9
    near /= near.sum()
    _assert_heat_within(op, lap, near, heat(op, near, tau, state, 1e-12), tau, 1e-12)


def test_heat_does_not_build_on_another_operator():
    """Another matrix, another Laplacian of the same graph, another tau."""
    tau = 1.0
    op_a, _ = _heat_setup(14)
    op_b, weights_b = _heat_setup(15)
    lap_b = dense_laplacian(weights_b, "normalized")
    phi = _distribution(op_a.n, 5)
    state = HeatState()
    heat(op_a, phi, tau, state, 1e-12)
    _assert_heat_within(op_b, lap_b, phi, heat(op_b, phi, tau, state, 1e-10), tau, 1e-10)
    # the same operator with the other Laplacian (another matrix and lam_max)
    op_b.setup_laplacian("combinatorial")
    lap_c = dense_laplacian(weights_b, "combinatorial")
    _assert_heat_within(op_b, lap_c, phi, heat(op_b, phi, tau, state, 1e-10), tau, 1e-10)
    out = heat(op_b, phi, 2 * tau, state, 1e-10)
    _assert_heat_within(op_b, lap_c, phi, out, 2 * tau, 1e-10)


def test_a_cold_tri_solve_starts_from_diffusion():
    src, dst, w = random_weighted(80, 400, 5)
    a = as_matrix(80, src, dst, w)
    cold = compute(a, tol=1e-12)
    assert cold.diagnostics.inner["diffusion_start_iterations"] > 0
    warm = compute(a, tol=1e-12, x0=np.full(80, 1 / 80))
    assert warm.diagnostics.inner["diffusion_start_iterations"] == 0
    assert np.abs(cold.focus - warm.focus).sum() < 1e-10
    assert compute(a, mode="diffusion").diagnostics.inner["diffusion_start_iterations"] == 0


def test_the_diffusion_start_stops_at_start_tol_and_the_answer_is_the_same():
    src, dst, w = random_weighted(300, 2400, 7)
    a = as_matrix(300, src, dst, w)
    ref = compute(a, tol=1e-13).focus
    starts = {}
    for start_tol in (1e-2, 0.5):
        res = compute(a, tol=1e-9, start_tol=start_tol)
        assert np.abs(res.focus - ref).sum() < 1e-7
        starts[start_tol] = res.diagnostics.inner["diffusion_start_iterations"]
    assert 0 < starts[0.5] < starts[1e-2]


@pytest.mark.parametrize("start_tol", [0, -0.1, 1.5, float("nan"), "0.5"])
def test_a_start_tol_outside_its_range_is_refused(start_tol):
    with pytest.raises(InvalidParameterError, match="start_tol"):
        make_params(mode="tri", start_tol=start_tol)


def test_anderson_window_defaults_by_mode():
    assert make_params(mode="tri").anderson == 6
    assert make_params(mode="diffusion").anderson == 2
    assert make_params(mode="tri", anderson=0).anderson == 0


@pytest.mark.parametrize("share", [0, -0.1, 1.5, float("nan"), "0.1"])
def test_an_exact_share_outside_its_range_is_refused(share):
    with pytest.raises(InvalidParameterError, match="exact_share"):
        make_params(mode="tri", exact_share=share)


def test_a_larger_exact_share_takes_fewer_series_terms_within_tol():
    """exact_share loosens only the exact phase's inner solves: fewer series
    terms, and the answer still within reach of the dense fixed point."""
    n = 400
    src, dst, w = random_weighted(n, 6 * n, 8)
    ref = dense_tri(dense_weights(n, src, dst, w))
    g = Snapshot(n, src, dst, w, order="none")
    runs = {
        share: compute(g, mode="tri", tol=1e-4, exact_share=share, springs_method="series")
        for share in (0.01, 0.5)
    }
    terms = {s: r.diagnostics.inner["heat_terms"] for s, r in runs.items()}
    assert terms[0.5] < terms[0.01]
    for r in runs.values():
        assert np.abs(r.focus - ref).sum() < 1e-3


@pytest.mark.parametrize("field", ["start", "heat_reuse", "finish", "springs_method"])
def test_unknown_algorithm_choices_are_refused(field):
    with pytest.raises(InvalidParameterError, match=field):
        make_params(**{field: "fastest"})


def test_a_uniform_start_skips_the_diffusion_start():
    src, dst, w = random_weighted(80, 400, 5)
    res = compute(as_matrix(80, src, dst, w), tol=1e-12, start="uniform")
    assert res.diagnostics.inner["diffusion_start_iterations"] == 0


def test_diagnostics_are_reported():
    src, dst, w = random_weighted(80, 400, 5)
    res = compute(as_matrix(80, src, dst, w), spectral_gap=True, backend="numba")
    d = res.diagnostics
    assert d.iterations == len(d.residual_history)
    assert d.residual < 1e-6 <= d.residual_history[0]
    assert 0 < d.contraction_rate < 1
    assert d.spectral_gap == pytest.approx(1 - d.contraction_rate)
    assert {"diffusion", "springs", "heat", "solve"} <= set(d.timings)
    # the numba default on the normalized Laplacian: one series, no CG
    assert d.inner["springs_method"] == "series"
    assert d.inner["cg_iterations"] == 0 and d.inner["heat_terms"] > 0
    cg = compute(as_matrix(80, src, dst, w), springs_method="cg", backend="numba").diagnostics
    assert cg.inner["springs_method"] == "cg"
    assert cg.inner["cg_iterations"] > 0 and cg.inner["heat_terms"] > 0


def test_cap_is_respected_and_reported():
    src, dst, w = random_weighted(80, 400, 5)
    res = compute(as_matrix(80, src, dst, w), max_iter=3)
    assert res.iterations == 3 and not res.converged


@pytest.mark.parametrize("mode", ["tri", "diffusion"])
def test_anderson_acceleration_keeps_the_fixed_point(mode):
    from focusflow.graph import rmat_edges

    src, dst, w = rmat_edges(11, 8, seed=3)
    a = as_matrix(2048, src, dst, w)
    plain = compute(a, mode=mode, tol=1e-12, anderson=0)
    fast = compute(a, mode=mode, tol=1e-12, anderson=3)
    assert plain.converged and fast.converged
    assert np.abs(plain.focus - fast.focus).sum() < 1e-10
    assert fast.iterations <= plain.iterations
    if mode == "tri":
        assert fast.iterations < 0.7 * plain.iterations
