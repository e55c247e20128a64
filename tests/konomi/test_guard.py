"""Konomi's guard on real ``focusflow konomi serve`` processes (and the in-process
app): a bearer token on every state-changing request, body and dimension caps,
loopback unless told otherwise.

Every socket is on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from focusflow.core.errors import InvalidParameterError
from focusflow.konomi import KonomiSystem
from focusflow.konomi.api import create_app
from focusflow.konomi.guard import MAX_BODY
from focusflow.konomi.launch import free_port, new_token, serve_process, stop
from focusflow.konomi.system import MAX_AXIS, MAX_FACE_CELLS
from focusflow.services.auth.tokens import TokenStore
from tests.konomi.servers import start_konomi

TOKEN = new_token()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _start(tmp: Path, **kw) -> tuple[subprocess.Popen, int]:
    return start_konomi(tmp / "k.sqlite3", TOKEN, dims="20,20,20", **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, port = _start(tmp_path_factory.mktemp("konomi-guard"))
    try:
        yield proc, port
    finally:
        stop([proc])


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _raw_post(port: int, head: bytes, body_parts: list[bytes], timeout: float = 5.0) -> bytes:
    """Send a request's head and some of its body; return what the server answers
    (within ``timeout``) while the rest of the body is still owed."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head)
        for part in body_parts:
            try:
                s.sendall(part)
            except OSError:  # the server answered and closed: what we want
                break
        s.settimeout(timeout)
        answer = b""
        end = time.monotonic() + timeout
        while b"\r\n\r\n" not in answer and time.monotonic() < end:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


# -- tokens ----------------------------------------------------------------------------


def test_writes_without_the_token_are_refused_and_change_nothing(server):
    _, port = server
    base = f"http://127.0.0.1:{port}"
    writes = [
        ("/value", {"json": {"x": 1, "y": 1, "z": 1, "value": 9.0}}),
        ("/template/create", {"json": {"dims": [5, 5, 5]}}),
        ("/instance/create", {"params": {"template_id": "default"}}),
        ("/llm/process", {"params": {"x": 1, "y": 1, "z": 1, "text": "hi"}}),
        ("/llm/interlock", {"params": {"plane": "z", "index": 1, "operation": "activate"}}),
        ("/block/attest", {"json": {"x": 1, "y": 1, "z": 1}}),
    ]
    with httpx.Client(timeout=10) as http:
        for headers in (
            {},
            {"Authorization": "Bearer " + "x" * len(TOKEN)},
            {"Authorization": TOKEN},
        ):
            for path, kw in writes:
                r = http.post(base + path, headers=headers, **kw)
                assert r.status_code == 401, (path, headers, r.text)
                assert r.json()["error"]["code"] == "unauthorized"
        # Reads stay open, and nothing above changed the grid.
        r = http.get(base + "/value", params={"x": 1, "y": 1, "z": 1})
        assert r.status_code == 200 and r.json()["active"] is False
        r = http.post(base + "/value", headers=AUTH, json={"x": 1, "y": 1, "z": 1, "value": 9.0})
        assert r.status_code == 200
        assert http.get(base + "/value", params={"x": 1, "y": 1, "z": 1}).json()["value"] == 9.0


def test_websocket_needs_the_token(server):
    _, port = server
    with (
        pytest.raises(InvalidStatus) as info,
        connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10),
    ):
        pass
    assert info.value.response.status_code == 403
    wrong = f"ws://127.0.0.1:{port}/ws?token={'x' * len(TOKEN)}"
    with pytest.raises(InvalidStatus), connect(wrong, open_timeout=10):
        pass
    # A browser passes it in the URL; other clients in the header.
    for url, headers in (
        (f"ws://127.0.0.1:{port}/ws?token={TOKEN}", None),
        (f"ws://127.0.0.1:{port}/ws", AUTH),
    ):
        with connect(url, open_timeout=10, additional_headers=headers) as ws:
            ws.send('{"action": "initialize"}')
            assert '"initialized"' in ws.recv(timeout=10)


def test_in_process_app_guards_the_same_way():
    app = create_app(KonomiSystem(default_dims=(8, 8, 8)), token=TOKEN)
    with TestClient(app) as c:
        r = c.post("/value", json={"x": 0, "y": 0, "z": 0})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert c.post("/value", json={"x": 0, "y": 0, "z": 0}, headers=AUTH).status_code == 200
        with pytest.raises(WebSocketDisconnect), c.websocket_connect("/ws") as ws:
            ws.receive_json()
    for bad in ("short", "x" * 250):  # too short to be a secret, too long for the header
        with pytest.raises(InvalidParameterError, match="32 to 249 characters"):
            create_app(KonomiSystem(default_dims=(2, 2, 2)), token=bad)


def test_scoped_tokens_with_a_konomi_role_drive_the_grid(tmp_path):
    """With a token file, API tokens are taken as well: the ``konomi`` role may
    write and open the WebSocket, a node role is forbidden, and a revoked token
    is refused at the next request (another store revoked it: the CLI's)."""
    store = TokenStore(tmp_path / "tokens.json")
    writer, record = store.issue("grid", ["konomi"], 600)
    faucet, _ = store.issue("ci", ["faucet"], 600)
    app = create_app(KonomiSystem(default_dims=(8, 8, 8)), token=TOKEN, tokens=store)
    cell = {"x": 0, "y": 0, "z": 0, "value": 2.0}
    with TestClient(app) as c:
        ok = c.post("/value", json=cell, headers={"Authorization": f"Bearer {writer}"})
        assert ok.status_code == 200, ok.text
        with c.websocket_connect(f"/ws?token={writer}") as ws:
            ws.send_json({"action": "initialize"})
            assert ws.receive_json()["status"] == "initialized"
        no = c.post("/value", json=cell, headers={"Authorization": f"Bearer {faucet}"})
        assert (no.status_code, no.json()["error"]["code"]) == (403, "forbidden")
        with pytest.raises(WebSocketDisconnect), c.websocket_connect(f"/ws?token={faucet}") as ws:
            ws.receive_json()
        assert c.post("/value", json=cell, headers=AUTH).status_code == 200  # the server token

        TokenStore(tmp_path / "tokens.json").revoke(record.id)
        gone = c.post("/value", json=cell, headers={"Authorization": f"Bearer {writer}"})
        assert (gone.status_code, gone.json()["error"]["code"]) == (401, "unauthorized")


