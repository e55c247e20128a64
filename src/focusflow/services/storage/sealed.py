"""Private blobs: Brotli, then AES-256-GCM under a key sealed to each recipient
with ML-KEM-768 (FIPS 203), then Reed-Solomon pieces of which any half restores.

docs/storage.md gives the format byte for byte. In short, a sealed blob is

    "FFSB" | version 1 | u16 recipient count n
    | n x (key id: SHA-256 of the recipient's ML-KEM-768 public key, 32 bytes
           | ML-KEM-768 ciphertext, 1088 bytes
           | the data key wrapped by AES-256-GCM, 48 bytes)
    | nonce, 12 bytes | AES-256-GCM(data key, nonce, brotli(plaintext),
                                   associated data = every byte before it)

The data key is random per blob; each recipient's wrapping key is
HKDF-SHA256 of its ML-KEM shared secret (info: the domain and its key id),
used once, so the wrap's nonce is zero. The header is the body's associated
data: a recipient entry added, dropped or changed fails the body's tag.

Everything read is bounded before it is used: the recipient count (at most
``MAX_RECIPIENTS``), the lengths (they must add up exactly), and the
decompressed size (at most ``max_plain`` bytes: a Brotli bomb stops there).
The primitives are ``cryptography``'s (OpenSSL) and ``brotli``; nothing here
is hand-written cryptography.
"""

from __future__ import annotations

import hashlib
import os
import struct

import brotli
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from focusflow.core.errors import FocusflowError

MAGIC = b"FFSB"
VERSION = 1
KEY_ID = 32
KEM_CIPHERTEXT = 1088  # ML-KEM-768
WRAPPED_KEY = 32 + 16  # AES-256 key and GCM tag
ENTRY = KEY_ID + KEM_CIPHERTEXT + WRAPPED_KEY
NONCE = 12
TAG = 16
MAX_RECIPIENTS = 256
#: Default cap on a blob's plaintext when it is opened (1 GiB).
MAX_PLAIN = 1 << 30
KEK_INFO = b"focusflow sealed blob v1 key wrap"


class SealedBlobError(FocusflowError):
    """A sealed blob that is malformed, not for this key, altered, or too large."""

    code = "sealed_blob_error"


def key_id(public: MLKEM768PublicKey) -> bytes:
    """How a recipient is named in a blob: SHA-256 of its raw public key."""
    return hashlib.sha256(public.public_bytes_raw()).digest()


def _kek(shared_secret: bytes, kid: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=KEK_INFO + kid).derive(shared_secret)


def seal(plaintext: bytes, recipients: list[MLKEM768PublicKey], quality: int = 5) -> bytes:
    """``plaintext`` compressed and encrypted so that each recipient, and no one
    else, can open it."""
    if not 0 < len(recipients) <= MAX_RECIPIENTS:
        raise SealedBlobError(f"a blob has 1 to {MAX_RECIPIENTS} recipients")
    data_key = AESGCM.generate_key(256)
    header = bytearray(MAGIC + bytes([VERSION]) + struct.pack(">H", len(recipients)))
    for public in recipients:
        kid = key_id(public)
        shared, kem_ct = public.encapsulate()
        wrapped = AESGCM(_kek(shared, kid)).encrypt(bytes(NONCE), data_key, kid)
        header += kid + kem_ct + wrapped
    nonce = os.urandom(NONCE)
    aad = bytes(header) + nonce
    body = AESGCM(data_key).encrypt(nonce, brotli.compress(plaintext, quality=quality), aad)
    return aad + body


def recipients_of(blob: bytes) -> list[bytes]:
    """The key ids a blob is sealed to (from its header, checked for shape only)."""
    n = _check_header(blob)
    return [blob[7 + i * ENTRY : 7 + i * ENTRY + KEY_ID] for i in range(n)]


def _check_header(blob: bytes) -> int:
    if len(blob) < 7 or blob[:4] != MAGIC:
        raise SealedBlobError("not a sealed blob")
    if blob[4] != VERSION:
        raise SealedBlobError(f"sealed blob version {blob[4]} is not one this node reads")
    n: int = struct.unpack(">H", blob[5:7])[0]
    if not 0 < n <= MAX_RECIPIENTS:
        raise SealedBlobError(f"a blob has 1 to {MAX_RECIPIENTS} recipients, this one {n}")
    if len(blob) < 7 + n * ENTRY + NONCE + TAG:
        raise SealedBlobError("a sealed blob shorter than its header says")
    return n


def open_sealed(blob: bytes, key: MLKEM768PrivateKey, max_plain: int = MAX_PLAIN) -> bytes:
    """The plaintext of a blob sealed to ``key``; :class:`SealedBlobError` for a
    blob that is not for it, altered in any byte, or over ``max_plain`` bytes open."""
    n = _check_header(blob)
    kid = key_id(key.public_key())
    entries = [blob[7 + i * ENTRY : 7 + (i + 1) * ENTRY] for i in range(n)]
    mine = next((e for e in entries if e[:KEY_ID] == kid), None)
    if mine is None:
        raise SealedBlobError("this blob is not sealed to this key")
    kem_ct = mine[KEY_ID : KEY_ID + KEM_CIPHERTEXT]
    wrapped = mine[KEY_ID + KEM_CIPHERTEXT :]
    try:
        shared = key.decapsulate(kem_ct)
        data_key = AESGCM(_kek(shared, kid)).decrypt(bytes(NONCE), wrapped, kid)
        head = 7 + n * ENTRY + NONCE
        compressed = AESGCM(data_key).decrypt(blob[head - NONCE : head], blob[head:], blob[:head])
    except (InvalidTag, ValueError):
        raise SealedBlobError("the sealed blob does not authenticate with this key") from None
    return _decompress(compressed, max_plain)


def _decompress(data: bytes, max_plain: int) -> bytes:
    d = brotli.Decompressor()
    try:
        # brotli ships no types: its output is bytes.
        out: bytes = d.process(data, output_buffer_limit=max_plain + 1)
    except brotli.error:
        raise SealedBlobError("the sealed blob's content is not Brotli") from None
    if len(out) > max_plain:
        raise SealedBlobError(f"the sealed blob opens to more than {max_plain} bytes")
    if not d.is_finished():
        raise SealedBlobError("the sealed blob's content is a cut Brotli stream")
    return out
