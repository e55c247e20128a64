"""Fixtures the chain tests share."""

from __future__ import annotations

import pytest

from focusflow.chain.focus_commit import FocusState


@pytest.fixture
def applies(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Counts the blocks of deltas fed to any FocusState (what a restore replays)."""
    calls: list[object] = []
    apply = FocusState.apply

    def counting(self, deltas, height=None):
        calls.append(deltas)
        return apply(self, deltas, height)

    monkeypatch.setattr(FocusState, "apply", counting)
    return calls
