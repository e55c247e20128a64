"""The free energy's minimiser in exact arithmetic (focus/energy_exact.py):
the float64 model's answer, the same bits at any thread count, pinned
digests for other CPUs to match (Anderson-accelerated and plain), fewer
evaluations with Anderson mixing, refused inputs, and warm starts."""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.energy import FreeEnergyModel
from focusflow.focus.energy_exact import ExactFreeEnergy, exact_minimiser
from focusflow.graph import Cybergraph
from tests.helpers import random_weighted

#: sha256 of ``exact_minimiser(pinned_graph(), 0.2).focus.tobytes()`` (the
#: default, Anderson-accelerated iteration): a machine that computes other
#: bits, whatever its CPU, libm or thread count, fails here.
PINNED_DIGEST = "390ac1cd4b31ccbde2d922aa065d16334c9e49c1805d9442f319f961e8695e6a"
#: The same with ``window=0``, the plain damped iteration, which keeps its bits.
PINNED_DIGEST_PLAIN = "ceb2e11861bb4226f3efcf9e68874fe0f57ab6550de82b4347dbcf6efa57a681"


def directed(n: int, m: int, seed: int) -> sp.csr_matrix:
    src, dst, w = random_weighted(n, m, seed)
    return sp.csr_matrix((w, (src, dst)), shape=(n, n))


def pinned_graph() -> sp.csr_matrix:
    return directed(120, 480, 21)


@pytest.fixture(scope="module")
def random_graph() -> sp.csr_matrix:
    return directed(200, 800, 11)


def test_gradient_is_the_float64_models(random_graph):
    """grad E from the exact operators equals the scipy-built model's to rounding,
    for both Laplacians and a stake prior."""
    rng = np.random.default_rng(0)
    phi = rng.random(200) + 0.05
    phi /= phi.sum()
    for over in ({}, {"laplacian": "combinatorial", "prior": "stake", "mu": 0.5, "tau": 2.0}):
        want = FreeEnergyModel(random_graph, **over).energy_gradient(phi)
        got = ExactFreeEnergy(random_graph, **over).energy_gradient(phi)
        assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max(), over


def test_gradient_on_a_patched_snapshot():
    """Links added after the snapshot was built sit in its overlay, which the
    adjoint pull and the degrees read beside the base."""
    g = Cybergraph(require_cids=False)
    src, dst, w = random_weighted(150, 600, 5)
    names = np.array([f"p{i}" for i in range(150)], dtype=object)
    g.add_particles(list(names))
    keep = src != dst
    g.add_links(names[src[keep]], names[dst[keep]], weights=w[keep] + 0.01)
    g.snapshot()
    rng = np.random.default_rng(6)
    g.add_links(names[rng.integers(0, 150, 20)], names[rng.integers(0, 150, 20)])
    snap, _ = g.refresh()
    assert snap.overlay_nnz > 0
    phi = rng.random(snap.n) + 0.05
    phi /= phi.sum()
    for prior in ("uniform", "stake"):
        want = FreeEnergyModel(snap, prior=prior).energy_gradient(phi)
        got = ExactFreeEnergy(snap, prior=prior).energy_gradient(phi)
        assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max(), prior


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_agrees_with_lbfgs_on_a_directed_graph(random_graph, temperature):
    """The default (Anderson-accelerated) minimiser is within 1e-11 in L1 of
    the float64 L-BFGS one, and the Boltzmann form holds (both residuals below
    1e-11: the stop is sqrt(m) <= 1e-12)."""
    model = FreeEnergyModel(random_graph)
    want = model.minimize(temperature)
    got = exact_minimiser(random_graph, temperature)
    assert got.converged and got.merit <= 1e-12
    assert np.abs(got.focus - want).sum() < 1e-11
    assert got.residual < 1e-11
    assert model.boltzmann_residual(got.focus, temperature) < 1e-11
    assert got.free_energy == pytest.approx(model.value(got.focus, temperature), abs=1e-12)
    assert got.focus.sum() == pytest.approx(1.0, abs=1e-14)


def test_uniform_on_a_cycle():
    """On a directed cycle F's minimiser is uniform at every temperature; from a
    skewed start the iteration gets there."""
    n = 12
    mat = sp.csr_matrix((np.ones(n), (np.arange(n), (np.arange(n) + 1) % n)), shape=(n, n))
    model = ExactFreeEnergy(mat)
    rng = np.random.default_rng(1)
    start = rng.random(n) + 0.5
    for temp in (1.0, 0.05):
        got = model.minimize(temp, start / start.sum())
        assert got.converged
        assert np.abs(got.focus - 1.0 / n).max() < 1e-12
        assert np.abs(got.focus - FreeEnergyModel(mat).minimize(temp)).max() < 1e-12


