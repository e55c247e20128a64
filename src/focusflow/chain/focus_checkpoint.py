"""A file that holds the chain's focus state at one committed block.

Why: a node rebuilds its focus engine on start by replaying every stored
block's edge deltas (``ChainLifecycle`` in lifecycle.py), because a block's focus depends on
the engine's state before it (warm start, inner solver states, the weighted
graph's patch history), not on the graph alone. That costs O(history). A
checkpoint holds that state after one block, so a restart loads it and
replays only the blocks after it; every replayed block's focus root is still
checked.

The file is the focus state's byte form (focus_state_format.py: named arrays
under a versioned CBOR header), the same bytes a snapshot serves to peers. It
is data, not code: loading it builds the state through the same checks a
peer's bytes pass and requires the committed vector it reproduces to hash to
the focus root its block committed (focus_state_arrays.py). So it does not
depend on the exact code that wrote it (a release with another docstring or
another non-consensus function loads it), nor on a secret of the home: a
checkpoint copied from another node of the chain is as good as one's own. What
it does depend on is named in its header and compared: the schema version,
the chain and block, and the focus parameters at that height (algorithm and
arithmetic among them).

Checkpoints written by the release before this format (format 3: a pickle of
the engine's objects under an HMAC of the home's secret) are still read, by
focus_checkpoint_legacy.py, from this node's own files only, and rewritten in
this format as soon as they are loaded. Any reason not to use a checkpoint
(absent, corrupt, another chain's, other parameters) falls back to the full
replay: the checkpoint is a cache, never the authority.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from focusflow.chain import focus_checkpoint_legacy as legacy
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_state_arrays import Expected, plan_state, restore_state
from focusflow.chain.focus_state_format import (
    MAGIC,
    BlockIdentity,
    FocusStateError,
    FocusStateHeader,
    FocusStatePlan,
    read_arrays,
    read_header,
    write,
)
from focusflow.core.home import fsync_dir, open_private

#: The checkpoint's file name inside the store's directory.
CHECKPOINT_FILE = "focus.ckpt"


class CheckpointUnusableError(Exception):
    """Why a checkpoint file cannot be used (the node then replays every block)."""


@dataclass
class CheckpointPlan:
    """A checkpoint's write, made before it: the state's byte form with its
    arrays as views of the state (focus_state_format.FocusStatePlan).

    A background writer (checkpoint_writer.py) makes the plan in the node's
    process and writes it in a forked child, which then only writes bytes and
    feeds a SHA-256 made here."""

    height: int
    payload: FocusStatePlan


def plan_checkpoint(state: FocusState, block: BlockIdentity) -> CheckpointPlan:
    """The checkpoint of ``state``, the focus state after ``block``."""
    return CheckpointPlan(block.height, plan_state(state, block))


def tmp_path(path: Path) -> Path:
    """Where a checkpoint of ``path`` is written before it is renamed over it."""
    return path.with_name(path.name + ".tmp")


def write_checkpoint(path: Path, state: FocusState, block: BlockIdentity) -> int:
    """Write ``state`` (after ``block``) to ``path`` atomically; returns bytes."""
    return write_planned(path, plan_checkpoint(state, block))


def write_planned(path: Path, plan: CheckpointPlan) -> int:
    """Write a planned checkpoint beside ``path``, flush it to disk and rename
    it over ``path``: a crash leaves the old checkpoint or the new one, never
    half of one. Consumes the plan's hash."""
    tmp = tmp_path(path)
    try:
        with open_private(tmp, "wb") as f:
            size = write(f, plan.payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A failed write (a full disk) leaves the previous checkpoint as it
        # was and no half-written file beside it.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return size


class CheckpointFile:
    """An open checkpoint whose header has been read: the block it is of
    (:attr:`height`, :attr:`block_hash`, :attr:`focus_root`), and
    :meth:`restore` to build the state once the caller knows what to expect."""

    def __init__(self, path: Path, f: io.BufferedIOBase) -> None:
        self.path = path
        self._f = f
        size = os.fstat(f.fileno()).st_size
        lead = f.read(len(MAGIC))
        f.seek(0)
        #: Whether it is of the release before this format (read only from
        #: this node's own files, and rewritten in this format once loaded).
        self.legacy = lead != MAGIC and lead.startswith(legacy.MAGIC[: len(lead)])
        self._header: FocusStateHeader | None = None
        self._old: legacy.LegacyCheckpoint | None = None
        try:
            if self.legacy:
                self._old = legacy.read_legacy(f, size, path.parent)
                self.height = self._old.height
                self.block_hash = self._old.block_hash
                self.focus_root = self._old.focus_root
            else:
                self._header, self._digest = read_header(f, size)
                block = self._header.block
                self.height, self.block_hash, self.focus_root = (
                    block.height,
                    block.block_hash,
                    block.focus_root,
                )
        except (FocusStateError, legacy.LegacyError) as exc:
            raise CheckpointUnusableError(str(exc)) from None

    def restore(self, expected: Expected) -> FocusState:
        """The state, built and checked against ``expected`` (the block at
        :attr:`height` of the store, the parameters in force there, the
        committed particles)."""
        try:
            if self._old is not None:
                header, arrays = legacy.convert(self._old, expected.block)
            else:
                assert self._header is not None
                header, arrays = self._header, read_arrays(self._f, self._header, self._digest)
            return restore_state(header, arrays, expected)
        except (FocusStateError, legacy.LegacyError) as exc:
            raise CheckpointUnusableError(str(exc)) from None
        except OSError as exc:
            raise CheckpointUnusableError(f"unreadable: {exc}") from None


@contextlib.contextmanager
def open_checkpoint(path: Path) -> Iterator[CheckpointFile]:
    """The checkpoint at ``path`` (:class:`CheckpointFile`); CheckpointUnusableError
    says why it cannot be used (absent, unreadable, not a checkpoint, corrupt
    header)."""
    with contextlib.ExitStack() as stack:
        try:
            f = stack.enter_context(Path(path).open("rb"))
            checkpoint = CheckpointFile(Path(path), f)
        except FileNotFoundError:
            raise CheckpointUnusableError("no checkpoint") from None
        except OSError as exc:
            raise CheckpointUnusableError(f"unreadable: {exc}") from None
        yield checkpoint


def read_header_of(path: Path) -> FocusStateHeader:
    """The header of the checkpoint at ``path`` (tests and tools: which block
    it is of); CheckpointUnusableError if it has none this format reads."""
    with open_checkpoint(path) as ckpt:
        if ckpt._header is None:
            raise CheckpointUnusableError("a checkpoint of the release before this format")
        return ckpt._header


__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointFile",
    "CheckpointPlan",
    "CheckpointUnusableError",
    "open_checkpoint",
    "plan_checkpoint",
    "read_header_of",
    "tmp_path",
    "write_checkpoint",
    "write_planned",
]
