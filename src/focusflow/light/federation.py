"""A root of trust for another network's headers, from federation.

A light client of network B normally starts from B's genesis file or a header
hash its user got out of band. Once the user's own network A has voted to
vouch for B (``ca.federate``: A's CA signed a cross-certificate over B's root),
the user needs neither: A's root certificate, which they already trust, and
the cross-certificate (from any source: it carries A's signature) let them
take one of B's headers as the root of trust when

1. the cross-certificate verifies under A's root, is a CA certificate and is
   valid now;
2. the header's commit certificate verifies against the validator set it
   lists (more than 2/3 of its power signed), and the header is younger than
   the trusting period;
3. validators holding more than 2/3 of that set's power each hold a node
   certificate from B's CA for their very key, that is: its issuer is the
   cross-certificate's subject and it verifies with the cross-certificate's
   key (B's root key), it was valid at the header's time, its DNS names lie
   within the cross-certificate's name constraints if it has any, and B's CRL
   (itself verified with B's root key) does not list it.

Every certificate and the CRL are checked here against keys the user trusts;
the node that serves them is trusted for nothing. From that header on, the
client verifies B's chain as it does any other (skipping verification and
bisection), with B's validator-set changes proven from B's state.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from focusflow.consensus.validators import has_two_thirds
from focusflow.light.errors import VerificationError
from focusflow.light.verify import LightBlock


class FederationTrustError(VerificationError):
    """A federated root of trust that does not verify: a cross-certificate that
    A's root did not sign (or that expired, or is no CA), or a header whose
    validators' certificates from B's CA hold 2/3 of its power or less."""

    code = "federation_untrusted"


@dataclass(frozen=True)
class FederatedTrust:
    """What made a header trusted: the validators whose certificates verified
    (node id -> serial) and their share of the power."""

    certified: dict[bytes, int]
    power: int
    total: int


def _ed25519(cert: x509.Certificate, what: str) -> Ed25519PublicKey:
    key = cert.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise FederationTrustError(f"{what} does not hold an Ed25519 key")
    return key


def _signed_by(cert: x509.Certificate, key: Ed25519PublicKey) -> bool:
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    except InvalidSignature:
        return False
    return True


def _valid_at(cert: x509.Certificate, when: dt.datetime) -> bool:
    return cert.not_valid_before_utc <= when <= cert.not_valid_after_utc


def check_cross(
    home_root: x509.Certificate, cross: x509.Certificate, now: dt.datetime
) -> list[str] | None:
    """Refuse a cross-certificate the user's own root did not sign, that is no CA
    or not valid now; its permitted DNS subtrees (None: unconstrained)."""
    if cross.issuer != home_root.subject or not _signed_by(
        cross, _ed25519(home_root, "the home root")
    ):
        raise FederationTrustError("the cross-certificate is not signed by the home root")
    try:
        if not cross.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            raise FederationTrustError("the cross-certificate is not a CA certificate")
    except x509.ExtensionNotFound:
        raise FederationTrustError("the cross-certificate is not a CA certificate") from None
    if not _valid_at(cross, now):
        raise FederationTrustError("the cross-certificate is not valid now")
    _ed25519(cross, "the cross-certificate")
    try:
        constraints = cross.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return None
    subtrees = constraints.permitted_subtrees or ()
    return [str(n.value) for n in subtrees if isinstance(n, x509.DNSName)]


def _within(name: str, subtrees: list[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in subtrees)


def certified_validators(
    block: LightBlock,
    cross: x509.Certificate,
    permitted: list[str] | None,
    certificates: Mapping[bytes, x509.Certificate],
    revoked: frozenset[int],
) -> FederatedTrust:
    """Which of ``block``'s validators hold a certificate from the network whose
    root ``cross`` vouches for (module docstring, step 3), and their power."""
    other_key = _ed25519(cross, "the cross-certificate")
    at = dt.datetime.fromtimestamp(block.header.time_ms / 1000, dt.UTC)
    certified: dict[bytes, int] = {}
    for validator in block.validators.validators:
        cert = certificates.get(validator.public_key)
        if cert is None or cert.issuer != cross.subject or not _signed_by(cert, other_key):
            continue
        key = cert.public_key()
        if not isinstance(key, Ed25519PublicKey) or key.public_bytes_raw() != validator.public_key:
            continue
        if not _valid_at(cert, at) or cert.serial_number in revoked:
            continue
        if permitted is not None:
            try:
                san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            except x509.ExtensionNotFound:
                continue
            if not all(_within(n, permitted) for n in san.get_values_for_type(x509.DNSName)):
                continue
        certified[validator.public_key] = cert.serial_number
    power = sum(block.validators.power_of(k) for k in certified)
    return FederatedTrust(certified, power, block.validators.total_power)


def revoked_serials(
    crl: x509.CertificateRevocationList | None, cross: x509.Certificate
) -> frozenset[int]:
    """The serials B's CRL revokes, after checking it with B's root key."""
    if crl is None:
        return frozenset()
    key = _ed25519(cross, "the cross-certificate")
    if crl.issuer != cross.subject or not crl.is_signature_valid(key):
        raise FederationTrustError("the other network's CRL is not signed by its root")
    return frozenset(r.serial_number for r in crl)


def require_two_thirds(trust: FederatedTrust, height: int) -> None:
    if not has_two_thirds(trust.power, trust.total):
        raise FederationTrustError(
            f"validators holding {trust.power} of {trust.total} power at height {height} hold "
            "a certificate from the federated network's CA: not more than 2/3"
        )


__all__ = [
    "FederatedTrust",
    "FederationTrustError",
    "certified_validators",
    "check_cross",
    "require_two_thirds",
    "revoked_serials",
]
