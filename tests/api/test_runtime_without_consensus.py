"""A node runtime that runs no consensus engine (a library's or a test's) serves
the chain's routes and answers the consensus route with a precise code, not 500."""

from __future__ import annotations

import httpx

from focusflow.testing.lightnode import build_chain, node_app, serve


def test_validators_of_a_runtime_without_consensus_are_unavailable(tmp_path):
    chain = build_chain(tmp_path / "chain", blocks=2)
    url, stop = serve(node_app(chain))
    try:
        with httpx.Client(base_url=url, timeout=10) as c:
            status = c.get("/v1/status")
            validators = c.get("/v1/validators")
    finally:
        stop()
        chain.close()
    assert status.status_code == 200 and status.json()["height"] == 2
    assert validators.status_code == 503
    assert validators.json()["error"]["code"] == "unavailable"
    assert "runs no consensus" in validators.json()["error"]["message"]
