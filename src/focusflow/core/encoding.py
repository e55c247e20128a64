"""Deterministic CBOR: the one byte form of everything that is hashed or signed.

Two nodes must derive byte-identical encodings of the same value, or their
hashes, signatures and state roots disagree. We use ``cbor2`` with
``canonical=True``: shortest integer and length heads, definite lengths, and map
keys sorted by the length of their encoding, then by its bytes (RFC 7049
canonical order, which is what ``cbor2`` writes), and restrict values to the
plain data model: integers, byte and text strings, arrays, maps with integer
or string keys, booleans and null. No floats and no tags but the bignums (tags
2 and 3, which ``cbor2`` writes for integers outside [-2^64, 2^64-1], e.g. a
balance above 2^64), so no value has two encodings.

``decode`` is the gate for bytes from the outside world, and it runs before any
signature is checked (transactions, p2p frames, gossip). It accepts only input
that is exactly the canonical encoding of an allowed value, so a signed message
cannot be re-encoded ("malleated") into different bytes with the same meaning,
and every failure, however the input is broken, is one typed error. Its cost is
linear in the input: the bytes are scanned head by head (:func:`_scan`, an
iterative loop with no recursion and no allocation per declared length) before
``cbor2`` sees them, and anything that could make a decoder do more than
constant work per byte is refused there: every tag but a canonical bignum
(shared and string references among them), indefinite lengths, declared
lengths longer than the bytes left, nesting deeper than MAX_DEPTH and more
than MAX_ITEMS items.
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

#: Longest bignum magnitude, in bytes (256 bits). Nothing we store comes near it
#: (balances are sums of 64-bit amounts); an attacker's 10^5-digit integer would
#: make every later ``str()`` of it slow, or fail past Python's digit limit.
MAX_BIGNUM_BYTES = 32

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

#: The only major type 7 items we accept: false, true, null (one-byte heads).
_SIMPLE_ALLOWED = frozenset({0xF4, 0xF5, 0xF6})


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
    heads, unsorted or repeated map keys, tags other than canonical bignums,
    indefinite lengths, floats and
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
    except Exception as exc:  # noqa: BLE001  # pragma: no cover - the scan refuses all such input
        raise DecodeError(f"malformed {what}: {type(exc).__name__}") from None
    if cbor2.dumps(value, canonical=True) != data:  # pragma: no cover - as above
        raise DecodeError(f"malformed {what}: not canonical CBOR")
    return value


def decode_stored(data: bytes, what: str = "value") -> Any:
    """A record read back from the chain's own state: decoded without the
    canonical-form checks of :func:`decode`.

    Those checks guard bytes from outside. A state record was written by
    :func:`encode` on this node, or arrived by state sync, where every record
    is checked against the committed state root before it is kept; either
    way its bytes are the canonical ones, and checking them again on every
    read cost 5 to 10 times the parse itself (a swap reads a dozen records).
    A record that does not parse at all still raises :class:`DecodeError`.
    """
    try:
        return cbor2.loads(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a malformed record
        raise DecodeError(f"malformed {what}: {type(exc).__name__}") from None


def _refuse(what: str, reason: str, offset: int) -> NoReturn:
    raise DecodeError(f"malformed {what}: {reason} at byte {offset}")


def _scan(data: bytes, what: str) -> None:  # noqa: C901, PLR0912, PLR0915 - a wire decoder: one branch per CBOR major type
    """Refuse ``data`` unless it is one canonical encoding of a plain value.

    One pass over the heads, constant work per byte: a string's content is
    skipped (text is checked as UTF-8, linear in its length), and a container
    only pushes its parent's counters. A declared length is compared with the
    bytes left before anything else, so a head claiming 2^64-1 items costs
    nothing. A map remembers its last key's bytes to check the canonical order
    (length first, then bytes) and uniqueness. The loop is written flat because
    it runs on every transaction and block: about 1 us per item.
    """
    size = len(data)
    count_items = size > MAX_ITEMS  # otherwise the length already bounds the count
    items = 0
    pos = 0
    # The open container: items still expected (2 per pair in a map, so an even
    # count in a map means a key comes next), whether it is a map, its last key.
    # The root is a container of one item.
    remaining, in_map, last_key = 1, False, b""
    parents: list[tuple[int, bool, bytes]] = []
    while True:
        if pos >= size:
            _refuse(what, "truncated input: an item is missing", pos)
        start = pos
        initial = data[pos]
        pos += 1
        major = initial >> 5
        argument = initial & 0x1F
        if argument >= 24:
            info = argument
            if info > 27:
                _refuse_indefinite(what, major, info, start)
            width = 1 << (info - 24)
            if pos + width > size:
                _refuse(what, f"truncated {_MAJOR_NAMES[major]} head", start)
            argument = int.from_bytes(data[pos : pos + width], "big")
            pos += width
            if argument < _MIN_ARGUMENT[info] and major != 7:
                _refuse(what, f"{_MAJOR_NAMES[major]} head is not in its shortest form", start)
        if count_items:
            items += 1
            if items > MAX_ITEMS:
                _refuse(what, f"more than MAX_ITEMS={MAX_ITEMS} items", start)
        is_key = in_map and not remaining & 1
        if major == 6 and (argument == 2 or argument == 3):
            # A bignum is one integer item: its tag and its byte string.
            pos = _skip_bignum(data, pos, argument, what, start)
            major = 0
        if major < 4:
            if major >= 2:
                if argument > size - pos:
                    _refuse_length(what, major, argument, size - pos, start)
                if major == 3:
                    _check_utf8(data, pos, argument, what)
                pos += argument
            if is_key:
                key = data[start:pos]
                if last_key and (len(key), key) <= (len(last_key), last_key):
                    reason = (
                        "repeated map key"
                        if key == last_key
                        else "map keys are not in canonical order"
                    )
                    _refuse(what, reason, start)
                last_key = key
        else:
            if is_key:
                _refuse(
                    what,
                    f"map key of type {_MAJOR_NAMES[major]} (only integers and strings)",
                    start,
                )
            if major == 4 or major == 5:
                if len(parents) > MAX_DEPTH:
                    _refuse(what, f"nested deeper than MAX_DEPTH={MAX_DEPTH}", start)
                expected = argument if major == 4 else 2 * argument
                if expected > size - pos:
                    _refuse_length(what, major, argument, size - pos, start)
                if expected:
                    parents.append((remaining, in_map, last_key))
                    remaining, in_map, last_key = expected, major == 5, b""
                    continue
            elif major == 6:
                _refuse(what, f"tag {argument} (no tags but bignums are allowed)", start)
            elif initial not in _SIMPLE_ALLOWED:
                if initial >= 0xF9:
                    _refuse(what, "float (no floats are allowed)", start)
                _refuse(what, f"simple value {argument} (only false, true and null)", start)
        # The item at ``start`` is complete: count it off its container, and
        # every container it completes off theirs.
        remaining -= 1
        while not remaining:
            if not parents:
                if pos != size:
                    _refuse(what, f"{size - pos} trailing bytes after the value", pos)
                return
            remaining, in_map, last_key = parents.pop()
            remaining -= 1


def _skip_bignum(data: bytes, pos: int, tag: int, what: str, start: int) -> int:
    """The end of the byte string of a bignum whose tag ends at ``pos``.

    Canonical only: the content has no leading zero byte and is at least 9 bytes
    (a magnitude of 2^64 or more), since a smaller one is a plain integer; and at
    most MAX_BIGNUM_BYTES.
    """
    size = len(data)
    if pos >= size or data[pos] >> 5 != 2:
        _refuse(what, f"tag {tag} must enclose a byte string", pos)
    info = data[pos] & 0x1F
    head = pos
    pos += 1
    if info < 24:
        length = info
    elif info < 28:
        width = 1 << (info - 24)
        if pos + width > size:
            _refuse(what, "truncated byte string head", head)
        length = int.from_bytes(data[pos : pos + width], "big")
        pos += width
        if length < _MIN_ARGUMENT[info]:
            _refuse(what, "byte string head is not in its shortest form", head)
    else:
        _refuse_indefinite(what, 2, info, head)
    if length > size - pos:
        _refuse_length(what, 2, length, size - pos, head)
    if length < 9 or data[pos] == 0:
        _refuse(what, f"bignum (tag {tag}) is not in its shortest form", start)
    if length > MAX_BIGNUM_BYTES:
        _refuse(
            what, f"bignum of {length} bytes (at most MAX_BIGNUM_BYTES={MAX_BIGNUM_BYTES})", start
        )
    return pos + length


def _refuse_indefinite(what: str, major: int, info: int, offset: int) -> NoReturn:
    if info != 31:
        _refuse(what, f"reserved additional information {info}", offset)
    kind = "break code" if major == 7 else f"indefinite-length {_MAJOR_NAMES[major]}"
    _refuse(what, f"{kind} (only definite lengths are allowed)", offset)


def _refuse_length(what: str, major: int, argument: int, left: int, offset: int) -> NoReturn:
    unit = {2: "bytes", 3: "bytes", 4: "items", 5: "pairs"}[major]
    _refuse(what, f"{_MAJOR_NAMES[major]} of {argument} {unit} but {left} bytes left", offset)


def _check_utf8(data: bytes, pos: int, length: int, what: str) -> None:
    try:
        data[pos : pos + length].decode("utf-8")
    except UnicodeDecodeError as exc:
        _refuse(what, "text string is not valid UTF-8", pos + exc.start)
