"""Deterministic CBOR: the one byte form of everything that is hashed or signed.

Two nodes must derive byte-identical encodings of the same value, or their
hashes, signatures and state roots disagree. We use ``cbor2`` with
``canonical=True``: shortest integer and length heads, definite lengths, and map
keys sorted by the length of their encoding, then by its bytes (RFC 7049
canonical order, which is what ``cbor2`` writes), and restrict values to the
plain data model: integers in [-2^64, 2^64-1], byte and text strings, arrays,
maps with integer or string keys, booleans and null. No tags and no floats, so
no value has two encodings.

``decode`` is the gate for bytes from the outside world, and it runs before any
signature is checked (transactions, p2p frames, gossip). It accepts only input
that is exactly the canonical encoding of an allowed value, so a signed message
cannot be re-encoded ("malleated") into different bytes with the same meaning,
and every failure, however the input is broken, is one typed error. Its cost is
linear in the input: the bytes are scanned head by head (:func:`_scan`, an
iterative loop with no recursion and no allocation per declared length) before
``cbor2`` sees them, and anything that could make a decoder do more than
constant work per byte is refused there: tags (shared and string references
among them), indefinite lengths, declared lengths longer than the bytes left,
nesting deeper than MAX_DEPTH and more than MAX_ITEMS items.
"""

from __future__ import annotations

from typing import Any, NoReturn

import cbor2

from focusflow.core.errors import DecodeError

#: Containers nest at most MAX_DEPTH + 1 levels (the outermost is at depth 0).
MAX_DEPTH = 32

#: Items (scalars and containers, map keys included) in one decoded value. Each
#: item costs at least one byte, so the input's length bounds the count already;
#: this hard cap bounds the objects built from one input however large the frame
#: (a transaction of 10,000 links is about 40,000 items; a block holds its
#: transactions as byte strings).
MAX_ITEMS = 1 << 21

#: The smallest argument each head size may carry (shorter heads are refused).
_MIN_ARGUMENT = {24: 24, 25: 1 << 8, 26: 1 << 16, 27: 1 << 32}

_MAJOR_NAMES = (
    "unsigned integer",
    "negative integer",
    "byte string",
    "text string",
    "array",
    "map",
    "tag",
    "simple value or float",
)

#: Additional information of major type 7 that we accept: false, true, null.
_SIMPLE_ALLOWED = frozenset({20, 21, 22})


def encode(value: Any) -> bytes:
    """The canonical CBOR bytes of a plain value (see the module docstring).

    Only our own code encodes, so the value is not walked for disallowed types
    here (that walk cost more than the encoding itself on a block of links);
    :func:`decode` is where values from outside are checked.
    """
    return cbor2.dumps(value, canonical=True)


