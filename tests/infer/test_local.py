"""The local path of inference: its answer and error bound against dense float64 solves."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.local_push import LocalGraph, PushScratch, Walks, local_focus
from focusflow.focus.params import FocusParams
from focusflow.graph.snapshot import Snapshot
from focusflow.infer import Inference, InferGraph, InferParams
from focusflow.infer import engine as engine_module


def random_links(seed: int, n: int, m: int, dangling: int = 0):
    """Random weighted links; the last ``dangling`` particles get no out-links."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n - dangling, m)
    dst = rng.integers(0, n, m)
    keep = src != dst
    return src[keep], dst[keep], rng.random(int(keep.sum())) + 0.05


def dense_focus(n, src, dst, w, context, weights, mode: str) -> np.ndarray:
    """``phi*_c`` by a dense solve of ``(I - M) x = u`` in float64, from the
    formulas of docs/focus.md (not the solver's code): P from the out-weights,
    ``L = I - A D^-1``, ``S = mu (L + mu)^-1``, ``H = expm(-tau L)``."""
    fp = FocusParams()
    lam_d, lam_s, lam_h = fp.weights if mode == "tri" else (1.0, 0.0, 0.0)
    W = np.zeros((n, n))
    np.add.at(W, (src, dst), w)
    out = W.sum(axis=1)
    PT = (W / np.where(out > 0, out, 1.0)[:, None]).T
    A = W + W.T
    d = A.sum(axis=0)
    L = np.eye(n) - A / np.where(d > 0, d, 1.0)[None, :]
    L[:, d == 0] = 0.0
    S = fp.mu * np.linalg.inv(L + fp.mu * np.eye(n))
    H = sla.expm(-fp.tau * L)
    M = lam_d * 0.85 * PT + lam_s * S + lam_h * H
    u = np.zeros(n)
    np.add.at(u, context, weights)
    x = np.linalg.solve(np.eye(n) - M, u / u.sum())
    return x / x.sum()


