"""``focusflow tx ca request`` against a chain without a CA, run as a process.

A devnet's genesis names no certificate authority, so the chain would refuse a
``ca.request`` (``ca_refused``) after taking its fee: the command must ask the
node first (``GET /v1/ca``) and refuse with ``no_ca`` before signing, sending
nothing (the dev account's nonce and balance and the mempool unchanged).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from focusflow.testing.devnet import start_devnet

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    net = start_devnet(tmp_path_factory.mktemp("noca") / "home")
    yield net
    net.stop()


def focusflow(*args: object) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_ca_request_to_a_chain_without_a_ca_is_refused_before_sending(devnet):
    assert httpx.get(f"{devnet.api}/v1/ca", timeout=10).status_code == 404
    dev = devnet.dev_key().address
    before = httpx.get(f"{devnet.api}/v1/accounts/{dev}", timeout=10).json()
    for args in (("request", "web-1", "ab" * 32), ("revoke", "cd" * 16)):
        r = focusflow("tx", "ca", *args, "--home", devnet.home, "--node", devnet.api)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, (r.stdout, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert lines[0].endswith("[no_ca]") and "no certificate authority" in lines[0], r.stderr
        assert r.stdout == ""
    after = httpx.get(f"{devnet.api}/v1/accounts/{dev}", timeout=10).json()
    assert after == before
    status = httpx.get(f"{devnet.api}/v1/status", timeout=10).json()
    assert status["mempool"]["txs"] == 0
