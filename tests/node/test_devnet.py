"""The devnet as a user runs it: first start, resume, clean stop, SIGKILL, misuse."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys

import pytest

from focusflow.consensus import verify_certificate
from focusflow.core.cid import cid_of_text
from focusflow.node.home import LOOPBACK_DATAGRAM_SIZE, HomeError, init_devnet, init_testnet
from focusflow.node.network import net_config_of
from focusflow.node.wiring import open_chain
from focusflow.testing.devnet import link_msg, signed, start_devnet, wait_height, wait_tx
from focusflow.testing.testnet import free_base_port
from tests.helpers import ROOT


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(
        [sys.executable, "-m", "focusflow", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_first_run_creates_home_then_resumes_after_sigterm(tmp_path):
    home = tmp_path / "home"
    net = start_devnet(home)
    assert json.loads((home / "genesis.json").read_text())["chain_id"].startswith(
        "focusflow-devnet-"
    )
    for secret in ("admin_token", "validator_key", "keys/dev.json"):
        assert stat.S_IMODE((home / secret).stat().st_mode) == 0o600, secret
    tx = signed(net, net.dev_key(), [link_msg(("one", "two"), ("two", "three"))])
    with net.client() as c:
        h = c.post("/v1/txs", json={"tx": tx.encoded.hex()}).json()["hash"]
    committed = wait_tx(net, h)
    with net.client() as c:
        block = c.get(f"/v1/blocks/{committed['height']}").json()
        top = c.get("/v1/focus/top", params={"k": 3}).json()["particles"]
    assert net.stop(signal.SIGTERM) == 0
    assert "stopped" in net.log() and not (home / "node.json").exists()
    # A clean stop leaves the focus checkpoint of its last block, and the
    # next start begins there instead of replaying the chain.
    stopped_at = re.search(r"stopped.*height=(\d+)", net.log()).group(1)
    checkpoint = home / "data" / "focus.ckpt"
    assert stat.S_IMODE(checkpoint.stat().st_mode) == 0o600

    again = start_devnet(home)
    try:
        assert "resumed" in again.log()
        assert f"restored_from={stopped_at}" in again.log()
        with again.client() as c:
            assert c.get(f"/v1/blocks/{committed['height']}").json() == block
            assert c.get(f"/v1/txs/{h}").json()["code"] == "ok"
            status = c.get("/v1/status").json()
            assert status["height"] >= committed["height"]
            assert c.get("/v1/focus/top", params={"k": 3}).json()["particles"] == top
    finally:
        assert again.stop(signal.SIGINT) == 0


def test_sigkill_loses_nothing_committed(tmp_path):
    home = tmp_path / "home"
    net = start_devnet(home, block_time="0.05s")
    tx = signed(net, net.dev_key(), [link_msg(("k1", "k2"))])
    with net.client() as c:
        h = c.post("/v1/txs", json={"tx": tx.encoded.hex()}).json()["hash"]
    committed = wait_tx(net, h)
    with net.client() as c:
        reached = c.get("/v1/status").json()["height"]
    net.stop(signal.SIGKILL)
    again = start_devnet(home)
    try:
        with again.client() as c:
            assert c.get(f"/v1/txs/{h}").json()["height"] == committed["height"]
            assert c.get("/v1/status").json()["height"] >= reached
            assert c.get(f"/v1/focus/particles/{cid_of_text('k1')}").status_code == 200
    finally:
        again.stop()


def test_second_node_on_one_home_is_refused(tmp_path):
    net = start_devnet(tmp_path / "home")
    try:
        r = _run("devnet", "--home", str(tmp_path / "home"), "--port", "0")
        assert r.returncode == 2 and "home_in_use" in r.stderr
        wait_height(net, 1)
    finally:
        net.stop()


def test_busy_port_and_bad_options_are_clear_errors(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _run("devnet", "--home", str(tmp_path / "a"), "--port", str(port))
    assert r.returncode == 2 and "port_in_use" in r.stderr, r.stderr
    r = _run("devnet", "--home", str(tmp_path / "b"), "--block-time", "soon")
    assert r.returncode == 2 and "invalid duration" in r.stderr
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "precious.txt").write_text("user data")
    r = _run("devnet", "--home", str(tmp_path / "c"), "--port", "0")
    assert r.returncode == 2 and "not a focusflow home" in r.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["precious.txt"]


def _tree(path) -> dict[str, tuple[int, bytes]]:
    """Every entry under ``path`` with its mode and (for files) its bytes."""
    return {
        str(p.relative_to(path)): (p.stat().st_mode, p.read_bytes() if p.is_file() else b"")
        for p in sorted(path.rglob("*"))
    }


def test_busy_port_leaves_the_home_as_it_was(tmp_path):
    """A start that cannot listen makes nothing: no new home, no change to an old one."""
    absent = tmp_path / "absent"
    empty = tmp_path / "empty"
    empty.mkdir()
    made = tmp_path / "made"
    init_devnet(made)
    before = _tree(made)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        for home in (absent, empty, made):
            r = _run("devnet", "--home", str(home), "--port", port)
            assert r.returncode == 2, r.stderr
            assert "port_in_use" in r.stderr and f"127.0.0.1:{port}" in r.stderr, r.stderr
    assert not absent.exists()
    assert list(empty.iterdir()) == []
    assert _tree(made) == before


def test_json_logs_are_json_lines(tmp_path):
    net = start_devnet(tmp_path / "home", "--json-logs")
    try:
        wait_height(net, 1)
    finally:
        net.stop()
    lines = [line for line in net.log().splitlines() if line.strip()]
    docs = [json.loads(line) for line in lines]
    assert any(
        d["msg"] == "devnet ready" and d["api"].startswith("http://127.0.0.1:") for d in docs
    )


def test_a_home_from_before_consensus_resumes_by_consensus(tmp_path):
    """A home of the earlier single-producer devnet (blocks certified by
    Chain.produce_block, no consensus.wal) starts, keeps its blocks, and goes on."""
    home, _ = init_devnet(tmp_path / "home")
    chain = open_chain(home.data, home.load_genesis(), home.load_validator_key())
    old = [chain.produce_block([]).block.hash for _ in range(3)]
    chain.store.close()
    assert not home.wal.exists()
    net = start_devnet(home.path)
    try:
        wait_height(net, 6)
        with net.client() as c:
            blocks = [c.get(f"/v1/blocks/{h}").json() for h in range(1, 7)]
    finally:
        assert net.stop() == 0
    assert [b["hash"] for b in blocks[:3]] == [h.hex() for h in old]
    assert all(b["parent"] == a["hash"] for a, b in itertools.pairwise(blocks))
    assert "resumed" in net.log() and home.wal.exists()
    chain = open_chain(home.data, home.load_genesis(), home.load_validator_key())
    try:
        for h in range(1, chain.height + 1):
            record = chain.block_record(h)
            verify_certificate(
                record.commit,
                chain.validators,
                chain.chain_id,
                height=h,
                value_id=record.block.hash,
            )
    finally:
        chain.store.close()


def test_a_network_home_is_refused(tmp_path):
    init_testnet(tmp_path / "tn", 2, base_port=29_000)
    r = _run("devnet", "--home", str(tmp_path / "tn" / "v0"), "--port", "0")
    assert r.returncode == 2 and "bad_home" in r.stderr and "node start" in r.stderr, r.stderr


def test_testnet_datagram_size_is_written_and_checked(tmp_path):
    """A loopback testnet sends 8192-byte QUIC datagrams; a validator whose
    config.json asks for a size QUIC or UDP cannot carry refuses to start."""
    # A free range, not a fixed one: a node of an earlier test may still hold
    # a fixed port, and the busy port would then be the error reported.
    homes = init_testnet(tmp_path / "tn", 2, base_port=free_base_port(2))
    config = json.loads(homes[0].config.read_text())
    assert config["max_datagram_size"] == LOOPBACK_DATAGRAM_SIZE == 8192
    assert net_config_of(config).max_datagram_size == 8192
    assert net_config_of({}).max_datagram_size == 1452
    for bad in (1000, 70_000, "8192", 8192.0, True):
        with pytest.raises(HomeError, match="max_datagram_size"):
            net_config_of({"max_datagram_size": bad})
    config["max_datagram_size"] = 100
    homes[0].config.write_text(json.dumps(config))
    r = _run("node", "start", "--home", str(homes[0].path))
    assert r.returncode == 2 and "max_datagram_size" in r.stderr, r.stderr


def test_a_store_behind_its_wal_is_a_clear_error(tmp_path):
    """Removing data/ but not consensus.wal would leave the validator refusing to sign
    heights it signed before, waiting for a block sync no peer can give: refused at once."""
    home = tmp_path / "home"
    net = start_devnet(home)
    try:
        wait_height(net, 3)
    finally:
        assert net.stop() == 0
    shutil.rmtree(home / "data")
    r = _run("devnet", "--home", str(home), "--port", "0")
    assert r.returncode == 2 and "bad_home" in r.stderr and "consensus.wal" in r.stderr, r.stderr
    (home / "consensus.wal").unlink()
    again = start_devnet(home)
    try:
        wait_height(again, 1)
    finally:
        assert again.stop() == 0
