"""Deeply nested JSON in a request body is bad input (400 ``malformed``), not a 500.

``json.loads`` raises RecursionError, not ValueError, past the interpreter's
recursion limit; each body below nests far deeper. Every route that reads a
JSON body is asked through the node's real app (hot path and framework alike).
"""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from focusflow.api.app import create_app
from focusflow.node.runtime import NodeRuntime
from focusflow.testing.chains import genesis, new_chain
from focusflow.vm.evm import interpreter as load_evm

DEPTH = 100_000


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    chain = new_chain(tmp_path_factory.mktemp("deepjson"), genesis(focus={"mode": "diffusion"}))
    runtime = NodeRuntime(chain)
    yield runtime
    chain.close()


@pytest.fixture(scope="module")
def client(node):
    app = create_app(node)
    # A node loads py-evm at its first Ethereum transaction or call, and py-evm
    # raises the recursion limit so far that json.loads of these bodies would
    # overflow the C stack (a crash, not a RecursionError): the depth is
    # checked before anything parses them. Load it, as a busy node has.
    load_evm()
    assert sys.getrecursionlimit() >= 100_000
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


BODIES = {
    "arrays": "[" * DEPTH + "]" * DEPTH,
    "objects": '{"a":' * DEPTH + "1" + "}" * DEPTH,
    "arrays inside the expected object": '{"tx": ' + "[" * DEPTH + "]" * DEPTH + "}",
    "unclosed": "[" * DEPTH,
}


@pytest.mark.parametrize("path", ["/v1/txs", "/v1/txs/batch"])
@pytest.mark.parametrize("shape", sorted(BODIES))
def test_deep_json_is_malformed_not_a_server_error(client, node, path, shape):
    height = node.chain.height
    r = client.post(path, content=BODIES[shape], headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "malformed"
    assert error["message"] == "request body is nested too deeply"
    assert node.chain.height == height
    assert client.get("/v1/status").json()["mempool"]["txs"] == 0


def test_deep_json_to_a_framework_parsed_body_is_malformed(client):
    r = client.post(
        "/v1/admin/faucet",
        content=BODIES["objects"],
        headers={"content-type": "application/json", "authorization": "Bearer x"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "malformed"


def test_shallow_bad_json_keeps_its_message(client):
    r = client.post("/v1/txs", content="[1,", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == {"code": "malformed", "message": "request body is not JSON"}
