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
    # Held-out loss on 6 walks is not monotone at lr 1e-2 (it overfits 18
    # training walks by step 20): training must lower it somewhere, and the
    # run reports where.
    assert run["best"] < run["curve"][0][1] and run["best_step"] > 0
    assert run["best"] == min(v for _, v in run["curve"])


def test_training_keeps_the_best_weights_and_stops_early(small_compiled):
    torch = pytest.importorskip("torch")
    g, c = small_compiled
    seqs = _walk_data(g, 24, seed=2)
    train, test = ft.split_sequences(seqs, 0.25, seed=0)
    arrays = ft.random_arrays(ft.weights_arrays(c.weights), seed=0)
    model, run = ft.train(
        arrays, train, test, steps=200, batch=8, lr=1e-2, eval_every=10, patience=10
    )
    assert run["stopped"] == "patience" and run["steps"] < run["max_steps"] == 200
    assert run["steps"] - run["best_step"] >= 10 and run["final"] > run["best"]
    # The module returned is the one of the best held-out loss, not the last.
    ctx, tgt = ft.prefix_pairs(test)
    first = torch.from_numpy(ft.first_occurrence(ctx)).to(torch.float32)
    with torch.no_grad():
        loss = ft.next_particle_nll(model, torch.from_numpy(ctx), torch.from_numpy(tgt), first)
    assert float(loss.mean()) == pytest.approx(run["best"], rel=1e-5)
    _, timed = ft.train(arrays, train, test, steps=200, batch=8, eval_every=10, deadline=0.0)
    assert timed["stopped"] == "deadline" and timed["steps"] == 0  # past it: no step


def test_module_arrays_give_the_module_forward(small_compiled):
    torch = pytest.importorskip("torch")
    import dataclasses

    _, c = small_compiled
    compiled = ft.weights_arrays(c.weights)
    hop_p = c.weights.hop_p.copy()
    model = ft.torch_module(compiled)
    with torch.no_grad():
        model.hop_p.neg_()  # the module reads |hop_p|: the saved arrays must too
    # Changing the module's weights never writes through to the arrays it was built from.
    np.testing.assert_array_equal(compiled["hop_p"], hop_p)
    arrays = ft.module_arrays(model, compiled)
    assert (arrays["hop_p"] >= 0).all() and not arrays["hop_sem"].any()
    tables = {k: arrays[k] for k in (*ft.PARAMETERS, "hop_idx", "hop_sem")}
    back = dataclasses.replace(c.weights, **tables)
    batch = padded_contexts(c.weights.vocab, seed=7)
    with torch.no_grad():
        got = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(forward_numpy(back, batch), got, rtol=1e-4, atol=1e-7)


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
    # Linked particles are skipped before the four are counted: each particle
    # proposes every particle it does not link to (at most four here).
    out_degree = np.bincount(a.row, minlength=len(keys))
    per_source = {k: sum(1 for x, _, _ in pairs if x == k) for k in keys}
    assert per_source == {k: 4 - int(out_degree[i]) for i, k in enumerate(keys)}
    with torch.no_grad():
        assert len(ft.implicit_links(model, a.row, a.col, keys, per_particle=1, limit=2)) == 2
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


def test_main_fine_tunes_the_compiled_init_alone(small_compiled, tmp_path):
    pytest.importorskip("torch")
    import json

    from focusflow.compile.pipeline import adjacency_of

    g, c = small_compiled
    seqs = _walk_data(g, 24, seed=2)
    train, test = ft.split_sequences(seqs, 0.25, seed=0)
    a = adjacency_of(g).tocoo()
    keys = [str(k) for k in g.particles.keys()]  # noqa: SIM118
    ft.save_weights(c.weights, tmp_path / "w.npz")
    ft.save_data(
        tmp_path / "d.npz", train, test, keys=keys, src=a.row, dst=a.col, meta={"walks": 24}
    )
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path / "d.npz"), "--weights", str(tmp_path / "w.npz")]
    argv += ["--out", str(out), "--inits", "compiled", "--steps", "6", "--eval-every", "2"]
    argv += ["--lr", "1e-2,1e-4", "--batch", "8", "--limit", "0"]
    assert ft.main(argv) == 0
    res = json.loads((out / "finetune.json").read_text())
    assert set(res["runs"]) == {"compiled lr=0.01", "compiled lr=0.0001"}
    assert "comparison" not in res
    chosen = res["proposals_from"]
    assert chosen["held_out"] == min(r["best"] for r in res["runs"].values())
    assert chosen["step"] == res["runs"][chosen["run"]]["best_step"]
    lines = (out / "implicit_links.tsv").read_text().splitlines()
    assert lines[0] == "from\tto\tprobability" and len(lines) - 1 == res["implicit_links"]
    assert ft.load_arrays(out / "finetuned.npz")["emb_in"].shape == c.weights.emb_in.shape
