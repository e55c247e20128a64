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

from focusflow.services.trust.frost import FrostError

#: What a threshold signer set does: the 64-byte Ed25519 signature of some bytes.
Signer = Callable[[bytes], bytes]


def _with_signature(cert: x509.Certificate, signature: bytes) -> x509.Certificate:
    der = cert.public_bytes(serialization.Encoding.DER)
    if len(signature) != 64 or der[-64:] != cert.signature:
        raise FrostError("an Ed25519 certificate ends with its 64-byte signature")
    return x509.load_der_x509_certificate(der[:-64] + signature)


def sign_certificate(
    builder: x509.CertificateBuilder, group_public_key: bytes, sign: Signer
) -> x509.Certificate:
    """``builder``'s certificate signed by the threshold group (its issuer):
    ``sign`` is run once, over the ``tbsCertificate`` bytes, and the result is
    checked against ``group_public_key`` before it is returned."""
    draft = builder.sign(Ed25519PrivateKey.generate(), None)  # a throwaway key
    cert = _with_signature(draft, sign(draft.tbs_certificate_bytes))
    try:
        Ed25519PublicKey.from_public_bytes(group_public_key).verify(
            cert.signature, cert.tbs_certificate_bytes
        )
    except InvalidSignature:
        raise FrostError("the threshold signature does not verify with the group key") from None
    return cert


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
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    return sign_certificate(draft, group_public_key, sign)
