"""The Merkle tree of a network's global focus snapshot: one leaf per particle.

A leaf is ``u16be(len cid) || u64be(focus) || cid`` (focus in fixed point,
10^15 = 1), leaves in CID byte order, the root RFC 6962's (``core.hashing``).
A leaf names its particle as well as its value, so a proof of one particle's
global focus needs no separate commitment of the particles' order. The hub's
engine builds the tree (``focus.rollup_merge``) and a light client checks a
path against the root the hub's state commits (``light.answers``); both take
the leaf from here.
"""

from __future__ import annotations

import struct
from typing import Final

from focusflow.core.hashing import verify_merkle_proof

_LEAF = struct.Struct(">HQ")
#: Largest fixed-point value a leaf holds.
MAX_LEAF_VALUE: Final = (1 << 63) - 1


def snapshot_leaf(cid: bytes, value: int) -> bytes:
    return _LEAF.pack(len(cid), value) + cid


def verify_snapshot_path(
    root: bytes, cid: bytes, value: int, index: int, size: int, path: list[bytes]
) -> bool:
    """Does ``root`` commit ``cid`` with ``value`` at ``index`` of ``size`` leaves?"""
    if not 0 <= value <= MAX_LEAF_VALUE or not 0 < len(cid) <= 0xFFFF:
        return False
    return verify_merkle_proof(root, snapshot_leaf(cid, value), index, size, path)
