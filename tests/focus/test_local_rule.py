"""The local update rule: its fixed point against a dense Newton solve of F's
optimality condition and FreeEnergyModel's L-BFGS minimiser, the step bound
against dense eigenvalues, the design's sign, and gossip's error bound."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.local_rule import LocalRule
from tests.focus.reference import dense_weights
from tests.focus.test_energy import dense_terms


def connected_graph(n, m, seed):
    """A random directed graph with a ring through every particle (so that it
    is connected and gossip can reach everyone), as sparse and dense weights."""
    rng = np.random.default_rng(seed)
    src = np.r_[rng.integers(0, n, m), np.arange(n)]
    dst = np.r_[rng.integers(0, n, m), (np.arange(n) + 1) % n]
    w = np.r_[rng.random(m) + 0.05, np.full(n, 0.5)]
    return sp.csr_matrix((w, (src, dst)), shape=(n, n)), dense_weights(n, src, dst, w)


def dense_hessian(a, weights=(0.5, 0.3, 0.2)):
    """Q with grad E(phi) = Q phi, from the dense definitions of F's terms."""
    n = len(a)
    q_s, q_h, q_d = dense_terms(a, np.full(n, 1.0 / n))["Q"]
    lam_d, lam_s, lam_h = weights
    q = lam_s * q_s + lam_h * q_h + lam_d * q_d
    return 0.5 * (q + q.T)


def dense_minimiser(q, temperature, iters=100):
    """F's minimiser by damped Newton on the simplex with dense matrices: the
    step d solves ``H d = -(g - c 1)`` with c making ``sum d = 0``; halved until
    phi stays positive and F falls."""
    n = len(q)
    phi = np.full(n, 1.0 / n)

    def f(p):
        return 0.5 * p @ q @ p + temperature * (p * np.log(p)).sum()

    for _ in range(iters):
        g = q @ phi + temperature * (1.0 + np.log(phi))
        h = q + np.diag(temperature / phi)
        hg = np.linalg.solve(h, g)
        h1 = np.linalg.solve(h, np.ones(n))
        d = -(hg - (hg.sum() / h1.sum()) * h1)
        t = 1.0
        while np.any(phi + t * d <= 0) or f(phi + t * d) > f(phi) + 1e-15:
            t *= 0.5
            if t < 1e-12:
                return phi
        phi = phi + t * d
        phi /= phi.sum()
        if np.abs(t * d).sum() < 1e-16:
            break
    return phi


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("temperature", [1.0, 0.05])
def test_converges_to_the_minimiser(seed, temperature):
    mat, a = connected_graph(40, 160, seed)
    rule = LocalRule(mat)
    reference = dense_minimiser(dense_hessian(a), temperature)
    lbfgs = rule.model.minimize(temperature)
    assert np.abs(lbfgs - reference).sum() < 1e-6
    bound = rule.step_bound(reference, temperature)
    run = rule.run(temperature, bound.eta_best, 4000, target=reference, tol=1e-15)
    assert run.status == "converged"
    assert np.abs(run.phi - reference).sum() < 1e-6
    assert abs(run.mass[-1] - 1.0) < 1e-12
    # The distance falls at least as fast as the local rate predicts, once near.
    tail = run.l1[run.l1 > 1e-10]
    assert len(tail) > 10
    observed = (tail[-1] / tail[-11]) ** 0.1
    assert observed <= bound.rate(bound.eta_best) + 0.02


def test_step_bound_is_the_dense_projected_hessian():
    mat, a = connected_graph(30, 120, 4)
    rule = LocalRule(mat)
    temperature = 0.3
    phi = dense_minimiser(dense_hessian(a), temperature)
    n = len(a)
    p = np.eye(n) - np.full((n, n), 1.0 / n)
    h = dense_hessian(a) + np.diag(temperature / phi)
    eig = np.linalg.eigvalsh(p @ h @ p)
    tangent = np.sort(eig)[1:]  # the constant direction's zero dropped
    bound = rule.step_bound(phi, temperature)
    assert bound.mu_max == pytest.approx(tangent[-1], rel=1e-7)
    assert bound.mu_min == pytest.approx(tangent[0], rel=1e-7)
    q_top = np.linalg.eigvalsh(dense_hessian(a)).max()
    assert bound.lipschitz == pytest.approx(q_top + temperature / phi.min(), rel=1e-7)
    assert bound.mu_max <= bound.lipschitz


