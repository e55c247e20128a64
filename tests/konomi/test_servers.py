"""End to end: two ``focusflow konomi serve`` processes on real PostgreSQL and Redis.

A client of process 1 drives a cube; a client of process 2 attached to the same
cube receives the events through Redis and sees the state through PostgreSQL.
Every socket is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import subprocess
import time

import httpx
import pytest
import redis
from websockets.sync.client import connect

from focusflow.konomi.events import CHANNEL
from focusflow.konomi.launch import free_port, new_token, serve_process, stop, wait_port
from tests.konomi.scrape import growth, scrape

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def two_servers(postgres, redis_server):
    """Two server processes sharing one fresh database and the session's Redis."""
    db = postgres.new_database("konomi_servers")
    ports = [free_port(), free_port()]
    procs = [
        serve_process(db, p, redis_server.url, stderr=subprocess.PIPE, token=TOKEN) for p in ports
    ]
    try:
        for proc, port in zip(procs, ports, strict=True):
            if not wait_port(port, 60):
                proc.kill()
                pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
        yield ports
    finally:
        stop(procs)


def _recv_until(ws, pred, timeout: float = 10.0) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        msg = json.loads(ws.recv(timeout=max(0.01, end - time.monotonic())))
        if pred(msg):
            return msg
    raise AssertionError("no matching message in time")


def test_events_fan_out_across_server_processes(two_servers):
    p1, p2 = two_servers
    with connect(f"ws://127.0.0.1:{p1}/ws", open_timeout=10, additional_headers=AUTH) as a:
        a.send(json.dumps({"action": "initialize", "template_id": "default", "cube_id": "shared"}))
        assert _recv_until(a, lambda m: "status" in m)["cube_id"] == "shared"
        with connect(f"ws://127.0.0.1:{p2}/ws", open_timeout=10, additional_headers=AUTH) as b:
            b.send(json.dumps({"action": "initialize", "cube_id": "shared"}))
            assert _recv_until(b, lambda m: "status" in m)["cube_id"] == "shared"
            a.send(json.dumps({"action": "process", "vertex": "NEU", "text": "across processes"}))
            reply = _recv_until(a, lambda m: m.get("vertex") == "NEU" and "event" not in m)
            event = _recv_until(b, lambda m: m.get("event") == "processed")
            assert event["cube_id"] == "shared" and event["result"] == reply["result"]
            a.send(json.dumps({"action": "connect", "source": "NEU", "target": "SWD"}))
            _recv_until(b, lambda m: m.get("event") == "connected")
            b.send(json.dumps({"action": "status"}))
            status = _recv_until(b, lambda m: "CENTRAL" in m and "event" not in m)
            assert status["NEU"]["connections"] == 5  # state came through PostgreSQL
            b.send(json.dumps({"action": "collective_think", "query": "What is focus?"}))
            think = _recv_until(b, lambda m: "consensus" in m and "event" not in m)
            assert think["score"] > 0
            event = _recv_until(a, lambda m: m.get("event") == "collective_think")
            assert event["consensus"] == think["consensus"]


def test_rest_over_http_against_postgres(two_servers):
    p1, p2 = two_servers
    with httpx.Client(timeout=10, headers=AUTH) as http:
        r = http.post(f"http://127.0.0.1:{p1}/value", json={"x": 1, "y": 2, "z": 3, "value": 4.5})
        assert r.status_code == 200
        tid = http.post(f"http://127.0.0.1:{p1}/template/create", json={"dims": [5, 5, 5]}).json()
        assert tid["dimensions"] == [5, 5, 5]
        r = http.get(f"http://127.0.0.1:{p1}/value", params={"x": 1, "y": 2, "z": 3})
        assert r.json()["value"] == 4.5
        iid = http.post(
            f"http://127.0.0.1:{p1}/instance/create", params={"template_id": tid["template_id"]}
        ).json()["instance_id"]
        q = {"x": 2, "y": 2, "z": 2, "text": "hello", "instance_id": iid}
        assert http.post(f"http://127.0.0.1:{p1}/llm/process", params=q).json()["result"]
        q = {"plane": "y", "index": 1, "operation": "activate", "instance_id": iid}
        r = http.post(f"http://127.0.0.1:{p1}/llm/interlock", params=q).json()
        assert r["processed"] == 25 and r["state"] == "Complete"
        q = {"x": 4, "y": 1, "z": 4, "instance_id": iid}
        deadline = time.monotonic() + 10
        while http.get(f"http://127.0.0.1:{p2}/value", params=q).status_code != 200:
            assert time.monotonic() < deadline, "instance never reached process 2"
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while not http.get(f"http://127.0.0.1:{p2}/value", params=q).json()["active"]:
            assert time.monotonic() < deadline, "face activation never reached process 2"
            time.sleep(0.05)
        deadline = time.monotonic() + 10  # process 2 learns it through Redis
        while True:
            seen = http.get(f"http://127.0.0.1:{p2}/value", params={"x": 1, "y": 2, "z": 3})
            if seen.json()["value"] == 4.5 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert seen.json()["value"] == 4.5 and seen.json()["active"]
        r = http.get(f"http://127.0.0.1:{p2}/value", params={"x": 1000, "y": 0, "z": 0})
        assert r.json()["error"]["code"] == "coordinate_out_of_range"
        assert "/llm/interlock" in http.get(f"http://127.0.0.1:{p2}/openapi.json").json()["paths"]


def test_remote_events_are_counted_in_closed_label_sets(two_servers, redis_server):
    """Process 2 counts what reaches it through Redis as ``remote``; a kind it does not
    know, even one that is not a string, is counted as ``other`` and breaks nothing."""
    p1, p2 = two_servers
    with httpx.Client(timeout=10) as http:
        before = scrape(http, f"127.0.0.1:{p2}")
        r = http.post(f"http://127.0.0.1:{p1}/value", json={"x": 3, "y": 3, "z": 3}, headers=AUTH)
        assert r.status_code == 200
        client = redis.Redis.from_url(redis_server.url)
        try:
            for kind in (["a", "list"], "made-up"):
                client.publish(CHANNEL, json.dumps({"event": kind, "origin": "elsewhere"}))
        finally:
            client.close()
        deadline = time.monotonic() + 10
        while True:
            after = scrape(http, f"127.0.0.1:{p2}")
            events = "konomi_events_total"
            done = (
                growth(before, after, events, event="other", origin="remote") == 2
                and growth(before, after, events, event="blocks", origin="remote") >= 1
            )
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert done, "process 2 did not count the remote events"
        assert not any("made-up" in str(labels) for _, labels in after)
        seen = http.get(f"http://127.0.0.1:{p2}/value", params={"x": 3, "y": 3, "z": 3})
        assert seen.json()["active"]
