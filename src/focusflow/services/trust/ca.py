"""A standalone certificate authority with a transparency log, in one directory.

For tests and private deployments (``focusflow ca``): a root and an
intermediate (ECDSA P-256, X.509 v3 through ``cryptography``) under
``DIR/ca/``, short-lived leaf certificates issued by the intermediate,
revocation and CRLs, and every issued certificate appended to an RFC 6962
log (``ctlog``) under ``DIR/ct/``. The network's own CA, whose issuance is
decided on chain, is not this module's: this one is the X.509 and log
machinery it needs, usable on its own.

Files: ``ca/root.pem``, ``ca/intermediate.pem`` (certificates),
``ca/root.key``, ``ca/intermediate.key`` (PKCS#8, mode 0600), ``ca/index.json``
(each issued serial: name, expiry, leaf index in the log, revocation time),
``ct/entries.bin`` (the log's entries, the DER of each certificate, length
prefixed, appended and flushed with ``fsync`` before the index names them).
A crash mid-append leaves a torn last entry, which is no entry and is cut off
by the next append; a crash between the append and the index leaves a logged
certificate the index does not name (logged, never handed out).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from focusflow.core.errors import InputFileError, InvalidParameterError
from focusflow.services.trust.ctlog import MerkleLog, leaf_hash
from focusflow.services.trust.sth import SignedTreeHead, sign_tree_head

#: Lifetime of a leaf certificate unless asked otherwise: short, as step-ca's.
LEAF_HOURS = 24
#: Longest a leaf may be asked to live.
MAX_LEAF_HOURS = 24 * 90
ROOT_YEARS = 10
INTERMEDIATE_YEARS = 5
#: How long a CRL is current.
CRL_HOURS = 24
#: Longest certificate name (a DNS name's limit).
MAX_NAME = 253
#: Largest certificate file read.
MAX_CERT_BYTES = 64 * 1024


class CaError(InvalidParameterError):
    """A CA operation that cannot be done (no CA, one already there, an unknown
    certificate)."""

    code = "ca_error"


@dataclass(frozen=True)
class Issued:
    serial: int
    name: str
    leaf_index: int
    cert_pem: bytes
    key_pem: bytes


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise InvalidParameterError(f"a certificate name is 1..{MAX_NAME} characters")
    if not all(c.isalnum() or c in "-._" for c in name) or name[0] in "-.":
        raise InvalidParameterError(
            f"a certificate name is a DNS-style name (letters, digits, '-', '.', '_'): {name!r}"
        )
    return name


class StandaloneCa:
    """The CA under ``home``: ``init`` creates it, ``open`` reads it.

    One operator's CA in one directory, its issuance decided by whoever holds
    its keys (``focusflow ca``, tests, private deployments); the network's CA,
    whose issuance the chain decides, is the chain module
    ``modules.ca.NetworkCa``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.ca_dir = self.home / "ca"
        self.ct_dir = self.home / "ct"
        self.entries_path = self.ct_dir / "entries.bin"
        self.index_path = self.ca_dir / "index.json"

    # --- creation and loading ------------------------------------------------
    @classmethod
    def init(cls, home: Path, name: str = "focusflow") -> StandaloneCa:
        ca = cls(home)
        if (ca.ca_dir / "root.pem").exists():
            raise CaError(f"{ca.ca_dir}: a CA is there already")
        ca.ca_dir.mkdir(parents=True, exist_ok=True)
        ca.ct_dir.mkdir(parents=True, exist_ok=True)
        now = _now()
        root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name(f"{_check_name(name)} root")
        root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * ROOT_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False
            )
            .sign(root_key, hashes.SHA256())
        )
        inter_key = ec.generate_private_key(ec.SECP256R1())
        inter = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} intermediate"))
            .issuer_name(root_name)
            .public_key(inter_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * INTERMEDIATE_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(ca_usage(), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        _write_private(ca.ca_dir / "root.key", _key_pem(root_key))
        _write_private(ca.ca_dir / "intermediate.key", _key_pem(inter_key))
        (ca.ca_dir / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
        (ca.ca_dir / "intermediate.pem").write_bytes(inter.public_bytes(serialization.Encoding.PEM))
        ca._save_index({})
        ca.entries_path.touch()
        ca.log_key()
        return ca

    @classmethod
    def open(cls, home: Path) -> StandaloneCa:
        ca = cls(home)
        if not (ca.ca_dir / "root.pem").exists():
            raise CaError(f"{ca.ca_dir}: no CA here (run focusflow ca init --home {home})")
        return ca

    def _load_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key((self.ca_dir / name).read_bytes(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def _load_cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.ca_dir / name).read_bytes())

    @property
    def root(self) -> x509.Certificate:
        return self._load_cert("root.pem")

    @property
    def intermediate(self) -> x509.Certificate:
        return self._load_cert("intermediate.pem")

    def _index(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = json.loads(self.index_path.read_text())
        return data

    def _save_index(self, index: dict[str, dict[str, Any]]) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        tmp.replace(self.index_path)

    # --- the log ---------------------------------------------------------------
    def _read_entries(self) -> tuple[list[bytes], int]:
        """The logged entries and the byte length of the whole ones (a torn
        last entry, from a crash mid-append, is not one)."""
        raw = self.entries_path.read_bytes()
        out, at = [], 0
        while at + 4 <= len(raw):
            size = int.from_bytes(raw[at : at + 4], "big")
            if at + 4 + size > len(raw):
                break
            out.append(raw[at + 4 : at + 4 + size])
            at += 4 + size
        return out, at

    def entries(self) -> list[bytes]:
        """Every logged certificate's DER, in log order."""
        return self._read_entries()[0]

    def log(self) -> MerkleLog:
        return MerkleLog(leaf_hash(e) for e in self.entries())

    def _append_entry(self, der: bytes) -> int:
        """Append ``der`` after the last whole entry (a torn tail is cut first);
        returns its leaf index once it is on disk."""
        entries, end = self._read_entries()
        with self.entries_path.open("r+b") as fh:
            fh.truncate(end)
            fh.seek(end)
            fh.write(len(der).to_bytes(4, "big") + der)
            fh.flush()
            os.fsync(fh.fileno())
        return len(entries)

    # --- issuing and revoking --------------------------------------------------
    def issue(self, name: str, hours: int = LEAF_HOURS) -> Issued:
        """A leaf certificate for ``name`` (server and client auth), logged."""
        _check_name(name)
        if not (isinstance(hours, int) and 1 <= hours <= MAX_LEAF_HOURS):
            raise InvalidParameterError(f"a leaf lives 1..{MAX_LEAF_HOURS} hours, got {hours}")
        inter = self.intermediate
        inter_key = self._load_key("intermediate.key")
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        serial = int.from_bytes(secrets.token_bytes(16), "big") >> 1
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(inter.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=hours))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(inter_key.public_key()),
                critical=False,
            )
            .sign(inter_key, hashes.SHA256())
        )
        der = cert.public_bytes(serialization.Encoding.DER)
        leaf = self._append_entry(der)
        index = self._index()
        index[str(serial)] = {
            "name": name,
            "not_after": cert.not_valid_after_utc.isoformat(),
            "leaf_index": leaf,
            "revoked": None,
        }
        self._save_index(index)
        return Issued(
            serial, name, leaf, cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)
        )

    def known(self, cert: x509.Certificate) -> dict[str, Any]:
        """The index entry of a certificate this CA issued (CaError otherwise)."""
        entry = self._index().get(str(cert.serial_number))
        if entry is None or cert.issuer != self.intermediate.subject:
            raise CaError(f"certificate serial {cert.serial_number:x} was not issued by this CA")
        return entry

    def revoke(self, cert: x509.Certificate) -> None:
        index = self._index()
        entry = self.known(cert)
        if entry["revoked"] is not None:
            raise CaError(f"certificate serial {cert.serial_number:x} is revoked already")
        entry["revoked"] = _now().isoformat()
        index[str(cert.serial_number)] = entry
        self._save_index(index)

    def crl(self) -> bytes:
        """A CRL of every revoked certificate, signed by the intermediate (PEM)."""
        inter = self.intermediate
        key = self._load_key("intermediate.key")
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(inter.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(hours=CRL_HOURS))
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),
                critical=False,
            )
        )
        for serial, entry in sorted(self._index().items(), key=lambda kv: int(kv[0])):
            if entry["revoked"] is not None:
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial))
                    .revocation_date(dt.datetime.fromisoformat(entry["revoked"]))
                    .build()
                )
                builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM)

    def inclusion(self, cert: x509.Certificate) -> dict[str, Any]:
        """The log's proof that ``cert`` is in it, at the current tree size."""
        entry = self.known(cert)
        log = self.log()
        index = int(entry["leaf_index"])
        return {
            "leaf_index": index,
            "tree_size": log.size,
            "root_hash": log.root().hex(),
            "audit_path": [p.hex() for p in log.inclusion_proof(index)],
        }

    def log_key(self) -> ec.EllipticCurvePrivateKey:
        """The log's own signing key (``ct/log.key``; its public half
        ``ct/log_pub.pem`` is what monitors pin), made on first use, so a CA
        made before the log signed its heads gets one then. O_EXCL: of two
        processes making it at once, the second reads the first's."""
        path = self.ct_dir / "log.key"
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            with contextlib.suppress(FileExistsError):
                _write_private(path, _key_pem(key))
                public = key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
                (self.ct_dir / "log_pub.pem").write_bytes(public)
        loaded = serialization.load_pem_private_key(path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return loaded

    def signed_tree_head(self, timestamp_ms: int | None = None) -> SignedTreeHead:
        """The log's current size and root, signed by its key (RFC 6962 §3.5)."""
        log = self.log()
        now = int(_now().timestamp() * 1000) if timestamp_ms is None else timestamp_ms
        return sign_tree_head(self.log_key(), log.size, now, log.root())

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        log = self.log()
        if not (0 <= first <= second <= log.size):
            raise InvalidParameterError(
                f"sizes must satisfy 0 <= first <= second <= {log.size}, got {first}, {second}"
            )
        return {
            "first": first,
            "second": second,
            "first_root": log.root(first).hex(),
            "second_root": log.root(second).hex(),
            "proof": [p.hex() for p in log.consistency_proof(first, second)],
        }


def ca_usage() -> x509.KeyUsage:
    """A CA certificate's key usage (RFC 5280 4.2.1.3): certificates, CRLs, and
    digital signatures (OCSP responses and the like)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def read_certificate(path: Path) -> x509.Certificate:
    """A PEM certificate file, bounded and parsed, or InputFileError."""
    try:
        raw = Path(path).read_bytes()[: MAX_CERT_BYTES + 1]
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read: {exc.strerror}") from None
    if len(raw) > MAX_CERT_BYTES:
        raise InputFileError(f"{path}: a certificate file is at most {MAX_CERT_BYTES} bytes")
    try:
        return x509.load_pem_x509_certificate(raw)
    except ValueError:
        raise InputFileError(f"{path}: not a PEM certificate") from None
