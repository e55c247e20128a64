"""KonomiSystem: templates, instances, cubes and the operations the APIs expose.

A *template* fixes a grid's dimensions and its FemtoLLM weights (every cell of
every instance of a template shares one :class:`FemtoModel`). An *instance* is a
:class:`BlockArray` of that shape. The system starts with template ``default``
(1000³) and its instance ``main``; REST calls without an instance id use it.

The LLM "at" a coordinate is a :class:`CellLLM`: a view whose κ and call count
live in the block array's per-slot arrays (8 bytes per cell), so a million
active cells do not mean a million models. Face operations ("interlock") work
on a whole plane of the grid at once with array operations, in chunks driven
by the PackML machine so that they can be stopped and report progress.

When a store is given, every change is written through to it and announced as
an event; :meth:`KonomiSystem.apply_event` applies the events of other server
processes (through Redis) to this one's grid, and cubes are reloaded when
another process saved a newer version.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, TypedDict

import numpy as np

from focusflow.konomi import morton, packml
from focusflow.konomi.block_array import KAPPA_STAR, BlockArray, BlockRecord, neighbour_offsets
from focusflow.konomi.cube import Cube, EventSink
from focusflow.konomi.errors import (
    DimensionsTooLargeError,
    InvalidOperationError,
    KonomiError,
    StoreError,
    UnknownCubeError,
    UnknownInstanceError,
    UnknownTemplateError,
)
from focusflow.konomi.events import Event
from focusflow.konomi.evgpu import EVGPU
from focusflow.konomi.femtollm import Agent, FemtoLLM, FemtoModel, default_model, seed_of
from focusflow.konomi.ledger import Entry, Ledger, decode_entry
from focusflow.konomi.store import Store
from focusflow.konomi.votes import vertex_keys

DEFAULT_TEMPLATE = "default"
DEFAULT_INSTANCE = "main"
OPERATIONS = ("activate", "process", "sync")
CHUNK = 100_000
EVENT_ROWS = 64
#: Tries of one decision when other processes append to the same cube's ledger.
LEDGER_ATTEMPTS = 4
#: Caps on a template's dimensions. A face operation materialises one plane's
#: coordinates (24 bytes a cell) and may activate all of it (about 60 bytes a
#: block), so the largest face bounds one request's memory: 2^21 cells, about
#: 50 MB of coordinates (the default 1000 x 1000 face is 10^6). Per axis and in
#: all the grid is bounded too, so that no count overflows and a grid stays a
#: grid of a size someone meant.
MAX_AXIS = 4096
MAX_FACE_CELLS = 1 << 21
MAX_CELLS = 1 << 32


def check_operation(operation: str) -> None:
    """``invalid_operation`` unless ``operation`` is a face operation."""
    if operation not in OPERATIONS:
        raise InvalidOperationError(f"unknown operation {operation!r}; use {', '.join(OPERATIONS)}")


def check_dims(dims: tuple[int, ...]) -> tuple[int, int, int]:
    """``dims`` as three ints within the caps; DimensionsTooLargeError otherwise.

    Sizes below 1 or not three of them stay the block array's errors
    (``coordinate_out_of_range``); this only refuses grids that are too large.
    """
    d = tuple(int(v) for v in dims)
    if len(d) == 3 and min(d) >= 1:
        a, b, c = sorted(d)
        if c > MAX_AXIS or b * c > MAX_FACE_CELLS or a * b * c > MAX_CELLS:
            raise DimensionsTooLargeError(
                f"dimensions {d} exceed the caps: each axis <= {MAX_AXIS}, each face "
                f"<= {MAX_FACE_CELLS} cells, the grid <= {MAX_CELLS} cells"
            )
    return BlockArray(d, capacity=1).dim


class BlockProcessed(TypedDict):
    """What :meth:`KonomiSystem.process_block` did to one block."""

    coordinate: tuple[int, int, int]
    κ: float
    processed: int


class FaceOperation(TypedDict):
    """What :meth:`KonomiSystem.interlock` did to a plane (``avg_κ`` None when
    no block was processed)."""

    plane: str
    index: int
    operation: str
    processed: int
    avg_κ: float | None
    state: str
    seconds: float


@dataclass
class Template:
    """Dimensions and shared weights of a family of block arrays."""

    id: str
    name: str
    dims: tuple[int, int, int]
    model: FemtoModel = field(repr=False)
    created: float = field(default_factory=time.time)


@dataclass
class Instance:
    """One block array made from a template."""

    id: str
    template_id: str
    array: BlockArray = field(repr=False)
    created: float = field(default_factory=time.time)


class CellLLM(Agent):
    """The FemtoLLM at a block: shared weights, κ and call count in the array's slot."""

    def __init__(self, array: BlockArray, coord: tuple[int, int, int], model: FemtoModel) -> None:
        self.array = array
        self.coord = coord
        self.model = model
        self.rng = np.random.default_rng(seed_of(f"cell/{coord}"))

    def _slot(self) -> int:
        i = self.array.slot(*self.coord)
        if i is None:
            raise InvalidOperationError(f"block {self.coord} is no longer active")
        return i

    @property
    def kappa(self) -> float:
        """κ of this cell."""
        return float(self.array._kappa[self._slot()])

    @kappa.setter
    def kappa(self, value: float) -> None:
        self.array._kappa[self._slot()] = value

    κ = kappa

    @property
    def calls(self) -> int:
        """Calls processed by this cell."""
        return int(self.array._calls[self._slot()])

    @property
    def connections(self) -> list[tuple[int, int, int]]:
        """Custom connections of the block."""
        return self.array.block(*self.coord)["connections"]

    def step_kappa(self) -> float:
        """One call's κ drift (1% toward 0.6), stored in the array."""
        i = self._slot()
        k = float(self.array._kappa[i])
        k += (KAPPA_STAR - k) * 0.01
        self.array._kappa[i] = k
        self.array._calls[i] += 1
        return k


