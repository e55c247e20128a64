"""The free energy F(phi): its terms against a dense float64 computation, and
the properties docs/focus.md ("Free energy") derives for it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.optimize as so
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus import compute, free_energy
from focusflow.focus.energy import FreeEnergyModel
from tests.focus.reference import dense_laplacian, dense_tri, dense_weights, networkx_pagerank
from tests.helpers import random_weighted


def dense_terms(a, phi, alpha=0.85, mu=1.0, tau=1.0, laplacian="normalized"):
    """F's terms from the definitions, with dense matrices: the chi-square metric
    G = diag(1/pi) of the Laplacian's reference distribution, S and H by
    inverse and expm, D as a column-stochastic matrix."""
    n = len(a)
    lap = dense_laplacian(a, laplacian)
    deg = (a + a.T).sum(axis=1)
    if laplacian == "normalized":
        g = np.divide(deg.sum(), deg, out=np.zeros(n), where=deg > 0)
    else:
        g = np.full(n, float(n))
    s_op = mu * np.linalg.inv(lap + mu * np.eye(n))
    h_op = sl.expm(-tau * lap)
    out = a.sum(axis=1)
    dangling = out <= 0
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    u = np.full(n, 1.0 / n)
    d_op = alpha * p.T + alpha * np.outer(u, dangling) + (1 - alpha) * np.outer(u, np.ones(n))
    r = phi - d_op @ phi
    pos = phi[phi > 0]
    return {
        "spring": 0.5 * phi @ (g * ((np.eye(n) - s_op) @ phi)),
        "heat": 0.5 * phi @ (g * ((np.eye(n) - h_op) @ phi)),
        "diffusion": 0.5 * n * r @ r,
        "entropy": -(pos * np.log(pos)).sum(),
        "Q": (
            np.diag(g) @ (np.eye(n) - s_op),
            np.diag(g) @ (np.eye(n) - h_op),
            n * (np.eye(n) - d_op).T @ (np.eye(n) - d_op),
        ),
    }


def graph(n, m, seed):
    src, dst, w = random_weighted(n, m, seed)
    return sp.csr_matrix((w, (src, dst)), shape=(n, n)), dense_weights(n, src, dst, w)


@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_terms_match_the_dense_definitions(seed, laplacian):
    mat, a = graph(30, 90, seed)
    rng = np.random.default_rng(seed)
    phi = rng.random(30)
    phi /= phi.sum()
    got = free_energy(mat, phi, laplacian=laplacian, mu=0.7, tau=1.3, temperature=0.2)
    want = dense_terms(a, phi, mu=0.7, tau=1.3, laplacian=laplacian)
    for name in ("spring", "heat", "diffusion", "entropy"):
        assert getattr(got, name) == pytest.approx(want[name], rel=1e-9, abs=1e-12), name
    lam_d, lam_s, lam_h = got.weights
    total = lam_s * want["spring"] + lam_d * want["diffusion"] + lam_h * want["heat"]
    assert got.total == pytest.approx(total - 0.2 * want["entropy"], rel=1e-9)
    # The quadratic forms are symmetric and positive semidefinite: the energies
    # are convex, so F has one minimiser on the simplex for T > 0.
    for q in want["Q"]:
        assert np.allclose(q, q.T, atol=1e-9 * np.abs(q).max())
        assert np.linalg.eigvalsh(0.5 * (q + q.T)).min() > -1e-9 * np.abs(q).max()


def test_gradient_matches_finite_differences():
    mat, _ = graph(25, 80, 4)
    model = FreeEnergyModel(mat, weights=(0.4, 0.35, 0.25))
    rng = np.random.default_rng(0)
    phi = rng.random(25) + 0.1
    phi /= phi.sum()
    _, grad = model.value_and_gradient(phi, 0.3)
    step = 1e-6
    for i in rng.choice(25, 6, replace=False):
        e = np.zeros(25)
        e[i] = step
        fd = (model.value(phi + e, 0.3) - model.value(phi - e, 0.3)) / (2 * step)
        assert grad[i] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_operators_are_the_engines():
    """S, H and D as the model applies them: their blend's fixed point is the
    engine's focus (dense eigenvector reference), so F is built on the same
    operators the engine iterates."""
    mat, a = graph(40, 150, 5)
    model = FreeEnergyModel(mat)
    phi = dense_tri(a)
    lam_d, lam_s, lam_h = model.weights
    blend = lam_d * model.diffusion(phi) + lam_s * model.springs(phi) + lam_h * model.heat(phi)
    assert np.abs(blend - phi).sum() < 1e-10
    assert np.abs(compute(mat, tol=1e-12, backend="numpy").focus - phi).sum() < 1e-9


def test_zero_energy_at_each_operators_equilibrium():
    """E_diff vanishes at PageRank; E_spring and C at the degree distribution,
    where the gradient of the springs and heat energies is zero as well."""
    mat, a = graph(30, 120, 6)
    model = FreeEnergyModel(mat, weights=(0.0, 0.5, 0.5))
    pr = networkx_pagerank(a, 0.85)
    assert model.terms(pr).diffusion < 1e-18
    deg = (a + a.T).sum(axis=1)
    pi = deg / deg.sum()
    terms = model.terms(pi)
    assert terms.spring < 1e-14 and terms.heat < 1e-14
    assert np.abs(model.energy_gradient(pi)).max() < 1e-9


def test_minimiser_closed_form_on_a_regular_graph():
    """On a directed cycle every particle looks alike: PageRank, the degree
    distribution and the entropy's maximiser are all uniform, so F's minimiser
    is uniform at every temperature, and the engine's focus is that minimiser."""
    n = 12
    mat = sp.csr_matrix((np.ones(n), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
    model = FreeEnergyModel(mat)
    uniform = np.full(n, 1.0 / n)
    rng = np.random.default_rng(1)
    start = rng.random(n) + 0.5
    for temp in (1.0, 0.05):
        x = model.minimize(temp, x0=start / start.sum())
        assert np.abs(x - uniform).max() < 1e-9
    assert np.abs(compute(mat, tol=1e-12, backend="numpy").focus - uniform).max() < 1e-12
    assert abs(model.terms(uniform).energy) < 1e-14


def test_minimiser_against_scipy_on_a_tiny_graph():
    """The minimiser agrees with SLSQP on the dense F over the simplex; its
    gradient is zero along the simplex (the Boltzmann form holds), and F is
    larger at every perturbation that stays on the simplex."""
    mat, a = graph(8, 20, 7)
    temp = 0.2
    model = FreeEnergyModel(mat)
    lam_d, lam_s, lam_h = model.weights
    q_s, q_h, q_d = dense_terms(a, np.full(8, 1 / 8))["Q"]
    q = lam_s * q_s + lam_h * q_h + lam_d * q_d
    q = 0.5 * (q + q.T)

    def f(x):
        return 0.5 * x @ q @ x + temp * np.sum(x * np.log(x))

    def df(x):
        return q @ x + temp * (1 + np.log(x))

    ref = so.minimize(
        f,
        np.full(8, 1 / 8),
        jac=df,
        method="SLSQP",
        bounds=[(1e-12, 1)] * 8,
        constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1, "jac": lambda x: np.ones(8)}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    assert ref.success
    x = model.minimize(temp)
    assert np.abs(x - ref.x).sum() < 1e-5
    assert model.value(x, temp) <= f(ref.x) + 1e-12
    _, g = model.value_and_gradient(x, temp)
    assert np.abs(g - g.mean()).max() < 1e-7
    assert model.boltzmann_residual(x, temp) < 1e-7
    rng = np.random.default_rng(3)
    for _ in range(20):
        v = rng.standard_normal(8)
        v -= v.mean()
        v *= 1e-3 * x.min() / np.abs(v).max()
        assert model.value(x + v, temp) > model.value(x, temp)


def test_engine_focus_is_not_the_minimiser_on_a_directed_graph():
    """Diffusion's step is not the gradient of any energy on a graph whose walk
    is not reversible, so the engine's focus is not a stationary point of F:
    the minimiser has a lower F, and F's gradient along the simplex at the
    engine's focus is not zero."""
    mat, _ = graph(40, 160, 8)
    model = FreeEnergyModel(mat)
    phi = compute(mat, tol=1e-12, backend="numpy").focus
    g = model.energy_gradient(phi)
    assert np.abs(g - g.mean()).max() > 1e-2 * np.abs(g).max()
    x = model.minimize(0.05, x0=phi)
    assert model.value(x, 0.05) < model.value(phi, 0.05) - 1e-3


def test_springs_and_heat_steps_descend_their_energies():
    """One springs step is a proximal step and one heat step the exact gradient
    flow of the Dirichlet energy in the chi-square metric: neither raises
    E_spring or C (each step shrinks every spectral component)."""
    mat, _ = graph(30, 100, 9)
    model = FreeEnergyModel(mat)
    rng = np.random.default_rng(4)
    phi = rng.random(30)
    phi /= phi.sum()
    for _ in range(5):
        before = model.terms(phi)
        for step in (model.springs, model.heat):
            after = model.terms(step(phi))
            assert after.spring <= before.spring + 1e-15
            assert after.heat <= before.heat + 1e-15
        phi = model.springs(phi)


def test_refuses_bad_input():
    mat, _ = graph(10, 30, 10)
    with pytest.raises(InvalidParameterError):
        free_energy(mat, np.ones(9) / 9)
    with pytest.raises(InvalidParameterError):
        free_energy(mat, np.full(10, 0.1), temperature=-1.0)
    with pytest.raises(InvalidParameterError):
        free_energy(mat, np.full(10, 0.1), weights=(1.0, -0.5, 0.5))
    with pytest.raises(InvalidParameterError):
        free_energy(mat, np.full(10, 0.1), mode="cyberank")
