"""State-sync snapshots: the committed state at one height, cut into verifiable chunks.

A node that joins a network late can start from a recent snapshot instead of
replaying every block since genesis (CometBFT's state sync). A snapshot of
height ``H`` holds exactly what a node needs to go on from ``H``:

* the block record of ``H`` (the block and the commit certificate that decided
  it, as stored): its header names the state root, the focus root and the
  validator set's hash that everything else is checked against;
* every key/value pair of the state after ``H``, in key order, so the joining
  node rebuilds the sparse Merkle tree from nothing and compares its root with
  the header's (docs/state.md);
* the chain's focus state after ``H`` in its byte form (focus_state_format.py:
  named arrays under a versioned CBOR header, the bytes of a focus
  checkpoint): a block's focus depends on the engine's state, not on the graph
  alone. It is data: the joining node builds the state from it through the
  checks of focus_state_arrays.py and uses it only once the focus it carries
  reproduces the header's focus root under the focus parameters in force at
  ``H``, over the particles the verified state commits.

On disk a snapshot is a directory ``<snapshots>/<height, 12 digits>/`` with
``data.bin`` (the three sections one after the other: block record, state
records, focus state) and ``manifest.cbor``. The manifest names the chain, the
height, the block hash, both roots, the focus state's schema version, the
sections' sizes, the chunk size and the SHA-256 of every chunk of
``data.bin``; its own SHA-256 identifies the snapshot. Chunks are what peers
serve (``snapshot_chunk``): bounded pieces, each checked on arrival against the
manifest, so a peer that sends one wrong byte is caught at that chunk.

Snapshots of the release before this format (manifest format 1, whose focus
section is a pickle of the engine's objects) are refused as soon as their
manifest is read (``snapshot_incompatible``): a peer's pickle is never read.
A node that finds no other snapshot starts from genesis and block-syncs.

The manifest is a peer's claim until the header it names is verified: this
module checks everything that follows from the header (chunk hashes, the
state root, the focus root, the certificate under the validator set the state
records for ``H``, whose hash the header names); that the header is the
network's (a certificate chain from a trusted set) is the node's check
(focusflow.node.state_sync). :func:`install_snapshot` then writes it into an
empty store in one LMDB transaction (``Store.install``) and the verified focus
state beside it (``SNAPSHOT_FOCUS_FILE``, a focus checkpoint); ``Chain`` opens
such a store at ``H`` (``Chain.base``) and applies the next blocks with every
root checked.
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from focusflow.chain.block import BlockRecord, Header
from focusflow.chain.focus_checkpoint import write_checkpoint
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_spec import chain_focus_params
from focusflow.chain.focus_state_arrays import (
    Expected,
    committed_hebbian_root,
    committed_particles,
    plan_state,
    restore_state,
)
from focusflow.chain.focus_state_format import (
    SCHEMA,
    SCHEMAS,
    BlockIdentity,
    FocusStateError,
    FocusStateIncompatibleError,
    FocusStateRootError,
    read_arrays,
    read_header,
    write,
)
from focusflow.chain.focus_upgrade import (
    UPGRADES_KEY,
    decode_decided,
    focus_in_force,
    genesis_schedule,
    merge_schedule,
)
from focusflow.chain.genesis import Genesis
from focusflow.chain.valsets import VALSET_PREFIX, ValidatorSets
from focusflow.consensus.certificate import verify_certificate
from focusflow.consensus.errors import InvalidCertificateError
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError, InvalidParameterError, StoreError
from focusflow.core.home import fsync_dir
from focusflow.focus.params import FocusParams
from focusflow.store import EMPTY, Commit, Reader, Store, check_key, height_key
from focusflow.store import update as smt_update

#: 2: the focus section is the focus state's byte form (1: a pickle).
FORMAT = 2
MANIFEST_FILE = "manifest.cbor"
DATA_FILE = "data.bin"
#: The verified focus state of an installed snapshot, beside the store, as a
#: focus checkpoint (the store has no blocks below it to replay).
SNAPSHOT_FOCUS_FILE = "focus.snapshot.ckpt"
#: Bytes per chunk: one chunk is one request's answer, under the transport's
#: 8 MiB frame (net.framing.DEFAULT_MAX_FRAME) with room for its envelope.
DEFAULT_CHUNK_SIZE = 4 << 20
MAX_CHUNK_SIZE = 6 << 20
MIN_CHUNK_SIZE = 1 << 10
#: Chunks a manifest may list (64 GiB at the default size): bounds a manifest.
MAX_CHUNKS = 1 << 14
#: A manifest's bytes at most (its chunk hashes and a few fields).
MAX_MANIFEST_BYTES = 40 * MAX_CHUNKS + 4096
#: A state record: key length (2 bytes) and value length (4 bytes), big-endian.
_KEY_LEN, _VALUE_LEN = 2, 4


class SnapshotError(FocusflowError):
    """A snapshot is malformed or does not verify; nothing of it is used."""

    code = "snapshot_invalid"


class SnapshotChunkError(SnapshotError):
    """A chunk's bytes do not hash to the manifest's entry (or have the wrong size)."""

    code = "snapshot_chunk_mismatch"


class SnapshotRootError(SnapshotError):
    """The state or focus the snapshot holds does not hash to its header's roots."""

    code = "snapshot_root_mismatch"


