"""Fine-tuning the compiled model: the torch forward, training, implicit links, the data.

torch is not a dependency of focusflow and CI has none: the tests that need
it call ``pytest.importorskip("torch")`` and are skipped there. The data
generation (walk sequences, padding, prefixes, split) needs only numpy and
runs everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.compile import finetune as ft
from focusflow.compile.forward import forward_numpy
from focusflow.infer import Inference, InferGraph, InferParams

from .helpers import keyed, padded_contexts


def test_torch_forward_equals_forward_numpy(small_compiled):
    torch = pytest.importorskip("torch")
    _, c = small_compiled
    model = ft.torch_module(ft.weights_arrays(c.weights))
    batch = padded_contexts(c.weights.vocab, seed=7)
    with torch.no_grad():
        got = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(got, forward_numpy(c.weights, batch), rtol=1e-4, atol=1e-7)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0


def _walk_data(graph, walks: int, seed: int):
    engine = Inference(InferGraph.from_cybergraph(graph), InferParams(mode="diffusion"))
    starts, lengths, seeds = ft.plan_walks(graph.n_particles, walks, 4, 6, seed)
    return ft.walk_sequences(engine, starts, lengths, seeds)


def test_training_lowers_the_loss(small_compiled):
    pytest.importorskip("torch")
    g, c = small_compiled
    seqs = _walk_data(g, 24, seed=2)
    train, test = ft.split_sequences(seqs, 0.25, seed=0)
    arrays = ft.random_arrays(ft.weights_arrays(c.weights), seed=0)
    _, run = ft.train(arrays, train, test, steps=20, batch=8, lr=1e-2, eval_every=10)
    steps = [s for s, _ in run["curve"]]
    assert steps[0] == 0 and steps[-1] == 20
    assert run["train_curve"][-1][1] < run["train_curve"][0][1]
    assert run["final"] < run["curve"][0][1]


def test_implicit_links_exclude_existing_links():
    torch = pytest.importorskip("torch")
    from focusflow.compile.pipeline import CompileOptions, adjacency_of, compile_graph

    src = [0, 1, 2, 3, 4, 0, 2]
    dst = [1, 2, 3, 4, 0, 2, 4]
    g = keyed(src, dst)
    c = compile_graph(g, CompileOptions(rank=4, eval_contexts=0))
    model = ft.torch_module(ft.weights_arrays(c.weights))
    a = adjacency_of(g).tocoo()
    keys = [str(k) for k in g.particles.keys()]  # noqa: SIM118
    with torch.no_grad():
        pairs = ft.implicit_links(model, a.row, a.col, keys, per_particle=4)
    linked = {(keys[i], keys[j]) for i, j in zip(a.row, a.col, strict=True)}
    assert pairs and all((x, y) not in linked and x != y for x, y, _ in pairs)
    probs = [p for _, _, p in pairs]
    assert probs == sorted(probs, reverse=True)
    tsv = ft.links_tsv(pairs).splitlines()
    assert tsv[0] == "from\tto\tprobability" and len(tsv) == len(pairs) + 1


def test_walk_sequences_padding_prefixes_and_split(small_compiled):
    g, _ = small_compiled
    seqs = _walk_data(g, 12, seed=1)
    again = _walk_data(g, 12, seed=1)
    np.testing.assert_array_equal(seqs, again)
    assert seqs.dtype == np.int64 and seqs.shape == (12, 6)
    lengths = (seqs >= 0).sum(axis=1)
    _, planned, _ = ft.plan_walks(g.n_particles, 12, 4, 6, 1)
    engine = Inference(InferGraph.from_cybergraph(g), InferParams(mode="diffusion"))
    for row, m, want in zip(seqs, lengths, planned, strict=True):
        assert 1 <= m <= want <= 6
        assert (row[:m] >= 0).all() and (row[m:] == ft.PADDING).all()
        assert len(set(row[:m].tolist())) == m  # the next particle is never in the context
        if m < want:
            # A walk ends early only where its context has no way out: the
            # focus outside it is within the answer's own error.
            pred = engine.predict(row[:m].tolist())
            assert pred.continuation <= (pred.error_bound or 0.0)
    assert (lengths == planned).sum() >= 6
    ctx, tgt = ft.prefix_pairs(seqs)
    assert len(tgt) == int((lengths - 1).sum()) and ctx.shape[1] == seqs.shape[1] - 1
    first = int(np.argmax(lengths >= 2))
    at = int((lengths[:first] - 1).sum())
    assert ctx[at].tolist() == [seqs[first, 0]] + [-1] * 4 and tgt[at] == seqs[first, 1]
    train, test = ft.split_sequences(seqs, 0.25, seed=0)
    assert len(train) == 9 and len(test) == 3
    rows = {tuple(r) for r in seqs.tolist()}
    assert {tuple(r) for r in np.vstack([train, test]).tolist()} == rows
    first = ft.first_occurrence(np.array([[1, 2, 1, -1]]))
    assert first.tolist() == [[True, True, False, False]]


def test_saved_files_round_trip(small_compiled, tmp_path):
    _, c = small_compiled
    ft.save_weights(c.weights, tmp_path / "w.npz")
    arrays = ft.load_arrays(tmp_path / "w.npz")
    np.testing.assert_array_equal(arrays["emb_in"], c.weights.emb_in)
    assert int(arrays["layers"]) == c.weights.layers
    seqs = np.array([[1, 2, -1], [3, 4, 5]])
    ft.save_data(
        tmp_path / "d.npz",
        seqs[:1],
        seqs[1:],
        keys=["a", "b"],
        src=np.array([0]),
        dst=np.array([1]),
        meta={"walks": 2},
    )
    data = ft.load_arrays(tmp_path / "d.npz")
    assert data["keys"].tolist() == ["a", "b"] and data["test"].tolist() == [[3, 4, 5]]
    rand = ft.random_arrays(arrays, seed=0)
    assert {k: v.shape for k, v in rand.items()} == {k: v.shape for k, v in arrays.items()}
