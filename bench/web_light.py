"""The browser's light client: header sync, data-availability sampling and the
page's script bytes, beside the Python light client doing the same work.

Sync: a :class:`focusflow.light.synthetic.SyntheticChain` of ``--heights``
headers (100 validators per set, every certificate signed by all of its set
with real Ed25519 keys, four set changes recorded in a real sparse Merkle
state: bench/light.py's history, two changes skipped over and two bisected) is
served over HTTP on loopback in the node's ``/v1/light`` JSON by a separate
server process. ``static/light/client.js`` in headless Chromium (Debian's,
through Playwright: nothing downloaded) takes header 1 under the genesis set
and verifies the head by skipping and bisection into its IndexedDB store,
emptied before each run; ``focusflow.light.LightClient`` does the same into
its JSON store. One untimed run of each first (the server signs each
certificate when first asked); the figure is the median of ``--runs``.

Sampling: one block's extended square of width 2k (``--k``, default 64: a
2 MiB original square of 512-byte shares) served in ``/v1/da`` JSON by the
same server. A round is what ``focusflow light sample`` does for a verified
header: the row and column roots are fetched and must hash to the data root,
then 16 distinct random shares are fetched and each proof is checked to the
data root. The browser asks the 16 shares in one request (``GET
/v1/light/shares/{h}?at=...``), the CLI one request per share (``Sampler`` over
the node client), so the round is also timed without the network: the 16
answers fetched first, then only parsed and verified.

Fraud proofs: a bad-encoding proof of one row of that square (one share
changed), parsed and verified as ``focusflow light sample`` does (each of its
k shares' proofs, the row decoded from them by the Leopard code, its NMT root
recomputed), in the browser and in Python.

Script bytes: what ``/`` (index.html) loads as scripts in Chromium, by the
bytes of each response, and what verified mode loads on top of it (the light
client's modules are imported only then); gzip sizes beside, for reference
(the node serves them uncompressed).

    .venv/bin/python bench/web_light.py [--heights 10000] [--validators 100] [--k 64] [--runs 5]
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from focusflow.api.app import STATIC
from focusflow.client import NodeClient
from focusflow.da import (
    ExtendedSquare,
    Sampler,
    befp_from_json,
    befp_to_json,
    extend,
    find_bad_encoding,
    proof_from_json,
    square_from_block,
    verify_bad_encoding_proof,
    verify_share_proof,
)
from focusflow.da.merkle import merkle_root
from focusflow.da.namespace import namespace_v0
from focusflow.light.client import LightClient, Node
from focusflow.light.store import LightStore
from focusflow.light.synthetic import SyntheticChain
from focusflow.testing.web import find_chromium, free_port
from light import history  # bench/light.py: the same validator-set history

CHAIN_ID = "focusflow-bench-web-light"
CYTOSCAPE = "vendor/cytoscape.esm.min.mjs"
DA_HEIGHT = 5
SAMPLES = 16


def make_square(k: int) -> Any:
    """An extended square whose original k x k square holds blobs of three namespaces."""
    for fill in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        size = int(fill * k * k * 478)  # a sparse share holds ~478 bytes of a blob
        blobs = [(namespace_v0(b"bench%d" % n), bytes([n + 1]) * (size // 3)) for n in range(3)]
        shares = square_from_block([b"tx" * 100], blobs)
        if len(shares) == k * k:
            return extend(shares)
    raise SystemExit(f"no blobs found that make a {k} x {k} square")


def serve_chain(port: int, heights: int, validators: int, t0: int, k: int, ready: Any) -> None:
    """The server process: the chain's light routes, one block's square, the page."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from focusflow.da.proofs import proof_to_json

    chain = SyntheticChain(CHAIN_ID, heights, history(heights, validators), t0)
    square = make_square(k)
    roots = {
        "height": DA_HEIGHT,
        "data_root": square.data_root().hex(),
        "k": square.k,
        "row_roots": [r.hex() for r in square.row_roots()],
        "col_roots": [c.hex() for c in square.col_roots()],
    }

    async def light(request: Request) -> JSONResponse:
        status, body = chain.answer(request.url.path, dict(request.query_params))
        return JSONResponse(body, status)

    async def da_roots(request: Request) -> JSONResponse:
        return JSONResponse(roots)

    async def share(request: Request) -> JSONResponse:
        row, col = request.path_params["row"], request.path_params["col"]
        proof = square.proof(row, col)  # as the node's DAStore.share_proof
        doc = {"height": DA_HEIGHT, "row": row, "col": col, "share": proof.share.hex()}
        return JSONResponse({**doc, "proof": proof_to_json(proof)})

    async def shares(request: Request) -> JSONResponse:
        items = []
        for pair in request.query_params["at"].split(";"):
            row, col = (int(x) for x in pair.split(","))
            proof = square.proof(row, col)
            doc = {"row": row, "col": col, "share": proof.share.hex()}
            items.append({**doc, "proof": proof_to_json(proof)})
        return JSONResponse({"height": DA_HEIGHT, "shares": items})

    async def index(request: Request) -> FileResponse:
        return FileResponse(Path(STATIC) / "index.html")

    app = Starlette(
        routes=[
            Route("/", index),
            Route(f"/v1/light/shares/{DA_HEIGHT}", shares),
            Route("/v1/light/{rest:path}", light),
            Route(f"/v1/da/{DA_HEIGHT}", da_roots),
            Route(f"/v1/da/{DA_HEIGHT}/shares/{{row:int}}/{{col:int}}", share),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", access_log=False)
    )
    ready.set()
    server.run()


JS_SYNC = """async (a) => {
  const V = await import("/static/verify.js");
  const C = await import("/static/light/client.js");
  const S = await import("/static/light/store.js");
  const times = [];
  let verified = 0;
  let head = "";
  for (let run = 0; run <= a.runs; run++) {
    const store = await S.LightStore.open(a.chain);
    await store.clear();
    const lc = new C.LightClient(store, new C.Node(""));
    const t0 = performance.now();
    await lc.trustGenesis(V.fromHex(a.genesis_set));
    head = (await lc.sync(null)).hashHex;
    const ms = performance.now() - t0;
    if (run) times.push(ms);
    verified = lc.verified;
  }
  return { times, verified, head };
}"""

JS_SAMPLE = """async (a) => {
  const V = await import("/static/verify.js");
  const C = await import("/static/light/client.js");
  const D = await import("/static/light/da.js");
  const node = new C.Node("");
  const block = { height: a.height, header: { data_root: V.fromHex(a.root) } };
  const rounds = [];
  const verifyOnly = [];
  let last = null;
  for (let run = 0; run <= a.runs; run++) {
    const t0 = performance.now();
    last = await D.sampleBlock(node, block, a.samples);
    if (run) rounds.push(performance.now() - t0);
    // the same work without the network: 16 answers fetched first
    const width = last.width;
    const coords = D.drawDistinct(width * width, a.samples)
      .map((f) => [Math.floor(f / width), f % width]);
    const docs = await Promise.all(
      coords.map(([r, c]) => node.get(`/v1/da/${a.height}/shares/${r}/${c}`)));
    const roots = await node.get(`/v1/da/${a.height}`);
    const t1 = performance.now();
    const all = [...roots.row_roots, ...roots.col_roots].map((x) => V.fromHex(x));
    if (!V.equal(await V.merkleRoot(all), block.header.data_root)) return { error: "roots" };
    // at once, as sampleBlock checks its shares
    const oks = await Promise.all(
      docs.map((d) => D.verifyShareProof(block.header.data_root, D.parseShare(d))));
    if (!oks.every(Boolean)) return { error: "share" };
    if (run) verifyOnly.push(performance.now() - t1);
  }
  const { available, confidence, width } = last;
  return { rounds, verifyOnly, available, confidence, width };
}"""


def py_sync(url: str, chain: SyntheticChain, runs: int) -> tuple[list[float], int]:
    times, verified = [], 0
    for run in range(runs + 1):
        with tempfile.TemporaryDirectory() as home, Node(url) as node:
            client = LightClient(LightStore(Path(home), CHAIN_ID), node)
            start = time.perf_counter()
            client.trust_genesis(chain.set_at(1))
            head = client.sync()
            client.store.save()
            elapsed = time.perf_counter() - start
        assert head.hash == chain.header(chain.height).hash
        verified = client.verified
        if run:
            times.append(1000 * elapsed)
    return times, verified


def py_sample(url: str, data_root: bytes, runs: int) -> tuple[list[float], list[float], float]:
    """``focusflow light sample``'s round (da_cmd.square_width, fetch_share,
    Sampler) for the block; and its verification alone on prefetched answers."""
    from focusflow.cli.da_cmd import fetch_share, square_width

    rounds, verify_only, confidence = [], [], 0.0
    rng = random.Random(1)
    with NodeClient(url, timeout=10) as api:
        for run in range(runs + 1):
            start = time.perf_counter()
            k, why = square_width(api, DA_HEIGHT, data_root)
            assert k, why
            sampler = Sampler(data_root, 2 * k, DA_HEIGHT, SAMPLES, rng=rng)
            for request in sampler.requests():
                sampler.receive(request, fetch_share(api, request))
            result = sampler.result()
            elapsed = time.perf_counter() - start
            assert result.available
            confidence = result.confidence
            coords = result.samples
            docs = [api.da_share(DA_HEIGHT, r, c) for r, c in coords]
            roots = api.da_roots(DA_HEIGHT)
            start = time.perf_counter()
            axis_roots = [bytes.fromhex(x) for x in roots["row_roots"] + roots["col_roots"]]
            assert merkle_root(axis_roots) == data_root
            for d in docs:
                proof = proof_from_json(d["row"], d["col"], d["share"], d["proof"])
                assert verify_share_proof(data_root, proof)
            fetch_roots_and_verify = time.perf_counter() - start
            if run:
                rounds.append(1000 * elapsed)
                verify_only.append(1000 * fetch_roots_and_verify)
    return rounds, verify_only, confidence


JS_FRAUD = """async (a) => {
  const da = await import("/static/light/da.js");
  const V = await import("/static/verify.js");
  const root = V.fromHex(a.root);
  const times = [];
  let verdict;
  for (let i = 0; i <= a.runs; i++) {
    const t = performance.now();
    verdict = await da.verifyBadEncodingProof(root, da.parseBadEncodingProof(a.doc));
    if (i) times.push(performance.now() - t);
  }
  return { verdict, times };
}"""


def fraud_proof(k: int) -> tuple[bytes, dict[str, Any]]:
    """The data root of ``make_square(k)`` with one share of row 1 changed, and
    the fraud proof of that row in its JSON form."""
    data = make_square(k).data.copy()
    data[1, 0, 300] ^= 0x5A
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert proof is not None
    return bad.data_root(), befp_to_json(proof)


def py_verify_fraud(root: bytes, doc: dict[str, Any], runs: int) -> list[float]:
    """What ``focusflow light sample`` does with the proof: parse, verify."""
    times = []
    for i in range(runs + 1):
        t = time.perf_counter()
        assert verify_bad_encoding_proof(root, befp_from_json(doc))
        if i:
            times.append((time.perf_counter() - t) * 1000)
    return times


def script_bytes(page: Any, url: str) -> dict[str, dict[str, int]]:
    """Script responses of the page's first load, and of verified mode's on top."""
    loads: dict[str, dict[str, int]] = {"first": {}, "verified": {}}
    phase = "first"

    def record(response: Any) -> None:
        if response.request.resource_type == "script" and response.status == 200:
            name = response.url.split("/static/", 1)[-1]
            loads[phase][name] = len(response.body())

    page.on("response", record)
    page.goto(f"{url}/", wait_until="load")
    page.wait_for_timeout(500)
    phase = "verified"
    page.evaluate("document.querySelector('#verified-toggle').click()")
    page.wait_for_timeout(1500)
    page.remove_listener("response", record)
    return loads


def gz(names: dict[str, int]) -> int:
    return sum(len(gzip.compress((Path(STATIC) / n).read_bytes(), 6)) for n in names)


def ms(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--heights", type=int, default=10_000)
    p.add_argument("--validators", type=int, default=100)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    chromium = find_chromium()
    if chromium is None:
        sys.exit("no Chromium found (install Debian's chromium package, or set $CHROMIUM)")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python "
        f"{platform.python_version()}; load {os.getloadavg()[0]:.2f} at start"
    )
    t0 = int(time.time() * 1000) - args.heights * 1000
    port = free_port()
    ready = mp.get_context("spawn").Event()
    server = mp.get_context("spawn").Process(
        target=serve_chain,
        args=(port, args.heights, args.validators, t0, args.k, ready),
        daemon=True,
    )
    server.start()
    url = f"http://127.0.0.1:{port}"
    try:
        chain = SyntheticChain(CHAIN_ID, args.heights, history(args.heights, args.validators), t0)
        data_root = make_square(args.k).data_root()
        ready.wait(120)
        _wait_up(url)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page()
            page.goto(f"{url}/static/style.css")
            print(f"Chromium {browser.version}; {args.runs} timed runs after one untimed")

            js = page.evaluate(
                JS_SYNC,
                {"chain": CHAIN_ID, "genesis_set": chain.set_at(1).hash().hex(), "runs": args.runs},
            )
            assert js["head"] == chain.header(args.heights).hash.hex(), js
            py, py_verified = py_sync(url, chain, args.runs)
            ratio = statistics.median(py) / statistics.median(js["times"])
            print(
                f"sync of {args.heights} headers, {len(chain.sets) - 1} set changes, "
                f"{args.validators} validators per set, from header 1 into the store: "
                f"browser {ms(js['times'])} ({js['verified']} headers verified), "
                f"Python CLI client {ms(py)} ({py_verified} headers); "
                f"Python / browser = {ratio:.2f}; goal < 2000 ms in the browser"
            )

            sample = page.evaluate(
                JS_SAMPLE,
                {
                    "height": DA_HEIGHT,
                    "root": data_root.hex(),
                    "samples": SAMPLES,
                    "runs": args.runs,
                },
            )
            assert "error" not in sample and sample["available"], sample
            py_rounds, py_verify, py_conf = py_sample(url, data_root, args.runs)
            w = sample["width"]
            print(
                f"sampling {SAMPLES} shares of a {w} x {w} extended square (k = {args.k}), "
                f"confidence {100 * sample['confidence']:.4f} % (Python {100 * py_conf:.4f} %): "
                f"round with the network: browser {ms(sample['rounds'])}, Python CLI "
                f"{ms(py_rounds)}, Python / browser = "
                f"{statistics.median(py_rounds) / statistics.median(sample['rounds']):.2f}; "
                f"verification alone (roots' hash + {SAMPLES} proofs): browser "
                f"{ms(sample['verifyOnly'])}, Python {ms(py_verify)}, "
                f"Python / browser = "
                f"{statistics.median(py_verify) / statistics.median(sample['verifyOnly']):.2f}; "
                "goal < 100 ms in the browser"
            )

            fraud = fraud_proof(args.k)
            js_fraud = page.evaluate(
                JS_FRAUD, {"root": fraud[0].hex(), "doc": fraud[1], "runs": args.runs}
            )
            assert js_fraud["verdict"], js_fraud
            py_fraud = py_verify_fraud(*fraud, args.runs)
            print(
                f"a bad-encoding fraud proof of a row of the {2 * args.k} x {2 * args.k} square "
                f"(its {args.k} shares parsed, each proof checked, the row decoded and its NMT "
                f"root recomputed): browser {ms(js_fraud['times'])}, Python {ms(py_fraud)}, "
                f"Python / browser = "
                f"{statistics.median(py_fraud) / statistics.median(js_fraud['times']):.2f}"
            )

            loads = script_bytes(browser.new_page(), url)
            first, lazy = loads["first"], loads["verified"]
            print(
                f"first-load scripts of index.html: {sum(first.values()) / 1024:.1f} KiB in "
                f"{len(first)} files (gzip {gz(first) / 1024:.1f} KiB), of which "
                f"{CYTOSCAPE} {first.get(CYTOSCAPE, 0) / 1024:.1f} KiB; goal < 300 KB. "
                f"Verified mode loads {sum(lazy.values()) / 1024:.1f} KiB "
                f"more in {len(lazy)} files (gzip {gz(lazy) / 1024:.1f} KiB): "
                + ", ".join(sorted(lazy))
            )
            browser.close()
    finally:
        server.terminate()
        server.join(10)
    print(f"load {os.getloadavg()[0]:.2f} at the end")


def _wait_up(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with NodeClient(url, timeout=2) as api:
                api.get("/v1/light/header/1")
                return
        except Exception:
            time.sleep(0.2)
    raise SystemExit("the bench server did not start")


if __name__ == "__main__":
    main()
