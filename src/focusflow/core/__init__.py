"""Foundation shared by every layer: errors with stable codes, canonical encoding,
hashing, content identifiers, and keys."""

from focusflow.core.cid import (
    check_cid_bytes,
    cid_from_bytes,
    cid_of_bytes,
    cid_of_text,
    cid_to_bytes,
    validate_cid,
    validate_cids,
)
from focusflow.core.errors import (
    BackendUnavailableError,
    DecodeError,
    FocusflowError,
    InputFileError,
    InvalidAddressError,
    InvalidCIDError,
    InvalidParameterError,
    KeyFileError,
    StoreError,
)

__all__ = [
    "BackendUnavailableError",
    "DecodeError",
    "FocusflowError",
    "InputFileError",
    "InvalidAddressError",
    "InvalidCIDError",
    "InvalidParameterError",
    "KeyFileError",
    "StoreError",
    "check_cid_bytes",
    "cid_from_bytes",
    "cid_of_bytes",
    "cid_of_text",
    "cid_to_bytes",
    "validate_cid",
    "validate_cids",
]
