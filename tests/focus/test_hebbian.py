"""Hebbian link factors: bounds, decay to the stake, determinism, and farming.

The focus the attack tests run on is the dense float64 reference
(tests/focus/reference.py), not the engine, so the bounds are checked against
an independent solve.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.linalg import expm

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.hebbian import (
    HebbianParams,
    eligible_links,
    hebbian_step,
    particle_owners,
    run_blocks,
)
from tests.focus.reference import dense_laplacian, dense_tri, dense_weights

ALPHA = 0.85
TRI = (0.5, 0.3, 0.2)
DIFFUSION = (1.0, 0.0, 0.0)


def random_links(seed: int, n: int = 60, m: int = 300):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    neuron = rng.integers(0, 4, m)
    base = rng.uniform(0.1, 2.0, m)
    phi = rng.dirichlet(np.full(n, 0.3))
    return n, src, dst, neuron, base, phi


def reference_step(h, base, phi, src, dst, eligible, p: HebbianParams) -> list[float]:
    """The rule written out one link at a time in plain Python floats."""
    n = float(len(phi))
    boost = [
        p.eta * ((n * float(phi[s])) * (n * float(phi[d]))) if ok else 0.0
        for s, d, ok in zip(src.tolist(), dst.tolist(), eligible.tolist(), strict=True)
    ]
    asked = math.fsum(float(b) * x for b, x in zip(base.tolist(), boost, strict=True))
    limit = p.mass_cap * math.fsum(base.tolist())
    if asked > limit:
        boost = [x * (limit / asked) for x in boost]
    out = []
    for hv, x in zip(h.tolist(), boost, strict=True):
        v = 1.0 + (1.0 - p.delta) * (hv - 1.0) + x
        out.append(min(max(v, 1.0), p.cap))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_step_matches_the_scalar_rule_bit_for_bit(seed):
    n, src, dst, neuron, base, phi = random_links(seed)
    eligible = eligible_links(src, dst, neuron, particle_owners(n, src, dst, neuron))
    p = HebbianParams(eta=0.05, delta=0.2, cap=3.0, mass_cap=0.05)
    h = np.ones(len(src))
    for _ in range(5):
        want = reference_step(h, base, phi, src, dst, eligible, p)
        h, _ = hebbian_step(h, base, phi, src, dst, eligible, p)
        assert h.tobytes() == np.array(want).tobytes()


def test_same_inputs_give_the_same_bits():
    n, src, dst, neuron, base, phi = random_links(3)
    eligible = eligible_links(src, dst, neuron, particle_owners(n, src, dst, neuron))
    p = HebbianParams(eta=0.3, delta=0.05, cap=4.0, mass_cap=0.2)
    runs = []
    for _ in range(2):
        h = np.ones(len(src))
        for _ in range(20):
            h, _ = hebbian_step(h, base, phi, src, dst, eligible, p)
        runs.append(h.tobytes())
    assert runs[0] == runs[1]
    # The inputs are not written to.
    h0 = np.ones(len(src))
    hebbian_step(h0, base, phi, src, dst, eligible, p)
    assert np.all(h0 == 1.0)


def test_factors_stay_within_one_and_the_cap():
    n, src, dst, neuron, base, phi = random_links(4)
    eligible = eligible_links(src, dst, neuron, particle_owners(n, src, dst, neuron))
    p = HebbianParams(eta=50.0, delta=0.01, cap=2.5, mass_cap=10.0)
    h = np.ones(len(src))
    for _ in range(30):
        h, step = hebbian_step(h, base, phi, src, dst, eligible, p)
        assert h.min() >= 1.0 and h.max() <= 2.5
    assert step.at_cap > 0  # the cap was reached, so it was what held them
    assert np.all(h[~eligible] == 1.0)


def test_mass_cap_limits_one_blocks_boost():
    n, src, dst, neuron, base, phi = random_links(5)
    eligible = eligible_links(src, dst, neuron, particle_owners(n, src, dst, neuron))
    p = HebbianParams(eta=10.0, delta=0.5, cap=1e6, mass_cap=0.01)
    h, step = hebbian_step(np.ones(len(src)), base, phi, src, dst, eligible, p)
    assert step.boost_mass > step.mass_limit and step.scale < 1.0
    added = math.fsum((base * (h - 1.0)).tolist())
    assert added == pytest.approx(0.01 * base.sum(), rel=1e-12)
    # Under the cap nothing is scaled.
    small = HebbianParams(eta=1e-6, delta=0.5, cap=1e6, mass_cap=0.01)
    _, step = hebbian_step(np.ones(len(src)), base, phi, src, dst, eligible, small)
    assert step.scale == 1.0


def test_without_coactivation_factors_decay_to_the_stake():
    _n, src, dst, _neuron, base, phi = random_links(6)
    eligible = np.ones(len(src), dtype=bool)
    start = np.random.default_rng(0).uniform(1.0, 2.0, len(src))
    p = HebbianParams(eta=0.0, delta=0.25, cap=2.0, mass_cap=1.0)
    h = start
    for k in range(1, 41):
        h, _ = hebbian_step(h, base, phi, src, dst, eligible, p)
        np.testing.assert_allclose(h - 1.0, (start - 1.0) * 0.75**k, rtol=1e-9, atol=1e-15)
    assert np.all(h - 1.0 < 1e-4)
    # A factor at its stake stays there exactly.
    h, _ = hebbian_step(np.ones(len(src)), base, phi, src, dst, eligible, p)
    assert np.all(h == 1.0)


def test_steady_focus_settles_at_one_plus_boost_over_delta():
    n, src, dst, _neuron, base, phi = random_links(7)
    eligible = np.ones(len(src), dtype=bool)
    p = HebbianParams(eta=0.002, delta=0.3, cap=1e9, mass_cap=1e9)
    h = np.ones(len(src))
    for _ in range(200):
        h, _ = hebbian_step(h, base, phi, src, dst, eligible, p)
    want = 1.0 + 0.002 * (n * phi[src]) * (n * phi[dst]) / 0.3
    np.testing.assert_allclose(h, want, rtol=1e-12)


def test_owners_and_eligibility_by_hand():
    # neuron 0 brings in 0 and 1; neuron 1 brings in 2; neuron 0's 0 -> 1 is
    # its own, its 1 -> 2 is not; neuron 1's 0 -> 1 is not its own; 3 -> 3 is
    # a self-link; an anonymous link is eligible.
    src = np.array([0, 2, 0, 1, 0, 3, 1])
    dst = np.array([1, 2, 1, 2, 1, 3, 0])
    neuron = np.array([0, 1, 0, 0, 1, 2, -1])
    owner = particle_owners(5, src, dst, neuron)
    assert owner.tolist() == [0, 0, 1, 2, -1]
    assert eligible_links(src, dst, neuron, owner).tolist() == [
        False,
        False,
        False,
        True,
        True,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"eta": -1.0},
        {"eta": math.inf},
        {"delta": 0.0},
        {"delta": 1.5},
        {"cap": 0.5},
        {"cap": math.nan},
        {"mass_cap": -0.1},
    ],
)
def test_bad_parameters_are_refused(bad):
    with pytest.raises(InvalidParameterError):
        HebbianParams(**bad).check()


# --- farming ----------------------------------------------------------------
HONEST, ATTACKER, SYBIL = 5, 5, 6
N_HONEST, CLIQUE = 120, 8


def farm_graph(sybil: bool):
    """Honest links among 120 particles (five neurons, Zipf-distributed
    targets), then the attacker: links from the three particles of highest
    focus into eight new particles, which bring them in as its own, and a
    clique among them, made by the attacker itself or by a second identity."""
    rng = np.random.default_rng(0)
    src = rng.integers(0, N_HONEST, 480)
    dst = rng.permutation(N_HONEST)[np.minimum(rng.zipf(1.6, 480) - 1, N_HONEST - 1)]
    keep = src != dst
    src, dst = src[keep], dst[keep]
    neuron = rng.integers(0, HONEST, len(src))
    hubs = np.argsort(-dense_tri(dense_weights(N_HONEST, src, dst, np.ones(len(src)))))[:3]
    own = np.arange(N_HONEST, N_HONEST + CLIQUE)
    pairs = [(i, j) for i in own for j in own if i != j]
    src = np.concatenate([src, hubs, [i for i, _ in pairs]])
    dst = np.concatenate([dst, own[:3], [j for _, j in pairs]])
    clique_neuron = SYBIL if sybil else ATTACKER
    neuron = np.concatenate([neuron, np.full(3, ATTACKER), np.full(len(pairs), clique_neuron)])
    stake = np.ones(SYBIL + 1)
    base = stake[neuron] / np.bincount(neuron, minlength=SYBIL + 1)[neuron]
    return N_HONEST + CLIQUE, src, dst, neuron, base, own


def composite(n, src, dst, w, lam) -> np.ndarray:
    """The tri-kernel's map as a dense column-stochastic matrix, as the
    reference's ``dense_tri`` builds it (springs and heat only where weighed)."""
    a = dense_weights(n, src, dst, w)
    out = a.sum(axis=1)
    u = np.full(n, 1.0 / n)
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    m = lam[0] * (
        ALPHA * p.T + ALPHA * np.outer(u, out <= 0) + (1 - ALPHA) * np.outer(u, np.ones(n))
    )
    if lam[1] or lam[2]:
        lap = dense_laplacian(a, "normalized")
        m += lam[1] * np.linalg.inv(lap + np.eye(n)) + lam[2] * expm(-lap)
    return m


