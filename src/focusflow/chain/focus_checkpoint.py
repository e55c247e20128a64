"""A file that holds the chain's focus state at one committed block.

Why: a node rebuilds its focus engine on start by replaying every stored
block's edge deltas (``Chain._restore``), because a block's focus depends on
the engine's state before it (warm start, inner solver states, the snapshot's
patch history), not on the graph alone. That costs O(history), and after an
upgrade that changes the engine's arithmetic a replay no longer reproduces the
stored roots. A checkpoint holds the whole state object (graph, engine and
solver states, operator) after one block, so a restart loads it and replays
only the blocks after it; every replayed block's focus root is still checked.

The state is a pickle (protocol 5: numpy arrays go out as raw buffers), and
unpickling runs code, so a checkpoint is only loaded if this home wrote it: a
trailer holds the HMAC-SHA256 of header and payload under a secret of the
home (``CHECKPOINT_KEY_FILE`` beside the checkpoint, 32 random bytes, 0600,
created at the first write). A file copied from another home, or rewritten by
someone who cannot read the home's secret, fails the check before anything is
unpickled. The header names the height, the block hash and focus root it
belongs to and a fingerprint of the code that wrote it: a checkpoint from
other code (another focusflow, Python, numpy or numba) is not loaded, since
its classes and arithmetic may differ; the chain also compares its root with
the stored header of its block. Any reason not to use a
checkpoint (absent, corrupt, another chain's, other code) falls back to the
full replay: the checkpoint is a cache, never the authority.

Layout: ``MAGIC``, a 4-byte big-endian header length, the header (canonical
CBOR), the payload, then ``TRAILER``: the payload's length and the HMAC of
header and payload, so that the pickle streams to and from the file without a
second copy of the state in memory.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import pickle
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from focusflow.chain.focus_commit import FocusState
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.home import fsync_dir, open_private

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

MAGIC = b"focusflow focus checkpoint\n"
#: 3: the trailer is an HMAC under the home's secret (2 had a plain SHA-256).
FORMAT = 3
#: After the payload: its length (8 bytes, big-endian) and the HMAC-SHA256 of
#: the header and the payload.
TRAILER = 8 + 32
#: The checkpoint's file name inside the store's directory.
CHECKPOINT_FILE = "focus.ckpt"
#: The home's checkpoint secret, beside the checkpoint (0600).
CHECKPOINT_KEY_FILE = "focus.ckpt.key"
KEY_SIZE = 32


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the state after block ``height`` (hash ``block_hash``)."""

    height: int
    block_hash: bytes
    state: FocusState


class CheckpointUnusableError(Exception):
    """Why a checkpoint file cannot be used (the node then replays every block)."""


@functools.cache
def code_fingerprint() -> bytes:
    """SHA-256 over the interpreter's and numeric libraries' versions and every
    source file of the focusflow package: what decides the pickled classes'
    layout and the engine's arithmetic."""
    import numba
    import numpy

    import focusflow

    h = hashlib.sha256()
    h.update(f"{sys.version}|{numpy.__version__}|{numba.__version__}|".encode())
    root = Path(focusflow.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(path.read_bytes())
    return h.digest()


def checkpoint_key(directory: Path, create: bool = False) -> bytes:
    """The home's checkpoint secret in ``directory``; with ``create``, made
    (32 random bytes, owner-only, synced) when there is none.

    CheckpointUnusableError when it is missing (and not to be created), not
    ``KEY_SIZE`` bytes, or readable by others than its owner.
    """
    path = Path(directory) / CHECKPOINT_KEY_FILE
    if create and not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another writer made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_SIZE))
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(path.parent)
    try:
        mode = os.stat(path).st_mode
        key = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointUnusableError(f"no checkpoint key {path}") from None
    except OSError as exc:
        raise CheckpointUnusableError(f"unreadable checkpoint key: {exc}") from None
    if len(key) != KEY_SIZE:
        raise CheckpointUnusableError(f"checkpoint key {path} is not {KEY_SIZE} bytes")
    if mode & 0o077:
        raise CheckpointUnusableError(f"checkpoint key {path} is readable by others (not 0600)")
    return key


def write_checkpoint(path: Path, state: FocusState, height: int, block_hash: bytes) -> int:
    """Write ``state`` (after block ``height``) to ``path`` atomically; returns bytes.

    The pickle streams into the file through the checksum, so the state is
    never held twice in memory. The file is written beside ``path``, flushed
    to disk and renamed over it, so a crash leaves the old checkpoint or the
    new one, never half of one.
    """
    return write_planned(path, state, plan_checkpoint(path, state, height, block_hash))


@dataclass
class CheckpointPlan:
    """What a checkpoint's write needs besides the state, made before it: the
    header and an HMAC already keyed with the home's secret and fed the header.

    A background writer (checkpoint_writer.py) makes the plan in the node's
    process and writes in a forked child, which then reads no key file, imports
    nothing and asks OpenSSL for no algorithm (whose locks another thread of
    the parent may have held at the fork): it only feeds bytes to this HMAC.
    """

    height: int
    header: bytes
    mac: hmac.HMAC


