"""The hash functions of the protocol, named once.

SHA-256 throughout: it is what Celestia's formats require for data availability,
browsers verify it natively (WebCrypto) so light clients need no extra code, and
hashlib's implementation uses the CPU's SHA extensions. Merkle trees over lists
follow RFC 6962 (leaf prefix 0x00, node prefix 0x01, split at the largest power
of two below the length), so a leaf can never be passed off as a node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of a list of byte strings (sha256 of b'' if empty)."""
    if not leaves:
        return EMPTY_ROOT
    level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    return _fold(level)


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Audit path of leaf ``index`` (bottom-up sibling hashes), RFC 6962 §2.1.1."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    hashes = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
    path: list[bytes] = []
    _path(hashes, index, path)
    return path


class MerkleTree:
    """An RFC 6962 tree kept whole: built once (2n hashes), then any leaf's
    audit path in O(log n), for a server that answers many proofs of one tree
    (``merkle_proof`` hashes every leaf again for each)."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        self._nodes: dict[tuple[int, int], bytes] = {}
        level = [hashlib.sha256(b"\x00" + leaf).digest() for leaf in leaves]
        self.root = self._build(level, 0, len(level)) if level else EMPTY_ROOT

    def _build(self, hashes: list[bytes], lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            h = hashes[lo]
        else:
            k = lo + _split(hi - lo)
            h = hashlib.sha256(
                b"\x01" + self._build(hashes, lo, k) + self._build(hashes, k, hi)
            ).digest()
        self._nodes[(lo, hi)] = h
        return h

    def proof(self, index: int) -> list[bytes]:
        """The audit path of leaf ``index``, as ``merkle_proof`` gives it."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} of {self.size}")
        out: list[bytes] = []
        lo, hi = 0, self.size
        while hi - lo > 1:
            k = lo + _split(hi - lo)
            if index < k:
                out.append(self._nodes[(k, hi)])
                hi = k
            else:
                out.append(self._nodes[(lo, k)])
                lo = k
        out.reverse()
        return out


def verify_merkle_proof(root: bytes, leaf: bytes, index: int, size: int, path: list[bytes]) -> bool:
    """Check an RFC 6962 audit path (RFC 9162 §2.1.3.2 verification algorithm)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    h = hashlib.sha256(b"\x00" + leaf).digest()
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            h = hashlib.sha256(b"\x01" + sibling + h).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            h = hashlib.sha256(b"\x01" + h + sibling).digest()
        fn >>= 1
        sn >>= 1
    return sn == 0 and h == root


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _fold(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return hashlib.sha256(b"\x01" + _fold(hashes[:k]) + _fold(hashes[k:])).digest()


def _path(hashes: list[bytes], index: int, out: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    if index < k:
        left = _path(hashes[:k], index, out)
        right = _fold(hashes[k:])
        out.append(right)
    else:
        left = _fold(hashes[:k])
        right = _path(hashes[k:], index - k, out)
        out.append(left)
    return hashlib.sha256(b"\x01" + left + right).digest()
