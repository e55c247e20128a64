"""Where a node runs its chain's focus (FOCUSFLOW_CHAIN_BACKEND)."""

from __future__ import annotations

import pytest

from focusflow.chain import focus_commit
from focusflow.chain.focus_commit import AUTO_CUDA_LINKS, FocusState, engine_backend
from focusflow.chain.focus_spec import NEW_CHAIN_FOCUS, chain_focus_params
from focusflow.core.errors import BackendUnavailableError, InvalidParameterError
from focusflow.focus.backends.cuda import cuda_available

EXACT = chain_focus_params(NEW_CHAIN_FOCUS)
FAST = chain_focus_params(None)
GPU = cuda_available()[0]


def test_numba_unless_asked(monkeypatch):
    monkeypatch.delenv("FOCUSFLOW_CHAIN_BACKEND", raising=False)
    assert engine_backend(EXACT) == engine_backend(FAST) == "numba"
    assert FocusState(NEW_CHAIN_FOCUS).engine.backend.name == "numba"


@pytest.mark.parametrize("choice", ["cuda", "auto"])
def test_a_fast_chain_stays_on_numba(monkeypatch, choice):
    """``fast`` bits differ between backends: a node that moved would fork."""
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", choice)
    assert engine_backend(FAST) == "numba"


def test_auto_takes_the_gpu_where_there_is_one_once_the_graph_is_large(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "auto")
    assert engine_backend(EXACT, AUTO_CUDA_LINKS) == ("cuda" if GPU else "numba")
    assert engine_backend(EXACT, AUTO_CUDA_LINKS - 1) == engine_backend(EXACT) == "numba"
    monkeypatch.setattr(focus_commit, "_gpu_present", lambda: True)
    assert engine_backend(EXACT, AUTO_CUDA_LINKS) == "cuda"
    assert engine_backend(FAST, AUTO_CUDA_LINKS) == "numba"
    monkeypatch.setattr(focus_commit, "_gpu_present", lambda: False)
    assert engine_backend(EXACT, 10**9) == "numba"


def _grow(state: FocusState, blocks: int) -> list[bytes]:
    """Blocks of 300 random links among 2,000 particles; their roots."""
    import numpy as np

    from focusflow.chain.module import Deltas

    rng = np.random.default_rng(3)
    roots = []
    for _ in range(blocks):
        src, dst = rng.integers(0, 2000, 300), rng.integers(0, 2000, 300)
        pairs = [
            [int(a).to_bytes(4, "big"), int(b).to_bytes(4, "big")]
            for a, b in zip(src, dst, strict=True)
        ]
        state.apply(Deltas(stakes={b"n" * 20: 1000}, links=[(b"n" * 20, pairs, None)]))
        roots.append(state.root)
    return roots


def test_auto_without_a_gpu_stays_on_numba_past_the_size(monkeypatch):
    monkeypatch.setattr(focus_commit, "AUTO_CUDA_LINKS", 500)
    monkeypatch.setattr(focus_commit, "_gpu_present", lambda: False)
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "auto")
    state = FocusState(NEW_CHAIN_FOCUS)
    _grow(state, 3)
    assert state.graph.n_links > 500 and state.engine.backend.name == "numba"


@pytest.mark.skipif(not GPU, reason="no GPU")
def test_auto_moves_to_the_gpu_past_the_size_with_the_same_roots(monkeypatch):
    """Under ``auto`` the engine starts on numba and moves to the GPU between
    the blocks where the graph passes ``AUTO_CUDA_LINKS``; every root is what
    a node that stays on numba commits."""
    monkeypatch.setattr(focus_commit, "AUTO_CUDA_LINKS", 500)
    monkeypatch.delenv("FOCUSFLOW_CHAIN_BACKEND", raising=False)
    stay = _grow(FocusState(NEW_CHAIN_FOCUS), 4)
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "auto")
    state = FocusState(NEW_CHAIN_FOCUS)
    assert state.engine.backend.name == "numba"
    assert _grow(state, 4) == stay
    assert state.engine.backend.name == "cuda"


def test_an_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "tpu")
    with pytest.raises(InvalidParameterError, match="FOCUSFLOW_CHAIN_BACKEND='tpu'"):
        engine_backend(EXACT)


@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_cuda_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        FocusState(NEW_CHAIN_FOCUS)
