"""The browser's light client (``static/light/``) in a real headless Chromium.

Against a real devnet process: the page in verified mode syncs the chain's
headers from header 1 to the head by skipping verification, keeps them in
IndexedDB and resumes from them after a reload, and samples each new head's
data square. Behind a lying node (a real HTTP and WebSocket server on loopback
in front of the devnet that rewrites the answers one lie touches) it catches
a forged header, a header re-signed by validators of the liar's own, a share
withheld and a share changed; with a witness that serves a header signed by
the chain's own validator for another block at the same height, it raises the
fork alarm.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from focusflow.api.app import STATIC
from focusflow.chain.block import Header, sign_certificate
from focusflow.consensus.certificate import encode_certificate
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import FocusflowError
from focusflow.core.keys import KeyPair
from focusflow.da import (
    befp_from_json,
    befp_to_json,
    extend,
    find_bad_encoding,
    leopard,
    square_from_block,
    verify_bad_encoding_proof,
)
from focusflow.da.fraud import BadEncodingProof
from focusflow.da.namespace import namespace_v0
from focusflow.da.proofs import (
    COL,
    ROW,
    ShareProof,
    proof_from_json,
    proof_to_json,
    prove_share,
    verify_share_proof,
)
from focusflow.da.sampling import detection_probability
from focusflow.da.square import ExtendedSquare
from focusflow.light.client import LightClient
from focusflow.light.client import Node as LightNode
from focusflow.light.errors import ForkError
from focusflow.light.store import MAX_BLOCKS, LightStore
from focusflow.light.synthetic import SyntheticChain
from focusflow.light.verify import parse_light_block
from focusflow.testing.devnet import Devnet, start_devnet, wait_height
from focusflow.testing.web import keys, serve, set_of, validators_json
from tests.api.conftest import module_page
from tests.da.test_fraud import mutated_proof_json

UI_TIMEOUT_MS = 20_000  # bound of every wait on the page
FORGED_ROOT = bytes.fromhex("ab" * 32)


class Liar:
    """Forwards every request to the node (and relays the live socket), and
    while ``lie`` names one, rewrites what that lie touches as a lying node
    would serve it. ``cors``: answer cross-origin reads (as a witness must)."""

    def __init__(self, upstream: str, validator_key: KeyPair, cors: bool = False) -> None:
        self.upstream = upstream
        self.lie: str | None = None
        self.cors = cors
        self.validator_key = validator_key
        self.own_keys = keys(3, base=70)
        self.own_set = set_of(self.own_keys, (10, 10, 10))
        self.fork_from = 0  # the witness's fork: heights at and above it
        self.client: httpx.AsyncClient | None = None
        self.url = ""

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                WebSocketRoute("/v1/ws", self.relay),
                Route("/{path:path}", self.forward, methods=["GET", "POST"]),
            ],
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def share_lie(self, path: str) -> str | None:
        """``withhold`` or ``bad_share`` when this request is the share the lie is about."""
        parts = path.strip("/").split("/")
        if len(parts) == 6 and parts[:2] == ["v1", "da"] and parts[3] == "shares":
            if self.lie == "withhold" and parts[4:] == ["0", "0"]:
                return "withhold"
            if self.lie == "bad_share" and parts[4:] == ["1", "1"]:
                return "bad_share"
        return None

    async def forward(self, request: Request) -> Response:
        path = request.url.path
        headers = {"access-control-allow-origin": "*"} if self.cors else {}
        if self.share_lie(path) == "withhold":
            refusal = {"error": {"code": "share_unavailable", "message": "withheld"}}
            return Response(json.dumps(refusal), 404, headers, media_type="application/json")
        parts = path.strip("/").split("/")
        if self.lie == "false_fraud" and len(parts) == 4 and parts[::3] == ["v1", "fraud"]:
            # a well-formed proof of another square's bad row, said to be this block's
            proof = befp_to_json(fraud_cases(square(4))[1][0])
            doc = {"height": int(parts[2]), "proof": proof}
            return Response(json.dumps(doc), 200, headers, media_type="application/json")
        if self.client is None:
            self.client = httpx.AsyncClient(base_url=self.upstream, timeout=10)
        r = await self.client.request(
            request.method,
            path,
            params=request.query_params,
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "")},
        )
        body, ctype = r.content, r.headers.get("content-type", "")
        if self.lie and r.status_code == 200 and ctype.startswith("application/json"):
            body = json.dumps(self.tamper(path, json.loads(body))).encode()
        return Response(body, r.status_code, headers, media_type=ctype or None)

    async def relay(self, ws: WebSocket) -> None:
        await ws.accept()
        url = self.upstream.replace("http://", "ws://") + "/v1/ws"
        async with websockets.connect(url) as up:

            async def down() -> None:
                async for msg in up:
                    await ws.send_text(msg if isinstance(msg, str) else msg.decode())

            async def upward() -> None:
                while True:
                    await up.send(await ws.receive_text())

            tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(upward())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                t.cancel()

    def reheader(self, doc: dict, signers: list[KeyPair], **change: Any) -> dict:
        """The header answer with ``change`` made to the header, its hash
        recomputed, and a certificate of ``signers`` (none: the old one kept)."""
        header = Header.from_cbor(decode(bytes.fromhex(doc["header_cbor"])))
        header = replace(header, **change)
        doc.update(hash=header.hash.hex(), header_cbor=encode(header.to_cbor()).hex())
        if signers:
            cert = sign_certificate(signers, header.chain_id, header.height, header.hash)
            doc["certificate_cbor"] = encode_certificate(cert).hex()
        return doc

    def tamper(self, path: str, doc: dict) -> dict:
        lie = self.lie
        is_header = path.startswith("/v1/light/header/") and doc.get("height", 0) > 1
        if lie == "forged_header" and is_header:
            # another app hash under the old signatures
            return self.reheader(doc, [], state_root=FORGED_ROOT)
        if lie == "own_set" and is_header:
            # the chain's blocks, said to be decided by validators of the liar's own
            doc = self.reheader(doc, self.own_keys, validators_hash=self.own_set.hash())
            doc["validators"] = validators_json(self.own_set)
            return doc
        if lie == "fork" and is_header and doc["height"] >= self.fork_from:
            # another block at the same height, signed by the chain's own validator
            return self.reheader(doc, [self.validator_key], state_root=FORGED_ROOT)
        if lie == "da_roots" and path.count("/") == 3 and path.startswith("/v1/da/"):
            # row roots of another square: they no longer hash to the data root
            doc["row_roots"][0] = doc["row_roots"][0][:-2] + "00"
        if path.startswith("/v1/light/shares/") and lie in ("withhold", "bad_share"):
            for item in doc["shares"]:
                if lie == "withhold" and (item["row"], item["col"]) == (0, 0):
                    item.pop("share"), item.pop("proof")
                    item["error"] = {"code": "share_unavailable", "message": "withheld"}
                if lie == "bad_share" and (item["row"], item["col"]) == (1, 1):
                    share = bytearray.fromhex(item["share"])
                    share[100] ^= 1
                    item["share"] = share.hex()
        if self.share_lie(path) == "bad_share":
            share = bytearray.fromhex(doc["share"])
            share[100] ^= 1
            doc["share"] = share.hex()
        return doc


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Iterator[Devnet]:
    net = start_devnet(tmp_path_factory.mktemp("light") / "home")
    wait_height(net, 3)
    yield net
    net.stop()


def validator_key(node: Devnet) -> KeyPair:
    return KeyPair.load(node.home / "validator_key")


@pytest.fixture(scope="module")
def liar(node) -> Iterator[Liar]:
    proxy = Liar(node.api.rstrip("/"), validator_key(node))
    app: Any = proxy.app()
    with serve(app) as url:
        proxy.url = url
        yield proxy


@pytest.fixture(scope="module")
def witness(node) -> Iterator[Liar]:
    proxy = Liar(node.api.rstrip("/"), validator_key(node), cors=True)
    app: Any = proxy.app()
    with serve(app) as url:
        proxy.url = url
        yield proxy


@pytest.fixture
def open_page(browser):
    """Opens pages in one fresh browser context (its own IndexedDB)."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []

    def opener(url: str):
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url, wait_until="domcontentloaded")
        return page

    yield opener
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def head_height(node: Devnet) -> int:
    with node.client() as c:
        return int(c.get("/v1/light/header/latest").json()["height"])


