"""Errors of the Konomi grid, each with a stable code that the REST and WebSocket
APIs return as JSON (``{"error": {"code": ..., "message": ...}}``).

Codes never change once published; the HTTP status beside each is what the REST
API answers with.
"""

from __future__ import annotations

from focusflow.core import errors as core_errors
from focusflow.core.errors import FocusflowError


class KonomiError(FocusflowError):
    """Base of the grid's errors."""

    code = "konomi_error"
    http_status = 400


class CoordinateOutOfRangeError(KonomiError, ValueError):
    """A coordinate lies outside the block array's dimensions."""

    code = "coordinate_out_of_range"


class UnknownTemplateError(KonomiError, KeyError):
    """No template has the requested id."""

    code = "unknown_template"
    http_status = 404


class UnknownInstanceError(KonomiError, KeyError):
    """No instance has the requested id."""

    code = "unknown_instance"
    http_status = 404


class UnknownCubeError(KonomiError, KeyError):
    """No cube has the requested id."""

    code = "unknown_cube"
    http_status = 404


class UnknownVertexError(KonomiError, KeyError):
    """A vertex name is not one of the cube's eight vertices or CENTRAL."""

    code = "unknown_vertex"


class DimensionsTooLargeError(KonomiError, ValueError):
    """A template's dimensions pass the documented caps (per axis, per face, in all)."""

    code = "dimensions_too_large"


class MalformedMessageError(core_errors.MalformedMessageError, KonomiError, ValueError):
    """A request or WebSocket message is not valid JSON of the documented shape:
    a KonomiError (its HTTP status), coded as every malformed message."""


class InvalidOperationError(KonomiError, ValueError):
    """An operation name, plane or state transition is not one the grid knows."""

    code = "invalid_operation"


class StoreError(core_errors.StoreError, KonomiError):
    """The persistence back end (PostgreSQL or SQLite) failed or is misconfigured:
    a KonomiError (503), coded as every store that cannot be used."""

    http_status = 503


class UnknownActionError(KonomiError, ValueError):
    """A WebSocket message names an action the server does not know."""

    code = "unknown_action"


class NotInitializedError(KonomiError):
    """A WebSocket action needs a cube, but the connection has not sent ``initialize``."""

    code = "not_initialized"


class ShardNotOwnerError(KonomiError):
    """A block was sent to a shard that does not own it (its owner is the SplitMix64
    hash of its Morton key modulo the shard count): a routing fault, nothing written."""

    code = "shard_not_owner"
    http_status = 409


class ShardUnavailableError(KonomiError):
    """A shard did not answer within the bounded retry time (down, restarting, or
    lost mid-call for an operation that cannot be retried safely)."""

    code = "shard_unavailable"
    http_status = 503


class BatchTooLargeError(KonomiError, ValueError):
    """A batch of blocks holds more coordinates than one request may carry."""

    code = "batch_too_large"
    http_status = 413


class LedgerError(KonomiError):
    """A cube ledger fails verification. ``index`` is the position of the first
    failing entry in what was checked (None when the failure is not one entry's)."""

    code = "ledger_invalid"

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class LedgerMalformedError(LedgerError):
    """A ledger entry is not the canonical encoding of the documented shape."""

    code = "ledger_malformed"


class LedgerOutOfOrderError(LedgerError):
    """An entry's height is not its predecessor's plus one (reordered, dropped or
    repeated entries), the ledger does not start with its genesis, or a vote or
    decision is for another cube or height than the one being decided."""

    code = "ledger_out_of_order"


class LedgerBrokenLinkError(LedgerError):
    """An entry's ``prev`` is not the hash of the entry before it."""

    code = "ledger_broken_link"


class LedgerHashMismatchError(LedgerError):
    """A ledger's head hash is not the one the verifier pinned."""

    code = "ledger_hash_mismatch"


class LedgerBadSignatureError(LedgerError):
    """A vote's signature (in an entry, or put to a tally) does not verify under its
    vertex's key from the genesis entry."""

    code = "ledger_bad_signature"


class LedgerNoQuorumError(LedgerError):
    """An entry carries fewer valid signatures than the 2/3 rule needs (6 of 8)."""

    code = "ledger_no_quorum"


class LedgerCrossRefError(LedgerError):
    """A cross-reference names a head hash that the referenced cube's ledger lacks,
    or moves back in that ledger."""

    code = "ledger_cross_ref_mismatch"


class LedgerTooLargeError(LedgerError):
    """A ledger (a file, a request body) has more entries or bytes than the caps allow."""

    code = "ledger_too_large"
    http_status = 413


class InvalidVoteEvidenceError(KonomiError, ValueError):
    """Evidence of a conflicting vote that does not prove one: a signature that does
    not verify, the same proposal twice, or votes of different heights or vertices."""

    code = "invalid_vote_evidence"
