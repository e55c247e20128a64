"""Namespaced Merkle trees: ranges, inclusion, absence and completeness."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.da.errors import InvalidShareError
from focusflow.da.nmt import (
    empty_root,
    inner_node,
    leaf_node,
    prove_namespace,
    prove_range,
    root,
    verify_namespace,
    verify_range,
)

MAX = b"\xff"


def _leaves(spaces: list[int]) -> list[bytes]:
    return [bytes([ns]) + b"data-%d" % i for i, ns in enumerate(sorted(spaces))]


def test_empty_tree():
    assert (
        root([])
        == empty_root()
        == bytes(58)
        + bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    )


def test_ignore_max_namespace():
    a, parity = leaf_node(b"\x01x", 1), leaf_node(MAX + b"y", 1)
    assert inner_node(a, parity, 1)[:2] == b"\x01\x01"
    assert inner_node(a, parity, 1, ignore_max_ns=False)[:2] == b"\x01\xff"
    assert inner_node(parity, parity, 1)[:2] == MAX * 2


def test_unordered_leaves_are_rejected():
    with pytest.raises(InvalidShareError):
        root([b"\x02a", b"\x01b"], ns_size=1)


@settings(max_examples=60, deadline=None)
@given(spaces=st.lists(st.integers(0, 254), min_size=1, max_size=20), query=st.integers(0, 255))
def test_namespace_proofs_verify_and_are_complete(spaces, query):
    leaves = _leaves(spaces)
    top = root(leaves, ns_size=1)
    ns = bytes([query])
    proof = prove_namespace(leaves, ns, ns_size=1)
    found = [d for d in leaves if d[:1] == ns]
    assert verify_namespace(top, ns, proof, found, ns_size=1)
    if found:
        # Dropping a leaf of the namespace breaks the proof.
        assert not verify_namespace(top, ns, proof, found[1:], ns_size=1)
        # So does a proof that hides the last leaf of the namespace in its right nodes.
        if len(found) > 1:
            short = prove_range(
                [leaf_node(d, 1) for d in leaves], proof.start, proof.end - 1, ns_size=1
            )
            assert not verify_namespace(top, ns, short, found[:-1], ns_size=1)
    elif not proof.is_empty:
        assert proof.leaf is not None and proof.leaf[:1] > ns
        assert not verify_namespace(
            top, ns, dataclasses.replace(proof, leaf=leaf_node(ns + b"z", 1)), [], ns_size=1
        )


@settings(max_examples=40, deadline=None)
@given(spaces=st.lists(st.integers(0, 255), min_size=1, max_size=17), data=st.data())
def test_range_proofs(spaces, data):
    leaves = _leaves(spaces)
    top = root(leaves, ns_size=1)
    start = data.draw(st.integers(0, len(leaves) - 1))
    end = data.draw(st.integers(start + 1, len(leaves)))
    proof = prove_range([leaf_node(d, 1) for d in leaves], start, end, ns_size=1)
    assert verify_range(top, proof, leaves[start:end], ns_size=1)
    tampered = [leaves[start][:1] + b"!" + leaves[start][2:], *leaves[start + 1 : end]]
    assert not verify_range(top, proof, tampered, ns_size=1)
    if proof.nodes:
        assert not verify_range(
            top, dataclasses.replace(proof, nodes=proof.nodes[1:]), leaves[start:end], ns_size=1
        )
