"""Focus-flow inference against independent references, and its refusals."""

from __future__ import annotations

import typing

import networkx as nx
import numpy as np
import pytest

from focusflow.core.cid import cid_of_text
from focusflow.core.errors import InvalidParameterError
from focusflow.focus.personal import context_prior, personalized_focus
from focusflow.graph.cybergraph import Cybergraph
from focusflow.infer import (
    EmptyContextError,
    Inference,
    InferGraph,
    InferOptions,
    InferParams,
    Sampling,
    UnknownParticleError,
    UnknownSemconError,
    infer,
)
from focusflow.infer.engine import next_distribution
from focusflow.infer.sampling import candidates, draw


def edge_graph(edges: list[tuple[str, str, float]]) -> Cybergraph:
    g = Cybergraph(require_cids=False)
    src = g.add_particles([a for a, _, _ in edges])
    dst = g.add_particles([b for _, b, _ in edges])
    g.add_link_ids(src, dst, weights=np.array([w for *_, w in edges]))
    return g


def typed_graph() -> Cybergraph:
    """Particles are texts' CIDs; each relation is its own neuron (its semcon)."""
    g = Cybergraph(require_cids=True)
    rows = [
        ("dog", "canine", "is_a"),
        ("canine", "animal", "is_a"),
        ("cat", "feline", "is_a"),
        ("feline", "animal", "is_a"),
        ("dog", "tail", "has_part"),
        ("cat", "tail", "has_part"),
        ("dog", "bark", "does"),
        ("animal", "dog", "example"),
        ("animal", "cat", "example"),
    ]
    src = g.add_particles([cid_of_text(a) for a, _, _ in rows])
    dst = g.add_particles([cid_of_text(b) for _, b, _ in rows])
    neurons = g.add_neurons([f"rel:{r}" for *_, r in rows])
    g.add_link_ids(src, dst, neurons)
    return g


def test_personalized_diffusion_equals_networkx_pagerank():
    rng = np.random.default_rng(3)
    n, m = 60, 400
    src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
    keep = src != dst
    src, dst, w = src[keep], dst[keep], rng.random(keep.sum()) + 0.1
    g = edge_graph([(str(a), str(b), float(x)) for a, b, x in zip(src, dst, w, strict=True)])
    ig = InferGraph.from_cybergraph(g)
    ctx = [ig.index_of("3"), ig.index_of("17")]
    ours = personalized_focus(
        ig.snapshot(), np.asarray(ctx), mode="diffusion", tol=1e-13, backend="numba"
    ).focus
    G = nx.DiGraph()
    G.add_nodes_from(range(ig.n))
    for a, b, x in zip(ig.src, ig.dst, ig.weight, strict=True):
        prev = G.get_edge_data(int(a), int(b), {"weight": 0.0})["weight"]
        G.add_edge(int(a), int(b), weight=prev + float(x))
    ref = nx.pagerank(
        G, alpha=0.85, personalization={c: 1.0 for c in ctx}, tol=1e-14, max_iter=10_000
    )
    ref_vec = np.array([ref[i] for i in range(ig.n)])
    assert np.abs(ours - ref_vec).sum() < 1e-9


def test_obvious_answer_ranks_first_in_both_modes():
    g = edge_graph([("a", "b", 10.0), ("a", "c", 0.1), ("c", "d", 1.0), ("b", "e", 0.1)])
    for mode in ("tri", "diffusion"):
        top = infer(g, ["a"], top=3, mode=mode)
        assert top[0][0] == "b", (mode, top)
        assert all(key != "a" for key, _ in top), "the context is excluded by default"


def test_context_weight_keeps_or_drops_the_context():
    phi = np.array([0.5, 0.3, 0.2])
    assert next_distribution(phi, np.array([0]), 0.0).tolist() == pytest.approx([0, 0.6, 0.4])
    assert next_distribution(phi, np.array([0]), 1.0).tolist() == pytest.approx([0.5, 0.3, 0.2])
    half = next_distribution(phi, np.array([0]), 0.5)
    assert half.sum() == pytest.approx(1.0) and half[0] == pytest.approx(0.25 / 0.75)


