"""Node API under load: transaction submission and the focus read path.

Both parts start a real ``focusflow devnet`` process and drive it from a
separate load process over loopback HTTP/1.1 keep-alive connections (a small
asyncio client: a general client such as httpx would be the bottleneck on two
cores). Each part also runs the same load against a bare FastAPI app served by
the same uvicorn settings (the framework's floor, which is what users compare
a Python node against) and prints the ratio.

    python bench/api.py                      # both parts
    python bench/api.py --skip-read          # submission only
    python bench/api.py --read-links 1000000 --clients 50 --read-requests 5000

Goals: >= 2,000 accepted tx/s on 2 cores; GET /v1/focus/top?k=100
p99 < 20 ms under 50 concurrent clients on a 10^6-link graph.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from focusflow.chain import Msg, make_tx
from focusflow.core.encoding import encode as cbor_encode
from focusflow.core.keys import KeyPair
from focusflow.core.keystore import Keystore
from focusflow.node.home import init_devnet

ROOT = Path(__file__).resolve().parents[1]

BARE_APP = """
import sys
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
import uvicorn
app = FastAPI()
TOP = open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else b"{}"
@app.post("/v1/txs")
async def submit(request: Request):
    body = await request.body()
    return JSONResponse({"hash": "00" * 32}, status_code=202)
@app.get("/v1/focus/top")
def top(k: int = 100):
    return Response(TOP, media_type="application/json")
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


# --- a minimal keep-alive HTTP/1.1 client ------------------------------------
async def _call(reader, writer, method: str, path: str, body: bytes, ctype: str) -> int:
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body:
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    data = await reader.readexactly(length) if length else b""
    return int(status_line.split()[1]), data


async def _load(host, port, requests, concurrency, time_limit):
    queue = list(reversed(requests))
    lat: list[float] = []
    statuses: dict[int, int] = {}
    accepted = 0
    deadline = time.perf_counter() + time_limit

    async def worker():
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, port)
        while queue and time.perf_counter() < deadline:
            method, path, body, ctype = queue.pop()
            t = time.perf_counter()
            status, data = await _call(reader, writer, method, path, body, ctype)
            lat.append(time.perf_counter() - t)
            if path.endswith("/batch"):
                accepted += data.count(b'"hash"')
            elif status in (200, 202):
                accepted += 1
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat, statuses, accepted


def _load_process(args, out):
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out.put(asyncio.run(_load(*args)))


def run_load(api: str, requests, concurrency: int, time_limit: float):
    """Run the load in a separate process; (wall seconds, latencies, status counts)."""
    host, port = api.removeprefix("http://").split(":")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(
        target=_load_process, args=((host, int(port), requests, concurrency, time_limit), out)
    )
    proc.start()
    result = out.get(timeout=time_limit + 120)
    proc.join(30)
    return result


def report(
    name: str, wall: float, lat: list[float], statuses: dict[int, int], accepted: int
) -> dict:
    lat_ms = np.array(lat) * 1000
    row = {
        "name": name,
        "requests": len(lat),
        "ok": accepted,
        "per_s": accepted / wall,
        "p50": float(np.percentile(lat_ms, 50)),
        "p99": float(np.percentile(lat_ms, 99)),
    }
    print(
        f"| {name} | {row['requests']} | {row['ok']} | {row['per_s']:,.0f} | "
        f"{row['p50']:.2f} | {row['p99']:.2f} | {statuses} |"
    )
    return row