def test_step_just_under_the_bound_converges_just_over_leaves():
    mat, _ = connected_graph(40, 160, 1)
    rule = LocalRule(mat)
    temperature = 0.1
    target = rule.model.minimize(temperature)
    bound = rule.step_bound(target, temperature)
    under = rule.run(
        temperature,
        0.95 * bound.eta_max,
        4000,
        phi0=target * 0.999 + 0.001 / 40,
        target=target,
        tol=1e-15,
    )
    assert under.status == "converged"
    assert under.l1[-1] < 1e-9
    over = rule.run(
        temperature,
        1.05 * bound.eta_max,
        4000,
        phi0=target * 0.999 + 0.001 / 40,
        target=target,
        tol=1e-15,
    )
    assert over.status == "left_simplex"
    # Before leaving it moved away from the minimiser, by the factor 1.05 * 2 - 1 a step.
    assert over.l1[-1] > 10 * over.l1[0]


def test_design_sign_runs_to_a_vertex_at_high_temperature():
    mat, _ = connected_graph(60, 240, 1)
    rule = LocalRule(mat)
    temperature = 100.0
    target = rule.model.minimize(temperature)
    eta = rule.step_bound(target, temperature).eta_best
    run = rule.run(temperature, eta, 5000, sign="design", target=target, tol=1e-15)
    assert run.support[-1] == 1
    assert run.phi.max() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(run.phi - target).sum() > 1.9
    # The corrected sign, same step, same start: the interior minimiser.
    fixed = rule.run(temperature, eta, 5000, target=target, tol=1e-15)
    assert fixed.status == "converged" and fixed.l1[-1] < 1e-9


def test_design_sign_keeps_an_interior_point_where_the_energy_is_curved_enough():
    """Under the design's sign the rule descends E + T S, whose Hessian along
    the simplex is ``P (Q - T diag(1/phi)) P``: where that stays positive
    definite the interior stationary point is stable, so the design's rule
    converges there, close to (not at) F's minimiser."""
    mat, a = connected_graph(60, 240, 1)
    rule = LocalRule(mat)
    temperature = 0.01
    target = rule.model.minimize(temperature)
    eta = rule.step_bound(target, temperature).eta_best
    run = rule.run(temperature, eta, 5000, sign="design", target=target, tol=1e-15)
    assert run.status == "converged" and run.support[-1] == 60
    n = 60
    p = np.eye(n) - np.full((n, n), 1.0 / n)
    curvature = np.sort(
        np.linalg.eigvalsh(p @ (dense_hessian(a) - np.diag(temperature / run.phi)) @ p)
    )[1:]
    assert curvature.min() > 0
    assert 1e-4 < np.abs(run.phi - target).sum() < 0.05


def test_divide_renormalisation_settles_elsewhere():
    """Dividing by the total fixes ``g_i = phi_i sum_j g_j``, not equal g."""
    mat, a = connected_graph(40, 160, 2)
    rule = LocalRule(mat)
    temperature = 0.5
    target = rule.model.minimize(temperature)
    eta = rule.step_bound(target, temperature).eta_best
    run = rule.run(temperature, eta, 4000, renorm="divide", target=target, tol=1e-15)
    assert run.status == "converged"
    g = dense_hessian(a) @ run.phi + temperature * (1.0 + np.log(run.phi))
    assert np.abs(g - run.phi * g.sum()).max() < 1e-8 * np.abs(g).max()
    assert np.abs(run.phi - target).sum() > 1e-3


