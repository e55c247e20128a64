"""A WebSocket action whose state the store refuses changes nothing: the reply is
``store_error`` and the cube is served as the store holds it, not as the failed
action left it in memory. Real SQLite store; the failure is one refused write."""

from __future__ import annotations

import pytest

from focusflow.konomi.errors import StoreError
from focusflow.konomi.store import open_store
from focusflow.konomi.system import KonomiSystem
from focusflow.konomi.ws import handle


def test_a_refused_save_leaves_the_cube_as_stored(tmp_path, monkeypatch):
    system = KonomiSystem(store=open_store(f"sqlite:///{tmp_path / 'k.sqlite3'}"))
    try:
        cube, _ = handle(system, None, {"action": "initialize", "cube_id": "c1"})
        assert cube is not None
        before = system.cube("c1").to_state()
        store = system.store
        assert store is not None
        real = store.save_cube

        def refuse(state):
            raise StoreError("SQLite: disk I/O error")

        monkeypatch.setattr(store, "save_cube", refuse)
        with pytest.raises(StoreError):
            handle(system, cube, {"action": "process", "vertex": "NEU", "text": "a new thought"})
        monkeypatch.setattr(store, "save_cube", real)
        assert handle(system, cube, {"action": "status"})[0] is not cube  # reloaded
        assert system.cube("c1").to_state() == before  # the refused change is served by no one
        assert len(system.ledger_entries("c1")) == 1  # and decided nothing: genesis only
        # The same action goes through once the store takes it.
        handle(system, cube, {"action": "process", "vertex": "NEU", "text": "a new thought"})
        assert system.cube("c1").to_state() != before
    finally:
        system.close()