def plan_checkpoint(
    path: Path, state: FocusState, height: int, block_hash: bytes
) -> CheckpointPlan:
    """The header and keyed HMAC of ``state``'s checkpoint at ``path`` (the
    home's key is created beside it at the first write)."""
    header = encode(
        {
            "format": FORMAT,
            "height": height,
            "block_hash": block_hash,
            "focus_root": state.root,
            "code": code_fingerprint(),
        }
    )
    mac = hmac.new(checkpoint_key(path.parent, create=True), digestmod=hashlib.sha256)
    mac.update(header)
    return CheckpointPlan(height, header, mac)


def tmp_path(path: Path) -> Path:
    """Where a checkpoint of ``path`` is written before it is renamed over it."""
    return path.with_name(path.name + ".tmp")


def write_planned(path: Path, state: FocusState, plan: CheckpointPlan) -> int:
    """:func:`write_checkpoint` with its plan made already (consumes the plan's HMAC)."""
    tmp = tmp_path(path)
    try:
        with open_private(tmp, "wb") as f:
            f.write(MAGIC)
            f.write(len(plan.header).to_bytes(4, "big"))
            f.write(plan.header)
            out = _HashingWriter(f, plan.mac)
            pickle.dump(state, out, protocol=5)
            f.write(out.size.to_bytes(8, "big"))
            f.write(out.digest.digest())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A failed write (full disk, a state that does not pickle) leaves the
        # previous checkpoint as it was and no half-written file beside it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return len(MAGIC) + 4 + len(plan.header) + out.size + TRAILER


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint at ``path``; CheckpointUnusableError says why it cannot be used.

    Checks the file's own consistency (its checksum is taken in a streaming
    pass before anything is unpickled) and that this code wrote it; whether it
    belongs to the store's chain is the caller's check (the block hash at its
    height).
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise CheckpointUnusableError("no checkpoint") from None
    except OSError as exc:
        raise CheckpointUnusableError(f"unreadable: {exc}") from None
    with f:
        try:
            return _read(f, checkpoint_key(path.parent))
        except OSError as exc:
            raise CheckpointUnusableError(f"unreadable: {exc}") from None


def _read(f: BinaryIO, key: bytes) -> Checkpoint:
    total = os.fstat(f.fileno()).st_size
    lead = f.read(len(MAGIC) + 4)
    if not lead.startswith(MAGIC) or len(lead) < len(MAGIC) + 4:
        raise CheckpointUnusableError("not a focus checkpoint")
    size = int.from_bytes(lead[len(MAGIC) :], "big")
    raw_header = f.read(size)
    try:
        header = decode(raw_header, "checkpoint header")
    except DecodeError as exc:
        raise CheckpointUnusableError(f"corrupt header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointUnusableError("unknown checkpoint format")
    if header.get("code") != code_fingerprint():
        raise CheckpointUnusableError("written by other code (another focusflow, or libraries)")
    start = len(lead) + len(raw_header)
    payload = total - start - TRAILER
    if payload <= 0:
        raise CheckpointUnusableError("corrupt payload (truncated)")
    digest = hmac.new(key, raw_header, hashlib.sha256)
    left = payload
    while left:
        chunk = f.read(min(left, 1 << 22))
        if not chunk:
            raise CheckpointUnusableError("corrupt payload (truncated)")
        digest.update(chunk)
        left -= len(chunk)
    trailer = f.read(TRAILER)
    if int.from_bytes(trailer[:8], "big") != payload:
        raise CheckpointUnusableError("corrupt payload (length differs)")
    if not hmac.compare_digest(trailer[8:], digest.digest()):
        raise CheckpointUnusableError(
            "not written by this home (its HMAC does not check under the home's key)"
        )
    f.seek(start)
    try:
        state = pickle.load(f)
    except Exception as exc:  # noqa: BLE001 - a pickle error can be of any type
        raise CheckpointUnusableError(f"payload does not load: {exc}") from None
    if f.tell() != start + payload:
        raise CheckpointUnusableError("payload does not end where its length says")
    if not isinstance(state, FocusState) or state.root != header.get("focus_root"):
        raise CheckpointUnusableError("payload is not the focus state its header names")
    height, block_hash = header.get("height"), header.get("block_hash")
    if not isinstance(height, int) or not isinstance(block_hash, bytes):
        raise CheckpointUnusableError("corrupt header: height or block hash")
    return Checkpoint(height, block_hash, state)


class _HashingWriter:
    """A file's ``write`` that also feeds an HMAC-SHA256 and counts the bytes
    (what pickle.dump needs of its file)."""

    def __init__(self, f: BinaryIO, digest: hmac.HMAC) -> None:
        self._f = f
        self.digest = digest
        self.size = 0

    def write(self, data: ReadableBuffer) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        return self._f.write(view)


__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_KEY_FILE",
    "Checkpoint",
    "CheckpointPlan",
    "CheckpointUnusableError",
    "checkpoint_key",
    "code_fingerprint",
    "plan_checkpoint",
    "read_checkpoint",
    "tmp_path",
    "write_checkpoint",
    "write_planned",
]
