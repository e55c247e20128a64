"""Benchmark of the Konomi grid against the seed's success metrics.

What it measures, in one run (each section prints one line and goes into the JSON):

1. ``cube_ops``: the seed's test 3, 1000 ``create_cube`` + ``process_vertex('NEU',
   'test')`` (each call also runs the vertex's four neighbours on its output).
   Seed bound < 10 s, goal < 1 s.
2. ``memory``: resident memory (RSS) of a fresh child process before and after
   building a ``KonomiSystem`` with a 100³ block array and all 10^6 of its blocks
   active (hashes and all). Seed bound < 1 GB at rest.
3. ``femtollm``: wall time of one ``FemtoLLM.process`` request (44-byte prompt, so
   the default κ 0.6 gives a 26-byte answer), median and p99 of ``--requests``.
   Seed bound < 0.1 s, goal < 5 ms.
4. ``websocket``: ``focusflow konomi serve`` in child processes on 127.0.0.1.
   Round trip of a ``status`` action on one socket; and cube-to-cube latency:
   client A sends ``process`` on a cube, client B (attached to the same cube) receives the
   ``processed`` event. It runs on one server, and on two servers sharing a SQLite file and
   a Redis server, when ``redis-server`` is installed. Seed bound < 10 ms.
5. ``kappa``: update_field cycles until every κ of a 3×3×3 constellation (κ drawn from
   {0, 1}) is within 0.6 ± 0.05. Seed bound < 50.
6. ``workers``: cube operations per second with 1 and 2 worker processes, and the
   eVGPU's 2048² matmul with utilisation 0.5 and 1.0 (1 and 2 threads on 2 cores).
7. ``shards`` (only when asked: ``--only shards``): the grid split over Ray shard
   actors, for each count in ``--shards`` side by side in one run on a local Ray
   (one logical CPU per core) or ``--cluster``: ``--blocks`` active blocks in a
   1000³ grid (random ones, then the full plane z=500 activated by an interlock),
   each shard with a SQLite file in a temp dir (or ``--store postgresql://...``).
   It reports the load time, the ``activate`` and ``process`` interlock over the
   full 10^6-cell plane (wall time at the coordinator, and the ratio of the first
   shard count's time to each other's), the routing overhead of a single-block
   read (round trip coordinator -> shard -> reply minus the shard's own work,
   median and p99, after 50 reads of warm-up; as actor tasks, the default, and
   then through each shard's Ray Compiled Graph, ``--compiled-routing``; a direct
   in-process ``BlockArray.get`` beside them), and each shard's resident and
   private memory and bytes per block (taken before any compiled graph is made).

Run from the repository root::

    .venv/bin/python bench/konomi.py                 # about a minute on 2 cores
    .venv/bin/python bench/konomi.py --json out.json
    .venv/bin/python bench/konomi.py --only shards --blocks 1e7 --shards 1,8

The numbers depend on what else runs on the machine; each section reports the
load average it started with.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np


def _load() -> float:
    return os.getloadavg()[0]


def cube_ops(n: int = 1000) -> dict:
    from focusflow.konomi import KonomiSystem

    K = KonomiSystem(default_dims=(10, 10, 10))
    K.create_cube("warm").process_vertex_sync("NEU", "test")
    t0 = time.perf_counter()
    cubes = [K.create_cube(f"c{i}") for i in range(n)]
    t1 = time.perf_counter()
    for c in cubes:
        c.process_vertex_sync("NEU", "test")
    t2 = time.perf_counter()
    return {"cubes": n, "create_s": t1 - t0, "process_s": t2 - t1, "total_s": t2 - t0}


def _memory_child(q) -> None:
    import psutil

    from focusflow.konomi import KonomiSystem

    proc = psutil.Process()
    before = proc.memory_info().rss
    K = KonomiSystem(default_dims=(10, 10, 10))
    BA = K.create_block_array("test", (100, 100, 100))
    empty = proc.memory_info().rss
    c = np.stack(np.meshgrid(*[np.arange(100)] * 3, indexing="ij"), -1).reshape(-1, 3)
    t = time.perf_counter()
    BA.activate_many(c, np.random.default_rng(0).random(len(c)))
    secs = time.perf_counter() - t
    del c
    after = proc.memory_info().rss
    q.put(
        {
            "active_blocks": BA.size,
            "rss_before_mb": before / 2**20,
            "rss_empty_array_mb": empty / 2**20,
            "rss_after_mb": after / 2**20,
            "delta_mb": (after - before) / 2**20,
            "array_bytes_mb": BA.nbytes() / 2**20,
            "activate_s": secs,
        }
    )


def memory() -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_memory_child, args=(q,))
    p.start()
    out = q.get(timeout=600)
    p.join()
    return out


def femtollm(requests: int = 500) -> dict:
    from focusflow.konomi import FemtoLLM

    llm = FemtoLLM(name="bench")
    prompt = "Hello Konomi, what is the focus of the graph?"
    for _ in range(20):
        llm.process(prompt)
    times = []
    for _ in range(requests):
        llm.kappa = 0.6
        t = time.perf_counter()
        llm.process(prompt)
        times.append(time.perf_counter() - t)
    times.sort()
    return {
        "requests": requests,
        "prompt_bytes": len(prompt.encode()),
        "median_ms": statistics.median(times) * 1e3,
        "p99_ms": times[int(0.99 * len(times)) - 1] * 1e3,
        "weights_kb": llm.model.nbytes() / 1024,
    }


def _ws_latency(port_a: int, port_b: int, rounds: int, token: str) -> dict:
    from websockets.sync.client import connect

    def recv_until(ws, pred):
        while True:
            m = json.loads(ws.recv(timeout=10))
            if pred(m):
                return m

    auth = {"Authorization": f"Bearer {token}"}
    with (
        connect(f"ws://127.0.0.1:{port_a}/ws", additional_headers=auth) as a,
        connect(f"ws://127.0.0.1:{port_b}/ws", additional_headers=auth) as b,
    ):
        a.send(json.dumps({"action": "initialize", "cube_id": "bench"}))
        recv_until(a, lambda m: m.get("status") == "initialized")
        b.send(json.dumps({"action": "initialize", "cube_id": "bench"}))
        recv_until(b, lambda m: m.get("status") == "initialized")
        rtt, fan = [], []
        for i in range(rounds):
            t = time.perf_counter()
            a.send('{"action":"status"}')
            recv_until(a, lambda m: "CENTRAL" in m)
            rtt.append(time.perf_counter() - t)
            t = time.perf_counter()
            a.send(json.dumps({"action": "process", "vertex": "NEU", "text": f"ping {i}"}))
            recv_until(b, lambda m: m.get("event") == "processed")
            fan.append(time.perf_counter() - t)
            recv_until(a, lambda m: m.get("vertex") == "NEU" and "event" not in m)
    return {
        "status_rtt_median_ms": statistics.median(rtt) * 1e3,
        "cube_to_cube_median_ms": statistics.median(fan) * 1e3,
        "cube_to_cube_p90_ms": sorted(fan)[int(0.9 * len(fan)) - 1] * 1e3,
    }


def websocket(rounds: int = 200) -> dict:
    from focusflow.konomi.launch import (
        free_port,
        new_token,
        redis_process,
        serve_process,
        stop,
        wait_port,
    )

    out: dict = {}
    token = new_token()
    tmp = Path(tempfile.mkdtemp(prefix="konomi-bench-"))
    procs: list[subprocess.Popen] = []

    def start(p: subprocess.Popen, port: int) -> None:
        procs.append(p)
        if not wait_port(port):
            raise RuntimeError(f"nothing listening on {port}")

    try:
        port = free_port()
        start(serve_process(str(tmp / "one.sqlite3"), port, token=token), port)
        out["one_server"] = _ws_latency(port, port, rounds, token)
        redis_exe = shutil.which("redis-server")
        if redis_exe:
            rport = free_port()
            start(redis_process(redis_exe, rport, tmp), rport)
            url = f"redis://127.0.0.1:{rport}/0"
            db = str(tmp / "two.sqlite3")
            p1, p2 = free_port(), free_port()
            start(serve_process(db, p1, url, token=token), p1)
            start(serve_process(db, p2, url, token=token), p2)
            out["two_servers_redis"] = _ws_latency(p1, p2, rounds, token)
        else:
            out["two_servers_redis"] = "skipped: redis-server not installed"
    finally:
        stop(procs)
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def kappa() -> dict:
    from focusflow.konomi.cube import Cube, field_cycles, lattice_neighbours

    rng = np.random.default_rng(0)
    cubes = [Cube(f"k{i}") for i in range(27)]
    for c in cubes:
        c.kappa_local = float(rng.choice([0.0, 1.0]))
    return {"cubes": 27, "cycles": field_cycles(cubes, lattice_neighbours((3, 3, 3)))}


def _worker(n: int) -> int:
    from focusflow.konomi import Cube

    cubes = [Cube(f"w{os.getpid()}-{i}") for i in range(n)]
    for c in cubes:
        c.process_vertex_sync("NEU", "test")
    return n


def workers(ops: int = 2000) -> dict:
    out = {}
    ctx = mp.get_context("spawn")
    for w in (1, 2):
        with ctx.Pool(w, initializer=_worker, initargs=(1,)) as pool:
            pool.map(_worker, [1] * w)
            t = time.perf_counter()
            done = sum(pool.map(_worker, [ops // (4 * w)] * (4 * w)))
            secs = time.perf_counter() - t
        out[f"cube_ops_per_s_{w}_workers"] = done / secs
    from focusflow.konomi import EVGPU

    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((2048, 2048)), rng.standard_normal((2048, 2048))
    for util in (0.5, 1.0):
        with EVGPU(cores=2, utilisation=util) as gpu:
            gpu.matmul(A, B)
            t = time.perf_counter()
            for _ in range(3):
                gpu.matmul(A, B)
            out[f"evgpu_matmul_2048_s_{gpu.limit}_threads"] = (time.perf_counter() - t) / 3
    return out


def _shard_arm(ray, count: int, blocks: int, store: str | None, requests: int, seed: int) -> dict:
    """One shard count: load, interlock the full plane, route single reads, memory."""
    from focusflow.konomi.shards import Coordinator
    from focusflow.konomi.shards.actor import RayShards
    from focusflow.konomi.store import open_store

    dims = (1000, 1000, 1000)
    iid = f"bench-{count}-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix=f"konomi-shards{count}-"))
    template = store or str(tmp / "shard{shard}.sqlite3")
    if store:
        meta = open_store(store)
        meta.save_template("bench", "bench", dims, time.time())
        meta.save_instance(iid, "bench", time.time())
        meta.close()
    out: dict = {"shards": count}
    t = time.perf_counter()
    backend = RayShards.start(ray, count, template)
    coord = Coordinator(backend, retry_s=600.0)
    out["start_s"] = time.perf_counter() - t
    try:
        coord.open(iid, dims)
        opened = coord.memory()
        empty = {m["shard"]: m["rss"] for m in opened}
        empty_private = {m["shard"]: m.get("private", m["rss"]) for m in opened}
        plane = 1000 * 1000
        rng = np.random.default_rng(seed)
        need = max(0, blocks - plane)
        # Distinct random cells off the plane z=500, which the interlock fills.
        cells = np.unique(rng.integers(0, 999 * plane, int(need * 1.01) + 16))
        cells = rng.permutation(cells)[:need]
        t = time.perf_counter()
        for start in range(0, len(cells), plane):
            part = cells[start : start + plane]
            z = part // plane
            c = np.stack([part % 1000, (part // 1000) % 1000, z + (z >= 500)], axis=1)
            coord.set_many(iid, dims, c, rng.random(len(c)))
        out["load_s"] = time.perf_counter() - t
        for op in ("activate", "process", "process", "process"):
            t = time.perf_counter()
            processed, _, secs = coord.face(iid, dims, "z", 500, op)
            wall = time.perf_counter() - t
            out.setdefault(f"{op}_s", []).append(wall)
            out.setdefault(f"{op}_slowest_shard_s", []).append(max(secs))
            out[f"{op}_processed"] = processed
        out["process_s"] = statistics.median(out["process_s"])
        out["process_slowest_shard_s"] = statistics.median(out["process_slowest_shard_s"])
        out["activate_s"] = out["activate_s"][0]
        out["activate_slowest_shard_s"] = out["activate_slowest_shard_s"][0]
        probe = rng.integers(0, 1000, (requests, 2)).tolist()
        mem = coord.memory()
        # Routed reads as actor tasks (the default), then through each shard's
        # compiled graph (--compiled-routing), in the same arm.
        for way, compiled in (("", False), ("compiled_", True)):
            backend.compiled = compiled
            rtt, over = [], []
            for x, y in probe[:50] + probe:
                t0 = time.perf_counter_ns()
                _, work = coord.get(iid, dims, x, y, 500)
                took = time.perf_counter_ns() - t0
                rtt.append(took / 1e6)
                over.append((took - work) / 1e6)
            rtt, over = sorted(rtt[50:]), sorted(over[50:])
            out[f"{way}get_rtt_median_ms"] = statistics.median(rtt)
            out[f"{way}get_rtt_p99_ms"] = rtt[int(0.99 * len(rtt)) - 1]
            out[f"{way}routing_overhead_median_ms"] = statistics.median(over)
            out[f"{way}routing_overhead_p99_ms"] = over[int(0.99 * len(over)) - 1]
        out["active_blocks"] = int(sum(m["blocks"] for m in mem))
        out["per_shard"] = [
            {
                "shard": m["shard"],
                "blocks": int(m["blocks"]),
                "rss_mb": round(m["rss"] / 2**20, 1),
                "private_mb": round(m.get("private", m["rss"]) / 2**20, 1),
                "private_growth_bytes_per_block": round(
                    (m.get("private", m["rss"]) - empty_private[m["shard"]]) / max(m["blocks"], 1),
                    1,
                ),
                "rss_growth_bytes_per_block": round(
                    (m["rss"] - empty[m["shard"]]) / max(m["blocks"], 1), 1
                ),
                "array_bytes_per_block": round(m["array_bytes"] / max(m["blocks"], 1), 1),
            }
            for m in mem
        ]
    finally:
        coord.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def shards(
    blocks: int = 10**6,
    counts: tuple[int, ...] = (1, 2),
    cluster: str | None = None,
    store: str | None = None,
    requests: int = 2000,
) -> dict:
    from focusflow.focus.shards.cluster import connect
    from focusflow.konomi.block_array import BlockArray

    ray, started = connect(cluster, max(counts))
    out: dict = {"blocks": blocks, "cluster": cluster or "local", "store": store or "sqlite"}
    try:
        out["ray_cpus"] = ray.cluster_resources().get("CPU")
        arms = [_shard_arm(ray, n, blocks, store, requests, seed=7) for n in counts]
    finally:
        if started:
            ray.shutdown()
    a = BlockArray((1000, 1000, 1000))
    a.activate_many(np.stack([np.arange(1000), np.zeros(1000, int), np.zeros(1000, int)], 1))
    direct = []
    for x in np.random.default_rng(1).integers(0, 1000, requests).tolist():
        t0 = time.perf_counter_ns()
        a.get(x, 0, 0)
        direct.append((time.perf_counter_ns() - t0) / 1e6)
    out["direct_blockarray_get_median_ms"] = statistics.median(direct)
    base = arms[0]
    for arm in arms[1:]:
        n = arm["shards"]
        for op in ("activate", "process"):
            out[f"{op}_speedup_{base['shards']}_to_{n}"] = base[f"{op}_s"] / arm[f"{op}_s"]
    out["arms"] = arms
    return out


SECTIONS = {
    "cube_ops": cube_ops,
    "memory": memory,
    "femtollm": femtollm,
    "websocket": websocket,
    "kappa": kappa,
    "workers": workers,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only", nargs="*", choices=[*SECTIONS, "shards"], help="run only these sections"
    )
    ap.add_argument("--json", type=Path, help="also write every number to this file")
    ap.add_argument("--blocks", type=float, default=1e6, help="shards: active blocks")
    ap.add_argument("--shards", default="1,2", help="shards: shard counts, e.g. 1,8")
    ap.add_argument("--cluster", help="shards: Ray head host:port (else a local Ray)")
    ap.add_argument("--store", help="shards: postgresql://... (else SQLite per shard)")
    ap.add_argument("--requests", type=int, default=2000, help="shards: routed reads")
    args = ap.parse_args()
    SECTIONS["shards"] = lambda: shards(
        int(args.blocks),
        tuple(int(n) for n in args.shards.split(",")),
        args.cluster,
        args.store,
        args.requests,
    )
    results: dict = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    for name in args.only or [n for n in SECTIONS if n != "shards"]:
        load = _load()
        t = time.perf_counter()
        res = SECTIONS[name]()
        res["load_at_start"] = round(load, 2)
        res["section_s"] = round(time.perf_counter() - t, 2)
        results[name] = res
        print(f"{name}: {json.dumps(res, default=float)}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
