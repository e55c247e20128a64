"""Ed25519 keys, signatures and bech32 addresses.

A neuron (account) is an Ed25519 key pair. Its address is the bech32 encoding
(human-readable part ``focus``) of the first 20 bytes of SHA-256 of the public
key, as Cosmos chains do, so addresses are short, checksummed and can be typed.
Transactions carry the 32-byte public key itself, so a verifier needs no lookup
to check a signature; the address is derived from it.

Signing and verification use libsodium through PyNaCl, which checks a signature
in 125 us where OpenSSL takes 200 us on our 2-core machine (measured 2026-11-22):
verification is the largest cost of admitting a transaction. Every node verifies
with the same library, so two libraries' edge-case rules (small-order keys) can
never split the network. Signing went through pyca/cryptography (OpenSSL) before;
Ed25519 signing is deterministic (RFC 8032), so libsodium's signatures are the
same bytes (tests compare the two over many keys) and only faster (19 against
32 us). The OpenSSL key object is kept for what needs one (TLS certificates).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import bech32
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError as _NaclBadSignature
from nacl.exceptions import ValueError as _NaclValueError

from focusflow.core.errors import InvalidAddressError, InvalidParameterError, KeyFileError
from focusflow.core.hashing import sha256
from focusflow.core.home import write_private_file

HRP = "focus"
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
ADDRESS_SIZE = 20


def address_bytes(public_key: bytes) -> bytes:
    """The 20-byte account id of a public key."""
    return sha256(public_key)[:ADDRESS_SIZE]


def address_of(public_key: bytes) -> str:
    """The bech32 address (``focus1...``) of a public key."""
    return encode_address(address_bytes(public_key))


def encode_address(raw: bytes) -> str:
    words = bech32.convertbits(raw, 8, 5)
    if words is None:  # an entry outside 0..255, which bytes cannot hold
        raise ValueError("address bytes expected")
    return bech32.bech32_encode(HRP, words)


def decode_address(text: object) -> bytes:
    """The 20 raw bytes of a bech32 address; InvalidAddressError names what is wrong."""
    if not isinstance(text, str):
        raise InvalidAddressError(f"invalid address {text!r}: not a string")
    hrp, data = bech32.bech32_decode(text)
    if hrp is None or data is None:
        raise InvalidAddressError(f"invalid address {text!r}: bad bech32 or checksum")
    if hrp != HRP:
        raise InvalidAddressError(f"invalid address {text!r}: prefix {hrp!r}, expected {HRP!r}")
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_SIZE:
        raise InvalidAddressError(f"invalid address {text!r}: not {ADDRESS_SIZE} bytes")
    return bytes(raw)


def parse_account(text: object) -> bytes:
    """The 20 raw bytes of an account written either way a user meets it.

    An account is one set of 20 bytes with two spellings: ``focus1...`` (bech32,
    what the chain prints) and ``0x`` + 40 hex digits (what Ethereum tools and
    contract events print; ``0x`` may be left out). A mixed-case hex spelling is
    an EIP-55 checksum and must match, as web3.py and ethers require; all-lower
    or all-upper carries none. For commands and routes that take an address from
    a person; messages inside transactions keep the one bech32 spelling.
    """
    if not isinstance(text, str):
        raise InvalidAddressError(f"invalid address {text!r}: not a string")
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != 2 * ADDRESS_SIZE or not _is_hex(digits):
        return decode_address(text)
    if digits != digits.lower() and digits != digits.upper():
        from eth_utils import to_checksum_address

        if to_checksum_address("0x" + digits)[2:] != digits:
            raise InvalidAddressError(
                f"invalid address {text!r}: mixed case that is not its EIP-55 checksum "
                f"({to_checksum_address('0x' + digits)})"
            )
    return bytes.fromhex(digits)


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def hex_address(raw: bytes) -> str:
    """The ``0x`` spelling of an account, EIP-55 checksummed."""
    from eth_utils import to_checksum_address

    return str(to_checksum_address(raw))


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
    except (_NaclBadSignature, _NaclValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class KeyPair:
    """A signing key with its public key and address."""

    private: Ed25519PrivateKey
    public_key: bytes
    #: libsodium's secret key (seed then public key), what :meth:`sign` uses.
    secret_key: bytes = field(repr=False, compare=False)

    @classmethod
    def generate(cls) -> KeyPair:
        return cls.from_seed(os.urandom(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> KeyPair:
        """Deterministic key from 32 seed bytes (tests, genesis dev keys)."""
        if len(seed) != 32:
            raise InvalidParameterError("an Ed25519 seed is 32 bytes")
        public, secret = crypto_sign_seed_keypair(bytes(seed))
        return cls(Ed25519PrivateKey.from_private_bytes(seed), public, secret)

    @property
    def seed(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def address(self) -> str:
        return address_of(self.public_key)

    @property
    def address_raw(self) -> bytes:
        return address_bytes(self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes)."""
        return crypto_sign(bytes(message), self.secret_key)[:SIGNATURE_SIZE]

    def save(self, path: Path) -> None:
        """Write the seed as hex to ``path`` readable by the owner only (0600),
        durably (temp, fsync, rename, fsync dir): a crash never leaves a torn key."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private_file(path, self.seed.hex() + "\n")

    @classmethod
    def load(cls, path: Path) -> KeyPair:
        try:
            text = Path(path).read_text().strip()
            return cls.from_seed(bytes.fromhex(text))
        except (OSError, ValueError) as exc:
            raise KeyFileError(f"cannot load key {path}: {exc}") from None
