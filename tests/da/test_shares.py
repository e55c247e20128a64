"""Share format, namespaces and the block layout (Celestia share version 0)."""

from __future__ import annotations

import pytest

from focusflow.da import square_from_block
from focusflow.da.errors import InvalidShareError
from focusflow.da.layout import subtree_width
from focusflow.da.namespace import (
    FOCUSFLOW_NAMESPACE,
    MAX_PRIMARY_RESERVED_NAMESPACE,
    MIN_SECONDARY_RESERVED_NAMESPACE,
    NAMESPACE_SIZE,
    PARITY_SHARE_NAMESPACE,
    PAY_FOR_BLOB_NAMESPACE,
    PRIMARY_RESERVED_PADDING_NAMESPACE,
    TAIL_PADDING_NAMESPACE,
    TX_NAMESPACE,
    check_blob_namespace,
    namespace_v0,
)
from focusflow.da.shares import (
    CONTINUATION_COMPACT_SHARE_CONTENT_SIZE,
    CONTINUATION_SPARSE_SHARE_CONTENT_SIZE,
    FIRST_COMPACT_SHARE_CONTENT_SIZE,
    FIRST_SPARSE_SHARE_CONTENT_SIZE,
    SHARE_SIZE,
    compact_shares,
    is_sequence_start,
    padding_share,
    sequence_len,
    share_namespace,
    share_version,
    sparse_shares,
    uvarint,
)


def test_reserved_namespaces():
    # go-square share/namespace.go and celestia-app specs/src/specs/namespace.md.
    assert bytes(28) + b"\x01" == TX_NAMESPACE
    assert bytes(28) + b"\x04" == PAY_FOR_BLOB_NAMESPACE
    assert (
        PRIMARY_RESERVED_PADDING_NAMESPACE == MAX_PRIMARY_RESERVED_NAMESPACE == bytes(28) + b"\xff"
    )
    assert MIN_SECONDARY_RESERVED_NAMESPACE == b"\xff" * 28 + b"\x00"
    assert TAIL_PADDING_NAMESPACE == b"\xff" * 28 + b"\xfe"
    assert PARITY_SHARE_NAMESPACE == b"\xff" * NAMESPACE_SIZE


def test_content_sizes():
    # celestia-app specs/src/specs/shares.md: 512 - 29 - 1 (- 4 sequence length) (- 4 reserved).
    assert (FIRST_COMPACT_SHARE_CONTENT_SIZE, CONTINUATION_COMPACT_SHARE_CONTENT_SIZE) == (474, 478)
    assert (FIRST_SPARSE_SHARE_CONTENT_SIZE, CONTINUATION_SPARSE_SHARE_CONTENT_SIZE) == (478, 482)


def test_version_zero_namespace_rules():
    assert namespace_v0(b"ab") == b"\x00" + bytes(26) + b"ab"
    with pytest.raises(InvalidShareError):
        namespace_v0(bytes(11))
    with pytest.raises(InvalidShareError):
        check_blob_namespace(TX_NAMESPACE)
    with pytest.raises(InvalidShareError):
        check_blob_namespace(b"\x00" + b"\x01" * 28)
    assert check_blob_namespace(FOCUSFLOW_NAMESPACE) == FOCUSFLOW_NAMESPACE


def test_uvarint_matches_go():
    assert [uvarint(n) for n in (0, 1, 127, 128, 300, 16384)] == [
        b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xac\x02", b"\x80\x80\x01",
    ]  # fmt: skip


def test_padding_share():
    share = padding_share(TAIL_PADDING_NAMESPACE)
    assert len(share) == SHARE_SIZE
    assert share_namespace(share) == TAIL_PADDING_NAMESPACE
    assert is_sequence_start(share) and sequence_len(share) == 0 and share_version(share) == 0
    assert share[NAMESPACE_SIZE + 5 :] == bytes(SHARE_SIZE - NAMESPACE_SIZE - 5)


