"""Persistence behind one interface: SQLite (embedded) and a real PostgreSQL server."""

from __future__ import annotations

import numpy as np
import pytest

from focusflow.konomi import KonomiSystem, PostgresStore, SQLiteStore, open_store


def _round_trip(make_store):
    store = make_store()
    K = KonomiSystem(store=store, default_dims=(50, 50, 50))
    t = K.create_template((20, 20, 20), name="persisted")
    inst = K.instantiate(t.id)
    inst.array.activate_many(np.array([[1, 1, 1], [2, 2, 2]]), [0.5, 0.25])
    K._save_slots(inst, np.arange(inst.array.size))
    K.set_block(3, 4, 5, 7.5)
    K.llm_at(3, 4, 5).kappa = 0.9
    K.process_text(3, 4, 5, "remember me")
    K.interlock("z", 7, "activate")
    cube = K.create_cube("cube-1")
    cube.connect("NEU", "SWD")
    cube.process_vertex_sync("NEU", "stored")
    K.save_cube(cube)
    kappa = K.llm_at(3, 4, 5).kappa
    store.close()

    again = KonomiSystem(store=make_store(), default_dims=(50, 50, 50))
    assert again.template(t.id).dims == (20, 20, 20)
    arr = again.instance(inst.id).array
    assert arr.get(1, 1, 1) == 0.5 and arr.get(2, 2, 2) == 0.25
    main = again.instance().array
    assert main.get(3, 4, 5) == 7.5 and main.verify(3, 4, 5)
    assert abs(again.llm_at(3, 4, 5).kappa - kappa) < 1e-6
    assert main.size == 1 + 50 * 50
    c2 = again.cube("cube-1")
    assert c2.to_state() == cube.to_state()
    again.store.close()


def test_sqlite_round_trip(tmp_path):
    _round_trip(lambda: SQLiteStore(tmp_path / "k.sqlite3"))
    assert isinstance(open_store(str(tmp_path / "x.db")), SQLiteStore)


def test_postgres_round_trip(pg_url):
    _round_trip(lambda: PostgresStore(pg_url))
    s = open_store(pg_url)
    assert isinstance(s, PostgresStore)
    s.close()


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_tampering_in_the_database_is_detected_after_reload(kind, tmp_path, request):
    url = str(tmp_path / "t.sqlite3") if kind == "sqlite" else request.getfixturevalue("pg_url")
    store = open_store(url)
    K = KonomiSystem(store=store, default_dims=(10, 10, 10))
    K.set_block(1, 1, 1, 2.0)
    store._execute("UPDATE konomi_blocks SET value = 3.0")
    store.close()
    again = KonomiSystem(store=open_store(url), default_dims=(10, 10, 10))
    assert again.get_block(1, 1, 1) == 3.0
    assert not again.instance().array.verify(1, 1, 1)
    again.store.close()


def test_cube_reloads_when_another_process_saved_it(pg_url):
    a = KonomiSystem(store=PostgresStore(pg_url), default_dims=(10, 10, 10))
    b = KonomiSystem(store=PostgresStore(pg_url), default_dims=(10, 10, 10))
    ca = a.create_cube("shared")
    assert b.cube("shared").to_state() == ca.to_state()
    ca.connect("NEU", "SWD")
    a.save_cube(ca)
    assert "SWD" in b.cube("shared").edges["NEU"]
    a.store.close()
    b.store.close()


def test_events_carry_block_changes_to_another_system(tmp_path):
    """What one server process writes reaches another's in-memory grid through the events."""
    url = str(tmp_path / "shared.sqlite3")
    events: list[dict] = []
    a = KonomiSystem(store=open_store(url), default_dims=(10, 10, 10), on_event=events.append)
    b = KonomiSystem(store=open_store(url), default_dims=(10, 10, 10))
    t = a.create_template((6, 6, 6), name="remote")
    inst = a.instantiate(t.id)
    a.set_block(1, 2, 3, 4.5)
    a.set_block(1, 1, 1, 2.0, inst.id)
    a.process_text(1, 1, 1, "hello", inst.id)
    a.interlock("z", 5, "activate")  # 100 blocks: too many for one event, b reloads
    for e in events:
        b.apply_event(e)
    assert b.template(t.id).dims == (6, 6, 6)
    assert b.get_block(1, 2, 3) == 4.5 and b.instance().array.verify(1, 2, 3)
    arr = b.instance(inst.id).array
    assert arr.get(1, 1, 1) == 2.0 and b.llm_at(1, 1, 1, inst.id).calls == 1
    assert b.instance().array.size == 1 + 100
    a.store.close()
    b.store.close()


def test_merge_keeps_recorded_hashes():
    from focusflow.konomi import BlockArray

    src = BlockArray((10, 10, 10))
    src.set(1, 1, 1, 2.0)
    dst = BlockArray((10, 10, 10))
    dst.merge(src.keys(), [9.0], src.timestamps(), src.hashes(), src.kappas(), src.calls())
    assert dst.get(1, 1, 1) == 9.0 and not dst.verify(1, 1, 1)
