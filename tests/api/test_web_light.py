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
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from focusflow.chain.block import Header, sign_certificate
from focusflow.consensus.certificate import encode_certificate
from focusflow.core.encoding import decode, encode
from focusflow.core.keys import KeyPair
from focusflow.testing.devnet import Devnet, start_devnet, wait_height
from focusflow.testing.web import keys, serve, set_of, validators_json

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
    # a sync from header 1 with one validator is one skipping step, not one per block
    assert "2 headers verified" in page.text_content("#light-status")

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