def test_text_and_cid_name_the_same_particle():
    ig = InferGraph.from_cybergraph(typed_graph())
    by_text = ig.resolve(["dog"])
    by_cid = ig.resolve([cid_of_text("dog")])
    assert by_text.tolist() == by_cid.tolist()


def test_semcons_restrict_where_the_flow_goes():
    ig = InferGraph.from_cybergraph(typed_graph())
    engine = Inference(ig, InferParams(mode="diffusion", tol=1e-10))
    only_isa = engine.predict(["dog"], semcons={"is_a": 1.0}, other_semcons=0.0)
    reached = {ig.key(int(i)) for i in np.flatnonzero(only_isa.probs > 1e-12)}
    assert reached == {
        cid_of_text(t) for t in ("canine", "animal", "cat", "feline", "tail", "bark")
    } - {cid_of_text(t) for t in ("cat", "feline", "tail", "bark")}
    ids, _ = only_isa.top(1)
    assert ig.key(int(ids[0])) == cid_of_text("canine")
    parts = engine.predict(["dog"], semcons={"rel:has_part": 1.0}, other_semcons=0.0)
    assert ig.key(int(parts.top(1)[0][0])) == cid_of_text("tail")


def test_a_two_particle_context_pools_at_what_they_share():
    ig = InferGraph.from_cybergraph(typed_graph())
    engine = Inference(ig, InferParams(mode="tri"))
    pred = engine.predict(["dog", "cat"], semcons={"has_part": 1.0}, other_semcons=0.0)
    assert ig.key(int(pred.top(1)[0][0])) == cid_of_text("tail")


def test_walks_are_reproducible_with_a_seed():
    ig = InferGraph.from_cybergraph(typed_graph())
    engine = Inference(ig)
    first = [s.particle for s in engine.walk(["dog"], 5, seed=7)]
    again = [s.particle for s in Inference(ig).walk(["dog"], 5, seed=7)]
    assert first == again and len(first) == 5
    others = {tuple(s.particle for s in engine.walk(["dog"], 5, seed=k)) for k in range(8)}
    assert len(others) > 1, "different seeds give different walks"
    first_only = Sampling(top_k=1)
    greedy = [s.particle for s in engine.walk(["dog"], 3, seed=1, sampling=first_only)]
    assert greedy == [s.particle for s in engine.walk(["dog"], 3, seed=2, sampling=first_only)]


def test_sampling_rules():
    probs = np.array([0.0, 0.5, 0.3, 0.15, 0.05])
    ids, p = candidates(probs, Sampling(top_k=2))
    assert ids.tolist() == [1, 2] and p.tolist() == pytest.approx([0.625, 0.375])
    ids, _ = candidates(probs, Sampling(top_p=0.8))
    assert ids.tolist() == [1, 2]
    ids, _ = candidates(probs, Sampling(top_p=0.81))
    assert ids.tolist() == [1, 2, 3]
    _, p = candidates(probs, Sampling(temperature=0.5))
    assert p[np.argmax(p)] > 0.5, "a low temperature sharpens"
    rng = np.random.default_rng(0)
    counts = np.bincount([draw(probs, Sampling(), rng)[0] for _ in range(4000)], minlength=5)
    assert counts[0] == 0 and abs(counts[1] / 4000 - 0.5) < 0.04
    assert draw(np.zeros(4), Sampling(), rng) == (-1, 0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"context": []}, EmptyContextError, "empty_context"),
        ({"context": ["no such particle"]}, UnknownParticleError, "unknown_particle"),
        ({"context": [10**6]}, UnknownParticleError, "unknown_particle"),
        (
            {"context": ["bafkreiXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"]},
            UnknownParticleError,
            "unknown_particle",
        ),
        ({"context": ["dog"], "semcons": {"no_such": 1.0}}, UnknownSemconError, "unknown_semcon"),
        (
            {"context": ["dog"], "semcons": {"is_a": -1.0}},
            InvalidParameterError,
            "invalid_parameter",
        ),
    ],
)
def test_bad_queries_get_precise_errors(kwargs, error, code):
    engine = Inference(InferGraph.from_cybergraph(typed_graph()))
    with pytest.raises(error) as info:
        engine.predict(**kwargs)
    assert info.value.code == code


