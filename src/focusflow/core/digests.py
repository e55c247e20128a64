"""SHA-256 of many equal-length messages at once (the rows of a byte matrix).

A block's data square hashes about 50,000 short messages (NMT leaves of 542
bytes, inner nodes of 181). With hashlib every digest costs about 2 us, most
of it interpreter work around a hash that takes a fraction of that on a CPU
with SHA extensions. Here one numba loop calls OpenSSL's EVP digest functions
(the same libcrypto hashlib uses, fetched once) for every row: about 0.4 us a
digest, with the GIL released. (Splitting the rows over numba's two threads
saved a third of that but tripled the compile time every process pays.)

Where libcrypto or its OpenSSL 3 EVP functions cannot be found, the same
digests come from a hashlib loop; both paths are checked against each other
in the tests. The loop calls the three digest functions by name
(``ExternalFunction``), resolved against libcrypto when its code is loaded,
not through ctypes pointers whose addresses numba would bake into the code:
so it is cached like every other kernel, and a process loads it in a few
milliseconds instead of compiling it for about a second (which every node,
validator and devnet start paid before it could serve). :func:`warm_up`
loads it before a node serves.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

DIGEST_SIZE = 32

_lock = threading.Lock()
_kernel: Callable[[np.ndarray], np.ndarray] | None = None


def sha256_rows(rows: np.ndarray) -> np.ndarray:
    """SHA-256 of every row of a 2-D uint8 array, as an ``n x 32`` uint8 array."""
    rows = np.ascontiguousarray(rows, dtype=np.uint8)
    if rows.ndim != 2:
        raise ValueError(f"sha256_rows takes a 2-D byte matrix, not {rows.ndim}-D")
    kernel = _kernel or _load()
    return kernel(rows)


def warm_up() -> None:
    """Compile the fast path now rather than in the first block that needs it."""
    sha256_rows(np.zeros((1, 1), dtype=np.uint8))


def hashlib_rows(rows: np.ndarray) -> np.ndarray:
    """The portable path: one hashlib call per row, messages sliced from one buffer."""
    size = rows.shape[1]
    if rows.shape[0] == 0:
        return np.empty((0, DIGEST_SIZE), dtype=np.uint8)
    if size == 0:
        return np.tile(np.frombuffer(hashlib.sha256(b"").digest(), np.uint8), (rows.shape[0], 1))
    flat = np.ascontiguousarray(rows).reshape(-1).data
    sha = hashlib.sha256
    digests = b"".join([sha(flat[i : i + size]).digest() for i in range(0, len(flat), size)])
    return np.frombuffer(digests, dtype=np.uint8).reshape(-1, DIGEST_SIZE)


def _load() -> Callable[[np.ndarray], np.ndarray]:
    global _kernel
    with _lock:
        if _kernel is None:
            _kernel = _openssl_kernel() or hashlib_rows
    return _kernel


def _openssl_kernel() -> Callable[[np.ndarray], np.ndarray] | None:
    name = ctypes.util.find_library("crypto")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        fetch = _fn(lib, "EVP_MD_fetch", [ctypes.c_void_p] * 3, ctypes.c_void_p)
        new = _fn(lib, "EVP_MD_CTX_new", [], ctypes.c_void_p)
        free = _fn(lib, "EVP_MD_CTX_free", [ctypes.c_void_p], None)
        # The symbols the compiled loop names must all be there before it loads.
        for symbol in ("EVP_DigestInit_ex2", "EVP_DigestUpdate", "EVP_DigestFinal_ex"):
            lib[symbol]
    except (OSError, AttributeError):
        return None
    md = fetch(None, b"SHA256", None)
    if not md:
        return None
    import llvmlite.binding as llvm

    llvm.load_library_permanently(name)
    from focusflow.core.digest_kernel import digest_rows

    def kernel(rows: np.ndarray) -> np.ndarray:
        out = np.empty((rows.shape[0], DIGEST_SIZE), dtype=np.uint8)
        if rows.shape[0] == 0:
            return out
        ctx = new()
        if not ctx:
            raise MemoryError("EVP_MD_CTX_new failed")
        try:
            done = digest_rows(rows, out, ctx, md)
        finally:
            free(ctx)
        if done != rows.shape[0]:
            raise RuntimeError(f"OpenSSL SHA-256 failed at row {done}")
        return out

    return kernel


def _fn(lib: ctypes.CDLL, name: str, args: list[type], result: type | None) -> Callable[..., Any]:
    """``lib``'s function ``name`` with its C argument and result types set;
    what a call returns follows ``result``, so the Python type is open."""
    fn = lib[name]
    fn.argtypes = args
    fn.restype = result
    return fn


__all__ = ["DIGEST_SIZE", "hashlib_rows", "sha256_rows", "warm_up"]
