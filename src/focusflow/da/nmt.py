"""Namespaced Merkle trees (NMT): Merkle trees whose nodes know their namespace range.

Leaves are namespaced data ``ns || message``. Every node is
``min_ns || max_ns || digest`` (``2·ns_size + 32`` bytes):

* leaf: ``ns || ns || SHA-256(0x00 || ns || message)``;
* inner: ``min(l.min, r.min) || max_ns || SHA-256(0x01 || l || r)``, where
  ``max_ns = max(l.max, r.max)`` except that, with *IgnoreMaxNamespace* (the
  setting Celestia uses), the maximum namespace (all ``0xFF``, the namespace of
  parity shares) is left out of the range whenever other namespaces are
  present: if ``r.min`` is the maximum namespace the node takes ``l.max``.

The tree over ``n`` leaves splits them at the largest power of two below
``n`` (RFC 6962). The empty tree's root is ``0…0 || 0…0 || SHA-256("")``.
Source: celestiaorg/nmt ``docs/spec/nmt.md`` and ``hasher.go``'s documented
rules; leaves must be pushed in non-decreasing namespace order.

Proofs here carry the tree's leaf count (``total``) so that verification needs
no guessing of the tree shape; the node list and its in-order ordering are the
nmt spec's.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from itertools import pairwise
from typing import TypedDict, Unpack

from focusflow.da.errors import InvalidShareError
from focusflow.da.namespace import NAMESPACE_SIZE

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


class _TreeShape(TypedDict):
    """The parameters that shape a tree's nodes, passed on as keywords."""

    ns_size: int
    ignore_max_ns: bool


