"""The network's CA on four validator processes: a certificate no one node signs.

``focusflow testnet --validators 4`` runs a distributed key generation for the
validators' account keys (3 of 4 sign) and names the group in the genesis.
A name's owner sends ``ca.request`` (``focusflow tx ca request``); each
validator's CA duty commits and signs on its own, from its own share, and the
chain assembles the certificate. Independent checks: the real ``openssl verify`` against the root
every node serves, and the RFC 6962 inclusion proof a node serves, checked
with ``ctlog.verify_inclusion`` against the log head that node's
``/v1/proofs`` proves in its state.
"""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from focusflow.chain import Msg, make_tx
from focusflow.core.cid import raw_cid_bytes
from focusflow.core.encoding import decode
from focusflow.core.keystore import Keystore
from focusflow.modules.ca import HEAD_KEY
from focusflow.services.trust import ctlog
from focusflow.store import verify_proof
from focusflow.store.smt import Proof
from focusflow.testing.testnet import LocalTestnet
from tests.cli.helpers import run_cli


def _send(net: LocalTestnet, key, nonce: int, msg: Msg) -> dict:
    chain_id = net.status(0)["chain_id"]
    tx = make_tx(key, chain_id, nonce, 10**7, [msg])
    r = httpx.post(f"{net.apis[1]}/v1/txs", json={"tx": tx.encoded.hex()}, timeout=5)
    assert r.status_code in (200, 202), r.text
    net.wait_tx(1, tx.hash.hex(), 60)
    return httpx.get(f"{net.apis[1]}/v1/txs/{tx.hash.hex()}", timeout=5).json()


def _until_served(net: LocalTestnet, url: str, timeout: float = 90.0) -> httpx.Response:
    """The first 200 answer of ``url`` (the validators sign within a few blocks)."""
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(url, timeout=5)
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, f"{r.text}\n{net.logs()}"
            return r
        time.sleep(0.5)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl binary is checked against")
def test_four_validators_issue_a_certificate_by_threshold(tmp_path, capsys):
    net = LocalTestnet(tmp_path / "tn", 4)
    try:
        ca = httpx.get(f"{net.apis[2]}/v1/ca", timeout=5).json()
        assert ca["threshold"] == 3 and len(ca["members"]) == 4
        federation = httpx.get(f"{net.apis[2]}/v1/ca/federation", timeout=5).json()
        assert federation["roots"] == []  # no other network trusted until validators vote
        dev = Keystore(tmp_path / "tn" / "v0" / "keys").load("dev")
        name = {"name": "web-1", "cid": raw_cid_bytes(b"web-1")}
        receipt = _send(net, dev, 0, Msg("name.register", name))
        assert receipt["code"] == "ok", receipt
        key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        # the request and the revocation go through the command line
        cli = ("--home", tmp_path / "tn" / "v0", "--node", net.apis[1], "--wait", "--json")
        result = run_cli(capsys, "tx", "ca", "request", "web-1", key.hex(), *cli)
        assert result.code == 0, result.err
        receipt = result.json()
        assert receipt["code"] == "ok", receipt
        (event,) = [e for e in receipt["events"] if e["type"] == "ca.request"]
        serial = event["serial"]
        r = _until_served(net, f"{net.apis[3]}/v1/ca/certs/{serial}")
        cert = r.json()
        (tmp_path / "root.pem").write_text(ca["root_pem"])
        (tmp_path / "leaf.pem").write_text(cert["pem"])
        out = subprocess.run(
            [
                "openssl",
                "verify",
                "-CAfile",
                str(tmp_path / "root.pem"),
                str(tmp_path / "leaf.pem"),
            ],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        # the inclusion proof, against the head this node proves in its state
        proof = httpx.get(
            f"{net.apis[3]}/v1/proofs", params={"key": HEAD_KEY.decode()}, timeout=5
        ).json()
        value = bytes.fromhex(proof["value"])
        smt_proof = Proof.decode(bytes.fromhex(proof["proof"]))
        assert verify_proof(bytes.fromhex(proof["root"]), HEAD_KEY, value, smt_proof)
        size, head_root, _ = decode(value, "ct head")
        assert size >= cert["tree_size"] >= 1
        root_hash = bytes.fromhex(cert["root_hash"])
        # the validators' own node certificates (their bootstrap duties) may join
        # the log between the two requests: the head proven in the state is the
        # certificate's head or provably extends it
        r = httpx.get(
            f"{net.apis[3]}/v1/ct/consistency",
            params={"first": cert["tree_size"], "second": size},
            timeout=5,
        ).json()
        assert bytes.fromhex(r["first_root"]) == root_hash
        assert bytes.fromhex(r["second_root"]) == head_root
        proof_path = [bytes.fromhex(h) for h in r["proof"]]
        assert ctlog.verify_consistency(cert["tree_size"], size, proof_path, root_hash, head_root)
        der = x509.load_pem_x509_certificate(cert["pem"].encode()).public_bytes(
            serialization.Encoding.DER
        )
        path = [bytes.fromhex(h) for h in cert["audit_path"]]
        assert ctlog.verify_inclusion(
            ctlog.leaf_hash(der), cert["leaf_index"], cert["tree_size"], path, root_hash
        )
        r = httpx.get(f"{net.apis[0]}/v1/ct/consistency", params={"first": 1}, timeout=5).json()
        assert ctlog.verify_consistency(
            1,
            r["second"],
            [bytes.fromhex(h) for h in r["proof"]],
            bytes.fromhex(r["first_root"]),
            bytes.fromhex(r["second_root"]),
        )
        # the requester revokes it: the validators' duties sign the new CRL
        result = run_cli(capsys, "tx", "ca", "revoke", serial, *cli)
        assert result.code == 0, result.err
        revoked = result.json()
        assert revoked["code"] == "ok"
        (event,) = [e for e in revoked["events"] if e["type"] == "ca.revoke"]
        crl_job = event["crl_job"]
        r = _until_served(net, f"{net.apis[2]}/v1/ca/crl")
        (tmp_path / "crl.pem").write_text(r.json()["pem"])
        files = [str(tmp_path / n) for n in ("crl.pem", "root.pem", "leaf.pem")]
        out = subprocess.run(
            ["openssl", "verify", "-crl_check", "-CRLfile", files[0], "-CAfile", *files[1:]],
            capture_output=True,
            text=True,
        )
        assert out.returncode != 0 and "revoked" in out.stdout + out.stderr
        # every validator did its part from its own share: three shares for each job
        # (counted in node 0's blocks, once node 0 has the CRL too)
        _until_served(net, f"{net.apis[0]}/v1/ca/crl")
        signed: dict[str, set[int]] = {}
        for h in range(1, net.height(0) + 1):
            block = httpx.get(f"{net.apis[0]}/v1/blocks/{h}", timeout=5).json()
            for tx_hash in block["txs"]:
                doc = httpx.get(f"{net.apis[0]}/v1/txs/{tx_hash}", timeout=5).json()
                for e in doc["events"]:
                    if e["type"] == "ca.share":
                        signed.setdefault(e["serial"], set()).add(e["identifier"])
        # (the validators' own node certificates, asked for by their bootstrap
        # duties, are signed beside these: node.bootstrap)
        assert len(signed[serial]) == 3 and len(signed[crl_job]) == 3, signed
        assert all(len(ids) == 3 for ids in signed.values()), signed
    finally:
        net.stop()
