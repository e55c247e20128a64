"""The extended data square: ``k x k`` shares erasure coded to ``2k x 2k``, and its roots.

Quadrants, as rsmt2d builds them::

    Q0 | Q1        Q0: the original shares
    ---+---        Q1: parity of Q0's rows      (each row of Q0 encoded)
    Q2 | Q3        Q2: parity of Q0's columns   (each column of Q0 encoded)
                   Q3: parity of Q2's rows

Every row and column of the result is a codeword (the code is linear, so Q3
is also the parity of Q1's columns); any ``k`` shares of a row or column give
back the other ``k``.

Roots. Row ``i`` and column ``j`` are each committed by a namespaced Merkle
tree over their ``2k`` shares; a share's leaf is ``ns || share`` with ``ns`` the
share's own namespace in Q0 and the parity namespace (all ``0xFF``) in
Q1–Q3. The data root is the RFC 6962 Merkle root over the ``2k`` row roots
followed by the ``2k`` column roots (celestia-app ``pkg/da``: the data
availability header's hash).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from focusflow.core.digests import sha256_rows
from focusflow.da import leopard
from focusflow.da.errors import InvalidShareError, RepairError, RootMismatchError
from focusflow.da.merkle import merkle_root
from focusflow.da.namespace import NAMESPACE_SIZE, PARITY_SHARE_NAMESPACE
from focusflow.da.nmt import LEAF_PREFIX, NODE_PREFIX
from focusflow.da.proofs import ShareProof, prove_share
from focusflow.da.shares import SHARE_SIZE

_NS = NAMESPACE_SIZE
_PARITY = np.frombuffer(PARITY_SHARE_NAMESPACE, dtype=np.uint8)


def _encode_rows(quadrant: np.ndarray) -> np.ndarray:
    """Parity quadrant of a ``k x k`` quadrant's rows (shards are its columns)."""
    k = quadrant.shape[0]
    shards = np.ascontiguousarray(quadrant.transpose(1, 0, 2)).reshape(k, -1)
    return leopard.encode(shards).reshape(k, k, -1).transpose(1, 0, 2)


def _encode_cols(quadrant: np.ndarray) -> np.ndarray:
    """Parity quadrant of a ``k x k`` quadrant's columns (shards are its rows)."""
    k = quadrant.shape[0]
    return leopard.encode(np.ascontiguousarray(quadrant).reshape(k, -1)).reshape(k, k, -1)


