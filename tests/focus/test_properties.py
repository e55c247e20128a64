"""Properties every focus vector has, checked on random graphs (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.focus import compute
from focusflow.graph import Cybergraph
from tests.focus.reference import as_matrix

graphs = st.integers(min_value=2, max_value=40).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.lists(
            st.tuples(
                st.integers(0, n - 1), st.integers(0, n - 1), st.floats(0.0, 10.0, allow_nan=False)
            ),
            min_size=0,
            max_size=4 * n,
        ),
    )
)


def _arrays(edges):
    if not edges:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    s, d, w = zip(*edges, strict=True)
    return np.array(s), np.array(d), np.array(w)


@settings(max_examples=60, deadline=None)
@given(graphs, st.sampled_from(["tri", "diffusion"]))
def test_focus_is_a_distribution(graph, mode):
    n, edges = graph
    res = compute(as_matrix(n, *_arrays(edges)), mode=mode, tol=1e-10)
    assert np.all(res.focus >= 0)
    assert abs(res.focus.sum() - 1.0) < 1e-12


@settings(max_examples=40, deadline=None)
@given(graphs, st.sampled_from(["tri", "diffusion"]), st.randoms(use_true_random=False))
def test_relabelling_particles_permutes_focus(graph, mode, rnd):
    n, edges = graph
    s, d, w = _arrays(edges)
    perm = np.array(rnd.sample(range(n), n))
    a = compute(as_matrix(n, s, d, w), mode=mode, tol=1e-12).focus
    b = compute(as_matrix(n, perm[s], perm[d], w), mode=mode, tol=1e-12).focus
    assert np.abs(b[perm] - a).sum() < 1e-9


@settings(max_examples=30, deadline=None)
@given(graphs, st.sampled_from(["tri", "diffusion"]), st.data())
def test_zero_stake_links_change_nothing(graph, mode, data):
    n, edges = graph
    names = [f"p{i}" for i in range(n)]
    g = Cybergraph(require_cids=False)
    g.add_particles(names)
    g.add_neurons(["rich", "broke"], [1.0, 0.0])
    s, d, _ = _arrays(edges)
    g.add_links([names[i] for i in s], [names[i] for i in d], ["rich"] * len(s))
    before = compute(g, mode=mode, tol=1e-12).focus
    extra = data.draw(
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=20)
    )
    if extra:
        es, ed = zip(*extra, strict=True)
        g.add_links([names[i] for i in es], [names[i] for i in ed], ["broke"] * len(es))
    after = compute(g, mode=mode, tol=1e-12).focus
    assert np.abs(after - before).sum() < 1e-10


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_near_zero_degree_particle_does_not_break_springs(backend):
    """Found by the relabelling property: one edge of weight 2^-52 made a pair
    whose normalized Laplacian scaled values by 6.7e7; springs stopped to a
    tolerance meaningless for the rest, the result depended on particle order
    and the iteration ran to its cap. Such particles count as unlinked."""
    n = 8
    s, d = np.array([0, 0, 2, 1]), np.array([5, 6, 1, 2])
    w = np.array([2.220446049250313e-16, 0.0, 1.0, 1.0])
    a = compute(as_matrix(n, s, d, w), mode="tri", tol=1e-12, backend=backend)
    assert a.diagnostics.converged
    for seed in range(5):
        perm = np.random.default_rng(seed).permutation(n)
        b = compute(as_matrix(n, perm[s], perm[d], w), mode="tri", tol=1e-12, backend=backend)
        assert np.abs(b.focus[perm] - a.focus).sum() < 1e-9
