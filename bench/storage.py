"""Blobs: chunking throughput against the libraries' own, dedup of an edit, put/get on loopback.

1. Chunking 100 MB of random bytes on one core: ``pyfastcdc`` alone (what we
   use), ``fastcdc``'s Cython path alone (when installed), and our path
   (``storage.dag.cut``: chunk copies, plus SHA-256 of each chunk as a CID
   needs), each the median of ``--runs``. Goal: our path at 500 MB/s or more.
2. Dedup: the same 100 MB put into a fresh chunk store, then with one byte
   changed in the middle: new bytes stored by the second put. Goal: under 1 %.
3. Put and get through a real devnet process on loopback (``POST /v1/blobs``
   and ``focusflow blob get``'s hash-checked fetch), MB/s, the median of
   ``--runs`` new blobs. Goal: 200 MB/s or more.

    python bench/storage.py
    python bench/storage.py --mb 100 --runs 3
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOAL_CHUNK_MBS = 500
GOAL_NEW_SHARE = 0.01
GOAL_LOOPBACK_MBS = 200


def _median_mbs(fn, data: bytes, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t)
    return len(data) / statistics.median(times) / 1e6


def chunking(data: bytes, runs: int) -> None:
    import hashlib

    import pyfastcdc

    from focusflow.services.storage import dag

    def ours(buf: bytes) -> None:
        for chunk in dag.cut(io.BytesIO(buf)):
            hashlib.sha256(chunk).digest()

    def plain(buf: bytes) -> None:
        cutter = pyfastcdc.FastCDC(avg_size=dag.CHUNK_AVG, min_size=dag.CHUNK_MIN,
                                   max_size=dag.CHUNK_MAX)  # fmt: skip
        for _ in cutter.cut_buf(buf):
            pass

    rows = [("pyfastcdc, chunk boundaries only", _median_mbs(plain, data, runs))]
    try:
        from fastcdc import fastcdc_cy

        def other(buf: bytes) -> None:
            for _ in fastcdc_cy.fastcdc_cy(buf, dag.CHUNK_MIN, dag.CHUNK_AVG, dag.CHUNK_MAX,
                                           False, None):  # fmt: skip
                pass

        rows.append(("fastcdc (Cython), chunk boundaries only", _median_mbs(other, data, runs)))
    except ImportError:
        rows.append(("fastcdc (Cython): not installed", float("nan")))
    path = _median_mbs(ours, data, runs)
    rows.append(("ours: stream cut, chunk copies, SHA-256 each", path))
    print(f"1. chunking {len(data) / 1e6:.0f} MB on one core (median of {runs})")
    for name, mbs in rows:
        print(f"   {name:48s} {mbs:8.0f} MB/s")
    verdict = "met" if path >= GOAL_CHUNK_MBS else "NOT met"
    print(f"   ours / pyfastcdc: {path / rows[0][1]:.2f}; goal {GOAL_CHUNK_MBS} MB/s: {verdict}")


def dedup(data: bytes) -> None:
    from focusflow.services.storage.chunk_store import ChunkStore

    with tempfile.TemporaryDirectory() as tmp:
        store = ChunkStore(Path(tmp) / "s")
        t = time.perf_counter()
        first = store.put(io.BytesIO(data))
        dt = time.perf_counter() - t
        edited = bytearray(data)
        edited[len(edited) // 2] ^= 0xFF
        second = store.put(io.BytesIO(bytes(edited)))
        store.close()
    share = second.new_bytes / len(data)
    print(f"2. dedup: first put {first.chunks:,} chunks in {dt:.2f} s ({len(data) / dt / 1e6:.0f}"
          f" MB/s into LMDB); one byte changed: {second.new_chunks} new chunks, "
          f"{second.new_bytes:,} new bytes = {share:.4%} of the blob; goal under "
          f"{GOAL_NEW_SHARE:.0%}: {'met' if share < GOAL_NEW_SHARE else 'NOT met'}")  # fmt: skip


def loopback(data: bytes, runs: int) -> None:
    import httpx
    from tests.node.devnet_process import start_devnet

    from focusflow.cli import blob_cmd
    from focusflow.cli.client import Client
    from focusflow.core.cid import cid_to_bytes

    put_s, get_s, stream_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        net = start_devnet(Path(tmp) / "home", timeout=240)
        try:
            headers = {"Authorization": f"Bearer {net.admin_token()}",
                       "Content-Type": "application/octet-stream"}  # fmt: skip
            for r in range(runs):
                # new bytes each round: a put of bytes the node holds stores nothing
                blob = data if r == 0 else _random(len(data), r)
                with httpx.Client(base_url=net.api, timeout=600) as c:
                    t = time.perf_counter()
                    resp = c.post("/v1/blobs", content=blob, headers=headers)
                    put_s.append(time.perf_counter() - t)
                    resp.raise_for_status()
                    cid = resp.json()["cid"]
                    t = time.perf_counter()
                    streamed = c.get(f"/v1/blobs/{cid}").content
                    stream_s.append(time.perf_counter() - t)
                with Client(net.api, timeout=600) as client:
                    t = time.perf_counter()
                    fetched = b"".join(blob_cmd._verified_chunks(client, cid_to_bytes(cid)))
                    get_s.append(time.perf_counter() - t)
                assert streamed == blob and fetched == blob
        finally:
            net.stop()
    mb = len(data) / 1e6
    put_mbs = mb / statistics.median(put_s)
    get_mbs = mb / statistics.median(get_s)
    stream_mbs = mb / statistics.median(stream_s)
    rounds = ", ".join(f"{mb / t:.0f}" for t in put_s)
    print(f"3. loopback, a devnet process (median of {runs} new blobs): put {put_mbs:.0f} MB/s "
          f"({rounds}), get block by block (each checked) {get_mbs:.0f} MB/s, "
          f"GET /v1/blobs/{{cid}} {stream_mbs:.0f} MB/s; goal {GOAL_LOOPBACK_MBS} MB/s: put "
          f"{'met' if put_mbs >= GOAL_LOOPBACK_MBS else 'NOT met'}, get "
          f"{'met' if get_mbs >= GOAL_LOOPBACK_MBS else 'NOT met'}")  # fmt: skip


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-loopback", action="store_true")
    args = ap.parse_args()
    data = _random(args.mb * 10**6, 0)
    chunking(data, args.runs)
    dedup(data)
    if not args.no_loopback:
        loopback(data, args.runs)


if __name__ == "__main__":
    main()