def _inner_level(level: np.ndarray) -> np.ndarray:
    """One level up in many namespace-ordered NMTs at once (``trees x nodes x 90``).

    Leaves within a tree are ordered, so a node's minimum is its left child's
    and its maximum its right child's, unless the right child is parity only
    (IgnoreMaxNamespace): then the left child's maximum.
    """
    trees, count, node = level.shape
    left, right = level[:, 0::2], level[:, 1::2]
    message = np.empty((trees, count // 2, 1 + 2 * node), dtype=np.uint8)
    message[:, :, 0] = NODE_PREFIX[0]
    message[:, :, 1 : 1 + node] = left
    message[:, :, 1 + node :] = right
    out = np.empty((trees, count // 2, node), dtype=np.uint8)
    out[:, :, :_NS] = left[:, :, :_NS]
    parity_right = np.all(right[:, :, :_NS] == _PARITY, axis=2, keepdims=True)
    out[:, :, _NS : 2 * _NS] = np.where(
        parity_right, left[:, :, _NS : 2 * _NS], right[:, :, _NS : 2 * _NS]
    )
    out[:, :, 2 * _NS :] = sha256_rows(message.reshape(-1, message.shape[2])).reshape(
        trees, count // 2, 32
    )
    return out


class ExtendedSquare:
    """A ``2k x 2k`` square of 512-byte shares and the roots that commit to it.

    The shares are held as they are given: a square built by ``extend`` or
    ``repair`` is a valid encoding; one built directly from received shares
    may not be, which ``focusflow.da.fraud`` detects.
    """

    def __init__(self, data: np.ndarray) -> None:
        width: int = data.shape[0]
        if (
            data.ndim != 3
            or data.shape != (width, width, SHARE_SIZE)
            or width < 2
            or width & (width - 1)
        ):
            raise InvalidShareError(f"an extended square is 2k x 2k x {SHARE_SIZE}, k a power of 2")
        self.data = np.ascontiguousarray(data, dtype=np.uint8)
        self.width = width
        self.k = width // 2

    def share(self, row: int, col: int) -> bytes:
        share: bytes = self.data[row, col].tobytes()
        return share

    def row(self, index: int) -> list[bytes]:
        return [s.tobytes() for s in self.data[index]]

    def col(self, index: int) -> list[bytes]:
        return [s.tobytes() for s in self.data[:, index]]

    def original(self) -> list[bytes]:
        """The original ``k x k`` shares, row-major."""
        return [s.tobytes() for s in self.data[: self.k, : self.k].reshape(-1, SHARE_SIZE)]

    def leaf_namespace(self, row: int, col: int) -> bytes:
        """The namespace a share's NMT leaf is filed under."""
        if row < self.k and col < self.k:
            return self.data[row, col, :_NS].tobytes()
        return PARITY_SHARE_NAMESPACE

    @cached_property
    def _leaf_nodes(self) -> np.ndarray:
        """NMT leaf nodes of all shares (``2k x 2k x 90``); a share's leaf is the same
        in its row tree and its column tree, so each is hashed once."""
        width, k = self.width, self.k
        leaf = np.empty((width, width, 1 + _NS + SHARE_SIZE), dtype=np.uint8)
        leaf[:, :, 0] = LEAF_PREFIX[0]
        leaf[:, :, 1 : 1 + _NS] = _PARITY
        leaf[:k, :k, 1 : 1 + _NS] = self.data[:k, :k, :_NS]
        leaf[:, :, 1 + _NS :] = self.data
        nodes = np.empty((width, width, 2 * _NS + 32), dtype=np.uint8)
        nodes[:, :, :_NS] = leaf[:, :, 1 : 1 + _NS]
        nodes[:, :, _NS : 2 * _NS] = leaf[:, :, 1 : 1 + _NS]
        nodes[:, :, 2 * _NS :] = sha256_rows(leaf.reshape(width * width, -1)).reshape(
            width, width, 32
        )
        return nodes

    @cached_property
    def _roots(self) -> tuple[list[bytes], list[bytes]]:
        leaves = self._leaf_nodes
        level = np.concatenate([leaves, leaves.transpose(1, 0, 2)])
        while level.shape[1] > 1:
            level = _inner_level(level)
        roots = [node.tobytes() for node in level[:, 0]]
        return roots[: self.width], roots[self.width :]

    def row_roots(self) -> list[bytes]:
        """NMT roots of the ``2k`` rows (90 bytes each: min ns, max ns, digest)."""
        return list(self._roots[0])

    def col_roots(self) -> list[bytes]:
        """NMT roots of the ``2k`` columns."""
        return list(self._roots[1])

    def data_root(self) -> bytes:
        """Merkle root over row roots then column roots: the block header's data root."""
        return merkle_root(self._roots[0] + self._roots[1])

    def axis_leaf_nodes(self, axis: str, index: int) -> list[bytes]:
        """Leaf nodes of one row (``axis == "row"``) or column tree."""
        nodes = self._leaf_nodes[index] if axis == "row" else self._leaf_nodes[:, index]
        return [node.tobytes() for node in nodes]

    def proof(self, row: int, col: int) -> ShareProof:
        """The share at ``(row, col)`` with its proof (along its row) up to the data root."""
        return prove_share(self, row, col)


def _as_array(shares: Sequence[bytes], k: int) -> np.ndarray:
    if any(len(s) != SHARE_SIZE for s in shares):
        raise InvalidShareError(f"every share must have {SHARE_SIZE} bytes")
    return np.frombuffer(b"".join(shares), dtype=np.uint8).reshape(k, k, SHARE_SIZE)


def extend(shares: Sequence[bytes]) -> ExtendedSquare:
    """The extended square of an original square given row-major (``k²`` shares)."""
    n = len(shares)
    k = int(np.sqrt(n)) if n else 0
    if n == 0 or k * k != n or k & (k - 1):
        raise InvalidShareError(f"{n} shares do not form a k x k square with k a power of 2")
    q0 = _as_array(shares, k)
    eds = np.empty((2 * k, 2 * k, SHARE_SIZE), dtype=np.uint8)
    eds[:k, :k] = q0
    eds[:k, k:] = _encode_rows(q0)
    eds[k:, :k] = _encode_cols(q0)
    eds[k:, k:] = _encode_rows(eds[k:, :k])
    return ExtendedSquare(eds)


def repair(
    partial: Sequence[Sequence[bytes | None]], data_root: bytes | None = None
) -> ExtendedSquare:
    """Rebuild a square from any sufficient subset of its shares (``None`` where missing).

    Rows and columns with at least ``k`` known shares are decoded in turn
    until nothing is missing (rsmt2d's crossword repair). With ``data_root``
    given, the rebuilt square must hash to it. Raises ``RepairError`` when the
    known shares do not determine the square, ``RootMismatchError`` when the
    result hashes to another data root.
    """
    width = len(partial)
    if width < 2 or width & (width - 1) or any(len(r) != width for r in partial):
        raise InvalidShareError("a partial square is 2k x 2k with k a power of 2")
    k = width // 2
    data = np.zeros((width, width, SHARE_SIZE), dtype=np.uint8)
    known = np.zeros((width, width), dtype=bool)
    for r, row in enumerate(partial):
        for c, share in enumerate(row):
            if share is not None:
                if len(share) != SHARE_SIZE:
                    raise InvalidShareError(f"share ({r}, {c}) has {len(share)} bytes")
                data[r, c] = np.frombuffer(share, dtype=np.uint8)
                known[r, c] = True
    while not known.all():
        progress = False
        for axis in (0, 1):
            for i in range(width):
                line = known[i] if axis == 0 else known[:, i]
                count = int(line.sum())
                if k <= count < width:
                    if axis == 0:
                        data[i] = leopard.decode(data[i], line)
                        known[i] = True
                    else:
                        data[:, i] = leopard.decode(data[:, i], line)
                        known[:, i] = True
                    progress = True
        if not progress:
            missing = int((~known).sum())
            raise RepairError(f"{missing} shares missing and no row or column has {k} known")
    square = ExtendedSquare(data)
    if data_root is not None and square.data_root() != data_root:
        raise RootMismatchError("the repaired square does not hash to the given data root")
    return square
