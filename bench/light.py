"""Light client: sync over 10,000 headers with 4 validator-set changes, then a
verified particle query.

Sync: a :class:`focusflow.light.synthetic.SyntheticChain` of 10,000 headers
(100 validators per set, as CometBFT's own light-client benchmark uses; every
certificate signed by all of its set with real Ed25519 keys; the set changes
recorded in a real sparse Merkle state) is served over HTTP by uvicorn on
loopback with the node's ``/v1/light`` JSON. The client starts from genesis
(header 1, the genesis set) and verifies the head by skipping verification,
bisecting where a change leaves the trusted set too little power. Two of the
four changes keep more than 1/3 of the power (skipped over), two do not (the
client bisects down to the adjacent header and proves the new set from the
state). The server signs a certificate the first time it is asked (a node has
them stored), so one untimed run warms it; each timed run starts from an empty
store.

Query: a real chain (one validator, 15,000 links over 3 blocks, 15,000 particles) served by the
node's real app; after a sync, ``LightClient.particle`` fetches the particle's
proof answer and verifies the index chunk, the focus record and the focus chunk
against the verified header. Timed in process (the ``focusflow`` command adds
the interpreter's start, printed separately).

    .venv/bin/python bench/light.py [--heights 10000] [--validators 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from focusflow.light.client import LightClient, Node
from focusflow.light.store import LightStore
from focusflow.light.synthetic import SyntheticChain
from focusflow.testing.lightnode import serve

CHAIN_ID = "focusflow-bench-light"


def history(heights: int, n: int) -> dict[int, dict[int, int]]:
    """Five sets of ``n`` equal validators; what each change keeps of the last set."""
    keep = [0.5, 0.0, 0.2, 0.7]  # > 1/3 skipped over; <= 1/3 bisected
    sets = {1: {i: 10 for i in range(n)}}
    fresh = n
    for j, share in enumerate(keep):
        prev = sorted(sets[max(sets)])
        kept = prev[: int(share * n)]
        new = list(range(fresh, fresh + n - len(kept)))
        fresh += len(new)
        sets[(j + 1) * heights // 5] = {i: 10 for i in kept + new}
    return sets


def chain_app(chain: SyntheticChain) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/light/{rest:path}")
    def light(rest: str, request: Request) -> JSONResponse:
        status, body = chain.answer(f"/v1/light/{rest}", dict(request.query_params))
        return JSONResponse(body, status_code=status)

    return app


def bench_sync(heights: int, validators: int, runs: int) -> dict:
    t0 = time.perf_counter()
    now = int(time.time() * 1000)
    chain = SyntheticChain(CHAIN_ID, heights, history(heights, validators), now - heights * 1000)
    build_s = time.perf_counter() - t0
    url, stop = serve(chain_app(chain))
    times, verified = [], 0
    try:
        for run in range(runs + 1):
            with tempfile.TemporaryDirectory() as home:
                node = Node(url)
                client = LightClient(LightStore(Path(home), CHAIN_ID), node)
                start = time.perf_counter()
                client.trust_genesis(chain.set_at(1))
                head = client.sync()
                client.store.save()
                elapsed = time.perf_counter() - start
                node.close()
            assert head.hash == chain.header(heights).hash
            verified = client.verified
            if run:  # run 0 warms the server's certificates
                times.append(elapsed)
    finally:
        stop()
    return {
        "build_s": build_s,
        "median_s": statistics.median(times),
        "min_s": min(times),
        "verified_headers": verified,
        "changes": len(chain.sets) - 1,
    }


def bench_query(samples: int) -> dict:
    from focusflow.chain import Msg
    from focusflow.core.cid import cid_from_bytes
    from focusflow.testing.chains import ALICE, genesis, new_chain, particle, tx
    from focusflow.testing.lightnode import node_app

    with tempfile.TemporaryDirectory() as tmp:
        chain = new_chain(Path(tmp) / "chain", genesis(focus={"mode": "diffusion"}))
        now = int(time.time() * 1000)
        for b in range(3):
            pairs = [
                [particle(f"b{b}-{i}"), particle(f"b{(b + 1) % 3}-{(i * 7) % 5000}")]
                for i in range(5000)
            ]
            chain.produce_block(
                [tx(ALICE, b, Msg("link", {"links": pairs}))], time_ms=now - (3 - b) * 1000
            )
        genesis_file = Path(tmp) / "genesis.json"
        genesis(focus={"mode": "diffusion"}).save(genesis_file)
        url, stop = serve(node_app(chain))
        try:
            node = Node(url)
            client = LightClient(LightStore(Path(tmp) / "light", chain.chain_id), node)
            client.trust_genesis(chain.validators_at(1))
            client.sync()
            client.store.save()
            cids = [cid_from_bytes(particle(f"b1-{i}")) for i in range(samples)]
            times = []
            for cid in cids:
                start = time.perf_counter()
                answer = client.particle(cid)
                times.append(time.perf_counter() - start)
                assert answer.focus_q > 0
            particles = node.get("/v1/status")["focus"]["particles"]
            node.close()
            cli = _cli_query(url, Path(tmp) / "light", cids[0])
        finally:
            stop()
            chain.close()
    times.sort()
    return {
        "median_ms": 1000 * statistics.median(times),
        "p95_ms": 1000 * times[int(0.95 * (len(times) - 1))],
        "particles": particles,
        "cli_s": cli,
    }


def _cli_query(url: str, home: Path, cid: str) -> float:
    start = time.perf_counter()
    command = ["light", "query", "particle", cid, "--node", url, "--home", str(home), "--json"]
    subprocess.run([sys.executable, "-m", "focusflow", *command], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--heights", type=int, default=10_000)
    parser.add_argument("--validators", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {platform.processor() or '?'}, python "
          f"{platform.python_version()}")  # fmt: skip
    s = bench_sync(args.heights, args.validators, args.runs)
    print(
        f"light sync over {args.heights} headers, {s['changes']} validator-set changes, "
        f"{args.validators} validators per set: median {s['median_s']:.3f} s "
        f"(min {s['min_s']:.3f} s, {args.runs} runs), {s['verified_headers']} headers "
        f"verified; goal < 2 s [building the signed history: {s['build_s']:.1f} s]"
    )
    q = bench_query(args.queries)
    print(
        f"verified particle query after sync ({q['particles']} particles): median "
        f"{q['median_ms']:.1f} ms, p95 {q['p95_ms']:.1f} ms; goal < 20 ms "
        f"[the same from the shell, `focusflow light query particle`: {q['cli_s']:.2f} s, "
        "most of it the interpreter's start]"
    )
    print(
        "CometBFT: light/client_benchmark_test.go (BenchmarkSequence, BenchmarkBisection: "
        "1,000 headers, 100 validators, in-memory provider, no network) publishes no "
        "results; no published light-sync timings were found"
    )


if __name__ == "__main__":
    main()