class KonomiSystem:
    """The grid: templates, instances, cubes, the eVGPU and the PackML machine."""

    def __init__(
        self,
        store: Store | None = None,
        model: FemtoModel | None = None,
        evgpu: EVGPU | None = None,
        default_dims: tuple[int, int, int] = (1000, 1000, 1000),
        on_event: EventSink | None = None,
    ) -> None:
        self.model = model or default_model()
        self._evgpu = evgpu
        self.store = store
        self.on_event = on_event
        self.templates: dict[str, Template] = {}
        self.instances: dict[str, Instance] = {}
        self.cubes: dict[str, Cube] = {}
        self._cube_versions: dict[str, int] = {}
        #: Cube secrets of a system without a store (a store keeps its own).
        self._secrets: dict[str, bytes] = {}
        self.machine = packml.PackML()
        self._lock = threading.RLock()
        if store is not None:
            self._load()
        if DEFAULT_TEMPLATE not in self.templates:
            self.create_template(default_dims, name=DEFAULT_TEMPLATE, template_id=DEFAULT_TEMPLATE)
        if DEFAULT_INSTANCE not in self.instances:
            self.instantiate(DEFAULT_TEMPLATE, instance_id=DEFAULT_INSTANCE)

    @property
    def evgpu(self) -> EVGPU:
        """The CPU tensor engine (created on first use)."""
        if self._evgpu is None:
            self._evgpu = EVGPU()
        return self._evgpu

    # -- loading and saving ------------------------------------------------------------

    def _load(self) -> None:
        assert self.store is not None
        for tid, name, dims, created in self.store.templates():
            self.templates[tid] = Template(tid, name, dims, self.model, created)
        for iid, tid, created in self.store.instances():
            if tid not in self.templates:
                continue
            arr = BlockArray(self.templates[tid].dims)
            b = self.store.load_blocks(iid)
            arr.restore(
                b["keys"], b["values"], b["timestamps"], b["hashes"], b["kappas"], b["calls"]
            )
            self.instances[iid] = Instance(iid, tid, arr, created)

    def _save_slots(self, instance: Instance, slots: np.ndarray) -> None:
        """Write blocks through to the store and tell the other server processes: small
        batches travel in the event, large ones make the others reload the instance."""
        if self.store is None or len(slots) == 0:
            return
        a = instance.array
        s = np.unique(np.asarray(slots, np.int64))
        cols = (a._keys[s], a._values[s], a._times[s], a._hashes[s], a._kappa[s], a._calls[s])
        self.store.save_blocks(instance.id, *cols)
        event: Event = {"event": "blocks", "instance_id": instance.id}
        if len(s) <= EVENT_ROWS:
            event["rows"] = [list(r) for r in zip(*(c.tolist() for c in cols), strict=True)]
        else:
            event["reload"] = True
        self._emit(event)

    def apply_event(self, event: Event) -> None:
        """Apply another process's change (templates, instances, blocks) to this one."""
        kind = event.get("event")
        with self._lock:
            if kind == "template" and event["id"] not in self.templates:
                dims = check_dims(tuple(event["dims"]))
                self.templates[event["id"]] = Template(
                    event["id"],
                    event["name"],
                    dims,
                    self.model,
                    event["created"],
                )
            elif kind == "instance" and event["template_id"] in self.templates:
                if event["id"] not in self.instances:
                    dims = self.templates[event["template_id"]].dims
                    self.instances[event["id"]] = Instance(
                        event["id"], event["template_id"], BlockArray(dims), event["created"]
                    )
            elif kind == "blocks" and event["instance_id"] in self.instances:
                arr = self.instances[event["instance_id"]].array
                if "rows" in event:
                    cols = list(zip(*event["rows"], strict=True))
                    types = (np.uint64, np.float64, np.float64, np.uint64, np.float32, np.uint32)
                    arr.merge(*(np.asarray(c, dtype=t) for c, t in zip(cols, types, strict=True)))
                elif self.store is not None:
                    b = self.store.load_blocks(event["instance_id"])
                    arr.restore(
                        b["keys"],
                        b["values"],
                        b["timestamps"],
                        b["hashes"],
                        b["kappas"],
                        b["calls"],
                    )

    def _emit(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    # -- templates and instances -------------------------------------------------------

    def create_template(
        self,
        dims: tuple[int, int, int] = (1000, 1000, 1000),
        name: str = "template",
        template_id: str | None = None,
    ) -> Template:
        """A new template of the given dimensions (validated against the caps)."""
        dims = check_dims(dims)
        tid = template_id or f"t-{uuid.uuid4().hex[:12]}"
        t = Template(tid, name, dims, self.model)
        with self._lock:
            self.templates[tid] = t
        if self.store is not None:
            self.store.save_template(tid, name, dims, t.created)
        self._emit(
            {"event": "template", "id": tid, "name": name, "dims": dims, "created": t.created}
        )
        return t

    def template(self, template_id: str) -> Template:
        """A template by id."""
        try:
            return self.templates[template_id]
        except KeyError:
            raise UnknownTemplateError(f"unknown template {template_id!r}") from None

    def instantiate(self, template_id: str, instance_id: str | None = None) -> Instance:
        """A new, empty block array of a template's shape."""
        t = self.template(template_id)
        iid = instance_id or f"i-{uuid.uuid4().hex[:12]}"
        inst = Instance(iid, t.id, BlockArray(t.dims))
        with self._lock:
            self.instances[iid] = inst
        if self.store is not None:
            self.store.save_instance(iid, t.id, inst.created)
        self._emit({"event": "instance", "id": iid, "template_id": t.id, "created": inst.created})
        return inst

    def instance(self, instance_id: str | None = None) -> Instance:
        """An instance by id (the default instance for None)."""
        iid = instance_id or DEFAULT_INSTANCE
        try:
            return self.instances[iid]
        except KeyError:
            raise UnknownInstanceError(f"unknown instance {iid!r}") from None

    def create_block_array(self, name: str, dims: tuple[int, int, int]) -> BlockArray:
        """The seed's helper: a template plus one instance, returning the instance's array."""
        t = self.create_template(dims, name=name)
        return self.instantiate(t.id).array

    # -- blocks ------------------------------------------------------------------------

    def get_block(self, x: int, y: int, z: int, instance_id: str | None = None) -> float:
        """A block's value (0.0 when inactive)."""
        return self.instance(instance_id).array.get(x, y, z)

    def set_block(
        self, x: int, y: int, z: int, v: float, instance_id: str | None = None
    ) -> BlockRecord:
        """Set (and activate) a block; returns its record."""
        inst = self.instance(instance_id)
        with self._lock:
            slot = inst.array.set(x, y, z, v)
            self._save_slots(inst, np.array([slot]))
        return inst.array.block(x, y, z)

    def value_info(self, x: int, y: int, z: int, instance_id: str | None = None) -> dict[str, Any]:
        """What ``GET /value`` answers: a block's value, hash, and its LLM's state."""
        inst = self.instance(instance_id)
        value = self.get_block(x, y, z, instance_id)
        llm = self.llm_at(x, y, z, instance_id)
        active = inst.array.is_active(x, y, z)
        return {
            "coordinate": [x, y, z],
            "value": value,
            "active": active,
            "hash": inst.array.stored_hash(x, y, z) if active else None,
            "llm": {"κ": llm.kappa, "connections": len(llm.connections)},
        }

    def _active_array(self, x: int, y: int, z: int, instance_id: str | None) -> BlockArray:
        arr = self.instance(instance_id).array
        arr._check(x, y, z)
        if not arr.is_active(x, y, z):
            raise KonomiError(f"block ({x}, {y}, {z}) is not active")
        return arr

    def attest_block(
        self,
        x: int,
        y: int,
        z: int,
        instance_id: str | None = None,
        adjacency: int = 6,
        neighbours: list[tuple[int, int, int]] | None = None,
    ) -> int:
        """Active neighbours attest a block's hash (``neighbours``: see BlockArray.attest)."""
        arr = self._active_array(x, y, z, instance_id)
        return arr.attest(x, y, z, adjacency, neighbours)

    def consensus_block(
        self,
        x: int,
        y: int,
        z: int,
        instance_id: str | None = None,
        adjacency: int = 6,
        neighbours: list[tuple[int, int, int]] | None = None,
    ) -> dict[str, Any]:
        """What ``GET /block/consensus`` answers for a block."""
        a = self._active_array(x, y, z, instance_id).consensus(x, y, z, adjacency, neighbours)
        return {
            "coordinate": list(a.coordinate),
            "hash": a.hash,
            "valid": a.valid,
            "attesting": a.attesting,
            "neighbours": a.neighbours,
            "accepted": a.accepted,
        }

    def llm_at(self, x: int, y: int, z: int, instance_id: str | None = None) -> CellLLM | FemtoLLM:
        """The agent at a coordinate: a :class:`CellLLM` for an active block, else a fresh
        agent at κ = 0.6 that remembers nothing (as the seed's ``llms.get(..., FemtoLLM())``)."""
        inst = self.instance(instance_id)
        model = self.templates[inst.template_id].model
        if inst.array.is_active(x, y, z):
            return CellLLM(inst.array, (x, y, z), model)
        inst.array._check(x, y, z)
        return FemtoLLM(model, name=f"{inst.id}/{x},{y},{z}")

    def process_text(
        self, x: int, y: int, z: int, text: str, instance_id: str | None = None
    ) -> tuple[str, float]:
        """Run the agent at a coordinate on ``text``; returns (output, κ after the call)."""
        inst = self.instance(instance_id)
        llm = self.llm_at(x, y, z, instance_id)
        with self._lock:
            out = llm.process(text)
            if isinstance(llm, CellLLM):
                self._save_slots(inst, np.array([inst.array.slot(x, y, z)]))
        return out, llm.kappa

    def process_block(
        self, x: int, y: int, z: int, operation: str, instance_id: str | None = None
    ) -> BlockProcessed:
        """One block's share of a face operation (see :meth:`interlock`)."""
        inst = self.instance(instance_id)
        res = self._face_chunk(inst, np.array([[x, y, z]]), operation)
        return {"coordinate": (x, y, z), "κ": res[1] / max(res[0], 1), "processed": res[0]}

    def _face_chunk(self, inst: Instance, coords: np.ndarray, operation: str) -> tuple[int, float]:
        """Apply an operation to a chunk of coordinates; returns (processed, Σκ)."""
        a = inst.array
        with self._lock:
            if operation == "activate":
                slots = a.slots_of(coords)
                new = coords[slots < 0]
                if len(new):
                    a.activate_many(new, 1.0)
                slots = a.slots_of(coords)
            else:
                slots = a.slots_of(coords)
                slots = slots[slots >= 0]
                if operation == "process":
                    k = a._kappa[slots]
                    a._kappa[slots] = k + (KAPPA_STAR - k) * np.float32(0.01)
                    a._calls[slots] += 1
                elif operation == "sync":
                    self._sync(a, slots)
                else:
                    raise InvalidOperationError(
                        f"unknown operation {operation!r}; use {', '.join(OPERATIONS)}"
                    )
            self._save_slots(inst, slots)
            return len(slots), float(a._kappa[slots].astype(np.float64).sum())

    @staticmethod
    def _sync(a: BlockArray, slots: np.ndarray) -> None:
        """κ of each block becomes the mean κ of itself and its active face neighbours."""
        if len(slots) == 0:
            return
        x, y, z = morton.decode(a._keys[slots])
        c = np.stack([x, y, z], axis=1)
        total = a._kappa[slots].astype(np.float64)
        count = np.ones(len(slots))
        dims = np.asarray(a.dim)
        for off in neighbour_offsets(6):
            n = c + off
            ok = ((n >= 0) & (n < dims)).all(axis=1)
            ns = np.full(len(c), -1, np.int64)
            ns[ok] = a.lookup(morton.encode(n[ok, 0], n[ok, 1], n[ok, 2]))
            hit = ns >= 0
            total[hit] += a._kappa[ns[hit]]
            count[hit] += 1
        a._kappa[slots] = (total / count).astype(np.float32)

    def interlock(
        self, plane: str, index: int, operation: str, instance_id: str | None = None
    ) -> FaceOperation:
        """A face operation over every block of a plane (1000×1000 = 10^6 for the default
        grid): ``activate`` activates the plane, ``process`` steps the κ of its active
        blocks, ``sync`` averages each active block's κ with its active face neighbours."""
        check_operation(operation)
        inst = self.instance(instance_id)
        check_dims(inst.array.dim)  # a grid stored before the caps existed
        coords = inst.array.plane(plane, index)
        chunks = [coords[i : i + CHUNK] for i in range(0, len(coords), CHUNK)]
        return self._face_run(
            plane, index, operation, chunks, lambda c: self._face_chunk(inst, c, operation)
        )

    def _face_run(
        self,
        plane: str,
        index: int,
        operation: str,
        parts: Sequence[Any],
        run_part: Callable[[Any], tuple[int, float]],
    ) -> FaceOperation:
        """Run a face operation's parts through the PackML machine (reset first
        when a previous run ended) and announce the sums as an interlock event;
        ``run_part`` gives a part's processed count and κ sum."""
        if self.machine.state in (
            packml.State.COMPLETE,
            packml.State.STOPPED,
            packml.State.ABORTED,
        ):
            self.machine.command("reset")
        t0 = time.perf_counter()
        results = packml.run(self.machine, list(parts), run_part, len(parts))
        processed = sum(r[0] for r in results)
        kappa_sum = sum(r[1] for r in results)
        out: FaceOperation = {
            "plane": plane,
            "index": index,
            "operation": operation,
            "processed": processed,
            "avg_κ": kappa_sum / processed if processed else None,
            "state": self.machine.state.value,
            "seconds": time.perf_counter() - t0,
        }
        self._emit({"event": "interlock", **out})
        return out

    # -- cubes -------------------------------------------------------------------------

    def _cube_event(self, event: Event) -> None:
        self._emit(event)

    def create_cube(
        self,
        cube_id: str | None = None,
        template_id: str | None = None,
        position: tuple[int, int, int] = (0, 0, 0),
    ) -> Cube:
        """A new cube whose nine agents share the template's weights."""
        t = self.template(template_id or DEFAULT_TEMPLATE)
        cid = cube_id or f"c-{uuid.uuid4().hex[:12]}"
        cube = Cube(cid, position, t.model, on_event=self._cube_event)
        self._attach_ledger(cube)
        with self._lock:
            self.cubes[cid] = cube
        self.save_cube(cube)
        return cube

    def _attach_ledger(self, cube: Cube, known: Ledger | None = None) -> None:
        """Give a cube its validator keys and ledger: the secret from the store (made
        and stored on first use; never sent anywhere), the entries stored so far.
        ``known`` is this process's copy from before a reload: only the entries
        stored after it are read, so a reload costs the new entries, not the ledger."""
        fresh = os.urandom(32)
        if self.store is None:
            secret = self._secrets.setdefault(cube.id, fresh)
            cube.ledger = Ledger(cube.id, vertex_keys(secret, cube.id))
            return
        if known is not None:
            newer = self.store.ledger_entries(cube.id, known.next_height)
            added = [decode_entry(d, known.next_height + i) for i, d in enumerate(newer)]
            if all(e.prev == p.hash for p, e in pairwise([known.entries[-1], *added])):
                known.entries.extend(added)
                cube.ledger = known
                return
        secret = self.store.cube_secret(cube.id, fresh)
        stored = self.store.ledger_entries(cube.id)
        entries = [decode_entry(data, i) for i, data in enumerate(stored)]
        cube.ledger = Ledger(cube.id, vertex_keys(secret, cube.id), entries)
        if not stored:
            with contextlib.suppress(StoreError):  # another process stored its genesis
                self.store.append_ledger(cube.id, 0, cube.ledger.entries[0].data)
            if self.store.ledger_entries(cube.id, 0, 1) != [cube.ledger.entries[0].data]:
                raise StoreError(f"cube {cube.id!r}: the stored genesis is not its keys'")

    def decide(self, cube_id: str, payload: bytes, peers: Sequence[str] = ()) -> Entry:
        """The cube votes on ``payload`` and appends the decision to its ledger, written
        through to the store; ``peers`` are the connected cubes whose heads it
        cross-references.

        Processes sharing a store share each cube's ledger: a process whose copy is
        behind the store's reloads it before the vote, and one that lost the race
        for a height to another process drops its entry, reloads and votes again
        at the next height (StoreError after ``LEDGER_ATTEMPTS``)."""
        for attempt in range(LEDGER_ATTEMPTS):
            cube = self.cube(cube_id)
            ledger = cube.ledger
            assert ledger is not None
            if self.store is not None and self.store.ledger_height(cube_id) != ledger.next_height:
                self._cube_versions[cube_id] = 0
                continue
            with self._lock:
                entry = cube.decide(payload, [self.cube(p) for p in peers])
                if self.store is None:
                    return entry
                try:
                    self.store.append_ledger(cube_id, entry.height, entry.data)
                    return entry
                except StoreError:
                    ledger.entries.pop()
                    self._cube_versions[cube_id] = 0
                    if attempt == LEDGER_ATTEMPTS - 1:
                        raise
        raise StoreError(f"cube {cube_id!r}: its ledger kept changing in the store")

    def ledger_entries(self, cube_id: str, start: int = 0, limit: int = 100) -> list[Entry]:
        """A page of a cube's ledger (the store's when there is one)."""
        ledger = self.cube(cube_id).ledger
        assert ledger is not None
        if self.store is not None and self.store.ledger_height(cube_id) > ledger.next_height:
            self._cube_versions[cube_id] = 0
            ledger = self.cube(cube_id).ledger
            assert ledger is not None
        return ledger.entries[start : start + limit]

    def cube(self, cube_id: str) -> Cube:
        """A cube by id, reloaded from the store when another process saved a newer one."""
        cube = self.cubes.get(cube_id)
        if self.store is not None:
            version = self.store.cube_version(cube_id)
            if version is not None and (
                cube is None or version > self._cube_versions.get(cube_id, 0)
            ):
                loaded = self.store.load_cube(cube_id)
                if loaded is not None:
                    state, version = loaded
                    fresh = Cube.from_state(state, self.model)
                    fresh.on_event = self._cube_event
                    self._attach_ledger(fresh, cube.ledger if cube is not None else None)
                    with self._lock:
                        self.cubes[cube_id] = fresh
                        self._cube_versions[cube_id] = version
                    return fresh
        if cube is None:
            raise UnknownCubeError(f"unknown cube {cube_id!r}")
        return cube

    def save_cube(self, cube: Cube) -> None:
        """Write a cube's state through to the store (no-op without one)."""
        if self.store is not None:
            self._cube_versions[cube.id] = self.store.save_cube(cube.to_state())

    def forget_unsaved(self, cube_id: str) -> None:
        """Drop this process's copy of a cube whose save failed: its next use loads
        the stored state, so a change the store refused is not served on from
        memory (the reply said ``store_error``: nothing changed)."""
        if self.store is not None:
            self._cube_versions[cube_id] = 0

    def close(self) -> None:
        """Release the eVGPU threads and the store."""
        if self._evgpu is not None:
            self._evgpu.close()
        if self.store is not None:
            self.store.close()
