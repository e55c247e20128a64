"""The exact hops: tables against hand-computed rows, weighted steps against dense
matrix powers, semcon factors through the ONNX model, and their refusals."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.compile.forward import forward_numpy, hop_levels
from focusflow.compile.pipeline import CompileOptions, compile_graph, write
from focusflow.compile.runner import CompiledModel
from focusflow.compile.weights import hop_tables
from focusflow.core.errors import InvalidParameterError
from focusflow.graph.semcons import UnknownSemconError

from .helpers import keyed


def test_hop_tables_by_hand():
    # 0 -> 1 twice under semcon 0 (3 + 1), 0 -> 2 and 0 -> 3 at 1, 0 -> 1 under semcon 1 at 2;
    # 1 -> 0; 2 and 3 are dangling.
    src = np.array([0, 0, 0, 0, 0, 1])
    dst = np.array([1, 1, 2, 3, 1, 0])
    w = np.array([3.0, 1.0, 1.0, 1.0, 2.0, 5.0])
    sem = np.array([0, 0, 1, 0, 1, 0])
    idx, p, s, rest = hop_tables(4, src, dst, w, sem, 2)
    total = 8.0
    assert idx[0].tolist() == [1, 1]  # (1, sem 0) = 4, then (1, sem 1) = 2
    assert s[0].tolist() == [0, 1]
    np.testing.assert_allclose(p[0], [4 / total, 2 / total])
    np.testing.assert_allclose(rest[0], 2 / total)  # 0 -> 2 and 0 -> 3 left out
    assert idx[1].tolist() == [0, 0] and p[1].tolist() == [1.0, 0.0] and rest[1] == 0.0
    assert not p[2:].any() and not rest[2:].any()
    # A tie at the cut keeps the lower target.
    idx, p, s, rest = hop_tables(
        4, np.array([0, 0, 0]), np.array([3, 1, 2]), np.ones(3), np.zeros(3, dtype=int), 2
    )
    assert idx[0].tolist() == [1, 2] and np.isclose(rest[0], 1 / 3)


def test_hop_tables_in_pieces_equal_one_piece():
    """Filled a piece of links at a time (each piece whole sources), the tables
    are those of one pass over every link, ties and weights of zero included."""
    rng = np.random.default_rng(7)
    m, n = 5000, 300
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    w = rng.choice([0.0, 1.0, 2.0, 0.5], m)
    sem = rng.integers(0, 3, m)
    whole = hop_tables(n, src, dst, w, sem, 4, chunk=m)
    for chunk in (1, 7, 97, 1000):
        pieces = hop_tables(n, src, dst, w, sem, 4, chunk=chunk)
        for a, b in zip(whole, pieces, strict=True):
            np.testing.assert_array_equal(a, b)


def _two_relations():
    """A ring under ``rel:a`` with chords under ``rel:b``; every out-degree <= 3."""
    n = 12
    src = list(range(n)) + list(range(0, n, 2))
    dst = [(i + 1) % n for i in range(n)] + [(i + 5) % n for i in range(0, n, 2)]
    neurons = ["rel:a"] * n + ["rel:b"] * (n // 2)
    g = keyed(src, dst, neurons)
    c = compile_graph(g, CompileOptions(rank=6, eval_contexts=0, seed=0))
    return g, c, np.array(src), np.array(dst), neurons


def test_weighted_steps_equal_dense_powers():
    g, c, src, dst, neurons = _two_relations()
    w = c.weights
    names = list(w.semcon_names)
    factors = np.array(
        [0.3 if names[i] == "rel:a" else 2.0 for i in range(len(names))], dtype=np.float32
    )
    n = g.n_particles
    key = {k: i for i, k in enumerate(g.particles.keys())}
    fw = np.array([factors[names.index(x)] for x in neurons], dtype=np.float64)
    fw *= g.link_weight(np.arange(g.n_links, dtype=np.int64))  # links in insertion order
    a = np.zeros((n, n))
    np.add.at(a, ([key[f"p{i}"] for i in src], [key[f"p{i}"] for i in dst]), fw)
    p = a / a.sum(axis=1, keepdims=True)
    ctx = np.array([[key["p0"], key["p7"]]])
    levels = hop_levels(w, ctx, factors)
    assert len(levels) == w.hops == 3
    for k, (to, pr) in enumerate(levels, 1):
        pk = np.linalg.matrix_power(p, k)
        for j, start in enumerate(ctx[0]):
            dense = np.zeros(n)
            np.add.at(dense, to[0, j], pr[0, j])
            np.testing.assert_allclose(dense, pk[start], atol=1e-6)


@pytest.fixture(scope="module")
def relation_model(tmp_path_factory):
    g, c, *_ = _two_relations()
    out = tmp_path_factory.mktemp("rel")
    write(c, g, out, eval_contexts=0)
    return g, c, CompiledModel.load(out)


def test_semcon_factors_pick_the_relation(relation_model):
    _, _, model = relation_model
    p0 = model.index_of("p0")
    along_a, along_b = model.index_of("p1"), model.index_of("p5")
    only_a = model.predict([[p0]], model.factors({"rel:a": 1.0}, 0.0))[0]
    only_b = model.predict([[p0]], model.factors({"b": 1.0}, 0.0))[0]  # by suffix
    assert only_a[along_a] > only_a[along_b]
    assert only_b[along_b] > only_b[along_a]
    mask = np.ones(model.vocab, dtype=bool)
    mask[p0] = False
    assert np.flatnonzero(mask)[only_b[mask].argmax()] == along_b


def test_onnx_equals_numpy_with_factors(relation_model):
    _, c, model = relation_model
    rng = np.random.default_rng(2)
    batch = rng.integers(0, model.vocab, (3, 5))
    batch[2, 2:] = -1
    for factors in (None, np.array([0.5, 3.0], dtype=np.float32), np.array([0.0, 1.0])):
        got = model.predict(batch, factors)
        want = forward_numpy(c.weights, batch, factors)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(model.predict(batch), model.predict(batch, np.ones(2)))
    assert model.semcons.names == ("rel:a", "rel:b")


def test_factor_refusals(relation_model):
    _, _, model = relation_model
    ctx = [[0]]
    with pytest.raises(InvalidParameterError, match="2 numbers"):
        model.predict(ctx, np.ones(3))
    with pytest.raises(InvalidParameterError, match="finite and >= 0"):
        model.predict(ctx, np.array([1.0, -1.0]))
    with pytest.raises(InvalidParameterError, match="finite and >= 0"):
        model.predict(ctx, np.array([1.0, np.nan]))
    with pytest.raises(InvalidParameterError, match="all 0"):
        model.predict(ctx, np.zeros(2))
    with pytest.raises(UnknownSemconError) as exc:
        model.factors({"rel:c": 1.0})
    assert exc.value.code == "unknown_semcon"
    assert model.factors(None) is None


@pytest.mark.parametrize("hops", [0, 1, 2])
def test_fewer_hops_onnx_equals_numpy(tmp_path, hops):
    g, *_ = _two_relations()
    c = compile_graph(g, CompileOptions(rank=6, eval_contexts=0, seed=0, hops=hops))
    assert c.weights.hops == hops and c.report["exact_hops"] == hops
    write(c, g, tmp_path, eval_contexts=0)
    model = CompiledModel.load(tmp_path)
    batch = np.array([[0, 3, -1], [5, -1, -1]])
    factors = np.array([1.0, 0.2], dtype=np.float32)
    for f in (None, factors):
        np.testing.assert_allclose(
            model.predict(batch, f), forward_numpy(c.weights, batch, f), rtol=1e-4, atol=1e-6
        )


def test_hops_follow_the_tables_coverage():
    # A ring: every particle has one out-link, the tables hold all of it.
    ring, *_ = _two_relations()
    auto = compile_graph(ring, CompileOptions(rank=6, eval_contexts=0, seed=0))
    assert auto.report["hop_coverage"] == pytest.approx(1.0) and auto.weights.hops == 3
    # A complete graph on 40 particles: the tables hold 16 of each 39 out-links.
    n = 40
    src = [i for i in range(n) for j in range(n) if i != j]
    dst = [j for i in range(n) for j in range(n) if i != j]
    dense = compile_graph(keyed(src, dst), CompileOptions(rank=6, eval_contexts=0, seed=0))
    assert dense.report["hop_coverage"] == pytest.approx(16 / 39, rel=1e-6)
    assert dense.weights.hops == 1
    with pytest.raises(InvalidParameterError, match="at most 3"):
        CompileOptions(hops=4).check()
