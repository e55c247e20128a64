"""Blobs: chunking throughput against the libraries' own, dedup of an edit, put/get on loopback.

1. Chunking 100 MB of random bytes on one core: ``pyfastcdc`` alone (what we
   use), ``fastcdc``'s Cython path alone (when installed), and our path
   (``storage.dag.cut``: chunk copies, plus SHA-256 of each chunk as a CID
   needs), each the median of ``--runs``. Goal: our path at 500 MB/s or more.
2. Dedup: the same 100 MB put into a fresh chunk store, then with one byte
   changed in the middle: new bytes stored by the second put. Goal: under 1 %.
3. Put and get through a real devnet process on loopback (``POST /v1/blobs``
   and ``focusflow blob get``'s hash-checked fetch), MB/s, the median of
   ``--runs`` new blobs, the put also from curl (a whole process). Goal: 200 MB/s or more.
4. Between node processes (``--sections p2p``): ``focusflow testnet`` with two
   validators and two full nodes; a new blob put on one holder, then on two, and
   fetched by another node through the DHT over QUIC (``POST
   /v1/blobs/{cid}/fetch``: every block checked, written and pinned), MB/s,
   beside the same bytes read from a holder over HTTP (``GET /v1/blobs/{cid}``,
   the REST path a client without the DHT would use), the ratio printed.

    python bench/storage.py
    python bench/storage.py --mb 100 --runs 3
    python bench/storage.py --sections p2p --mb 100 --runs 3
    python bench/storage.py --sections corpus --versions 30
5. A versioned corpus (``--sections corpus``): this repository's ``src`` tree at
   each of the last ``--versions`` commits, oldest first, into one store: the
   dedup ratio (all versions' bytes over the bytes stored) and the share of
   each new version that was new.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

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

    from focusflow.cli import blob_cmd
    from focusflow.client import NodeClient
    from focusflow.core.cid import cid_to_bytes
    from focusflow.testing.devnet import start_devnet

    put_s, get_s, stream_s, curl_s = [], [], [], []
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
                with NodeClient(net.api, timeout=600) as client:
                    t = time.perf_counter()
                    fetched = b"".join(blob_cmd._verified_chunks(client, cid_to_bytes(cid)))
                    get_s.append(time.perf_counter() - t)
                assert streamed == blob and fetched == blob
                if shutil.which("curl"):  # the same put from curl, a client in C
                    path = Path(tmp) / "blob.bin"
                    path.write_bytes(_random(len(data), 1000 + r))
                    args = ["curl", "-sf", "-X", "POST", "--data-binary", f"@{path}",
                            "-H", f"Authorization: {headers['Authorization']}",
                            "-H", "Content-Type: application/octet-stream",
                            f"{net.api}/v1/blobs"]  # fmt: skip
                    t = time.perf_counter()
                    subprocess.run(args, check=True, capture_output=True)
                    curl_s.append(time.perf_counter() - t)
        finally:
            net.stop()
    mb = len(data) / 1e6
    put_mbs = mb / statistics.median(put_s)
    get_mbs = mb / statistics.median(get_s)
    stream_mbs = mb / statistics.median(stream_s)
    rounds = ", ".join(f"{mb / t:.0f}" for t in put_s)
    if curl_s:
        curl_mbs = mb / statistics.median(curl_s)
        verdict = "met" if curl_mbs >= GOAL_LOOPBACK_MBS else "NOT met"
        print(f"3. put with curl as the client (a whole process, median of {runs} new blobs): "
              f"{curl_mbs:.0f} MB/s ({', '.join(f'{mb / t:.0f}' for t in curl_s)}); goal "
              f"{GOAL_LOOPBACK_MBS}: {verdict}")  # fmt: skip
    print(f"3. loopback, a devnet process (median of {runs} new blobs): put {put_mbs:.0f} MB/s "
          f"({rounds}), get block by block (each checked) {get_mbs:.0f} MB/s, "
          f"GET /v1/blobs/{{cid}} {stream_mbs:.0f} MB/s; goal {GOAL_LOOPBACK_MBS} MB/s: put "
          f"{'met' if put_mbs >= GOAL_LOOPBACK_MBS else 'NOT met'}, get "
          f"{'met' if get_mbs >= GOAL_LOOPBACK_MBS else 'NOT met'}")  # fmt: skip


def _normalized(tar: bytes) -> bytes:
    """The same files with fixed metadata (mtime 0, no owner, sorted, no pax
    header): git archive stamps the commit's time into every file's header,
    which a chunker sees as an edit every few KiB."""
    import tarfile

    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(tar)) as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as dst,
    ):
        for member in sorted(src.getmembers(), key=lambda m: m.name):
            if not member.isfile():
                continue
            data = src.extractfile(member).read()
            info = tarfile.TarInfo(member.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def corpus(versions: int) -> None:
    """Dedup on a versioned corpus: this repository's ``src`` tree at each of the
    last ``versions`` commits (``git archive``, real successive edits), put into
    one chunk store oldest first, as git makes the tars and with their headers
    normalized."""
    import subprocess

    from focusflow.services.storage.chunk_store import ChunkStore

    commits = subprocess.run(
        ["git", "-C", str(ROOT), "rev-list", f"--max-count={versions}", "HEAD"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[::-1]  # fmt: skip

    def archive(commit: str) -> bytes:
        args = ["git", "-C", str(ROOT), "archive", "--format=tar", commit, "src"]
        return subprocess.run(args, capture_output=True, check=True).stdout

    tars = [archive(c) for c in commits]
    for label, stream in (("as git archive makes them", tars),
                          ("headers normalized", [_normalized(t) for t in tars])):  # fmt: skip
        total = stored = 0
        shares = []
        with tempfile.TemporaryDirectory() as tmp:
            store = ChunkStore(Path(tmp) / "s")
            for tar in stream:
                put = store.put(io.BytesIO(tar))
                total += len(tar)
                stored += put.new_bytes
                shares.append(put.new_bytes / len(tar))
            store.close()
        print(f"5. versioned corpus, {label}: src/ at the last {len(commits)} commits, "
              f"{total / 1e6:.1f} MB in all, stored {stored / 1e6:.1f} MB: dedup ratio "
              f"{total / stored:.1f}x; a new version stores {statistics.median(shares[1:]):.1%} "
              f"of its size (median; max {max(shares[1:]):.1%})")  # fmt: skip


def p2p(data: bytes, runs: int) -> None:
    import httpx

    from focusflow.testing.testnet import LocalTestnet

    rows: dict[int, list[float]] = {1: [], 2: []}
    http_s: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        net = LocalTestnet(Path(tmp) / "tn", 2, full_nodes=2)
        try:

            def auth(k: int) -> dict:
                token = (net.homes[k] / "admin_token").read_text().strip()
                return {"Authorization": f"Bearer {token}"}

            with httpx.Client(timeout=600) as c:
                for r in range(runs):
                    for holders in (1, 2):
                        blob = _random(len(data), 100 + 10 * r + holders)
                        cid = ""
                        for k in range(holders):  # holders: nodes 0 and 2; fetched by 3
                            resp = c.post(f"{net.apis[2 * k]}/v1/blobs", content=blob,
                                          headers=auth(2 * k))  # fmt: skip
                            resp.raise_for_status()
                            cid = resp.json()["cid"]
                        time.sleep(3)  # the holders announce it in the background
                        if holders == 1:
                            t = time.perf_counter()
                            assert c.get(f"{net.apis[0]}/v1/blobs/{cid}").content == blob
                            http_s.append(time.perf_counter() - t)
                        deadline = time.monotonic() + 60
                        while True:
                            t = time.perf_counter()
                            resp = c.post(f"{net.apis[3]}/v1/blobs/{cid}/fetch", headers=auth(3))
                            took = time.perf_counter() - t
                            if resp.status_code == 200 or time.monotonic() > deadline:
                                break
                            time.sleep(0.5)  # the holders' announcements still on their way
                        resp.raise_for_status()
                        got = resp.json()
                        assert len(got["peers"]) == holders and not got["dropped"], got
                        rows[holders].append(took)
                        assert c.get(f"{net.apis[3]}/v1/blobs/{cid}").content == blob
        finally:
            net.stop()
    mb = len(data) / 1e6
    http_mbs = mb / statistics.median(http_s)
    for holders, times in rows.items():
        mbs = mb / statistics.median(times)
        rounds = ", ".join(f"{mb / t:.0f}" for t in times)
        print(f"4. p2p fetch through the DHT over QUIC from {holders} holder(s) "
              f"(median of {runs}): {mbs:.0f} MB/s ({rounds}); GET /v1/blobs/{{cid}} from a "
              f"holder over HTTP {http_mbs:.0f} MB/s; p2p / HTTP {mbs / http_mbs:.2f}")  # fmt: skip


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-loopback", action="store_true")
    ap.add_argument("--sections", default="chunking,dedup,loopback",
                    help="comma-separated: chunking, dedup, loopback, p2p, corpus")  # fmt: skip
    ap.add_argument("--versions", type=int, default=30)
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    if args.no_loopback:
        sections.discard("loopback")
    data = _random(args.mb * 10**6, 0)
    if "chunking" in sections:
        chunking(data, args.runs)
    if "dedup" in sections:
        dedup(data)
    if "loopback" in sections:
        loopback(data, args.runs)
    if "p2p" in sections:
        p2p(data, args.runs)
    if "corpus" in sections:
        corpus(args.versions)


if __name__ == "__main__":
    main()
