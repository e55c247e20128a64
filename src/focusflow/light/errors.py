"""Why the light client refused what a node told it, each with a stable code.

Every :class:`VerificationError` means a node (or a witness) said something that
its own proofs or signatures contradict: the CLI prints one ``error:`` line and
exits with status 3 (``exit_status``). Errors a user or an unreachable node
cause (no store yet, a bad option, a refused connection) are plain
:class:`~focusflow.core.errors.FocusflowError` subclasses and exit with 2;
:class:`NodeRequestError` (the node could not be asked, or refused the
question) is the shared client's (``focusflow.client``).
"""

from __future__ import annotations

from focusflow.chain import header_errors as header_verify
from focusflow.client.errors import NodeRequestError
from focusflow.core import errors as core_errors
from focusflow.core.errors import FocusflowError

#: Exit status of a verification failure (the CLI contract).
EXIT_VERIFICATION = 3


class VerificationError(FocusflowError):
    """A node's answer does not verify: never accepted, never stored."""

    code = "verification_failed"
    exit_status = EXIT_VERIFICATION


class MalformedAnswerError(VerificationError):
    """The answer is not the documented shape (bad JSON, hex, CBOR or field)."""

    code = "malformed_answer"


class HeaderMismatchError(header_verify.HeaderMismatchError, VerificationError):
    """A header's bytes do not hash to its claimed hash, or name another height,
    parent or an impossible time."""


class ChainIdMismatchError(core_errors.ChainIdMismatchError, VerificationError):
    """A header of another chain than the one the client trusts: the code of
    every chain id mismatch, the exit status of a verification failure."""


class ValidatorSetMismatchError(header_verify.ValidatorSetMismatchError, VerificationError):
    """The listed validators do not hash to the header's ``validators_hash``, or
    the header's set is not the one the trusted state says comes next."""


class BadCertificateError(header_verify.BadCertificateError, VerificationError):
    """The commit certificate does not prove the header (forged, short of 2/3,
    signed by non-members, for another block)."""


class TrustExpiredError(header_verify.TrustExpiredError, VerificationError):
    """The trusted header is older than the trusting period: its validators may
    have unbonded and could sign anything unpunished."""


class BadProofError(core_errors.BadProofError, VerificationError):
    """A value with its proof does not verify against the verified header's root:
    the code of every proof that does not verify, the exit status of a
    verification failure."""


class WrongValueError(VerificationError):
    """What the node states differs from what its verified proof shows."""

    code = "wrong_value"


class BadEncodingError(VerificationError):
    """A bad-encoding fraud proof verifies against a verified header's data root."""

    code = "bad_encoding"


class ForkError(VerificationError):
    """Two headers at one height, each with a valid commit certificate: the
    validators that signed both equivocated (CometBFT's light client attack)."""

    code = "fork"

    def __init__(self, height: int, trusted: bytes, conflicting: bytes, source: str) -> None:
        super().__init__(
            f"fork at height {height}: verified header {trusted.hex()} and "
            f"{conflicting.hex()} from {source} both carry a valid commit certificate"
        )
        self.height = height
        self.trusted = trusted
        self.conflicting = conflicting
        self.source = source


class NotSyncedError(FocusflowError):
    """The light store has no verified header to start from (run ``light sync``)."""

    code = "not_synced"


InsufficientTrustError = header_verify.InsufficientTrustError


__all__ = [
    "EXIT_VERIFICATION",
    "BadCertificateError",
    "BadEncodingError",
    "BadProofError",
    "ChainIdMismatchError",
    "ForkError",
    "HeaderMismatchError",
    "InsufficientTrustError",
    "MalformedAnswerError",
    "NodeRequestError",
    "NotSyncedError",
    "TrustExpiredError",
    "ValidatorSetMismatchError",
    "VerificationError",
    "WrongValueError",
]
