"""Which top-list queries the hot-path middleware answers itself."""

from __future__ import annotations

import pytest

from focusflow.api.hot_paths import plain_k


@pytest.mark.parametrize(
    ("query", "k"),
    [(b"", 100), (b"k=1", 1), (b"k=100", 100), (b"k=1000", 1000), (b"k=42", 42)],
)
def test_plain_queries_are_served_from_the_cache(query: bytes, k: int) -> None:
    assert plain_k(query) == k


@pytest.mark.parametrize(
    "query",
    [
        b"k=0",
        b"k=1001",
        b"k=01",
        b"k=",
        b"k=-1",
        b"k=+1",
        b"k=1e2",
        b"k=abc",
        b"k=5&x=1",
        b"x=1",
        b"K=5",
        b"k=99999999999999999999",
    ],
)
def test_anything_else_goes_to_the_framework(query: bytes) -> None:
    assert plain_k(query) is None
