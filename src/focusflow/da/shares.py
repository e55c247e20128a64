"""Shares: the fixed-size pieces block data is cut into before it is erasure coded.

Every share is 512 bytes and opens with its namespace (29 bytes) and an info
byte ``share_version << 1 | sequence_start``. A *sequence* is one piece of data
(the block's transactions, or one blob) spread over consecutive shares; its
first share carries the sequence length as a 4-byte big-endian integer.

* Compact shares hold many small units (transactions), each prefixed with its
  length as an unsigned varint; after the info byte (and sequence length) come
  4 *reserved bytes*: the big-endian offset within the share of the first unit
  that starts in it, or 0 if none does.
* Sparse shares hold one blob each, with no reserved bytes.
* Padding shares are empty sequences (start bit set, length 0, zeros).

The format is Celestia's share version 0 (celestia-app ``specs/src/specs/
shares.md``, go-square ``share/``), byte for byte.
"""

from __future__ import annotations

from focusflow.da.errors import InvalidShareError
from focusflow.da.namespace import (
    NAMESPACE_SIZE,
    PRIMARY_RESERVED_PADDING_NAMESPACE,
    TAIL_PADDING_NAMESPACE,
)

SHARE_SIZE = 512
SHARE_INFO_BYTES = 1
SEQUENCE_LEN_BYTES = 4
SHARE_RESERVED_BYTES = 4
SHARE_VERSION_ZERO = 0
MAX_SHARE_VERSION = 127

FIRST_COMPACT_SHARE_CONTENT_SIZE = (
    SHARE_SIZE - NAMESPACE_SIZE - SHARE_INFO_BYTES - SEQUENCE_LEN_BYTES - SHARE_RESERVED_BYTES
)
CONTINUATION_COMPACT_SHARE_CONTENT_SIZE = (
    SHARE_SIZE - NAMESPACE_SIZE - SHARE_INFO_BYTES - SHARE_RESERVED_BYTES
)
FIRST_SPARSE_SHARE_CONTENT_SIZE = (
    SHARE_SIZE - NAMESPACE_SIZE - SHARE_INFO_BYTES - SEQUENCE_LEN_BYTES
)
CONTINUATION_SPARSE_SHARE_CONTENT_SIZE = SHARE_SIZE - NAMESPACE_SIZE - SHARE_INFO_BYTES


def info_byte(share_version: int, sequence_start: bool) -> int:
    """The byte after the namespace: share version and the sequence-start bit."""
    if not 0 <= share_version <= MAX_SHARE_VERSION:
        raise InvalidShareError(f"share version {share_version} is out of range")
    return share_version << 1 | int(sequence_start)


def share_namespace(share: bytes) -> bytes:
    """The namespace a share opens with."""
    return share[:NAMESPACE_SIZE]


def share_version(share: bytes) -> int:
    return share[NAMESPACE_SIZE] >> 1


def is_sequence_start(share: bytes) -> bool:
    return bool(share[NAMESPACE_SIZE] & 1)


def sequence_len(share: bytes) -> int:
    """The sequence length a first share carries."""
    if not is_sequence_start(share):
        raise InvalidShareError("only the first share of a sequence carries its length")
    start = NAMESPACE_SIZE + SHARE_INFO_BYTES
    return int.from_bytes(share[start : start + SEQUENCE_LEN_BYTES], "big")


def uvarint(n: int) -> bytes:
    """Unsigned LEB128, as Go's ``binary.PutUvarint`` writes it."""
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def padding_share(ns: bytes) -> bytes:
    """An empty sequence in ``ns``: fills gaps the layout rules leave."""
    head = ns + bytes([info_byte(SHARE_VERSION_ZERO, True)]) + bytes(SEQUENCE_LEN_BYTES)
    return head.ljust(SHARE_SIZE, b"\x00")


def reserved_padding_shares(count: int) -> list[bytes]:
    """Padding between the block's compact shares and its first blob."""
    return [padding_share(PRIMARY_RESERVED_PADDING_NAMESPACE)] * count


def tail_padding_shares(count: int) -> list[bytes]:
    """Padding after the last blob, up to the end of the square."""
    return [padding_share(TAIL_PADDING_NAMESPACE)] * count


def compact_shares(ns: bytes, units: list[bytes]) -> list[bytes]:
    """Units (transactions) in compact shares of ``ns``: varint-delimited, in order."""
    if not units:
        return []
    starts: list[int] = []
    stream = bytearray()
    for unit in units:
        starts.append(len(stream))
        stream += uvarint(len(unit)) + unit
    shares: list[bytes] = []
    pos = 0
    next_start = 0
    while pos < len(stream):
        first = not shares
        head = ns + bytes([info_byte(SHARE_VERSION_ZERO, first)])
        if first:
            head += len(stream).to_bytes(SEQUENCE_LEN_BYTES, "big")
        room = SHARE_SIZE - len(head) - SHARE_RESERVED_BYTES
        while next_start < len(starts) and starts[next_start] < pos:
            next_start += 1
        reserved = 0
        if next_start < len(starts) and starts[next_start] < pos + room:
            reserved = len(head) + SHARE_RESERVED_BYTES + starts[next_start] - pos
        body = bytes(stream[pos : pos + room])
        share = head + reserved.to_bytes(SHARE_RESERVED_BYTES, "big") + body
        shares.append(share.ljust(SHARE_SIZE, b"\x00"))
        pos += room
    return shares


def sparse_shares(ns: bytes, data: bytes) -> list[bytes]:
    """One blob in sparse shares of ``ns``."""
    shares = []
    head = ns + bytes([info_byte(SHARE_VERSION_ZERO, True)]) + len(data).to_bytes(4, "big")
    pos = 0
    while True:
        room = SHARE_SIZE - len(head)
        shares.append((head + data[pos : pos + room]).ljust(SHARE_SIZE, b"\x00"))
        pos += room
        if pos >= len(data):
            return shares
        head = ns + bytes([info_byte(SHARE_VERSION_ZERO, False)])


def sparse_share_count(size: int) -> int:
    """How many sparse shares a blob of ``size`` bytes fills."""
    if size <= FIRST_SPARSE_SHARE_CONTENT_SIZE:
        return 1
    rest = size - FIRST_SPARSE_SHARE_CONTENT_SIZE
    return 1 + -(-rest // CONTINUATION_SPARSE_SHARE_CONTENT_SIZE)
