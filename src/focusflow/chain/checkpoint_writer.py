"""Focus checkpoints written off the commit path, by a forked child.

Why: a checkpoint is the whole focus state (focus_checkpoint.py), and writing
it in the commit that made it due paused that commit for the whole write: 6 to
7 s at 10^7 links on the 2-vCPU VM when it was a pickle (bench/RESULTS.md,
checkpoint.py), seconds in which no block is committed and no vote is cast.

How, as Redis's BGSAVE does: the process forks. The child holds a
copy-on-write image of the parent's memory at the fork, the state exactly as
the last commit left it; it writes the state's arrays into the checkpoint's
temporary file, syncs it, renames it over the checkpoint, syncs the directory
and leaves with ``os._exit``. The parent goes on at once: the next blocks change its own pages
(the kernel copies a page the first time either side writes it), never what
the child sees. The commit waits only for ``fork()``, which copies the
process's page tables: on that VM 30 ms for a node of 10^7 links (2.1 GiB in
4 KiB pages), 7 ms with its arrays in transparent huge pages.

The child runs in a process whose other threads (asyncio, numba's pool,
QUIC) vanished at the fork, possibly holding locks. So it does only what
needs none of theirs: file writes of the arrays and header the parent laid
out before the fork, and a SHA-256 the parent made
(:class:`~focusflow.chain.focus_checkpoint.CheckpointPlan`);
no logging, no imports, no numba kernels, no garbage collection (a collection
would also touch, and so copy, every object page of the process). It tells
the parent why it failed through a pipe, and its exit status whether it did.

The parent keeps at most one child. A reaper thread waits for it (no zombie is
left), then logs the outcome and counts it (:attr:`CheckpointWriter.written`,
``failed``: the node's metrics read them). A failed or killed child leaves the
previous checkpoint as it was and no temporary file. Where ``fork`` is not
available or not safe (platforms other than Linux), or fails (no memory for
the child), the write is made synchronously, and the log says so.
"""

from __future__ import annotations

import _thread
import contextlib
import gc
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from focusflow.chain.focus_checkpoint import (
    CheckpointPlan,
    plan_checkpoint,
    tmp_path,
    write_planned,
)
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.focus_state_format import BlockIdentity

log = logging.getLogger("focusflow.chain.checkpoint")

#: Whether checkpoints are written by a forked child here: fork exists on
#: every POSIX system, but on macOS a forked child of a process that has used
#: system frameworks may crash, so only Linux forks.
FORK_WRITES = sys.platform.startswith("linux") and hasattr(os, "fork")
#: The most bytes of a failed child's error message the parent reads.
ERROR_BYTES = 4096


@dataclass(frozen=True)
class CheckpointOutcome:
    """How one checkpoint write ended."""

    height: int
    ok: bool
    #: The checkpoint file's size (0 when the write failed).
    bytes: int
    #: Seconds from the start of the write to its end (the child's exit).
    seconds: float
    #: Seconds the caller was held: the fork, or the whole synchronous write.
    pause_s: float
    background: bool
    error: str = ""


@dataclass
class _Child:
    pid: int
    height: int
    started: float
    pause_s: float
    errors: int
    #: Set by the reaper once the child is reaped and its outcome recorded.
    done: threading.Event
    abandoned: bool = False


