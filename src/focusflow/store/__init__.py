"""The committed state: one LMDB key-space with a sparse Merkle tree over it."""

from focusflow.store.lmdb_store import PREFIXES, Commit, Reader, Store, check_key, height_key
from focusflow.store.smt import EMPTY, MissingNodeError, Proof, prove, root_of, update, verify_proof

__all__ = [
    "EMPTY",
    "PREFIXES",
    "Commit",
    "MissingNodeError",
    "Proof",
    "Reader",
    "Store",
    "check_key",
    "height_key",
    "prove",
    "root_of",
    "update",
    "verify_proof",
]
