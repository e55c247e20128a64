"""``focusflow light`` as processes against a running devnet process, and a lying
proxy in front of it (slow: a devnet start and several interpreter starts).

The devnet is started as a user would (tests/node/devnet_process); each light
command runs as ``python -m focusflow light ...``. The lying node is a loopback
proxy that forwards every request to the devnet and rewrites chosen answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response

from focusflow.core.cid import cid_of_text
from focusflow.testing.devnet import link_msg, signed, start_devnet
from focusflow.testing.lightnode import serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def light(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "focusflow", "light", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def proxy(target: str, rewrite) -> tuple[str, callable]:
    """A node that answers with ``target``'s answers, some rewritten."""
    app = FastAPI()
    upstream = httpx.Client(base_url=target, timeout=10)

    @app.get("/{path:path}")
    def forward(path: str, request: Request) -> Response:
        r = upstream.get("/" + path, params=dict(request.query_params))
        body = r.content
        if r.status_code == 200:
            changed = rewrite("/" + path, r.json())
            if changed is not None:
                body = json.dumps(changed).encode()
        return Response(body, status_code=r.status_code, media_type="application/json")

    url, stop_server = serve(app)

    def stop() -> None:
        stop_server()
        upstream.close()

    return url, stop


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("lightproc") / "home", timeout=240)
    key = net.dev_key()
    with net.client() as c:
        tx = signed(net, key, [link_msg(("light", "client"), ("light", "proof"))])
        h = c.post("/v1/txs", json={"tx": tx.encoded.hex()}).json()["hash"]
        deadline = time.monotonic() + 60
        while c.get(f"/v1/txs/{h}").json().get("status") != "committed":
            assert time.monotonic() < deadline, "the link was not committed"
            time.sleep(0.2)
    yield net
    net.stop()


def test_sync_query_and_sample_against_a_devnet_process(devnet, tmp_path):
    home = tmp_path / "light"
    gen = devnet.home / "genesis.json"
    r = light("sync", "--node", devnet.api, "--genesis", gen, "--home", home, "--json")
    assert r.returncode == 0, r.stderr
    synced = json.loads(r.stdout)
    assert synced["height"] >= 1 and synced["verified_headers"] >= 1
    cid = cid_of_text("light")
    r = light("query", "particle", cid, "--node", devnet.api, "--home", home, "--json")
    assert r.returncode == 0, r.stderr
    answer = json.loads(r.stdout)
    assert answer["particle"] == cid and answer["verified"] is True and answer["focus"] > 0
    r = light("sample", synced["height"], "--node", devnet.api, "--samples", 16,
              "--home", home, "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["available"] is True


def test_a_lying_proxy_is_caught_by_the_command(devnet, tmp_path):
    home = tmp_path / "light"
    gen = devnet.home / "genesis.json"
    assert light("sync", "--node", devnet.api, "--genesis", gen, "--home", home).returncode == 0

    def rewrite(path, doc):
        if path.startswith("/v1/light/proofs/particle/"):
            chunk = bytearray(bytes.fromhex(doc["chunk"]))
            chunk[8 * (doc["index"] % 1024)] ^= 1
            return {**doc, "chunk": chunk.hex(), "focus_q": doc["focus_q"] ^ 1}
        return None

    url, stop = proxy(devnet.api, rewrite)
    try:
        r = light("query", "particle", cid_of_text("light"), "--node", url, "--home", home)
        assert r.returncode == 3, (r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].endswith("[bad_proof]"), r.stderr
    finally:
        stop()
