"""Errors of the consensus layer, each with a stable code.

The transport scores peers by these codes: a peer whose message raises
:class:`InvalidMessageError` sent something provably wrong (a bad signature, a vote
from a non-validator, a proposal from the wrong proposer) and is disconnected;
stale or duplicate messages are not errors and are dropped silently.
"""

from __future__ import annotations

from focusflow.core.errors import FocusflowError


class InvalidMessageError(FocusflowError, ValueError):
    """A proposal or vote is well-formed bytes but not a valid message of this height."""

    code = "invalid_consensus_message"


class InvalidValidatorSetError(FocusflowError, ValueError):
    """A validator set or an update of it breaks a rule (empty, bad key, bad power)."""

    code = "invalid_validator_set"


class InvalidCertificateError(FocusflowError, ValueError):
    """A commit certificate does not prove that >2/3 of the voting power precommitted."""

    code = "invalid_certificate"


class InvalidBatchError(FocusflowError, ValueError):
    """A DAG-mempool batch or batch vote is well-formed bytes but not valid for this
    epoch (bad signature, digest or bounds, an author or voter outside the set)."""

    code = "invalid_batch"


class InvalidBatchCertificateError(FocusflowError, ValueError):
    """A batch certificate does not prove that more than 2/3 of the stake stores the batch."""

    code = "invalid_batch_certificate"


class InvalidEvidenceError(FocusflowError, ValueError):
    """Duplicate-vote evidence does not prove an equivocation by a validator of the set."""

    code = "invalid_evidence"


class WALError(FocusflowError):
    """The write-ahead log is unreadable in its middle (a torn tail is repaired, not this)."""

    code = "wal_corrupt"


class SignRefusedError(FocusflowError):
    """The signer will not sign at a height its WAL says is already committed."""

    code = "sign_refused"
