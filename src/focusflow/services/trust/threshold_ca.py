"""X.509 certificates signed by a threshold key (FROST over Ed25519).

``cryptography`` signs a certificate only with a private key object it holds,
and a threshold key is held by no one. An Ed25519 signature is always 64
bytes and is the last field of a certificate's DER (the ``signatureValue``
BIT STRING), so the certificate is built and signed with a throwaway key,
its ``tbsCertificate`` bytes are signed by the threshold signers, and the
throwaway signature's 64 bytes are replaced by theirs: the lengths, and so
every other byte, stay the same. The result is checked against the group key
before it is returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from focusflow.services.trust.ca import ca_usage
from focusflow.services.trust.frost import FrostError

#: What a threshold signer set does: the 64-byte Ed25519 signature of some bytes.
Signer = Callable[[bytes], bytes]


def _resigned(der: bytes, old_signature: bytes, tbs: bytes, sign: Signer, group: bytes) -> bytes:
    """``der`` (a certificate or CRL signed by a throwaway Ed25519 key) with the
    threshold group's signature of ``tbs`` in place of its last 64 bytes, checked
    against the group key first."""
    if der[-64:] != old_signature or len(old_signature) != 64:
        raise FrostError("an Ed25519-signed object ends with its 64-byte signature")
    signature = sign(tbs)
    try:
        Ed25519PublicKey.from_public_bytes(group).verify(signature, tbs)
    except (InvalidSignature, ValueError):
        raise FrostError("the threshold signature does not verify with the group key") from None
    return der[:-64] + signature


def sign_certificate(
    builder: x509.CertificateBuilder, group_public_key: bytes, sign: Signer
) -> x509.Certificate:
    """``builder``'s certificate signed by the threshold group (its issuer):
    ``sign`` is run once, over the ``tbsCertificate`` bytes, and the result is
    checked against ``group_public_key`` before it is returned."""
    draft = builder.sign(Ed25519PrivateKey.generate(), None)  # a throwaway key
    der = draft.public_bytes(serialization.Encoding.DER)
    tbs = draft.tbs_certificate_bytes
    return x509.load_der_x509_certificate(
        _resigned(der, draft.signature, tbs, sign, group_public_key)
    )


def threshold_root(
    name: str, group_public_key: bytes, sign: Signer, years: int = 10
) -> x509.Certificate:
    """A self-signed CA root whose key is the threshold group's."""
    public = Ed25519PublicKey.from_public_bytes(group_public_key)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} root")])
    now = dt.datetime.now(dt.UTC)
    draft = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return sign_certificate(draft, group_public_key, sign)


def cross_certify(
    issuer: x509.Certificate,
    sign: Signer,
    other_root: x509.Certificate,
    days: int = 365,
    permitted_dns: list[str] | None = None,
) -> x509.Certificate:
    """Federation: ``issuer``'s network vouches for another network's root.

    The cross-certificate carries the other root's subject and key and is
    signed by ``issuer``'s threshold group, so a verifier that trusts only
    ``issuer`` accepts the other network's certificates through it (as an
    untrusted intermediate). ``permitted_dns`` limits what names the other
    network may certify (RFC 5280 name constraints). Withdrawing the trust is
    revoking this certificate (:func:`threshold_crl`).
    """
    now = dt.datetime.now(dt.UTC)
    builder = cross_builder(
        issuer.subject,
        other_root,
        x509.random_serial_number(),
        now - dt.timedelta(minutes=5),
        days,
        permitted_dns,
    )
    return sign_certificate(builder, _group_key(issuer), sign)


def cross_builder(
    issuer_name: x509.Name,
    other_root: x509.Certificate,
    serial: int,
    not_before: dt.datetime,
    days: int,
    permitted_dns: list[str] | None,
) -> x509.CertificateBuilder:
    """The cross-certificate of ``other_root`` (its subject and key, a CA of
    path length 1), valid ``days`` from ``not_before``, limited to
    ``permitted_dns`` names where given: unsigned, so that the chain's CA
    (``modules.ca``) builds the same bytes on every node and a standalone CA
    signs it at once."""
    other_key = other_root.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(other_root.subject)
        .issuer_name(issuer_name)
        .public_key(other_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(ca_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(other_key), critical=False)
    )
    if permitted_dns:
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in permitted_dns]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=names, excluded_subtrees=None), critical=True
        )
    return builder


def threshold_crl(
    issuer: x509.Certificate, sign: Signer, revoked_serials: list[int], hours: int = 24
) -> x509.CertificateRevocationList:
    """A CRL of ``issuer`` (a threshold root) signed by its group."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(hours=hours))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    draft = builder.sign(Ed25519PrivateKey.generate(), None)  # a throwaway key
    der = draft.public_bytes(serialization.Encoding.DER)
    tbs = draft.tbs_certlist_bytes
    return x509.load_der_x509_crl(_resigned(der, draft.signature, tbs, sign, _group_key(issuer)))


def _group_key(cert: x509.Certificate) -> bytes:
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise FrostError("a threshold CA's key is Ed25519")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
