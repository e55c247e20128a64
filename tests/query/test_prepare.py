"""``kernels.prepare`` compiles what a query runs: after it, the public graph
functions (serial and parallel passes) compile nothing new.

A kernel loaded from numba's cache brings its callees compiled into it, so only
the kernels the wrappers call are sure to list a signature after ``prepare``."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.dispatcher import Dispatcher

from focusflow.query import kernels

#: The kernels the public functions call, each pass.
ENTRY_KERNELS = (
    "_bfs_serial",
    "_bfs_parallel",
    "_dijkstra_serial",
    "_dijkstra_parallel",
    "_walks_serial",
    "_walks_parallel",
    "_row_cumsum",
    "_weak_components",
    "_label_propagation",
)


def _signatures() -> dict[str, int]:
    return {
        name: len(value.signatures)
        for name, value in vars(kernels).items()
        if isinstance(value, Dispatcher)
    }


@pytest.mark.parametrize("parallel", [False, True])
def test_after_prepare_a_query_compiles_nothing(monkeypatch, parallel: bool) -> None:
    assert kernels.prepare() >= 0
    before = _signatures()
    assert all(before[name] >= 1 for name in ENTRY_KERNELS), before
    monkeypatch.setattr(kernels, "_use_parallel", lambda count: parallel)
    indptr = np.array([0, 2, 3, 4, 4])
    indices = np.array([1, 2, 3, 0])
    sources = np.array([0, 2])
    kernels.bfs_levels(indptr, indices, sources, 2)
    kernels.dijkstra(indptr, indices, np.full(4, 0.5), sources, np.inf)
    kernels.random_walks(indptr, indices, np.ones(4), sources, 3, 4, seed=7)
    kernels.weak_components(4, indptr, indices)
    kernels.label_propagation(4, indptr, indices, np.ones(4))
    assert _signatures() == before


def test_the_heap_helpers_compile_once(tmp_path) -> None:
    """The search's heap starts at size int64 0, not the constant 0 (which
    numba types as a literal and compiled the helpers again for). Compiled in
    a child with an empty cache: a kernel loaded from the cache lists no
    compiled callees. One child runs the one-thread search, then the parallel
    one: both share the helpers' one compiled form."""
    from tests.helpers import run_with_numba_cache

    probe = (
        "import numpy as np\n"
        "from focusflow.query import kernels\n"
        "for parallel in (False, True):\n"
        "    kernels._use_parallel = lambda count: parallel\n"
        "    kernels.dijkstra(np.array([0, 2, 3, 4, 4]), np.array([1, 2, 3, 0]),\n"
        "                     np.full(4, 0.5), np.array([0, 2]), np.inf)\n"
        "    print(*(len(f.overloads) for f in (kernels._heap_push, kernels._heap_pop,\n"
        "                                        kernels._heap_less)))\n"
    )
    assert run_with_numba_cache(probe, tmp_path).splitlines() == ["1 1 1", "1 1 1"]
