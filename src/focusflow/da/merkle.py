"""Plain binary Merkle trees (RFC 6962, as CometBFT's ``crypto/merkle``) for the data root.

The data root commits to the row and column roots with this tree: leaf hash
``SHA-256(0x00 || leaf)``, inner hash ``SHA-256(0x01 || left || right)``,
``n`` leaves split at the largest power of two below ``n``, and the empty
tree hashes to ``SHA-256("")``. It is the same tree the chain uses for its
transaction and focus roots, so the hashing lives once, in ``core.hashing``;
this module gives its proofs the shape DA proofs carry.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.core import hashing
from focusflow.core.hashing import merkle_root

__all__ = ["MerkleProof", "merkle_proof", "merkle_root", "verify_merkle"]


@dataclass(frozen=True)
class MerkleProof:
    """Sibling hashes ("aunts") from leaf ``index`` of ``total`` up to the root, bottom first."""

    index: int
    total: int
    aunts: tuple[bytes, ...]


def merkle_proof(leaves: list[bytes], index: int) -> MerkleProof:
    """Proof that ``leaves[index]`` is under ``merkle_root(leaves)``."""
    return MerkleProof(index, len(leaves), tuple(hashing.merkle_proof(leaves, index)))


def verify_merkle(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """Whether ``leaf`` is leaf ``proof.index`` of ``proof.total`` under ``root``."""
    return hashing.verify_merkle_proof(root, leaf, proof.index, proof.total, list(proof.aunts))
