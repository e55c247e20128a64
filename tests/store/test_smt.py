"""The sparse Merkle tree against a from-the-definition reference, and its proofs."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.errors import DecodeError
from focusflow.store import smt


def reference_root(pairs: dict[bytes, bytes]) -> bytes:
    """docs/state.md read literally: recursive over path bits, lone leaves lifted."""
    leaves = sorted(
        (hashlib.sha256(k).digest(), hashlib.sha256(v).digest()) for k, v in pairs.items()
    )

    def bit(path: bytes, d: int) -> int:
        return (path[d // 8] >> (7 - d % 8)) & 1

    def subtree(items, depth):
        if not items:
            return bytes(32), "empty"
        if len(items) == 1:
            path, vh = items[0]
            return hashlib.sha256(b"\x00" + path + vh).digest(), "leaf"
        left = subtree([x for x in items if bit(x[0], depth) == 0], depth + 1)
        right = subtree([x for x in items if bit(x[0], depth) == 1], depth + 1)
        if left[1] == "empty" and right[1] == "leaf":
            return right
        if right[1] == "empty" and left[1] == "leaf":
            return left
        return hashlib.sha256(b"\x01" + left[0] + right[0]).digest(), "node"

    return subtree(leaves, 0)[0]


def test_empty_and_single():
    assert smt.root_of([]) == smt.EMPTY
    key, value = b"/token/a", b"1"
    expected = hashlib.sha256(
        b"\x00" + hashlib.sha256(key).digest() + hashlib.sha256(value).digest()
    ).digest()
    assert smt.root_of([(key, value)]) == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.binary(min_size=1, max_size=6), st.none() | st.binary(max_size=4)),
        max_size=60,
    ),
    st.integers(1, 5),
)
def test_incremental_updates_equal_reference(changes, batches):
    nodes: dict[bytes, bytes] = {}
    root = smt.EMPTY
    state: dict[bytes, bytes] = {}
    size = max(1, len(changes) // batches)
    for start in range(0, len(changes), size):
        batch = changes[start : start + size]
        root, new = smt.update(nodes.get, root, batch)
        nodes.update(new)
        for key, value in batch:
            if value is None:
                state.pop(key, None)
            else:
                state[key] = value
        assert root == reference_root(state)


def test_proofs_of_presence_and_absence():
    rng = random.Random(7)
    pairs = {f"/k/{i}".encode(): rng.randbytes(8) for i in range(300)}
    nodes: dict[bytes, bytes] = {}
    root, new = smt.update(nodes.get, smt.EMPTY, pairs.items())
    nodes.update(new)
    for key, value in list(pairs.items())[:100]:
        proof = smt.Proof.decode(smt.prove(nodes.get, root, key).encode())
        assert smt.verify_proof(root, key, value, proof)
        assert not smt.verify_proof(root, key, value + b"!", proof)
        assert not smt.verify_proof(root, key, None, proof)
        assert not smt.verify_proof(root, key + b"x", value, proof)
    absent_kinds = set()
    for i in range(100):
        key = f"/absent/{i}".encode()
        proof = smt.Proof.decode(smt.prove(nodes.get, root, key).encode())
        absent_kinds.add(proof.leaf is None)
        assert smt.verify_proof(root, key, None, proof)
        assert not smt.verify_proof(root, key, b"anything", proof)
        # The same proof cannot exclude a key that is present.
        assert not smt.verify_proof(root, next(iter(pairs)), None, proof)
    assert absent_kinds == {True, False}  # both exclusion shapes were exercised


def test_tampered_proofs_fail():
    nodes: dict[bytes, bytes] = {}
    pairs = [(bytes([i]), bytes([i])) for i in range(50)]
    root, new = smt.update(nodes.get, smt.EMPTY, pairs)
    nodes.update(new)
    proof = smt.prove(nodes.get, root, b"\x05")
    for i in range(len(proof.siblings)):
        sibs = list(proof.siblings)
        sibs[i] = bytes(31) + b"\x01"
        assert not smt.verify_proof(root, b"\x05", b"\x05", smt.Proof(tuple(sibs)))
    assert not smt.verify_proof(root, b"\x05", b"\x05", smt.Proof(proof.siblings[:-1]))


@pytest.mark.parametrize(
    "data", [b"", b"\x80", b"\x84\x01\x40\x80\xf6", b"\x84\x02\x41\x80\x81\x41\x00\xf6"]
)
def test_malformed_proofs_raise_decode_error(data):
    with pytest.raises(DecodeError):
        smt.Proof.decode(data)


def test_missing_node_is_reported():
    nodes: dict[bytes, bytes] = {}
    root, _ = smt.update(nodes.get, smt.EMPTY, [(b"a", b"1"), (b"b", b"2")])
    with pytest.raises(smt.MissingNodeError):
        smt.update({}.get, root, [(b"c", b"3")])
