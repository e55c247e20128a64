"""A file that holds the chain's focus state at one committed block.

Why: a node rebuilds its focus engine on start by replaying every stored
block's edge deltas (``Chain._restore``), because a block's focus depends on
the engine's state before it (warm start, inner solver states, the snapshot's
patch history), not on the graph alone. That costs O(history), and after an
upgrade that changes the engine's arithmetic a replay no longer reproduces the
stored roots. A checkpoint holds the whole state object (graph, engine and
solver states, operator) after one block, so a restart loads it and replays
only the blocks after it; every replayed block's focus root is still checked.

The state is a pickle (protocol 5: numpy arrays go out as raw buffers). It is
trusted exactly as far as the rest of the node's home (keys, the signer's
log): the file is the node's own, written owner-only (0600). What guards it
is a header with the height, the block hash and focus root it belongs to, a
SHA-256 of the payload, and a fingerprint of the code that wrote it: a
checkpoint from other code (another focusflow, Python, numpy or numba) is not
loaded, since its classes and arithmetic may differ. Any reason not to use a
checkpoint (absent, corrupt, another chain's, other code) falls back to the
full replay: the checkpoint is a cache, never the authority.

Layout: ``MAGIC``, a 4-byte big-endian header length, the header (canonical
CBOR), the payload.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
from dataclasses import dataclass
from pathlib import Path

from focusflow.chain.focus_commit import FocusState
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.home import fsync_dir, open_private

MAGIC = b"focusflow focus checkpoint\n"
FORMAT = 1
#: The checkpoint's file name inside the store's directory.
CHECKPOINT_FILE = "focus.ckpt"


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


def write_checkpoint(path: Path, state: FocusState, height: int, block_hash: bytes) -> int:
    """Write ``state`` (after block ``height``) to ``path`` atomically; returns bytes.

    The file is written beside ``path``, flushed to disk and renamed over it,
    so a crash leaves the old checkpoint or the new one, never half of one.
    """
    payload = pickle.dumps(state, protocol=5)
    header = encode(
        {
            "format": FORMAT,
            "height": height,
            "block_hash": block_hash,
            "focus_root": state.root,
            "code": code_fingerprint(),
            "payload_sha256": hashlib.sha256(payload).digest(),
            "payload_len": len(payload),
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(len(header).to_bytes(4, "big"))
        f.write(header)
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return len(MAGIC) + 4 + len(header) + len(payload)


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint at ``path``; CheckpointUnusableError says why it cannot be used.

    Checks the file's own consistency and that this code wrote it; whether it
    belongs to the store's chain is the caller's check (the block hash at its
    height).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointUnusableError("no checkpoint") from None
    except OSError as exc:
        raise CheckpointUnusableError(f"unreadable: {exc}") from None
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + 4:
        raise CheckpointUnusableError("not a focus checkpoint")
    start = len(MAGIC) + 4
    size = int.from_bytes(raw[len(MAGIC) : start], "big")
    try:
        header = decode(raw[start : start + size], "checkpoint header")
    except DecodeError as exc:
        raise CheckpointUnusableError(f"corrupt header: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointUnusableError("unknown checkpoint format")
    if header.get("code") != code_fingerprint():
        raise CheckpointUnusableError("written by other code (another focusflow, or libraries)")
    payload = memoryview(raw)[start + size :]
    if len(payload) != header.get("payload_len") or (
        hashlib.sha256(payload).digest() != header.get("payload_sha256")
    ):
        raise CheckpointUnusableError("corrupt payload (length or checksum differs)")
    try:
        state = pickle.loads(payload)
    except Exception as exc:  # a pickle error can be of any type
        raise CheckpointUnusableError(f"payload does not load: {exc}") from None
    if not isinstance(state, FocusState) or state.root != header.get("focus_root"):
        raise CheckpointUnusableError("payload is not the focus state its header names")
    height, block_hash = header.get("height"), header.get("block_hash")
    if not isinstance(height, int) or not isinstance(block_hash, bytes):
        raise CheckpointUnusableError("corrupt header: height or block hash")
    return Checkpoint(height, block_hash, state)


__all__ = [
    "CHECKPOINT_FILE",
    "Checkpoint",
    "CheckpointUnusableError",
    "code_fingerprint",
    "read_checkpoint",
    "write_checkpoint",
]
