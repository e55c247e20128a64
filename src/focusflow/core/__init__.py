"""Foundation shared by every layer: errors with stable codes and content identifiers."""

from focusflow.core.cid import cid_of_bytes, cid_of_text, validate_cid, validate_cids
from focusflow.core.errors import (
    BackendUnavailableError,
    FocusflowError,
    InputFileError,
    InvalidCIDError,
    InvalidParameterError,
)

__all__ = [
    "BackendUnavailableError",
    "FocusflowError",
    "InputFileError",
    "InvalidCIDError",
    "InvalidParameterError",
    "cid_of_bytes",
    "cid_of_text",
    "validate_cid",
    "validate_cids",
]
