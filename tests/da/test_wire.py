"""Byte and JSON forms of share and fraud proofs: round trips, and hostile input refused
within bounds; and fraud proofs built against committed roots that are not the square's."""

from __future__ import annotations

import json

import pytest

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.da import (
    ExtendedSquare,
    axis_root_of,
    befp_from_cbor,
    befp_from_json,
    befp_to_cbor,
    befp_to_json,
    find_bad_encoding,
    find_bad_encoding_committed,
    share_proof_from_cbor,
    share_proof_to_cbor,
    verify_bad_encoding_proof,
    verify_share_proof,
)
from focusflow.da.merkle import merkle_root
from focusflow.da.wire import MAX_PROOF_NODES, MAX_WIDTH


@pytest.fixture(scope="module")
def eds(block_square):
    return block_square(5, 40, 200)


@pytest.fixture(scope="module")
def bad(eds):
    data = eds.data.copy()
    data[1, eds.width - 1, 7] ^= 0x21
    return ExtendedSquare(data)


def test_share_proof_round_trips_through_canonical_cbor(eds):
    for row, col in ((0, 0), (3, 9), (eds.width - 1, eds.width - 1)):
        proof = eds.proof(row, col)
        back = share_proof_from_cbor(decode(encode(share_proof_to_cbor(proof))))
        assert back == proof and verify_share_proof(eds.data_root(), back)


def test_fraud_proof_round_trips_through_cbor_and_json(bad):
    proof = find_bad_encoding(bad)
    assert befp_from_cbor(decode(encode(befp_to_cbor(proof)))) == proof
    assert befp_from_json(json.loads(json.dumps(befp_to_json(proof)))) == proof
    assert verify_bad_encoding_proof(bad.data_root(), befp_from_json(befp_to_json(proof)))


def _mutations(value: list) -> list:
    """Variants of a share proof's CBOR form that break one bound each."""
    out = []
    for i, wrong in (
        (0, -1),  # row
        (1, MAX_WIDTH + 1),  # col
        (2, b"\x00" * 511),  # share size
        (3, "diag"),  # axis
        (6, True),  # total: a bool is no integer
        (7, [b"\x00" * 90] * (MAX_PROOF_NODES + 1)),  # too many nodes
        (7, [b"\x00" * 89]),  # a node of the wrong size
        (8, b"\x00" * 32),  # axis root size
        (11, [b"\x00" * 31]),  # aunt size
        (11, "aunts"),
    ):
        v = list(value)
        v[i] = wrong
        out.append(v)
    out.append(value[:-1])
    out.append("not a list")
    return out


def test_malformed_share_proofs_are_refused(eds):
    good = share_proof_to_cbor(eds.proof(2, 3))
    for value in _mutations(good):
        with pytest.raises(DecodeError):
            share_proof_from_cbor(value)


def test_malformed_fraud_proofs_are_refused(bad):
    good = befp_to_cbor(find_bad_encoding(bad))
    for i, wrong in ((0, "x"), (1, -1), (2, b"\x00"), (3, 1 << 40), (5, [b"1"]), (6, "s")):
        v = list(good)
        v[i] = wrong
        with pytest.raises(DecodeError):
            befp_from_cbor(v)
    v = list(good)
    v[6] = [good[6][0]] * (MAX_WIDTH // 2 + 1)
    with pytest.raises(DecodeError):
        befp_from_cbor(v)
    body = befp_to_json(find_bad_encoding(bad))
    for key, wrong in (("shares", {}), ("axis_root", "zz"), ("axis_root_proof", [])):
        with pytest.raises(DecodeError):
            befp_from_json({**body, key: wrong})
    with pytest.raises(DecodeError):
        befp_from_json([])


def test_axis_root_of_a_received_row_matches_the_committed_root(eds):
    assert axis_root_of(eds.row(3), "row", 3) == eds.row_roots()[3]
    assert axis_root_of(eds.col(5), "col", 5) == eds.col_roots()[5]
    tampered = eds.row(3)
    tampered[0] = bytes(512)
    assert axis_root_of(tampered, "row", 3) != eds.row_roots()[3]


def test_committed_roots_a_valid_square_has_no_proof(eds):
    assert find_bad_encoding_committed(eds, eds.row_roots(), eds.col_roots()) is None


def test_bad_row_is_proven_against_the_committed_roots(bad):
    proof = find_bad_encoding_committed(bad, bad.row_roots(), bad.col_roots())
    assert proof is not None and (proof.axis, proof.index) == ("row", 1)
    assert verify_bad_encoding_proof(bad.data_root(), proof)


def test_column_roots_that_do_not_match_the_rows_are_proven_with_row_proofs(eds):
    """A producer whose committed column root is not its rows' column: the
    column is proven bad with shares proven along the rows."""
    rows, cols = eds.row_roots(), list(eds.col_roots())
    cols[2] = eds.col_roots()[3]  # another column's root
    data_root = merkle_root(rows + cols)
    proof = find_bad_encoding_committed(eds, rows, cols)
    assert proof is not None and (proof.axis, proof.index) == ("col", 2)
    assert all(sp.axis == "row" for sp in proof.shares)
    assert verify_bad_encoding_proof(data_root, proof)
    assert not verify_bad_encoding_proof(eds.data_root(), proof)