def test_gossip_estimate_within_its_bound():
    mat, _ = connected_graph(50, 150, 5)
    rule = LocalRule(mat)
    m = rule._mixing.toarray()
    assert np.allclose(m, m.T) and np.allclose(m.sum(axis=1), 1.0)
    eig = np.sort(np.linalg.eigvalsh(m))
    assert eig[0] >= -1e-12
    assert rule.gossip_rate() == pytest.approx(eig[-2], rel=1e-9)
    rng = np.random.default_rng(0)
    for rounds in (0, 5, 40, 200):
        x = rng.random(50) ** 4
        est = rule.gossip_total(x, rounds)
        err = np.abs(est - x.sum()).max()
        bound = rule.gossip_bound(x, rounds)
        assert err <= bound * (1 + 1e-9) + 1e-13
        if rounds == 200:
            assert err < 1e-3 * x.sum()
    k = rule.gossip_rounds_for(1e-8)
    x = np.zeros(50)
    x[7] = 1.0  # all mass on one particle: the worst spread for a given total
    assert np.abs(rule.gossip_total(x, k) - 1.0).max() <= 1e-8


def test_gossip_run_reaches_the_minimiser():
    mat, a = connected_graph(40, 160, 3)
    rule = LocalRule(mat)
    temperature = 0.2
    target = dense_minimiser(dense_hessian(a), temperature)
    eta = rule.step_bound(target, temperature).eta_best
    rounds = rule.gossip_rounds_for(1e-10)
    run = rule.run(
        temperature, eta, 4000, total="gossip", gossip_rounds=rounds, target=target, tol=1e-14
    )
    assert run.total_error.max() <= 1e-10
    assert np.abs(run.phi - target).sum() < 1e-6
    # Too few rounds: the particles' totals disagree and the mass drifts from 1.
    short = rule.run(temperature, eta, 50, total="gossip", gossip_rounds=2, target=target)
    assert short.total_error.max() > 1e-3


def test_refuses_bad_input():
    mat, _ = connected_graph(20, 40, 1)
    rule = LocalRule(mat)
    with pytest.raises(InvalidParameterError):
        rule.run(0.1, -1.0, 10)
    with pytest.raises(InvalidParameterError):
        rule.run(0.0, 0.01, 10)
    with pytest.raises(InvalidParameterError):
        rule.run(0.1, 0.01, 10, renorm="softmax")
    with pytest.raises(InvalidParameterError):
        rule.run(0.1, 0.01, 10, phi0=np.full(19, 1 / 19))
    with pytest.raises(InvalidParameterError):
        rule.run(0.1, 0.01, 10, guard=1.0)
    with pytest.raises(InvalidParameterError):
        rule.gossip_total(np.ones(20), -1)
    split = sp.block_diag([mat, mat]).tocsr()
    with pytest.raises(InvalidParameterError, match="components"):
        LocalRule(split).run(0.1, 0.01, 10, total="gossip", gossip_rounds=5)
    with pytest.raises(InvalidParameterError):
        rule.step_bound(np.r_[0.0, np.full(19, 1 / 19)], 0.1)


def test_guard_carries_the_rule_past_a_first_step_that_overshoots():
    """The bound is local: from the uniform start the first step can be far
    larger than near the minimiser and take a particle below zero even at the
    best local step. Each particle keeping half its focus through a step (a
    rule it applies alone) lets the run reach the same minimiser."""
    mat, _ = connected_graph(400, 1600, 2)
    rule = LocalRule(mat)
    temperature = 0.1
    target = rule.model.minimize(temperature)
    eta = rule.step_bound(target, temperature).eta_best
    g = rule.gradient(np.full(400, 1 / 400), temperature)
    assert eta * (g - g.mean()).max() > 1 / 400  # the first step overshoots zero
    plain = rule.run(temperature, eta, 10, target=target)
    assert plain.status == "left_simplex" and plain.steps == 0
    guarded = rule.run(temperature, eta, 3000, target=target, tol=1e-15, guard=0.5)
    assert guarded.status == "converged"
    assert guarded.l1[-1] < 1e-9
    assert abs(guarded.mass[-1] - 1.0) < 1e-12
