"""The WebSocket protocol is one reply per action: the design's client, unmodified.

The design's client sends an action and reads one message. It must read that
action's reply and nothing else: the server does not echo the event of an
action to the socket that sent it. Events go to the *other* sockets attached to
the cube, and to a socket that opted in to its own with ``{"action":
"subscribe"}``. Run against a real ``focusflow konomi serve`` on loopback; every
wait is bounded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.sync.client import connect

from focusflow.konomi import VERTICES
from focusflow.konomi.launch import new_token, stop
from tests.konomi.servers import start_konomi

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    db = tmp_path_factory.mktemp("konomi-ws-protocol") / "k.sqlite3"
    proc, port = start_konomi(db, TOKEN)
    try:
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        stop([proc])


def _once(ws: Any, message: dict) -> dict:
    """The design's client: send, then receive exactly once."""
    ws.send(json.dumps(message))
    reply: dict = json.loads(ws.recv(timeout=10))
    return reply


def _nothing_pending(ws: Any) -> None:
    with pytest.raises(TimeoutError):
        extra = ws.recv(timeout=0.5)
        pytest.fail(f"unexpected message after the replies: {extra}")


def _events(ws: Any, count: int) -> list[dict]:
    return [json.loads(ws.recv(timeout=10)) for _ in range(count)]


def test_the_design_sequence_reads_one_reply_per_action(server):
    with (
        connect(server, open_timeout=10, additional_headers=AUTH) as client,
        connect(server, open_timeout=10, additional_headers=AUTH) as watcher,
    ):
        assert _once(watcher, {"action": "initialize", "template_id": "seq"})["cube_id"] == "seq"
        init = _once(client, {"action": "initialize", "template_id": "seq"})
        assert init == {"status": "initialized", "cube_id": "seq", "vertices": list(VERTICES)}
        processed = _once(client, {"action": "process", "vertex": "NEU", "text": "hello"})
        assert set(processed) == {"vertex", "result", "κ"}
        assert processed["vertex"] == "NEU" and processed["result"]
        edge = _once(client, {"action": "connect", "source": "NEU", "target": "SWD"})
        assert edge == {"status": "connected", "edge": "NEU↔SWD"}
        status = _once(client, {"action": "status"})
        assert set(status) == {*VERTICES, "CENTRAL"}
        assert status["NEU"]["connections"] == 5
        think = _once(client, {"action": "collective_think", "query": "What is 2+2?"})
        assert set(think["vertices"]) == set(VERTICES) and "consensus" in think
        assert "event" not in think
        _nothing_pending(client)
        # The other socket of the cube saw the events, in order: each state change and
        # the decision of the cube's vote on it (the genesis is height 0).
        seen = _events(watcher, 6)
        assert [e["event"] for e in seen] == [
            "processed",
            "decided",
            "connected",
            "decided",
            "collective_think",
            "decided",
        ]
        assert seen[0]["result"] == processed["result"]
        assert seen[4]["consensus"] == think["consensus"]
        assert [e["height"] for e in seen[1::2]] == [1, 2, 3]
        assert all(e["cube_id"] == "seq" for e in seen)
        _nothing_pending(watcher)


def test_subscribe_opts_in_to_the_events_of_ones_own_actions(server):
    with connect(server, open_timeout=10, additional_headers=AUTH) as ws:
        assert _once(ws, {"action": "subscribe"})["error"]["code"] == "not_initialized"
        _once(ws, {"action": "initialize", "cube_id": "own"})
        assert _once(ws, {"action": "subscribe"}) == {"status": "subscribed", "cube_id": "own"}
        processed = _once(ws, {"action": "process", "vertex": "SWD", "text": "me"})
        assert processed["vertex"] == "SWD"
        event = json.loads(ws.recv(timeout=10))
        assert event["event"] == "processed" and event["result"] == processed["result"]
        assert json.loads(ws.recv(timeout=10))["event"] == "decided"
        _nothing_pending(ws)


def test_errors_are_one_reply_too(server):
    with connect(server, open_timeout=10, additional_headers=AUTH) as ws:
        _once(ws, {"action": "initialize", "cube_id": "errs"})
        assert _once(ws, {"action": "process", "vertex": "UP", "text": "x"})["error"]["code"] == (
            "unknown_vertex"
        )
        assert _once(ws, {"action": "fly"})["error"]["code"] == "unknown_action"
        _nothing_pending(ws)
