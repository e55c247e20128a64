"""Compile every kernel a block runs before a node starts serving.

numba compiles on first use: the focus update's kernels load from numba's
cache in well under a second, but the data square's batched SHA-256 (it calls
libcrypto through ctypes, which numba cannot cache) compiles anew in every
process, about a second. Paid inside the first block, that second would stall
the first transactions users send; nodes call :func:`warm_up` at start instead.
The erasure coder's kernels are cached but only compiled for squares of more
than one share: a fresh install would compile them in its first real block
(measured: four fresh testnet validators stalled about 8 s on it).
"""

from __future__ import annotations

import time
from typing import Any

from focusflow.chain import da_commit, focus_commit
from focusflow.core import digests


def warm_up(focus: dict[str, Any] | None = None) -> float:
    """Compile (or load) the focus and data-availability kernels; returns seconds."""
    t0 = time.perf_counter()
    focus_commit.warm_up(focus)
    digests.warm_up()
    da_commit.warm_up()
    return time.perf_counter() - t0


__all__ = ["warm_up"]
