"""The light client trusts the block header only: lying or tampering nodes are caught.

Each node here is a real HTTP server (uvicorn on a loopback port) over real
chains: ``/v1/blocks/{height}`` gives one chain's header, and the DA router
serves squares that are not that header's, or shares with a flipped byte.
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from types import SimpleNamespace

import pytest
import uvicorn
from fastapi import FastAPI

from focusflow.api import errors
from focusflow.api.app import build_state
from focusflow.api.errors import ApiError
from focusflow.api.routes_da import router
from focusflow.api.state import set_app_state
from focusflow.cli.da_cmd import sample_block
from focusflow.node.da_store import DAStore
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx

T0 = 1_700_000_000_000


class TamperingStore(DAStore):
    """Serves every share, one byte changed."""

    def share_proof(self, height, row, col):
        proof = super().share_proof(height, row, col)
        share = bytearray(proof.share)
        share[-1] ^= 0xFF
        return dataclasses.replace(proof, share=bytes(share))


def make_chain(path, prefix: str):
    chain = new_chain(path, genesis(focus={"mode": "diffusion"}))
    chain.produce_block(
        [tx(ALICE, 0, link(*[(f"{prefix}{i}", f"{prefix}{i + 1}") for i in range(40)]))],
        time_ms=T0 + 1,
    )
    return chain


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    return make_chain(tmp_path_factory.mktemp("a"), "a"), make_chain(
        tmp_path_factory.mktemp("b"), "b"
    )


def serve(header_chain, da):
    """An HTTP node whose headers come from ``header_chain`` and DA answers from ``da``."""
    app = FastAPI()
    errors.install(app)
    app.include_router(router)
    set_app_state(app, build_state(SimpleNamespace(chain=header_chain, da=da)))

    @app.get("/v1/blocks/{height}")
    def block(height: int):
        record = header_chain.block_record(height)
        if record is None:
            raise ApiError("unknown_block", f"no block at height {height}")
        return {"height": height, "data_root": record.block.header.data_root.hex()}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    return f"http://127.0.0.1:{sock.getsockname()[1]}", server, thread


@pytest.fixture
def node():
    running = []

    def start(header_chain, da):
        url, server, thread = serve(header_chain, da)
        running.append((server, thread))
        return url

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(10)


def test_honest_node_over_http_is_available(chains, node):
    a, _ = chains
    verdict = sample_block(node(a, DAStore(a)), 1, samples=30, seed=4)
    assert verdict.available and verdict.k == 4 and len(verdict.samples) == 30
    assert verdict.data_root == a.head.data_root and verdict.failed == []


def test_roots_of_another_square_are_refused(chains, node):
    a, b = chains
    verdict = sample_block(node(a, DAStore(b)), 1, seed=4)
    assert not verdict.available and verdict.k is None and verdict.confidence == 0.0
    assert "do not hash to the header's data root" in verdict.reason
    assert verdict.data_root == a.head.data_root


def test_tampered_shares_fail_their_proofs(chains, node):
    a, _ = chains
    verdict = sample_block(node(a, TamperingStore(a)), 1, samples=10, seed=4)
    assert not verdict.available and verdict.k == 4
    assert len(verdict.failed) == len(verdict.samples) == 10


def test_node_without_da_is_unavailable_not_an_error(chains, node):
    a, _ = chains
    verdict = sample_block(node(a, None), 1)
    assert not verdict.available and "does not serve the square's roots (503)" in verdict.reason
