"""Where a node runs its chain's focus (FOCUSFLOW_CHAIN_BACKEND)."""

from __future__ import annotations

import pytest

from focusflow.chain.focus_commit import FocusState, engine_backend
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


def test_auto_takes_the_gpu_where_there_is_one(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "auto")
    assert engine_backend(EXACT) == ("cuda" if GPU else "numba")


def test_an_unknown_choice_is_refused(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "tpu")
    with pytest.raises(InvalidParameterError, match="FOCUSFLOW_CHAIN_BACKEND='tpu'"):
        engine_backend(EXACT)


@pytest.mark.skipif(GPU, reason="a GPU is present")
def test_cuda_without_a_gpu_says_why(monkeypatch):
    monkeypatch.setenv("FOCUSFLOW_CHAIN_BACKEND", "cuda")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        FocusState(NEW_CHAIN_FOCUS)