def focus_of(n, src, dst, lam):
    """The fixed point of the dense map by one linear solve, ``(M - I) x = 0``
    with a row replaced by ``sum x = 1`` (the map contracts, so it is unique);
    faster than the reference's eigenvector, checked against it in ``farm``."""

    def solve(w, _x0=None):
        m = composite(n, src, dst, w, lam) - np.eye(n)
        m[0, :] = 1.0
        rhs = np.zeros(n)
        rhs[0] = 1.0
        return np.linalg.solve(m, rhs)

    return solve


def farm(sybil: bool, lam):
    n, src, dst, neuron, base, own = farm_graph(sybil)
    eligible = eligible_links(src, dst, neuron, particle_owners(n, src, dst, neuron))
    params = HebbianParams(eta=1.0, delta=0.1, cap=2.0, mass_cap=1.0)  # pumped hard
    solve = focus_of(n, src, dst, lam)
    seen: list[np.ndarray] = []
    h, _ = run_blocks(
        base, src, dst, eligible, params, 30, solve, observe=lambda b, h, phi, s: seen.append(h)
    )
    attacker = np.isin(neuron, [ATTACKER, SYBIL])
    honest_h = np.where(attacker, 1.0, h)  # the attacker's links earn nothing
    phi = solve(base * h)
    phi_honest = solve(base * honest_h)
    ref = dense_tri(dense_weights(n, src, dst, base * h), alpha=ALPHA, lam=lam)
    np.testing.assert_allclose(phi, ref, rtol=1e-9, atol=1e-13)
    return n, src, dst, base, own, attacker, seen, h, honest_h, phi, phi_honest


