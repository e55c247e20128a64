"""The Hebbian rule as a chain's focus rule (``focus.hebbian_every``).

Every ``hebbian_every`` blocks each link's factor moves by the rule of
focus/hebbian.py from the focus the previous block committed, before the
block's deltas; the block's focus is the blend's fixed point over the staked
weights times the factors, and its focus record commits the factors' root.
Checked against independent references (the rule written one link at a time
in Python floats, owners from the whole link list, and a dense eigenvector
solve of the weighted graph); the same bits after a restart from the focus
checkpoint and after a replay of every block; a checkpoint whose factors
were altered is refused by their committed root; an upgrade turns the rule on
and off; bad choices are refused when the genesis is read. Golden roots on
two CPU builds and one thread are in test_golden_roots.py (``small:hebb``).
"""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.chain import Genesis
from focusflow.chain.errors import GenesisError
from focusflow.chain.focus_checkpoint import read_header_of
from focusflow.chain.focus_commit import (
    SCALE,
    FocusState,
    engine_backend,
    engine_identity,
    factor_root,
)
from focusflow.chain.focus_spec import FOCUS_KEY
from focusflow.chain.focus_state_format import layout
from focusflow.core.encoding import decode
from focusflow.focus.hebbian import eligible_links, particle_owners
from focusflow.testing.chains import ALICE, BOB, genesis, link, new_chain, particle, tx
from tests.chain import focus_state_bytes
from tests.chain.randomtx import random_blocks
from tests.chain.restarts import install_from_peer, restart_and_replay
from tests.focus.reference import dense_tri, dense_weights
from tests.focus.test_hebbian import reference_step

T0 = 1_700_000_000_000
BLOCKS = random_blocks(seed=11, blocks=8, txs_per_block=20, particles=60)
HEBB = {
    "mode": "tri",
    "arithmetic": "exact-v3",
    "springs_method": "cg",
    "hebbian_every": 2,
    "hebbian_eta": 0.05,
    "hebbian_delta": 0.1,
    "hebbian_cap": 2.0,
    "hebbian_mass_cap": 0.02,
}
PLAIN = {k: v for k, v in HEBB.items() if not k.startswith("hebbian_")}


def _produce(chains, heights):
    for h in heights:
        for c in chains:
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        assert all(c.head == chains[0].head for c in chains)


def _record(chain) -> dict:
    with chain.reader() as r:
        return decode(r.get(FOCUS_KEY))


def _phi(state: FocusState) -> np.ndarray:
    return state.q.astype(np.float64) / SCALE


def test_factors_follow_the_scalar_rule_and_focus_the_weighted_graph(tmp_path):
    chain = new_chain(tmp_path / "h", genesis(focus=HEBB))
    assert engine_identity(chain.focus.params) == (
        "tri/exact-v3+hebbian(every 2, eta=0.05, delta=0.1, cap=2.0, mass_cap=0.02)"
    )
    p = chain.focus.params.hebbian()
    moved = 0
    for h in range(1, 9):
        state = chain.focus
        g = state.graph
        m = g.n_links
        before = None
        if m:
            links = g.links()
            owner = particle_owners(g.n_particles, links.src, links.dst, links.neuron)
            eligible = eligible_links(links.src, links.dst, links.neuron, owner)
            before = (
                g.factors.copy(),
                g.link_weight_range(0, m, factors=False),
                _phi(state),
                links.src.copy(),
                links.dst.copy(),
                eligible,
            )
        chain.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        state = chain.focus
        g = state.graph
        factors = g.factors
        if before is not None:
            h0, base, phi, src, dst, eligible = before
            want = h0 if h % 2 else np.array(reference_step(h0, base, phi, src, dst, eligible, p))
            assert factors[:m].tobytes() == want.tobytes()
            moved += int(np.count_nonzero(want != h0))
        assert np.all(factors[m:] == 1.0)
        # The committed focus is the blend's equilibrium over stake x factor.
        links = g.links()
        w = g.link_weight_range(0, g.n_links, factors=False) * factors
        reference = dense_tri(dense_weights(g.n_particles, links.src, links.dst, w))
        assert np.abs(_phi(state) - reference).sum() < 1e-5
        assert _record(chain)["hebbian"] == factor_root(factors)
    assert moved > 100
    assert factors.max() > 1.0


def test_a_restart_from_the_checkpoint_or_a_replay_goes_on_with_the_same_bits(tmp_path):
    steady, node, replayed = restart_and_replay(tmp_path, HEBB, _produce, upto=5, then=8)
    want = steady.focus.graph.factors.tobytes()
    assert node.focus.graph.factors.tobytes() == replayed.focus.graph.factors.tobytes() == want


