"""Batched SHA-256 (the data square's hashing) against hashlib, digest by digest."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from focusflow.core.digests import hashlib_rows, sha256_rows


@pytest.mark.parametrize(
    ("n", "size"),
    [(0, 5), (1, 0), (3, 0), (1, 1), (7, 55), (9, 64), (33, 181), (5, 542), (2, 4096)],
)
def test_rows_hash_like_hashlib(n: int, size: int) -> None:
    rows = np.random.default_rng(n * 1000 + size).integers(0, 256, (n, size), dtype=np.uint8)
    want = [hashlib.sha256(r.tobytes()).digest() for r in rows]
    for fn in (sha256_rows, hashlib_rows):
        got = fn(rows)
        assert got.shape == (n, 32) and got.dtype == np.uint8
        assert [g.tobytes() for g in got] == want


def test_non_contiguous_input_is_hashed_as_its_values() -> None:
    base = np.random.default_rng(3).integers(0, 256, (8, 100), dtype=np.uint8)
    view = base[::2, 10:60]
    assert [d.tobytes() for d in sha256_rows(view)] == [
        hashlib.sha256(r.tobytes()).digest() for r in view
    ]


def test_not_a_matrix_is_refused() -> None:
    with pytest.raises(ValueError, match="2-D"):
        sha256_rows(np.zeros(10, dtype=np.uint8))


def test_debian_python_takes_the_openssl_path() -> None:
    """The speed of the data square depends on it; a silent fallback would hide a regression."""
    from focusflow.core import digests

    assert digests._load() is not hashlib_rows


def test_the_openssl_loop_is_loaded_from_numbas_cache(tmp_path) -> None:
    """Compiled once, then loaded: a loop that called ctypes pointers could not be
    cached, and every process (each node start) compiled it for about a second."""
    from tests.helpers import run_with_numba_cache

    probe = (
        "import numpy as np\n"
        "from focusflow.core.digests import sha256_rows\n"
        "from focusflow.core.digest_kernel import digest_rows\n"
        "sha256_rows(np.zeros((2, 3), np.uint8))\n"
        "print(sum(digest_rows.stats.cache_hits.values()), "
        "sum(digest_rows.stats.cache_misses.values()))\n"
    )
    runs = [run_with_numba_cache(probe, tmp_path, timeout=120).split() for _ in range(2)]
    assert runs == [["0", "1"], ["1", "0"]]
