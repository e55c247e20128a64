"""Errors a user can cause, each with a stable machine-readable code.

Every layer raises these instead of bare ``ValueError`` so that the CLI can print
one precise line and exit non-zero, and later the API can return the same code
as JSON. Codes never change once published; messages may.
"""

from __future__ import annotations


class FocusflowError(Exception):
    """Base of every error focusflow raises on purpose."""

    code = "focusflow_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidParameterError(FocusflowError, ValueError):
    """A parameter is outside its documented domain (alpha, weights, tolerance, ...)."""

    code = "invalid_parameter"


def require_int(name: str, value: object, minimum: int) -> int:
    """Refuse a setting that is not an integer (bools are not) of at least
    ``minimum``; returns it, typed as the int it was checked to be."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidParameterError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


class InvalidCIDError(FocusflowError, ValueError):
    """A particle identifier is not a valid CIDv0 or CIDv1."""

    code = "invalid_cid"


class TextMismatchError(FocusflowError):
    """A particle text does not hash to the CID it is given for: refused by a
    node's text store, and a link message's receipt (defined here, below both)."""

    code = "text_mismatch"


class TextTooLargeError(FocusflowError):
    """A particle text is longer than a node keeps (4096 UTF-8 bytes)."""

    code = "text_too_large"


class InputFileError(FocusflowError):
    """An input file is missing, unreadable, or not in the format it claims."""

    code = "bad_input_file"


class BackendUnavailableError(FocusflowError):
    """The requested compute backend cannot run here (missing package or device)."""

    code = "backend_unavailable"


class MissingExtraError(BackendUnavailableError):
    """A command or back end needs an optional part of the package (an extra:
    ``konomi``, ``compile``, ``hvm``) that is not installed; the message names the
    ``pip install 'focusflow[EXTRA]'`` line that adds it."""

    code = "missing_extra"


class DecodeError(FocusflowError, ValueError):
    """Bytes from outside are not a well-formed encoding of what they claim to be."""

    code = "malformed"


class InvalidAddressError(FocusflowError, ValueError):
    """An account address is not valid bech32 with our prefix and length."""

    code = "invalid_address"


class KeyFileError(FocusflowError):
    """A key file is missing or does not hold a key."""

    code = "bad_key_file"


class StoreError(FocusflowError):
    """A store that cannot be used: the node's state store unreadable, corrupt or
    of another chain, or a persistence back end failed (Konomi's)."""

    code = "store_error"


class KeyExistsError(FocusflowError):
    """A wallet key of that name already exists; keys are never overwritten silently."""

    code = "key_exists"


class UnknownKeyError(FocusflowError):
    """No wallet key of that name."""

    code = "unknown_key"


class WrongPassphraseError(FocusflowError):
    """The passphrase does not open an encrypted wallet key (or none was given)."""

    code = "wrong_passphrase"


class HomeError(FocusflowError):
    """A home directory that cannot be used: not a focusflow home, a file missing
    or unreadable, start options that do not fit it, or a directory of compiled
    contract code that another user owns or others may write to."""

    code = "bad_home"


class ChainIdMismatchError(FocusflowError):
    """What a node says belongs to another chain than the one pinned locally (by
    ``--chain-id``, a genesis file or a light client's root of trust)."""

    code = "chain_id_mismatch"


class BadProofError(FocusflowError):
    """A state proof that does not verify against the root it should: the node
    or the connection is lying."""

    code = "bad_proof"


class MalformedMessageError(FocusflowError):
    """A message that is not of its documented shape: a transaction's message
    body, a Konomi request or WebSocket message."""

    code = "malformed_message"
