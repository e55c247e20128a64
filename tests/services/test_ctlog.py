"""The transparency log against RFC 6962's definitions, written here from the RFC.

``mth``, ``path`` and ``proof`` below are RFC 6962 §2.1's recursive
definitions over the list of entries, taken literally; ``rfc_root_from_path``
is §2.1.1's verification by recomputing the root. The log's proofs must equal
them, verify with them, and a changed proof, leaf, index or size must not.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.errors import InvalidParameterError
from focusflow.services.trust.ctlog import (
    MerkleLog,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def k_of(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(d: list[bytes]) -> bytes:
    if not d:
        return h(b"")
    if len(d) == 1:
        return h(b"\x00" + d[0])
    k = k_of(len(d))
    return h(b"\x01" + mth(d[:k]) + mth(d[k:]))


def path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = k_of(len(d))
    if m < k:
        return [*path(m, d[:k]), mth(d[k:])]
    return [*path(m - k, d[k:]), mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = k_of(n)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True)


def rfc_root_from_path(entry: bytes, m: int, n: int, audit: list[bytes]) -> bytes | None:
    """The root an audit path gives, by the recursion PATH was built with."""
    if n == 1:
        return h(b"\x00" + entry) if not audit else None
    if not audit:
        return None
    k = k_of(n)
    *inner, sibling = audit
    if m < k:
        sub = rfc_root_from_path(entry, m, k, inner)
        return None if sub is None else h(b"\x01" + sub + sibling)
    sub = rfc_root_from_path(entry, m - k, n - k, inner)
    return None if sub is None else h(b"\x01" + sibling + sub)


def entries(n: int) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(n)]


@pytest.mark.parametrize("n", [*range(1, 34), 64, 65, 127, 128, 129, 1000])
def test_roots_and_every_inclusion_proof_are_the_rfcs(n):
    d = entries(n)
    log = MerkleLog()
    for i, e in enumerate(d):
        assert log.append(e) == i
    assert log.root() == mth(d)
    for m in range(n) if n <= 129 else range(0, n, 37):
        audit = log.inclusion_proof(m)
        assert audit == path(m, d)
        assert rfc_root_from_path(d[m], m, n, audit) == log.root()
        assert verify_inclusion(leaf_hash(d[m]), m, n, audit, log.root())


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 100])
def test_every_consistency_proof_is_the_rfcs_and_verifies(n):
    d = entries(n)
    log = MerkleLog(leaf_hash(e) for e in d)
    for m in range(n + 1):
        got = log.consistency_proof(m, n)
        assert got == (proof(m, d) if 0 < m < n else [])
        assert verify_consistency(m, n, got, mth(d[:m]), mth(d))
        assert log.root(m) == mth(d[:m])


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 300), data=st.data())
def test_tampered_proofs_fail(n, data):
    d = entries(n)
    log = MerkleLog(leaf_hash(e) for e in d)
    m = data.draw(st.integers(0, n - 1))
    audit = log.inclusion_proof(m)
    root = log.root()
    leaf = leaf_hash(d[m])
    assert verify_inclusion(leaf, m, n, audit, root)
    assert not verify_inclusion(leaf_hash(b"other"), m, n, audit, root)
    assert not verify_inclusion(leaf, m, n, audit, h(b"wrong root"))
    if n > 1:
        assert not verify_inclusion(leaf, (m + 1) % n, n, audit, root)
        assert not verify_inclusion(leaf, m, n, audit[:-1], root)
        assert not verify_inclusion(leaf, m, n, [*audit, audit[0]], root)
        i = data.draw(st.integers(0, len(audit) - 1))
        bad = list(audit)
        bad[i] = h(bad[i])
        assert not verify_inclusion(leaf, m, n, bad, root)
    first = data.draw(st.integers(1, n))
    cons = log.consistency_proof(first)
    assert verify_consistency(first, n, cons, log.root(first), root)
    if cons:
        j = data.draw(st.integers(0, len(cons) - 1))
        bad = list(cons)
        bad[j] = h(bad[j])
        assert not verify_consistency(first, n, bad, log.root(first), root)
        assert not verify_consistency(first, n, cons, h(b"x"), root)
    if first < n:  # the same proof does not tie the first tree to a smaller second one
        assert not verify_consistency(first, n - 1, cons, log.root(first), log.root(n - 1))


def test_bad_sizes_and_indexes_are_refused():
    log = MerkleLog(leaf_hash(e) for e in entries(5))
    for call in (
        lambda: log.inclusion_proof(5),
        lambda: log.inclusion_proof(-1),
        lambda: log.inclusion_proof(0, 6),
        lambda: log.consistency_proof(6),
        lambda: log.root(9),
    ):
        with pytest.raises(InvalidParameterError):
            call()
    assert MerkleLog().root() == h(b"")
