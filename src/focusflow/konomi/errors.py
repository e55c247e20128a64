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
