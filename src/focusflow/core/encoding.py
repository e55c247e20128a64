"""Deterministic CBOR: the one byte form of everything that is hashed or signed.

Two nodes must derive byte-identical encodings of the same value, or their
hashes, signatures and state roots disagree. We use RFC 8949 core deterministic
encoding (``cbor2`` with ``canonical=True``: shortest integer and length heads,
map keys sorted by their encoded bytes, definite lengths) and restrict values
to the plain data model: integers, byte and text strings, arrays, maps, booleans
and null. No tags and no floats, so no value has two encodings.

``decode`` is the gate for bytes from the outside world: it accepts only input
that is exactly the canonical encoding of an allowed value, so a signed message
cannot be re-encoded ("malleated") into different bytes with the same meaning,
and every failure, however the input is broken, is one typed error.
"""

from __future__ import annotations

from typing import Any

import cbor2

from focusflow.core.errors import DecodeError

#: Nesting beyond this is refused before it can exhaust the interpreter's stack.
MAX_DEPTH = 32

#: Exact types (decoded values never subclass them; bool is listed on its own).
_SCALARS = frozenset({int, bytes, str, bool, type(None)})
_KEYS = frozenset({int, str, bytes})


def encode(value: Any) -> bytes:
    """The canonical CBOR bytes of a plain value (see the module docstring).

    Only our own code encodes, so the value is not walked for disallowed types
    here (that walk cost more than the encoding itself on a block of links);
    :func:`decode` is where values from outside are checked.
    """
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, what: str = "value") -> Any:
    """The plain value whose canonical encoding is exactly ``data``.

    Raises :class:`DecodeError` (code ``malformed``) for truncated or trailing
    bytes, non-canonical forms, tags, floats, or nesting deeper than MAX_DEPTH.
    ``what`` names the object in the message ("transaction", "block" ...).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"malformed {what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    try:
        value = cbor2.loads(data)
    except RecursionError:
        raise DecodeError(f"malformed {what}: nested too deeply") from None
    except Exception as exc:
        raise DecodeError(f"malformed {what}: {exc}") from None
    try:
        _check_plain(value, 0)
    except DecodeError as exc:
        raise DecodeError(f"malformed {what}: {exc.message}") from None
    if cbor2.dumps(value, canonical=True) != data:
        raise DecodeError(f"malformed {what}: not canonical CBOR (or trailing bytes)")
    return value


def _check_plain(value: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise DecodeError("nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS:
                _check_plain(item, depth + 1)
        return
    if kind is dict:
        for key, item in value.items():
            if type(key) not in _KEYS:
                raise DecodeError(f"map key of type {type(key).__name__}")
            if type(item) not in _SCALARS:
                _check_plain(item, depth + 1)
        return
    raise DecodeError(f"value of type {kind.__name__} is not allowed")
