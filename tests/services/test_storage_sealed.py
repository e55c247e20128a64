"""Private blobs: sealed to ML-KEM-768 recipients, altered in no byte unnoticed,
bounded when opened, and restored from any half of their Reed-Solomon pieces."""

from __future__ import annotations

import itertools
import os
import struct

import brotli
import pytest
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

from focusflow.services.storage import pieces
from focusflow.services.storage.sealed import (
    ENTRY,
    SealedBlobError,
    key_id,
    open_sealed,
    recipients_of,
    seal,
)

#: A blob sealed by this code's first version to the ML-KEM-768 key whose seed
#: is bytes 0..63 (FIPS 203's (d, z)); it must open the same forever, so a
#: change of format is a new version, never a silent one.
VECTOR_SEED = bytes(range(64))
VECTOR_PLAIN = b"focusflow sealed blob test vector"
VECTOR = bytes.fromhex(
    "464653420100010b7934c83125c788995e2ba6bd761e33046b3e40571be53e023309a29f398cc908d6cb05ca"
    "ff95b41839efd57b629f4d911652130b845ce0899cb4604533014d5d2b06464d6d6c2df0aab1336257d12665"
    "0104776a1b41e45046b56ccbd5fa01c71c528c53427aee1d1425a9040b2fadf2cee7a37aace7a664f1c8e8fc"
    "e55868ae43104dd1c1b2cd03f6180aefc9c59b70005b91498f6bf87864d162e4e55664a39d708df3d0f1320c"
    "a2ee0ce5d1dd4d3be363b5addd0620227e35dfcda0f3d2fd4b3a6cb96b1654567edee48f0474292091ed940c"
    "54667240091c71042d0d1dbabffc039b3232b6cd0f5d85573789cc03bd26d008169d2ffdcb6dcd063b41f9eb"
    "68d19e5cfa2270adbd6ce71618d6b6c9f574af6c604c9d794a0c87424a6a9907a50c757ec00b7beb8a590f1b"
    "557898f7765914ad21597cb88f01e52d465d874eaab19824cf1442cb150abfb8649a0ff94795351b5758dfcb"
    "1f5fdf69dd17c014e8612a932ad07ab188012156253e82affbdfd69340aa55132bd0071e408d08fe62b659b4"
    "4d4c4faf7a290a7d30bf99c9419381766bd5f7567c6b3a2185c983f76a59779984fdd7426c542bbbbadbdf04"
    "31be1ec4c02c922c45ecbe139a02c4a1e371633610b1bd1c462b4ca97959adc0abe7c4479bf9b75307a3bf83"
    "5f77d88a7556c9350542ac6e6e14a7c3a188a6e43bb7a66a236d5facaed07e1762181c507bbdea90bb0287c4"
    "1938c11ceef9e2bd4b88b0d231c9e0d29a55d161542b8f09e45be651b240608e150379d28b3f44f3be07de2f"
    "dadb86cb41ad3e361d8c2ca77196ecdb3158b913ec9fcf879f21fc58e54756d890c749cef6665662a96c971e"
    "2354f8653265c350de13e94a9ae2b1f34118a63a9caf943853394dc1d9e07653b1934017e8297bfa1cbc7aa0"
    "aae4cbc7c285288d3d40f95c118204a8e616787c3274a985245713da40d20214d904b0b114ce62a0ecb9d50c"
    "2da048bd04117c6c7589771fe06227db4e9f16860ef785d7cee4fde5dd5e3373dbe64f4cb3cd6b412894ba21"
    "46c34c8ca8e3fbbdb3dbe1b1d92ee67fbbfc28a523227a491b4d2e0bae5c6d89da0037b91fbf582bf34f5bea"
    "be765c2cc8acc6b9113fa57defb61278ee863658d756e19c6fcbf80fc3d0a4c27f5730d70f5af4c74e6e88bc"
    "078318c38aed1a81af16720c5694d753a0a50d0de6c150b735a35ca13737a018a27213cb9ad00bec7b9ee8da"
    "bc41533a293455e3367e57ef2ed9a927ee672e395c349adafbc947215cbbdb2ca876ebbc82ff8e15a01e538c"
    "330d037db939ee2e60523f22a76bca7da63799e0467cbde6c17a1803c1e5c50c16615016d1a5ac5a0ed72636"
    "98e14e4c12da7abcbc9e9facc07e8ae84adc496a9c97e1f9df29e9d4f91fa8075b3540ee24fb0409d54ba8a8"
    "c604a762b0c99d85f48ca740d5db8ebca2c3629cc680ae6ebc2ea2a54eb00b31b0461e2fbc0739500a8a5afd"
    "2cfebbed5415ad8479b8958a2b4dc67604c4d2c4a94dd7e98de67c0f0e42a7e68a56bde5860df32314c68d13"
    "bfac8b79d04ee4382f814f50b673ab4c9bcdb43f0b2be344188a6ab07427195596ecccf31c42a3fcf694bc46"
    "b0887510c6aebb1c50b3259b71e55298a1933f26fbbcbf71d42eb3f6423de9663d93198a4bcc724ce0d6d62a"
    "be087a5b27313a16afd3ee70970711721dcaddfc56ef28f460320bf87f22061784b68b315b73ef28047ac841"
    "5317500a4b8b1f"
)


