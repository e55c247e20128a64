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
* the chain's focus state after ``H`` (graph, engine and solver states: a
  block's focus depends on them, not on the graph alone; focus_checkpoint.py),
  pickled as the focus checkpoint is, but without its HMAC: a peer cannot sign
  with our home's secret, so this state is loaded through an allowlist of the
  engine's own classes (no other code can run while it loads), and is used only
  once the focus vector it holds hashes to the header's focus root, its
  parameters are the genesis's and its particle order is the one the verified
  state commits.

On disk a snapshot is a directory ``<snapshots>/<height, 12 digits>/`` with
``data.bin`` (the three sections one after the other: block record, state
records, focus state) and ``manifest.cbor``. The manifest names the chain, the
height, the block hash, both roots, the fingerprint of the code that wrote it
(the focus state loads only into the same code: focus_checkpoint.code_fingerprint),
the sections' sizes, the chunk size and the SHA-256 of every chunk of
``data.bin``; its own SHA-256 identifies the snapshot. Chunks are what peers
serve (``snapshot_chunk``): bounded pieces, each checked on arrival against the
manifest, so a peer that sends one wrong byte is caught at that chunk.

The manifest is a peer's claim until the header it names is verified: this
module checks everything that follows from the header (chunk hashes, the
state root, the focus root, the certificate under the validator set the state
records for ``H``, whose hash the header names); that the header is the
network's (a certificate chain from a trusted set) is the node's check
(focusflow.node.state_sync). :func:`install_snapshot` then writes it into an
empty store in one LMDB transaction (``Store.install``) and the verified focus
state beside it under this home's HMAC (``SNAPSHOT_FOCUS_FILE``); ``Chain``
opens such a store at ``H`` (``Chain.base``) and applies the next blocks with
every root checked.

Before anything uses the focus state, every array in it is checked for
structure (:func:`check_focus_structure`: dtypes, lengths, row pointers,
indices in range, permutations, entry maps, ids within the interned counts,
weights finite and >= 0), since the numba kernels index them without bounds
checks. What is not proven before use is the values no root commits: the
solvers' warm-start vectors, the patched matrices' weights. A peer that
altered them makes the next block with links compute another focus root,
which ``Chain.apply_block`` refuses, so the node stops there and never
commits a wrong root (it is then state-synced again from another peer).
"""

from __future__ import annotations

import hashlib
import io
import mmap
import os
import pickle
import shutil
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from focusflow.chain.block import BlockRecord, Header
from focusflow.chain.focus_checkpoint import code_fingerprint, write_checkpoint
from focusflow.chain.focus_commit import (
    CHAIN_BACKEND,
    PARTICLES_PREFIX,
    FocusState,
    FocusValueError,
    focus_root,
    quantise,
)
from focusflow.chain.focus_spec import chain_focus_params
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
from focusflow.core.structure import Check, StructureError
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import FocusParams
from focusflow.graph.cybergraph import Cybergraph
from focusflow.store import EMPTY, Commit, Reader, Store, check_key, height_key
from focusflow.store import update as smt_update

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

FORMAT = 1
MANIFEST_FILE = "manifest.cbor"
DATA_FILE = "data.bin"
#: The verified focus state of an installed snapshot, beside the store,
#: under the home's HMAC (the store has no blocks below it to replay).
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
    """Another chain's snapshot, or one whose focus state other code wrote."""

    code = "snapshot_incompatible"


