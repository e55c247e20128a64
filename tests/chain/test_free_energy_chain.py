"""The free-energy model as a chain's focus.

A genesis naming ``focus.model = "free-energy"`` with a temperature commits,
every block, the minimiser of F (energy_exact.py) started from the last
block's focus: within the solve's tolerance of what an independent float64
minimiser (``energy.FreeEnergyModel``, L-BFGS) finds on the same graph; the same
bits after a restart from the focus checkpoint and after a replay of every
block; reached from a blend chain by a scheduled upgrade; and a bad choice is
refused when the genesis is read, naming the value. Golden roots on two CPU
builds and one thread are in test_golden_roots.py (``small:fe``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from focusflow.chain import Genesis
from focusflow.chain.errors import GenesisError
from focusflow.chain.focus_commit import SCALE, engine_backend, engine_identity
from focusflow.focus.energy import FreeEnergyModel
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx
from tests.chain.randomtx import random_blocks
from tests.chain.restarts import install_from_peer, restart_and_replay

T0 = 1_700_000_000_000
BLOCKS = random_blocks(seed=7, blocks=8, txs_per_block=20)
FE = {
    "mode": "tri",
    "arithmetic": "exact-v3",
    "springs_method": "cg",
    "model": "free-energy",
    "temperature": 0.5,
}
LOCAL = {**FE, "model": "local-rule", "local_steps": 3, "local_eta": 0.2}


def _produce(chains, heights):
    for h in heights:
        for c in chains:
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        assert all(c.head == chains[0].head for c in chains)


def _committed(chain) -> np.ndarray:
    return chain.focus.q.astype(np.float64) / SCALE


def test_every_block_commits_the_minimiser_an_independent_solver_finds(tmp_path):
    chain = new_chain(tmp_path / "fe", genesis(focus=FE))
    assert engine_identity(chain.focus.params) == "free-energy(tri, T=0.5)/exact-v3"
    blend = new_chain(tmp_path / "blend", genesis(focus={**FE, "model": "blend"}))
    for h in range(1, 5):
        for c in (chain, blend):
            c.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        state = chain.focus
        assert state.converged
        reference = FreeEnergyModel(state.graph, state.params).minimize(0.5)
        got = _committed(chain)
        # The solve stops at sqrt(m) <= tol (1e-6), which bounds the L1
        # residual to first order; quantisation adds n * 5e-16.
        assert np.abs(got - reference).sum() < 1e-5
        assert abs(got.sum() - 1.0) < 1e-9
    # Not the blend's fixed point: the model changes what is committed.
    assert np.abs(_committed(blend) - _committed(chain)).sum() > 1e-3
    assert chain.head.focus_root != blend.head.focus_root


def test_a_restart_from_the_checkpoint_or_a_replay_goes_on_with_the_same_bits(tmp_path):
    restart_and_replay(tmp_path, FE, _produce, upto=4, then=8)


def test_a_blend_chain_moves_to_the_model_at_an_upgrade_height(tmp_path):
    blend = {**FE, "model": "blend"}
    upgrade = [{"height": 3, "focus": {"model": "free-energy", "temperature": 0.5}}]
    chains = [
        new_chain(tmp_path / "a", genesis(focus=blend, focus_upgrades=upgrade)),
        new_chain(tmp_path / "b", genesis(focus=blend, focus_upgrades=upgrade)),
        new_chain(tmp_path / "plain", genesis(focus=blend)),
    ]
    roots = []
    for chain in chains:
        for h in range(1, 6):
            chain.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        roots.append([r.block.header.focus_root for r in chain.records(1)])
    assert roots[0] == roots[1]
    assert roots[0][:2] == roots[2][:2]
    assert all(a != b for a, b in zip(roots[0][2:], roots[2][2:], strict=True))
    state = chains[0].focus
    assert state.params.model == "free-energy"
    reference = FreeEnergyModel(state.graph, state.params).minimize(0.5)
    assert np.abs(_committed(chains[0]) - reference).sum() < 1e-5


@pytest.mark.parametrize(
    ("base", "change", "message"),
    [
        (FE, {"temperature": 0}, "temperature must be > 0"),
        (FE, {"temperature": -1.0}, "temperature must be > 0"),
        (FE, {"temperature": float("inf")}, "temperature must be a finite number"),
        (FE, {"temperature": "hot"}, "temperature must be a finite number"),
        (FE, {"temperature": True}, "temperature must be a finite number"),
        (FE, {"model": "entropy"}, "model must be one of blend, free-energy"),
        (FE, {"arithmetic": "fast"}, "needs an exact arithmetic"),
        (FE, {"mode": "cyberank"}, "defined for tri and diffusion"),
        (LOCAL, {"local_steps": 0}, "local_steps must be an integer in 1..64"),
        (LOCAL, {"local_steps": 65}, "local_steps must be an integer in 1..64"),
        (LOCAL, {"local_steps": 2.5}, "local_steps must be an integer in 1..64"),
        (LOCAL, {"local_eta": 0}, "local_eta must be in"),
        (LOCAL, {"local_eta": 1.5}, "local_eta must be in"),
        (LOCAL, {"local_eta": float("nan")}, "local_eta must be in"),
        (LOCAL, {"arithmetic": "fast"}, "the local-rule model needs an exact arithmetic"),
    ],
)
def test_a_bad_model_choice_is_refused_when_the_genesis_is_read(base, change, message):
    raw = genesis(focus=base).to_json()
    raw["params"]["focus"] = {**base, **change}
    with pytest.raises(GenesisError, match=message) as err:
        Genesis.from_json(raw)
    assert err.value.code == "bad_genesis"


def test_the_model_runs_on_numba_wherever_the_node_asks(monkeypatch, tmp_path):
    """The minimiser has no GPU twin: ``FOCUSFLOW_CHAIN_BACKEND`` cuda or auto
    leaves a free-energy chain on numba (the same bits), where a blend chain
    in an exact arithmetic would move."""
    from focusflow.focus.params import make_params

    params = make_params(None, **FE)
    for choice in ("cuda", "auto"):
        monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", choice)
        assert engine_backend(params, 10**9) == "numba"
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    chain = new_chain(tmp_path / "fe", genesis(focus=FE))
    chain.produce_block([tx(ALICE, 0, link(("a", "b"), ("b", "c")))], time_ms=T0 + 1000)
    assert chain.focus.engine.backend.name == "numba"


def _local_reference(state, start: np.ndarray, steps: int, eta: float) -> np.ndarray:
    """The local rule in numpy float64 on the float64 model's gradient:
    ``phi <- normalise(phi^(1 - eta) * softmax(-grad E / T)^eta)``."""
    model = FreeEnergyModel(state.graph, state.params)
    t = state.params.temperature
    phi = start / start.sum()
    for _ in range(steps):
        g = model.energy_gradient(phi)
        lq = -g / t - np.logaddexp.reduce(-g / t)
        z = (1 - eta) * np.log(phi) + eta * lq
        phi = np.exp(z - np.logaddexp.reduce(z))
    return phi


def test_the_local_rule_takes_its_steps_each_block(tmp_path):
    """Each block commits ``local_steps`` steps of the rule from the last
    block's focus (new particles at 1/n), as a float64 reference computes
    them; the identity names the rule."""
    chain = new_chain(tmp_path / "local", genesis(focus=LOCAL))
    assert engine_identity(chain.focus.params) == "local-rule(tri, T=0.5, 3 x 0.2)/exact-v3"
    chain.produce_block(BLOCKS[0], time_ms=T0 + 1000)
    for h in range(2, 5):
        before = chain.focus.engine.result.focus.copy()
        chain.produce_block(BLOCKS[h - 1], time_ms=T0 + 1000 * h)
        state = chain.focus
        n = state.graph.n_particles
        start = np.concatenate([before, np.full(n - len(before), 1.0 / n)])
        want = _local_reference(state, start, 3, 0.2)
        assert np.abs(state.engine.result.focus - want).sum() < 1e-9
        assert state.converged  # the rule commits what its steps reach


def test_the_local_rule_converges_to_the_minimiser_on_a_fixed_graph():
    """Block after block on one graph, the rule's focus approaches F's
    minimiser geometrically (eta 0.2 is under the contraction bound here)."""
    from focusflow.focus.energy_exact import exact_minimiser
    from focusflow.focus.engine import FocusEngine
    from focusflow.focus.params import make_params
    from focusflow.graph import Cybergraph
    from tests.helpers import random_weighted

    src, dst, w = random_weighted(150, 600, 3)
    g = Cybergraph(require_cids=False)
    g.add_links([f"p{s}" for s in src], [f"p{d}" for d in dst], weights=w)
    params = make_params(None, **LOCAL)
    engine = FocusEngine(g, params, backend="numba")
    target = exact_minimiser(g, 0.5, params.with_(model="blend")).focus
    gaps = [np.abs(engine.compute().focus - target).sum()]
    for _ in range(25):
        gaps.append(np.abs(engine.apply().focus - target).sum())
    assert gaps[-1] < 1e-6 < gaps[0]
    assert all(b < a for a, b in itertools.pairwise(gaps) if a > 1e-12)


@pytest.mark.parametrize("focus", [FE, LOCAL], ids=["free-energy", "local-rule"])
def test_a_node_installed_from_a_peers_snapshot_goes_on_with_the_same_roots(tmp_path, focus):
    """State sync carries what the model's next block reads (the engine's
    focus vector): a node installed at block 4 from a peer's snapshot commits
    blocks 5..8 with the peer's roots."""
    src, dst = install_from_peer(tmp_path, focus, _produce, BLOCKS, upto=4, then=8)
    assert dst.focus.params.model == focus["model"]
    src.store.close()
    dst.store.close()