def test_a_checkpoint_with_altered_factors_is_refused_by_their_root(tmp_path):
    """The factors are committed: a checkpoint whose factors differ from
    the record's root is not used (the node replays instead), though the
    focus vector in it still hashes to the header's focus root."""
    steady = new_chain(tmp_path / "steady", genesis(focus=HEBB))
    node = new_chain(tmp_path / "node", genesis(focus=HEBB))
    _produce([steady, node], range(1, 5))
    node.close()
    path = tmp_path / "node" / "focus.ckpt"
    header = read_header_of(path)
    assert header.hebbian
    names = [name for name, _, _ in layout(header)]
    assert "links.factor" in names
    path.write_bytes(focus_state_bytes.with_array(path.read_bytes(), "links.factor", _bump))
    node = new_chain(tmp_path / "node", genesis(focus=HEBB))
    assert node.restored_from is None
    assert node.head == steady.head
    assert node.focus.graph.factors.tobytes() == steady.focus.graph.factors.tobytes()


def _bump(factors: np.ndarray) -> np.ndarray:
    factors[0] = 1.5 if factors[0] != 1.5 else 1.25
    return factors


def test_a_block_without_transactions_moves_the_factors_at_its_height(tmp_path):
    chain = new_chain(tmp_path / "h", genesis(focus=HEBB))
    chain.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c"), ("c", "a")))], time_ms=T0 + 1000)
    chain.produce_block([tx(BOB, 0, link(("c", "d"), ("d", "a")))], time_ms=T0 + 2000)
    first = chain.head.focus_root
    chain.produce_block([], time_ms=T0 + 3000)  # height 3: not due, nothing moves
    assert chain.head.focus_root == first
    factors = chain.focus.graph.factors.copy()
    chain.produce_block([], time_ms=T0 + 4000)  # height 4: due
    assert chain.head.focus_root != first
    assert np.any(chain.focus.graph.factors != factors)
    assert _record(chain)["hebbian"] == factor_root(chain.focus.graph.factors)


def test_a_neurons_links_among_its_own_particles_keep_their_stake(tmp_path):
    """The farming bound on chain: a neuron that brings particles in and
    links them among themselves earns no factor there; its link into a
    particle another neuron brought in does."""
    chain = new_chain(tmp_path / "h", genesis(focus=HEBB))
    chain.produce_block([tx(BOB, 0, link(("hub", "x")))], time_ms=T0 + 1000)
    own = link(("m1", "m2"), ("m2", "m3"), ("m3", "m1"), ("m1", "hub"))
    chain.produce_block([tx(ALICE, 0, own)], time_ms=T0 + 2000)
    for h in range(3, 9):
        chain.produce_block([], time_ms=T0 + 1000 * h)
    g = chain.focus.graph
    ids = g.particles
    pairs = list(zip(g.links().src.tolist(), g.links().dst.tolist(), strict=True))
    factor = dict(zip(pairs, g.factors.tolist(), strict=True))
    m1, m2, m3, hub = (ids.get(particle(n)) for n in ("m1", "m2", "m3", "hub"))
    assert factor[(m1, m2)] == factor[(m2, m3)] == factor[(m3, m1)] == 1.0
    assert factor[(m1, hub)] > 1.0