def synced_height(page, at_least: int) -> int:
    page.wait_for_function(
        f"Number(document.querySelector('#light-height').dataset.height) >= {at_least}"
    )
    return int(page.get_attribute("#light-height", "data-height"))


def light_state(page, state: str, check: str | None = None) -> None:
    extra = f'[data-check="{check}"]' if check else ""
    page.wait_for_selector(f'#light-status[data-state="{state}"]{extra}')


def stored_blocks(page) -> list[dict]:
    """The light client's IndexedDB records, read in the page."""
    return page.evaluate(
        """() => new Promise((resolve, reject) => {
          const req = indexedDB.open("focusflow-light");
          req.onsuccess = () => {
            const all = req.result.transaction("blocks").objectStore("blocks").getAll();
            all.onsuccess = () => resolve(all.result.map((r) => r.doc));
            all.onerror = () => reject(all.error);
          };
          req.onerror = () => reject(req.error);
        })"""
    )


def test_syncs_from_header_one_samples_and_resumes_after_reload(node, open_page):
    start = head_height(node)
    page = open_page(f"{node.api.rstrip('/')}/?verified=1")
    light_state(page, "synced")
    height = synced_height(page, start)
    assert page.get_attribute("#light-root", "data-height") == "1"
    since = page.get_attribute("#light-root", "data-since")
    assert "node's word" in page.text_content("#light-root")
    # a sync from header 1 with one validator is one skipping step, not one per block;
    # the status line may already tell a later round, the root line keeps the first
    assert page.get_attribute("#light-root", "data-root-steps") == "2"
    assert "verified in" in page.text_content("#light-status")

    # what the browser stored is the chain's own headers, as the node committed them
    with node.client() as c:
        for doc in stored_blocks(page):
            ours = c.get(f"/v1/light/header/{doc['height']}").json()
            assert doc["hash"] == ours["hash"] and doc["header_cbor"] == ours["header_cbor"]
    assert {1, height} <= {d["height"] for d in stored_blocks(page)}

    # a devnet's empty blocks have a 2 x 2 square: all four shares are sampled
    page.wait_for_selector('#light-da[data-available="true"]')
    assert float(page.get_attribute("#light-da", "data-confidence")) == 1.0
    assert page.get_attribute("#light-da", "data-samples") == "4"
    assert page.locator("#da-problems li").count() == 0
    assert page.locator("#fork-alarm").is_hidden()

    # the page's own header check now runs against the synced set
    page.wait_for_selector('#verified-header[data-verified="yes"]')
    page.wait_for_function(
        "document.querySelector('#verified-header').textContent.includes('light client synced')"
    )

    # a reload resumes from IndexedDB: the same root, taken at the same time
    page.reload(wait_until="domcontentloaded")
    light_state(page, "synced")
    resumed = page.text_content("#light-status")
    assert "resumed from stored header" in resumed
    stored = int(resumed.split("resumed from stored header ")[1].split(")")[0])
    assert stored >= height
    assert page.get_attribute("#light-root", "data-height") == "1"
    assert page.get_attribute("#light-root", "data-since") == since
    assert synced_height(page, stored) >= stored
    assert page.locator("#verify-problems li").count() == 0


