"""The bootstrap phases (``node.bootstrap``): the rule, and four validator
processes going from self-signed node certificates to phase 3, where every
connection between them carries certificates the network's CA issued."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import dns.message
import dns.query
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from focusflow.core.keys import KeyPair
from focusflow.modules.names import check_name
from focusflow.net.certs import kind_of
from focusflow.node.bootstrap import Bootstrap, ChainView, Conditions, Phase, node_name, phase_of
from focusflow.node.home import Home
from focusflow.services.trust.threshold_ca import cross_certify, threshold_root
from focusflow.testing.testnet import LocalTestnet
from tests.helpers import ROOT


@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=4)))
def test_the_phase_is_the_last_whose_conditions_all_hold(flags):
    c = Conditions(*flags)
    held = 0
    for flag in flags[1:] if flags[0] else ():
        if not flag:
            break
        held += 1
    expected = Phase(held) if flags[0] else Phase.SELF_SIGNED
    assert phase_of(c) == expected
    # falling back is the same rule: losing a condition drops to the phase before it
    for k in range(4):
        lost = Conditions(*(f and i != k for i, f in enumerate(flags)))
        assert phase_of(lost) <= phase_of(c)


def test_node_names_are_valid_names():
    name = node_name(bytes(range(32)))
    assert name == "node-0001020304050607"
    check_name(name)


def test_a_validator_must_show_the_ca_certificate_only_once_it_has():
    """Required of a validator once it has shown one and while its newest is valid
    or revoked: not before (it may lag behind the block that issued it), not after
    it expired (it must catch up to ask again)."""
    me, peer = KeyPair.generate(), KeyPair.generate()
    duty = Bootstrap(me, KeyPair.generate())
    validators = frozenset({me.public_key, peer.public_key})
    none: frozenset = frozenset()

    def view(certified=none, revoked_keys=none) -> ChainView:
        return ChainView(b"k" * 32, None, validators, certified, revoked_keys, none, None, False)

    valid = view(certified=frozenset({peer.public_key}))
    assert not duty._requires(peer.public_key, valid)
    duty.shown.add(peer.public_key)
    assert duty._requires(peer.public_key, valid)
    assert not duty._requires(peer.public_key, view())  # expired
    assert duty._requires(peer.public_key, view(revoked_keys=frozenset({peer.public_key})))
    outsider = KeyPair.generate().public_key
    duty.shown.add(outsider)
    assert not duty._requires(outsider, view(certified=frozenset({outsider})))


def _bootstrap(net: LocalTestnet, k: int) -> dict:
    return httpx.get(f"{net.apis[k]}/v1/bootstrap", timeout=5).json()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_named(net: LocalTestnet, node_ids: list[bytes], p2p: list[str]) -> None:
    """Until every node's name holds its address and every node dials the
    others at those addresses, from their names (bounded)."""
    deadline = time.monotonic() + 60
    while True:
        names = [
            httpx.get(f"{net.apis[0]}/v1/names/{node_name(i)}", timeout=5).json() for i in node_ids
        ]
        dialed = [
            {(p["node_id"], p["address"], p["from"]) for p in _bootstrap(net, k)["peers"]}
            for k in range(4)
        ]
        expected = [
            {(node_ids[j].hex(), p2p[j], "names") for j in range(4) if j != k} for k in range(4)
        ]
        if [n.get("address") for n in names] == p2p and dialed == expected:
            return
        assert time.monotonic() < deadline, (names, dialed, expected)
        time.sleep(0.5)


def _check_dns(net, dns_port: int, node_ids: list[bytes], p2p: list[str], states) -> None:
    """Every validator's name over DNS: its address (A, SRV) and the SHA-256 of
    the public key of the certificate the network's CA issued for it (TLSA
    3 1 1), computed here from the certificate the API serves. The DNS server
    is the restarted validator's, which may be a block behind node 0: asked
    again until it answers as expected (bounded)."""

    def ask(qname: str, rdtype: str) -> list[str]:
        query = dns.message.make_query(qname, rdtype)
        r = dns.query.udp(query, "127.0.0.1", port=dns_port, timeout=5)
        return [rd.to_text() for rrset in r.answer for rd in rrset]

    expected = {}
    for k, node_id in enumerate(node_ids):
        name = f"{node_name(node_id)}.focus."
        host, port = p2p[k].rsplit(":", 1)
        serial = states[k]["certificate"]
        pem = httpx.get(f"{net.apis[0]}/v1/ca/certs/{serial}", timeout=5).json()["pem"]
        spki = (
            x509.load_pem_x509_certificate(pem.encode())
            .public_key()
            .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
        expected[(name, "A")] = [host]
        expected[(f"_focusflow._udp.{name}", "SRV")] = [f"0 0 {port} {name}"]
        expected[(f"_{port}._udp.{name}", "TLSA")] = [f"3 1 1 {hashlib.sha256(spki).hexdigest()}"]
    deadline = time.monotonic() + 30
    while True:
        got = {question: ask(*question) for question in expected}
        if got == expected:
            return
        assert time.monotonic() < deadline, (got, expected)
        time.sleep(0.5)


def _light_sync(
    net: LocalTestnet, home: Path, root: Path, cross: Path
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "focusflow", "light", "sync", "--home", str(home),
               "--node", net.apis[0], "--federated-root", str(root), "--cross", str(cross),
               "--json"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def _federated_light_sync(net: LocalTestnet, tmp_path: Path) -> None:
    """Another network (here a root made in the test) vouches for this one's CA
    with a cross-certificate; a light client that trusts only that other root
    takes this network's newest header as its root of trust, because its
    validators hold certificates from this network's CA, and syncs. A
    cross-certificate from a root the client does not trust, or over another
    network's root, is refused with exit 3 and nothing stored."""
    this_root = x509.load_pem_x509_certificate(
        httpx.get(f"{net.apis[0]}/v1/ca", timeout=5).json()["root_pem"].encode()
    )
    home_key = Ed25519PrivateKey.generate()
    home_root = threshold_root("home", home_key.public_key().public_bytes_raw(), home_key.sign)
    files = {
        "home.pem": home_root,
        "cross.pem": cross_certify(home_root, home_key.sign, this_root, days=30),
    }
    stranger = Ed25519PrivateKey.generate()
    stranger_root = threshold_root("home", stranger.public_key().public_bytes_raw(), stranger.sign)
    files["forged.pem"] = cross_certify(stranger_root, stranger.sign, this_root, days=30)
    elsewhere = Ed25519PrivateKey.generate()
    other = threshold_root("other", elsewhere.public_key().public_bytes_raw(), elsewhere.sign)
    files["other.pem"] = cross_certify(home_root, home_key.sign, other, days=30)
    for name, cert in files.items():
        (tmp_path / name).write_bytes(cert.public_bytes(Encoding.PEM))
    for bad in ("forged.pem", "other.pem"):
        out = _light_sync(net, tmp_path / f"light-{bad}", tmp_path / "home.pem", tmp_path / bad)
        assert out.returncode == 3 and "federation_untrusted" in out.stderr, out.stderr
        assert not (tmp_path / f"light-{bad}" / "light.json").exists()
    out = _light_sync(net, tmp_path / "light", tmp_path / "home.pem", tmp_path / "cross.pem")
    assert out.returncode == 0, out.stderr
    synced = json.loads(out.stdout.strip().splitlines()[-1])
    assert synced["height"] >= 1 and synced["verified_headers"] >= 1