def test_a_served_grid_takes_tokens_the_cli_issues(tmp_path):
    tokens = tmp_path / "tokens.json"
    cli = [sys.executable, "-m", "focusflow", "auth", "token", "issue", "--file", str(tokens)]
    issued = subprocess.run(
        [*cli, "--subject", "grid", "--role", "konomi", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = json.loads(issued.stdout)["token"]
    proc, port = _start(tmp_path, extra=("--tokens", str(tokens)))
    try:
        cell = {"x": 1, "y": 1, "z": 1, "value": 5.0}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            r = http.post("/value", json=cell, headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            assert http.get("/value", params={"x": 1, "y": 1, "z": 1}).json()["value"] == 5.0
    finally:
        stop([proc])


# -- body caps -------------------------------------------------------------------------


def test_oversized_body_is_refused_before_it_is_read(server):
    """A declared 100 MB body is answered 413 after 1 KB of it, and a chunked body
    as soon as it passes the cap: the server never waits for (or holds) the rest."""
    proc, port = server
    before = _rss_kib(proc.pid)
    head = (
        f"POST /value HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {100 * 1024 * 1024}\r\n\r\n"
    ).encode()
    t0 = time.monotonic()
    answer = _raw_post(port, head, [b" " * 1024])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert time.monotonic() - t0 < 5
    head = (
        f"POST /value HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (16 * 1024, b" " * 16 * 1024)
    answer = _raw_post(port, head, [chunk] * (MAX_BODY // (16 * 1024) + 2))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer or b"content-length" in answer.lower()
    assert _rss_kib(proc.pid) - before < 50 * 1024
    # A body under the cap still works.
    with httpx.Client(timeout=10, headers=AUTH) as http:
        r = http.post(f"http://127.0.0.1:{port}/value", json={"x": 2, "y": 2, "z": 2})
        assert r.status_code == 200


def test_oversized_body_without_token_gets_401_unread(server):
    _, port = server
    head = (
        "POST /value HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024 * 1024}\r\n\r\n"
    ).encode()
    assert _raw_post(port, head, []).startswith(b"HTTP/1.1 401")


def test_oversized_websocket_message_closes_the_socket(server):
    _, port = server
    url = f"ws://127.0.0.1:{port}/ws"
    with (
        connect(url, open_timeout=10, additional_headers=AUTH) as ws,
        pytest.raises(ConnectionClosed) as info,
    ):
        ws.send('{"action": "initialize", "cube_id": "' + "x" * (MAX_BODY + 1) + '"}')
        ws.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


# -- dimension caps --------------------------------------------------------------------


def test_huge_dimensions_are_refused_fast_without_memory(server):
    proc, port = server
    before = _rss_kib(proc.pid)
    side = 1 << 11
    huge = [
        [1 << 21, 1 << 21, 1],  # the old per-axis limit: a face of 2^42 cells
        [MAX_AXIS + 1, 1, 1],
        [side, side, 1],  # each axis allowed, the face too large
        [MAX_AXIS, MAX_AXIS // 2, MAX_AXIS // 2],
    ]
    with httpx.Client(timeout=10, headers=AUTH) as http:
        for dims in huge:
            t0 = time.monotonic()
            r = http.post(f"http://127.0.0.1:{port}/template/create", json={"dims": dims})
            assert r.status_code == 400, (dims, r.text)
            assert r.json()["error"]["code"] == "dimensions_too_large"
            assert time.monotonic() - t0 < 2
        ok = [1, MAX_FACE_CELLS // MAX_AXIS, MAX_AXIS]
        r = http.post(f"http://127.0.0.1:{port}/template/create", json={"dims": ok})
        assert r.status_code == 200 and r.json()["dimensions"] == ok
        assert http.post(f"http://127.0.0.1:{port}/template/create").json()["dimensions"] == [
            1000,
            1000,
            1000,
        ]
    assert _rss_kib(proc.pid) - before < 50 * 1024


# -- binding ---------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a listening TCP socket on ``port`` (from /proc)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            raw = bytes.fromhex(addr)[::-1]
            found.add(".".join(str(b) for b in raw))
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs /proc/net/tcp")
def test_binds_loopback_by_default_and_needs_public_for_more(tmp_path):
    proc, port = _start(tmp_path, host=None)
    try:
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        stop([proc])
    refused = serve_process(
        str(tmp_path / "k.sqlite3"),
        free_port(),
        token=TOKEN,
        host="0.0.0.0",
        stderr=subprocess.PIPE,
    )
    try:
        assert refused.wait(timeout=60) == 2
        assert b"--public" in refused.stderr.read()
    finally:
        stop([refused])  # reaps it if it is still running and closes its stderr pipe
    proc, port = _start(tmp_path, host="0.0.0.0", extra=("--public",))
    try:
        assert _listening_addresses(port) == {"0.0.0.0"}
    finally:
        stop([proc])
