"""Ed25519 signature checks in batches: ``keys.verify``'s answers, on every core.

Which signatures are valid is a consensus rule, and the rule is libsodium's
single verification (``keys.verify``): S must be canonical, R and A must not be
of small order, A must be canonically encoded, and the equation is the
cofactorless ``[S]B = R + [h]A``, compared as encodings. The batch equations
that make Ed25519 batches cheap (one multi-scalar multiplication over a
random linear combination, as in ed25519-dalek, ed25519-zebra and
ed25519-consensus) are cofactored and, in the ZIP-215 libraries, accept
non-canonical encodings and small-order points as well: they accept a
superset of what libsodium accepts. Of the twelve edge cases of "Taming the
many EdDSAs" (Chalkias, Garillot, Nikolaenko, 2020), libsodium accepts one
and ed25519-zebra nine, so a node answering with one could commit a block
that another refuses. Pre-filtering to make the two agree would need each R
and A checked to be torsion-free, a scalar multiplication per signature that
costs what the batch saved; and the random combination answers "all valid"
wrongly with a small probability where libsodium's answer is never wrong. No
Python package exposes a batch verifier either way (PyNaCl, pysodium and
py-ed25519-zebra-bindings verify one signature per call).

So the batch here is parallelism, with exactness by construction: every item
is checked by ``keys.verify`` itself, so result ``i`` *is*
``keys.verify(*items[i])``. The gain comes from threads: PyNaCl calls
libsodium through cffi, which releases the GIL around the C call, so ``T``
threads check about ``T`` signatures at a time and only the wrapper's Python
(a few microseconds of the ~60 a check takes) is serialized.

The threads belong to one call: the pool is made and joined inside it, so no
thread outlives it (the chain forks a checkpoint writer, and forking a process
with live threads is not safe). A thread is started for every
:data:`PER_THREAD_MIN` items at most, and below :data:`SERIAL_BELOW` items
the checks run in the caller: starting threads would cost more than it saves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from focusflow.core.errors import FocusflowError, InvalidParameterError
from focusflow.core.keys import verify

#: Most items one call checks: a block holds at most ``max_block_txs`` (10,000
#: by default), a Konomi ledger span is split by its caller.
MAX_ITEMS = 1 << 16
#: Most bytes (keys, signatures and messages together) one call checks: a block
#: holds at most ``max_block_bytes`` (16 MiB by default).
MAX_BYTES = 64 << 20
#: Fewest items a thread is started for: starting one costs about 90 us and a
#: check about 56 (2-core machine, load 2), so a thread given 16 spends a tenth
#: of its time starting (``bench/sig_batch.py``); a small batch gets fewer threads.
PER_THREAD_MIN = 16
#: Fewer items than this are checked in the calling thread: two threads'
#: worth of :data:`PER_THREAD_MIN`.
SERIAL_BELOW = 2 * PER_THREAD_MIN
#: Chunks per thread: items differ in message size, so a few chunks per thread
#: keep the threads equally busy without a task per item.
CHUNKS_PER_THREAD = 4
#: The environment variable that sets the default thread count.
THREADS_ENV = "FOCUSFLOW_SIG_THREADS"

Item = tuple[bytes, bytes, bytes]


class SignatureBatchTooLargeError(FocusflowError):
    """A batch of signature checks holds more items or bytes than one call takes;
    nothing was checked."""

    code = "signature_batch_too_large"


def default_threads() -> int:
    """Threads a batch uses: ``FOCUSFLOW_SIG_THREADS`` where set, else one per core."""
    raw = os.environ.get(THREADS_ENV)
    if raw is None or raw == "":
        return os.cpu_count() or 1
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidParameterError(f"{THREADS_ENV} must be an integer >= 1, got {raw!r}")
    return value


def check_items(items: Sequence[Item]) -> int:
    """Refuse a batch over the limits or of anything but (key, signature, message)
    bytes triples, before any work; returns its size in bytes."""
    if len(items) > MAX_ITEMS:
        raise SignatureBatchTooLargeError(
            f"{len(items)} signature checks exceed the {MAX_ITEMS} one batch takes"
        )
    size = 0
    for index, item in enumerate(items):
        if (
            not isinstance(item, tuple)
            or len(item) != 3
            or not all(isinstance(part, bytes | bytearray | memoryview) for part in item)
        ):
            raise InvalidParameterError(
                f"signature check {index} is not a (public key, signature, message) triple of bytes"
            )
        size += sum(len(part) for part in item)
        if size > MAX_BYTES:
            raise SignatureBatchTooLargeError(
                f"signature checks from {index} on exceed the {MAX_BYTES} bytes one batch takes"
            )
    return size


def verify_batch(items: Sequence[Item], threads: int | None = None) -> list[bool]:
    """``[keys.verify(*item) for item in items]``, computed on ``threads`` threads
    (default :func:`default_threads`).

    Raises SignatureBatchTooLargeError over :data:`MAX_ITEMS` items or
    :data:`MAX_BYTES` bytes, and InvalidParameterError for an item that is not
    three bytes-like values, both before checking anything.
    """
    check_items(items)
    workers = default_threads() if threads is None else threads
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise InvalidParameterError(f"threads must be an integer >= 1, got {threads!r}")
    workers = min(workers, len(items) // PER_THREAD_MIN)
    if workers <= 1:  # fewer than SERIAL_BELOW items, or one thread asked for
        return _verify_chunk(items)
    pieces = min(len(items), workers * CHUNKS_PER_THREAD)
    step = -(-len(items) // pieces)
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(workers, thread_name_prefix="sig-batch") as pool:
        results: list[bool] = []
        for part in pool.map(_verify_chunk, chunks):
            results.extend(part)
    return results


def _verify_chunk(items: Sequence[Item]) -> list[bool]:
    return [verify(key, signature, message) for key, signature, message in items]
