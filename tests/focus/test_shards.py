"""Sharded focus on a local Ray against the one-process solver: the same answer
(diffusion and tri, 2 to 8 shards, a real sample), push-sum, a warm restart
after new links, and the parameters a sharded solve refuses."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import make_params
from focusflow.focus.solver import compute, snapshot_of
from focusflow.graph.generators import rmat_edges
from focusflow.graph.importers import read_graph

ray = pytest.importorskip("ray")

from focusflow.focus.shards.api import compute_sharded  # noqa: E402
from focusflow.focus.shards.inputs import owners_of, parts_of_snapshot, split_links  # noqa: E402
from focusflow.focus.shards.solve import ShardedSolve  # noqa: E402
from tests.focus.ray_driver import LOCAL_RAY, RayDriver  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def driver():
    """One local Ray for the module, its driver in a child process (ray_driver.py)."""
    held = RayDriver(LOCAL_RAY)
    yield held
    held.close()


@pytest.fixture(scope="module")
def rmat():
    n = 2**10
    src, dst, w = rmat_edges(10, 8, seed=3)
    return sp.coo_matrix((w, (src, dst)), shape=(n, n))


def _top(focus: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-focus, kind="stable")[:k]


def _assert_same_top(got: np.ndarray, ref: np.ndarray, k: int) -> None:
    """The top ``k`` in the same order, save exact ties of ``ref`` (particles with
    the same links have the same focus; rounding may order them either way)."""
    g, r = _top(got, k), _top(ref, k)
    differ = g != r
    scale = float(ref.max())
    assert np.all(np.abs(ref[g[differ]] - ref[r[differ]]) <= 1e-14 * scale), (
        f"{int(differ.sum())} of the top {k} differ beyond ties"
    )


def _reference(graph, **kw):
    res = compute(graph, tol=1e-13, backend="numpy", **kw)
    assert res.converged
    return res.focus


# A tri solve makes ~27 product rounds an iteration: on 2 cores the 2- and
# 8-shard ones take 15-30 s, so they are slow; 4 shards stand for them by default.
@pytest.mark.parametrize(
    ("mode", "shards"),
    [
        ("diffusion", 2),
        ("diffusion", 4),
        ("diffusion", 8),
        ("tri", 4),
        pytest.param("tri", 2, marks=pytest.mark.slow),
        pytest.param("tri", 8, marks=pytest.mark.slow),
    ],
)
def test_sharded_equals_one_process(driver, rmat, mode, shards):
    ref = _reference(rmat, mode=mode)
    res = driver(compute_sharded, rmat, make_params(None, mode=mode, tol=1e-13), shards)
    rep = res.shards
    assert rep.converged and res.diagnostics.converged
    assert rep.shards == shards and len(rep.shard_info) == shards
    assert sum(i["particles"] for i in rep.shard_info) == rmat.shape[0]
    assert rep.restarts == 0 and rep.push_rounds == 0
    assert rep.halo_values > 0 and rep.cross_links > 0
    if mode == "tri":
        assert rep.series_terms > 1
    assert res.focus.shape == ref.shape
    assert res.focus.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(res.focus - ref).sum() < 1e-9
    np.testing.assert_array_equal(_top(res.focus, 100), _top(ref, 100))  # no ties there


def test_sharded_bostrom_sample(driver, shared_sample_path):
    g = read_graph(shared_sample_path, skip_invalid=True)
    ref = _reference(g, mode="tri")
    res = driver(compute_sharded, g, make_params(None, mode="tri", tol=1e-13), 4)
    assert res.shards.converged
    assert res.keys == g.particles.keys()
    assert np.abs(res.focus - ref).sum() < 1e-9
    k = min(1000, len(ref))
    _assert_same_top(res.focus, ref, k)


@pytest.mark.parametrize("mode", ["diffusion", pytest.param("tri", marks=pytest.mark.slow)])
def test_sharded_stake_prior(driver, rmat, mode):
    ref = _reference(rmat, mode=mode, prior="stake")
    uniform = _reference(rmat, mode=mode)
    assert np.abs(ref - uniform).sum() > 1e-3  # the prior matters on this graph
    res = driver(compute_sharded, rmat, make_params(None, mode=mode, prior="stake", tol=1e-13), 3)
    assert np.abs(res.focus - ref).sum() < 1e-9


@pytest.mark.parametrize("mode", ["diffusion", pytest.param("tri", marks=pytest.mark.slow)])
def test_sharded_push_sum(driver, rmat, mode):
    ref = _reference(rmat, mode=mode)
    res = driver(
        compute_sharded, rmat, make_params(None, mode=mode, tol=1e-13), 4, reduce="push-sum"
    )
    assert res.shards.converged
    assert res.shards.push_rounds > 0
    assert res.shards.push_spread <= 1e-12
    assert np.abs(res.focus - ref).sum() < 1e-9


def test_sharded_x0(driver, rmat):
    """A start near the answer converges to it, in fewer iterations than a cold solve."""
    params = make_params(None, mode="diffusion", tol=1e-13)
    cold = driver(compute_sharded, rmat, params, 2)
    warm = driver(compute_sharded, rmat, params, 2, x0=cold.focus * 3.0)
    assert np.abs(warm.focus - cold.focus).sum() < 1e-11
    assert warm.shards.iterations < cold.shards.iterations
    with pytest.raises(InvalidParameterError):
        driver(compute_sharded, rmat, params, 2, x0=np.ones(5))


def _split(src, dst, w, owner, shards):
    return split_links(src, dst, w, owner[src], owner[dst], shards)


def _warm_restart(mode: str):
    """Solve, add links, solve again warm (runs in the driver process)."""
    n = 2**10
    src, dst, w = rmat_edges(10, 8, seed=5)
    # The grown graph: new links among old particles and to 24 new ones.
    rng = np.random.default_rng(1)
    m = 300
    n2 = n + 24
    nsrc = rng.integers(0, n2, m)
    ndst = rng.integers(0, n2, m)
    nw = rng.random(m) + 0.1
    nsrc[:24] = np.arange(n, n2)  # every new particle has a link
    shards = 4
    params = make_params(None, mode=mode, tol=1e-13)
    # Owners follow the particles' numbers, so the new ones' are known up front.
    owner = owners_of(n2, None, shards)
    snap, _ = snapshot_of(sp.coo_matrix((w, (src, dst)), shape=(n, n)))
    parts = parts_of_snapshot(ray, snap, owner[:n], shards)
    solve = ShardedSolve(parts, params, incremental=True)
    try:
        first = solve.solve()
        assert first.converged
        cold_iterations = first.iterations
        assert solve.count == n
        blocks = _split(nsrc, ndst, nw, owner, shards)
        solve.add_links([([ray.put(lin)], [ray.put(lout)]) for lin, lout in blocks])
        assert solve.count == n2
        again = solve.solve()
        assert again.converged
        warm_iterations = again.iterations
        ids, phi, keys = solve.gather()
    finally:
        solve.close()
    grown = sp.coo_matrix(
        (np.concatenate([w, nw]), (np.concatenate([src, nsrc]), np.concatenate([dst, ndst]))),
        shape=(n2, n2),
    )
    got = np.zeros(n2)
    got[ids] = phi
    return {
        "grown": grown,
        "got": got,
        "keys": keys,
        "params": params,
        "shards": shards,
        "cold_iterations": cold_iterations,
        "warm_iterations": warm_iterations,
    }


@pytest.mark.parametrize("mode", ["diffusion", pytest.param("tri", marks=pytest.mark.slow)])
def test_add_links_warm_restart(driver, mode):
    out = driver(_warm_restart, mode)
    assert out["keys"] is None
    ref = _reference(out["grown"], mode=mode)
    assert np.abs(out["got"] - ref).sum() < 1e-9
    cold = driver(compute_sharded, out["grown"], out["params"], out["shards"])
    assert np.abs(cold.focus - ref).sum() < 1e-9
    warm = out["warm_iterations"]
    assert warm < cold.shards.iterations, (warm, cold.shards.iterations)
    assert out["cold_iterations"] > 0


@pytest.mark.parametrize(
    "kw",
    [
        {"params": {"mode": "cyberank"}},
        {"params": {"prior": np.full(2**10, 2.0**-10)}},
        {"reduce": "x"},
        {"exchange": "x"},
    ],
    ids=["cyberank", "vector-prior", "reduce", "exchange"],
)
def test_sharded_refuses(driver, rmat, kw):
    kw = dict(kw)
    params = make_params(None, **kw.pop("params", {}))
    with pytest.raises(InvalidParameterError) as err:
        driver(compute_sharded, rmat, params, 2, **kw)
    assert err.value.code == "invalid_parameter"


@pytest.mark.parametrize("shards", [0, 257, "2", True])
def test_sharded_refuses_shard_counts(driver, rmat, shards):
    with pytest.raises(InvalidParameterError):
        driver(compute_sharded, rmat, make_params(None), shards)


def test_gloo_exchange_equals_object_store(driver, rmat):
    pytest.importorskip("torch")
    params = make_params(None, mode="tri", tol=1e-13)
    store = driver(compute_sharded, rmat, params, 3)
    gloo = driver(compute_sharded, rmat, params, 3, exchange="gloo")
    assert np.abs(gloo.focus - store.focus).sum() < 1e-12


def test_locality_assignment_cuts_the_halo_of_the_sample(driver, shared_sample_path):
    g = read_graph(shared_sample_path, skip_invalid=True)
    ref = _reference(g, mode="diffusion")
    params = make_params(None, mode="diffusion", tol=1e-13)
    hashed = driver(compute_sharded, g, params, 4)
    local = driver(compute_sharded, g, params, 4, assign="locality")
    assert np.abs(local.focus - ref).sum() < 1e-9
    assert local.shards.halo_values < hashed.shards.halo_values / 2
    assert local.shards.bytes_per_iteration < hashed.shards.bytes_per_iteration / 2
    with pytest.raises(InvalidParameterError, match="assign must be hash or locality"):
        driver(compute_sharded, g, params, 4, assign="metis")