def honest_then(page_opener, liar: Liar, lie: str):
    """A page synced through the liar while it was honest; then the lie starts."""
    liar.lie = None
    page = page_opener(f"{liar.url}/?verified=1")
    light_state(page, "synced")
    page.wait_for_selector("#light-da[data-available]")
    liar.lie = lie
    return page


def test_forged_header_is_caught(liar, open_page):
    """Another app hash under the block's true signatures: the certificate is
    for another block."""
    try:
        page = honest_then(open_page, liar, "forged_header")
        light_state(page, "failed", "cert_value")
        problem = page.locator('#verify-problems li[data-what="header (light client)"]')
        problem.wait_for()
        assert problem.get_attribute("data-check") == "cert_value"
        assert "does not verify" in problem.text_content()
    finally:
        liar.lie = None


def test_validators_of_the_liars_own_are_caught_without_a_pin(liar, open_page, node):
    """Headers re-signed by a set the chain never recorded: the synced set
    signed none of them, bisection reaches the adjacent header, whose set the
    trusted state does not record. Nothing was pinned."""
    try:
        page = honest_then(open_page, liar, "own_set")
        light_state(page, "failed", "validator_set_mismatch")
        # and the page's own check of the newest header refuses it against the synced set
        refused = page.locator('#verify-problems li[data-check="pinned_set"]').first
        refused.wait_for()
        assert "synced" in (refused.text_content() or "")
    finally:
        liar.lie = None


def test_withheld_share_is_reported(liar, open_page, node):
    try:
        page = honest_then(open_page, liar, "withhold")
        item = page.locator('#da-problems li[data-kind="withheld"][data-row="0"][data-col="0"]')
        item = item.first
        item.wait_for()
        assert "not served" in item.text_content() and "share_unavailable" in item.text_content()
        page.wait_for_selector('#light-da[data-available="false"]')
        assert page.locator('#da-problems li[data-kind="invalid"]').count() == 0
    finally:
        liar.lie = None


def test_wrong_share_is_caught(liar, open_page):
    try:
        page = honest_then(open_page, liar, "bad_share")
        item = page.locator('#da-problems li[data-kind="invalid"][data-row="1"][data-col="1"]')
        item = item.first
        item.wait_for()
        assert "does not verify" in item.text_content()
        page.wait_for_selector('#light-da[data-available="false"]')
        assert page.locator('#da-problems li[data-kind="withheld"]').count() == 0
    finally:
        liar.lie = None


def test_a_fraud_proof_that_proves_nothing_is_listed_and_refuses_nothing(liar, open_page):
    """A node that serves, for an honest block, a fraud proof of another
    square: the page lists it and the block stays available."""
    try:
        page = honest_then(open_page, liar, "false_fraud")
        item = page.locator('#da-problems li[data-kind="bad_fraud_proof"]').first
        item.wait_for()
        assert "proves nothing" in (item.text_content() or "")
        height = int(item.get_attribute("data-height") or 0)
        # the panel has shown that block's round or a later one (each with the same lie)
        page.wait_for_function(
            "(h) => Number(document.getElementById('light-da').dataset.height) >= h", arg=height
        )
        assert page.get_attribute("#light-da", "data-available") == "true"
        assert page.locator('#da-problems li[data-kind="bad_encoding"]').count() == 0
    finally:
        liar.lie = None


def test_square_roots_that_are_not_the_headers_are_caught(liar, open_page):
    """Row and column roots that do not hash to the verified data root: no
    share is drawn, the block is not available, and the problem is listed."""
    try:
        page = honest_then(open_page, liar, "da_roots")
        problem = page.locator('#verify-problems li[data-check="da_roots"]').first
        problem.wait_for()
        assert (problem.get_attribute("data-what") or "").startswith("data of block ")
        page.wait_for_selector('#light-da[data-available="false"][data-samples="0"]')
        light_state(page, "synced")  # the headers still verify
    finally:
        liar.lie = None


def test_witness_with_another_signed_block_raises_the_fork_alarm(node, witness, open_page):
    """The witness serves, from some height on, blocks signed by the chain's own
    validator that are not the blocks the node committed: both verify from the
    root of trust, so the two nodes show a fork."""
    witness.lie = None
    page = open_page(f"{node.api.rstrip('/')}/?verified=1&witness={witness.url}")
    light_state(page, "synced")
    page.wait_for_selector('#light-witness[data-state="agrees"]')
    assert page.locator("#fork-alarm").is_hidden()
    witness.fork_from = head_height(node)
    witness.lie = "fork"
    try:
        page.wait_for_selector("#fork-alarm:not([hidden])", timeout=UI_TIMEOUT_MS)
        alarm = page.text_content("#fork-alarm")
        assert "FORK" in alarm and witness.url in alarm
        assert int(page.get_attribute("#fork-alarm", "data-height")) >= witness.fork_from
        assert page.locator('#verify-problems li[data-check="fork"]').count() == 1
    finally:
        witness.lie = None


# ---------------------------------------------------------------- against the Python client
#
# A SyntheticChain (real Ed25519 keys, validator-set changes recorded in a real
# sparse Merkle state) and real extended data squares, served over HTTP in the
# node's JSON shapes; the browser's client and the Python light client do the
# same work against them and must agree on every outcome.

CHAIN_ID = "focusflow-test-web-light"


