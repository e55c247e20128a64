"""WebSocket /v1/ws against a real devnet: blocks, focus changes, tx inclusion, bad commands."""

from __future__ import annotations

import asyncio
import json

import websockets

from focusflow.core.cid import cid_of_text
from focusflow.testing.devnet import link_msg, signed, wait_tx


async def _next(ws, kind: str, timeout: float = 20.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            msg = json.loads(await ws.recv())
            if msg["type"] == kind:
                return msg


def test_subscriptions_deliver_blocks_focus_and_inclusion(shared_devnet):
    net = shared_devnet
    url = net.api.replace("http://", "ws://") + "/v1/ws"
    seed = signed(net, net.dev_key(), [link_msg(("ws-a", "ws-b"))])
    with net.client() as c:
        c.post("/v1/txs", json={"tx": seed.encoded.hex()})
    # The next transaction signs with the committed nonce: the seed must be in a
    # block first (one run signed while it was pending and got duplicate_tx).
    wait_tx(net, seed.hash.hex())

    async def scenario():
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"subscribe": "blocks"}))
            assert (await _next(ws, "subscribed"))["what"] == "blocks"
            block = await _next(ws, "block")
            assert block["block"]["height"] >= 1 and len(block["block"]["state_root"]) == 64

            watched = cid_of_text("ws-b")
            await ws.send(json.dumps({"subscribe": "focus", "particles": [watched]}))
            await _next(ws, "subscribed")
            tx = signed(net, net.dev_key(), [link_msg(("ws-c", "ws-b"), ("ws-d", "ws-b"))])
            await ws.send(json.dumps({"subscribe": "tx", "hash": tx.hash.hex()}))
            with net.client() as c:
                r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
                assert r.status_code == 202, r.text
            got: dict[str, dict] = {}
            async with asyncio.timeout(20):
                while not {"tx", "focus"} <= got.keys():
                    msg = json.loads(await ws.recv())
                    got.setdefault(msg["type"], msg)
            included, change = got["tx"], got["focus"]
            assert included["hash"] == tx.hash.hex() and included["code"] == "ok"
            assert change["height"] == included["height"]
            assert change["particles"][0]["cid"] == watched and change["particles"][0]["rank"] == 1

            for bad, code in [
                ("not json", "malformed"),
                ('{"subscribe": "weather"}', "malformed"),
                ('{"subscribe": "focus", "particles": ["nope"]}', "invalid_cid"),
                ('{"subscribe": "tx", "hash": "12"}', "malformed"),
            ]:
                await ws.send(bad)
                assert (await _next(ws, "error"))["error"]["code"] == code
            # A committed transaction is answered at once.
            await ws.send(json.dumps({"subscribe": "tx", "hash": tx.hash.hex()}))
            assert (await _next(ws, "tx"))["height"] == included["height"]

    asyncio.run(scenario())
