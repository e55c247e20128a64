"""The errors of header verification (``chain.header_verify``), in a module of
their own: the light client's errors subclass them, and a command that only
names them must not load the chain's block code and consensus to do so."""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class HeaderMismatchError(FocusflowError):
    """A header's bytes do not hash to its claimed hash, or name another height,
    parent or an impossible time."""

    code = "header_mismatch"


class ValidatorSetMismatchError(FocusflowError):
    """The listed validators do not hash to the header's ``validators_hash``, or
    the header's set is not the one the trusted state says comes next."""

    code = "validator_set_mismatch"


class BadCertificateError(FocusflowError):
    """The commit certificate does not prove the header (forged, short of 2/3,
    signed by non-members, for another block)."""

    code = "bad_certificate"


class TrustExpiredError(FocusflowError):
    """The trusted header is older than the trusting period: its validators may
    have unbonded and could sign anything unpunished."""

    code = "trust_expired"


class InsufficientTrustError(Exception):
    """Internal: the trusted set's signers of a far header hold ``trust_level``
    of its power or less, so the header is not accepted directly; the light
    client bisects, a chain refuses."""