class SyntheticNode:
    """The node's ``/v1/light`` header and validator-proof routes for ``chain``,
    ``/v1/da`` routes for ``squares`` (height -> ExtendedSquare), and the
    page's static files, on one loopback server."""

    def __init__(self) -> None:
        self.chain: SyntheticChain | None = None
        self.squares: dict[int, ExtendedSquare] = {}
        self.fraud: dict[int, dict[str, Any]] = {}

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/light/shares/{height:int}", self.shares),
                Route("/v1/light/{rest:path}", self.light),
                Route("/v1/da/{height:int}", self.da_roots),
                Route("/v1/da/{height:int}/fraud", self.da_fraud),
                Route("/v1/da/{height:int}/shares/{row:int}/{col:int}", self.share),
                Route("/endless", self.endless),
                Mount("/static", StaticFiles(directory=STATIC)),
            ]
        )

    async def light(self, request: Request) -> JSONResponse:
        assert self.chain is not None
        status, body = self.chain.answer(request.url.path, dict(request.query_params))
        return JSONResponse(body, status)

    async def da_roots(self, request: Request) -> JSONResponse:
        height = request.path_params["height"]
        sq = self.squares[height]
        return JSONResponse(
            {
                "height": height,
                "data_root": sq.data_root().hex(),
                "k": sq.k,
                "row_roots": [r.hex() for r in sq.row_roots()],
                "col_roots": [c.hex() for c in sq.col_roots()],
            }
        )

    async def da_fraud(self, request: Request) -> JSONResponse:
        """The fraud proof held for a height (``fraud``), as the node serves one."""
        height = request.path_params["height"]
        if height not in self.fraud:
            error = {"code": "unknown_fraud_proof", "message": f"none against block {height}"}
            return JSONResponse({"error": error}, 404)
        return JSONResponse({"height": height, "proof": self.fraud[height]})

    async def endless(self, request: Request) -> StreamingResponse:
        """17 MiB of JSON-looking bytes with no length said beforehand."""

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"a": "'
            for _ in range(17):
                yield b"x" * (1 << 20)
            yield b'"}'

        return StreamingResponse(chunks(), media_type="application/json")

    async def share(self, request: Request) -> JSONResponse:
        p = request.path_params
        return JSONResponse({"height": p["height"], **self.item(p["height"], p["row"], p["col"])})

    async def shares(self, request: Request) -> JSONResponse:
        """``/v1/light/shares/{h}?at=r,c;...`` as the node answers it."""
        height = request.path_params["height"]
        pairs = [tuple(int(x) for x in p.split(",")) for p in request.query_params["at"].split(";")]
        return JSONResponse({"height": height, "shares": [self.item(height, *p) for p in pairs]})

    def item(self, height: int, row: int, col: int) -> dict[str, Any]:
        proof = prove_share(self.squares[height], row, col)
        return {"row": row, "col": col, "share": proof.share.hex(), "proof": proof_to_json(proof)}


@pytest.fixture(scope="module")
def synthetic() -> Iterator[tuple[SyntheticNode, str]]:
    node = SyntheticNode()
    app: Any = node.app()
    with serve(app) as url:
        yield node, url


@pytest.fixture
def js(browser, synthetic):
    """A page with the light modules imported as ``window.L``."""
    _, url = synthetic
    with module_page(browser, url, UI_TIMEOUT_MS) as page:
        yield page


