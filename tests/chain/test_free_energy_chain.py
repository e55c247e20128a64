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

import numpy as np
import pytest

from focusflow.chain import Genesis
from focusflow.chain.errors import GenesisError
from focusflow.chain.focus_commit import SCALE, engine_backend, engine_identity
from focusflow.focus.energy import FreeEnergyModel
from focusflow.testing.chains import ALICE, genesis, link, new_chain, tx
from tests.chain.randomtx import random_blocks

T0 = 1_700_000_000_000
BLOCKS = random_blocks(seed=7, blocks=8, txs_per_block=20)
FE = {
    "mode": "tri",
    "arithmetic": "exact-v3",
    "springs_method": "cg",
    "model": "free-energy",
    "temperature": 0.5,
}


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
    steady = new_chain(tmp_path / "steady", genesis(focus=FE))
    node = new_chain(tmp_path / "node", genesis(focus=FE))
    replayed = new_chain(tmp_path / "replayed", genesis(focus=FE))
    _produce([steady, node, replayed], range(1, 5))
    node.close()
    node = new_chain(tmp_path / "node", genesis(focus=FE))
    assert node.restored_from == 4 and node.head == steady.head
    replayed.store.close()
    for p in (tmp_path / "replayed").glob("focus.ckpt*"):
        p.unlink()
    replayed = new_chain(tmp_path / "replayed", genesis(focus=FE))
    assert replayed.restored_from is None and replayed.head == steady.head
    _produce([steady, node, replayed], range(5, 9))


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
    ("change", "message"),
    [
        ({"temperature": 0}, "temperature must be > 0"),
        ({"temperature": -1.0}, "temperature must be > 0"),
        ({"temperature": float("inf")}, "temperature must be a finite number"),
        ({"temperature": "hot"}, "temperature must be a finite number"),
        ({"temperature": True}, "temperature must be a finite number"),
        ({"model": "entropy"}, "model must be one of blend, free-energy"),
        ({"arithmetic": "fast"}, "needs an exact arithmetic"),
        ({"mode": "cyberank"}, "defined for tri and diffusion"),
    ],
)
def test_a_bad_model_choice_is_refused_when_the_genesis_is_read(change, message):
    raw = genesis(focus=FE).to_json()
    raw["params"]["focus"] = {**FE, **change}
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
