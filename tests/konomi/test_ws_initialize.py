"""``initialize`` as the Konomi design writes it, on a real ``focusflow konomi serve``
process with a real WebSocket client: ``{"action": "initialize", "template_id":
"t1"}`` on a fresh server makes cube ``t1``.

Every socket is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from focusflow.konomi import VERTICES
from focusflow.konomi.launch import new_token, stop
from focusflow.konomi.ws import MAX_ID_CHARS
from tests.konomi.servers import start_konomi

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """A server on an empty SQLite file: no template but ``default`` exists."""
    db = tmp_path_factory.mktemp("konomi-ws-init") / "k.sqlite3"
    proc, port = start_konomi(db, TOKEN)
    try:
        yield port, db
    finally:
        stop([proc])


def _stored_cubes(db: Path) -> set[str]:
    """Ids of the cubes the server wrote to its database."""
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM konomi_cubes")}


def _ask(ws, message: dict) -> dict:
    """Send one action; return its reply (events of the cube are skipped)."""
    ws.send(json.dumps(message))
    for _ in range(8):
        reply = json.loads(ws.recv(timeout=10))
        if "event" not in reply:
            return reply
    raise AssertionError(f"no reply to {message}")


def test_the_design_example_creates_the_cube_on_a_fresh_server(fresh_server):
    port, db = fresh_server
    assert "t1" not in _stored_cubes(db)
    url = f"ws://127.0.0.1:{port}/ws"
    with connect(url, open_timeout=10, additional_headers=AUTH) as ws:
        reply = _ask(ws, {"action": "initialize", "template_id": "t1"})
        assert reply == {"status": "initialized", "cube_id": "t1", "vertices": list(VERTICES)}
        assert "t1" in _stored_cubes(db)
        status = _ask(ws, {"action": "status"})
        assert set(status) == {*VERTICES, "CENTRAL"}
        assert status["NEU"]["connections"] == 4
        edge = _ask(ws, {"action": "connect", "source": "NEU", "target": "SWD"})
        assert edge == {"status": "connected", "edge": "NEU↔SWD"}
        processed = _ask(ws, {"action": "process", "vertex": "NEU", "text": "hello"})
        assert processed["vertex"] == "NEU" and processed["result"]
    # A second socket naming the same id joins that cube: its state is there.
    with connect(url, open_timeout=10, additional_headers=AUTH) as ws:
        reply = _ask(ws, {"action": "initialize", "template_id": "t1"})
        assert reply["cube_id"] == "t1"
        assert _ask(ws, {"action": "status"})["NEU"]["connections"] == 5


def test_the_design_example_still_needs_the_token(fresh_server):
    port, _ = fresh_server
    with pytest.raises(InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10)
    assert info.value.response.status_code == 403


def test_initialize_refuses_bad_ids_and_keeps_the_socket(fresh_server):
    port, db = fresh_server
    before = _stored_cubes(db)
    url = f"ws://127.0.0.1:{port}/ws"
    with connect(url, open_timeout=10, additional_headers=AUTH) as ws:
        for bad in (
            {"template_id": 7},
            {"template_id": ""},
            {"template_id": "x" * (MAX_ID_CHARS + 1)},
            {"template_id": "a\nb"},
            {"cube_id": ["c"]},
        ):
            err = _ask(ws, {"action": "initialize", **bad})
            assert err["error"]["code"] == "malformed_message", bad
            assert err["action"] == "initialize"
        err = _ask(ws, {"action": "initialize", "cube_id": "c9", "template_id": "t-none"})
        assert err["error"]["code"] == "unknown_template"
        # None of the refused messages made a cube or attached the socket to one.
        assert _ask(ws, {"action": "status"})["error"]["code"] == "not_initialized"
        assert _stored_cubes(db) == before
        reply = _ask(ws, {"action": "initialize", "cube_id": "c9", "template_id": "default"})
        assert reply["cube_id"] == "c9"
        reply = _ask(ws, {"action": "initialize", "template_id": "x" * MAX_ID_CHARS})
        assert reply["cube_id"] == "x" * MAX_ID_CHARS