def history(heights: int, n: int, keep: tuple[float, ...]) -> dict[int, dict[int, int]]:
    """Sets of ``n`` equal validators changing at even intervals, each change
    keeping the share ``keep[j]`` of the last set (> 1/3: skipped over)."""
    sets = {1: {i: 10 for i in range(n)}}
    fresh = n
    for j, share in enumerate(keep):
        kept = sorted(sets[max(sets)])[: int(share * n)]
        new = list(range(fresh, fresh + n - len(kept)))
        fresh += len(new)
        sets[(j + 1) * heights // (len(keep) + 1)] = {i: 10 for i in kept + new}
    return sets


JS_SYNC = """async (a) => {
  const { V, client: C, store: S } = L;
  const store = new S.MemoryStore(a.chain);
  const clock = () => Date.now() + a.ahead_ms;
  const lc = new C.LightClient(store, new C.Node(""), { clock });
  try {
    await lc.trustGenesis(V.fromHex(a.genesis_set));
    const head = await lc.sync(a.height);
    return { ok: true, head: head.hashHex, verified: lc.verified, heights: store.heights };
  } catch (err) {
    return { ok: false, check: err.check ?? err.name, message: err.message, verified: lc.verified };
  }
}"""


def py_sync(url: str, chain: SyntheticChain, tmp_path, ahead_ms: int = 0) -> dict[str, Any]:
    """The Python light client's outcome of the same sync."""
    now = int(time.time() * 1000) + ahead_ms
    with LightNode(url) as node:
        client = LightClient(LightStore(tmp_path, CHAIN_ID), node, clock=lambda: now)
        try:
            client.trust_genesis(chain.set_at(1))
            head = client.sync(None)
        except FocusflowError as exc:
            return {"ok": False, "check": exc.code}
        store = client.store
        return {
            "ok": True,
            "head": head.hash.hex(),
            "verified": client.verified,
            "heights": [h for h in range(1, chain.height + 1) if store.get(h) is not None],
        }


def js_sync(js, chain: SyntheticChain, ahead_ms: int = 0) -> dict[str, Any]:
    return js.evaluate(
        JS_SYNC,
        {
            "chain": CHAIN_ID,
            "genesis_set": chain.set_at(1).hash().hex(),
            "height": None,
            "ahead_ms": ahead_ms,
        },
    )


@pytest.mark.parametrize(
    "keep",
    [
        (),  # one set: one skipping step
        (0.5, 0.0, 0.2, 0.7),  # two changes skipped over, two bisected to the adjacent step
        (0.0, 0.0, 0.0),  # every change replaces the whole set
    ],
)
def test_sync_matches_the_python_client(js, synthetic, tmp_path, keep):
    node, url = synthetic
    now = int(time.time() * 1000)
    node.chain = SyntheticChain(CHAIN_ID, 300, history(300, 10, keep), now - 300 * 1000)
    ours, peer = js_sync(js, node.chain), py_sync(url, node.chain, tmp_path)
    assert ours == peer, (ours, peer)
    assert ours["ok"] and ours["head"] == node.chain.header(300).hash.hex()


def test_refusals_match_the_python_client(js, synthetic, tmp_path):
    """A set change the state does not record; too few signers of the set that
    signs; a trusted header past the trusting period."""
    node, url = synthetic
    now = int(time.time() * 1000)
    sets = history(200, 10, (0.0,))
    t0 = now - 200_000

    def first_six_at_head(h: int, vset: ValidatorSet) -> list[bytes]:
        return [v.public_key for v in vset.validators][: 6 if h == 200 else 10]

    expired = 15 * 24 * 3600 * 1000
    cases = {
        "unrecorded": (SyntheticChain(CHAIN_ID, 200, sets, t0, unrecorded=frozenset([100])), 0),
        "two_thirds": (SyntheticChain(CHAIN_ID, 200, sets, t0, signers=first_six_at_head), 0),
        "expired": (SyntheticChain(CHAIN_ID, 200, sets, t0), expired),
    }
    want = {
        "unrecorded": "validator_set_mismatch",
        "two_thirds": "cert_power",
        "expired": "trust_expired",
    }
    python_code = {"cert_power": "bad_certificate"}  # the browser names the check within it
    for case, (chain, ahead) in cases.items():
        node.chain = chain
        ours = js_sync(js, chain, ahead)
        peer = py_sync(url, chain, tmp_path / case, ahead)
        assert not ours["ok"] and not peer["ok"], (case, ours, peer)
        assert ours["check"] == want[case], (case, ours)
        assert peer["check"] == python_code.get(want[case], want[case]), (case, peer)


def test_a_second_signed_header_at_a_verified_height_is_a_fork(js, synthetic, tmp_path):
    """Two chains signed by the same validators: the second's header at a
    height the client verified on the first carries a valid certificate of the
    verified set: a fork (the Python client says the same)."""
    node, url = synthetic
    now = int(time.time() * 1000)
    sets = history(50, 4, ())
    first = SyntheticChain(CHAIN_ID, 50, sets, now - 60_000)
    second = SyntheticChain(CHAIN_ID, 50, sets, now - 59_000)
    node.chain = first
    ours = js.evaluate(
        """async (a) => {
        const { V, client: C, store: S } = L;
        const lc = new C.LightClient(new S.MemoryStore(a.chain), new C.Node(""));
        await lc.trustGenesis(V.fromHex(a.genesis_set));
        await lc.sync(null);
        window.forkClient = lc;
      }""",
        {"chain": CHAIN_ID, "genesis_set": first.set_at(1).hash().hex()},
    )
    node.chain = second
    ours = js.evaluate(
        """async () => {
        try { await forkClient.sync(null); return { ok: true }; }
        catch (err) { return { ok: false, check: err.check, height: err.height }; }
      }"""
    )
    assert ours == {"ok": False, "check": "fork", "height": 50}
    node.chain = first
    with LightNode(url) as py_node:
        client = LightClient(LightStore(tmp_path, CHAIN_ID), py_node)
        client.trust_genesis(first.set_at(1))
        client.sync(None)
        node.chain = second
        with pytest.raises(ForkError):
            client.sync(None)


def test_indexeddb_store_keeps_the_root_and_the_newest(js, synthetic, tmp_path):
    """300 verified headers: the root and the newest 256 stay, as in the
    Python store, and a reopened store (a reload) holds exactly them."""
    node, _ = synthetic
    now = int(time.time() * 1000)
    node.chain = SyntheticChain(CHAIN_ID, 300, history(300, 1, ()), now - 300_000)
    got = js.evaluate(
        """async (a) => {
        const { V, client: C, store: S } = L;
        const store = await S.LightStore.open(a.chain);
        const lc = new C.LightClient(store, new C.Node(""));
        await lc.trustGenesis(V.fromHex(a.genesis_set));
        for (let h = 2; h <= 300; h++) await lc.sync(h);
        const again = await S.LightStore.open(a.chain);
        return { heights: store.heights, reopened: again.heights, root: again.rootHeight,
                 head: again.latest().hashHex };
      }""",
        {"chain": CHAIN_ID, "genesis_set": node.chain.set_at(1).hash().hex()},
    )
    py = LightStore(tmp_path, CHAIN_ID)
    for h in range(1, 301):
        block = parse_light_block(node.chain.header_doc(h), CHAIN_ID, h)
        py.add(block, root=h == 1)
    want = [h for h in range(1, 301) if py.get(h) is not None]
    assert got["heights"] == want and got["reopened"] == want and len(want) == MAX_BLOCKS + 1
    assert got["root"] == 1 and got["head"] == node.chain.header(300).hash.hex()


def square(k: int) -> ExtendedSquare:
    """An extended square of width 2k: transactions, and blobs of three
    namespaces added until the original square is k x k."""
    txs = [bytes([i]) * 300 for i in range(6)]
    for m in range(1, 200):
        blobs = [
            (namespace_v0(b"app%d" % (n % 3)), bytes([n]) * (480 * (1 + n % 2))) for n in range(m)
        ]
        shares = square_from_block(txs, blobs)
        if len(shares) == k * k:
            return extend(shares)
    raise AssertionError(f"no square of k = {k}")


def proof_doc(proof: ShareProof) -> dict[str, Any]:
    return {
        "row": proof.row,
        "col": proof.col,
        "share": proof.share.hex(),
        "proof": proof_to_json(proof),
    }


def lies_of(proof: ShareProof) -> dict[str, ShareProof]:
    """The proof changed in each way a node could lie."""
    flip = bytearray(proof.share)
    flip[200] ^= 1
    node0 = bytearray(proof.nmt_proof.nodes[0])
    node0[-1] ^= 1
    aunt0 = bytearray(proof.root_proof.aunts[0])
    aunt0[0] ^= 1
    other = proof.row ^ 1
    nmt, root = proof.nmt_proof, proof.root_proof
    return {
        "share": replace(proof, share=bytes(flip)),
        "nmt_node": replace(proof, nmt_proof=replace(nmt, nodes=(bytes(node0), *nmt.nodes[1:]))),
        "aunt": replace(proof, root_proof=replace(root, aunts=(bytes(aunt0), *root.aunts[1:]))),
        "row": replace(proof, row=other),
        "axis": replace(proof, axis=COL if proof.axis == ROW else ROW),
        "index": replace(proof, root_proof=replace(root, index=root.index ^ 1)),
    }


def test_an_answer_over_the_bound_is_not_read(js):
    """A node that streams an answer without end: the client stops reading at
    16 MiB (the CLI's cap) and calls it malformed."""
    got = js.evaluate(
        """async () => {
        try { await new L.client.Node("").get("/endless"); return "read"; }
        catch (err) { return `${err.check}: ${err.message}`; }
      }"""
    )
    assert got.startswith("malformed:") and "over 16777216 bytes" in got


def test_share_proofs_match_the_python_verifier(js):
    """Every share of a 8 x 8 extended square (its own namespaces in the
    original quadrant, parity elsewhere) along its row and its column, and
    each lie about it: the browser accepts exactly what verify_share_proof does."""
    sq = square(4)
    root = sq.data_root()
    docs, want = [], []
    for row in range(sq.width):
        for col in range(sq.width):
            for axis in (ROW, COL):
                proof = prove_share(sq, row, col, axis)
                for candidate in [proof, *lies_of(proof).values()]:
                    docs.append(proof_doc(candidate))
                    want.append(verify_share_proof(root, candidate))
    got = js.evaluate(
        """async (a) => {
        const root = L.V.fromHex(a.root);
        const out = [];
        for (const d of a.docs) out.push(await L.da.verifyShareProof(root, L.da.parseShare(d)));
        return out;
      }""",
        {"root": root.hex(), "docs": docs},
    )
    assert got == want
    assert sum(want) == 2 * sq.width**2  # the honest ones, and only they
    # and the NMT root of a whole row, computed here, is the square's
    leaves = js.evaluate(
        """async (a) => {
        const nodes = [];
        for (const [i, s] of a.shares.entries()) {
          nodes.push(await L.da.leafNode(L.da.leafData(L.V.fromHex(s), 1, i, a.k)));
        }
        let level = nodes;
        while (level.length > 1) {
          const next = [];
          for (let i = 0; i < level.length; i += 2) {
            next.push(await L.da.innerNode(level[i], level[i + 1]));
          }
          level = next;
        }
        return L.V.toHex(level[0]);
      }""",
        {"shares": [s.hex() for s in sq.row(1)], "k": sq.k},
    )
    assert leaves == sq.row_roots()[1].hex()


def test_sampling_a_block_and_its_confidence(js, synthetic):
    """16 samples of a 16 x 16 square: all verify, confidence as
    detection_probability; roots that do not hash to the data root are refused
    before any share is drawn; a 2 x 2 square asked 16 samples checks all 4."""
    node, _ = synthetic
    node.squares = {7: square(8), 8: extend(square_from_block([]))}
    run = """async (a) => {
      const block = { height: a.height, header: { data_root: L.V.fromHex(a.root) } };
      try { return await L.da.sampleBlock(new L.client.Node(""), block, 16); }
      catch (err) { return { check: err.check, message: err.message }; }
    }"""
    got = js.evaluate(run, {"height": 7, "root": node.squares[7].data_root().hex()})
    assert got["available"] and got["width"] == 16
    assert got["samples"] == got["verified"] == 16
    assert got["confidence"] == pytest.approx(detection_probability(8, 16), rel=1e-12)
    small = js.evaluate(run, {"height": 8, "root": node.squares[8].data_root().hex()})
    assert small["available"] and small["samples"] == 4 and small["confidence"] == 1
    wrong = js.evaluate(run, {"height": 7, "root": "00" * 32})
    assert wrong["check"] == "da_roots"


def test_hex_decoding_takes_lowercase_digits_only(js):
    """Byte strings come as lowercase hex: each valid one decodes to Python's
    bytes.fromhex; an odd length, an uppercase digit, another character (ASCII
    or not) or a non-string is malformed."""
    good = ["", "00", "ff", "0123456789abcdef", bytes(range(256)).hex()]
    bad = ["0", "0A", "FF", "0g", "zz", "0 ", "\u00e90", "\u0660\u0661", "fe\x00", 17, None]
    got = js.evaluate(
        """async (a) => [...a.good, ...a.bad].map((h) => {
        try { return Array.from(L.V.fromHex(h, "x")); }
        catch (err) { return `${err.check}: ${err.message}`; }
      })""",
        {"good": good, "bad": bad},
    )
    assert got[: len(good)] == [list(bytes.fromhex(h)) for h in good]
    assert got[len(good) :] == ["malformed: x is not lowercase hex"] * len(bad)


def test_leopard_decoding_matches_the_python_codec(js):
    """Codewords of 2 to 512 shares (GF(2^8) up to 256, GF(2^16) above), k of
    them kept at random and the rest overwritten with noise: the browser
    restores exactly what leopard.decode restores, which is the encoded
    codeword; fewer than k shares is a RepairError."""
    rng = np.random.default_rng(3)
    cases, want = [], []
    for k, size in [(1, 512), (2, 64), (4, 512), (16, 512), (64, 128), (128, 64), (256, 64)]:
        data = rng.integers(0, 256, (k, size), dtype=np.uint8)
        full = np.concatenate([data, leopard.encode(data)])
        present = np.zeros(2 * k, dtype=bool)
        present[rng.choice(2 * k, k, replace=False)] = True
        line = full.copy()
        line[~present] = rng.integers(0, 256, (k, size), dtype=np.uint8)
        assert np.array_equal(leopard.decode(line, present), full)
        cases.append({"line": [r.tobytes().hex() for r in line], "present": present.tolist()})
        want.append([r.tobytes().hex() for r in full])
    got = js.evaluate(
        """async (a) => a.cases.map((c) => L.leopard
          .decode(c.line.map((h) => L.V.fromHex(h)), c.present)
          .map((s) => L.V.toHex(s)))""",
        {"cases": cases},
    )
    assert got == want
    short = js.evaluate(
        """async () => {
        const line = [0, 1, 2, 3].map(() => new Uint8Array(64));
        try { L.leopard.decode(line, [true, false, false, false]); return "decoded"; }
        catch (err) { return err.name; }
      }"""
    )
    assert short == "RepairError"


def fraud_cases(sq: ExtendedSquare) -> tuple[ExtendedSquare, list[BadEncodingProof]]:
    """A square with one share of row 2 changed, its fraud proof, and that
    proof changed in each way a node could lie (or build one on a good axis)."""
    data = sq.data.copy()
    data[2, 1, 100] ^= 0x5A
    bad = ExtendedSquare(data)
    proof = find_bad_encoding(bad)
    assert proof is not None and (proof.axis, proof.index) == (ROW, 2)
    shares = list(proof.shares)
    swapped = [replace(shares[0], share=bytes(512)), *shares[1:]]
    beyond = [replace(shares[0], col=bad.width + 1), *shares[1:]]
    twice = [shares[0], shares[0], *shares[2:]]
    good_row = replace(
        proof,
        index=4,
        axis_root=bad.row_roots()[4],
        axis_root_proof=replace(proof.axis_root_proof, index=4),
        shares=tuple(prove_share(bad, 4, c, axis=COL) for c in range(bad.k)),
    )
    return bad, [
        proof,
        replace(proof, shares=tuple(swapped)),
        replace(proof, shares=tuple(beyond)),
        replace(proof, shares=tuple(twice)),
        replace(proof, shares=proof.shares[:-1]),
        replace(proof, axis_root_proof=replace(proof.axis_root_proof, index=3)),
        replace(proof, axis=COL),
        # a root path said to be among one root fewer: a width of no power of two
        replace(
            proof,
            axis_root_proof=replace(proof.axis_root_proof, total=2 * bad.width - 1),
            shares=(),
        ),
        good_row,
    ]


def column_case(sq: ExtendedSquare) -> tuple[ExtendedSquare, BadEncodingProof]:
    """Row 2 re-encoded from changed data: every row a codeword, its columns
    not, so the proof is of a column (its shares proven along their rows)."""
    recoded = sq.data.copy()
    recoded[2, : sq.k, 100] ^= 0x5A
    recoded[2, sq.k :] = leopard.encode(recoded[2, : sq.k])
    bad = ExtendedSquare(recoded)
    column = find_bad_encoding(bad)
    assert column is not None and column.axis == COL
    return bad, column


def test_fraud_proofs_match_the_python_verifier(js):
    """Bad-encoding proofs of an 8 x 8 square (of a row, and of a column of
    another) and each lie about the first: the browser decodes the axis from
    its k shares and accepts exactly what verify_bad_encoding_proof accepts,
    against each square's data root and against the honest square's."""
    honest = square(4)
    bad, proofs = fraud_cases(honest)
    by_column, column = column_case(honest)
    proofs.append(column)
    docs = [befp_to_json(p) for p in proofs]
    assert verify_bad_encoding_proof(by_column.data_root(), column)
    for root in (bad.data_root(), honest.data_root(), by_column.data_root()):
        want = [verify_bad_encoding_proof(root, p) for p in proofs]
        got = js.evaluate(
            """async (a) => {
            const root = L.V.fromHex(a.root);
            const out = [];
            for (const d of a.docs) {
              out.push(await L.da.verifyBadEncodingProof(root, L.da.parseBadEncodingProof(d)));
            }
            return out;
          }""",
            {"root": root.hex(), "docs": docs},
        )
        assert got == want
    assert [verify_bad_encoding_proof(bad.data_root(), p) for p in proofs][:2] == [True, False]
    # the whole row's NMT root, decoded from k shares, is the one the honest encoding has
    assert sum(verify_bad_encoding_proof(bad.data_root(), p) for p in proofs) == 1


def test_hostile_fraud_proofs_get_the_python_verdict(js):
    """300 seeded mutations of a true proof's JSON form (tests/da/test_fraud.py's
    fuzz): the browser proves exactly the ones the Python decoder and verifier
    prove, and refuses every other with a VerifyError or a false verdict, never
    another exception."""
    honest = square(4)
    bad, proofs = fraud_cases(honest)
    doc = befp_to_json(proofs[0])
    rng = random.Random(11)
    docs, want = [], []
    for _ in range(300):
        mutated = mutated_proof_json(doc, rng)
        try:
            proven = verify_bad_encoding_proof(bad.data_root(), befp_from_json(mutated))
        except FocusflowError:
            proven = False
        docs.append(mutated)
        want.append(proven)
    got = js.evaluate(
        """async (a) => {
        const root = L.V.fromHex(a.root);
        const out = [];
        for (const d of a.docs) {
          try {
            out.push(await L.da.verifyBadEncodingProof(root, L.da.parseBadEncodingProof(d)));
          } catch (err) {
            out.push(err instanceof L.V.VerifyError ? false : `${err.name}: ${err.message}`);
          }
        }
        return out;
      }""",
        {"root": bad.data_root().hex(), "docs": docs},
    )
    assert got == want
    assert 0 < sum(want) < len(want)


def test_sampling_refuses_a_badly_encoded_block_and_lists_a_false_proof(js, synthetic):
    """The node's fraud proof against a sampled block: one that verifies makes
    it unavailable (all its samples verify: the square's roots are its own);
    one that proves nothing is listed and changes nothing; none is no finding."""
    node, _ = synthetic
    bad, proofs = fraud_cases(square(4))
    node.squares = {20: bad, 21: bad, 22: bad}
    node.fraud = {20: befp_to_json(proofs[0]), 21: befp_to_json(proofs[1])}
    run = """async (a) => {
      const block = { height: a.height, header: { data_root: L.V.fromHex(a.root) } };
      return await L.da.sampleBlock(new L.client.Node(""), block, 16);
    }"""
    root = bad.data_root().hex()
    proven = js.evaluate(run, {"height": 20, "root": root})
    assert proven["verified"] == proven["samples"] == 16
    assert proven["badEncoding"] == {"axis": "row", "index": 2} and not proven["available"]
    assert proven["badFraudProof"] is None
    false_proof = js.evaluate(run, {"height": 21, "root": root})
    assert false_proof["available"] and false_proof["badEncoding"] is None
    assert "proves nothing" in false_proof["badFraudProof"]
    none = js.evaluate(run, {"height": 22, "root": root})
    assert none["available"] and none["badEncoding"] is None and none["badFraudProof"] is None


def test_headers_are_readable_from_another_origin_and_nothing_else(node, js):
    """A witness is another node, so its headers are read across origins: the
    header routes (answers and their unknown_block refusals) say any origin may
    read them, without credentials; no other route does, so a page of another
    origin reads nothing else of the node."""
    api = node.api.rstrip("/")
    origin = {"Origin": "http://elsewhere.example"}
    with node.client() as c:
        head = c.get("/v1/light/header/latest", headers=origin)
        assert head.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in head.headers
        missing = c.get(f"/v1/light/header/{2**62}", headers=origin)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_block"
        assert missing.headers["access-control-allow-origin"] == "*"
        for path in ("/v1/status", "/v1/light/proofs/validators/2?height=1", "/v1/da/1"):
            assert "access-control-allow-origin" not in c.get(path, headers=origin).headers, path
    got = js.evaluate(
        """async (api) => {
        const read = async (path, init = {}) => {
          try { return (await fetch(api + path, init)).status; } catch { return "refused"; }
        };
        return {
          header: await read("/v1/light/header/1"),
          status: await read("/v1/status"),
          proof: await read("/v1/light/proofs/validators/2?height=1"),
          with_cookies: await read("/v1/light/header/1", { credentials: "include" }),
        };
      }""",
        api,
    )
    refused = {"status": "refused", "proof": "refused", "with_cookies": "refused"}
    assert got == {"header": 200, **refused}


def test_shares_route_answers_a_round_in_one_request(node):
    """``GET /v1/light/shares/{h}?at=...``: every share of a block's square with
    proofs that verify against the header's data root (checked here by
    ``verify_share_proof``), a coordinate outside this square as its own
    ``unknown_share`` item, and each request the schema's pattern refuses
    refused whole as ``malformed``."""
    height = head_height(node) - 1
    with node.client() as c:
        data_root = bytes.fromhex(c.get(f"/v1/light/header/{height}").json()["header"]["data_root"])
        k = c.get(f"/v1/da/{height}").json()["k"]
        coords = [(r, col) for r in range(2 * k) for col in range(2 * k)]
        at = ";".join(f"{r},{col}" for r, col in [*coords, (2 * k, 0)])
        answer = c.get(f"/v1/light/shares/{height}", params={"at": at}).json()
        assert answer["height"] == height and len(answer["shares"]) == len(coords) + 1
        for (r, col), item in zip(coords, answer["shares"], strict=False):
            proof = proof_from_json(r, col, item["share"], item["proof"])
            assert (item["row"], item["col"]) == (r, col) and verify_share_proof(data_root, proof)
        assert answer["shares"][-1]["error"]["code"] == "unknown_share"

        def refused(at: str | None, at_height: int = height) -> tuple[int, str]:
            params = {} if at is None else {"at": at}
            r = c.get(f"/v1/light/shares/{at_height}", params=params)
            return r.status_code, r.json()["error"]["code"]

        assert refused(";".join(f"0,{i}" for i in range(65))) == (400, "malformed")  # > 64 pairs
        assert c.get(f"/v1/light/shares/{height}", params={"at": "0,0;" * 63 + "0,0"}).is_success
        twice = c.get(f"/v1/light/shares/{height}", params={"at": "0,1;0,1"}).json()["shares"]
        assert twice[0] == twice[1] and "share" in twice[0]  # a pair asked twice: answered twice
        assert refused("01,0") == (400, "malformed")  # one spelling of a number
        assert refused("0,0;1") == (400, "malformed")
        assert refused("a,b") == (400, "malformed")
        assert refused("-1,0") == (400, "malformed")
        assert refused("1024,0") == (400, "malformed")  # past the widest square
        assert refused("0," + "1" * 700) == (400, "malformed")  # longer than the bound
        assert refused(None) == (400, "malformed")
        assert refused("0,0", 2**62) == (404, "unknown_block")
