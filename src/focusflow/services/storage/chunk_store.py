"""A node's chunk store: blocks of blob DAGs in LMDB, reference-counted by pins.

Three tables in one LMDB environment:

* ``blocks``: binary CID -> bytes (leaf chunks and DAG nodes, ``storage.dag``);
* ``refs``: binary CID -> how many pinned roots reach the block (u64);
* ``pins``: root CID -> the blob's size (u64).

A put writes new blocks in batches as the stream is cut, then pins the root in
one transaction that counts each distinct block of its DAG once, then syncs
the file once (the batches commit without an fsync each: LMDB keeps the file
consistent, and a crash before the sync loses only an unpinned put). A put cut
short (a crash, a size limit, a dropped client) leaves blocks no pin counts:
``gc`` removes them, and nothing pinned is ever touched. Unpinning a root
counts its blocks down and deletes those no other pin reaches, in one
transaction. Every block read back is checked against its CID (a disk that
rots is caught, not served).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import lmdb

from focusflow.services.storage import dag
from focusflow.services.storage.dag import BlobError, Link

#: Bytes of new blocks written per LMDB transaction while a stream is cut.
BATCH_BYTES = 32 << 20
#: A store's largest size (LMDB's map: address space, not disk).
MAP_SIZE = 1 << 40
_U64 = struct.Struct(">Q")


class BlobTooLargeError(BlobError):
    code = "blob_too_large"


@dataclass(frozen=True)
class PutResult:
    """What a put stored: the root CID, the blob's bytes and chunks, and how many
    chunks and bytes (chunks and DAG nodes) were new to the store."""

    cid: bytes
    size: int
    chunks: int
    new_chunks: int
    new_bytes: int


class ChunkStore:
    """Blocks of blob DAGs under ``path`` (a directory LMDB owns)."""

    def __init__(self, path: Path | str, *, map_size: int = MAP_SIZE) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)
        # Transactions commit without an fsync each (LMDB keeps the file
        # consistent; a crash may only undo the newest ones); a put syncs once,
        # after its pin, before it answers: a pinned blob is on disk.
        self.env = lmdb.open(str(path), map_size=map_size, max_dbs=3, subdir=True, sync=False)
        self._blocks = self.env.open_db(b"blocks")
        self._refs = self.env.open_db(b"refs")
        self._pins = self.env.open_db(b"pins")
        #: Called with each root pinned (from the thread that pinned it): the
        #: node announces what it holds.
        self.on_pin: list[Callable[[bytes], None]] = []

    def close(self) -> None:
        self.env.close()

    # --- writing -------------------------------------------------------------
    def put(self, stream: BinaryIO, max_bytes: int = dag.MAX_BLOB_BYTES) -> PutResult:
        """Cut ``stream`` into chunks, store the new ones and the DAG, pin the root.

        BlobTooLargeError past ``max_bytes`` (what was written waits for ``gc``).
        """
        leaves: list[Link] = []
        batch: list[tuple[bytes, bytes]] = []
        batch_bytes = size = new_chunks = new_bytes = 0
        for chunk in dag.cut(stream):
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLargeError(f"a blob is at most {max_bytes} bytes")
            cid = dag.cid_bytes(dag.RAW, chunk)
            leaves.append(Link(cid, len(chunk)))
            batch.append((cid, chunk))
            batch_bytes += len(chunk)
            if batch_bytes >= BATCH_BYTES:
                chunks, written = self._write(batch)
                new_chunks, new_bytes = new_chunks + chunks, new_bytes + written
                batch, batch_bytes = [], 0
        root, nodes = dag.build(leaves)
        chunks, written = self._write(batch)
        new_chunks += chunks
        new_bytes += written
        _, written = self._write(nodes)
        new_bytes += written
        distinct = {link.cid for link in leaves} | {cid for cid, _ in nodes}
        if not leaves:  # the empty blob is its one (empty) raw block
            self._write([(root.cid, b"")])
            distinct = {root.cid}
        self._pin(root, distinct)
        self.env.sync(True)
        self._pinned(root.cid)
        return PutResult(root.cid, size, len(leaves), new_chunks, new_bytes)

    def add_blocks(self, blocks: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        """Store blocks that came from elsewhere (a peer), each checked against
        its CID first; unpinned until :meth:`pin`. Returns how many were new and
        their bytes. BlobError for a block that does not hash to its CID."""
        for cid, data in blocks:
            dag.codec_of(cid)
            dag.verify_block(cid, data)
        return self._write(blocks)

    def pin(self, root: bytes) -> PutResult:
        """Pin a blob whose blocks are all in the store (fetched with
        :meth:`add_blocks`); pinning one already pinned changes nothing. The
        result counts nothing as new: the blocks were stored before. BlobError
        if a block of the DAG is missing or a size in it does not match."""
        dag.codec_of(root)
        with self.env.begin() as txn:
            size, chunks = self._walk(txn, root)
        self._pin(Link(root, size), self._blocks_of_root(root))
        self.env.sync(True)
        self._pinned(root)
        return PutResult(root, size, chunks, 0, 0)

    def _blocks_of_root(self, root: bytes) -> set[bytes]:
        with self.env.begin() as txn:
            return self._blocks_of(txn, root)

    def _walk(self, txn: lmdb.Transaction, root: bytes) -> tuple[int, int]:
        """``(size, chunks)`` of the DAG under ``root``, every block present and
        every link's size the size of what it names."""
        known: dict[bytes, tuple[int, int]] = {}

        def visit(cid: bytes, depth: int = 0) -> tuple[int, int]:
            if depth > dag.MAX_DEPTH:
                raise BlobError(f"blob {root.hex()} is deeper than {dag.MAX_DEPTH} levels")
            if cid in known:
                return known[cid]
            data = txn.get(cid, db=self._blocks)
            if data is None:
                raise BlobError(f"block {cid.hex()} of blob {root.hex()} is not here")
            if dag.codec_of(cid) == dag.RAW:
                known[cid] = (len(data), 1)
                return known[cid]
            size = chunks = 0
            for link in dag.decode_node(bytes(data)):
                got = visit(link.cid, depth + 1)
                if got[0] != link.size:
                    raise BlobError(
                        f"DAG node {cid.hex()} says {link.size} bytes for a block of {got[0]}"
                    )
                size, chunks = size + got[0], chunks + got[1]
            known[cid] = (size, chunks)
            return known[cid]

        return visit(root)

    def _write(self, blocks: list[tuple[bytes, bytes]]) -> tuple[int, int]:
        """Store the blocks not yet stored; returns how many and their bytes."""
        count = total = 0
        with self.env.begin(write=True) as txn:
            for cid, data in blocks:
                if txn.put(cid, data, db=self._blocks, overwrite=False):
                    count += 1
                    total += len(data)
        return count, total

    def _pin(self, root: Link, distinct: set[bytes]) -> None:
        with self.env.begin(write=True) as txn:
            if txn.get(root.cid, db=self._pins) is not None:
                return
            for cid in distinct:
                raw = txn.get(cid, db=self._refs)
                count = _U64.unpack(raw)[0] if raw is not None else 0
                txn.put(cid, _U64.pack(count + 1), db=self._refs)
            txn.put(root.cid, _U64.pack(root.size), db=self._pins)

    def _pinned(self, root: bytes) -> None:
        for callback in list(self.on_pin):
            callback(root)

    def unpin(self, root: bytes) -> int:
        """Drop a pin; returns the bytes freed (blocks no other pin reaches).
        BlobError for a root that is not pinned."""
        dag.codec_of(root)
        with self.env.begin(write=True) as txn:
            if txn.get(root, db=self._pins) is None:
                raise BlobError(f"blob {root.hex()} is not pinned here")
            freed = 0
            for cid in self._blocks_of(txn, root):
                raw = txn.get(cid, db=self._refs)
                count = _U64.unpack(raw)[0] - 1 if raw is not None else 0
                if count > 0:
                    txn.put(cid, _U64.pack(count), db=self._refs)
                    continue
                txn.delete(cid, db=self._refs)
                data = txn.get(cid, db=self._blocks)
                if data is not None:
                    freed += len(data)
                    txn.delete(cid, db=self._blocks)
            txn.delete(root, db=self._pins)
        self.env.sync(True)
        return freed

    def gc(self) -> tuple[int, int]:
        """Delete blocks no pin reaches (left by puts cut short); returns
        ``(blocks, bytes)`` removed."""
        removed = freed = 0
        with self.env.begin(write=True) as txn:
            stray = [
                (bytes(cid), len(data))
                for cid, data in txn.cursor(db=self._blocks)
                if txn.get(cid, db=self._refs) is None
            ]
            for cid, size in stray:
                txn.delete(cid, db=self._blocks)
                removed += 1
                freed += size
        return removed, freed

    # --- reading -------------------------------------------------------------
    def pinned(self, root: bytes) -> int | None:
        """The size of a pinned blob, None if not pinned."""
        with self.env.begin() as txn:
            raw = txn.get(root, db=self._pins)
        return None if raw is None else _U64.unpack(raw)[0]

    def has(self, cid: bytes) -> bool:
        """Whether the store holds the block (unchecked: a read checks it)."""
        with self.env.begin() as txn:
            return txn.get(cid, db=self._blocks) is not None

    def pins(self) -> list[bytes]:
        """The pinned roots, in CID order."""
        with self.env.begin() as txn:
            return [bytes(cid) for cid, _ in txn.cursor(db=self._pins)]

    def block(self, cid: bytes) -> bytes | None:
        """A block's bytes, checked against its CID; None if not here."""
        dag.codec_of(cid)
        with self.env.begin() as txn:
            data = txn.get(cid, db=self._blocks)
        if data is None:
            return None
        dag.verify_block(cid, data)
        return bytes(data)

    def read(self, root: bytes) -> Iterator[bytes]:
        """The blob under ``root``, chunk by chunk, each checked against its CID.
        BlobError for a block that is missing or does not hash to its CID."""
        stack = [root]
        while stack:
            cid = stack.pop()
            data = self.block(cid)
            if data is None:
                raise BlobError(f"block {cid.hex()} of blob {root.hex()} is not here")
            if dag.codec_of(cid) == dag.RAW:
                yield data
            else:
                stack.extend(link.cid for link in reversed(dag.decode_node(data)))

    def _blocks_of(self, txn: lmdb.Transaction, root: bytes) -> set[bytes]:
        """Every distinct block of the DAG under ``root``, as stored."""
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            cid = stack.pop()
            if cid in seen:
                continue
            seen.add(cid)
            if dag.codec_of(cid) == dag.DAG_CBOR:
                data = txn.get(cid, db=self._blocks)
                if data is not None:
                    stack.extend(link.cid for link in dag.decode_node(bytes(data)))
        return seen

    def stats(self) -> dict[str, int]:
        with self.env.begin() as txn:
            return {
                "blocks": txn.stat(self._blocks)["entries"],
                "pins": txn.stat(self._pins)["entries"],
            }