def test_same_bits_at_any_thread_count_and_on_a_rerun(random_graph):
    threads = numba.get_num_threads()
    counts = sorted({1, 2, threads})
    try:
        runs = []
        for k in counts:
            numba.set_num_threads(k)
            runs.append(exact_minimiser(random_graph, 0.3).focus.tobytes())
        runs.append(exact_minimiser(random_graph, 0.3).focus.tobytes())
    finally:
        numba.set_num_threads(threads)
    assert len(set(runs)) == 1


@pytest.mark.parametrize(
    ("window", "digest"),
    [(5, PINNED_DIGEST), (0, PINNED_DIGEST_PLAIN)],
    ids=["anderson", "plain"],
)
def test_pinned_digest(window, digest):
    """The bits of the minimiser on a fixed graph, accelerated and plain. The
    digests were computed on one CPU; any other that implements IEEE 754 must
    compute the same."""
    got = exact_minimiser(pinned_graph(), 0.2, window=window)
    assert got.converged
    assert hashlib.sha256(got.focus.tobytes()).hexdigest() == digest


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_anderson_takes_fewer_evaluations(random_graph, temperature):
    """Anderson mixing reaches the same stop in fewer gradient evaluations than
    the plain iteration, most of its kept steps mixed ones, and at the same
    minimiser: within 1e-11 in L1 of the plain one (and of L-BFGS's, which
    test_agrees_with_lbfgs_on_a_directed_graph checks for the default)."""
    model = ExactFreeEnergy(random_graph)
    plain = model.minimize(temperature, window=0)
    mixed = model.minimize(temperature)
    assert plain.converged and mixed.converged
    assert plain.accelerated == 0
    assert mixed.iterations < 0.75 * plain.iterations
    assert mixed.accelerated > (mixed.iterations - mixed.refused) // 2
    assert np.abs(mixed.focus - plain.focus).sum() < 1e-11


def test_bad_input_is_refused():
    mat = pinned_graph()
    model = ExactFreeEnergy(mat)
    for temp in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidParameterError, match="finite temperature > 0"):
            model.minimize(temp)
    with pytest.raises(InvalidParameterError, match=r"prior vector must have 120 entries"):
        ExactFreeEnergy(mat, prior=np.ones(119))
    with pytest.raises(InvalidParameterError, match="prior vector must be finite"):
        ExactFreeEnergy(mat, prior=np.full(120, np.nan))
    with pytest.raises(InvalidParameterError, match=r"warm start must have 120 entries"):
        model.minimize(0.5, np.ones(7))
    bad = np.full(120, 1.0 / 120)
    bad[3] = np.nan
    with pytest.raises(InvalidParameterError, match="warm start must be finite"):
        model.minimize(0.5, bad)
    with pytest.raises(InvalidParameterError, match="energy weights need 3 finite"):
        ExactFreeEnergy(mat, weights=(0.5, np.nan, 0.5))
    with pytest.raises(InvalidParameterError, match="eta must be in"):
        model.minimize(0.5, eta=0.0)
    with pytest.raises(InvalidParameterError, match="window must be an integer"):
        model.minimize(0.5, window=-1)
    with pytest.raises(InvalidParameterError, match="cyberank"):
        ExactFreeEnergy(mat, mode="cyberank")


def test_warm_start_from_the_answer(random_graph):
    """Resumed from its own result the iteration stops at once with the same
    bits; from the answer as a plain distribution it needs a few steps."""
    model = ExactFreeEnergy(random_graph)
    first = model.minimize(0.3)
    assert first.iterations > 10
    again = model.minimize(0.3, first)
    assert again.iterations == 0
    assert again.focus.tobytes() == first.focus.tobytes()
    near = model.minimize(0.3, first.focus)
    assert near.converged and near.iterations <= 5
    assert np.abs(near.focus - first.focus).sum() < 1e-12


def test_compute_runs_the_model_where_params_name_it(random_graph):
    """``compute(..., model="free-energy")`` is the exact minimiser at the
    params' temperature and tolerance, on numba; a GPU backend and shards are
    refused."""
    from focusflow.focus import compute
    from focusflow.focus.params import make_params

    p = make_params(None, arithmetic="exact-v3", model="free-energy", temperature=0.5, tol=1e-9)
    got = compute(random_graph, p)
    assert got.backend == "numba" and got.diagnostics.converged
    want = ExactFreeEnergy(random_graph, p).minimize(0.5, tol=1e-9, max_iter=p.max_iter)
    assert np.array_equal(got.focus, want.focus)
    assert np.abs(got.focus - FreeEnergyModel(random_graph, p).minimize(0.5)).sum() < 1e-8
    with pytest.raises(InvalidParameterError, match="numba backend only"):
        compute(random_graph, p, backend="numpy")
    with pytest.raises(InvalidParameterError, match="not solved on shards"):
        compute(random_graph, p, shards=2)
