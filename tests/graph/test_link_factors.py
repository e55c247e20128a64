"""Per-link weight factors on the cybergraph (what a chain's Hebbian rule sets).

A factor multiplies a link's staked weight; setting one re-weighs the link at
the next snapshot refresh (the same entry weights as a snapshot built from
scratch), a graph without factors or with factors of 1 weighs its links to the
same bits as before, bad input is refused and changes nothing, and an engine
that takes new links raw (without re-reading the graph) falls back to the
host patch once a factor moved.
"""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.core.errors import InvalidParameterError
from focusflow.core.structure import Check, StructureError
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import make_params
from focusflow.graph import Cybergraph, FactorBatch


def _graph(seed: int = 0, n: int = 80, m: int = 600) -> Cybergraph:
    rng = np.random.default_rng(seed)
    g = Cybergraph(require_cids=False, default_stake=0.0)
    names = [f"n{i}" for i in range(5)]
    g.add_neurons(names, rng.uniform(1.0, 10.0, len(names)))
    src = [f"p{i}" for i in rng.integers(0, n, m)]
    dst = [f"p{i}" for i in rng.integers(0, n, m)]
    g.add_links(src, dst, [names[i] for i in rng.integers(0, 5, m)])
    return g


def _entry_weights(g: Cybergraph) -> np.ndarray:
    """The graph's snapshot as a dense matrix in particle order."""
    return g.snapshot().to_scipy().toarray()


def test_factors_of_one_leave_every_weight_as_it_was():
    plain, with_ones = _graph(), _graph()
    with_ones.enable_factors()
    m = plain.n_links
    assert with_ones.factors is not None and np.all(with_ones.factors == 1.0)
    a = plain.link_weight_range(0, m)
    b = with_ones.link_weight_range(0, m)
    assert a.tobytes() == b.tobytes()
    assert plain.factors is None


def test_a_set_factor_reweighs_its_link_as_a_rebuilt_snapshot_would():
    g = _graph()
    g.enable_factors()
    g.snapshot()
    rng = np.random.default_rng(3)
    ids = rng.choice(g.n_links, 200, replace=False)
    factors = rng.uniform(1.0, 2.0, 200)
    batch = g.set_factors(ids, factors)
    assert isinstance(batch, FactorBatch) and g.log.since(g.log.head - 1)[0].batch is batch
    g.add_links(["p1", "p2"], ["p3", "p4"], ["n0", "n1"])
    patched = _entry_weights(g)
    fresh = Cybergraph(require_cids=False, default_stake=0.0)
    links = g.links()
    fresh.add_particles(g.particles.keys())
    fresh.add_link_ids(links.src, links.dst, weights=g.link_weight_range(0, g.n_links))
    rebuilt = _entry_weights(fresh)
    assert np.array_equal(patched != 0, rebuilt != 0)
    np.testing.assert_allclose(patched, rebuilt, rtol=1e-12, atol=0)
    want = g.link_weight_range(0, g.n_links, factors=False)[ids] * factors
    assert g.link_weight(ids).tobytes() == want.tobytes()


def test_new_links_get_a_factor_of_one():
    g = _graph()
    g.enable_factors()
    m = g.n_links
    g.add_links(["a", "b"], ["c", "d"], ["n0", "n0"])
    assert g.factors is not None and len(g.factors) == m + 2
    assert np.all(g.factors[m:] == 1.0)


def test_clear_factors_gives_every_link_its_stake_again():
    g = _graph()
    g.enable_factors()
    g.snapshot()
    g.set_factors(np.array([0, 5]), np.array([2.0, 1.5]))
    g.snapshot()
    batch = g.clear_factors()
    assert batch is not None and sorted(batch.link.tolist()) == [0, 5]
    assert g.factors is None
    plain = _graph()
    np.testing.assert_allclose(_entry_weights(g), _entry_weights(plain), rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("links", "factors", "message"),
    [
        ([0], [0.0], "finite and > 0"),
        ([0], [-1.0], "finite and > 0"),
        ([0], [float("nan")], "finite and > 0"),
        ([0], [float("inf")], "finite and > 0"),
        ([10**6], [1.5], "link id out of range"),
        ([-1], [1.5], "link id out of range"),
        ([0, 1], [1.5], "one factor per link"),
    ],
)
def test_bad_factors_are_refused_and_change_nothing(links, factors, message):
    g = _graph()
    g.enable_factors()
    before = g.factors.copy()
    head = g.log.head
    with pytest.raises(InvalidParameterError, match=message):
        g.set_factors(np.array(links), np.array(factors))
    assert g.factors.tobytes() == before.tobytes() and g.log.head == head


def test_a_graph_without_factors_refuses_to_set_one():
    with pytest.raises(InvalidParameterError, match="no link factors"):
        _graph().set_factors(np.array([0]), np.array([1.5]))


def test_the_structure_check_names_a_bad_factor_column():
    g = _graph()
    g.enable_factors()
    g.check_structure(Check())
    g._factor.writable()[3] = 0.0
    with pytest.raises(StructureError, match="_factor"):
        g.check_structure(Check())


def test_an_engine_taking_raw_links_rereads_the_graph_after_a_factor_moved():
    """The numpy reference operator appends a block's links raw; a factor set
    since re-weighs older links, so the engine must patch the host snapshot
    instead, and its answer is a cold solve's."""
    params = make_params(None, mode="diffusion", tol=1e-12)
    g = _graph()
    g.enable_factors()
    engine = FocusEngine(g, params, backend="numpy")
    engine.compute()
    g.set_factors(np.arange(0, 300, 3), np.full(100, 2.0))
    # A neuron whose every link is new: its links alone could go in raw.
    g.add_neurons(["newcomer"], [3.0])
    g.add_links(["p1"], ["p7"], ["newcomer"])
    warm = engine.apply().focus
    cold = FocusEngine(g, params, backend="numpy").compute().focus
    assert np.abs(warm - cold).sum() < 1e-9