class CheckpointWriter:
    """Writes the focus checkpoint at ``path``, in the background where it can.

    At most one write runs at a time; :meth:`write` (synchronous) first waits
    for or abandons a background one, since both use the same temporary file.
    """

    def __init__(self, path: Path, *, background: bool = FORK_WRITES) -> None:
        self.path = Path(path)
        #: Whether :meth:`start` forks (False: it writes synchronously).
        self.background = background
        self._lock = threading.Lock()
        self._child: _Child | None = None
        #: The last finished write's outcome.
        self.last: CheckpointOutcome | None = None
        #: Checkpoints written, and writes that failed, since this writer began.
        self.written = 0
        self.failed = 0
        #: The height of the last checkpoint this writer made durable.
        self.durable_height: int | None = None
        # A temporary file here is a write that a crash interrupted (no child
        # of ours runs yet): the checkpoint beside it is the last whole one.
        with contextlib.suppress(FileNotFoundError):
            tmp_path(self.path).unlink()

    @property
    def busy(self) -> bool:
        """Whether a background write is in flight."""
        return self._child is not None

    @property
    def in_flight_height(self) -> int | None:
        """The height a background write in flight is of (None: none is)."""
        child = self._child
        return None if child is None else child.height

    @property
    def child_pid(self) -> int | None:
        """The process id of the child writing now (None: none is)."""
        child = self._child
        return None if child is None else child.pid

    @property
    def cost(self) -> float:
        """Seconds the last successful write took (0 before one)."""
        last = self.last
        return last.seconds if last is not None and last.ok else 0.0

    def start(self, state: FocusState, block: BlockIdentity) -> bool:
        """Begin writing ``state`` (after ``block``): in a forked child, or
        synchronously where it cannot fork. False when nothing was started
        (a write is in flight already) or the synchronous write failed."""
        if self.busy:
            return False
        if not self.background:
            return self.write(state, block).ok
        height = block.height
        t0 = time.perf_counter()
        try:
            plan = plan_checkpoint(state, block)
        except (OSError, ValueError) as exc:
            self._finish(CheckpointOutcome(height, False, 0, 0.0, 0.0, True, str(exc)))
            return False
        errors_r, errors_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(errors_r)
            os.close(errors_w)
            log.warning(
                "focus checkpoint: fork failed, writing synchronously",
                extra={"fields": {"error": str(exc)}},
            )
            return self.write(state, block).ok
        if pid == 0:  # the child: see the module docstring for what it may do
            os.close(errors_r)
            _write_in_child(self.path, plan, errors_w)
        os.close(errors_w)
        child = _Child(pid, height, t0, time.perf_counter() - t0, errors_r, threading.Event())
        with self._lock:
            self._child = child
        # A bare thread: threading.Thread.start waits until the new thread
        # runs, which took up to 12 ms on a busy 2-core VM with the child
        # taking one core; the reaper needs no handshake (``done`` is its end).
        _thread.start_new_thread(self._reap, (child,))
        return True

    def wait(self, timeout: float | None = None) -> CheckpointOutcome | None:
        """Wait for a background write in flight (at most ``timeout`` seconds);
        the last finished write's outcome (None: none finished yet), or None
        when the write goes on past the timeout."""
        child = self._child
        if child is not None and not child.done.wait(timeout):
            return None
        return self.last

    def abandon(self) -> None:
        """Stop a background write in flight (its checkpoint would be stale):
        the child is killed and reaped, its temporary file removed; the
        previous checkpoint stays."""
        child = self._child
        if child is None:
            return
        child.abandoned = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGKILL)
        child.done.wait()

    def write(self, state: FocusState, block: BlockIdentity) -> CheckpointOutcome:
        """Write ``state`` now, in this thread. A background write in flight is
        waited for when it is of this height (and is the outcome if it
        succeeded), abandoned otherwise."""
        height = block.height
        if self.in_flight_height == height:
            done = self.wait()
            if done is not None and done.ok and done.height == height:
                return done
        self.abandon()
        t0 = time.perf_counter()
        try:
            size = write_planned(self.path, plan_checkpoint(state, block))
        except Exception as exc:  # noqa: BLE001 - a full disk, or a state that has no byte form
            seconds = time.perf_counter() - t0
            outcome = CheckpointOutcome(height, False, 0, seconds, seconds, False, str(exc))
        else:
            seconds = time.perf_counter() - t0
            outcome = CheckpointOutcome(height, True, size, seconds, seconds, False)
        self._finish(outcome)
        return outcome

    def _reap(self, child: _Child) -> None:
        """The reaper thread: collect the child, then say it is gone."""
        try:
            self._collect(child)
        finally:
            with self._lock:
                self._child = None
            child.done.set()

    def _collect(self, child: _Child) -> None:
        """Wait for the child, read why it failed, clean up, record the outcome."""
        try:
            _, status = os.waitpid(child.pid, 0)
            code: int | None = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # another waiter took its status
            code = None
        seconds = time.perf_counter() - child.started
        with os.fdopen(child.errors, "rb") as pipe:
            message = pipe.read(ERROR_BYTES).decode("utf-8", "replace")
        size = 0
        if code == 0:
            with contextlib.suppress(OSError):
                size = os.stat(self.path).st_size
        ok = size > 0
        if not ok:
            message = message or _why(code, child.abandoned)
            # A child that died by a signal had no chance to remove it.
            with contextlib.suppress(FileNotFoundError):
                tmp_path(self.path).unlink()
        outcome = CheckpointOutcome(
            child.height, ok, size, seconds, child.pause_s, True, "" if ok else message
        )
        self._finish(outcome, abandoned=child.abandoned and not ok)

    def _finish(self, outcome: CheckpointOutcome, abandoned: bool = False) -> None:
        """Record and log a finished write."""
        fields = {
            "path": str(self.path),
            "height": outcome.height,
            "seconds": round(outcome.seconds, 3),
            "pause_ms": round(outcome.pause_s * 1000, 2),
            "background": outcome.background,
        }
        with self._lock:
            self.last = outcome
            if outcome.ok:
                self.written += 1
                self.durable_height = outcome.height
            elif not abandoned:
                self.failed += 1
        if outcome.ok:
            log.info(
                "focus checkpoint written", extra={"fields": {**fields, "bytes": outcome.bytes}}
            )
        elif abandoned:
            log.info("focus checkpoint abandoned", extra={"fields": fields})
        else:
            log.warning(
                "focus checkpoint not written",
                extra={"fields": {**fields, "error": outcome.error}},
            )


def _why(code: int | None, abandoned: bool) -> str:
    """Why a child that said nothing did not write."""
    if abandoned:
        return "abandoned"
    if code is None:
        return "its exit status was taken by another waiter"
    if code < 0:
        return f"the writer was killed by signal {-code}"
    return f"the writer ended with status {code}"


def _write_in_child(path: Path, plan: CheckpointPlan, errors: int) -> NoReturn:
    """The forked child's whole life: write, report a failure, exit."""
    code = 1
    try:
        gc.disable()
        # A Ctrl-C reaches the whole process group: the parent decides
        # whether this write is waited for or abandoned. The parent's
        # wakeup descriptor (asyncio's) must not hear the child's signals.
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
        write_planned(path, plan)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - the forked child reports and exits, never unwinds
        with contextlib.suppress(BaseException):
            os.write(errors, f"{type(exc).__name__}: {exc}".encode()[:ERROR_BYTES])
    finally:
        os._exit(code)


__all__ = ["FORK_WRITES", "CheckpointOutcome", "CheckpointWriter"]
