"""Celestia's published vectors, reproduced byte for byte."""

from __future__ import annotations

import pytest

from focusflow.da import extend
from focusflow.da.merkle import merkle_root
from focusflow.da.namespace import namespace_v0
from focusflow.da.nmt import leaf_node, prove_namespace, root, verify_namespace
from focusflow.da.shares import SHARE_SIZE, tail_padding_shares


def _repeated(value: int) -> bytes:
    return bytes([value]) * SHARE_SIZE


def test_rsmt2d_extension_1x1():
    # celestiaorg/rsmt2d extendeddatasquare_test.go, TestComputeExtendedDataSquare "1x1".
    eds = extend([_repeated(1)])
    assert [[eds.share(r, c) for c in range(2)] for r in range(2)] == [[_repeated(1)] * 2] * 2


def test_rsmt2d_extension_2x2():
    # celestiaorg/rsmt2d extendeddatasquare_test.go, TestComputeExtendedDataSquare "2x2"
    # (Leopard codec, shares of one repeated byte).
    eds = extend([_repeated(v) for v in (1, 2, 3, 4)])
    want = [[1, 2, 0, 3], [3, 4, 8, 15], [2, 11, 13, 4], [0, 13, 5, 8]]
    got = [[eds.share(r, c) for c in range(4)] for r in range(4)]
    assert got == [[_repeated(v) for v in row] for row in want]


def test_empty_data_availability_header_hash():
    # celestia-app pkg/da/data_availability_header_test.go,
    # TestNilDataAvailabilityHeaderHashDoesntCrash: RFC 6962 hash of nothing.
    assert merkle_root([]).hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_min_data_availability_header():
    # celestia-app pkg/da/data_availability_header_test.go, TestMinDataAvailabilityHeader:
    # one tail-padding share extended to 2 x 2.
    eds = extend(tail_padding_shares(1))
    assert eds.data_root().hex() == (
        "3d96b7d238e7e0456f6af8e7cdf0a67bd6cf9c2089ecb559c659dcaa1f880353"
    )


def _generate_shares(count: int) -> list[bytes]:
    # celestia-app pkg/da/data_availability_header_test.go, generateShares: namespace
    # v0 with id ten bytes of 0x01, the rest of the share 0xFF.
    ns = namespace_v0(bytes([1]) * 10)
    return [ns + b"\xff" * (SHARE_SIZE - len(ns))] * count


@pytest.mark.parametrize(
    ("k", "want"),
    [
        # TestNewDataAvailabilityHeader "typical" (square size 2).
        (2, "b56e4d251ac266f4b91cc5464b3fc7efcbdc888064647496d13133f0dc65ac25"),
        # TestNewDataAvailabilityHeader "max square size" in celestia-app v3
        # (DefaultSquareSizeUpperBound = 128): the GF(2^8) codec at its largest size.
        (128, "0bd3abeeacfbb0b92dfbdac4a154868e3c4e79666f7fcf6c620bb90dd3a0dcf0"),
    ],
)
def test_new_data_availability_header(k, want):
    eds = extend(_generate_shares(k * k))
    assert len(eds.row_roots()) == len(eds.col_roots()) == 2 * k
    assert eds.data_root().hex() == want


@pytest.mark.slow
def test_new_data_availability_header_512():
    # TestNewDataAvailabilityHeader "max square size" in celestia-app v6
    # (SquareSizeUpperBound = 512): the GF(2^16) codec.
    eds = extend(_generate_shares(512 * 512))
    assert eds.data_root().hex() == (
        "8f7dd2fc5f70d9c3cac77e815e009d694cd6d249e762dbbbb199b7177d6ad388"
    )


NMT_SPEC_LEAVES = [bytes([ns]) + b"leaf_%d" % i for i, ns in enumerate((0, 0, 1, 3))]


def test_nmt_spec_example_tree():
    # celestiaorg/nmt docs/spec/nmt.md, Figure 1: 1-byte namespaces, SHA-256; the spec
    # prints each node as min ns, max ns and the first 7 hex digits of the digest.
    nodes = [leaf_node(d, ns_size=1) for d in NMT_SPEC_LEAVES]
    assert [n.hex()[:11] for n in nodes] == [
        "00005fa0c9c",
        "000052385a0",
        "010171ca46a",
        "0303b4a2792",
    ]
    assert root(NMT_SPEC_LEAVES, ns_size=1).hex()[:11] == "0003b1c2cc5"


def test_nmt_spec_example_proofs():
    # Same source: the proof of namespace 0 is [0, 2) with the node "01 03 52c7c03";
    # the absence proof of namespace 2 is leaf 3 ("03 03 b4a2792") with the nodes
    # "00 00 ead8d25" and "01 01 71ca46a"; namespace 6 gets an empty proof.
    top = root(NMT_SPEC_LEAVES, ns_size=1)
    present = prove_namespace(NMT_SPEC_LEAVES, b"\x00", ns_size=1)
    assert (present.start, present.end) == (0, 2)
    assert [n.hex()[:11] for n in present.nodes] == ["010352c7c03"]
    assert verify_namespace(top, b"\x00", present, NMT_SPEC_LEAVES[:2], ns_size=1)
    absent = prove_namespace(NMT_SPEC_LEAVES, b"\x02", ns_size=1)
    assert (absent.start, absent.end) == (3, 4)
    assert absent.leaf.hex()[:11] == "0303b4a2792"
    assert [n.hex()[:11] for n in absent.nodes] == ["0000ead8d25", "010171ca46a"]
    assert verify_namespace(top, b"\x02", absent, [], ns_size=1)
    outside = prove_namespace(NMT_SPEC_LEAVES, b"\x06", ns_size=1)
    assert outside.is_empty
    assert verify_namespace(top, b"\x06", outside, [], ns_size=1)
