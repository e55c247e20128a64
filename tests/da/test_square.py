"""The extended square's public API: extend, roots, proofs, repair."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.errors import FocusflowError
from focusflow.da import (
    ExtendedSquare,
    InvalidShareError,
    RepairError,
    RootMismatchError,
    extend,
    prove_namespace_in_row,
    repair,
    square_from_block,
    verify_namespace_in_row,
    verify_share_proof,
)
from focusflow.da.leopard import encode
from focusflow.da.namespace import PARITY_SHARE_NAMESPACE, namespace_v0


def _block_square(seed: int, txs: int = 30) -> list[bytes]:
    rng = random.Random(seed)
    blobs = [
        (namespace_v0(b"ns-%05d" % rng.randrange(10**5)), rng.randbytes(700)) for _ in range(3)
    ]
    return square_from_block([rng.randbytes(rng.randrange(1, 400)) for _ in range(txs)], blobs)


@pytest.fixture(scope="module")
def eds() -> ExtendedSquare:
    return extend(_block_square(1))


def test_shape_and_quadrants(eds):
    k = eds.k
    assert eds.width == 2 * k and len(eds.original()) == k * k
    for i in range(eds.width):
        row = np.frombuffer(b"".join(eds.row(i)), dtype=np.uint8).reshape(2 * k, -1)
        col = np.frombuffer(b"".join(eds.col(i)), dtype=np.uint8).reshape(2 * k, -1)
        assert np.array_equal(encode(row[:k]), row[k:])
        assert np.array_equal(encode(col[:k]), col[k:])


def test_roots_carry_namespace_ranges(eds):
    k = eds.k
    for i, root in enumerate(eds.row_roots()):
        if i >= k:
            assert root[:29] == root[29:58] == PARITY_SHARE_NAMESPACE
        else:
            # IgnoreMaxNamespace: parity leaves do not widen an original row's range.
            assert root[:29] == eds.share(i, 0)[:29]
            assert root[29:58] == eds.share(i, k - 1)[:29]
    assert len(eds.data_root()) == 32


def test_every_share_proof_verifies_and_tampering_fails(eds):
    root = eds.data_root()
    rng = random.Random(7)
    for r in range(eds.width):
        for c in range(eds.width):
            proof = eds.proof(r, c)
            assert proof.share == eds.share(r, c)
            assert verify_share_proof(root, proof)
            if rng.random() < 0.1:
                flip = rng.randrange(512)
                bad = proof.share[:flip] + bytes([proof.share[flip] ^ 1]) + proof.share[flip + 1 :]
                assert not verify_share_proof(root, dataclasses.replace(proof, share=bad))
                assert not verify_share_proof(
                    root, dataclasses.replace(proof, col=(c + 1) % eds.width)
                )
                assert not verify_share_proof(bytes(32), proof)
                other = next(x for x in eds.row_roots() if x != proof.axis_root)
                assert not verify_share_proof(root, dataclasses.replace(proof, axis_root=other))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**16), where=st.integers(0, 4 * 4 * 512 - 1))
def test_any_changed_byte_changes_the_data_root(seed, where):
    shares = [random.Random(seed + i).randbytes(512) for i in range(16)]
    before = extend(shares).data_root()
    index, offset = divmod(where, 512)
    changed = bytearray(shares[index])
    changed[offset] ^= 0xFF
    shares[index] = bytes(changed)
    assert extend(shares).data_root() != before


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), keep=st.floats(0.55, 1.0))
def test_repair_from_random_subsets(seed, keep):
    eds = extend([random.Random(seed + i).randbytes(512) for i in range(16)])
    rng = random.Random(seed)
    partial = [
        [eds.share(r, c) if rng.random() < keep else None for c in range(8)] for r in range(8)
    ]
    # A random subset may not determine the square; when it does, repair gives it back.
    try:
        rebuilt = repair(partial, data_root=eds.data_root())
    except RepairError:
        return
    assert np.array_equal(rebuilt.data, eds.data)


def test_repair_from_any_single_quadrant(eds):
    w, k = eds.width, eds.k
    for r0, c0 in ((0, 0), (0, k), (k, 0), (k, k)):
        partial = [
            [eds.share(r, c) if r0 <= r < r0 + k and c0 <= c < c0 + k else None for c in range(w)]
            for r in range(w)
        ]
        assert repair(partial).data_root() == eds.data_root()


def test_repair_of_an_unrecoverable_square_is_a_typed_error(eds):
    # Withhold a (k+1) x (k+1) block: every row and column then has < k shares known.
    w, k = eds.width, eds.k
    partial = [[None if r <= k and c <= k else eds.share(r, c) for c in range(w)] for r in range(w)]
    with pytest.raises(RepairError) as err:
        repair(partial)
    assert isinstance(err.value, FocusflowError) and err.value.code == "da_unrepairable"


def test_repair_checks_the_data_root(eds):
    partial = [[eds.share(r, c) for c in range(eds.width)] for r in range(eds.width)]
    partial[0][0] = None
    with pytest.raises(RootMismatchError):
        repair(partial, data_root=bytes(32))


@pytest.mark.parametrize("count", [0, 3, 8])
def test_extend_rejects_non_squares(count):
    with pytest.raises(InvalidShareError):
        extend([bytes(512)] * count)


def test_extend_rejects_short_shares():
    with pytest.raises(InvalidShareError):
        extend([bytes(511)])


def test_namespace_proofs_in_a_row():
    # Row 0 holds the transactions and ns_a; ns_gap sorts between them.
    ns_a, ns_b, ns_gap = (
        namespace_v0(b"ns-aaaa"),
        namespace_v0(b"ns-cccc"),
        namespace_v0(b"ns-aa"),
    )
    square = extend(square_from_block([b"tx"], [(ns_a, b"\x01" * 100), (ns_b, b"\x02" * 100)]))
    root = square.row_roots()[0]
    shares, proof = prove_namespace_in_row(square, 0, ns_a)
    assert len(shares) == 1 and shares[0][:29] == ns_a
    assert verify_namespace_in_row(root, ns_a, shares, proof)
    assert not verify_namespace_in_row(root, ns_a, [], proof)
    shares, absent = prove_namespace_in_row(square, 0, ns_gap)
    assert shares == [] and absent.leaf is not None
    assert verify_namespace_in_row(root, ns_gap, [], absent)
    assert not verify_namespace_in_row(root, ns_b, [], absent)
