"""A certificate transparency log: the Merkle tree of RFC 6962 (RFC 9162 §2.1).

Entries are appended, never changed. The tree over ``n`` entries is RFC 6962's
``MTH``: a leaf hashes ``SHA-256(0x00 || entry)``, a node ``SHA-256(0x01 ||
left || right)``, and a tree of ``n > 1`` leaves splits at ``k``, the largest
power of two below ``n``. An *inclusion proof* (``PATH``) shows that an entry
is the ``m``-th leaf of the tree of size ``n``; a *consistency proof*
(``PROOF``) shows that the tree of size ``m`` is a prefix of the tree of size
``n``. Both are the RFC's recursive definitions.

Every complete, aligned subtree's hash is kept (level ``h`` holds the hashes
of the subtrees of ``2**h`` leaves that are full), so any subtree the
recursion asks for is one lookup or a split into one lookup and a smaller
right edge: a proof costs O(log² n) hashes at most, under a millisecond at
10^6 entries (bench/trust.py). Verification follows RFC 9162 §2.1.3.2 and
§2.1.4.2 and needs nothing of the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from focusflow.core.errors import InvalidParameterError


def leaf_hash(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


#: The root of the empty tree: SHA-256 of nothing.
EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two below ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleLog:
    """The hashes of an append-only log of entries (the entries are the caller's)."""

    def __init__(self, leaves: Iterable[bytes] = ()) -> None:
        #: ``levels[h][i]``: the hash of the full subtree of leaves
        #: ``[i * 2**h, (i + 1) * 2**h)``.
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append_hash(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, entry: bytes) -> int:
        """Log ``entry``; returns its leaf index."""
        return self.append_hash(leaf_hash(entry))

    def append_hash(self, leaf: bytes) -> int:
        """Log a leaf by its hash (``leaf_hash`` of the entry); returns its index."""
        index = self.size
        self.levels[0].append(leaf)
        h, i = 0, index
        while i % 2 == 1:  # a right child completes its parent
            parent = node_hash(self.levels[h][i - 1], self.levels[h][i])
            if len(self.levels) == h + 1:
                self.levels.append([])
            self.levels[h + 1].append(parent)
            h, i = h + 1, i // 2
        return index

    def _subtree(self, start: int, end: int) -> bytes:
        """``MTH`` of leaves ``[start, end)`` (``start`` aligned to the largest
        power of two that fits, as every range the RFC's recursion asks is)."""
        n = end - start
        if n == 0:
            return EMPTY_ROOT
        if n & (n - 1) == 0 and start % n == 0:
            return self.levels[n.bit_length() - 1][start // n]
        k = _split(n)
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """The tree head of the first ``size`` entries (all by default)."""
        n = self.size if size is None else self._check_size(size)
        return self._subtree(0, n)

    def _check_size(self, size: int) -> int:
        if not (isinstance(size, int) and 0 <= size <= self.size):
            raise InvalidParameterError(f"tree size must be in 0..{self.size}, got {size}")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """RFC 6962 ``PATH(index, D[size])``: the audit path of leaf ``index``."""
        n = self.size if size is None else self._check_size(size)
        if not (isinstance(index, int) and 0 <= index < n):
            raise InvalidParameterError(f"leaf index must be in 0..{n - 1}, got {index}")
        path: list[bytes] = []
        start, end, m = 0, n, index
        while end - start > 1:
            k = _split(end - start)
            if m < k:
                path.append(self._subtree(start + k, end))
                end = start + k
            else:
                path.append(self._subtree(start, start + k))
                start, m = start + k, m - k
        path.reverse()
        return path

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """RFC 6962 ``PROOF(first, D[second])``: that the tree of ``first``
        entries is a prefix of the tree of ``second``."""
        n = self.size if second is None else self._check_size(second)
        if not (isinstance(first, int) and 0 <= first <= n):
            raise InvalidParameterError(f"first size must be in 0..{n}, got {first}")
        if first in (0, n):
            return []
        proof: list[bytes] = []
        start, end, m, whole = 0, n, first, True
        while m != end - start:
            k = _split(end - start)
            if m <= k:
                proof.append(self._subtree(start + k, end))
                end = start + k
            else:
                proof.append(self._subtree(start, start + k))
                start, m, whole = start + k, m - k, False
        if not whole:
            proof.append(self._subtree(start, end))
        proof.reverse()
        return proof


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 §2.1.3.2: whether ``path`` proves leaf hash ``leaf`` at ``index``
    in the tree of ``size`` leaves whose head is ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node_hash(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> bool:
    """RFC 9162 §2.1.4.2: whether ``proof`` shows the tree of ``first`` leaves
    (head ``first_root``) is a prefix of the tree of ``second`` (``second_root``)."""
    if not 0 <= first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if first == 0:
        return not proof
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first tree is a subtree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and fr == first_root and sr == second_root
