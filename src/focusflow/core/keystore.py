"""The wallet: named Ed25519 keys in a directory, encrypted with a passphrase.

One key is one file ``<dir>/<name>.json`` (dir 0700, file 0600, written to a
temporary file and moved into place so a crash never leaves half a key). The
file is JSON, version 1::

    {
      "version": 1,
      "name": "alice",                      # the file's name without .json
      "address": "focus1...",               # bech32 address of public_key
      "public_key": "<64 hex>",             # Ed25519 public key
      "encrypted": true,
      "crypto": {
        "kdf": "scrypt",
        "kdfparams": {"n": 131072, "r": 8, "p": 1, "salt": "<32 hex>"},
        "check": "<64 hex>",                # SHA-256 of the second half of the KDF output
        "cipher": "chacha20-poly1305",
        "nonce": "<24 hex>",
        "ciphertext": "<96 hex>"            # the 32-byte seed, sealed, with its 16-byte tag
      }
    }

or, written only on explicit request (the devnet's funded ``dev`` key, scripts),
``"encrypted": false`` and ``"seed": "<64 hex>"`` instead of ``crypto``.

Why these choices:

* scrypt (n=2**17, r=8, p=1: 128 MiB and about 0.4-0.8 s per try, OWASP's
  minimum for scrypt) makes guessing a passphrase from a stolen file
  expensive. Files keep their own parameters, so a file written with the old
  n=2**15 still opens. It is the KDF of Ethereum's keystore v3 and in
  ``cryptography``, which we already depend on. The passphrase is
  NFKC-normalised UTF-8 so the same words typed on two systems open the file.
* The KDF gives 64 bytes: the first 32 are the ChaCha20-Poly1305 key, the hash
  of the last 32 is ``check``. So a wrong passphrase (``check`` differs) is told
  apart from a damaged or tampered file (``check`` matches, the AEAD tag does
  not), which a bare AEAD cannot do. ``check`` reveals nothing about the key.
* The public fields (name, address, public key) are the AEAD's associated
  data, so a file whose address or name was edited to pass as another key does
  not open; :meth:`Keystore.info` also checks that the address belongs to the
  public key, so even ``keys list`` notices such an edit without a passphrase.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from focusflow.core.encoding import encode
from focusflow.core.errors import (
    InvalidParameterError,
    KeyExistsError,
    KeyFileError,
    UnknownKeyError,
    WrongPassphraseError,
)
from focusflow.core.hashing import sha256
from focusflow.core.home import fsync_dir
from focusflow.core.keys import KeyPair, address_of

VERSION = 1
#: scrypt cost of every newly written file.
SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
#: Test suites only: a power of two from 2**10 up that replaces SCRYPT_N for new
#: files when set, so that tests creating many keys stay fast. Never set it for a
#: real wallet; unset (the default), new files get SCRYPT_N.
ENV_TEST_SCRYPT_N = "FOCUSFLOW_INSECURE_TEST_SCRYPT_N"
MIN_TEST_SCRYPT_N = 2**10
#: Largest scrypt cost a file may ask for (1 GiB of memory at r=8): a hostile
#: file must not make ``load`` allocate without bound.
MAX_SCRYPT_MEMORY = 1 << 30
MAX_FILE_BYTES = 64 << 10
AAD_DOMAIN = "focusflow/keystore/v1"
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def check_key_name(name: str) -> str:
    """``name`` unchanged if it can name a key file, else InvalidParameterError."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise InvalidParameterError(f"invalid key name {name!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
    return name


@dataclass(frozen=True)
class KeyInfo:
    """What the wallet tells about a key without its passphrase."""

    name: str
    address: str
    public_key: bytes
    encrypted: bool


def default_scrypt_n() -> int:
    """The scrypt cost of new files: SCRYPT_N, unless a test suite set ENV_TEST_SCRYPT_N."""
    raw = os.environ.get(ENV_TEST_SCRYPT_N, "")
    if not raw:
        return SCRYPT_N
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < MIN_TEST_SCRYPT_N or n & (n - 1):
        raise InvalidParameterError(
            f"${ENV_TEST_SCRYPT_N} must be a power of two >= {MIN_TEST_SCRYPT_N}, got {raw!r}"
        )
    return n


class Keystore:
    """The key files under one directory (``<home>/keys`` for the CLI and devnet).

    ``scrypt_n`` is the cost of files this store writes (default
    :func:`default_scrypt_n`); files are read with the parameters they name.
    """

    def __init__(self, path: Path, *, scrypt_n: int | None = None) -> None:
        self.path = Path(path)
        self.scrypt_n = default_scrypt_n() if scrypt_n is None else scrypt_n

    # ----------------------------------------------------------------- reading

    def file_of(self, name: str) -> Path:
        return self.path / f"{check_key_name(name)}.json"

    def exists(self, name: str) -> bool:
        return self.file_of(name).is_file()

    def info(self, name: str) -> KeyInfo:
        """The public fields of a key, checked for consistency (address = key's)."""
        return _info(self._read(name), self.file_of(name))

    def list(self) -> list[KeyInfo]:
        """Every key, sorted by name; a corrupt file raises KeyFileError naming it."""
        if not self.path.is_dir():
            return []
        names = sorted(
            entry[: -len(".json")]
            for entry in os.listdir(self.path)
            if entry.endswith(".json") and NAME_PATTERN.fullmatch(entry[: -len(".json")])
        )
        return [self.info(name) for name in names]

    def load(self, name: str, passphrase: str | None = None) -> KeyPair:
        """The key pair; WrongPassphraseError if encrypted and the passphrase fails."""
        path = self.file_of(name)
        doc = self._read(name)
        info = _info(doc, path)
        if info.encrypted:
            if passphrase is None:
                raise WrongPassphraseError(f"key {name!r} is encrypted: a passphrase is needed")
            seed = _open(doc, info, passphrase, path)
        else:
            seed = _hex(doc.get("seed"), 32, "seed", path)
        key = KeyPair.from_seed(seed)
        if key.public_key != info.public_key:
            raise KeyFileError(f"key file {path}: the seed does not match the public key")
        return key

    # ----------------------------------------------------------------- writing

    def add(self, name: str, key: KeyPair, passphrase: str | None) -> KeyInfo:
        """Store ``key`` as ``name``; encrypted unless ``passphrase`` is None.

        Raises KeyExistsError rather than overwrite: a lost seed is lost funds.
        """
        path = self.file_of(name)
        if passphrase is not None and passphrase == "":
            raise InvalidParameterError(
                "an empty passphrase encrypts nothing; store the key unencrypted explicitly"
            )
        info = KeyInfo(name, key.address, key.public_key, passphrase is not None)
        doc: dict[str, Any] = {
            "version": VERSION,
            "name": name,
            "address": info.address,
            "public_key": info.public_key.hex(),
            "encrypted": info.encrypted,
        }
        if passphrase is None:
            doc["seed"] = key.seed.hex()
        else:
            doc["crypto"] = _seal(key.seed, info, passphrase, self.scrypt_n)
        self._write_new(path, (json.dumps(doc, indent=2) + "\n").encode())
        return info

    def delete(self, name: str) -> None:
        path = self.file_of(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise UnknownKeyError(f"no key named {name!r} in {self.path}") from None

    # ----------------------------------------------------------------- files

    def _read(self, name: str) -> dict[str, Any]:
        path = self.file_of(name)
        try:
            with open(path, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise UnknownKeyError(f"no key named {name!r} in {self.path}") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from None
        if len(raw) > MAX_FILE_BYTES:
            raise KeyFileError(f"key file {path}: larger than {MAX_FILE_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise KeyFileError(f"key file {path}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise KeyFileError(f"key file {path}: not a JSON object")
        if doc.get("version") != VERSION:
            raise KeyFileError(f"key file {path}: unknown version {doc.get('version')!r}")
        if doc.get("name") != name:
            raise KeyFileError(f"key file {path}: holds key {doc.get('name')!r}, not {name!r}")
        return doc

    def _write_new(self, path: Path, data: bytes) -> None:
        """Create ``path`` with ``data`` (0600) atomically, never replacing a file."""
        self._ensure_dir()
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            try:
                # A hard link is an atomic create-if-absent; os.replace would clobber a
                # key added by another process between our check and our rename.
                os.link(tmp, path)
            except FileExistsError:
                raise KeyExistsError(f"a key named {path.stem!r} already exists") from None
            except OSError:
                if path.exists():
                    raise KeyExistsError(f"a key named {path.stem!r} already exists") from None
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        fsync_dir(self.path)

    def _ensure_dir(self) -> None:
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.path.stat().st_mode & 0o077:
            os.chmod(self.path, 0o700)


# --------------------------------------------------------------------- helpers


def _info(doc: dict[str, Any], path: Path) -> KeyInfo:
    public_key = _hex(doc.get("public_key"), 32, "public_key", path)
    address = doc.get("address")
    if address != address_of(public_key):
        raise KeyFileError(f"key file {path}: address {address!r} is not the public key's")
    encrypted = doc.get("encrypted")
    if not isinstance(encrypted, bool):
        raise KeyFileError(f"key file {path}: 'encrypted' must be true or false")
    return KeyInfo(doc["name"], address, public_key, encrypted)


def _aad(info: KeyInfo) -> bytes:
    return encode([AAD_DOMAIN, VERSION, info.name, info.address, info.public_key])


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> tuple[bytes, bytes]:
    """(cipher key, check) from the passphrase."""
    secret = unicodedata.normalize("NFKC", passphrase).encode("utf-8")
    out = Scrypt(salt=salt, length=64, n=n, r=r, p=p).derive(secret)
    return out[:32], sha256(out[32:])


def _seal(seed: bytes, info: KeyInfo, passphrase: str, n: int) -> dict[str, Any]:
    salt = os.urandom(16)
    nonce = os.urandom(12)
    key, check = _derive(passphrase, salt, n, SCRYPT_R, SCRYPT_P)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, seed, _aad(info))
    return {
        "kdf": "scrypt",
        "kdfparams": {"n": n, "r": SCRYPT_R, "p": SCRYPT_P, "salt": salt.hex()},
        "check": check.hex(),
        "cipher": "chacha20-poly1305",
        "nonce": nonce.hex(),
        "ciphertext": ciphertext.hex(),
    }


def _open(doc: dict[str, Any], info: KeyInfo, passphrase: str, path: Path) -> bytes:
    crypto = doc.get("crypto")
    if not isinstance(crypto, dict):
        raise KeyFileError(f"key file {path}: encrypted but has no 'crypto' object")
    if crypto.get("kdf") != "scrypt" or crypto.get("cipher") != "chacha20-poly1305":
        raise KeyFileError(
            f"key file {path}: unsupported kdf/cipher {crypto.get('kdf')!r}/"
            f"{crypto.get('cipher')!r}"
        )
    params = crypto.get("kdfparams")
    if not isinstance(params, dict):
        raise KeyFileError(f"key file {path}: missing kdfparams")
    n, r, p = params.get("n"), params.get("r"), params.get("p")
    if not (
        type(n) is int
        and type(r) is int
        and type(p) is int
        and r > 0
        and p > 0
        and n > 1
        and n & (n - 1) == 0
        and 128 * n * r <= MAX_SCRYPT_MEMORY
        and p <= 16
    ):
        raise KeyFileError(f"key file {path}: scrypt parameters out of range")
    salt = _hex(params.get("salt"), 16, "kdfparams.salt", path)
    nonce = _hex(crypto.get("nonce"), 12, "nonce", path)
    check = _hex(crypto.get("check"), 32, "check", path)
    ciphertext = _hex(crypto.get("ciphertext"), 48, "ciphertext", path)
    key, expected = _derive(passphrase, salt, n, r, p)
    if not hmac.compare_digest(check, expected):
        raise WrongPassphraseError(f"wrong passphrase for key {info.name!r}")
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, ciphertext, _aad(info))
    except InvalidTag:
        raise KeyFileError(
            f"key file {path}: the passphrase is right but the sealed seed or the "
            "public fields were altered"
        ) from None


def _hex(value: object, size: int, what: str, path: Path) -> bytes:
    if isinstance(value, str):
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            pass
        else:
            if len(raw) == size:
                return raw
    raise KeyFileError(f"key file {path}: {what} must be {size} bytes of hex")