def test_an_upgrade_turns_the_rule_on_and_off(tmp_path):
    upgrades = [
        {"height": 3, "focus": {"hebbian_every": 2, "hebbian_eta": 0.05}},
        {"height": 6, "focus": {"hebbian_every": 0}},
    ]
    chains = [new_chain(tmp_path / n, genesis(focus=PLAIN, focus_upgrades=upgrades)) for n in "ab"]
    seen = {}
    for h in range(1, 8):
        for c in chains:
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        assert chains[0].head == chains[1].head
        g = chains[0].focus.graph
        seen[h] = None if g.factors is None else float(g.factors.max())
        if h in (3, 6):
            assert ("hebbian" in _record(chains[0])) == (h == 3)
    assert seen[1] is None and seen[2] is None
    assert seen[3] == 1.0  # switched on at a height not due: every factor at 1
    assert seen[4] > 1.0 and seen[5] > 1.0
    assert seen[6] is None and seen[7] is None
    # Off again: every link weighs its stake, and focus is the plain blend's.
    state = chains[0].focus
    g = state.graph
    links = g.links()
    assert g.link_weight_range(0, g.n_links).tobytes() == (
        g.link_weight_range(0, g.n_links, factors=False).tobytes()
    )
    w = g.link_weight_range(0, g.n_links)
    reference = dense_tri(dense_weights(g.n_particles, links.src, links.dst, w))
    assert np.abs(_phi(state) - reference).sum() < 1e-5


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hebbian_every": -1}, "hebbian_every must be an integer in 0..1000000"),
        ({"hebbian_every": 2.5}, "hebbian_every must be an integer"),
        ({"hebbian_every": True}, "hebbian_every must be an integer"),
        ({"hebbian_every": 10**7}, "hebbian_every must be an integer"),
        ({"hebbian_eta": -0.1}, "hebbian eta must be finite and >= 0"),
        ({"hebbian_eta": float("nan")}, "hebbian eta must be finite and >= 0"),
        ({"hebbian_eta": "big"}, "hebbian_eta must be a number"),
        ({"hebbian_delta": 0}, "hebbian delta must be in"),
        ({"hebbian_delta": 1.5}, "hebbian delta must be in"),
        ({"hebbian_cap": 0.5}, "hebbian cap must be finite and >= 1"),
        ({"hebbian_cap": float("inf")}, "hebbian cap must be finite and >= 1"),
        ({"hebbian_mass_cap": -1}, "hebbian mass_cap must be finite and >= 0"),
        ({"arithmetic": "fast"}, "the Hebbian rule needs an exact arithmetic"),
    ],
)
def test_a_bad_hebbian_choice_is_refused_when_the_genesis_is_read(change, message):
    raw = genesis(focus=HEBB).to_json()
    raw["params"]["focus"] = {**HEBB, **change}
    with pytest.raises(GenesisError, match=message) as err:
        Genesis.from_json(raw)
    assert err.value.code == "bad_genesis"


def test_the_rule_runs_on_numba_wherever_the_node_asks(monkeypatch):
    """Its factor updates re-weigh links through the host snapshot:
    ``FOCUSFLOW_CHAIN_BACKEND`` cuda or auto leaves such a chain on numba."""
    from focusflow.chain.focus_spec import chain_focus_params

    params = chain_focus_params(HEBB)
    for choice in ("cuda", "auto"):
        monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", choice)
        assert engine_backend(params, 10**9) == "numba"


def test_a_chain_without_the_rule_commits_what_it_did():
    """No factors, no ``hebbian`` in the focus record, and a state whose
    checkpoint lays out as before (no ``links.factor``)."""
    state = FocusState(PLAIN)
    assert state.hebbian is None and state.graph.factors is None
    assert state.hebbian_root() is None


def test_a_node_installed_from_a_peers_snapshot_goes_on_with_the_same_roots(tmp_path):
    """State sync carries the factors: a node installed at block 4 from a
    peer's snapshot commits blocks 5..8 with the peer's roots."""
    src, dst = install_from_peer(tmp_path, HEBB, _produce, BLOCKS, upto=4, then=8)
    assert dst.focus.graph.factors.tobytes() == src.focus.graph.factors.tobytes()
    src.store.close()
    dst.store.close()


def test_a_peers_focus_state_with_altered_factors_is_refused(tmp_path):
    """A peer's focus section whose factors differ from the committed root is
    refused before anything is built on it, though its focus vector hashes
    to the header's focus root."""
    from focusflow.chain.snapshot import SnapshotRootError

    with pytest.raises(SnapshotRootError, match="link factors hash"):
        _load_with_factors(tmp_path, _bump)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_a_peers_factor_that_is_not_finite_and_positive_is_refused(tmp_path, bad):
    from focusflow.chain.snapshot import SnapshotError

    def poison(factors: np.ndarray) -> np.ndarray:
        factors[-1] = bad
        return factors

    with pytest.raises(SnapshotError, match="factor") as err:
        _load_with_factors(tmp_path, poison)
    assert err.value.code == "snapshot_invalid"


def _load_with_factors(tmp_path, change) -> FocusState:
    """A peer's focus section of a Hebbian chain after block 4, its factors
    passed through ``change``, loaded as a joining node loads it."""
    from focusflow.chain.snapshot import capture_focus, load_focus

    gen = genesis(focus=HEBB)
    chain = new_chain(tmp_path / "c", gen)
    try:
        _produce([chain], range(1, 5))
        raw = capture_focus(chain.focus, chain.head, chain.chain_id)
        raw = focus_state_bytes.with_array(raw, "links.factor", change)
        with chain.reader() as r:
            state = dict(r.items(b"/"))
        path = tmp_path / "focus.bin"
        path.write_bytes(raw)
        with open(path, "rb") as f:
            return load_focus(f, len(raw), chain.head, state, gen)
    finally:
        chain.close()