@pytest.fixture(scope="module")
def keys():
    return [MLKEM768PrivateKey.generate() for _ in range(3)]


def test_the_recorded_vector_opens():
    key = MLKEM768PrivateKey.from_seed_bytes(VECTOR_SEED)
    assert open_sealed(VECTOR, key) == VECTOR_PLAIN
    assert recipients_of(VECTOR) == [key_id(key.public_key())]


def test_each_recipient_opens_and_no_one_else(keys):
    text = os.urandom(2000) + b"words " * 1000
    blob = seal(text, [k.public_key() for k in keys[:2]])
    assert recipients_of(blob) == [key_id(k.public_key()) for k in keys[:2]]
    assert open_sealed(blob, keys[0]) == text and open_sealed(blob, keys[1]) == text
    with pytest.raises(SealedBlobError, match="not sealed to this key"):
        open_sealed(blob, keys[2])
    assert len(blob) < len(text)  # compressed before it is encrypted


def test_every_altered_byte_is_refused(keys):
    blob = seal(b"a short private note", [keys[0].public_key()])
    for i in range(len(blob)):
        altered = bytearray(blob)
        altered[i] ^= 0x01
        with pytest.raises(SealedBlobError):
            open_sealed(bytes(altered), keys[0])


def test_a_recipient_dropped_from_the_header_breaks_the_blob(keys):
    blob = seal(b"for two", [k.public_key() for k in keys[:2]])
    dropped = blob[:5] + struct.pack(">H", 1) + blob[7 : 7 + ENTRY] + blob[7 + 2 * ENTRY :]
    with pytest.raises(SealedBlobError, match="does not authenticate"):
        open_sealed(dropped, keys[0])


def test_shapes_and_bombs_are_refused(keys):
    public = keys[0].public_key()
    blob = seal(b"x", [public])
    for bad in (b"", b"FFSB", b"XXXX" + blob[4:], blob[:4] + b"\x02" + blob[5:]):
        with pytest.raises(SealedBlobError):
            open_sealed(bad, keys[0])
    for n in (0, 257, 2):  # none, over the cap, more than the bytes hold
        with pytest.raises(SealedBlobError):
            open_sealed(blob[:5] + struct.pack(">H", n) + blob[7:], keys[0])
    with pytest.raises(SealedBlobError):
        open_sealed(blob[:-1], keys[0])
    bomb = seal(bytes(10_000_000), [public])  # 10 MB of zeros, a few hundred bytes sealed
    assert len(bomb) < 2000
    with pytest.raises(SealedBlobError, match="more than 1000000 bytes"):
        open_sealed(bomb, keys[0], max_plain=1_000_000)
    assert len(open_sealed(bomb, keys[0])) == 10_000_000
    with pytest.raises(SealedBlobError):
        seal(b"x", [])
    assert brotli.decompress(brotli.compress(b"y")) == b"y"


def test_any_half_of_the_pieces_restores_the_blob(keys):
    blob = seal(os.urandom(5000), [keys[0].public_key()])
    parts = pieces.split(blob, 4)
    assert len(parts) == 8 and len({len(p) for p in parts}) == 1
    for chosen in itertools.combinations(range(8), 4):
        assert pieces.join([parts[i] for i in chosen]) == blob
    assert pieces.join(parts) == blob
    with pytest.raises(SealedBlobError, match="3 of 8 shards present, 4 needed"):
        pieces.join(parts[:3])
    corrupt = bytearray(parts[5])
    corrupt[pieces.HEADER] ^= 1  # restores data shard 3 wrong where the blob is
    with pytest.raises(SealedBlobError, match="a piece is corrupt"):
        pieces.join([parts[0], parts[1], parts[2], bytes(corrupt)])
    other = pieces.split(seal(b"another", [keys[0].public_key()]), 4)
    with pytest.raises(SealedBlobError, match="not of one blob"):
        pieces.join([parts[0], parts[1], parts[2], other[3]])
    for k in (0, 3, 512):
        with pytest.raises(SealedBlobError):
            pieces.split(blob, k)
    tiny = pieces.split(b"z", 1)
    assert pieces.join([tiny[1]]) == b"z"
