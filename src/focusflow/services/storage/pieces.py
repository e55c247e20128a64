"""A blob as ``2k`` Reed-Solomon pieces of which any ``k`` restore it.

The code is the data-availability layer's Leopard codec (``da.leopard``: ``k``
data shards, a power of two, and ``k`` parity shards). Each piece carries a
header naming the blob (its length and SHA-256), ``k`` and its own index, so
pieces from anywhere are matched and checked: the restored blob must hash to
the digest its pieces name, or nothing is returned. docs/storage.md gives the
bytes.

    "FFSP" | version 1 | u16 k | u16 index | u64 blob length
    | SHA-256 of the blob, 32 bytes | the shard, a multiple of 64 bytes
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import numpy as np

from focusflow.da import leopard
from focusflow.da.errors import RepairError
from focusflow.services.storage.sealed import SealedBlobError

MAGIC = b"FFSP"
VERSION = 1
HEADER = 4 + 1 + 2 + 2 + 8 + 32
#: Most data shards a blob is cut into (the codec's field allows far more).
MAX_K = 256


def split(blob: bytes, k: int) -> list[bytes]:
    """``2k`` pieces of ``blob``: the ``k`` data shards, then ``k`` parity shards."""
    if not (0 < k <= MAX_K and k & (k - 1) == 0):
        raise SealedBlobError(f"k is a power of two up to {MAX_K}, got {k}")
    per_shard = -(-len(blob) // k)  # ceiling
    size = max(64, (per_shard + 63) // 64 * 64)
    data = np.zeros((k, size), dtype=np.uint8)
    data.reshape(-1)[: len(blob)] = np.frombuffer(blob, dtype=np.uint8)
    parity = leopard.encode(data)
    digest = hashlib.sha256(blob).digest()
    shards = [*data, *parity]
    return [
        MAGIC + struct.pack(">BHHQ", VERSION, k, i, len(blob)) + digest + shard.tobytes()
        for i, shard in enumerate(shards)
    ]


def join(pieces: Sequence[bytes]) -> bytes:
    """The blob from any ``k`` of its pieces (more are fine), checked against its digest."""
    if not pieces:
        raise SealedBlobError("no pieces")
    heads = {p[:7] + p[9:HEADER] for p in pieces if len(p) > HEADER}  # all but the index
    first = pieces[0]
    if len(heads) != 1 or any(len(p) != len(first) or p[:4] != MAGIC for p in pieces):
        raise SealedBlobError("the pieces are not of one blob")
    version, k, _, length = struct.unpack(">BHHQ", first[4:17])
    if version != VERSION:
        raise SealedBlobError(f"piece version {version} is not one this node reads")
    size = len(first) - HEADER
    if not (0 < k <= MAX_K and k & (k - 1) == 0) or size % 64 or length > k * size:
        raise SealedBlobError("a piece header that no split makes")
    codeword = np.zeros((2 * k, size), dtype=np.uint8)
    present = np.zeros(2 * k, dtype=np.bool_)
    for p in pieces:
        (index,) = struct.unpack(">H", p[7:9])
        if index >= 2 * k:
            raise SealedBlobError(f"piece index {index} of a {2 * k}-piece blob")
        codeword[index] = np.frombuffer(p, dtype=np.uint8, offset=HEADER)
        present[index] = True
    try:
        full = leopard.decode(codeword, present)
    except RepairError as exc:
        raise SealedBlobError(str(exc)) from None
    blob = full[:k].reshape(-1)[:length].tobytes()
    if hashlib.sha256(blob).digest() != first[17:HEADER]:
        raise SealedBlobError("the restored blob does not match its digest: a piece is corrupt")
    return blob
