"""Which shard owns a block, and a batch split by owner, vectorised.

Ownership is SplitMix64 of the block's Morton key modulo the shard count, the
same stable hash as :meth:`BlockArray.shard_of`: every process, Python version
and machine computes the same owner, so a coordinator and its shards never
disagree about who holds a block.
"""

from __future__ import annotations

import numpy as np

from focusflow.konomi import morton
from focusflow.konomi.errors import BatchTooLargeError, InvalidOperationError
from focusflow.konomi.system import MAX_FACE_CELLS

#: The most shards a grid may be split into (a shard is a process: more would
#: be a typo, not a deployment).
MAX_SHARDS = 1024
#: The most coordinates one batch may carry: a full face of the largest grid.
MAX_BATCH = MAX_FACE_CELLS


def check_shards(count: int) -> int:
    """``count`` as an int in [1, MAX_SHARDS]; InvalidOperationError otherwise."""
    n = int(count)
    if not 1 <= n <= MAX_SHARDS:
        raise InvalidOperationError(f"shard count must be in [1, {MAX_SHARDS}], got {count}")
    return n


def check_batch(coords: np.ndarray) -> np.ndarray:
    """``coords`` as an (n, 3) int64 array of at most MAX_BATCH rows."""
    c = np.asarray(coords)
    if c.size > 3 * MAX_BATCH:
        raise BatchTooLargeError(
            f"a batch holds {c.size // 3} coordinates; at most {MAX_BATCH} per request"
        )
    if c.size % 3:
        raise InvalidOperationError("a batch of coordinates must have three numbers per block")
    return c.astype(np.int64, copy=False).reshape(-1, 3)


def owners_of_keys(keys: np.ndarray, count: int) -> np.ndarray:
    """The owning shard of each Morton key, as int64."""
    return (morton.splitmix64(keys) % np.uint64(count)).astype(np.int64)


def owners(coords: np.ndarray, count: int) -> np.ndarray:
    """The owning shard of each (x, y, z) row (coordinates already range-checked)."""
    c = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    return owners_of_keys(morton.encode(c[:, 0], c[:, 1], c[:, 2]), count)


_M64 = (1 << 64) - 1


def _spread(v: int) -> int:
    v &= 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    return (v | (v << 2)) & 0x1249249249249249


def owner_of(x: int, y: int, z: int, count: int) -> int:
    """:func:`owners` of one coordinate in plain integers: the same bits as
    ``morton.encode`` and ``morton.splitmix64``, without the forty-odd numpy calls
    on one-element arrays that cost a single-block request about 40 µs."""
    k = _spread(x) | (_spread(y) << 1) | (_spread(z) << 2)
    k = (k + 0x9E3779B97F4A7C15) & _M64
    k = ((k ^ (k >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    k = ((k ^ (k >> 27)) * 0x94D049BB133111EB) & _M64
    return (k ^ (k >> 31)) % count


def split(owner: np.ndarray, count: int) -> list[np.ndarray]:
    """Row indices of each shard's part of a batch, each in the batch's order."""
    order = np.argsort(owner, kind="stable")
    bounds = np.cumsum(np.bincount(owner, minlength=count))
    return np.split(order, bounds[:-1])
