"""The node's one state store: an LMDB environment holding state, tree and blocks.

LMDB gives a single writer and many readers over one memory-mapped B+tree file
with copy-on-write pages: a write transaction either commits as a whole or
leaves no trace (a crash at any instant reopens at the last commit), and a read
transaction sees one committed version for as long as it lives. That is the
whole crash-safety argument: every block is written by :meth:`Store.commit`
in ONE write transaction (state changes, new tree nodes, the block record,
its indexes and the new height and root), so readers and a restarted node see
either the old block or the new one, never a mix.

Named databases inside the environment:

``state``   full key (``/graph/...``, ``/token/...``, ``/kv/...``) -> value
``nodes``   sparse Merkle tree node hash -> node (store/smt.py)
``blocks``  height (8 bytes big-endian) -> block record (chain layer's bytes)
``index``   ``b"b" + block hash`` -> height; ``b"t" + tx hash`` -> tx location
``meta``    ``height``, ``root``, ``chain_id`` and other small facts; ``base``
            in a store that began from a state-sync snapshot (:meth:`Store.install`):
            the snapshot's height, below which it holds no blocks
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import lmdb

from focusflow.core.errors import StoreError
from focusflow.store import smt

#: Address space reserved for the map (sparse: the file grows only as used).
MAP_SIZE = 1 << 40

PREFIXES = (b"/graph/", b"/token/", b"/kv/", b"/vm/")
#: Meta key of the height a store installed from a snapshot began at.
BASE_KEY = b"base"


def height_key(height: int) -> bytes:
    return height.to_bytes(8, "big")


def check_key(key: bytes) -> None:
    """State keys live under one of the documented prefixes."""
    if not isinstance(key, bytes) or not key.startswith(PREFIXES):
        raise StoreError(f"state key {key!r} is outside /graph, /token, /kv and /vm")


@dataclass(frozen=True)
class Commit:
    """Everything one block writes, applied atomically by :meth:`Store.commit`."""

    height: int
    writes: Mapping[bytes, bytes | None]
    nodes: Mapping[bytes, bytes]
    root: bytes
    block: bytes
    index: Mapping[bytes, bytes]
    meta: Mapping[bytes, bytes]


class Reader:
    """A consistent view of one committed version (a read transaction)."""

    def __init__(self, store: Store, txn: lmdb.Transaction[bytes]) -> None:
        self._store = store
        self._txn = txn
        self.height = int.from_bytes(txn.get(b"height", b"\0" * 8, db=store._meta), "big")
        self.root = txn.get(b"root", smt.EMPTY, db=store._meta)
        #: The height the store began at: 0 from genesis, else the height of
        #: the snapshot it was installed from (no blocks below it).
        self.base = int.from_bytes(txn.get(BASE_KEY, b"\0" * 8, db=store._meta), "big")

    def get(self, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._store._state)

    def node(self, h: bytes) -> bytes | None:
        return self._txn.get(h, db=self._store._nodes)

    def meta(self, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._store._meta)

    def block(self, height: int) -> bytes | None:
        return self._txn.get(height_key(height), db=self._store._blocks)

    def index(self, key: bytes) -> bytes | None:
        return self._txn.get(key, db=self._store._index)

    def items(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Key/value pairs under ``prefix`` in key order (from ``start`` if given)."""
        cursor = self._txn.cursor(db=self._store._state)
        if not cursor.set_range(start if start is not None else prefix):
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            yield key, value

    def prove(self, key: bytes) -> tuple[bytes | None, smt.Proof]:
        """The value of ``key`` (None if absent) and its proof against :attr:`root`."""
        return self.get(key), smt.prove(self.node, self.root, key)


class Store:
    """One LMDB environment at ``path`` (a directory); see the module docstring."""

    def __init__(self, path: Path | str, *, map_size: int = MAP_SIZE, sync: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.env = lmdb.open(
                str(self.path), map_size=map_size, max_dbs=8, sync=sync, metasync=sync
            )
        except lmdb.Error as exc:
            raise StoreError(f"cannot open the store at {self.path}: {exc}") from None
        self._state = self.env.open_db(b"state")
        self._nodes = self.env.open_db(b"nodes")
        self._blocks = self.env.open_db(b"blocks")
        self._index = self.env.open_db(b"index")
        self._meta = self.env.open_db(b"meta")

    def close(self) -> None:
        self.env.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        with self.env.begin() as txn:
            yield Reader(self, txn)

    @property
    def height(self) -> int:
        with self.reader() as r:
            return r.height

    @property
    def root(self) -> bytes:
        with self.reader() as r:
            return r.root

    def commit(self, c: Commit) -> None:
        """Write one block's changes, nodes, record, indexes and meta in one transaction."""
        with self.env.begin(write=True) as txn:
            current = int.from_bytes(txn.get(b"height", b"\0" * 8, db=self._meta), "big")
            has_genesis = txn.get(height_key(0), db=self._blocks) is not None
            has_base = txn.get(BASE_KEY, db=self._meta) is not None
            expected = current + 1 if has_genesis or has_base else 0
            if c.height != expected:
                raise StoreError(f"commit of height {c.height} on a store at height {current}")
            self._write(txn, c)

    def install(self, c: Commit) -> None:
        """Write a whole state at height ``c.height`` into an empty store, in one
        transaction: a state-sync snapshot (chain/snapshot.py). ``c.writes`` is the
        complete state, ``c.block`` the record of that height; the store then
        begins there (``Reader.base``) and takes the next heights by :meth:`commit`.
        """
        with self.env.begin(write=True) as txn:
            used = txn.get(b"height", db=self._meta) is not None
            if used or txn.get(height_key(0), db=self._blocks) is not None:
                raise StoreError(f"a snapshot is installed only into an empty store ({self.path})")
            self._write(txn, replace(c, meta={**c.meta, BASE_KEY: height_key(c.height)}))

    def _write(self, txn: lmdb.Transaction[bytes], c: Commit) -> None:
        """The writes of :meth:`commit` and :meth:`install`, inside ``txn``."""
        state = txn.cursor(db=self._state)
        puts = []
        for key in sorted(c.writes):
            check_key(key)
            value = c.writes[key]
            if value is None:
                if state.set_key(key):
                    state.delete()
            else:
                puts.append((key, value))
        state.putmulti(puts)
        txn.cursor(db=self._nodes).putmulti(sorted(c.nodes.items()), overwrite=False)
        txn.put(height_key(c.height), c.block, db=self._blocks)
        txn.cursor(db=self._index).putmulti(sorted(c.index.items()))
        meta = dict(c.meta)
        meta[b"height"] = height_key(c.height)
        meta[b"root"] = c.root
        txn.cursor(db=self._meta).putmulti(sorted(meta.items()))

    def recompute_root(self) -> bytes:
        """The tree root rebuilt from the state data alone (integrity check)."""
        with self.reader() as r:
            return smt.root_of(r.items(b"/"))
