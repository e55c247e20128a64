"""The LMDB store: atomic commits, isolated readers, refused keys, corrupt files."""

from __future__ import annotations

import pytest

from focusflow.core.errors import StoreError
from focusflow.store import EMPTY, Commit, Store, update, verify_proof


def commit(store: Store, height: int, writes: dict, root=None):
    with store.reader() as r:
        new_root, nodes = update(r.node, r.root, writes.items())
    store.commit(Commit(height, writes, nodes, new_root, b"block%d" % height, {}, {}))
    return new_root


def test_commit_is_atomic_and_readers_keep_their_version(tmp_path):
    store = Store(tmp_path)
    r0 = commit(store, 0, {b"/token/a": b"1", b"/kv/x": b"2"})
    with store.reader() as old:
        r1 = commit(store, 1, {b"/token/a": b"9", b"/kv/x": None, b"/graph/g": b"3"})
        # The reader opened before the commit still sees block 0 only.
        assert (old.height, old.root, old.get(b"/token/a"), old.get(b"/kv/x")) == (
            0,
            r0,
            b"1",
            b"2",
        )
        assert old.get(b"/graph/g") is None
    with store.reader() as new:
        assert (new.height, new.root, new.get(b"/token/a"), new.get(b"/kv/x")) == (
            1,
            r1,
            b"9",
            None,
        )
        value, proof = new.prove(b"/kv/x")
        assert value is None and verify_proof(r1, b"/kv/x", None, proof)
    assert store.recompute_root() == r1


def test_refused_commits_change_nothing(tmp_path):
    store = Store(tmp_path)
    commit(store, 0, {b"/token/a": b"1"})
    root = store.root
    with pytest.raises(StoreError):
        commit(store, 1, {b"/token/a": b"2", b"/elsewhere": b"x"})
    with pytest.raises(StoreError):
        commit(store, 5, {b"/token/a": b"2"})
    assert store.root == root and store.height == 0
    with store.reader() as r:
        assert r.get(b"/token/a") == b"1" and r.block(1) is None


def test_corrupt_store_file_is_a_clear_error(tmp_path):
    store = Store(tmp_path)
    commit(store, 0, {b"/token/a": b"1"})
    store.close()
    (tmp_path / "data.mdb").write_bytes(b"\xde\xad" * 5000)
    with pytest.raises(StoreError) as info:
        Store(tmp_path)
    assert info.value.code == "store_error"


def test_empty_store(tmp_path):
    store = Store(tmp_path)
    assert store.height == 0 and store.root == EMPTY
