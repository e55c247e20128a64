"""Which shard owns a particle: ``murmur64(key) mod shards``.

``murmur64`` is the first 64 bits (little-endian, unsigned) of MurmurHash3
x64-128 with seed 0, the hash the rollups' buckets use (``focus.buckets``).
A particle's key is its CID as written (its UTF-8 bytes) or, for graphs
numbered by integers alone, the 8 little-endian bytes of its number. The
vectorised form below is MurmurHash3's x64-128 body and finalisation for
8-byte inputs, written for numba so that a shard of 10^8 particles hashes in
a fraction of a second; tests hold it to ``mmh3``.
"""

from __future__ import annotations

from collections.abc import Sequence

import mmh3
import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError

#: Most shards one solve may have: every pair of shards exchanges a buffer
#: per product, so the count of buffers grows with its square.
MAX_SHARDS = 256

_C1 = np.uint64(0x87C37B91114253D5)
_C2 = np.uint64(0x4CF5AD432745937F)


@nb.njit(cache=True, inline="always")
def _rotl(x: np.uint64, r: int) -> np.uint64:
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@nb.njit(cache=True, inline="always")
def _fmix(k: np.uint64) -> np.uint64:
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB9FE1A85EC53)
    k ^= k >> np.uint64(33)
    return k


@nb.njit(cache=True, parallel=True)
def _murmur64_u64(values: np.ndarray) -> np.ndarray:  # pragma: no cover - numba
    out = np.empty(values.shape[0], dtype=np.uint64)
    for i in nb.prange(values.shape[0]):
        h1 = np.uint64(0)
        h2 = np.uint64(0)
        k1 = np.uint64(values[i])
        k1 *= _C1
        k1 = _rotl(k1, 31)
        k1 *= _C2
        h1 ^= k1
        length = np.uint64(8)
        h1 ^= length
        h2 ^= length
        h1 += h2
        h2 += h1
        h1 = _fmix(h1)
        h2 = _fmix(h2)
        h1 += h2
        out[i] = h1
    return out


def murmur64_ints(values: np.ndarray) -> np.ndarray:
    """``murmur64`` of each value's 8 little-endian bytes (int64 taken as its two's complement)."""
    arr = np.ascontiguousarray(values).astype(np.int64, copy=False).view(np.uint64)
    return _murmur64_u64(arr)


def murmur64_keys(keys: Sequence[str] | np.ndarray) -> np.ndarray:
    """``murmur64`` of each key's UTF-8 bytes."""
    out = np.empty(len(keys), dtype=np.uint64)
    for i, key in enumerate(keys):
        out[i] = int.from_bytes(mmh3.hash_bytes(str(key).encode(), 0, True)[:8], "little")
    return out


def check_shards(shards: int) -> int:
    """``shards`` as a count, or ``invalid_parameter``."""
    if isinstance(shards, bool) or not isinstance(shards, int | np.integer):
        raise InvalidParameterError(f"shards must be an integer, got {shards!r}")
    if not 1 <= int(shards) <= MAX_SHARDS:
        raise InvalidParameterError(f"shards must be between 1 and {MAX_SHARDS}, got {shards}")
    return int(shards)


def shard_of_hashes(hashes: np.ndarray, shards: int) -> np.ndarray:
    """The owning shard of each hashed particle (int32)."""
    return (hashes % np.uint64(shards)).astype(np.int32)
