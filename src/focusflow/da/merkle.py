"""Plain binary Merkle trees (RFC 6962, as CometBFT's ``crypto/merkle``).

The data root commits to the row and column roots with this tree: leaf hash
``SHA-256(0x00 || leaf)``, inner hash ``SHA-256(0x01 || left || right)``,
``n`` leaves split at the largest power of two below ``n``, and the empty
tree hashes to ``SHA-256("")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256

from focusflow.da.nmt import split_point


def leaf_hash(leaf: bytes) -> bytes:
    return sha256(b"\x00" + leaf).digest()


def inner_hash(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _root_of_hashes(hashes: list[bytes]) -> bytes:
    if len(hashes) == 1:
        return hashes[0]
    k = split_point(len(hashes))
    return inner_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def merkle_root(leaves: list[bytes]) -> bytes:
    """The root over ``leaves``."""
    if not leaves:
        return sha256(b"").digest()
    return _root_of_hashes([leaf_hash(x) for x in leaves])


@dataclass(frozen=True)
class MerkleProof:
    """Sibling hashes ("aunts") from leaf ``index`` of ``total`` up to the root, bottom first."""

    index: int
    total: int
    aunts: tuple[bytes, ...]


def merkle_proof(leaves: list[bytes], index: int) -> MerkleProof:
    """Proof that ``leaves[index]`` is under ``merkle_root(leaves)``."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    hashes = [leaf_hash(x) for x in leaves]
    lo, hi = 0, len(hashes)
    path: list[bytes] = []
    while hi - lo > 1:
        k = split_point(hi - lo)
        if index < lo + k:
            path.append(_root_of_hashes(hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(_root_of_hashes(hashes[lo : lo + k]))
            lo = lo + k
    return MerkleProof(index, len(leaves), tuple(path[::-1]))


def _root_from_aunts(index: int, total: int, leaf: bytes, aunts: list[bytes]) -> bytes | None:
    if total == 1:
        return leaf if not aunts else None
    if not aunts:
        return None
    k = split_point(total)
    if index < k:
        left = _root_from_aunts(index, k, leaf, aunts[:-1])
        return None if left is None else inner_hash(left, aunts[-1])
    right = _root_from_aunts(index - k, total - k, leaf, aunts[:-1])
    return None if right is None else inner_hash(aunts[-1], right)


def verify_merkle(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """Whether ``leaf`` is leaf ``proof.index`` of ``proof.total`` under ``root``."""
    if not 0 <= proof.index < proof.total:
        return False
    computed = _root_from_aunts(proof.index, proof.total, leaf_hash(leaf), list(proof.aunts))
    return computed == root
