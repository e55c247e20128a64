"""The ML-KEM-768 keys private blobs are sealed to, and how a user names them.

A wallet key (Ed25519, under ``<home>/keys``, passphrase-encrypted) is also a
sealing key: its ML-KEM-768 key pair is derived from its seed with HKDF-SHA256
(info ``KEM_INFO``, 64 bytes: the ``d || z`` seed FIPS 203 key generation
takes). So there is no second secret to store, back up or encrypt: the
passphrase that guards the wallet key guards what is sealed to it, and a wallet
restored from its seed opens the blobs sealed to it.

A public key travels as 2,368 hex digits (1,184 bytes), on the command line or
in a file holding them (``focusflow keys kem NAME > NAME.kem``).
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from focusflow.core.errors import InvalidParameterError
from focusflow.core.keys import KeyPair
from focusflow.services.storage.sealed import MAGIC, key_id

KEM_INFO = b"focusflow ML-KEM-768 sealing key v1"
PUBLIC_KEY_BYTES = 1184
SEED_BYTES = 64
#: A file named for a public key is read up to this many bytes (the hex and a newline or two).
_KEY_FILE_MAX = 4 * PUBLIC_KEY_BYTES


def kem_key(wallet: KeyPair) -> MLKEM768PrivateKey:
    """The ML-KEM-768 private key of a wallet key (derived, never stored)."""
    seed = HKDF(hashes.SHA256(), SEED_BYTES, salt=None, info=KEM_INFO).derive(wallet.seed)
    return MLKEM768PrivateKey.from_seed_bytes(seed)


def public_hex(public: MLKEM768PublicKey) -> str:
    return public.public_bytes_raw().hex()


def key_id_hex(public: MLKEM768PublicKey) -> str:
    """The short name a sealed blob's header gives the recipient (SHA-256 of the key)."""
    return key_id(public).hex()


def parse_public(text: str) -> MLKEM768PublicKey:
    """A recipient's public key: its hex, or the path of a file holding its hex.

    InvalidParameterError, naming what was wrong, for anything else."""
    value = text.strip()
    if len(value) != 2 * PUBLIC_KEY_BYTES:
        path = Path(text)
        if not path.is_file():
            raise InvalidParameterError(
                f"--seal {_short(text)}: neither an ML-KEM-768 public key "
                f"({2 * PUBLIC_KEY_BYTES} hex digits) nor a file holding one"
            )
        try:
            with path.open("rb") as f:
                value = f.read(_KEY_FILE_MAX + 1).decode("ascii", "replace").strip()
        except OSError as exc:
            raise InvalidParameterError(f"--seal {path}: {exc.strerror or exc}") from None
        if len(value) != 2 * PUBLIC_KEY_BYTES:
            raise InvalidParameterError(
                f"--seal {path}: the file does not hold an ML-KEM-768 public key "
                f"({2 * PUBLIC_KEY_BYTES} hex digits)"
            )
    try:
        raw = bytes.fromhex(value)
        return MLKEM768PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidParameterError(
            f"--seal {_short(text)}: not a valid ML-KEM-768 public key"
        ) from None


def looks_sealed(head: bytes) -> bool:
    """Whether a blob's first bytes are a sealed blob's (its format's magic)."""
    return head[: len(MAGIC)] == MAGIC


def _short(text: str) -> str:
    return text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