def split_point(n: int) -> int:
    """The largest power of two strictly below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def leaf_node(data: bytes, ns_size: int = NAMESPACE_SIZE) -> bytes:
    """The node of a leaf holding namespaced ``data``."""
    ns = data[:ns_size]
    return ns + ns + sha256(LEAF_PREFIX + data).digest()


def inner_node(
    left: bytes, right: bytes, ns_size: int = NAMESPACE_SIZE, ignore_max_ns: bool = True
) -> bytes:
    """The node over two child nodes."""
    l_min, l_max = left[:ns_size], left[ns_size : 2 * ns_size]
    r_min, r_max = right[:ns_size], right[ns_size : 2 * ns_size]
    max_ns = b"\xff" * ns_size
    if ignore_max_ns and l_min == max_ns:
        hi = max_ns
    elif ignore_max_ns and r_min == max_ns:
        hi = l_max
    else:
        hi = max(l_max, r_max)
    return min(l_min, r_min) + hi + sha256(NODE_PREFIX + left + right).digest()


def empty_root(ns_size: int = NAMESPACE_SIZE) -> bytes:
    return bytes(2 * ns_size) + sha256(b"").digest()


def root_of_leaf_nodes(
    nodes: list[bytes], ns_size: int = NAMESPACE_SIZE, ignore_max_ns: bool = True
) -> bytes:
    """The root over leaf nodes (already hashed)."""
    if not nodes:
        return empty_root(ns_size)
    if len(nodes) == 1:
        return nodes[0]
    k = split_point(len(nodes))
    return inner_node(
        root_of_leaf_nodes(nodes[:k], ns_size, ignore_max_ns),
        root_of_leaf_nodes(nodes[k:], ns_size, ignore_max_ns),
        ns_size,
        ignore_max_ns,
    )


def _check_order(leaves: list[bytes], ns_size: int) -> None:
    for a, b in pairwise(leaves):
        if b[:ns_size] < a[:ns_size]:
            raise InvalidShareError("NMT leaves must be in non-decreasing namespace order")


def root(leaves: list[bytes], ns_size: int = NAMESPACE_SIZE, ignore_max_ns: bool = True) -> bytes:
    """The root of the NMT over namespaced ``leaves``."""
    _check_order(leaves, ns_size)
    return root_of_leaf_nodes([leaf_node(d, ns_size) for d in leaves], ns_size, ignore_max_ns)


@dataclass(frozen=True)
class Proof:
    """Nodes proving leaves ``[start, end)`` of a tree of ``total`` leaves.

    ``nodes`` are the roots of the subtrees left and right of the range, in
    in-order. An absence proof sets ``leaf`` to the node of the leaf at
    ``start`` (the first leaf above the queried namespace); an empty proof
    (namespace outside the root's range) has ``start == end == 0`` and no nodes.
    """

    start: int
    end: int
    total: int
    nodes: tuple[bytes, ...]
    leaf: bytes | None = None

    @property
    def is_empty(self) -> bool:
        return self.start == self.end == 0 and not self.nodes and self.leaf is None


def prove_range(
    leaf_nodes: list[bytes],
    start: int,
    end: int,
    ns_size: int = NAMESPACE_SIZE,
    ignore_max_ns: bool = True,
) -> Proof:
    """Proof of leaves ``[start, end)`` given all leaf nodes of the tree."""
    tree: _TreeShape = {"ns_size": ns_size, "ignore_max_ns": ignore_max_ns}
    total = len(leaf_nodes)
    if not 0 <= start < end <= total:
        raise InvalidShareError(f"range [{start}, {end}) is outside a tree of {total} leaves")
    nodes: list[bytes] = []

    def walk(lo: int, hi: int) -> None:
        if hi <= start or lo >= end:
            nodes.append(root_of_leaf_nodes(leaf_nodes[lo:hi], **tree))
        elif hi - lo > 1:
            k = split_point(hi - lo)
            walk(lo, lo + k)
            walk(lo + k, hi)

    walk(0, total)
    return Proof(start, end, total, tuple(nodes))


def _root_from_proof(
    proof: Proof, range_nodes: list[bytes], **tree: Unpack[_TreeShape]
) -> tuple[bytes, list[bytes], list[bytes]]:
    """Root implied by the proof and the range's leaf nodes; also the left and right nodes."""
    if len(range_nodes) != proof.end - proof.start:
        raise InvalidShareError("the proof's range and the leaves given differ in length")
    nodes = iter(proof.nodes)
    leaves = iter(range_nodes)
    left: list[bytes] = []
    right: list[bytes] = []

    def walk(lo: int, hi: int) -> bytes:
        if hi <= proof.start or lo >= proof.end:
            node = next(nodes)
            (left if hi <= proof.start else right).append(node)
            return node
        if hi - lo == 1:
            return next(leaves)
        k = split_point(hi - lo)
        return inner_node(walk(lo, lo + k), walk(lo + k, hi), **tree)

    try:
        computed = walk(0, proof.total)
    except StopIteration:
        raise InvalidShareError("the proof has too few nodes") from None
    if next(nodes, None) is not None:
        raise InvalidShareError("the proof has too many nodes")
    return computed, left, right


def verify_range(
    root_node: bytes,
    proof: Proof,
    leaves: list[bytes],
    ns_size: int = NAMESPACE_SIZE,
    ignore_max_ns: bool = True,
) -> bool:
    """Whether namespaced ``leaves`` are leaves ``[start, end)`` of the tree with this root."""
    if not 0 <= proof.start < proof.end <= proof.total:
        return False
    try:
        _check_order(leaves, ns_size)
        computed, _, _ = _root_from_proof(
            proof,
            [leaf_node(d, ns_size) for d in leaves],
            ns_size=ns_size,
            ignore_max_ns=ignore_max_ns,
        )
    except InvalidShareError:
        return False
    return computed == root_node


def prove_namespace(
    leaves: list[bytes], ns: bytes, ns_size: int = NAMESPACE_SIZE, ignore_max_ns: bool = True
) -> Proof:
    """Proof of all leaves in namespace ``ns``, or of their absence."""
    tree: _TreeShape = {"ns_size": ns_size, "ignore_max_ns": ignore_max_ns}
    nodes = [leaf_node(d, ns_size) for d in leaves]
    top = root_of_leaf_nodes(nodes, **tree)
    if not nodes or not top[:ns_size] <= ns <= top[ns_size : 2 * ns_size]:
        return Proof(0, 0, len(nodes), ())
    spaces = [d[:ns_size] for d in leaves]
    start = next(i for i, s in enumerate(spaces) if s >= ns)
    if spaces[start] == ns:
        end = start
        while end < len(spaces) and spaces[end] == ns:
            end += 1
        return prove_range(nodes, start, end, **tree)
    proof = prove_range(nodes, start, start + 1, **tree)
    return Proof(proof.start, proof.end, proof.total, proof.nodes, leaf=nodes[start])


def verify_namespace(
    root_node: bytes,
    ns: bytes,
    proof: Proof,
    leaves: list[bytes],
    ns_size: int = NAMESPACE_SIZE,
    ignore_max_ns: bool = True,
) -> bool:
    """Whether ``leaves`` are all of the tree's leaves in ``ns`` (none, for an absence proof).

    Completeness: every proof node left of the range must lie below ``ns``
    and every node right of it above ``ns``, so no leaf of ``ns`` is hidden.
    """
    tree: _TreeShape = {"ns_size": ns_size, "ignore_max_ns": ignore_max_ns}
    lo_ns, hi_ns = root_node[:ns_size], root_node[ns_size : 2 * ns_size]
    if proof.is_empty:
        return not leaves and (not lo_ns <= ns <= hi_ns or root_node == empty_root(ns_size))
    if not 0 <= proof.start < proof.end <= proof.total:
        return False
    if proof.leaf is not None:
        if leaves or proof.end - proof.start != 1 or not proof.leaf[:ns_size] > ns:
            return False
        range_nodes = [proof.leaf]
    else:
        if any(d[:ns_size] != ns for d in leaves):
            return False
        range_nodes = [leaf_node(d, ns_size) for d in leaves]
    try:
        computed, left, right = _root_from_proof(proof, range_nodes, **tree)
    except InvalidShareError:
        return False
    complete = all(n[ns_size : 2 * ns_size] < ns for n in left) and all(
        n[:ns_size] > ns for n in right
    )
    return complete and computed == root_node
