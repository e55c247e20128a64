"""A compact sparse Merkle tree: one root over every key of the state.

Each key sits on the path ``sha256(key)`` (256 bits, most significant first) of
a binary tree. Storing all 2^256 positions is impossible and unnecessary: a
subtree with no keys hashes to 32 zero bytes, and a subtree with exactly one
key is represented by that key's leaf, placed as high as it can go (at the
shortest prefix no other key shares). So the tree has about 2n nodes for n keys
and a path is about log2(n) nodes long, not 256.

Hashing (docs/state.md is the normative text):

* empty subtree: ``EMPTY = 0x00 * 32``
* leaf: ``sha256(0x00 || path || sha256(value))``
* internal node: ``sha256(0x01 || left || right)``; a node whose children are an
  empty subtree and a leaf is never formed (the leaf moves up instead).

A proof of a key is the list of sibling hashes from the root down to where the
key's path ends (at its leaf, at an empty subtree, or at another key's leaf
that shares the prefix); :func:`verify_proof` folds them back up and needs
nothing but the root.

Updates are batched: :func:`update` descends once through the changed keys,
sorted by path, reading only the nodes on their paths, and returns the new root
with the new nodes, so the caller can persist them in the same transaction as
the data (or drop them, for a speculative execution).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError

EMPTY = bytes(32)
LEAF = 0x00
NODE = 0x01
_EMPTY_KIND, _LEAF_KIND, _NODE_KIND, _UNKNOWN = 0, 1, 2, 3

#: Reads a stored node (65 bytes: kind || 64 bytes) by its hash, None if absent.
NodeReader = Callable[[bytes], bytes | None]

#: A change as the updater sorts it: (path as an int, path, value hash or None
#: to delete); a _Leaf is one that stays, with its value hash.
_Item = tuple[int, bytes, bytes | None]
_Leaf = tuple[int, bytes, bytes]


def key_path(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()


def leaf_hash(path: bytes, value_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + path + value_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


class MissingNodeError(LookupError):
    """The node store lacks a node the root refers to (a corrupt or foreign store)."""


@dataclass(frozen=True)
class Proof:
    """Siblings from the root down, and the other key's leaf that ends the path, if any.

    ``leaf`` is ``(path, value_hash)`` of a different key whose leaf occupies
    the queried key's position: it proves the queried key absent.
    """

    siblings: tuple[bytes, ...]
    leaf: tuple[bytes, bytes] | None = None

    def encode(self) -> bytes:
        """Canonical CBOR ``[bitmap, [non-empty siblings], leaf or null]``."""
        bitmap = bytearray((len(self.siblings) + 7) // 8)
        full = []
        for i, sibling in enumerate(self.siblings):
            if sibling != EMPTY:
                bitmap[i >> 3] |= 0x80 >> (i & 7)
                full.append(sibling)
        leaf = None if self.leaf is None else list(self.leaf)
        return encode([len(self.siblings), bytes(bitmap), full, leaf])

    @classmethod
    def decode(cls, data: bytes) -> Proof:
        value = decode(data, "proof")
        try:
            depth, bitmap, full, leaf = value
            if not (isinstance(depth, int) and 0 <= depth <= 256):
                raise ValueError("depth")
            if not isinstance(bitmap, bytes) or len(bitmap) != (depth + 7) // 8:
                raise ValueError("bitmap")
            it = iter(full)
            siblings = []
            for i in range(depth):
                if bitmap[i >> 3] & (0x80 >> (i & 7)):
                    sibling = next(it)
                    if not isinstance(sibling, bytes) or len(sibling) != 32:
                        raise ValueError("sibling")
                    siblings.append(sibling)
                else:
                    siblings.append(EMPTY)
            if next(it, None) is not None:
                raise ValueError("extra siblings")
            if leaf is not None:
                path, value_hash = leaf
                if not (isinstance(path, bytes) and isinstance(value_hash, bytes)):
                    raise ValueError("leaf")
                if len(path) != 32 or len(value_hash) != 32:
                    raise ValueError("leaf")
                leaf = (path, value_hash)
        except (ValueError, TypeError, StopIteration) as exc:
            raise DecodeError(f"malformed proof: bad {exc}") from None
        return cls(tuple(siblings), leaf)


def _bit(path_int: int, depth: int) -> int:
    return (path_int >> (255 - depth)) & 1


def verify_proof(root: bytes, key: bytes, value: bytes | None, proof: Proof) -> bool:
    """True when ``proof`` shows ``key`` maps to ``value`` under ``root`` (absent, for None)."""
    path = key_path(key)
    depth = len(proof.siblings)
    if depth > 256:
        return False
    if value is not None:
        if proof.leaf is not None:
            return False
        h = leaf_hash(path, hashlib.sha256(value).digest())
    elif proof.leaf is None:
        h = EMPTY
    else:
        other, other_value = proof.leaf
        if other == path or not _same_prefix(other, path, depth):
            return False
        h = leaf_hash(other, other_value)
    p = int.from_bytes(path, "big")
    for d in range(depth - 1, -1, -1):
        sibling = proof.siblings[d]
        h = node_hash(sibling, h) if _bit(p, d) else node_hash(h, sibling)
    return h == root


def _same_prefix(a: bytes, b: bytes, bits: int) -> bool:
    if bits == 0:
        return True
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return x >> (256 - bits) == 0


class _Updater:
    """One batch update: reads old nodes through ``read``, collects new ones."""

    def __init__(self, read: NodeReader) -> None:
        self.read = read
        self.new: dict[bytes, bytes] = {}

    def node(self, h: bytes) -> bytes:
        data = self.new.get(h)
        if data is None:
            data = self.read(h)
            if data is None:
                raise MissingNodeError(f"state tree node {h.hex()} is missing")
        return data

    def kind(self, h: bytes) -> int:
        if h == EMPTY:
            return _EMPTY_KIND
        return _LEAF_KIND if self.node(h)[0] == LEAF else _NODE_KIND

    def put_leaf(self, path: bytes, value_hash: bytes) -> bytes:
        h = leaf_hash(path, value_hash)
        self.new[h] = b"\x00" + path + value_hash
        return h

    def join(self, left: bytes, lkind: int, right: bytes, rkind: int) -> tuple[bytes, int]:
        """The parent of two subtrees, lifting a lone leaf instead of wrapping it."""
        if right == EMPTY:
            if left == EMPTY:
                return EMPTY, _EMPTY_KIND
            if lkind == _UNKNOWN:
                lkind = self.kind(left)
            if lkind == _LEAF_KIND:
                return left, _LEAF_KIND
        elif left == EMPTY:
            if rkind == _UNKNOWN:
                rkind = self.kind(right)
            if rkind == _LEAF_KIND:
                return right, _LEAF_KIND
        h = hashlib.sha256(b"\x01" + left + right).digest()
        self.new[h] = b"\x01" + left + right
        return h, _NODE_KIND

    def build(self, items: list[_Leaf], lo: int, hi: int, depth: int) -> tuple[bytes, int]:
        """A subtree holding exactly the (non-deleted) items[lo:hi]."""
        if lo == hi:
            return EMPTY, _EMPTY_KIND
        if hi - lo == 1:
            _, path, vh = items[lo]
            return self.put_leaf(path, vh), _LEAF_KIND
        mid = _split(items, lo, hi, depth)
        left = self.build(items, lo, mid, depth + 1)
        right = self.build(items, mid, hi, depth + 1)
        return self.join(left[0], left[1], right[0], right[1])

    def update(
        self, h: bytes, items: list[_Item], lo: int, hi: int, depth: int
    ) -> tuple[bytes, int]:
        if lo == hi:
            return h, _UNKNOWN
        if h == EMPTY:
            live = _live(items[lo:hi])
            return self.build(live, 0, len(live), depth)
        data = self.node(h)
        if data[0] == LEAF:
            path, vh = data[1:33], data[33:65]
            p = int.from_bytes(path, "big")
            batch = items[lo:hi]
            if not any(it[0] == p for it in batch):
                batch.append((p, path, vh))
                batch.sort(key=_first)
            live = _live(batch)
            return self.build(live, 0, len(live), depth)
        left, right = data[1:33], data[33:65]
        mid = _split(items, lo, hi, depth)
        nl, lk = self.update(left, items, lo, mid, depth + 1)
        nr, rk = self.update(right, items, mid, hi, depth + 1)
        if nl == left and nr == right:
            return h, _NODE_KIND
        return self.join(nl, lk, nr, rk)


def _live(items: Iterable[_Item]) -> list[_Leaf]:
    """The items that set a value (deletions dropped), typed as such."""
    return [(p, path, vh) for p, path, vh in items if vh is not None]


def _first(item: _Item) -> int:
    return item[0]


def _split(items: Sequence[_Item], lo: int, hi: int, depth: int) -> int:
    """First index of items[lo:hi] (sorted, same first ``depth`` bits) with bit ``depth`` set."""
    shift = 255 - depth
    pivot = ((items[lo][0] >> shift) | 1) << shift
    return bisect.bisect_left(items, pivot, lo, hi, key=_first)


def update(
    read: NodeReader, root: bytes, changes: Iterable[tuple[bytes, bytes | None]]
) -> tuple[bytes, dict[bytes, bytes]]:
    """Apply ``(key, value or None to delete)`` changes; returns (new root, new nodes).

    Later changes of the same key win. Old nodes are left in place: roots of
    earlier blocks stay provable until the store prunes them.
    """
    latest: dict[bytes, bytes | None] = {}
    for key, value in changes:
        latest[key] = value
    items: list[_Item] = []
    for key, value in latest.items():
        path = hashlib.sha256(key).digest()
        vh = None if value is None else hashlib.sha256(value).digest()
        items.append((int.from_bytes(path, "big"), path, vh))
    items.sort(key=_first)
    up = _Updater(read)
    new_root, _ = up.update(root, items, 0, len(items), 0)
    return new_root, up.new


def prove(read: NodeReader, root: bytes, key: bytes) -> Proof:
    """The proof of ``key``'s value (or absence) under ``root``."""
    path = key_path(key)
    p = int.from_bytes(path, "big")
    siblings: list[bytes] = []
    h = root
    depth = 0
    while h != EMPTY:
        data = read(h)
        if data is None:
            raise MissingNodeError(f"state tree node {h.hex()} is missing")
        if data[0] == LEAF:
            other = data[1:33]
            if other == path:
                return Proof(tuple(siblings))
            return Proof(tuple(siblings), (other, data[33:65]))
        left, right = data[1:33], data[33:65]
        if _bit(p, depth):
            siblings.append(left)
            h = right
        else:
            siblings.append(right)
            h = left
        depth += 1
    return Proof(tuple(siblings))


def root_of(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Root of a tree holding exactly ``pairs``, built from nothing (checks and tests)."""
    nothing: dict[bytes, bytes] = {}
    return update(nothing.get, EMPTY, pairs)[0]
