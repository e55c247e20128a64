"""Keys, signatures, addresses, and the Merkle list hash they rely on."""

from __future__ import annotations

import os
import random

import pytest

from focusflow.core.errors import InvalidAddressError, KeyFileError
from focusflow.core.hashing import merkle_proof, merkle_root, verify_merkle_proof
from focusflow.core.keys import KeyPair, address_of, decode_address, verify


def test_sign_and_verify():
    key = KeyPair.from_seed(bytes(range(32)))
    sig = key.sign(b"message")
    assert verify(key.public_key, sig, b"message")
    assert not verify(key.public_key, sig, b"messagE")
    other = KeyPair.from_seed(bytes(32))
    assert not verify(other.public_key, sig, b"message")
    assert not verify(key.public_key, sig[:-1], b"message")


def test_rfc8032_test_vector_1():
    # RFC 8032 §7.1, TEST 1: empty message.
    seed = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
    key = KeyPair.from_seed(seed)
    assert key.public_key.hex() == (
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    )
    assert key.sign(b"").hex() == (
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555"
        "fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )


def test_address_round_trip_and_errors():
    key = KeyPair.from_seed(bytes(32))
    addr = address_of(key.public_key)
    assert addr.startswith("focus1")
    assert decode_address(addr) == key.address_raw
    broken = addr[:-1] + ("q" if addr[-1] != "q" else "p")
    for bad in [broken, "cosmos1" + addr[6:], "focus1", 42]:
        with pytest.raises(InvalidAddressError):
            decode_address(bad)


def test_key_file_is_private(tmp_path):
    key = KeyPair.generate()
    path = tmp_path / "keys" / "dev.key"
    key.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert KeyPair.load(path).public_key == key.public_key
    path.write_text("not hex")
    with pytest.raises(KeyFileError):
        KeyPair.load(path)


def test_merkle_list_hash_and_audit_paths():
    # RFC 6962 shape: a one-leaf tree hashes the prefixed leaf.
    import hashlib

    assert merkle_root([b"a"]) == hashlib.sha256(b"\x00a").digest()
    for n in range(1, 20):
        leaves = [bytes([i]) * 3 for i in range(n)]
        root = merkle_root(leaves)
        for i in range(n):
            path = merkle_proof(leaves, i)
            assert verify_merkle_proof(root, leaves[i], i, n, path)
            assert not verify_merkle_proof(root, leaves[i] + b"x", i, n, path)
            if n > 1:
                assert not verify_merkle_proof(root, leaves[i], (i + 1) % n, n, path)


def test_signatures_are_the_bytes_openssl_makes():
    """Signing goes through libsodium; Ed25519 is deterministic, so every signature
    must be byte-identical to OpenSSL's (pyca/cryptography) for the same key and
    message, or signed chain data would change."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    rng = random.Random(20261130)
    for i in range(2000):
        seed = rng.randbytes(32)
        message = rng.randbytes(rng.choice((0, 1, 31, 32, 64, 200, rng.randrange(5000))))
        key = KeyPair.from_seed(seed)
        reference = Ed25519PrivateKey.from_private_bytes(seed)
        assert key.public_key == reference.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        ), i
        assert key.seed == seed and key.secret_key == seed + key.public_key
        assert key.sign(message) == reference.sign(message), (i, seed.hex())
        assert verify(key.public_key, key.sign(message), message)
