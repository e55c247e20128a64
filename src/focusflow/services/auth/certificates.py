"""Operators who prove themselves with a client certificate (mutual TLS).

The TLS layer has already verified the certificate: it chains to one of the
node's client CAs (``api_tls.client_ca``), is within its validity, and the
client holds its key. What is left to decide here, per request:

- that it is not revoked: the CA's CRL (``api_tls.client_crl``, PEM or DER, as
  ``focusflow ca crl`` writes it) is read again whenever the file changes; its
  signature must verify with the issuing CA's key from the client CA bundle,
  and a CRL past its ``nextUpdate`` refuses every certificate (fail closed: an
  operator whose CRL stopped being refreshed learns of it at once);
- who it is: the certificate's common name, as ``cert:<CN>``;
- what it may do: the roles ``api_tls.client_roles`` gives that name (none
  listed: authenticated, allowed nothing; the policy answers 403).

A refusal is :class:`UnauthorizedError` (401) with its reason kept for the
node's log.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth.tokens import UnauthorizedError

#: Longest client certificate read (PEM).
MAX_CERT_PEM = 16 << 10
#: Most names ``client_roles`` may map, roles a name may hold.
MAX_NAMES = 1024
MAX_ROLES_EACH = 16


@dataclass(frozen=True)
class CertificateIdentity:
    """Who a client certificate names and how it was checked."""

    subject: str
    serial: int
    roles: tuple[str, ...]


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidParameterError(f"cannot read client CA bundle {path}: {exc}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise InvalidParameterError(f"{path} is not a PEM certificate bundle") from None


def _verify_crl(crl: x509.CertificateRevocationList, issuers: Sequence[x509.Certificate]) -> bool:
    for issuer in issuers:
        if issuer.subject != crl.issuer:
            continue
        key = issuer.public_key()
        signers = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
        if isinstance(key, signers) and crl.is_signature_valid(key):
            return True
    return False


class ClientCertificates:
    """Roles for operators' client certificates, and their revocation (module docstring)."""

    def __init__(
        self,
        roles: Mapping[str, Sequence[str]],
        client_ca: Path,
        crl: Path | None = None,
        clock: object = None,
    ) -> None:
        if len(roles) > MAX_NAMES:
            raise InvalidParameterError(f"client_roles maps at most {MAX_NAMES} names")
        self.roles: dict[str, tuple[str, ...]] = {}
        for name, given in roles.items():
            if not isinstance(name, str) or not 0 < len(name) <= 64:
                raise InvalidParameterError("a client certificate's name is 1..64 characters")
            if (
                not isinstance(given, list | tuple)
                or len(given) > MAX_ROLES_EACH
                or not all(isinstance(r, str) and 0 < len(r) <= 64 for r in given)
            ):
                raise InvalidParameterError(
                    f"client_roles[{name!r}] is a list of at most {MAX_ROLES_EACH} role names"
                )
            self.roles[name] = tuple(given)
        self.issuers = _load_certs(client_ca)
        self.crl_path = crl
        self._crl: tuple[float, x509.CertificateRevocationList] | None = None
        self._lock = threading.Lock()
        self._now = clock if callable(clock) else (lambda: dt.datetime.now(dt.UTC))
        if crl is not None:
            self._current_crl()  # a bad CRL stops the node at start, not at the first request

    def _current_crl(self) -> x509.CertificateRevocationList | None:
        if self.crl_path is None:
            return None
        with self._lock:
            try:
                mtime = self.crl_path.stat().st_mtime
            except OSError as exc:
                raise InvalidParameterError(f"cannot read CRL {self.crl_path}: {exc}") from None
            if self._crl is None or self._crl[0] != mtime:
                data = self.crl_path.read_bytes()
                try:
                    crl = (
                        x509.load_pem_x509_crl(data)
                        if data.lstrip().startswith(b"-----")
                        else x509.load_der_x509_crl(data)
                    )
                except ValueError:
                    raise InvalidParameterError(f"{self.crl_path} is not a CRL") from None
                if not _verify_crl(crl, self.issuers):
                    raise InvalidParameterError(
                        f"{self.crl_path}: no CA of the client bundle signed this CRL"
                    )
                self._crl = (mtime, crl)
            return self._crl[1]

    def identify(self, pem: str) -> CertificateIdentity:
        """The operator a verified client certificate names; UnauthorizedError
        if it is revoked, the CRL is stale or unreadable, or it names no one."""
        if len(pem) > MAX_CERT_PEM:
            raise UnauthorizedError("client certificate too large")
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            raise UnauthorizedError("client certificate unreadable") from None
        try:
            crl = self._current_crl()
        except (InvalidParameterError, OSError) as exc:
            raise UnauthorizedError(f"revocation cannot be checked: {exc}") from None
        if crl is not None:
            next_update = crl.next_update_utc
            if next_update is not None and next_update < self._now():
                raise UnauthorizedError("the client CRL is past its next update")
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                raise UnauthorizedError(f"client certificate {cert.serial_number:x} is revoked")
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not names:
            raise UnauthorizedError("client certificate names no common name")
        common = str(names[0].value)
        return CertificateIdentity(common, cert.serial_number, self.roles.get(common, ()))
