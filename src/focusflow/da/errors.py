"""Errors of the data-availability layer, each with a stable code (see ``core.errors``)."""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class DAError(FocusflowError):
    """Base of the errors ``focusflow.da`` raises on purpose."""

    code = "da_error"


class InvalidShareError(DAError, ValueError):
    """A share, namespace or square has the wrong size or an invalid field."""

    code = "da_invalid_share"


class RepairError(DAError):
    """Too few shares are known to rebuild the square (or a row or column of it)."""

    code = "da_unrepairable"


class RootMismatchError(DAError):
    """Shares rebuilt or received do not hash to the roots they were committed under."""

    code = "da_root_mismatch"


class ShareUnavailableError(DAError):
    """A node does not serve a share it should have (withheld, or not stored)."""

    code = "share_unavailable"


class InvalidFraudProofError(DAError):
    """A bad-encoding fraud proof that does not prove what it claims (or not for this block)."""

    code = "da_invalid_fraud_proof"
