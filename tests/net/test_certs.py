"""Certificates on real loopback QUIC connections: a node presenting its network
CA's certificate, peers judging it (``net.certs``), a CA certificate required
of a peer, and links made again when a node's certificates change."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from focusflow.core.errors import DecodeError
from focusflow.core.keys import KeyPair
from focusflow.net import Node, PeerAddress, PeerAuthError
from focusflow.net.certs import NetworkCA, SelfSigned, kind_of
from focusflow.net.identity import self_signed_certificate
from focusflow.net.messages import MAX_CERTIFICATE, Auth, decode_message, encode_message
from tests.net.test_node import run, until

NOW = dt.datetime.now(dt.UTC)


def _root() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def issue(
    root: Ed25519PrivateKey,
    key: KeyPair,
    *,
    start: dt.datetime = NOW - dt.timedelta(hours=1),
    hours: int = 24,
    serial: int = 7,
) -> x509.Certificate:
    """A leaf for ``key`` signed by ``root``, as the network's CA issues one."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "node.focus")]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "network root")]))
        .public_key(key.private.public_key())
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=hours))
        .sign(root, None)
    )


def policy(root, key, *, required=False, revoked=(), cert=None) -> NetworkCA:
    return NetworkCA(
        own=cert or issue(root, key),
        root_key=root.public_key().public_bytes_raw(),
        revoked=lambda serial: serial in revoked,
        required=lambda _node_id: required,
    )


def test_kinds_and_checks_without_a_network() -> None:
    root, key, other = _root(), KeyPair.generate(), KeyPair.generate()
    assert kind_of(key.public_key, self_signed_certificate(key)) == "self"
    assert kind_of(key.public_key, issue(root, key)) == "ca"
    with pytest.raises(PeerAuthError, match="does not carry"):
        kind_of(other.public_key, issue(root, key))
    ca = policy(root, key, revoked={9})
    assert ca.judge(key.public_key, issue(root, key)) == "ca"
    assert ca.judge(key.public_key, None) == "self"
    with pytest.raises(PeerAuthError, match="not signed by the network's CA"):
        ca.judge(key.public_key, issue(_root(), key))
    with pytest.raises(PeerAuthError, match="not valid now"):
        ca.judge(key.public_key, issue(root, key, start=NOW - dt.timedelta(hours=30)))
    with pytest.raises(PeerAuthError, match="not valid now"):
        ca.judge(key.public_key, issue(root, key, start=NOW + dt.timedelta(hours=1)))
    with pytest.raises(PeerAuthError, match="revoked"):
        ca.judge(key.public_key, issue(root, key, serial=9))
    strict = policy(root, key, required=True)
    with pytest.raises(PeerAuthError, match="required"):
        strict.judge(key.public_key, self_signed_certificate(key))
    with pytest.raises(PeerAuthError, match="required"):
        strict.judge(key.public_key, None)
    # a phase-0 node takes any certificate that carries the key
    assert SelfSigned(key).judge(key.public_key, issue(_root(), key)) == "ca"


def test_auth_bounds_the_certificate_it_carries() -> None:
    ok = Auth(b"\x01" * 64, b"\x02" * MAX_CERTIFICATE)
    assert decode_message(encode_message(ok)) == ok
    with pytest.raises(DecodeError, match="certificate over"):
        decode_message(encode_message(Auth(b"\x01" * 64, b"\x02" * (MAX_CERTIFICATE + 1))))


async def _nodes(n: int) -> list[Node]:
    nodes = [Node(KeyPair.generate()) for _ in range(n)]
    for node in nodes:
        await node.start()
    return nodes


def test_both_ends_show_and_judge_the_networks_certificates() -> None:
    async def main() -> None:
        root = _root()
        a, b = await _nodes(2)
        a.set_certificates(policy(root, a.key))
        b.set_certificates(policy(root, b.key))
        await a.connect(b.peer_address)
        await until(lambda: b.id in a.link_certificates() and a.id in b.link_certificates())
        # the dialer's certificate reached the server in Auth, the server's in TLS
        assert a.link_certificates()[b.id] == ("ca", "ca")
        assert b.link_certificates()[a.id] == ("ca", "ca")
        await a.stop()
        await b.stop()

    run(main())


def test_a_required_ca_certificate_refuses_a_self_signed_peer() -> None:
    async def main() -> None:
        root = _root()
        a, b, c = await _nodes(3)
        a.set_certificates(policy(root, a.key, required=True))
        # b dials with its self-signed certificate: a refuses it at Auth
        with pytest.raises(PeerAuthError, match="CA certificate is required"):
            await b.connect(a.peer_address)
        await asyncio.sleep(0.2)
        assert b.id not in a.connected_peers()
        # a dialing b judges b's TLS certificate the same way
        with pytest.raises(PeerAuthError, match="required"):
            await a.connect(b.peer_address)
        # a certificate from another CA is refused too
        c.set_certificates(policy(_root(), c.key))
        with pytest.raises(PeerAuthError, match="not signed"):
            await a.connect(c.peer_address)
        # with the network's certificate b gets in
        b.set_certificates(policy(root, b.key))
        await b.connect(a.peer_address)
        await until(lambda: b.id in a.link_certificates())
        assert a.link_certificates()[b.id] == ("ca", "ca")
        for node in (a, b, c):
            await node.stop()

    run(main())


def test_new_certificates_make_the_links_again() -> None:
    """Linked self-signed, then both get the network's certificates: the old
    link is closed and the static peer dialed again, now CA on both ends."""

    async def main() -> None:
        root = _root()
        b = Node(KeyPair.generate())
        await b.start()
        a = Node(KeyPair.generate(), peers=[PeerAddress(b.id, *b.address)])
        await a.start()
        await until(lambda: b.id in a.link_certificates())
        assert a.link_certificates()[b.id] == ("self", "self")
        b.set_certificates(policy(root, b.key))
        closed = a.set_certificates(policy(root, a.key))
        assert closed == 1
        await until(lambda: a.link_certificates().get(b.id) == ("ca", "ca"), timeout=10)
        await until(lambda: b.link_certificates().get(a.id) == ("ca", "ca"), timeout=10)
        # requiring CA of a peer that still holds one closes nothing
        assert a.set_certificates(policy(root, a.key, required=True)) == 0
        await a.stop()
        await b.stop()

    run(main())


def test_a_link_made_while_the_certificates_change_is_made_again() -> None:
    """b takes the network's certificate while a's connection to it is being
    authenticated (between b's TLS handshake, made with its self-signed
    certificate, and the connection becoming ready). Only ready connections
    are closed at the change, so this one must be caught as it becomes ready:
    else it stays self-signed on b's side for good and phase 3 of the
    bootstrap, every link on the CA's certificates, is never reached."""

    async def main() -> None:
        root = _root()
        b = Node(KeyPair.generate())
        await b.start()
        refuse = b.refuse

        def change_then_refuse(session) -> bool:
            if kind_of(b.id, b.certificates.presented()) == "self":
                assert b.set_certificates(policy(root, b.key)) == 0  # nothing ready yet
            return refuse(session)

        b.refuse = change_then_refuse  # type: ignore[method-assign]
        a = Node(KeyPair.generate(), peers=[PeerAddress(b.id, *b.address)])
        a.set_certificates(policy(root, a.key))
        await a.start()
        await until(lambda: a.link_certificates().get(b.id) == ("ca", "ca"), timeout=10)
        await until(lambda: b.link_certificates().get(a.id) == ("ca", "ca"), timeout=10)
        await a.stop()
        await b.stop()

    run(main())
