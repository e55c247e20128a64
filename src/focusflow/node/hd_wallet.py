"""Ethereum accounts of a BIP-39 mnemonic along a BIP-32 path.

A new devnet funds the accounts of the test mnemonic every Ethereum tool
knows (anvil's and Hardhat's), and prints them at each start. eth-account
derives them too, but importing it takes about a second (its key-file
module loads py_ecc's BLS pairing tables), which every devnet start paid
before serving. The derivation itself is a few hashes and one elliptic-curve
multiplication per level, done here with hashlib and coincurve (libsecp256k1);
the tests check it against eth-account on many paths and against anvil's
published accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata

#: The order of secp256k1's group: child keys are added modulo it.
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HARDENED = 0x80000000


class HdPathError(ValueError):
    """A derivation path that is not ``m/i/j/...`` with ``'`` on hardened steps."""


def seed_of(mnemonic: str, passphrase: str = "") -> bytes:
    """BIP-39: the 64-byte seed of a mnemonic (its words are not checked here)."""
    words = unicodedata.normalize("NFKD", " ".join(mnemonic.split()))
    salt = unicodedata.normalize("NFKD", "mnemonic" + passphrase)
    return hashlib.pbkdf2_hmac("sha512", words.encode(), salt.encode(), 2048)


def parse_path(path: str) -> list[int]:
    """``m/44'/60'/0'/0/3`` as child indices (hardened ones with bit 31 set)."""
    parts = path.split("/")
    if not parts or parts[0] != "m":
        raise HdPathError(f"a derivation path starts with 'm/', not {path!r}")
    out = []
    for part in parts[1:]:
        hardened = part.endswith("'")
        digits = part[:-1] if hardened else part
        if not digits.isdigit() or int(digits) >= _HARDENED:
            raise HdPathError(f"bad step {part!r} in derivation path {path!r}")
        out.append(int(digits) | (_HARDENED if hardened else 0))
    return out


def derive_key(seed: bytes, path: str) -> bytes:
    """BIP-32: the 32-byte private key at ``path`` below the seed's master key."""
    from coincurve import PrivateKey

    node = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain = _valid(int.from_bytes(node[:32], "big"), 0, path), node[32:]
    for index in parse_path(path):
        if index & _HARDENED:
            data = b"\x00" + key
        else:
            data = PrivateKey(key).public_key.format(compressed=True)
        node = hmac.new(chain, data + index.to_bytes(4, "big"), hashlib.sha512).digest()
        key = _valid(int.from_bytes(node[:32], "big"), int.from_bytes(key, "big"), path)
        chain = node[32:]
    return key


def _valid(tweak: int, parent: int, path: str) -> bytes:
    """``tweak + parent`` mod the group order as a key; BIP-32 declares the
    key invalid when the tweak reaches the order or the sum is 0 (odds about
    2^-127 a step), and so does this, rather than give a wrong key."""
    key = (tweak + parent) % _ORDER
    if tweak >= _ORDER or key == 0:
        raise HdPathError(f"derivation path {path!r} meets an invalid key (BIP-32)")
    return key.to_bytes(32, "big")


def eth_address(key: bytes) -> bytes:
    """The 20-byte Ethereum address of a private key: the last 20 bytes of the
    Keccak-256 of its uncompressed public key (without the 0x04 prefix)."""
    from coincurve import PrivateKey
    from eth_hash.auto import keccak

    public = PrivateKey(key).public_key.format(compressed=False)[1:]
    return bytes(keccak(public))[12:]