class SnapshotCertificateError(SnapshotError):
    """The header's commit certificate does not verify (or no trusted set backs it)."""

    code = "snapshot_certificate_invalid"


class SnapshotIncompatibleError(SnapshotError):
    """Another chain's snapshot, one of a format or focus state schema this node
    does not read, or one whose focus state runs other focus parameters."""

    code = "snapshot_incompatible"


@dataclass(frozen=True)
class Manifest:
    """What a snapshot claims; see the module docstring."""

    chain_id: str
    height: int
    block_hash: bytes
    state_root: bytes
    focus_root: bytes
    #: The focus state's schema (focus_state_format.SCHEMA).
    focus_schema: int
    #: Bytes of the block record, the state records and the focus state.
    sections: tuple[int, int, int]
    chunk_size: int
    #: SHA-256 of each chunk of the data, in order.
    chunks: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(self.sections)

    def chunk_length(self, index: int) -> int:
        """Bytes of chunk ``index`` (the last one may be short)."""
        return min(self.chunk_size, self.size - index * self.chunk_size)

    def encode(self) -> bytes:
        return encode(
            {
                "format": FORMAT,
                "chain_id": self.chain_id,
                "height": self.height,
                "block_hash": self.block_hash,
                "state_root": self.state_root,
                "focus_root": self.focus_root,
                "focus_schema": self.focus_schema,
                "sections": list(self.sections),
                "chunk_size": self.chunk_size,
                "chunks": list(self.chunks),
            }
        )

    @property
    def hash(self) -> bytes:
        """The snapshot's identity: SHA-256 of its manifest."""
        return hashlib.sha256(self.encode()).digest()

    @classmethod
    def decode(cls, raw: bytes) -> Manifest:
        """A manifest from a peer or a file; SnapshotError for anything malformed."""
        if not isinstance(raw, bytes) or len(raw) > MAX_MANIFEST_BYTES:
            raise SnapshotError("snapshot manifest is not bytes or is too large")
        try:
            value = decode(raw, "snapshot manifest")
        except DecodeError as exc:
            raise SnapshotError(f"undecodable snapshot manifest: {exc}") from None
        if not isinstance(value, dict):
            raise SnapshotError("snapshot manifest is not a map")
        if value.get("format") == 1:
            raise SnapshotIncompatibleError(
                "snapshot of the release before the focus state's named arrays (manifest "
                "format 1): its focus state is a pickle, which this node never reads"
            )
        if value.get("format") != FORMAT:
            raise SnapshotError(f"snapshot manifest is not of format {FORMAT}")
        try:
            manifest = cls(
                value["chain_id"],
                value["height"],
                value["block_hash"],
                value["state_root"],
                value["focus_root"],
                value["focus_schema"],
                tuple(value["sections"]),
                value["chunk_size"],
                tuple(value["chunks"]),
            )
        except (KeyError, TypeError) as exc:
            raise SnapshotError(f"snapshot manifest lacks a field: {exc}") from None
        manifest._check()
        if manifest.focus_schema not in SCHEMAS:
            raise SnapshotIncompatibleError(
                f"snapshot's focus state is of schema {manifest.focus_schema}: this node reads "
                f"{', '.join(map(str, SCHEMAS))}"
            )
        return manifest

    def _check(self) -> None:
        def uint(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        hashes = (self.block_hash, self.state_root, self.focus_root)
        ok = (
            isinstance(self.chain_id, str)
            and uint(self.height)
            and self.height >= 1
            and all(isinstance(h, bytes) and len(h) == 32 for h in hashes)
            and uint(self.focus_schema)
            and len(self.sections) == 3
            and all(uint(s) for s in self.sections)
            and self.sections[0] > 0
            and self.sections[2] > 0
            and uint(self.chunk_size)
            and MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE
            and 0 < len(self.chunks) <= MAX_CHUNKS
            and all(isinstance(h, bytes) and len(h) == 32 for h in self.chunks)
        )
        if not ok:
            raise SnapshotError("snapshot manifest has a bad field")
        if len(self.chunks) != -(-self.size // self.chunk_size):
            raise SnapshotError("snapshot manifest's chunk count does not cover its sections")


# --- writing -------------------------------------------------------------------


def capture_focus(focus: FocusState, header: Header, chain_id: str) -> bytes:
    """The focus state after the block of ``header`` as a snapshot holds it
    (its byte form, focus_state_format.py).

    Called right after the block commits, before the next block can advance
    the state (the chain may advance it in place): the arrays are copied into
    these bytes here (a GPU engine's state in its numba form); the rest of a
    snapshot is written from them and a read transaction, in the background.
    """
    out = io.BytesIO()
    write(out, plan_state(focus, BlockIdentity.of(chain_id, header)))
    return out.getvalue()


def write_snapshot(
    reader: Reader,
    focus_payload: bytes,
    root: Path,
    *,
    chain_id: str,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Manifest:
    """Write the snapshot of ``reader``'s height into ``root/<height>/``; its manifest.

    ``reader`` is a read transaction of the committed store at that height
    (LMDB keeps its view however far the chain moves meanwhile) and
    ``focus_payload`` what :func:`capture_focus` took at that height. The
    directory appears whole or not at all (written beside, then renamed).
    """
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise InvalidParameterError(f"chunk_size must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE} bytes")
    height = reader.height
    raw_block = reader.block(height)
    if raw_block is None:
        raise StoreError(f"block {height} is missing from the store")
    header = BlockRecord.decode(raw_block).block.header
    final = Path(root) / f"{height:012d}"
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, mode=0o700)
    try:
        with open(tmp / DATA_FILE, "wb") as f:
            out = _ChunkWriter(f, chunk_size)
            out.write(raw_block)
            state_start = out.size
            for key, value in reader.items(b"/"):
                out.write(
                    len(key).to_bytes(_KEY_LEN, "big") + len(value).to_bytes(_VALUE_LEN, "big")
                )
                out.write(key)
                out.write(value)
            state_size = out.size - state_start
            out.write(focus_payload)
            out.finish()
            f.flush()
            os.fsync(f.fileno())
        manifest = Manifest(
            chain_id,
            height,
            header.hash,
            header.state_root,
            header.focus_root,
            SCHEMA,
            (len(raw_block), state_size, len(focus_payload)),
            chunk_size,
            tuple(out.hashes),
        )
        (tmp / MANIFEST_FILE).write_bytes(manifest.encode())
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(Path(root))
    return manifest


class _ChunkWriter:
    """Writes bytes to a file and the SHA-256 of every ``chunk_size`` piece."""

    def __init__(self, f: BinaryIO, chunk_size: int) -> None:
        self._f = f
        self._chunk_size = chunk_size
        self._digest = hashlib.sha256()
        self._filled = 0
        self.size = 0
        self.hashes: list[bytes] = []

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), self._chunk_size - self._filled)
            self._digest.update(view[:take])
            self._f.write(view[:take])
            self._filled += take
            self.size += take
            view = view[take:]
            if self._filled == self._chunk_size:
                self._close_chunk()

    def finish(self) -> None:
        if self._filled:
            self._close_chunk()

    def _close_chunk(self) -> None:
        self.hashes.append(self._digest.digest())
        self._digest = hashlib.sha256()
        self._filled = 0


