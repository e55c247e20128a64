"""KonomiSystem: templates/instances, LLM at a coordinate, face operations, PackML, seed tests."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from focusflow.konomi import (
    InvalidOperationError,
    KonomiSystem,
    PackML,
    State,
    UnknownInstanceError,
    UnknownTemplateError,
)
from focusflow.konomi import packml as pm
from focusflow.konomi.system import CellLLM


def test_seed_integration_test():
    K = KonomiSystem()
    BA = K.create_block_array("main", (10, 10, 10))
    C = K.create_cube("c1")
    BA.activate(0, 0, 0, 1.0)
    result = asyncio.run(C.collective_think("test"))
    assert result["score"] > 0
    assert result["consensus"]


def test_seed_quick_start():
    K = KonomiSystem()
    BA = K.create_block_array("main", (10, 10, 10))
    BA.set(0, 0, 0, 1.0)
    C = K.create_cube("c1")
    C.connect("NEU", "SWD")
    a, b = np.random.randn(4, 4), np.random.randn(4, 4)
    assert np.allclose(K.evgpu.tensor(a, b, "@"), a @ b)
    txt = asyncio.run(C.process_vertex("NEU", "Hello Konomi"))
    assert txt
    K.close()


def test_templates_instances_and_errors():
    K = KonomiSystem(default_dims=(8, 8, 8))
    t = K.create_template((4, 4, 4), name="small")
    i = K.instantiate(t.id)
    assert i.array.dim == (4, 4, 4)
    with pytest.raises(UnknownTemplateError):
        K.instantiate("nope")
    with pytest.raises(UnknownInstanceError):
        K.get_block(0, 0, 0, "nope")
    with pytest.raises(InvalidOperationError):
        K.create_template((0, 4, 4))


def test_llm_at_shares_weights_and_keeps_state_in_the_array():
    K = KonomiSystem(default_dims=(10, 10, 10))
    K.set_block(1, 2, 3, 0.5)
    llm = K.llm_at(1, 2, 3)
    assert isinstance(llm, CellLLM)
    assert llm.model is K.model
    llm.kappa = 1.0
    out, kappa = K.process_text(1, 2, 3, "hello grid")
    assert out and abs(kappa - (0.6 + 0.4 * 0.99)) < 1e-6
    assert K.llm_at(1, 2, 3).calls == 1
    fresh = K.llm_at(9, 9, 9)
    assert fresh.kappa == 0.6 and not K.instance().array.is_active(9, 9, 9)


def test_interlock_over_a_whole_1000_by_1000_plane():
    K = KonomiSystem()
    res = K.interlock("z", 500, "activate")
    assert res["processed"] == 1_000_000 and res["state"] == "Complete"
    arr = K.instance().array
    assert arr.size == 1_000_000 and arr.is_active(999, 0, 500)
    assert arr.verify(123, 456, 500)
    arr._kappa[: arr.size] = 1.0
    res = K.interlock("z", 500, "process")
    assert res["processed"] == 1_000_000
    assert abs(res["avg_κ"] - (1.0 + (0.6 - 1.0) * 0.01)) < 1e-5
    assert int(arr.calls().max()) == 1
    assert K.machine.history[-4:] == [
        State.STARTING,
        State.EXECUTE,
        State.COMPLETING,
        State.COMPLETE,
    ]


def test_interlock_sync_averages_face_neighbours():
    K = KonomiSystem(default_dims=(5, 5, 5))
    K.interlock("x", 2, "activate")
    a = K.instance().array
    a._kappa[a.slot(2, 2, 2)] = 1.0
    K.interlock("x", 2, "sync")
    # the centre's four in-plane neighbours are active (κ 0.6): mean of 1.0 and 4×0.6
    assert abs(a._kappa[a.slot(2, 2, 2)] - (1.0 + 4 * 0.6) / 5) < 1e-6
    assert K.process_block(2, 2, 2, "process")["processed"] == 1
    with pytest.raises(InvalidOperationError):
        K.interlock("w", 0, "activate")
    with pytest.raises(InvalidOperationError):
        K.interlock("x", 0, "explode")


def test_packml_states_stop_and_abort():
    m = PackML()
    assert pm.run(m, range(3), lambda c: c * 2, 3) == [0, 2, 4]
    assert m.state is State.COMPLETE and m.progress == 1.0
    with pytest.raises(InvalidOperationError):
        m.command("start")
    m.command("reset")
    started = threading.Event()
    release = threading.Event()

    def slow(c):
        started.set()
        release.wait(5)
        return c

    out: list = []
    t = threading.Thread(target=lambda: out.extend(pm.run(m, range(100), slow, 100)))
    t.start()
    started.wait(5)
    m.command("stop")
    assert m.state is State.STOPPING
    release.set()
    t.join(5)
    assert m.state is State.STOPPED and len(out) < 100
    m.command("reset")

    def boom(c):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        pm.run(m, range(3), boom)
    assert m.state is State.ABORTED and "disk full" in m.error
    assert State.ABORTING in m.history
    m.command("reset")
    assert m.state is State.IDLE