@dataclass(frozen=True)
class Manifest:
    """What a snapshot claims; see the module docstring."""

    chain_id: str
    height: int
    block_hash: bytes
    state_root: bytes
    focus_root: bytes
    #: focus_checkpoint.code_fingerprint() of the writer.
    code: bytes
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
                "code": self.code,
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
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise SnapshotError(f"snapshot manifest is not of format {FORMAT}")
        try:
            manifest = cls(
                value["chain_id"],
                value["height"],
                value["block_hash"],
                value["state_root"],
                value["focus_root"],
                value["code"],
                tuple(value["sections"]),
                value["chunk_size"],
                tuple(value["chunks"]),
            )
        except (KeyError, TypeError) as exc:
            raise SnapshotError(f"snapshot manifest lacks a field: {exc}") from None
        manifest._check()
        return manifest

    def _check(self) -> None:
        def uint(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 0

        hashes = (self.block_hash, self.state_root, self.focus_root, self.code)
        ok = (
            isinstance(self.chain_id, str)
            and uint(self.height)
            and self.height >= 1
            and all(isinstance(h, bytes) and len(h) == 32 for h in hashes)
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


def capture_focus(focus: FocusState) -> bytes:
    """The focus state as a snapshot holds it (a pickle, protocol 5).

    Called right after the block commits, before the next block can advance
    the state (the chain may advance it in place); a GPU engine's state goes
    in its numba form (``FocusState.host_form``); the rest of a snapshot is
    written from these bytes and a read transaction, in the background.
    """
    return pickle.dumps(focus.host_form(), protocol=5)


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
            code_fingerprint(),
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

    In order: the chain and the writer's code, every chunk's hash, the block
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
    if manifest.code != code_fingerprint():
        raise SnapshotIncompatibleError(
            "snapshot's focus state was written by other code (another focusflow, "
            "Python, numpy or numba)"
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


#: The modules whose classes a snapshot's focus state may name: those a
#: chain's focus state is made of (graph, engine, solvers, numba operators;
#: none does I/O). Any class defined in one of them may appear (large graphs
#: hold more of them than small ones: a patched snapshot's ``PatchInfo``),
#: nothing else of them (no function).
FOCUS_MODULES = frozenset(
    {
        "focusflow.chain.focus_commit",
        "focusflow.focus.anderson",
        "focusflow.focus.backends.base",
        "focusflow.focus.backends.numba_cpu",
        "focusflow.focus.backends.numba_lap",
        "focusflow.focus.backends.sell",
        "focusflow.focus.engine",
        "focusflow.focus.params",
        "focusflow.focus.result",
        "focusflow.focus.spectral",
        "focusflow.graph.column",
        "focusflow.graph.cybergraph",
        "focusflow.graph.link_index",
        "focusflow.graph.links",
        "focusflow.graph.log",
        "focusflow.graph.snapshot",
        "focusflow.graph.tables",
    }
)
#: Other globals allowed by name: numpy's array and scalar reconstruction and
#: builtin container types. Everything else (os, builtins.eval, functools, a
#: function of an allowed module) is refused before it is looked up, so
#: loading a peer's pickle runs no other code.
FOCUS_GLOBALS = frozenset(
    {
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "bytearray"),
        ("builtins", "complex"),
        ("builtins", "frozenset"),
        ("builtins", "range"),
        ("builtins", "set"),
        ("builtins", "slice"),
        ("collections", "OrderedDict"),
        ("collections", "deque"),
    }
)


class _FocusUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:  # a class or function, as pickle's
        if (module, name) in FOCUS_GLOBALS:
            return super().find_class(module, name)
        if module in FOCUS_MODULES or module in ("numpy", "numpy.dtypes"):
            found = super().find_class(module, name)
            if module.startswith("numpy"):
                # Scalar and dtype types only (numpy.float64, numpy.dtypes.Float64DType).
                if isinstance(found, type) and issubclass(found, np.generic | np.dtype):
                    return found
            elif isinstance(found, type) and found.__module__ == module:
                return found
        raise SnapshotError(f"snapshot focus state names {module}.{name}, which is not allowed")


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

    Only classes of FOCUS_MODULES and FOCUS_GLOBALS may be named; the
    parameters must be the genesis's; every array must pass its structure's
    check (:func:`check_focus_structure`, which refuses arrays of Python
    objects with all others no check covers); the committed vector, quantised
    ``uint64``, must hash to the header's focus root (recomputed here, not
    taken from the state's own field), and so must the engine's last result
    once quantised (what the next block's solve starts from); and the
    particle order must be the one the verified state commits under
    ``/graph/particles/``.
    """
    start = f.tell()
    try:
        focus = _FocusUnpickler(_Bounded(f, size)).load()
    except SnapshotError:
        raise
    except Exception as exc:  # noqa: BLE001 - a pickle error can be of any type
        raise SnapshotError(f"snapshot focus state does not load: {exc}") from None
    if f.tell() != start + size:
        raise SnapshotError("snapshot focus state does not end where its section does")
    if type(focus) is not FocusState:
        raise SnapshotError("snapshot focus section is not a focus state")
    params = vars(focus).get("params")
    if type(params) is not FocusParams or params != _params_at(header.height, state, genesis):
        raise SnapshotIncompatibleError("snapshot focus state runs other focus parameters")
    check_focus_structure(focus)
    q = focus.q
    if not isinstance(q, np.ndarray) or q.dtype != np.uint64 or q.ndim != 1:
        raise SnapshotError("snapshot focus vector is not a uint64 vector")
    recomputed = focus_root(q)
    if recomputed != header.focus_root or focus.root != header.focus_root:
        raise SnapshotRootError(
            f"snapshot focus vector hashes to {recomputed.hex()[:16]}, its header says "
            f"{header.focus_root.hex()[:16]}"
        )
    if focus.graph.n_links and _engine_root(focus) != header.focus_root:
        raise SnapshotRootError("snapshot engine's focus does not quantise to its header's root")
    committed = [
        cid
        for key, value in state.items()
        if key.startswith(PARTICLES_PREFIX)
        for cid in decode(value, "particle chunk")
    ]
    if list(focus.graph.particles.keys()) != committed or len(q) != len(committed):
        raise SnapshotRootError("snapshot focus state's particles are not the committed ones")
    return focus


def _engine_root(focus: FocusState) -> bytes | None:
    """The focus root the engine's own last result commits to (what the next
    block's solve starts from), recomputed: quantised as a block commits it."""
    result = getattr(focus.engine, "result", None)
    phi = getattr(result, "focus", None)
    if not isinstance(phi, np.ndarray) or phi.ndim != 1 or phi.dtype != np.float64:
        return None
    try:
        return focus_root(quantise(phi))
    except FocusValueError:
        return None


class _Bounded(io.RawIOBase):
    """At most ``size`` bytes of ``f``: a pickle cannot read past its section."""

    def __init__(self, f: io.BufferedIOBase, size: int) -> None:
        self._f = f
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        n = self._f.readinto(view)
        self._left -= n
        return n

    def readline(self, size: int | None = -1) -> bytes:
        limit = self._left if size is None or size < 0 else min(size, self._left)
        line = self._f.readline(limit)
        self._left -= len(line)
        return line


#: What a focus state has (``FocusState.__init__`` sets them all).
_FOCUS_FIELDS = (
    "params",
    "graph",
    "engine",
    "q",
    "root",
    "iterations",
    "seconds",
    "converged",
    "unconverged_blocks",
    "work_s",
)
#: Values that hold nothing: the walk over a state does not descend into them.
_LEAVES = frozenset({bytes, str, int, float, bool, type(None), np.float64})


def check_focus_structure(focus: FocusState) -> set[int]:
    """Check every array of a peer's focus state before anything uses it;
    SnapshotError names the structure and field that is wrong.

    The numba kernels index these arrays without bounds checks, so an array
    that passes the root checks but is not what the engine built (an index
    past its vector, a row pointer past its indices, a permutation with a
    repeat, a count past its buffer) would make the next block read or write
    outside memory. Each structure's module checks its own arrays
    (``Cybergraph``, ``Snapshot``, ``PatchInfo``, ``Column``,
    ``SortedIndex``, ``KeyTable``, ``DeltaLog`` and the batches,
    ``FocusEngine``, the numba operator, ``SellMatrix``,
    ``ScaledSymmetric``, the springs, heat and push states, ``FocusResult``);
    then every array reachable from the state must have been checked by one
    of them (an array no check knows of is refused, not trusted). The
    focus vector's values are the root checks' (:func:`load_focus`).
    Returns the ids of the arrays checked (tests walk a state against them).
    """
    check = Check()
    try:
        a = check.fields(focus, FocusState, _FOCUS_FIELDS)
        Cybergraph.check_structure(a["graph"], check.at("graph"))
        FocusEngine.check_structure(
            a["engine"], check.at("engine"), a["graph"], a["params"], CHAIN_BACKEND
        )
        check.array("q", a["q"], np.uint64)
        check.instance("root", a["root"], bytes)
        check.integer("iterations", a["iterations"], 0)
        check.integer("unconverged_blocks", a["unconverged_blocks"], 0)
        check.instance("converged", a["converged"], bool)
        check.number("seconds", a["seconds"])
        check.number("work_s", a["work_s"])
        _all_arrays_checked(focus, check.covered)
        return check.covered
    except StructureError as exc:
        raise SnapshotError(f"focus state: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a crafted state can fail a check in any way
        raise SnapshotError(f"focus state is malformed: {type(exc).__name__}: {exc}") from None


def _all_arrays_checked(root: object, covered: set[int]) -> None:
    """Every numpy array reachable from ``root`` is one a structure check
    validated (``covered``); the first that is not is named by its path."""
    seen: set[int] = set()
    stack: list[tuple[str, object]] = [("", root)]
    while stack:
        path, obj = stack.pop()
        kind = type(obj)
        if kind in _LEAVES or id(obj) in seen:
            continue
        seen.add(id(obj))
        if type(obj) is np.ndarray:
            if id(obj) not in covered:
                what = "of Python objects " if obj.dtype.hasobject else ""
                raise StructureError(f"{path or 'state'} is an array {what}that no check covers")
        elif isinstance(obj, dict):
            items = obj.items()
            stack.extend((f"{path}[{k!r}]", v) for k, v in items if type(v) not in _LEAVES)
            stack.extend((f"{path} key", k) for k in obj if type(k) not in _LEAVES)
        elif isinstance(obj, list | tuple | set | frozenset | deque):
            stack.extend((f"{path}[{i}]", v) for i, v in enumerate(obj) if type(v) not in _LEAVES)
        else:
            fields = dict(vars(obj)) if hasattr(obj, "__dict__") else {}
            for klass in kind.__mro__:
                for name in getattr(klass, "__slots__", ()):
                    if hasattr(obj, name):
                        fields[name] = getattr(obj, name)
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in fields.items())


def install_snapshot(store: Store, snapshot: VerifiedSnapshot, genesis: Genesis) -> Header:
    """Write a verified snapshot into an empty store (one LMDB transaction) and
    its focus state beside it under this home's HMAC; returns its header.

    ``Chain(store, genesis, ...)`` then opens at the snapshot's height.
    """
    header = snapshot.header
    path = Path(store.path) / SNAPSHOT_FOCUS_FILE
    write_checkpoint(path, snapshot.focus, header.height, header.hash)
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
    "FOCUS_GLOBALS",
    "FOCUS_MODULES",
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
    "check_focus_structure",
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
