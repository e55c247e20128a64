"""The sharded solve's pieces without Ray: hashing, the shards' layouts against
dense matrices, a shard worker driven in-process, the exchange rounds and push-sum."""

from __future__ import annotations

import itertools
import math

import mmh3
import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.buckets import murmur64
from focusflow.focus.params import make_params
from focusflow.focus.shards.exchange import tournament
from focusflow.focus.shards.inputs import owners_of, split_links
from focusflow.focus.shards.layout import EdgeBlock, build_layout
from focusflow.focus.shards.partition import (
    MAX_SHARDS,
    check_shards,
    murmur64_ints,
    murmur64_keys,
    shard_of_hashes,
)
from focusflow.focus.shards.pushsum import PushSum, target
from focusflow.focus.shards.worker import ShardWorker, SolveConfig
from focusflow.focus.solver import compute
from focusflow.focus.spectral import blend_series
from tests.focus.reference import dense_weights
from tests.helpers import random_weighted

# --- hashing --------------------------------------------------------------------------------


def _mmh3_int(v: int) -> int:
    raw = int(v).to_bytes(8, "little", signed=True)
    return int.from_bytes(mmh3.hash_bytes(raw, 0, True)[:8], "little")


def test_murmur64_ints_equals_mmh3():
    rng = np.random.default_rng(7)
    info = np.iinfo(np.int64)
    values = np.concatenate(
        [
            rng.integers(info.min, info.max, 500, dtype=np.int64, endpoint=True),
            rng.integers(-1000, 1000, 200),
            np.array([0, 1, -1, info.min, info.max, 2**32, -(2**32)], dtype=np.int64),
        ]
    )
    got = murmur64_ints(values)
    assert got.dtype == np.uint64
    want = np.array([_mmh3_int(v) for v in values.tolist()], dtype=np.uint64)
    np.testing.assert_array_equal(got, want)


