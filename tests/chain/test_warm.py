"""A node compiles every kernel before serving, not inside its first real block."""

from __future__ import annotations

import gc

from numba.core.registry import CPUDispatcher

from focusflow.chain.da_commit import block_square
from focusflow.chain.focus_commit import FocusState
from focusflow.chain.module import Deltas
from focusflow.chain.warm import warm_up
from focusflow.core.cid import raw_cid_bytes


def _compiled() -> dict[str, int]:
    return {
        f"{d.py_func.__module__}.{d.py_func.__qualname__}": len(d.overloads)
        for d in gc.get_objects()
        if isinstance(d, CPUDispatcher)
    }


def test_blocks_after_warm_up_compile_nothing():
    """A fresh install (no numba cache) would otherwise stall its first blocks
    for seconds per process: four testnet validators stalled about 8 s on the
    erasure coder's kernels when warm-up covered only one-share squares."""
    warm_up()
    before = _compiled()
    state = FocusState()
    neuron = b"\x01" * 20
    targets = [raw_cid_bytes(b"t%d" % j) for j in range(97)]
    for block in range(3):
        links = [[raw_cid_bytes(b"b%d-%d" % (block, j)), targets[j % 97]] for j in range(3000)]
        state.apply(Deltas(links=[(neuron, links, None)], stakes={neuron: 10**6}))
    for size in (1 << 10, 20 << 10, 300 << 10, 1 << 20):
        block_square([bytes(size)]).data_root()
    after = _compiled()
    grew = {name: (before.get(name, 0), n) for name, n in after.items() if n > before.get(name, 0)}
    assert grew == {}
