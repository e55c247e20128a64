"""Per-client limits of the HTTP API, and the bounds of the expensive reads.

The limits run as the node's app runs them: the real middleware in front of
the real routers over a real chain; the bookkeeping is also driven directly
with a controlled clock.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from focusflow.api import errors, routes_chain, routes_da
from focusflow.api.app import build_state
from focusflow.api.limits import RATE_LIMITED, ClientLimiter, ClientLimits, LimitSettings
from focusflow.api.state import set_app_state, state_of
from focusflow.core.errors import InvalidParameterError
from focusflow.node.da_store import DAStore
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx

T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("limits"), genesis(focus={"mode": "diffusion"}))
    for h in range(1, 7):
        pairs = [(f"l{h}-{i}", f"l{h}-{i + 1}") for i in range(30)]
        chain.produce_block([tx(ALICE, h - 1, link(*pairs))], time_ms=T0 + h)
    return SimpleNamespace(chain=chain, da=DAStore(chain, cache_size=1))


def app_for(node, settings: LimitSettings | None) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    if settings is not None:
        app.add_middleware(ClientLimits, settings=settings)
    app.include_router(routes_chain.router)
    app.include_router(routes_da.router)
    set_app_state(app, build_state(node))
    return app


def test_a_client_over_its_rate_gets_429_with_retry_after(node):
    app = app_for(node, LimitSettings(rate=0.5, burst=5))
    head = node.chain.head
    with TestClient(app) as c:
        started = time.monotonic()
        codes = [c.get("/v1/blocks/1").status_code for _ in range(5)]
        r = c.get("/v1/blocks/1")
        elapsed = time.monotonic() - started
    assert codes == [200] * 5
    assert r.status_code == 429
    assert r.json()["error"]["code"] == RATE_LIMITED and r.json()["error"]["message"]
    # One whole token at 0.5 per second is 2 s away, less what the five
    # requests took to serve (the bucket refills meanwhile): on a loaded
    # machine they can take over a second, and then the wait is 1 s.
    assert max(1, math.ceil(2.0 - elapsed)) <= int(r.headers["retry-after"]) <= 2
    assert node.chain.head == head


def test_a_client_over_its_concurrency_gets_429_at_once(node):
    """With ``concurrency=2``, a third request while two are in flight is refused."""
    app = app_for(node, LimitSettings(concurrency=2))
    da = node.da

    async def scenario():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
            da._rebuilds.acquire()  # hold the rebuild slot: old-height reads stay in flight
            try:
                slow = [asyncio.create_task(c.get(f"/v1/da/{h}")) for h in (1, 2)]
                await asyncio.sleep(0.3)
                assert not any(t.done() for t in slow)
                third = await asyncio.wait_for(c.get("/v1/da/3"), 5)
            finally:
                da._rebuilds.release()
            done = await asyncio.wait_for(asyncio.gather(*slow), 10)
            after = await c.get("/v1/da/3")
        return third, done, after

    third, done, after = asyncio.run(scenario())
    assert third.status_code == 429 and third.json()["error"]["code"] == RATE_LIMITED
    assert third.headers["retry-after"] == "1"
    assert [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200


def test_without_limits_a_client_is_never_refused(node):
    """The control: the same burst without the middleware is all answered."""
    with TestClient(app_for(node, None)) as c:
        assert {c.get("/v1/blocks/1").status_code for _ in range(8)} == {200}


def test_the_bucket_refills_at_the_rate_and_clients_are_separate():
    now = [0.0]
    limiter = ClientLimiter(LimitSettings(rate=10.0, burst=3), clock=lambda: now[0])
    for _ in range(3):
        assert limiter.admit("a") == 0.0
        limiter.release("a")
    assert limiter.admit("a") == pytest.approx(0.1)
    assert limiter.admit("b") == 0.0  # another client has its own bucket
    now[0] += 0.1
    assert limiter.admit("a") == 0.0
    limiter.release("a")
    now[0] += 100.0  # refills up to the burst, not beyond
    assert [limiter.admit("a") for _ in range(4)][-1] > 0.0


def test_tracked_clients_are_bounded_and_idle_ones_forgotten_first():
    now = [0.0]
    limiter = ClientLimiter(LimitSettings(rate=1.0, burst=2, max_clients=8), clock=lambda: now[0])
    for i in range(8):
        assert limiter.admit(f"10.0.0.{i}") == 0.0  # all eight in flight
    assert limiter.admit("10.0.1.1") > 0.0  # nobody idle: the newcomer waits
    assert len(limiter) == 8
    for i in range(8):
        limiter.release(f"10.0.0.{i}")
    now[0] += 5.0  # buckets full again: idle
    for i in range(100):
        limiter.admit(f"10.0.2.{i}")
        limiter.release(f"10.0.2.{i}")
    assert len(limiter) <= 8


@pytest.mark.parametrize(
    "doc",
    [{"rate": 0}, {"rate": float("nan")}, {"burst": 0}, {"concurrency": 1.5}, {"nope": 1}],
)
def test_bad_limit_settings_are_refused(doc):
    with pytest.raises(InvalidParameterError):
        LimitSettings.from_json(doc)


def test_block_list_stops_at_its_byte_budget_and_says_where_to_go_on(node, monkeypatch):
    """A list of large blocks is cut at MAX_BLOCKS_BYTES; next_before pages on."""
    with TestClient(app_for(node, None)) as c:
        one = len(json.dumps(c.get("/v1/blocks/6").json(), separators=(",", ":")))
        monkeypatch.setattr(routes_chain, "MAX_BLOCKS_BYTES", 2 * one)
        body = c.get("/v1/blocks", params={"limit": 100}).json()
        heights = [b["height"] for b in body["blocks"]]
        assert heights == [6, 5, 4]  # the third crosses the budget and ends the page
        assert body["next_before"] == 4
        rest = c.get("/v1/blocks", params={"limit": 100, "before": 4}).json()
        assert [b["height"] for b in rest["blocks"]] == [3, 2, 1]
        last = c.get("/v1/blocks", params={"limit": 100, "before": 1}).json()
        assert [b["height"] for b in last["blocks"]] == [0] and last["next_before"] is None
        assert c.get("/v1/blocks", params={"limit": 101}).json()["error"]["code"] == "malformed"


def test_blocks_are_rendered_once_and_a_page_decodes_a_bounded_number(node, monkeypatch):
    """A page of blocks decodes at most MAX_BLOCKS_DECODED; pages after that are joins."""
    monkeypatch.setattr(routes_chain, "MAX_BLOCKS_DECODED", 4)
    app = app_for(node, None)
    with TestClient(app) as c:
        first = c.get("/v1/blocks", params={"limit": 100}).json()
        assert [b["height"] for b in first["blocks"]] == [6, 5, 4, 3]
        assert first["next_before"] == 3
        cache = state_of(app).rendered_blocks
        assert cache.rendered == 4
        again = c.get("/v1/blocks", params={"limit": 100}).json()
        assert again["blocks"][:4] == first["blocks"] and cache.rendered == 7  # 4 held, 3 new
        assert [b["height"] for b in again["blocks"]] == [6, 5, 4, 3, 2, 1, 0]
        one = c.get("/v1/blocks/5").json()
        assert one == first["blocks"][1] and cache.rendered == 7
        assert one["height"] == 5 and one["hash"] == node.chain.block_record(5).block.hash.hex()
