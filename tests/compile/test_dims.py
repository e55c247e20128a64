"""d*, h* and L* against values computed by hand or by a dense SVD."""

from __future__ import annotations

import math

import numpy as np
import pytest

from focusflow.compile.dims import (
    diameter_double_sweep,
    dimension_of,
    effective_rank,
    layers_of,
    semcons_of,
)
from focusflow.compile.pipeline import CompileOptions, adjacency_of, compile_graph
from focusflow.core.errors import InvalidParameterError
from tests.compile.helpers import keyed


def test_effective_rank_of_equal_values_is_their_count():
    assert effective_rank(np.ones(7)) == pytest.approx(7.0)
    assert effective_rank(np.array([3.0, 0.0, 0.0])) == pytest.approx(1.0)
    assert dimension_of(np.array([])) == 1


def test_effective_rank_by_hand():
    s = np.array([2.0, 1.0, 1.0])
    p = s / 4.0
    assert effective_rank(s) == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_path_and_star_diameters():
    path = keyed([0, 1, 2, 3], [1, 2, 3, 4])
    assert diameter_double_sweep(adjacency_of(path)) == 4
    star = keyed([0, 0, 0, 0, 0], [1, 2, 3, 4, 5])
    assert diameter_double_sweep(adjacency_of(star)) == 2
    # Direction does not matter: the sweep runs on the undirected graph.
    star_in = keyed([1, 2, 3], [0, 0, 0])
    assert diameter_double_sweep(adjacency_of(star_in)) == 2


def test_layers_by_hand():
    lay = layers_of(4, 0.5, 1e-3, cap=12)
    assert lay.steps_per_hop == 10  # ceil(log(1000) / log(2)) = ceil(9.97)
    assert lay.raw == 40 and lay.capped == 12
    assert layers_of(1, 0.1, 1e-2, cap=12).capped == 2
    with pytest.raises(InvalidParameterError):
        layers_of(3, 1.0)


def test_h_star_counts_semcons_and_heads_respect_the_share():
    neuron = np.array([0, 0, 0, 1, 1, -1] + [0] * 94)
    sem = semcons_of(neuron, ["a", "b"], min_share=0.03)
    assert sem.h_star == 3
    assert sem.head_names() == ["a", "(other)"]
    assert sem.n_heads == 2
    heads = sem.head_of_link()
    assert heads[0] == 0 and heads[3] == 1 and heads[5] == 1
    one = semcons_of(np.full(5, -1), [])
    assert one.h_star == 1 and one.n_heads == 1 and not one.pooled


def test_graph_with_two_semcons_and_a_path():
    g = keyed([0, 1, 2, 3], [1, 2, 3, 4], ["is_a", "is_a", "part_of", "is_a"])
    c = compile_graph(g, CompileOptions(eval_contexts=0, rank=8))
    assert c.report["h_star"] == 2
    assert c.report["diameter_estimate"] == 4
    lay = c.layers
    assert lay.raw == 4 * math.ceil(math.log(1e3) / math.log(1 / lay.kappa))
    assert c.report["L_star"] == min(lay.raw, 12)


def test_d_star_matches_dense_svd(small_compiled):
    g, c = small_compiled
    a = adjacency_of(g).toarray()
    phi = c.focus.focus
    dense = np.linalg.svd(np.sqrt(phi)[:, None] * a, compute_uv=False)
    # The report's spectrum is the randomized top 32: d* over the same 32 values,
    # to the randomized SVD's accuracy; with k = n the spectrum is complete.
    assert c.report["effective_rank"] == pytest.approx(effective_rank(dense[:32]), rel=1e-3)
    full = compile_graph(g, CompileOptions(rank=g.n_particles, eval_contexts=0))
    assert full.report["effective_rank"] == pytest.approx(effective_rank(dense), rel=1e-6)
    assert full.report["d_star"] == round(effective_rank(dense))