def list_snapshots(root: Path) -> list[Manifest]:
    """The snapshots written under ``root``, newest first (unreadable ones skipped)."""
    out = []
    for path in sorted(Path(root).glob("[0-9]" * 12), reverse=True):
        try:
            out.append(Manifest.decode((path / MANIFEST_FILE).read_bytes()))
        except (OSError, SnapshotError):
            continue
    return out


def prune_snapshots(root: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` snapshots under ``root``."""
    for path in sorted(Path(root).glob("[0-9]" * 12), reverse=True)[keep:]:
        shutil.rmtree(path, ignore_errors=True)


def read_chunk(root: Path, manifest: Manifest, index: int) -> bytes:
    """Chunk ``index`` of the local snapshot ``manifest`` names; SnapshotError if
    it is not here (pruned meanwhile) or the index is out of range."""
    if not 0 <= index < len(manifest.chunks):
        raise SnapshotError(f"chunk {index} is outside 0..{len(manifest.chunks) - 1}")
    path = Path(root) / f"{manifest.height:012d}" / DATA_FILE
    try:
        with open(path, "rb") as f:
            f.seek(index * manifest.chunk_size)
            return f.read(manifest.chunk_length(index))
    except FileNotFoundError:
        raise SnapshotError(f"snapshot {manifest.height} is no longer kept here") from None


# --- receiving -----------------------------------------------------------------


class ChunkFile:
    """The data of a snapshot being downloaded: each chunk checked as it comes."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest
        self.have: set[int] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path, "wb") as f:
            f.truncate(manifest.size)

    def put(self, index: int, data: bytes) -> None:
        """Store chunk ``index``; SnapshotChunkError (nothing stored) unless its
        size and SHA-256 are the manifest's."""
        manifest = self.manifest
        if not 0 <= index < len(manifest.chunks):
            raise SnapshotChunkError(f"chunk {index} is outside the manifest")
        if len(data) != manifest.chunk_length(index):
            raise SnapshotChunkError(
                f"chunk {index} has {len(data)} bytes, the manifest says "
                f"{manifest.chunk_length(index)}"
            )
        if hashlib.sha256(data).digest() != manifest.chunks[index]:
            raise SnapshotChunkError(f"chunk {index} does not hash to the manifest's entry")
        with open(self.path, "r+b") as f:
            f.seek(index * manifest.chunk_size)
            f.write(data)
        self.have.add(index)

    def missing(self) -> list[int]:
        return [i for i in range(len(self.manifest.chunks)) if i not in self.have]


# --- verifying and installing ----------------------------------------------------


@dataclass
class VerifiedSnapshot:
    """A snapshot whose every part checked against its header (see :func:`verify_snapshot`)."""

    manifest: Manifest
    record: BlockRecord
    raw_block: bytes
    state: dict[bytes, bytes]
    nodes: dict[bytes, bytes]
    focus: FocusState
    valsets: ValidatorSets

    @property
    def header(self) -> Header:
        return self.record.block.header


def verify_snapshot(manifest: Manifest, data_path: Path, genesis: Genesis) -> VerifiedSnapshot:
    """Check a downloaded snapshot against its own header; SnapshotError says why not.

    In order: the chain, every chunk's hash, the block
    record (its hash, height and roots are the manifest's), the state records
    (keys in strictly increasing order, under the four prefixes) and the root
    of the tree rebuilt from them, the header's certificate under the set the
    verified state records for its height (whose hash the header names), and
    the focus state (see :func:`load_focus`). That the header is the network's
    is the caller's check.
    """
    if manifest.chain_id != genesis.chain_id:
        raise SnapshotIncompatibleError(
            f"snapshot of chain {manifest.chain_id!r}, not {genesis.chain_id!r}"
        )
    with open(data_path, "rb") as f:
        if os.fstat(f.fileno()).st_size != manifest.size:
            raise SnapshotChunkError("snapshot data is not the size its manifest says")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            _check_chunks(manifest, data)
            n_block, n_state, n_focus = manifest.sections
            raw_block = bytes(data[:n_block])
            record = _check_record(manifest, raw_block)
            # Released explicitly, so that an error raised while reading leaves
            # no view of the map behind (closing it would fail).
            with memoryview(data) as view, view[n_block : n_block + n_state] as records:
                state = _read_state(records)
            no_nodes: dict[bytes, bytes] = {}
            root, nodes = smt_update(no_nodes.get, EMPTY, state.items())
            if root != manifest.state_root:
                raise SnapshotRootError(
                    f"snapshot state hashes to {root.hex()[:16]}, its header says "
                    f"{manifest.state_root.hex()[:16]}"
                )
            valsets = _check_certificate(record, state, genesis.chain_id)
            f.seek(n_block + n_state)
            focus = load_focus(f, n_focus, record.block.header, state, genesis)
    return VerifiedSnapshot(manifest, record, raw_block, state, nodes, focus, valsets)


def _check_chunks(manifest: Manifest, data: mmap.mmap) -> None:
    size = manifest.chunk_size
    for i, expected in enumerate(manifest.chunks):
        if hashlib.sha256(data[i * size : (i + 1) * size]).digest() != expected:
            raise SnapshotChunkError(f"chunk {i} does not hash to the manifest's entry")


def _check_record(manifest: Manifest, raw: bytes) -> BlockRecord:
    try:
        record = BlockRecord.decode(raw)
    except DecodeError as exc:
        raise SnapshotError(f"snapshot block is malformed: {exc}") from None
    header = record.block.header
    if header.hash != manifest.block_hash or header.height != manifest.height:
        raise SnapshotError("snapshot block is not the one its manifest names")
    if header.chain_id != manifest.chain_id:
        raise SnapshotIncompatibleError(f"snapshot block is of chain {header.chain_id!r}")
    if (header.state_root, header.focus_root) != (manifest.state_root, manifest.focus_root):
        raise SnapshotRootError("snapshot manifest's roots are not its header's")
    if record.commit is None:
        raise SnapshotCertificateError(f"snapshot block {header.height} has no certificate")
    return record


def _read_state(data: memoryview) -> dict[bytes, bytes]:
    """The state records in key order; SnapshotError if malformed or out of order."""
    state: dict[bytes, bytes] = {}
    pos, end, last = 0, len(data), b""
    head = _KEY_LEN + _VALUE_LEN
    while pos < end:
        if end - pos < head:
            raise SnapshotError("snapshot state ends inside a record")
        klen = int.from_bytes(data[pos : pos + _KEY_LEN], "big")
        vlen = int.from_bytes(data[pos + _KEY_LEN : pos + head], "big")
        pos += head
        if end - pos < klen + vlen:
            raise SnapshotError("snapshot state ends inside a record")
        key = bytes(data[pos : pos + klen])
        value = bytes(data[pos + klen : pos + klen + vlen])
        pos += klen + vlen
        if key <= last:
            raise SnapshotError("snapshot state keys are not in strictly increasing order")
        try:
            check_key(key)
        except StoreError as exc:
            raise SnapshotError(f"snapshot state: {exc}") from None
        state[key] = value
        last = key
    return state


def _check_certificate(
    record: BlockRecord, state: dict[bytes, bytes], chain_id: str
) -> ValidatorSets:
    """The header's certificate carries more than 2/3 of the set the state
    records for its height, and the header names that set's hash."""
    header = record.block.header
    try:
        valsets = ValidatorSets.load(
            (k, v) for k, v in state.items() if k.startswith(VALSET_PREFIX)
        )
    except (DecodeError, ValueError) as exc:
        raise SnapshotError(f"snapshot's validator sets are unreadable: {exc}") from None
    vset = valsets.at(header.height)
    if vset.hash() != header.validators_hash:
        raise SnapshotCertificateError(
            f"the validator set the snapshot records for {header.height} is not its header's"
        )
    assert record.commit is not None
    try:
        verify_certificate(
            record.commit, vset, chain_id, height=header.height, value_id=header.hash
        )
    except InvalidCertificateError as exc:
        raise SnapshotCertificateError(f"snapshot block's certificate: {exc}") from None
    return valsets


def _params_at(height: int, state: dict[bytes, bytes], genesis: Genesis) -> FocusParams | None:
    """The focus parameters in force at ``height`` by the genesis and the
    verified state's upgrade schedule (focus_upgrade.py); None if this node
    cannot run them."""
    schedule = merge_schedule(
        genesis_schedule(genesis.params.focus_upgrades), decode_decided(state.get(UPGRADES_KEY))
    )
    try:
        return chain_focus_params(focus_in_force(genesis.params.focus, schedule, height))
    except InvalidParameterError:
        return None


def load_focus(
    f: io.BufferedIOBase, size: int, header: Header, state: dict[bytes, bytes], genesis: Genesis
) -> FocusState:
    """Load ``size`` bytes of a peer's focus state from ``f`` and check it.

    The bytes are the focus state's byte form, bounded by their section and
    read as data (focus_state_format.py); the state built from them must be
    of ``header``'s block, run the focus parameters in force at its height
    and hold the particles the verified ``state`` commits, and its focus
    must reproduce the header's focus root (focus_state_arrays.py).
    """
    params = _params_at(header.height, state, genesis)
    if params is None:
        raise SnapshotIncompatibleError(
            f"snapshot's focus parameters at height {header.height} are not ones this node runs"
        )
    expected = Expected(
        BlockIdentity.of(genesis.chain_id, header),
        params,
        committed_particles(state.get),
        committed_hebbian_root(state.get),
    )
    try:
        focus_header, digest = read_header(f, size)
        arrays = read_arrays(f, focus_header, digest)
        return restore_state(focus_header, arrays, expected)
    except FocusStateIncompatibleError as exc:
        raise SnapshotIncompatibleError(f"snapshot {exc}") from None
    except FocusStateRootError as exc:
        raise SnapshotRootError(f"snapshot {exc}") from None
    except FocusStateError as exc:
        raise SnapshotError(f"snapshot {exc}") from None


def install_snapshot(store: Store, snapshot: VerifiedSnapshot, genesis: Genesis) -> Header:
    """Write a verified snapshot into an empty store (one LMDB transaction) and
    its focus state beside it, as a focus checkpoint; returns its header.

    ``Chain(store, genesis, ...)`` then opens at the snapshot's height.
    """
    header = snapshot.header
    path = Path(store.path) / SNAPSHOT_FOCUS_FILE
    write_checkpoint(path, snapshot.focus, BlockIdentity.of(genesis.chain_id, header))
    store.install(
        Commit(
            header.height,
            snapshot.state,
            snapshot.nodes,
            header.state_root,
            snapshot.raw_block,
            {b"b" + header.hash: height_key(header.height)},
            {b"genesis": genesis.hash, b"chain_id": genesis.chain_id.encode()},
        )
    )
    return header


def restore_snapshot(store: Store, manifest: Manifest, data_path: Path, genesis: Genesis) -> Header:
    """:func:`verify_snapshot` then :func:`install_snapshot`."""
    return install_snapshot(store, verify_snapshot(manifest, data_path, genesis), genesis)


def iter_chunks(root: Path, manifest: Manifest) -> Iterator[bytes]:
    """Every chunk of a local snapshot, in order (tests and local copies)."""
    for i in range(len(manifest.chunks)):
        yield read_chunk(root, manifest, i)


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "SNAPSHOT_FOCUS_FILE",
    "ChunkFile",
    "Manifest",
    "SnapshotCertificateError",
    "SnapshotChunkError",
    "SnapshotError",
    "SnapshotIncompatibleError",
    "SnapshotRootError",
    "VerifiedSnapshot",
    "capture_focus",
    "install_snapshot",
    "iter_chunks",
    "list_snapshots",
    "load_focus",
    "prune_snapshots",
    "read_chunk",
    "restore_snapshot",
    "verify_snapshot",
    "write_snapshot",
]
