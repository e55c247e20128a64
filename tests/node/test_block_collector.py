"""The node's garbage-collection policy: freeze per block, but never leak a cycle for good."""

from __future__ import annotations

import gc
import weakref

from focusflow.node.runtime import BlockCollector


class _Node:
    pass


def test_frozen_cycles_are_freed_at_the_next_sweep():
    collector = BlockCollector(sweep_every=3)
    try:
        a, b = _Node(), _Node()
        a.other, b.other = b, a
        watch = weakref.ref(a)
        collector.after_block()  # block 1: the live cycle is frozen
        assert gc.get_freeze_count() > 0
        del a, b  # the cycle becomes garbage while frozen
        gc.collect()
        assert watch() is not None, "frozen objects are outside the collector's passes"
        collector.after_block()  # block 2
        collector.after_block()  # block 3: sweep
        assert watch() is None, "the sweep must free cyclic garbage that was frozen"
        assert gc.get_freeze_count() > 0  # and everything alive is frozen again
    finally:
        gc.unfreeze()
