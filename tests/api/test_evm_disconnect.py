"""A JSON-RPC batch whose client has gone stops: the node's real app, called as
an ASGI server calls it, with a client that disconnects after its request.

Each item of the batch is a call of a loop at the gas cap (seconds of py-evm
each); the client leaves after ``LEAVE_S``. The app must notice and end the
running call and skip the rest, long before the batch's own time budget.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from focusflow.api.app import create_app
from focusflow.api.evm_budget import RPC_TIME_BUDGET_S, WORKERS
from focusflow.node.runtime import NodeRuntime
from focusflow.testing.chains import genesis, new_chain

#: JUMPDEST; PUSH1 0; JUMP: as a call's initcode, a loop that ends when its gas does.
LOOP = "0x5b600056"
LEAVE_S = 0.5


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("gone"), genesis(focus={"mode": "diffusion"}))
    yield create_app(NodeRuntime(chain))
    chain.close()


async def _leave_early(app, body: bytes) -> tuple[float, list[dict]]:
    """POST ``body`` to /evm as uvicorn would, the client gone ``LEAVE_S`` after
    sending it; the seconds the app took and what it sent."""
    start = time.monotonic()
    delivered = False
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        left = start + LEAVE_S - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/evm", "raw_path": b"/evm", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    await app(scope, receive, send)
    return time.monotonic() - start, sent


def test_a_batch_stops_when_its_client_is_gone(app):
    batch = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_call", "params": [{"data": LOOP}]}
        for i in range(6)
    ]
    took, sent = asyncio.run(_leave_early(app, json.dumps(batch).encode()))
    assert took < LEAVE_S + 2.0 < RPC_TIME_BUDGET_S, took
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    answers = json.loads(body)
    assert [a["id"] for a in answers] == list(range(6))
    assert all(a["error"]["data"]["code"] == "rpc_limit" for a in answers), answers
    assert "the client is gone" in answers[-1]["error"]["message"]
    deadline = time.monotonic() + 2
    while WORKERS.held and time.monotonic() < deadline:
        time.sleep(0.05)
    assert WORKERS.held == 0  # no run left behind in the EVM workers