def test_compact_shares_layout():
    txs = [b"\x01" * 300, b"\x02" * 400, b"\x03" * 10]
    shares = compact_shares(TX_NAMESPACE, txs)
    stream = b"".join(uvarint(len(t)) + t for t in txs)
    assert len(shares) == 2 and all(len(s) == SHARE_SIZE for s in shares)
    first, second = shares
    assert is_sequence_start(first) and not is_sequence_start(second)
    assert sequence_len(first) == len(stream)
    # Reserved bytes: offset of the first unit starting in the share.
    assert int.from_bytes(first[34:38], "big") == 38
    start_of_third = 2 + 300 + 2 + 400 - FIRST_COMPACT_SHARE_CONTENT_SIZE
    assert int.from_bytes(second[30:34], "big") == 34 + start_of_third
    assert first[38:] + second[34 : 34 + len(stream) - 474] == stream
    assert second[34 + len(stream) - 474 :] == bytes(SHARE_SIZE - 34 - (len(stream) - 474))


def test_compact_share_without_a_unit_start_has_zero_reserved_bytes():
    shares = compact_shares(TX_NAMESPACE, [b"\x07" * 1300])
    assert [int.from_bytes(s[30:34], "big") for s in shares[1:]] == [0, 0]


def test_sparse_shares():
    ns = namespace_v0(b"blob")
    data = bytes(range(256)) * 3
    shares = sparse_shares(ns, data)
    assert len(shares) == 2
    assert sequence_len(shares[0]) == len(data)
    assert shares[0][34:] + shares[1][30 : 30 + len(data) - 478] == data


def test_square_from_empty_block_is_one_tail_padding_share():
    assert square_from_block([]) == [padding_share(TAIL_PADDING_NAMESPACE)]


def test_square_size_is_the_smallest_power_of_two():
    txs = [b"\x00" * 470] * 5
    square = square_from_block(txs)
    assert len(square) == 16
    assert [share_namespace(s) for s in square] == [TX_NAMESPACE] * 5 + [
        TAIL_PADDING_NAMESPACE
    ] * 11


def test_subtree_width():
    # ADR-013: min(next power of two of ceil(n / 64), next power of two of ceil(sqrt(n))).
    assert [subtree_width(n) for n in (1, 4, 64, 65, 100, 5000)] == [1, 1, 1, 2, 2, 128]


def test_blobs_are_ordered_by_namespace_and_aligned():
    a, b = namespace_v0(b"alpha"), namespace_v0(b"bravo")
    blob_b = b"\x0b" * (
        FIRST_SPARSE_SHARE_CONTENT_SIZE + 64 * CONTINUATION_SPARSE_SHARE_CONTENT_SIZE
    )
    square = square_from_block([b"tx"], [(b, blob_b), (a, b"\x0a" * 10), (a, b"\x0c" * 10)])
    spaces = [share_namespace(s) for s in square]
    assert spaces == sorted(spaces)
    # Within a namespace the caller's order is kept.
    assert spaces[:3] == [TX_NAMESPACE, a, a]
    assert square[1][34:44] == b"\x0a" * 10 and square[2][34:44] == b"\x0c" * 10
    # The 65-share blob starts at a multiple of its subtree width (2), after
    # namespace padding in the previous blob's namespace.
    assert subtree_width(65) == 2
    assert square[3] == padding_share(a)
    assert spaces[4:69] == [b] * 65
    assert spaces[69:] == [TAIL_PADDING_NAMESPACE] * (len(square) - 69)
    assert len(square) == 256


def test_reserved_padding_fills_the_gap_before_an_aligned_first_blob():
    big = b"\x05" * (478 + 482 * 99)
    square = square_from_block([b"tx"], [(FOCUSFLOW_NAMESPACE, big)])
    assert share_namespace(square[1]) == PRIMARY_RESERVED_PADDING_NAMESPACE
    assert share_namespace(square[2]) == FOCUSFLOW_NAMESPACE
    assert subtree_width(100) == 2
