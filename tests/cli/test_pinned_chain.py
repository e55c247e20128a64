"""The CLI signs for the chain it pins locally, not for whatever a node says.

A real HTTP server on loopback plays a node that lies: it reports another chain
id, or parameters that price a transaction at a fortune. The CLI must refuse
before anything is sent (exit status 2, one ``error:`` line with the code), and
use the local genesis's parameters where there is one.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from focusflow.chain.params import ChainParams
from focusflow.chain.tx import decode_tx
from focusflow.core.keys import KeyPair
from tests.cli.helpers import assert_user_error, run_cli
from tests.helpers import SAMPLE

PINNED = "focusflow-pinned"
OTHER = "focusflow-other"
GENESIS_PARAMS = {"fee_base": 100, "fee_per_byte": 1}
#: What a greedy node answers on GET /v1/params.
GREEDY_PARAMS = {"fee_base": 10**9, "fee_per_byte": 10**6}


@dataclass
class FakeNode:
    """What the lying node says, and every transaction it was sent."""

    chain_id: str
    params: dict[str, Any] = field(default_factory=dict)
    posted: list[bytes] = field(default_factory=list)
    url: str = ""


def _handler(node: FakeNode) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/v1/status":
                self._answer(200, {"chain_id": node.chain_id, "height": 7})
            elif self.path == "/v1/params":
                self._answer(200, {"params": node.params})
            elif self.path.startswith("/v1/accounts/"):
                address = self.path.rsplit("/", 1)[1]
                account = {"address": address, "balance": 10**15, "nonce": 0, "bonded": 10**9}
                self._answer(200, account | {"neudeg": 0})
            else:
                self._answer(404, {"error": {"code": "not_found", "message": self.path}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path == "/v1/txs":
                raw = bytes.fromhex(body["tx"])
                node.posted.append(raw)
                self._answer(202, {"hash": decode_tx(raw).hash.hex()})
            elif self.path == "/v1/txs/batch":
                raws = [bytes.fromhex(t) for t in body["txs"]]
                node.posted.extend(raws)
                self._answer(200, {"results": [{"hash": decode_tx(r).hash.hex()} for r in raws]})
            else:
                self._answer(404, {"error": {"code": "not_found", "message": self.path}})

    return Handler


@pytest.fixture
def fake_node() -> Iterator[FakeNode]:
    node = FakeNode(OTHER)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(node))
    node.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield node
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def home(tmp_path, monkeypatch, capsys) -> Path:
    """A home with an unencrypted wallet key ``alice`` (and no genesis yet)."""
    path = tmp_path / "home"
    monkeypatch.setenv("FOCUSFLOW_HOME", str(path))
    monkeypatch.delenv("FOCUSFLOW_PASSPHRASE", raising=False)
    assert run_cli(capsys, "keys", "add", "alice", "--unencrypted").code == 0
    return path


def _write_genesis(home: Path, chain_id: str = PINNED) -> None:
    validator = KeyPair.from_seed(b"\x05" * 32).public_key.hex()
    genesis = {
        "chain_id": chain_id,
        "genesis_time_ms": 0,
        "params": GENESIS_PARAMS,
        "accounts": [],
        "validators": [{"name": "v", "public_key": validator, "power": 1}],
    }
    (home / "genesis.json").write_text(json.dumps(genesis))


def _send(capsys, node: FakeNode, *extra: object):
    to = KeyPair.from_seed(b"\x09" * 32).address
    return run_cli(
        capsys, "tx", "send", to, 5, "--from", "alice", "--node", node.url, "--json", *extra
    )


def test_a_node_of_another_chain_than_the_genesis_is_refused(home, fake_node, capsys):
    _write_genesis(home)
    result = _send(capsys, fake_node)
    assert_user_error(result, "chain_id_mismatch")
    assert f"serves chain {OTHER!r}, not {PINNED!r}" in result.err
    assert str(home / "genesis.json") in result.err
    assert fake_node.posted == []


def test_chain_id_flag_pins_the_chain_without_a_genesis(home, fake_node, capsys):
    refused = _send(capsys, fake_node, "--chain-id", PINNED)
    assert_user_error(refused, "chain_id_mismatch")
    assert "given by --chain-id" in refused.err
    assert fake_node.posted == []

    fake_node.chain_id = PINNED
    sent = _send(capsys, fake_node, "--chain-id", PINNED)
    assert sent.code == 0, sent.err
    [raw] = fake_node.posted
    assert decode_tx(raw).chain_id == PINNED


def test_the_flag_wins_over_a_genesis_of_another_chain(home, fake_node, capsys):
    _write_genesis(home, "focusflow-elsewhere")
    fake_node.chain_id = PINNED
    fake_node.params = {"fee_base": 100, "fee_per_byte": 1}
    sent = _send(capsys, fake_node, "--chain-id", PINNED)
    assert sent.code == 0, sent.err
    assert decode_tx(fake_node.posted[0]).chain_id == PINNED


def test_nothing_pins_the_chain_is_an_error(home, fake_node, capsys):
    fake_node.chain_id = PINNED
    result = _send(capsys, fake_node)
    assert_user_error(result, "chain_id_unknown")
    assert "pass --chain-id" in result.err
    assert fake_node.posted == []


def test_the_genesis_parameters_price_the_fee_not_the_nodes(home, fake_node, capsys):
    _write_genesis(home)
    fake_node.chain_id = PINNED
    fake_node.params = GREEDY_PARAMS
    sent = _send(capsys, fake_node)
    assert sent.code == 0, sent.err
    [raw] = fake_node.posted
    tx = decode_tx(raw)
    assert tx.fee == ChainParams(**GENESIS_PARAMS).min_fee(len(raw)) == sent.json()["fee"]


def test_a_fee_from_the_nodes_parameters_is_capped(home, fake_node, capsys):
    fake_node.chain_id = PINNED
    fake_node.params = GREEDY_PARAMS
    refused = _send(capsys, fake_node, "--chain-id", PINNED)
    assert_user_error(refused, "fee_over_cap")
    default_cap = ChainParams().min_fee(ChainParams().max_tx_bytes)
    assert f"over --max-fee={default_cap}" in refused.err
    assert "fee_base=1000000000 + fee_per_byte=1000000" in refused.err
    assert fake_node.posted == []

    # The cap is the user's to raise, knowingly.
    sent = _send(capsys, fake_node, "--chain-id", PINNED, "--max-fee", 10**12)
    assert sent.code == 0, sent.err
    assert decode_tx(fake_node.posted[0]).fee > default_cap


def test_an_explicit_fee_is_capped_too(home, fake_node, capsys):
    _write_genesis(home)
    fake_node.chain_id = PINNED
    refused = _send(capsys, fake_node, "--fee", 5000, "--max-fee", 4999)
    assert_user_error(refused, "fee_over_cap")
    assert "the fee would be 5000 (given by --fee), over --max-fee=4999" in refused.err
    assert fake_node.posted == []
    sent = _send(capsys, fake_node, "--fee", 5000, "--max-fee", 5000)
    assert sent.code == 0, sent.err
    assert decode_tx(fake_node.posted[0]).fee == 5000


def test_import_signs_for_the_pinned_chain_only(home, fake_node, capsys):
    _write_genesis(home)
    args = ("import", "bostrom", SAMPLE, "--limit", "5", "--from", "alice", "--node", fake_node.url)
    result = run_cli(capsys, *args)
    assert_user_error(result, "chain_id_mismatch")
    assert fake_node.posted == []

    fake_node.chain_id = PINNED
    fake_node.params = GREEDY_PARAMS  # the genesis prices the fees; this is ignored
    greedy = run_cli(capsys, *args, "--chain-id", PINNED, "--max-fee", 100)
    assert_user_error(greedy, "fee_over_cap")
    assert fake_node.posted == []
