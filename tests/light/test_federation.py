"""A root of trust for another network's headers from federation
(``light.federation``): every condition that must hold, and each one broken.

Network B's validators hold node certificates from B's root; the user's
network A vouches for B's root with a cross-certificate. The header is a stand-in
with the two fields the check reads (its time and its validator set); the whole
path through a real testnet and the CLI is in tests/node/test_bootstrap.py.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.light.federation import (
    FederationTrustError,
    certified_validators,
    check_cross,
    require_two_thirds,
    revoked_serials,
)
from focusflow.services.trust.threshold_ca import cross_certify, threshold_crl, threshold_root


def _network(name: str):
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    return key, threshold_root(name, public, key.sign)


def _leaf(
    root: x509.Certificate,
    key: Ed25519PrivateKey,
    node: Ed25519PrivateKey,
    dns: str,
    start: dt.datetime | None = None,
    hours: int = 24,
) -> x509.Certificate:
    start = start or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns)]))
        .issuer_name(root.subject)
        .public_key(node.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=hours))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
        .sign(key, None)
    )


@pytest.fixture
def federation():
    # the time each test runs at: a module-level clock would be minutes old by
    # the time a long suite reaches these tests
    now = dt.datetime.now(dt.UTC)
    a_key, a_root = _network("a")
    b_key, b_root = _network("b")
    nodes = [Ed25519PrivateKey.generate() for _ in range(4)]
    ids = [n.public_key().public_bytes_raw() for n in nodes]
    vset = ValidatorSet.create([Validator(i, p) for i, p in zip(ids, (4, 3, 2, 1), strict=True)])
    block = SimpleNamespace(
        header=SimpleNamespace(time_ms=int(now.timestamp() * 1000), height=7), validators=vset
    )
    certs = {
        i: _leaf(b_root, b_key, n, f"node-{i[:8].hex()}.focus")
        for i, n in zip(ids, nodes, strict=True)
    }
    cross = cross_certify(a_root, a_key.sign, b_root, days=30)
    return SimpleNamespace(
        a_key=a_key, a_root=a_root, b_key=b_key, b_root=b_root, nodes=nodes, ids=ids,
        block=block, certs=certs, cross=cross, now=now,
    )  # fmt: skip


def test_validators_with_certificates_of_the_federated_ca_make_a_header_trusted(federation):
    f = federation
    permitted = check_cross(f.a_root, f.cross, f.now)
    assert permitted is None
    trust = certified_validators(f.block, f.cross, permitted, f.certs, frozenset())
    assert (trust.power, trust.total) == (10, 10) and set(trust.certified) == set(f.ids)
    require_two_thirds(trust, 7)


def test_a_cross_certificate_the_home_root_did_not_sign_is_refused(federation):
    f = federation
    other_key, other_root = _network("mallory")
    forged = cross_certify(other_root, other_key.sign, f.b_root, days=30)
    for bad in (forged, f.b_root):
        with pytest.raises(FederationTrustError):
            check_cross(f.a_root, bad, f.now)
    with pytest.raises(FederationTrustError, match="not valid now"):
        check_cross(f.a_root, f.cross, f.now + dt.timedelta(days=31))


def test_without_two_thirds_of_the_power_certified_the_header_is_refused(federation):
    f = federation
    # the validator of power 4 has no certificate: 6 of 10 is not more than 2/3
    partial = {k: v for k, v in f.certs.items() if k != f.ids[0]}
    trust = certified_validators(f.block, f.cross, None, partial, frozenset())
    assert trust.power == 6
    with pytest.raises(FederationTrustError, match="6 of 10"):
        require_two_thirds(trust, 7)


@pytest.mark.parametrize("broken", ["other_ca", "other_key", "expired", "revoked", "outside"])
def test_a_certificate_that_does_not_hold_does_not_count(federation, broken):
    f = federation
    target = f.ids[0]
    certs = dict(f.certs)
    revoked: frozenset[int] = frozenset()
    permitted = None
    if broken == "other_ca":  # signed by another key under B's name
        certs[target] = _leaf(f.b_root, Ed25519PrivateKey.generate(), f.nodes[0], "n.focus")
    elif broken == "other_key":  # B's certificate, for another node's key
        certs[target] = f.certs[f.ids[1]]
    elif broken == "expired":
        old = f.now - dt.timedelta(days=3)
        certs[target] = _leaf(f.b_root, f.b_key, f.nodes[0], "n.focus", start=old)
    elif broken == "revoked":
        crl = threshold_crl(f.b_root, f.b_key.sign, [certs[target].serial_number])
        revoked = revoked_serials(crl, f.cross)
    else:  # a name outside the cross-certificate's constraints
        f.cross = cross_certify(f.a_root, f.a_key.sign, f.b_root, days=30, permitted_dns=["b.net"])
        permitted = check_cross(f.a_root, f.cross, f.now)
        assert permitted == ["b.net"]
        for i, n in zip(f.ids[1:], f.nodes[1:], strict=True):
            certs[i] = _leaf(f.b_root, f.b_key, n, f"{i[:4].hex()}.b.net")
    trust = certified_validators(f.block, f.cross, permitted, certs, revoked)
    assert target not in trust.certified and trust.power == 6


def test_a_crl_not_signed_by_the_federated_root_is_refused(federation):
    f = federation
    other_key, other_root = _network("b")  # the same name, another key
    crl = threshold_crl(other_root, other_key.sign, [])
    with pytest.raises(FederationTrustError, match="CRL"):
        revoked_serials(crl, f.cross)
