"""Node identity and peer authentication.

A node *is* its Ed25519 key: the node id is the 32-byte public key of a
:class:`focusflow.core.keys.KeyPair`. Authentication has two halves:

* **Server to client, in TLS.** The QUIC server presents a self-signed X.509
  certificate whose subject key is its node key. The dialer knows the id it
  wants (from the validator set or the peer list) and checks that the
  certificate's key is exactly that id; TLS 1.3 has already proved the server
  holds the private key (CertificateVerify). No certificate authority is
  involved, which is the phase-0 "self-signed" bootstrap of the STOQ design.
* **Client to server, over the first stream.** aioquic does not expose client
  certificates, so the client proves its key by signing a transcript:
  ``b"focusflow-net/1 auth" || server_id || client_id || nonce`` where the
  32-byte nonce is fresh from the server. The server's id in the transcript binds
  the signature to this server (a malicious server cannot relay it to another
  node), and the nonce makes it single-use.
"""

from __future__ import annotations

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import NameOID

from focusflow.core.keys import KeyPair, verify
from focusflow.net.errors import PeerAuthError
from focusflow.net.messages import NONCE_SIZE

AUTH_DOMAIN = b"focusflow-net/1 auth"
ALPN = "focusflow/1"


def node_id_of(key: KeyPair) -> bytes:
    """The node id of a key pair: its raw 32-byte Ed25519 public key."""
    return key.public_key


def short_id(node_id: bytes) -> str:
    """First 8 hex digits of a node id, for logs."""
    return node_id[:4].hex()


def self_signed_certificate(key: KeyPair) -> x509.Certificate:
    """A self-signed X.509 certificate for ``key``, valid for a century.

    Its content other than the key does not matter to peers (they check only the
    key), so it is fixed and the certificate is deterministic for a given key.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key.public_key.hex())])
    start = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.private.public_key())
        .serial_number(int.from_bytes(key.public_key[:16], "big") >> 1 or 1)
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=36500))
        .sign(key.private, None)
    )


def node_id_of_certificate(certificate: x509.Certificate) -> bytes:
    """The node id (raw Ed25519 public key) a peer's certificate carries."""
    public = certificate.public_key()
    if not isinstance(public, Ed25519PublicKey):
        raise PeerAuthError("peer certificate key is not Ed25519")
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_server_certificate(certificate: x509.Certificate | None, expected: bytes) -> None:
    """Raise PeerAuthError unless the server's certificate carries the expected node id."""
    if certificate is None:
        raise PeerAuthError("peer presented no certificate")
    actual = node_id_of_certificate(certificate)
    if actual != expected:
        raise PeerAuthError(
            f"peer key {short_id(actual)} is not the expected node {short_id(expected)}"
        )


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def auth_transcript(server_id: bytes, client_id: bytes, nonce: bytes) -> bytes:
    """The bytes a client signs to prove its key to ``server_id`` (module docstring)."""
    return AUTH_DOMAIN + server_id + client_id + nonce


def sign_auth(key: KeyPair, server_id: bytes, nonce: bytes) -> bytes:
    return key.sign(auth_transcript(server_id, key.public_key, nonce))


def check_auth(server_id: bytes, client_id: bytes, nonce: bytes, signature: bytes) -> None:
    """Raise PeerAuthError unless ``signature`` proves the client holds ``client_id``'s key."""
    if not verify(client_id, signature, auth_transcript(server_id, client_id, nonce)):
        raise PeerAuthError(f"bad auth signature from {short_id(client_id)}")