def decode(data: bytes, what: str = "value") -> Any:
    """The plain value whose canonical encoding is exactly ``data``.

    Raises :class:`DecodeError` (code ``malformed``) naming what was refused and
    the byte offset where it starts: truncated or trailing bytes, non-shortest
    heads, unsorted or repeated map keys, tags, indefinite lengths, floats and
    simple values other than false/true/null, invalid UTF-8, nesting deeper than
    MAX_DEPTH or more than MAX_ITEMS items. ``what`` names the object in the
    message ("transaction", "block" ...).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"malformed {what}: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    _scan(data, what)
    # The scan admits only canonical encodings of plain values, which cbor2
    # decodes in one linear pass; the re-encoding below is a second, independent
    # check that the bytes are exactly what encode() writes for the value.
    try:
        value = cbor2.loads(data)
    except Exception as exc:  # pragma: no cover - the scan refuses all such input
        raise DecodeError(f"malformed {what}: {type(exc).__name__}") from None
    if cbor2.dumps(value, canonical=True) != data:  # pragma: no cover - as above
        raise DecodeError(f"malformed {what}: not canonical CBOR")
    return value


def _refuse(what: str, reason: str, offset: int) -> NoReturn:
    raise DecodeError(f"malformed {what}: {reason} at byte {offset}")


def _scan(data: bytes, what: str) -> None:
    """Refuse ``data`` unless it is one canonical encoding of a plain value.

    One pass over the heads, constant work per byte: a string's content is
    skipped (text is checked as UTF-8, linear in its length), and a container
    only pushes a counter of the items still expected. A declared length is
    compared with the bytes left before anything else, so a header claiming
    2^64-1 items costs nothing. Open maps remember their last key's bytes to
    check the canonical order (length first, then bytes) and uniqueness.
    """
    size = len(data)
    pos = 0
    items = 0
    # One entry per open container: [items still expected, is a map, last key].
    # In a map the count is 2 * pairs, so an even count means a key comes next.
    open_: list[list[Any]] = []
    while True:
        start = pos
        if pos >= size:
            _refuse(what, "truncated input: an item is missing", pos)
        initial = data[pos]
        major = initial >> 5
        info = initial & 0x1F
        pos += 1
        if info < 24:
            argument = info
        elif info < 28:
            width = 1 << (info - 24)
            if pos + width > size:
                _refuse(what, f"truncated {_MAJOR_NAMES[major]} head", start)
            argument = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if major != 7 and argument < _MIN_ARGUMENT[info]:
                _refuse(what, f"{_MAJOR_NAMES[major]} head is not in its shortest form", start)
        elif info == 31:
            kind = "break code" if major == 7 else f"indefinite-length {_MAJOR_NAMES[major]}"
            _refuse(what, f"{kind} (only definite lengths are allowed)", start)
        else:
            _refuse(what, f"reserved additional information {info}", start)
        items += 1
        if items > MAX_ITEMS:
            _refuse(what, f"more than MAX_ITEMS={MAX_ITEMS} items", start)
        is_key = bool(open_) and open_[-1][1] and open_[-1][0] % 2 == 0
        if is_key and major > 3:
            _refuse(
                what, f"map key of type {_MAJOR_NAMES[major]} (only integers and strings)", start
            )
        if major == 6:
            _refuse(what, f"tag {argument} (no tags are allowed)", start)
        if major == 7:
            if info in _SIMPLE_ALLOWED:
                pass
            elif info >= 25:
                _refuse(what, "float (no floats are allowed)", start)
            else:
                _refuse(what, f"simple value {argument} (only false, true and null)", start)
        elif major == 2 or major == 3:
            if argument > size - pos:
                _refuse(
                    what,
                    f"{_MAJOR_NAMES[major]} of {argument} bytes but {size - pos} bytes left",
                    start,
                )
            if major == 3:
                try:
                    data[pos : pos + argument].decode("utf-8")
                except UnicodeDecodeError as exc:
                    _refuse(what, "text string is not valid UTF-8", pos + exc.start)
            pos += argument
        elif major == 4 or major == 5:
            if len(open_) > MAX_DEPTH:
                _refuse(what, f"nested deeper than MAX_DEPTH={MAX_DEPTH}", start)
            expected = argument if major == 4 else 2 * argument
            if expected > size - pos:
                _refuse(
                    what,
                    f"{_MAJOR_NAMES[major]} of {argument} "
                    f"{'items' if major == 4 else 'pairs'} but {size - pos} bytes left",
                    start,
                )
            if expected:
                open_.append([expected, major == 5, None])
                continue
        if is_key:
            _check_key_order(open_[-1], data[start:pos], what, start)
        # The item at ``start`` is complete: count it off its container, and
        # every container it completes off theirs.
        while open_:
            top = open_[-1]
            top[0] -= 1
            if top[0]:
                break
            open_.pop()
        else:
            if pos != size:
                _refuse(what, f"{size - pos} trailing bytes after the value", pos)
            return


def _check_key_order(frame: list[Any], key: bytes, what: str, offset: int) -> None:
    """Keys of one map must rise strictly in (encoded length, encoded bytes)."""
    last = frame[2]
    if last is not None:
        if key == last:
            _refuse(what, "repeated map key", offset)
        if (len(key), key) < (len(last), last):
            _refuse(what, "map keys are not in canonical order", offset)
    frame[2] = key
