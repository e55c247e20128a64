"""RFC 6962 Merkle trees as CometBFT hashes them (the data root's tree)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.da.merkle import merkle_proof, merkle_root, verify_merkle


@pytest.mark.parametrize(
    ("leaves", "want"),
    [
        # cometbft crypto/merkle tree_test.go, TestParallelHashFromByteSlicesCorrectness.
        ([], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ([b"\x01\x02\x03"], "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"),
        ([b""], "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
        (
            [b"\x01\x02\x03", b"\x04\x05\x06"],
            "82e6cfce00453804379b53962939eaa7906b39904be0813fcadd31b100773c4b",
        ),
        (
            [b"\x01\x02", b"\x03\x04", b"\x05\x06", b"\x07\x08", b"\x09\x0a"],
            "f326493eceab4f2d9ffbc78c59432a0a005d6ea98392045c74df5d14a113be18",
        ),
    ],
)
def test_cometbft_vectors(leaves, want):
    assert merkle_root(leaves).hex() == want


@settings(max_examples=40, deadline=None)
@given(leaves=st.lists(st.binary(max_size=8), min_size=1, max_size=40), data=st.data())
def test_proofs_verify_and_fail_when_tampered(leaves, data):
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = merkle_proof(leaves, index)
    assert verify_merkle(root, leaves[index], proof)
    assert not verify_merkle(root, leaves[index] + b"x", proof)
    if len(leaves) > 1:
        other = (index + 1) % len(leaves)
        if leaves[other] != leaves[index]:
            assert not verify_merkle(root, leaves[index], dataclasses.replace(proof, index=other))
        assert not verify_merkle(root, leaves[index], dataclasses.replace(proof, aunts=()))