@pytest.mark.parametrize(
    "bad",
    [
        {"mode": "cyberank"},
        {"tol": 0.0},
        {"context_weight": 2.0},
        {"alpha": 1.0},
        {"precision": "float16"},
        {"exact_share": 0.0},
        {"exact_share": 2.0},
        {"start_tol": 0.0},
        {"start_tol": 1.5},
    ],
)
def test_bad_parameters_are_refused(bad):
    with pytest.raises(InvalidParameterError):
        InferParams(**bad).validate()


def test_infer_options_name_every_parameter_with_its_type():
    """``infer``'s keyword arguments are typed by ``InferOptions``: it must say
    what ``InferParams`` takes, field for field."""
    assert typing.get_type_hints(InferOptions) == typing.get_type_hints(InferParams)


@pytest.mark.parametrize(
    "bad", [Sampling(temperature=0), Sampling(top_k=-1), Sampling(top_p=0), Sampling(top_p=1.5)]
)
def test_bad_sampling_is_refused(bad):
    with pytest.raises(InvalidParameterError):
        bad.validate()


def test_context_prior_checks_and_mixes():
    u = context_prior(4, np.array([1, 1, 3]), mix=0.2)
    assert u.sum() == pytest.approx(1.0)
    assert u.tolist() == pytest.approx([0.05, 0.8 * 2 / 3 + 0.05, 0.05, 0.8 / 3 + 0.05])
    with pytest.raises(InvalidParameterError):
        context_prior(4, np.array([4]))
    with pytest.raises(InvalidParameterError):
        context_prior(4, np.array([], dtype=np.int64))


def test_semcon_lookup_is_a_table_not_a_scan():
    """A graph of 10^4 semcons answers a semcon name by lookup (a request naming
    many semcons must not cost a scan of every neuron's name each)."""
    n = 10_000
    ig = InferGraph.from_arrays(
        2,
        np.zeros(n, dtype=np.int64),
        np.ones(n, dtype=np.int64),
        np.ones(n),
        np.arange(n),
        [f"node:{i}" for i in range(n)],
        ["a", "b"],
    )
    assert ig.semcon_index("node:9999") == n - 1
    assert ig.semcon_index("42") == 42
    assert ig._semcon_table is not None and ig._semcon_table._exact is not None
    with pytest.raises(UnknownSemconError):
        ig.semcon_index("node:10000")


def test_naming_a_semcon_keeps_a_tenth_of_the_others_by_default():
    ig = InferGraph.from_cybergraph(typed_graph())
    engine = Inference(ig, InferParams(mode="diffusion", tol=1e-10))
    default = engine.predict(["dog"], semcons={"is_a": 1.0})
    tenth = engine.predict(["dog"], semcons={"is_a": 1.0}, other_semcons=0.1)
    np.testing.assert_array_equal(default.probs, tenth.probs)
    plain = engine.predict(["dog"])
    np.testing.assert_array_equal(plain.probs, engine.predict(["dog"], other_semcons=1.0).probs)


def test_queries_under_ever_new_semcon_weights_keep_memory_bounded():
    """Each semcon weighting is a snapshot of its own; a client naming a new
    weighting with every query must not make the process keep them all."""
    import gc
    import weakref

    from focusflow.focus.solver import OPERATORS_KEPT
    from focusflow.graph.snapshot import Snapshot
    from focusflow.infer.graph import SNAPSHOTS_KEPT

    ig = InferGraph.from_cybergraph(typed_graph())
    engine = Inference(ig, InferParams(mode="tri"))
    made = []
    real_init = Snapshot.__init__

    def tracking_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(weakref.ref(self))

    Snapshot.__init__ = tracking_init
    try:
        for k in range(1, 3 * (SNAPSHOTS_KEPT + OPERATORS_KEPT)):
            engine.predict(["dog"], semcons={"is_a": 1.0 + k / 7}, other_semcons=0.5)
    finally:
        Snapshot.__init__ = real_init
    engine._cache.clear()
    gc.collect()
    alive = sum(r() is not None for r in made)
    assert len(made) > SNAPSHOTS_KEPT + OPERATORS_KEPT
    assert alive <= SNAPSHOTS_KEPT + OPERATORS_KEPT
