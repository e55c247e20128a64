"""The compiled loop of ``digests``: libcrypto's SHA-256 over every row.

It names libcrypto's functions by symbol (numba's ``ExternalFunction``)
rather than calling ctypes pointers, so numba can cache it: the symbols are
resolved when the cached code is loaded, against the library ``digests``
loads first (``llvmlite.binding.load_library_permanently``). Importing this
module loads numba, which is why ``digests`` imports it only when it uses it.
"""

from __future__ import annotations

from typing import Any

import numba as nb
import numpy as np
from numba import types

# Pointers pass as machine integers (the same registers in the C calling
# conventions numba targets). Typed Any: these are numba types, callable only
# in compiled code.
_P = types.intp
_init: Any = types.ExternalFunction("EVP_DigestInit_ex2", types.int32(_P, _P, _P))
_update: Any = types.ExternalFunction("EVP_DigestUpdate", types.int32(_P, _P, types.uintp))
_final: Any = types.ExternalFunction("EVP_DigestFinal_ex", types.int32(_P, _P, _P))


@nb.njit(cache=True, nogil=True)
def digest_rows(rows: np.ndarray, out: np.ndarray, ctx: int, md: int) -> int:
    """SHA-256 of each row of ``rows`` into ``out`` with the digest context
    ``ctx`` and algorithm ``md``; returns how many rows succeeded."""
    n: int = rows.shape[0]
    size: int = rows.shape[1]
    for i in range(n):
        ok = _init(ctx, md, 0)
        ok &= _update(ctx, rows[i].ctypes.data, size)
        ok &= _final(ctx, out[i].ctypes.data, 0)
        if ok != 1:
            return i
    return n