@pytest.mark.parametrize("mode", ["tri", "diffusion"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_push_bound_holds_against_a_dense_solve(mode, seed):
    n = 50
    src, dst, w = random_links(seed, n, 160, dangling=5)
    graph = LocalGraph.of(Snapshot(n, src, dst, w))
    scratch = PushScratch(n)
    fp = FocusParams()
    walks = Walks.of(0.85, fp.mu, fp.tau, fp.weights if mode == "tri" else (1.0, 0.0, 0.0))
    context, weights = np.array([3, 17, 3]), np.array([1.0, 2.0, 0.5])
    ref = dense_focus(n, src, dst, w, context, weights, mode)
    bounds = []
    for target in (0.3, 3e-2, 3e-3, 3e-4, 1e-6):
        got = local_focus(graph, scratch, walks, context, weights, target, n, 10**9)
        assert got.converged and got.error_bound <= target
        phi = np.zeros(n)
        phi[got.support] = got.values
        assert abs(phi.sum() - 1.0) < 1e-12
        err = np.abs(phi - ref).sum()
        assert err <= got.error_bound, (target, err, got.error_bound)
        bounds.append(got.error_bound)
        # Nothing of the query is left in the buffers the next one reuses.
        assert not scratch.r.any() and not scratch.x.any() and not scratch.flags.any()
    assert bounds[-1] < 1e-6


def test_a_context_in_a_small_component_is_answered_exactly_by_the_push():
    # A 3-cycle apart from a larger random graph: the push never leaves it.
    src, dst, w = random_links(4, 40, 150)
    src = np.concatenate([src, [40, 41, 42]])
    dst = np.concatenate([dst, [41, 42, 40]])
    w = np.concatenate([w, [1.0, 2.0, 1.0]])
    n = 43
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    engine = Inference(ig, InferParams(context_weight=1.0))
    pred = engine.predict(["40"])
    assert pred.path == "local"
    assert set(pred.support.tolist()) <= {40, 41, 42}
    ref = dense_focus(n, src, dst, w, np.array([40]), np.ones(1), "tri")
    assert np.abs(pred.probs - ref).sum() <= pred.error_bound <= engine.params.local_target


@pytest.mark.parametrize("mode", ["tri", "diffusion"])
def test_both_paths_report_bounds_that_hold(mode):
    n = 60
    src, dst, w = random_links(7, n, 200, dangling=4)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    common = {"mode": mode, "context_weight": 1.0}
    local = Inference(ig, InferParams(**common, local_share=1.0, local_work=1e3))
    whole = Inference(ig, InferParams(**common, path="whole-graph"))
    for h in range(0, n, 7):
        ref = dense_focus(n, src, dst, w, np.array([h]), np.ones(1), mode)
        for engine, path in ((local, "local"), (whole, "whole-graph")):
            pred = engine.predict([h])
            assert pred.path == path
            assert pred.error_bound is not None
            assert np.abs(pred.probs - ref).sum() <= pred.error_bound
        # The local answer's ranking read from its support is the dense one's.
        a = local.predict([h])
        ids, p = a.top(10)
        dense = Inference(ig, InferParams(**common, local_share=1.0, local_work=1e3)).predict([h])
        d_ids, d_p = dense.top(10)
        np.testing.assert_array_equal(ids, d_ids)
        np.testing.assert_allclose(p, d_p)


def test_the_whole_graph_answers_when_the_push_would_reach_too_far(monkeypatch):
    n = 200
    src, dst, w = random_links(5, n, 1600)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    tight = Inference(ig, InferParams(local_work=1e-3))
    monkeypatch.setattr(engine_module, "LOCAL_MIN_WORK", 1)
    pred = tight.predict(["5"])
    assert pred.path == "whole-graph" and pred.focus is not None
    _, scratch, _ = ig.local(None, 0.85, "tri")
    assert not scratch.r.any() and not scratch.x.any() and not scratch.flags.any()
    monkeypatch.setattr(engine_module, "LOCAL_MIN_PARTICLES", 1)
    few = Inference(ig, InferParams(local_share=0.01, local_work=1e3))
    assert few.predict(["5"]).path == "whole-graph"
    # A graph whose buffers would pass the memory cap is not pushed on at all.
    monkeypatch.setattr(engine_module, "LOCAL_MAX_STATES", n)
    big = Inference(ig, InferParams(local_share=1.0, local_work=1e3))
    assert big.predict(["6"]).path == "whole-graph"


def test_context_weight_applies_to_local_answers():
    n = 30
    src, dst, w = random_links(2, n, 90)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    params = {"local_share": 1.0, "local_work": 1e3, "mode": "diffusion"}
    pred = Inference(ig, InferParams(**params)).predict(["1"])
    assert pred.path == "local"
    assert pred.probs[1] == 0.0 and abs(pred.probs.sum() - 1.0) < 1e-12
    keep = Inference(ig, InferParams(**params, context_weight=1.0)).predict(["1"])
    assert keep.probs[1] > 0


@pytest.mark.parametrize(
    "bad",
    [
        {"path": "local-only"},
        {"local_tol": 0.0},
        {"local_tol": 2.5},
        {"local_share": 0.0},
        {"local_share": 1.5},
        {"local_work": 0.0},
        {"local_work": float("nan")},
    ],
)
def test_bad_local_parameters_are_refused(bad):
    with pytest.raises(InvalidParameterError):
        InferParams(**bad).validate()


@pytest.mark.parametrize("weights", [[1.0, -1.0], [np.nan, 1.0], [0.0, 0.0], [1.0]])
def test_bad_context_weights_are_refused_before_the_push(weights):
    n = 20
    src, dst, w = random_links(3, n, 50)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    with pytest.raises(InvalidParameterError):
        Inference(ig).predict(["1", "2"], weights=weights)


def test_a_graph_whose_pushes_keep_giving_up_is_pushed_on_rarely(monkeypatch):
    n = 200
    src, dst, w = random_links(5, n, 1600)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    monkeypatch.setattr(engine_module, "LOCAL_MIN_WORK", 1)
    engine = Inference(ig, InferParams(local_work=1e-3))
    tried = []
    push = Inference._local

    def counted(self, *args):
        tried.append(1)
        return push(self, *args)

    monkeypatch.setattr(Inference, "_local", counted)
    for h in range(20):
        assert engine.predict([h]).path == "whole-graph"
    # Eight tries, then one in every sixteen queries (the sixteenth miss).
    assert len(tried) == engine_module.LOCAL_SKIP_AFTER + 1
    # A push that answers clears the count.
    monkeypatch.setattr(engine_module, "LOCAL_MIN_WORK", 10**9)
    engine._misses[None] = 3
    assert engine.predict([150]).path == "local"
    assert not engine._misses


@pytest.mark.parametrize("path", ["auto", "whole-graph"])
def test_a_walk_ends_where_its_context_has_no_way_out(path):
    """In diffusion the mass of a dangling particle returns to the context, so a
    context of dangling particles keeps the whole exact focus: a walk from there
    ends, on either path, rather than drawing from what a solve leaves elsewhere
    as its error. A context with a way out walks on."""
    n = 60
    src, dst, w = random_links(3, n, 240, dangling=4)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    engine = Inference(ig, InferParams(mode="diffusion", path=path))
    dead = engine.predict(["59"])
    ref = dense_focus(n, src, dst, w, np.array([59]), np.ones(1), "diffusion")
    assert ref[59] == pytest.approx(1.0)
    assert dead.continuation <= (dead.error_bound or 0.0)
    assert list(engine.walk(["59"], 5, seed=1)) == []
    steps = list(engine.walk(["0"], 3, seed=1))
    assert steps and steps[0].particle != 0
    assert engine.predict(["0"]).continuation > 0.5


def test_a_walk_draws_a_local_answer_as_the_whole_distribution_would():
    """A local answer is drawn from its support; the walk is the one a draw from
    the dense distribution gives, step for step, under every sampling rule."""
    from focusflow.infer.sampling import Sampling, draw

    n = 80
    src, dst, w = random_links(11, n, 160)
    ig = InferGraph.from_arrays(
        n, src, dst, w, np.full(len(src), -1), [], [str(i) for i in range(n)]
    )
    engine = Inference(ig, InferParams(mode="diffusion", local_share=1.0, local_work=1e3))
    for rules in (Sampling(), Sampling(top_k=3), Sampling(top_p=0.5, temperature=0.7)):
        steps = list(engine.walk(["1"], 6, seed=4, sampling=rules))
        assert steps
        rng = np.random.default_rng(4)
        current = [1]
        for step in steps:
            pred = engine.predict(current)
            assert pred.path == "local" and pred.dense is None
            nxt, p = draw(pred.probs, rules, rng)
            assert (nxt, p) == (step.particle, pytest.approx(step.probability))
            current.append(nxt)