def share_bound(n, src, base, honest_h, attacker, phi_honest, cap) -> float:
    """How far the attacker's links at factor ``cap`` can move a set's
    diffusion focus: on a row where its links hold share s of the weight, the
    factor moves the row's distribution by at most
    ``t = s (1 - s)(c - 1) / (1 + s (c - 1))`` in total variation, and the
    fixed point of ``x -> alpha P^T x + ...`` moves by at most
    ``alpha / (1 - alpha) * sum_p phi_p 2 t_p`` in L1, half of it for one set."""
    w = base * honest_h
    row_w = np.bincount(src, weights=w, minlength=n)
    att_w = np.bincount(src, weights=np.where(attacker, w, 0.0), minlength=n)
    s = np.divide(att_w, row_w, out=np.zeros(n), where=row_w > 0)
    t = s * (1 - s) * (cap - 1) / (1 + s * (cap - 1))
    return float(ALPHA / (1 - ALPHA) * (phi_honest * t).sum())


def tri_bound(n, src, dst, base, h, lam, phi_honest) -> float:
    """A posteriori: the composite map contracts L1 distances by
    ``kappa = lam_d alpha + lam_s + lam_h``, so its fixed point lies within
    ``|F(x) - x| / (1 - kappa)`` of any x; one set moves by half of that."""
    kappa = lam[0] * ALPHA + lam[1] + lam[2]
    move = composite(n, src, dst, base * h, lam) @ phi_honest - phi_honest
    return float(0.5 * np.abs(move).sum() / (1 - kappa))


@pytest.mark.parametrize("lam", [DIFFUSION, TRI], ids=["diffusion", "tri"])
def test_a_clique_of_own_particles_earns_no_boost(lam):
    n, src, dst, base, own, attacker, seen, h, honest_h, phi, phi_honest = farm(False, lam)
    clique = np.isin(src, own) & np.isin(dst, own)
    for hb in seen:
        assert hb.min() >= 1.0 and hb.max() <= 2.0
        assert np.all(hb[clique] == 1.0)
    assert h.max() == 2.0  # the pump was on: links elsewhere are at the cap
    # Only the three hub -> clique links earned (at the cap of 2).
    assert np.all(h[attacker & ~clique] == 2.0)
    gain = phi[own].sum() - phi_honest[own].sum()
    if lam == DIFFUSION:
        assert gain <= share_bound(n, src, base, honest_h, attacker, phi_honest, 2.0)
    else:
        assert gain <= tri_bound(n, src, dst, base, h, lam, phi_honest)
    # Measured: 9.7 % (diffusion) and 8.3 % (tri) of the share the clique holds
    # when the attacker's links earn nothing; with a cap of 2 on three links.
    assert 0.0 < gain / phi_honest[own].sum() < 0.10


@pytest.mark.parametrize("lam", [DIFFUSION, TRI], ids=["diffusion", "tri"])
def test_a_sybil_clique_gains_no_more_than_the_cap_allows(lam):
    n, src, dst, base, own, attacker, seen, h, honest_h, phi, phi_honest = farm(True, lam)
    clique = np.isin(src, own) & np.isin(dst, own)
    for hb in seen:
        assert hb.min() >= 1.0 and hb.max() <= 2.0
    assert h[clique].max() == 2.0  # the second identity's links reached the cap, not past it
    gain = phi[own].sum() - phi_honest[own].sum()
    if lam == DIFFUSION:
        bound = share_bound(n, src, base, honest_h, attacker, phi_honest, 2.0)
    else:
        bound = tri_bound(n, src, dst, base, h, lam, phi_honest)
        assert np.abs(phi - phi_honest).sum() <= 2 * bound
    assert gain <= bound
    # Measured: 0.6 % (diffusion: the clique's rows hold only its own links, so
    # scaling them changes no transition) and 3.2 % (tri: springs and heat see
    # the clique's weight against its links to the hubs).
    assert gain / phi_honest[own].sum() < 0.04
