"""Which certificate a node presents, and how it judges the one a peer presents.

A node is its Ed25519 key (``identity``), and every certificate it accepts
must carry the peer's node id as its subject key. What differs between the
phases of a network's bootstrap (``node.bootstrap``) is who vouches for that
key:

- ``self``: the peer signed its own certificate (phase 0; what every node
  presents until its network's CA has issued it one). The key alone is checked.
- ``ca``: the network's CA signed it (its root key is in the genesis). The
  signature, the validity period at the time of the check and the serial's
  absence from the revocations are checked.

The server's certificate arrives in TLS. aioquic does not expose a client's
certificate, so the dialer sends its own in the ``Auth`` message (after the
signed transcript that proves it holds the key) and the server judges it the
same way. A policy may require ``ca`` of some peers (``required``): a peer
that then shows ``self`` is refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from focusflow.core.keys import KeyPair
from focusflow.net.errors import PeerAuthError
from focusflow.net.identity import node_id_of_certificate, self_signed_certificate, short_id
from focusflow.net.messages import MAX_CERTIFICATE

CertKind = Literal["self", "ca"]


class CertificatePolicy(Protocol):
    """What a node presents and how it judges peers (module docstring)."""

    def presented(self) -> x509.Certificate:
        """The certificate this node shows in TLS and in ``Auth``."""
        ...

    def judge(self, node_id: bytes, certificate: x509.Certificate | None) -> CertKind:
        """The kind of ``certificate`` for ``node_id``; PeerAuthError when it does
        not carry that key, does not verify, or is not a kind this policy takes
        from that peer. None (a dialer that sent none) is ``self``: its signed
        transcript proved the key."""
        ...


def kind_of(node_id: bytes, certificate: x509.Certificate) -> CertKind:
    """``self`` when ``certificate`` is signed by its own key (the peer's), else
    ``ca``: which one a check must then verify. PeerAuthError when it does not
    carry ``node_id``."""
    if node_id_of_certificate(certificate) != node_id:
        raise PeerAuthError(f"certificate does not carry node id {short_id(node_id)}")
    if certificate.issuer != certificate.subject:
        return "ca"
    try:
        Ed25519PublicKey.from_public_bytes(node_id).verify(
            certificate.signature, certificate.tbs_certificate_bytes
        )
    except InvalidSignature:
        return "ca"
    return "self"


@dataclass
class SelfSigned:
    """Phase 0: present a self-signed certificate, take any that carries the key."""

    key: KeyPair
    _certificate: x509.Certificate | None = field(default=None, repr=False)

    def presented(self) -> x509.Certificate:
        if self._certificate is None:
            self._certificate = self_signed_certificate(self.key)
        return self._certificate

    def judge(self, node_id: bytes, certificate: x509.Certificate | None) -> CertKind:
        if certificate is None:
            return "self"
        return kind_of(node_id, certificate)


@dataclass
class NetworkCA:
    """Present ``own`` (issued by the network's CA) and verify peers' CA
    certificates against ``root_key``; ``required(node_id)`` says whether a
    peer must show one (a validator once every validator holds one).
    ``revoked(serial)`` says whether the chain lists a serial as revoked.
    ``now`` is the clock the validity period is checked against."""

    own: x509.Certificate
    root_key: bytes
    revoked: Callable[[int], bool]
    required: Callable[[bytes], bool] = lambda _node_id: False
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def presented(self) -> x509.Certificate:
        return self.own

    def judge(self, node_id: bytes, certificate: x509.Certificate | None) -> CertKind:
        kind: CertKind = "self" if certificate is None else kind_of(node_id, certificate)
        if kind == "ca":
            assert certificate is not None
            check_issued(certificate, self.root_key, self.revoked, self.now())
        elif self.required(node_id):
            raise PeerAuthError(
                f"peer {short_id(node_id)} shows a self-signed certificate; "
                "the network's CA certificate is required of it"
            )
        return kind


def check_issued(
    certificate: x509.Certificate,
    root_key: bytes,
    revoked: Callable[[int], bool],
    now: dt.datetime,
) -> None:
    """PeerAuthError unless the network's CA (``root_key``, raw Ed25519) signed
    ``certificate``, it is valid at ``now``, and it is not revoked."""
    try:
        Ed25519PublicKey.from_public_bytes(root_key).verify(
            certificate.signature, certificate.tbs_certificate_bytes
        )
    except InvalidSignature:
        raise PeerAuthError("certificate is not signed by the network's CA") from None
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise PeerAuthError(
            f"certificate {certificate.serial_number:x} is not valid now "
            f"({certificate.not_valid_before_utc:%Y-%m-%d %H:%M} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC)"
        )
    if revoked(certificate.serial_number):
        raise PeerAuthError(f"certificate {certificate.serial_number:x} is revoked")


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def load_sent_certificate(der: bytes) -> x509.Certificate | None:
    """The certificate a dialer sent in ``Auth`` (empty: none; its size is
    bounded by ``messages.MAX_CERTIFICATE`` before it is decoded);
    PeerAuthError for one that is not DER."""
    if not der:
        return None
    if len(der) > MAX_CERTIFICATE:
        raise PeerAuthError(f"certificate of {len(der)} bytes (at most {MAX_CERTIFICATE})")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise PeerAuthError("certificate is not DER") from None
