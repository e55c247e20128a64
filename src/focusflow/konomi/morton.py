"""Morton (Z-order) keys for 3D block coordinates, vectorised with numpy.

Interleaving the bits of x, y and z (x at bit 3i, y at 3i+1, z at 3i+2, as in the
seed's ``morton_encode``) gives one integer per block whose order keeps nearby
blocks close together: sorting active blocks by key is the cache-friendly layout
the seed asks for, and the key is the block's identity in the sparse store. 21
bits per axis fit a uint64, far above the 1000³ grid (10 bits) the seed targets.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 21
MAX_COORD = (1 << BITS) - 1

_M = np.uint64


def _spread(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 21 bits (magic-number method)."""
    v = v.astype(np.uint64) & _M(0x1FFFFF)
    v = (v | (v << _M(32))) & _M(0x1F00000000FFFF)
    v = (v | (v << _M(16))) & _M(0x1F0000FF0000FF)
    v = (v | (v << _M(8))) & _M(0x100F00F00F00F00F)
    v = (v | (v << _M(4))) & _M(0x10C30C30C30C30C3)
    return (v | (v << _M(2))) & _M(0x1249249249249249)


def _compact(v: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`: keep every third bit and pack them together."""
    v = v.astype(np.uint64) & _M(0x1249249249249249)
    v = (v | (v >> _M(2))) & _M(0x10C30C30C30C30C3)
    v = (v | (v >> _M(4))) & _M(0x100F00F00F00F00F)
    v = (v | (v >> _M(8))) & _M(0x1F0000FF0000FF)
    v = (v | (v >> _M(16))) & _M(0x1F00000000FFFF)
    packed: np.ndarray = (v | (v >> _M(32))) & _M(0x1FFFFF)
    return packed


def encode(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike) -> np.ndarray:
    """Morton keys of coordinate arrays (or scalars); coordinates must be in [0, 2^21)."""
    keys: np.ndarray = (
        _spread(np.asarray(x))
        | (_spread(np.asarray(y)) << _M(1))
        | (_spread(np.asarray(z)) << _M(2))
    )
    return keys


def decode(keys: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Coordinates (x, y, z) as int64 arrays from Morton keys."""
    k = np.asarray(keys, dtype=np.uint64)
    return (
        _compact(k).astype(np.int64),
        _compact(k >> _M(1)).astype(np.int64),
        _compact(k >> _M(2)).astype(np.int64),
    )


def encode_one(x: int, y: int, z: int) -> int:
    """The Morton key of one coordinate as a Python int (the sparse store's dict key)."""
    return int(encode(np.uint64(x), np.uint64(y), np.uint64(z)))


def splitmix64(keys: npt.ArrayLike) -> np.ndarray:
    """A well-mixed 64-bit hash of each key (SplitMix64 finaliser), for shard assignment.

    Python's ``hash`` of a tuple is not guaranteed stable across versions or
    processes with hash randomisation of other types; this one is, and it is vectorised.
    """
    z = np.asarray(keys, dtype=np.uint64) + _M(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _M(30))) * _M(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _M(27))) * _M(0x94D049BB133111EB)
    return z ^ (z >> _M(31))
