"""Data availability of blocks: the header's data root, and the squares of recent proposals.

A block's data is its encoded transactions, in block order, as compact shares
of Celestia's transaction namespace; :func:`block_square` lays them out and
erasure codes them (``extend(square_from_block(txs))``), and the header's
``data_root`` is that square's data root. ``blob.put`` payloads travel inside
their transactions, so they are in the square already; they get no namespace
of their own (that would put their bytes in the square twice). docs/da.md,
*Chain integration*, says why.

The producer computes the square after execution (only then is it known
which transactions are in the block); a follower computes it from the
received transactions before executing anything and refuses the block if the
roots differ. Either way the square is handed to every ``square listener``
of the chain once the block is committed, which is how the node's square
cache (``focusflow.node.da_store.DAStore``) keeps the squares of recent blocks
without extending them twice.

Squares of blocks not committed yet (a proposal this node made or validated)
are served too, keyed by their data root: :data:`recent_squares` keeps the
last squares :func:`block_square` built, so the proposer of a block can answer
the validators that sample it before they vote. A verified bad-encoding fraud
proof against a committed block is a :class:`FraudRecord`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.da import (
    SHARE_SIZE,
    BadEncodingProof,
    ExtendedSquare,
    befp_to_json,
    extend,
)
from focusflow.da import square_from_block as _square_from_block

if TYPE_CHECKING:
    from focusflow.chain.block import Header
    from focusflow.consensus.certificate import CommitCertificate


@cache
def empty_square() -> ExtendedSquare:
    """The square of a block without transactions (one tail-padding share, k = 1).

    Shared by every empty block: computed once per process, never modified.
    """
    square = extend(_square_from_block([]))
    square.data_root()
    return square


#: Squares of blocks not yet committed that :data:`recent_squares` keeps, in
#: count and bytes (a proposal's square is served while it is voted on).
RECENT_SQUARES = 8
RECENT_SQUARES_BYTES = 96 << 20


class RecentSquares:
    """The last squares :func:`block_square` built in this process, by data root
    (LRU, bounded in count and bytes; the newest always stays). Thread-safe."""

    def __init__(self, count: int = RECENT_SQUARES, size: int = RECENT_SQUARES_BYTES) -> None:
        self.count, self.size = count, size
        self._squares: OrderedDict[bytes, ExtendedSquare] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, square: ExtendedSquare) -> None:
        root = square.data_root()
        with self._lock:
            self._squares[root] = square
            self._squares.move_to_end(root)
            total = sum(square_size(sq) for sq in self._squares.values())
            while len(self._squares) > 1 and (len(self._squares) > self.count or total > self.size):
                _, dropped = self._squares.popitem(last=False)
                total -= square_size(dropped)

    def get(self, data_root: bytes) -> ExtendedSquare | None:
        if data_root == empty_square().data_root():
            return empty_square()
        with self._lock:
            return self._squares.get(data_root)


#: The squares this process built lately (proposals made and validated here).
recent_squares = RecentSquares()

#: Fault injection for tests (``node.faults.FaultPlan.da_bad_encoding``, which
#: the chain kernel cannot see, so it is this process's): when set, the
#: squares of blocks with transactions have one parity share altered, so a
#: producer commits a data root over a square that is not a valid encoding.
_bad_encoding = False


def set_bad_encoding(enabled: bool) -> None:
    """Tests only: make :func:`block_square` build badly encoded squares (see above);
    called for a fault plan (``node.faults``), never on an honest node."""
    global _bad_encoding
    _bad_encoding = bool(enabled)


def _corrupted(square: ExtendedSquare) -> ExtendedSquare:
    """``square`` with the last byte of its top-right parity share flipped: row 0
    and the last column are then no codewords."""
    data = np.array(square.data, copy=True)
    data[0, square.width - 1, SHARE_SIZE - 1] ^= 1
    return ExtendedSquare(data)


def block_square(txs: Sequence[bytes], *, keep: bool = True) -> ExtendedSquare:
    """The extended data square of a block's encoded transactions.

    Kept in :data:`recent_squares` (so this node can serve it before it is
    committed) unless ``keep`` is false: the node's square cache rebuilds old
    blocks' squares with ``keep=False``, since a flood of those must not push a
    proposal's square out while it is voted on.
    """
    if not txs:
        return empty_square()
    square = extend(_square_from_block(list(txs)))
    if _bad_encoding:
        square = _corrupted(square)
    if keep:
        recent_squares.add(square)
    return square


def warm_up() -> None:
    """Compile the erasure coder's kernels for squares of every kind a block makes.

    An empty block's square has one share and codes nothing; the first block
    with a few kilobytes compiles the serial kernels, a larger one the parallel
    ones (several seconds each in every fresh process, without a numba cache).
    """
    for size in (4 << 10, 64 << 10):
        block_square([bytes(size)]).data_root()


def data_root(txs: Sequence[bytes]) -> bytes:
    """The data root a header commits to for these transactions."""
    return block_square(txs).data_root()


def square_size(square: ExtendedSquare) -> int:
    """Bytes a square keeps in memory: its shares and its NMT leaf nodes."""
    return square.width * square.width * (SHARE_SIZE + 90)


@dataclass(frozen=True)
class FraudRecord:
    """A verified bad-encoding fraud proof against a block a quorum certified:
    the block's header (its data root is what the proof is checked against),
    the certificate, and the proof."""

    header: Header
    certificate: CommitCertificate | None
    proof: BadEncodingProof

    def to_json(self) -> dict[str, Any]:
        """``{height, block_hash, data_root, proof}`` (the proof as ``befp_to_json``)."""
        return {
            "height": self.header.height,
            "block_hash": self.header.hash.hex(),
            "data_root": self.header.data_root.hex(),
            "proof": befp_to_json(self.proof),
        }


__all__ = [
    "RECENT_SQUARES",
    "RECENT_SQUARES_BYTES",
    "FraudRecord",
    "RecentSquares",
    "block_square",
    "data_root",
    "empty_square",
    "recent_squares",
    "set_bad_encoding",
    "square_size",
]
