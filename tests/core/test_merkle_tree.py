"""The kept Merkle tree answers the same audit paths as merkle_proof, and the
hub's global routes hash a snapshot's tree once, not once per request."""

from __future__ import annotations

import random

import pytest

from focusflow.core.encoding import encode
from focusflow.core.hashing import MerkleTree, merkle_proof, merkle_root, verify_merkle_proof


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 64, 100, 257])
def test_paths_equal_merkle_proofs(n):
    rng = random.Random(n)
    leaves = [rng.randbytes(rng.randrange(1, 40)) for _ in range(n)]
    tree = MerkleTree(leaves)
    assert tree.root == merkle_root(leaves) and tree.size == n
    for i in range(n):
        path = tree.proof(i)
        assert path == merkle_proof(leaves, i)
        assert verify_merkle_proof(tree.root, leaves[i], i, n, path)
    with pytest.raises(IndexError):
        tree.proof(n)


def test_the_global_routes_hash_one_snapshot_once(monkeypatch):
    from focusflow.api import routes_interchain
    from focusflow.state_schema.rank import SNAPSHOT_KEY, SnapshotRecord, chunk_key

    entries = [[bytes([1, i]), 10 + i] for i in range(5)]
    root = MerkleTree([]).root
    state = {
        SNAPSHOT_KEY: encode(SnapshotRecord(1, 2, 3, root, 5, 1, ()).to_cbor()),
        chunk_key(0): encode(entries),
    }

    class Reader:
        def get(self, key: bytes) -> bytes | None:
            return state.get(key)

    built = []
    monkeypatch.setattr(
        routes_interchain, "MerkleTree", lambda leaves: built.append(1) or MerkleTree(leaves)
    )
    routes_interchain._last.clear()
    _, first = routes_interchain._snapshot(Reader())
    _, second = routes_interchain._snapshot(Reader())
    assert first is second and len(built) == 1
    assert first.ranked[0] == (bytes([1, 4]), 14)
