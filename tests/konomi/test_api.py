"""REST and WebSocket APIs in-process (FastAPI's test client): shapes and error codes."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from focusflow.konomi import VERTICES, KonomiSystem
from focusflow.konomi.api import create_app
from focusflow.konomi.launch import new_token

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def client():
    app = create_app(KonomiSystem(default_dims=(100, 100, 100)), token=TOKEN)
    with TestClient(app, headers=AUTH) as c:
        yield c


def test_openapi_lists_the_seed_endpoints(client):
    paths = client.get("/openapi.json").json()["paths"]
    for p in ["/template/create", "/instance/create", "/value", "/llm/process", "/llm/interlock"]:
        assert p in paths
    assert set(paths["/value"]) == {"get", "post"}


def test_rest_flow(client):
    r = client.post("/template/create", json={"dims": [10, 20, 30], "name": "t"})
    assert r.status_code == 200 and r.json()["dimensions"] == [10, 20, 30]
    tid = r.json()["template_id"]
    assert client.post("/template/create").json()["dimensions"] == [1000, 1000, 1000]
    r = client.post("/instance/create", params={"template_id": tid})
    assert r.json()["status"] == "active"
    iid = r.json()["instance_id"]
    r = client.post("/value", json={"x": 1, "y": 2, "z": 3, "value": 0.5, "instance_id": iid})
    assert r.json()["status"] == "set" and r.json()["coordinate"] == [1, 2, 3]
    r = client.get("/value", params={"x": 1, "y": 2, "z": 3, "instance_id": iid}).json()
    assert r["value"] == 0.5 and r["active"] and r["llm"]["κ"] == pytest.approx(0.6)
    r = client.post(
        "/llm/process", params={"x": 1, "y": 2, "z": 3, "text": "hello", "instance_id": iid}
    ).json()
    assert isinstance(r["result"], str) and r["result"] and r["κ"] == pytest.approx(0.6)
    r = client.post(
        "/llm/interlock",
        params={"plane": "z", "index": 3, "operation": "activate", "instance_id": iid},
    ).json()
    assert r["processed"] == 10 * 20 and r["state"] == "Complete"
    r = client.post(
        "/llm/interlock",
        params={"plane": "z", "index": 3, "operation": "process", "instance_id": iid},
    ).json()
    assert r["processed"] == 200 and r["avg_κ"] == pytest.approx(0.6)


def test_block_consensus_endpoints(client):
    for p in [(5, 5, 5), (6, 5, 5), (4, 5, 5), (5, 6, 5)]:
        client.post("/value", json={"x": p[0], "y": p[1], "z": p[2]})
    r = client.get("/block/consensus", params={"x": 5, "y": 5, "z": 5}).json()
    assert r["neighbours"] == 3 and not r["accepted"]
    assert client.post("/block/attest", json={"x": 5, "y": 5, "z": 5}).json()["attested"] == 3
    assert client.get("/block/consensus", params={"x": 5, "y": 5, "z": 5}).json()["accepted"]


def test_rest_errors_have_stable_codes(client):
    r = client.get("/value", params={"x": 100, "y": 0, "z": 0})
    assert r.status_code == 400 and r.json()["error"]["code"] == "coordinate_out_of_range"
    r = client.post("/instance/create", params={"template_id": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_template"
    r = client.get("/value", params={"x": 1, "y": 0, "z": 0, "instance_id": "nope"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_instance"
    r = client.post("/value", json={"x": "a"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_message"
    r = client.post("/value", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "malformed_message"
    r = client.post("/llm/interlock", params={"plane": "q", "index": 0, "operation": "activate"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_operation"


def test_websocket_actions_with_seed_shapes(client):
    with client.websocket_connect("/ws", headers=AUTH) as ws:
        ws.send_json({"action": "initialize", "template_id": "default"})
        init = ws.receive_json()
        assert init["status"] == "initialized" and init["vertices"] == list(VERTICES)
        ws.send_json({"action": "process", "vertex": "NEU", "text": "hello"})
        reply = ws.receive_json()
        assert reply["vertex"] == "NEU" and reply["result"] and "κ" in reply
        ws.send_json({"action": "subscribe"})
        assert ws.receive_json() == {"status": "subscribed", "cube_id": init["cube_id"]}
        ws.send_json({"action": "connect", "source": "NEU", "target": "SWD"})
        assert ws.receive_json() == {"status": "connected", "edge": "NEU↔SWD"}
        event = ws.receive_json()
        assert event["event"] == "connected" and event["cube_id"] == init["cube_id"]
        assert ws.receive_json()["event"] == "decided"
        ws.send_json({"action": "status"})
        status = ws.receive_json()
        assert set(status) == {*VERTICES, "CENTRAL"}
        assert status["NEU"]["connections"] == 5 and status["CENTRAL"]["connections"] == 8
        ws.send_json({"action": "collective_think", "query": "What is 2+2?"})
        think = ws.receive_json()
        assert ws.receive_json()["event"] == "collective_think"
        assert ws.receive_json()["event"] == "decided"
        assert set(think["vertices"]) == set(VERTICES) and think["score"] > 0
        assert "consensus" in think and "κ_field" in think


def test_websocket_errors_keep_the_socket_open(client):
    with client.websocket_connect("/ws", headers=AUTH) as ws:
        ws.send_json({"action": "status"})
        assert ws.receive_json()["error"]["code"] == "not_initialized"
        ws.send_text("{oops")
        assert ws.receive_json()["error"]["code"] == "malformed_message"
        ws.send_text(json.dumps([1, 2]))
        assert ws.receive_json()["error"]["code"] == "malformed_message"
        ws.send_bytes(b"\xff\xfe")
        assert ws.receive_json()["error"]["code"] == "malformed_message"
        ws.send_bytes(b'{"action": "fly"}')
        assert ws.receive_json()["error"]["code"] == "unknown_action"
        ws.send_json({"action": "fly"})
        assert ws.receive_json()["error"]["code"] == "unknown_action"
        ws.send_json({"action": "initialize", "cube_id": "c1", "template_id": "t-missing"})
        assert ws.receive_json()["error"]["code"] == "unknown_template"
        ws.send_json({"action": "initialize", "template_id": "t-missing"})
        assert ws.receive_json()["cube_id"] == "t-missing"
        ws.send_json({"action": "initialize"})
        assert ws.receive_json()["status"] == "initialized"
        ws.send_json({"action": "process", "vertex": "UP", "text": "x"})
        err = ws.receive_json()
        assert err["error"]["code"] == "unknown_vertex" and err["action"] == "process"
        ws.send_json({"action": "process", "vertex": "NEU"})
        assert ws.receive_json()["error"]["code"] == "malformed_message"
        ws.send_json({"action": "status"})
        assert "NEU" in ws.receive_json()


def test_web_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and "WebSocket" in r.text and "κ" in r.text


def test_roles_limit_what_is_served():
    app = create_app(KonomiSystem(default_dims=(4, 4, 4)), roles=("web",), token=TOKEN)
    with TestClient(app) as c:
        assert c.get("/").status_code == 200
        assert c.get("/value", params={"x": 0, "y": 0, "z": 0}).status_code == 404