# --- processes ----------------------------------------------------------------
def start_devnet(home: Path, block_time: str) -> tuple[subprocess.Popen, str]:
    # The load comes from this host; the per-client limits (docs/api.md, "Limits")
    # would answer most of it with 429, so the bench lifts them for loopback.
    path = home / "config.json"
    config = json.loads(path.read_text()) if path.exists() else {}
    config["api_limits"] = {**config.get("api_limits", {}), "exempt_loopback": True}
    path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    log = open(home.parent / "devnet.log", "ab")  # noqa: SIM115 - lives as long as the node
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "focusflow",
            "devnet",
            "--home",
            str(home),
            "--port",
            "0",
            "--block-time",
            block_time,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    for _ in range(1200):
        info = home / "node.json"
        if info.exists():
            doc = json.loads(info.read_text())
            if doc.get("pid") == proc.pid:
                return proc, doc["api"]
        if proc.poll() is not None:
            raise SystemExit(f"devnet exited: {(home.parent / 'devnet.log').read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("devnet did not start")


def start_bare(port: int, top_file: Path | None) -> subprocess.Popen:
    args = [sys.executable, "-c", BARE_APP, str(port)] + ([str(top_file)] if top_file else [])
    proc = subprocess.Popen(args)
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/focus/top", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("bare app did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_committed(client: httpx.Client, hashes: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for h in hashes:
        while client.get(f"/v1/txs/{h}").json().get("status") != "committed":
            if time.monotonic() > deadline:
                raise SystemExit(f"tx {h} not committed in {timeout}s")
            time.sleep(0.2)


# --- part 1: submission -----------------------------------------------------------
def bench_submit(n_txs: int, senders: int, concurrency: int) -> None:
    print(
        f"\n## transaction submission: {n_txs} signed txs from {senders} senders, "
        f"{concurrency} connections"
    )
    with tempfile.TemporaryDirectory() as tmp:
        home, _ = init_devnet(Path(tmp) / "home")
        dev = Keystore(home.keys).load("dev")
        proc, api = start_devnet(home.path, "1s")
        try:
            client = httpx.Client(base_url=api, timeout=30)
            chain_id = client.get("/v1/status").json()["chain_id"]
            keys = [KeyPair.from_seed(i.to_bytes(32, "big")) for i in range(1, senders + 1)]
            fund = []
            for lo in range(0, senders, 64):
                msgs = [
                    Msg("send", {"to": k.address_raw, "amount": 10**9}) for k in keys[lo : lo + 64]
                ]
                tx = make_tx(dev, chain_id, lo // 64, 10**6, msgs)
                r = client.post(
                    "/v1/txs", content=tx.encoded, headers={"content-type": "application/cbor"}
                )
                fund.append(r.json()["hash"])
            wait_committed(client, fund, 60)
            per = -(-n_txs // senders)
            if per > 64:
                raise SystemExit("at most 64 txs per sender (the mempool's nonce window)")
            to = b"\x11" * 20
            t = time.perf_counter()
            bodies = [
                make_tx(keys[s], chain_id, n, 10**4, [Msg("send", {"to": to, "amount": 1})]).encoded
                for n in range(per)
                for s in range(senders)
            ][:n_txs]
            print(f"(signed {len(bodies)} txs in {time.perf_counter() - t:.1f} s, not timed)")
            reqs = [("POST", "/v1/txs", b, "application/cbor") for b in bodies]
            print("| target | requests | accepted | accepted/s | p50 ms | p99 ms | statuses |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            ours = report("focusflow devnet POST /v1/txs", *run_load(api, reqs, concurrency, 120))
            t = time.perf_counter()
            while (
                client.get("/v1/status").json()["mempool"]["txs"] and time.perf_counter() - t < 120
            ):
                time.sleep(0.25)
            print(
                f"(mempool drained into blocks in {time.perf_counter() - t:.1f} s after the load)"
            )
            again = [
                make_tx(keys[s], chain_id, n, 10**4, [Msg("send", {"to": to, "amount": 1})]).encoded
                for n in range(per, 2 * per)
                for s in range(senders)
            ][:n_txs]
            batches = [
                ("POST", "/v1/txs/batch", cbor_encode(again[i : i + 100]), "application/cbor")
                for i in range(0, len(again), 100)
            ]
            report(
                "focusflow POST /v1/txs/batch (100 per request)",
                *run_load(api, batches, min(concurrency, 8), 120),
            )
        finally:
            stop(proc)
    port = free_port()
    bare = start_bare(port, None)
    try:
        floor = report(
            "bare FastAPI POST (no work)",
            *run_load(f"http://127.0.0.1:{port}", reqs, concurrency, 120),
        )
    finally:
        stop(bare)
    print(
        f"ratio: focusflow accepts {ours['per_s'] / floor['per_s']:.2f}x "
        "the bare framework's request rate"
    )


# --- part 2: reads on a large graph -------------------------------------------------
def bench_read(n_links: int, clients: int, n_requests: int) -> None:
    print(
        f"\n## GET /v1/focus/top?k=100: {clients} concurrent clients, {n_requests} requests, "
        f"graph of {n_links} links"
    )
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory() as tmp:
        home, _ = init_devnet(Path(tmp) / "home")
        dev = Keystore(home.keys).load("dev")
        proc, api = start_devnet(home.path, "0.5s")
        try:
            client = httpx.Client(base_url=api, timeout=120)
            chain_id = client.get("/v1/status").json()["chain_id"]
            n_particles = max(1000, n_links // 8)
            cids = [b"\x01\x55\x12\x20" + int(i).to_bytes(32, "big") for i in range(n_particles)]
            per_tx = 10_000
            n_tx = -(-n_links // per_tx)
            # A heavy-tailed graph: destinations drawn by a power law, sources uniformly.
            t0 = time.perf_counter()
            nonce = 0
            for wave in range(0, n_tx, 60):
                hashes = []
                for _ in range(wave, min(n_tx, wave + 60)):
                    src = rng.integers(0, n_particles, per_tx)
                    dst = (rng.pareto(1.2, per_tx) * 10).astype(np.int64) % n_particles
                    dst[dst == src] = (dst[dst == src] + 1) % n_particles
                    links = [
                        [cids[a], cids[b]] for a, b in zip(src.tolist(), dst.tolist(), strict=True)
                    ]
                    tx = make_tx(dev, chain_id, nonce, 10**7, [Msg("link", {"links": links})])
                    nonce += 1
                    r = client.post(
                        "/v1/txs", content=tx.encoded, headers={"content-type": "application/cbor"}
                    )
                    if r.status_code != 202:
                        raise SystemExit(f"link tx refused: {r.text}")
                    hashes.append(r.json()["hash"])
                wait_committed(client, hashes, 900)
            status = client.get("/v1/status").json()
            print(
                f"(loaded {status['focus']['links']} links over "
                f"{status['focus']['particles']} particles "
                f"in {time.perf_counter() - t0:.0f} s through the API, not timed)"
            )
            top_body = client.get("/v1/focus/top", params={"k": 100}).content
            reqs = [("GET", "/v1/focus/top?k=100", b"", "")] * n_requests
            print("| target | requests | ok | req/s | p50 ms | p99 ms | statuses |")
            print("| --- | --- | --- | --- | --- | --- | --- |")
            report("focusflow devnet /v1/focus/top?k=100", *run_load(api, reqs, clients, 120))
        finally:
            stop(proc)
        top_file = Path(tmp) / "top.json"
        top_file.write_bytes(top_body)
        port = free_port()
        bare = start_bare(port, top_file)
        try:
            report(
                "bare FastAPI, same bytes",
                *run_load(f"http://127.0.0.1:{port}", reqs, clients, 120),
            )
        finally:
            stop(bare)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--txs", type=int, default=20_000)
    p.add_argument("--senders", type=int, default=400)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--read-links", type=int, default=1_000_000)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--read-requests", type=int, default=5000)
    p.add_argument("--skip-submit", action="store_true")
    p.add_argument("--skip-read", action="store_true")
    a = p.parse_args()
    print(f"# bench/api.py on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}")
    if not a.skip_submit:
        bench_submit(a.txs, a.senders, a.concurrency)
    if not a.skip_read:
        bench_read(a.read_links, a.clients, a.read_requests)


if __name__ == "__main__":
    main()
