"""A devnet started with ``--dns`` answers its registered names over UDP, read by
dnspython's resolver client: a name registered by a transaction is found after
its block, an unknown one is NXDOMAIN."""

from __future__ import annotations

import socket
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest

from focusflow.chain import Msg
from focusflow.core.cid import cid_of_text, cid_to_bytes
from focusflow.testing.devnet import signed, start_devnet, wait_tx


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _txt(port: int, name: str) -> dns.message.Message:
    query = dns.message.make_query(name, "TXT")
    deadline = time.monotonic() + 20
    while True:
        try:
            return dns.query.udp(query, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            if time.monotonic() > deadline:
                raise


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    port = _free_udp_port()
    devnet = start_devnet(tmp_path_factory.mktemp("dns") / "home", "--dns", f"127.0.0.1:{port}")
    try:
        yield devnet, port
    finally:
        devnet.stop()


def test_a_registered_name_resolves_over_dns(net):
    devnet, port = net
    assert _txt(port, "kitty.focus.").rcode() == dns.rcode.NXDOMAIN
    cid = cid_of_text("cats")
    msg = Msg("name.register", {"name": "kitty", "cid": cid_to_bytes(cid)})
    tx = signed(devnet, devnet.dev_key(), [msg], fee=40_000)
    with devnet.client() as c:
        r = c.post("/v1/txs", json={"tx": tx.encoded.hex()})
        assert r.status_code == 202, r.text
    assert wait_tx(devnet, r.json()["hash"])["code"] == "ok"
    answer = _txt(port, "kitty.focus.")
    assert answer.rcode() == dns.rcode.NOERROR
    texts = sorted(b"".join(rd.strings).decode() for rd in answer.answer[0])
    assert texts == [f"cid={cid}", f"owner={devnet.dev_key().address}"]
    assert _txt(port, "ki.focus.").rcode() == dns.rcode.NXDOMAIN  # not a valid name at all


def test_a_taken_dns_port_stops_the_devnet_with_a_clear_error(tmp_path):
    import subprocess
    import sys

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        args = ["devnet", "--home", str(tmp_path / "home"), "--port", "0"]
        done = subprocess.run(
            [sys.executable, "-m", "focusflow", *args, "--dns", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode != 0
    assert f"DNS cannot listen on 127.0.0.1:{port}" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