def test_four_validators_reach_phase_three_on_their_own_ca(tmp_path):
    started = time.monotonic()
    net = LocalTestnet(tmp_path / "tn", 4)
    try:
        up = time.monotonic() - started
        deadline = time.monotonic() + 120
        states = [_bootstrap(net, k) for k in range(4)]
        while not all(s["phase"] == 3 for s in states):
            assert time.monotonic() < deadline, f"{states}\n{net.logs()}"
            time.sleep(0.5)
            states = [_bootstrap(net, k) for k in range(4)]
        took = time.monotonic() - started
        ca = httpx.get(f"{net.apis[0]}/v1/ca", timeout=5).json()
        root_key = bytes.fromhex(ca["public_key"])
        ids = set()
        for k, s in enumerate(states):
            assert s["enabled"] and s["name"] == "self-sufficient"
            # phases were reached in order
            reached = [s["reached"][str(p)] for p in range(4)]
            assert reached == sorted(reached)
            # every link to the other three: the network's certificates on both ends
            assert len(s["links"]) == 3, s
            assert all(link["own"] == link["peer_certificate"] == "ca" for link in s["links"])
            # the certificate it presents: issued by the network's CA for its node id
            cert_doc = httpx.get(f"{net.apis[k]}/v1/ca/certs/{s['certificate']}", timeout=5).json()
            cert = x509.load_pem_x509_certificate(cert_doc["pem"].encode())
            node_id = cert.public_key().public_bytes_raw()
            assert kind_of(node_id, cert) == "ca"
            Ed25519PublicKey.from_public_bytes(root_key).verify(
                cert.signature, cert.tbs_certificate_bytes
            )
            ids.add(node_id)
        assert len(ids) == 4
        # the chain goes on with the connections made again under the new certificates
        h = net.height(0)
        net.wait_height(range(4), h + 3, 60)
        net.assert_agree(range(4), h + 3)
        print(f"bootstrap: up in {up:.1f} s, phase 3 on all four {took:.1f} s after start")

        # each node's name says where it listens, and each dials the others where
        # their CA-certified names say
        node_ids = [Home(home).load_node_key().public_key for home in net.homes]
        p2p = [json.loads((home / "config.json").read_text())["p2p"] for home in net.homes]
        _wait_named(net, node_ids, p2p)
        # a light client of this network trusts its headers through federation
        _federated_light_sync(net, tmp_path)

        # A validator that dies: its peers fall back to phase 2 (a link is gone)
        # and refuse nobody they should take; restarted, it takes phase 2 from its
        # stored chain before it dials (its peers require its CA certificate),
        # and all four are back in phase 3.
        net.kill(3)
        deadline = time.monotonic() + 60
        while not all(_bootstrap(net, k)["phase"] == 2 for k in range(3)):
            assert time.monotonic() < deadline, [_bootstrap(net, k) for k in range(3)]
            time.sleep(0.5)
        # it comes back on another port: the others learn it from its name
        config = json.loads((net.homes[3] / "config.json").read_text())
        config["p2p"] = p2p[3] = f"127.0.0.1:{_free_udp_port()}"
        dns_port = _free_udp_port()  # and answers the names over DNS
        config["dns"] = {"listen": f"127.0.0.1:{dns_port}", "zone": "focus"}
        (net.homes[3] / "config.json").write_text(json.dumps(config))
        net.restart(3)
        _wait_named(net, node_ids, p2p)
        _check_dns(net, dns_port, node_ids, p2p, states)
        deadline = time.monotonic() + 90
        while not all(_bootstrap(net, k)["phase"] == 3 for k in range(4)):
            assert time.monotonic() < deadline, f"{[_bootstrap(net, k) for k in range(4)]}"
            time.sleep(0.5)
        back = _bootstrap(net, 3)
        assert back["certificate"] == states[3]["certificate"]
        assert all(link["own"] == link["peer_certificate"] == "ca" for link in back["links"])
        h = net.height(0)
        net.wait_height(range(4), h + 2, 60)
    finally:
        net.stop()
