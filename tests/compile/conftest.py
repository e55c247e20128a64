"""Fixtures the compiler tests share (their helpers are in helpers.py)."""

from __future__ import annotations

import pytest

from focusflow.compile.pipeline import CompileOptions, compile_graph
from tests.compile.helpers import rmat_two_semcons


@pytest.fixture(scope="session")
def small_compiled():
    """A compilation of a scale-8 R-MAT graph with two semcons, and its graph."""
    g = rmat_two_semcons()
    return g, compile_graph(g, CompileOptions(rank=32, eval_contexts=0, seed=1))
