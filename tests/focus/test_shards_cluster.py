"""Sharded focus on a real two-node Ray cluster on loopback: the same answer as
one process with shards on both nodes, and a worker killed mid-solve that the
solve recovers from with the same bits."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import numpy as np
import pytest
import scipy.sparse as sp

from focusflow.focus.params import make_params
from focusflow.focus.solver import compute, snapshot_of
from focusflow.graph.generators import rmat_edges

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from focusflow.focus.shards.api import compute_sharded  # noqa: E402
from focusflow.focus.shards.inputs import owners_of, parts_of_snapshot, split_links  # noqa: E402
from focusflow.focus.shards.solve import ShardedSolve  # noqa: E402
from tests.focus.ray_driver import RayDriver  # noqa: E402
from tests.ray_cluster import free_port, start_node, stop  # noqa: E402

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster():
    driver = None
    port = free_port()
    address = f"127.0.0.1:{port}"
    # A short temp dir: Ray's socket paths under it must stay below 108 bytes.
    temp = tempfile.mkdtemp(prefix="ffray", dir="/tmp")
    marks = [address, f"gcs_server_port={port}", temp]
    # Loopback only: no token authentication, so that the nodes and the
    # driver need no token file (the driver's setting is restored after).
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled")
    saved = os.environ.get("RAY_AUTH_MODE")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    try:
        start_node(
            [
                "--head",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--object-store-memory=100000000",
                "--disable-usage-stats",
                "--include-dashboard=false",
                f"--temp-dir={temp}",
            ],
            env,
        )
        start_node(
            [
                f"--address={address}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--object-store-memory=100000000",
            ],
            env,
        )
        driver = RayDriver()
        deadline = time.monotonic() + 60
        while driver(_alive_nodes, address) < 2:
            assert time.monotonic() < deadline, "the worker node never joined"
            time.sleep(0.5)
        yield address, driver
    finally:
        if driver is not None:
            driver.close()
        stop(marks)
        shutil.rmtree(temp, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_AUTH_MODE", None)
        else:
            os.environ["RAY_AUTH_MODE"] = saved


@pytest.fixture(scope="module")
def rmat():
    n = 2**10
    src, dst, w = rmat_edges(10, 8, seed=4)
    return sp.coo_matrix((w, (src, dst)), shape=(n, n))


def _raylet_of(pid: int) -> int:
    """The raylet that started worker ``pid`` (its node's), by the process tree."""
    p = psutil.Process(pid)
    while p is not None:
        if "raylet" in p.name():
            return p.pid
        p = p.parent()
    raise AssertionError(f"worker {pid} has no raylet above it")


def _alive_nodes(address: str) -> int:
    """How many nodes of the cluster at ``address`` are alive (in the driver process)."""
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        return sum(1 for n in ray.nodes() if n["Alive"])
    finally:
        ray.shutdown()


def _connected() -> bool:
    return ray.is_initialized()


def test_cluster_equals_one_process(cluster, rmat):
    address, driver = cluster
    ref = compute(rmat, mode="tri", tol=1e-13, backend="numpy").focus
    params = make_params(None, mode="tri", tol=1e-13)
    res = driver(compute_sharded, rmat, params, 4, cluster=address)
    assert not driver(_connected)  # the call connected, and let go again
    rep = res.shards
    assert rep.converged
    assert np.abs(res.focus - ref).sum() < 1e-9
    pids = [i["pid"] for i in rep.shard_info]
    assert len(set(pids)) == 4
    # Where the shards run is checked while they live (the next test); here,
    # both nodes are still up after the solve.
    assert driver(_alive_nodes, address) == 2


def _solve(cluster, graph, shards, kill_at=None):
    """A diffusion solve of ``graph`` on ``cluster``; with ``kill_at``, the
    progress callback SIGKILLs worker 1 at that iteration."""
    ray.init(address=cluster, log_to_driver=False, logging_level="ERROR")
    try:
        snap, _ = snapshot_of(graph)
        owner = owners_of(snap.n, None, shards)
        parts = parts_of_snapshot(ray, snap, owner, shards)
        killed = []
        holder = {}

        def progress(it: int, change: float) -> None:
            if kill_at is not None and it == kill_at and not killed:
                pid = ray.get(holder["solve"].workers[1].pid.remote())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        solve = ShardedSolve(
            parts, make_params(None, mode="diffusion", tol=1e-13), progress=progress
        )
        holder["solve"] = solve
        try:
            pids = ray.get([w.pid.remote() for w in solve.workers])
            raylets = {_raylet_of(p) for p in pids}
            report = solve.solve()
            ids, phi, _ = solve.gather()
            after = ray.get([w.pid.remote() for w in solve.workers])
        finally:
            solve.close()
        return ids, phi, report, raylets, killed, pids, after
    finally:
        ray.shutdown()


def test_killed_worker_gives_the_same_bits(cluster, rmat):
    address, driver = cluster
    ids0, phi0, rep0, raylets, killed0, _, _ = driver(_solve, address, rmat, 4)
    assert rep0.converged and rep0.restarts == 0 and not killed0
    assert len(raylets) == 2  # the shards ran on both nodes
    ids1, phi1, rep1, _, killed1, pids, after = driver(_solve, address, rmat, 4, kill_at=3)
    assert killed1 == [pids[1]]
    assert after[1] != pids[1]  # worker 1 was restarted in a new process
    assert rep1.converged
    assert rep1.restarts >= 1
    assert rep1.iterations == rep0.iterations
    np.testing.assert_array_equal(ids1, ids0)
    assert np.array_equal(phi1, phi0)
    ref = compute(rmat, mode="diffusion", tol=1e-13, backend="numpy").focus
    got = np.zeros(rmat.shape[0])
    got[ids1] = phi1
    assert np.abs(got - ref).sum() < 1e-9


def _added_then_solve(address, rmat, nsrc, ndst, nw, owner, shards, params, kill):
    """Solve, add links, solve again; with ``kill``, worker 1 is SIGKILLed at the
    third iteration of the second solve (runs in the driver process)."""
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        snap, _ = snapshot_of(rmat)
        parts = parts_of_snapshot(ray, snap, owner, shards)
        holder = {}

        def progress(it: int, change: float) -> None:
            if kill and it == 3 and "killed" not in holder:
                pid = ray.get(holder["solve"].workers[1].pid.remote())
                os.kill(pid, signal.SIGKILL)
                holder["killed"] = pid

        solve = ShardedSolve(parts, params, incremental=True)
        holder["solve"] = solve
        try:
            assert solve.solve().converged
            blocks = split_links(nsrc, ndst, nw, owner[nsrc], owner[ndst], shards)
            solve.add_links([([ray.put(a)], [ray.put(b)]) for a, b in blocks])
            solve.progress = progress
            rep = solve.solve()
            ids, phi, _ = solve.gather()
        finally:
            solve.close()
        return ids, phi, rep
    finally:
        ray.shutdown()


def test_killed_worker_after_added_links(cluster, rmat):
    """A worker restarted after ``add_links`` must hold the added links too: the
    answer is the grown graph's, with the same bits as without the kill."""
    address, driver = cluster
    n = rmat.shape[0]
    rng = np.random.default_rng(2)
    m = 200
    nsrc, ndst, nw = rng.integers(0, n, m), rng.integers(0, n, m), rng.random(m) + 0.5
    shards = 4
    owner = owners_of(n, None, shards)
    params = make_params(None, mode="diffusion", tol=1e-13)

    def run(kill: bool):
        return driver(_added_then_solve, address, rmat, nsrc, ndst, nw, owner, shards, params, kill)

    ids0, phi0, _rep0 = run(kill=False)
    grown = sp.coo_matrix(
        (
            np.concatenate([rmat.data, nw]),
            (np.concatenate([rmat.row, nsrc]), np.concatenate([rmat.col, ndst])),
        ),
        shape=(n, n),
    )
    ref = compute(grown, mode="diffusion", tol=1e-13, backend="numpy").focus
    got = np.zeros(n)
    got[ids0] = phi0
    assert np.abs(got - ref).sum() < 1e-9
    ids1, phi1, rep1 = run(kill=True)
    assert rep1.restarts >= 1 and rep1.converged
    np.testing.assert_array_equal(ids1, ids0)
    assert np.array_equal(phi1, phi0)
