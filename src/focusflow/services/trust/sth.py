"""Signed tree heads (RFC 6962 §3.5): the log's size and root, signed by the log.

A monitor keeps the newest signed tree head it saw; an inclusion proof is then
checked against a root the log signed, and a consistency proof between two
signed heads shows the log only grew. The signed bytes are RFC 6962's
``TreeHeadSignature`` (version v1, signature type ``tree_hash``, the
timestamp in milliseconds, the tree size, the SHA-256 root), and the
signature is TLS's ``DigitallySigned`` (RFC 5246 §4.7): SHA-256 with ECDSA
over P-256, the DER signature after a two-byte length, so that any RFC 6962
client (and ``openssl dgst -sha256 -verify``) checks it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from focusflow.core.errors import InvalidParameterError

#: RFC 6962's ``Version`` v1 and ``SignatureType`` tree_hash.
V1 = 0
TREE_HASH = 1
#: RFC 5246's HashAlgorithm sha256 and SignatureAlgorithm ecdsa.
SHA256 = 4
ECDSA = 3
#: Longest DER ECDSA P-256 signature (two 33-byte integers and their headers).
MAX_SIGNATURE = 72


class TreeHeadError(InvalidParameterError):
    """A signed tree head that is malformed or whose signature does not verify."""

    code = "bad_tree_head"


def tree_head_input(timestamp_ms: int, tree_size: int, root: bytes) -> bytes:
    """The bytes the log signs: RFC 6962's ``TreeHeadSignature``."""
    if len(root) != 32:
        raise TreeHeadError("a tree head's root is 32 bytes")
    if not (0 <= timestamp_ms < 2**64 and 0 <= tree_size < 2**64):
        raise TreeHeadError("a tree head's timestamp and size are unsigned 64-bit")
    return struct.pack(">BBQQ", V1, TREE_HASH, timestamp_ms, tree_size) + root


@dataclass(frozen=True)
class SignedTreeHead:
    tree_size: int
    timestamp_ms: int
    root: bytes
    #: TLS ``DigitallySigned``: hash and signature algorithm, length, DER signature.
    signature: bytes

    def signed_bytes(self) -> bytes:
        return tree_head_input(self.timestamp_ms, self.tree_size, self.root)

    def der_signature(self) -> bytes:
        """The DER ECDSA signature inside the ``DigitallySigned`` struct."""
        sig = self.signature
        if len(sig) < 4 or sig[0] != SHA256 or sig[1] != ECDSA:
            raise TreeHeadError("a tree head signature is SHA-256 with ECDSA")
        (length,) = struct.unpack(">H", sig[2:4])
        if length != len(sig) - 4 or not 0 < length <= MAX_SIGNATURE:
            raise TreeHeadError("a tree head signature's length does not match its bytes")
        return sig[4:]

    def to_json(self) -> dict[str, Any]:
        """RFC 6962's ``get-sth`` answer (hex instead of base64, like our proofs)."""
        return {
            "tree_size": self.tree_size,
            "timestamp": self.timestamp_ms,
            "sha256_root_hash": self.root.hex(),
            "tree_head_signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, doc: Any) -> SignedTreeHead:
        try:
            return cls(
                int(doc["tree_size"]),
                int(doc["timestamp"]),
                bytes.fromhex(doc["sha256_root_hash"]),
                bytes.fromhex(doc["tree_head_signature"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TreeHeadError(f"not a signed tree head: {exc}") from None


def sign_tree_head(
    key: ec.EllipticCurvePrivateKey, tree_size: int, timestamp_ms: int, root: bytes
) -> SignedTreeHead:
    der = key.sign(tree_head_input(timestamp_ms, tree_size, root), ec.ECDSA(hashes.SHA256()))
    signature = struct.pack(">BBH", SHA256, ECDSA, len(der)) + der
    return SignedTreeHead(tree_size, timestamp_ms, root, signature)


def verify_tree_head(sth: SignedTreeHead, public: ec.EllipticCurvePublicKey) -> None:
    """Raise :class:`TreeHeadError` unless the log's key signed exactly this head."""
    try:
        public.verify(sth.der_signature(), sth.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise TreeHeadError("the tree head's signature does not verify") from None
