"""Trimming the graph's delta log: consumed entries go, sequence numbers and
the graph's structure stay what every consumer and check expects."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.core.structure import Check, StructureError
from focusflow.graph import Cybergraph


def _graph(blocks: int) -> Cybergraph:
    g = Cybergraph(require_cids=False)
    g.add_particles([f"p{i}" for i in range(50)])
    g.add_neurons(["a", "b"], [1.0, 2.0])
    rng = np.random.default_rng(3)
    for _ in range(blocks):
        g.add_link_ids(rng.integers(0, 50, 20), rng.integers(0, 50, 20), rng.integers(0, 2, 20))
        g.set_stakes(np.array([0]), np.array([rng.uniform(1, 5)]))
    return g


def test_a_trim_drops_what_was_seen_and_numbering_goes_on():
    g = _graph(3)
    log = g.log  # the neurons' stakes, then a link and a stake batch per block
    assert (log.head, len(log), log.trimmed) == (7, 7, 0)
    assert log.trim(4) == 4 and (log.head, len(log), log.trimmed) == (7, 3, 4)
    assert [e.seq for e in log.since(4)] == [5, 6, 7] and log.since(7) == []
    with pytest.raises(ValueError, match="trimmed"):
        log.since(3)
    assert log.trim(2) == 0 and log.trim(99) == 3 and log.head == 7 and len(log) == 0
    g.add_link_ids(np.array([1]), np.array([2]), np.array([0]))
    assert log.head == 8 and [e.seq for e in log.since(7)] == [8]


def test_a_trimmed_graph_passes_its_structure_check_and_a_wrong_tail_does_not():
    g = _graph(3)
    g.log.trim(3)
    g.check_structure(Check())
    g.log._entries[0].batch.src[0] = (g.log._entries[0].batch.src[0] + 1) % 50
    with pytest.raises(StructureError, match="the delta log's links"):
        g.check_structure(Check())


def test_an_untrimmed_log_must_hold_every_link():
    g = _graph(2)
    del g.log._entries[0]
    with pytest.raises(StructureError):
        g.check_structure(Check())