def test_murmur64_keys_equals_buckets_murmur64():
    keys = ["", "a", "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "ünïcødé ∂", "x" * 300]
    keys += [f"particle-{i}" for i in range(100)]
    got = murmur64_keys(keys)
    want = np.array([murmur64(k.encode("utf-8")) for k in keys], dtype=np.uint64)
    np.testing.assert_array_equal(got, want)
    # The owner is the hash mod the shard count.
    np.testing.assert_array_equal(
        shard_of_hashes(got, 7), np.array([int(h) % 7 for h in want.tolist()], dtype=np.int32)
    )


@pytest.mark.parametrize("bad", [0, MAX_SHARDS + 1, -3, "2", True, False, 2.0, None])
def test_check_shards_refuses(bad):
    with pytest.raises(InvalidParameterError) as err:
        check_shards(bad)
    assert err.value.code == "invalid_parameter"


def test_check_shards_takes_counts():
    assert check_shards(1) == 1
    assert check_shards(MAX_SHARDS) == MAX_SHARDS
    out = check_shards(np.int64(5))
    assert out == 5 and type(out) is int


# --- layouts against dense matrices ---------------------------------------------------------


def _layouts(n, src, dst, w, shards, symmetric=True):
    owner = owners_of(n, None, shards)
    blocks = split_links(src, dst, w, owner[src], owner[dst], shards)
    lays = []
    for s, (lin, lout) in enumerate(blocks):
        own = np.flatnonzero(owner == s).astype(np.int64)
        lays.append(build_layout(s, shards, own, lin, lout, symmetric))
    return owner, lays


@pytest.mark.parametrize("shards", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("seed", range(3))
def test_layouts_equal_dense_rows(shards, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 80))
    src, dst, w = random_weighted(n, 4 * n, seed)
    # Self-links of their own, which every layout must drop.
    loops = rng.integers(0, n, 10)
    src = np.concatenate([src, loops]).astype(np.int64)
    dst = np.concatenate([dst, loops]).astype(np.int64)
    w = np.concatenate([w, rng.random(10) + 1.0])
    a = dense_weights(n, src, dst, w)  # diagonal zeroed
    owner, lays = _layouts(n, src, dst, w, shards)
    ids = np.concatenate([lay.ids for lay in lays])
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))  # every particle, once
    x = rng.random(n) + 0.1
    pull_ref = a.T @ x
    sym_ref = (a + a.T) @ x
    for s, lay in enumerate(lays):
        assert np.all(np.diff(lay.ids) > 0)
        assert np.all(owner[lay.ids] == s)
        halo = lay.halo
        assert halo.bounds.shape == (shards + 1,)
        assert halo.bounds[0] == 0 and halo.bounds[-1] == halo.size
        assert halo.bounds[s] == halo.bounds[s + 1]  # nothing of its own in the halo
        for j in range(shards):
            part = halo.of(j)
            assert np.all(owner[part] == j)
            assert np.all(np.diff(part) > 0)  # ascending within each owner
        ext = np.concatenate([x[lay.ids], x[halo.ids]])
        assert lay.pull.shape == (lay.n, lay.n + halo.size)
        np.testing.assert_allclose(lay.pull @ ext, pull_ref[lay.ids], rtol=1e-13, atol=1e-13)
        assert lay.sym is not None
        np.testing.assert_allclose(lay.sym @ ext, sym_ref[lay.ids], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(lay.out_weight, a.sum(axis=1)[lay.ids], rtol=1e-13, atol=0)
        np.testing.assert_allclose(lay.in_weight, a.sum(axis=0)[lay.ids], rtol=1e-13, atol=0)
        # Self-links counted nowhere.
        own_in = (dst != src) & (owner[dst] == s)
        own_out = (dst != src) & (owner[src] == s)
        assert lay.links_in == int(own_in.sum())
        assert lay.links_out == int(own_out.sum())
    # Every halo entry is something some row reads.
    for lay in lays:
        used = np.unique(lay.pull.indices)
        used = np.union1d(used, np.unique(lay.sym.indices))
        assert np.all(np.isin(np.arange(lay.n, lay.n + lay.halo.size), used))


def test_layout_without_symmetric_rows_reads_in_links_only():
    n = 30
    src, dst, w = random_weighted(n, 90, 11)
    a = dense_weights(n, src, dst, w)
    owner, lays = _layouts(n, src, dst, w, 3, symmetric=False)
    x = np.linspace(1.0, 2.0, n)
    for s, lay in enumerate(lays):
        assert lay.sym is None
        ext = np.concatenate([x[lay.ids], x[lay.halo.ids]])
        np.testing.assert_allclose(lay.pull @ ext, (a.T @ x)[lay.ids], rtol=1e-13)
        # The halo holds in-link sources only.
        in_src = src[(owner[dst] == s) & (owner[src] != s) & (src != dst)]
        np.testing.assert_array_equal(np.sort(lay.halo.ids), np.unique(in_src))


def test_layout_of_self_links_only_is_empty():
    src = np.array([0, 1, 2, 2], dtype=np.int64)
    owner = np.zeros(3, dtype=np.int32)
    block = EdgeBlock(src, src.copy(), np.ones(4), owner[src])
    lay = build_layout(0, 1, np.arange(3), block, block, True)
    assert lay.n == 3 and lay.pull.nnz == 0 and lay.sym.nnz == 0
    assert lay.links_in == 0 and lay.links_out == 0
    assert not lay.out_weight.any() and lay.halo.size == 0


def test_layout_local_refuses_foreign_ids():
    n = 40
    src, dst, w = random_weighted(n, 100, 3)
    _, lays = _layouts(n, src, dst, w, 2)
    lay = lays[0]
    np.testing.assert_array_equal(lay.local(lay.ids[::2]), np.arange(0, lay.n, 2))
    with pytest.raises(InvalidParameterError):
        lay.local(lays[1].ids[:1])


# --- shard workers driven in-process --------------------------------------------------------


def _workers(n, src, dst, w, shards, symmetric):
    owner = owners_of(n, None, shards)
    blocks = split_links(src, dst, w, owner[src], owner[dst], shards)
    workers = []
    for s, (lin, lout) in enumerate(blocks):
        own = np.flatnonzero(owner == s).astype(np.int64)
        workers.append(ShardWorker(s, shards, symmetric, 0, 1, 1, True, own, lin, lout))
    return owner, workers


def _config(workers, params, tri):
    sizes = np.array([wk.local_sizes() for wk in workers])
    entry_max = float(sizes[:, 2].max())
    weights = params.weights if tri else (1.0, 0.0, 0.0)
    coeffs: tuple[float, ...] = ()
    degree_max = 0.0
    if tri:
        degree_max = max(wk.degree_max(params.laplacian, entry_max) for wk in workers)
        lam_max = 2.0 if params.laplacian == "normalized" else 2.0 * degree_max
        share = weights[1] / (weights[1] + weights[2])
        a, _ = blend_series(params.tau * lam_max / 2.0, params.mu, lam_max, share, 1e-15)
        coeffs = tuple(float(v) for v in a)
    cfg = SolveConfig(
        count=int(sizes[:, 0].sum()),
        alpha=params.alpha,
        weights=weights,
        prior=str(params.prior),
        touch_total=float(sizes[:, 1].sum()),
        laplacian=params.laplacian,
        entry_max=entry_max,
        degree_max=degree_max,
        coeffs=coeffs,
    )
    needs = [wk.needs() for wk in workers]
    for i, wk in enumerate(workers):
        wk.configure(cfg, *[needs[j][i] for j in range(len(workers))])
        wk.restore(None)
    return cfg


def _iteration(workers, cfg, total):
    """One outer iteration as the driver runs it: returns the blend's total and the L1 change."""
    s = len(workers)
    outs = [wk.advance(total) for wk in workers]
    change = math.fsum(o[s][0] for o in outs)
    dm = math.fsum(o[s][1] for o in outs)
    posts = [o[:s] for o in outs]
    if cfg.tri:
        for _ in range(len(cfg.coeffs) - 1):
            posts = [wk.cheb_step(*[posts[j][i] for j in range(s)]) for i, wk in enumerate(workers)]
    c = cfg.alpha * dm + (1.0 - cfg.alpha)
    sums = [wk.finish(c, *[posts[j][i] for j in range(s)]) for i, wk in enumerate(workers)]
    return math.fsum(sums), change


def _gather(n, workers):
    phi = np.zeros(n)
    for wk in workers:
        ids, part, _ = wk.gather()
        phi[ids] = part
    return phi


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("prior", ["uniform", "stake"])
def test_worker_diffusion_step_equals_dense_formula(shards, prior):
    n = 50
    src, dst, w = random_weighted(n, 160, 5)
    a = dense_weights(n, src, dst, w)
    params = make_params(None, mode="diffusion", prior=prior)
    _owner, workers = _workers(n, src, dst, w, shards, symmetric=False)
    cfg = _config(workers, params, tri=False)
    x = np.random.default_rng(1).random(n)
    x /= x.sum()
    for wk in workers:
        wk.restore(x[wk.layout.ids])
    total, _ = _iteration(workers, cfg, None)
    out = a.sum(axis=1)
    dangling = out <= 0
    p = np.divide(a, out[:, None], out=np.zeros_like(a), where=out[:, None] > 0)
    if prior == "stake":
        touch = a.sum(axis=0) + a.sum(axis=1)
        u = touch / touch.sum()
    else:
        u = np.full(n, 1.0 / n)
    alpha = params.alpha
    dm = x[dangling].sum()
    z = alpha * p.T @ x + (alpha * dm + 1 - alpha) * u
    got = np.zeros(n)
    for wk in workers:
        got[wk.layout.ids] = wk._z
    np.testing.assert_allclose(got, z, rtol=1e-12, atol=1e-15)
    assert total == pytest.approx(z.sum(), rel=1e-12)
    # The next advance normalises the blend into phi and reports the L1 change.
    s = len(workers)
    outs = [wk.advance(total) for wk in workers]
    change = math.fsum(o[s][0] for o in outs)
    np.testing.assert_allclose(_gather(n, workers), z / z.sum(), rtol=1e-12, atol=1e-15)
    assert change == pytest.approx(np.abs(z / z.sum() - x).sum(), rel=1e-9)


@pytest.mark.parametrize("mode", ["diffusion", "tri"])
@pytest.mark.parametrize("laplacian", ["normalized", "combinatorial"])
def test_workers_in_process_reach_one_process_answer(mode, laplacian):
    n = 120
    src, dst, w = random_weighted(n, 500, 9)
    params = make_params(None, mode=mode, laplacian=laplacian, tol=1e-13)
    tri = mode == "tri"
    _, workers = _workers(n, src, dst, w, 4, symmetric=tri)
    cfg = _config(workers, params, tri=tri)
    total, change = _iteration(workers, cfg, None)
    for _ in range(2000):
        total, change = _iteration(workers, cfg, total)
        if change < 1e-13:
            break
    assert change < 1e-13
    got = _gather(n, workers)
    ref = compute(
        sp.coo_matrix((w, (src, dst)), shape=(n, n)),
        mode=mode,
        laplacian=laplacian,
        tol=1e-13,
        backend="numpy",
    ).focus
    assert np.abs(got - ref).sum() < 1e-9


def test_worker_add_links_keeps_phi_and_grows():
    n = 20
    src, dst, w = random_weighted(n, 40, 2)
    _owner, workers = _workers(n, src, dst, w, 1, symmetric=True)
    params = make_params(None, mode="tri")
    _config(workers, params, tri=True)
    wk = workers[0]
    before = wk.layout.ids.copy()
    wk.phi = np.arange(wk.layout.n, dtype=np.float64) + 1.0
    new = np.array([n, n + 1], dtype=np.int64)
    block = EdgeBlock(new, np.array([0, n], dtype=np.int64), np.ones(2), np.zeros(2, np.int32))
    out = EdgeBlock(new, np.array([0, n], dtype=np.int64), np.ones(2), np.zeros(2, np.int32))
    assert wk.add_links(1, block, out) == len(before) + 2
    pos = np.searchsorted(wk.layout.ids, before)
    np.testing.assert_array_equal(wk.phi[pos], np.arange(len(before)) + 1.0)
    assert wk.phi[np.searchsorted(wk.layout.ids, new)].tolist() == [0.0, 0.0]


# --- exchange rounds and push-sum ---------------------------------------------------------


@pytest.mark.parametrize("shards", range(1, 10))
def test_tournament_meets_every_pair_once(shards):
    rounds = tournament(shards)
    seen = [pair for r in rounds for pair in r]
    assert sorted(seen) == list(itertools.combinations(range(shards), 2))
    for r in rounds:
        players = [p for pair in r for p in pair]
        assert len(players) == len(set(players))
        assert all(a < b for a, b in r)


def test_push_sum_targets_are_peers():
    for r in range(50):
        for s in range(5):
            t = target(r, s, 5, 3)
            assert 0 <= t < 5 and t != s
            assert t == target(r, s, 5, 3)  # seeded: the same draw every run
    assert target(0, 0, 1, 0) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_push_sum_converges_to_the_sums(seed):
    shards = 5
    rng = np.random.default_rng(seed)
    values = rng.random((shards, 3)) * np.array([1.0, 1e-3, 2.0])
    truth = values.sum(axis=0)
    states = [PushSum(s, shards) for s in range(shards)]
    for st, v in zip(states, values, strict=True):
        st.start(v)
    inbox: list[list] = [[] for _ in range(shards)]
    for r in range(200):
        sent = [st.round(r, seed, inbox[i]) for i, st in enumerate(states)]
        inbox = [[] for _ in range(shards)]
        for i, msg in enumerate(sent):
            inbox[target(r, i, shards, seed)].append(msg)
        for i, st in enumerate(states):
            st.absorb(inbox[i])
        inbox = [[] for _ in range(shards)]
        # Mass is conserved every round.
        assert math.isclose(sum(st.w for st in states), shards, rel_tol=1e-12)
        est = np.array([st.estimate() for st in states])
        if np.abs(est - truth).max() <= 1e-12:
            break
    else:
        pytest.fail(f"push-sum did not reach 1e-12 in 200 rounds: {np.abs(est - truth).max()}")
    assert r < 200
