"""``GET /metrics`` of a real ``focusflow konomi serve`` process, scraped over HTTP and
read with prometheus_client's own text parser.

Every socket is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from focusflow.konomi.launch import new_token, stop
from tests.konomi.scrape import growth, scrape, value
from tests.konomi.servers import start_konomi

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, port = start_konomi(tmp_path_factory.mktemp("konomi-metrics") / "k.sqlite3", TOKEN)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop([proc])


def test_metrics_need_no_token_and_name_what_the_server_holds(server):
    with httpx.Client(timeout=10) as http:
        samples = scrape(http, server)
    names = {name for name, _ in samples}
    for expected in (
        "konomi_cubes",
        "konomi_templates",
        "konomi_instances",
        "konomi_active_blocks",
        "konomi_ws_sessions",
        "konomi_ws_sessions_opened_total",
        "konomi_ws_sessions_refused_total",
        "konomi_packml_state",
    ):
        assert expected in names, expected
    assert value(samples, "konomi_templates") == 1  # default
    assert value(samples, "konomi_instances") == 1  # main
    assert value(samples, "konomi_packml_state", konomi_packml_state="Idle") == 1


def test_requests_are_counted_by_route_method_and_status(server):
    base = f"http://{server}"
    with httpx.Client(timeout=10) as http:
        before = scrape(http, server)
        assert http.get(f"{base}/value", params={"x": 1, "y": 1, "z": 1}).status_code == 200
        assert http.get(f"{base}/value", params={"x": 99, "y": 0, "z": 0}).status_code == 400
        assert http.post(f"{base}/value", json={"x": 1, "y": 1, "z": 1}).status_code == 401
        r = http.post(f"{base}/value", json={"x": 1, "y": 1, "z": 1, "value": 2.0}, headers=AUTH)
        assert r.status_code == 200
        q = {"plane": "z", "index": 2, "operation": "activate"}
        assert http.post(f"{base}/llm/interlock", params=q, headers=AUTH).status_code == 200
        for i in range(20):  # paths a client makes up share one series
            assert http.get(f"{base}/made-up/{i}").status_code == 404
        after = scrape(http, server)

    def grew(name: str, **labels: str) -> float:
        return growth(before, after, name, **labels)

    requests = "konomi_http_requests_total"
    assert grew(requests, route="/value", method="GET", status="200") == 1
    assert grew(requests, route="/value", method="GET", status="400") == 1
    assert grew(requests, route="/value", method="POST", status="401") == 1
    assert grew(requests, route="/value", method="POST", status="200") == 1
    assert grew(requests, route="/llm/interlock", method="POST", status="200") == 1
    assert grew(requests, route="unmatched", method="GET", status="404") == 20
    assert not any("made-up" in str(labels) for _, labels in after)
    assert grew("konomi_http_request_seconds_count", route="/value") == 4
    assert value(after, "konomi_active_blocks") == 101  # the block and a 10 x 10 face
    assert grew("konomi_face_blocks_total", operation="activate") == 100
    assert grew("konomi_face_operation_seconds_count", operation="activate") == 1
    assert grew("konomi_events_total", event="interlock", origin="local") == 1
    assert value(after, "konomi_packml_state", konomi_packml_state="Complete") == 1


def test_websocket_sessions_actions_and_latency_are_counted(server):
    with httpx.Client(timeout=10) as http:
        before = scrape(http, server)
        with pytest.raises(InvalidStatus):
            connect(f"ws://{server}/ws", open_timeout=10)
        with connect(f"ws://{server}/ws", open_timeout=10, additional_headers=AUTH) as ws:
            for message in (
                {"action": "initialize", "template_id": "t1"},
                {"action": "process", "vertex": "NEU", "text": "hello"},
                {"action": "process", "vertex": "UP", "text": "hello"},
                {"action": "fly"},
                {"action": ["not", "a", "name"]},
            ):
                ws.send(json.dumps(message))
                while "event" in json.loads(ws.recv(timeout=10)):
                    pass
            during = scrape(http, server)
        deadline = time.monotonic() + 10
        while True:  # the server notices the close on its own time
            after = scrape(http, server)
            if value(after, "konomi_ws_sessions") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)

    def grew(name: str, **labels: str) -> float:
        return growth(before, after, name, **labels)

    assert value(during, "konomi_ws_sessions") == value(before, "konomi_ws_sessions") + 1
    assert value(after, "konomi_ws_sessions") == 0
    assert grew("konomi_ws_sessions_opened_total") == 1
    assert grew("konomi_ws_sessions_refused_total") == 1
    messages = "konomi_ws_messages_total"
    assert grew(messages, action="initialize", outcome="ok") == 1
    assert grew(messages, action="process", outcome="ok") == 1
    assert grew(messages, action="process", outcome="unknown_vertex") == 1
    assert grew(messages, action="unknown", outcome="unknown_action") == 2
    assert grew("konomi_ws_action_seconds_count", action="process") == 2
    assert value(after, "konomi_cubes") >= 1
    assert grew("konomi_events_total", event="processed", origin="local") >= 1
    # A processed action goes to the cube's vote: its decision is a known event.
    assert grew("konomi_events_total", event="decided", origin="local") >= 1
    assert grew("konomi_events_total", event="other", origin="local") == 0
