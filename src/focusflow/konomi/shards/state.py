"""One shard: the blocks it owns, their persisted copy, and the operations on them.

A shard is a :class:`KonomiSystem` restricted to the blocks it owns: the block
and face operations are that class's own code (so a shard computes exactly what
one process would for the same block), its store is the shard's slice, and an
instance's blocks are loaded lazily, the owned rows only, the first time a
request names the instance (after a restart, too). Every write reaches the
store before the method returns, so a reply is an acknowledgement of a durable
write.

The class knows nothing of Ray: the actor (:mod:`.actor`) and the in-process
backend (:class:`.coordinator.LocalShards`) both call it.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

import numpy as np

from focusflow.konomi.block_array import BlockArray
from focusflow.konomi.errors import InvalidOperationError, ShardNotOwnerError
from focusflow.konomi.events import CHANNEL, Event
from focusflow.konomi.extras import import_extra
from focusflow.konomi.shards.routing import (
    check_batch,
    check_shards,
    owner_of,
    owners,
    owners_of_keys,
)
from focusflow.konomi.store import open_store
from focusflow.konomi.system import (
    CHUNK,
    Instance,
    KonomiSystem,
    Template,
    check_dims,
)

Dims = tuple[int, int, int]
#: Faces whose owned cells a shard keeps (positions and coordinates: 28 bytes a
#: cell it owns, about 3.5 MB for an eighth of a 10^6-cell face).
PLANES_KEPT = 4


def store_url_of(template: str | None, index: int) -> str | None:
    """The store of shard ``index``: ``{shard}`` in ``template`` replaced by the index
    (one SQLite file per shard), or the template itself (one PostgreSQL database
    that every shard writes its own rows to)."""
    if template is None:
        return None
    return template.replace("{shard}", str(index))


def shard_stores(db: str) -> str:
    """The shards' store template for a server's ``--db``: the same PostgreSQL
    database (each shard writes only the rows it owns), or a SQLite file per
    shard beside the server's (``konomi.sqlite3`` -> ``konomi.shard3.sqlite3``)."""
    if db.startswith(("postgresql://", "postgres://")):
        return db
    path = db.removeprefix("sqlite:///").removeprefix("sqlite://")
    stem, dot, ext = path.rpartition(".")
    if not dot or "/" in ext:
        return f"{path}.shard{{shard}}"
    return f"{stem}.shard{{shard}}.{ext}"


class ShardState:
    """The blocks shard ``index`` of ``count`` owns, with write-through persistence.

    ``store`` is the shard's store URL (None: memory only). ``redis`` is a
    ``redis://`` URL: the shard then publishes its block events on the Konomi
    channel itself; without it they are kept for the caller (:meth:`take_events`).
    """

    def __init__(
        self, index: int, count: int, store: str | None = None, redis: str | None = None
    ) -> None:
        self.count = check_shards(count)
        if not 0 <= index < self.count:
            raise InvalidOperationError(f"shard index {index} is outside [0, {self.count})")
        self.index = int(index)
        self.origin = f"shard-{self.index}-{uuid.uuid4().hex[:8]}"
        self.system = KonomiSystem(default_dims=(1, 1, 1))
        self.system.templates.clear()
        self.system.instances.clear()
        self.system.store = open_store(store) if store is not None else None
        self._events: list[Event] = []
        self._planes: dict[tuple[Dims, str, int], tuple[np.ndarray, np.ndarray]] = {}
        self._redis: Any = None
        if redis is not None:
            self._redis = import_extra("redis", "shard events on Redis").Redis.from_url(redis)
        self.system.on_event = self._event

    # -- events --------------------------------------------------------------------------

    def _event(self, event: Event) -> None:
        if self._redis is not None:
            full = {**event, "origin": self.origin, "ts": time.time()}
            self._redis.publish(CHANNEL, json.dumps(full))
        else:
            self._events.append(event)

    def take_events(self) -> list[Event]:
        """The events made since the last call (those not published on Redis)."""
        out, self._events = self._events, []
        return out

    # -- instances and ownership ---------------------------------------------------------

    def instance(self, instance_id: str, dims: Dims) -> Instance:
        """The shard's part of an instance, loaded from the store on first use."""
        inst = self.system.instances.get(instance_id)
        if inst is not None:
            if inst.array.dim != tuple(dims):
                raise InvalidOperationError(
                    f"instance {instance_id!r} has dimensions {inst.array.dim}, not {tuple(dims)}"
                )
            return inst
        shape = check_dims(tuple(dims))
        tid = f"shard/{shape}"
        if tid not in self.system.templates:
            self.system.templates[tid] = Template(tid, tid, shape, self.system.model)
        array = BlockArray(shape)
        store = self.system.store
        if store is not None:
            b = store.load_blocks(instance_id)
            mine = owners_of_keys(b["keys"], self.count) == self.index
            array.restore(*(b[k][mine] for k in _COLUMNS))
        inst = Instance(instance_id, tid, array)
        self.system.instances[instance_id] = inst
        return inst

    def open(self, instance_id: str, dims: Dims) -> int:
        """Load the shard's part of an instance now (else the first request does);
        returns its active blocks."""
        return self.instance(instance_id, dims).array.size

    def _own_one(self, inst: Instance, x: int, y: int, z: int) -> None:
        """:meth:`_own` for one coordinate (the single-block requests' fast path)."""
        inst.array._check(x, y, z)
        owner = owner_of(x, y, z, self.count)
        if owner != self.index:
            raise ShardNotOwnerError(
                f"shard {self.index} of {self.count} does not own block ({x}, {y}, {z})"
                f" (owner {owner})"
            )

    def _own(self, inst: Instance, coords: np.ndarray) -> np.ndarray:
        """``coords`` range-checked and all owned here; ShardNotOwnerError otherwise."""
        c = inst.array._check_many(check_batch(coords))
        bad = owners(c, self.count) != self.index
        if bad.any():
            first = tuple(int(v) for v in c[np.argmax(bad)])
            raise ShardNotOwnerError(
                f"shard {self.index} of {self.count} does not own {int(bad.sum())} of the"
                f" {len(c)} blocks sent, first {first} (owner"
                f" {int(owners(np.array([first]), self.count)[0])})"
            )
        return c

    # -- blocks --------------------------------------------------------------------------

    def set_many(self, instance_id: str, dims: Dims, coords: np.ndarray, values: np.ndarray) -> int:
        """Set (and activate) owned blocks; persisted in one batch before returning."""
        inst = self.instance(instance_id, dims)
        c = self._own(inst, coords)
        v = np.asarray(values, dtype=np.float64)
        if v.shape not in ((), (len(c),)):
            raise InvalidOperationError(f"{len(v)} values for {len(c)} coordinates")
        with self.system._lock:
            slots = inst.array.activate_many(c, v)
            self.system._save_slots(inst, slots)
        return len(c)

    def set(self, instance_id: str, dims: Dims, x: int, y: int, z: int, v: float) -> dict[str, Any]:
        """Set one owned block; its record (value, timestamp, connections, hash)."""
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        return dict(self.system.set_block(x, y, z, v, instance_id))

    def get_many(self, instance_id: str, dims: Dims, coords: np.ndarray) -> np.ndarray:
        """Values of owned blocks (0.0 where inactive)."""
        inst = self.instance(instance_id, dims)
        return inst.array.get_many(self._own(inst, coords))

    def get(self, instance_id: str, dims: Dims, x: int, y: int, z: int) -> tuple[float, int]:
        """One owned block's value, and the nanoseconds this shard spent on it."""
        t = time.perf_counter_ns()
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        value = inst.array.get(x, y, z)
        return value, time.perf_counter_ns() - t

    def value_info(self, instance_id: str, dims: Dims, x: int, y: int, z: int) -> dict[str, Any]:
        """What ``GET /value`` answers for an owned block."""
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        return self.system.value_info(x, y, z, instance_id)

    def process_text(
        self, instance_id: str, dims: Dims, x: int, y: int, z: int, text: str
    ) -> tuple[str, float]:
        """The FemtoLLM at an owned block on ``text``: (output, κ after)."""
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        return self.system.process_text(x, y, z, text, instance_id)

    def active(self, instance_id: str, dims: Dims, coords: np.ndarray) -> np.ndarray:
        """Whether each owned coordinate is an active block."""
        inst = self.instance(instance_id, dims)
        return inst.array.slots_of(self._own(inst, coords)) >= 0

    def attest(
        self, instance_id: str, dims: Dims, x: int, y: int, z: int, neighbours: np.ndarray
    ) -> int:
        """An owned block attested by ``neighbours`` (the active ones, found by the
        coordinator on their own shards)."""
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        return self.system.attest_block(x, y, z, instance_id, neighbours=_tuples(neighbours))

    def consensus(
        self, instance_id: str, dims: Dims, x: int, y: int, z: int, neighbours: np.ndarray
    ) -> dict[str, Any]:
        """Whether an owned block is accepted, among its active ``neighbours``."""
        inst = self.instance(instance_id, dims)
        self._own_one(inst, x, y, z)
        return self.system.consensus_block(x, y, z, instance_id, neighbours=_tuples(neighbours))

    # -- faces ---------------------------------------------------------------------------

    def face(
        self, instance_id: str, dims: Dims, plane: str, index: int, operation: str
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """``activate`` or ``process`` on the owned blocks of a plane, in chunks, each
        persisted before the next. Returns the plane positions of the blocks it
        processed, their κ after, and the seconds spent (for the gather to sum the
        κ in the one-process order)."""
        if operation not in ("activate", "process"):
            raise InvalidOperationError(
                f"a shard's face operation is activate or process, got {operation!r}"
            )
        t = time.perf_counter()
        inst = self.instance(instance_id, dims)
        pos, mine = self._plane_part(inst.array, plane, index)
        for i in range(0, len(mine), CHUNK):
            self.system._face_chunk(inst, mine[i : i + CHUNK], operation)
        slots = inst.array.slots_of(mine)
        hit = slots >= 0
        return pos[hit], inst.array.kappas()[slots[hit]].copy(), time.perf_counter() - t

    def _plane_part(
        self, array: BlockArray, plane: str, index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The plane positions and coordinates this shard owns, kept for the last few
        planes: hashing every cell of a 10^6-cell face to find the owned eighth
        costs a shard as much as processing that eighth."""
        key = (array.dim, plane, int(index))
        part = self._planes.get(key)
        if part is None:
            coords = array.plane(plane, index)
            pos = np.flatnonzero(owners(coords, self.count) == self.index).astype(np.int32)
            part = (pos, coords[pos])
            if len(self._planes) >= PLANES_KEPT:
                self._planes.pop(next(iter(self._planes)))
            self._planes[key] = part
        return part

    def kappas_of(self, instance_id: str, dims: Dims, coords: np.ndarray) -> np.ndarray:
        """κ of owned blocks, NaN where inactive (what a ``sync`` reads)."""
        inst = self.instance(instance_id, dims)
        slots = inst.array.slots_of(self._own(inst, coords))
        out = np.full(len(slots), np.nan, np.float32)
        hit = slots >= 0
        out[hit] = inst.array.kappas()[slots[hit]]
        return out

    def put_kappas(
        self, instance_id: str, dims: Dims, coords: np.ndarray, kappas: np.ndarray
    ) -> int:
        """Set κ of owned active blocks (what a ``sync`` writes), persisted."""
        inst = self.instance(instance_id, dims)
        slots = inst.array.slots_of(self._own(inst, coords))
        if (slots < 0).any():
            raise InvalidOperationError("a sync wrote κ of a block that is not active")
        with self.system._lock:
            inst.array._kappa[slots] = np.asarray(kappas, np.float32)
            self.system._save_slots(inst, slots)
        return len(slots)

    # -- reporting -----------------------------------------------------------------------

    def memory(self) -> dict[str, float]:
        """Resident memory of this process and the blocks it holds."""
        blocks = sum(i.array.size for i in self.system.instances.values())
        nbytes = sum(i.array.nbytes() for i in self.system.instances.values())
        return {
            "shard": self.index,
            "pid": os.getpid(),
            "rss": float(_rss()),
            "private": float(_private()),
            "blocks": float(blocks),
            "array_bytes": float(nbytes),
        }

    def pid(self) -> int:
        """The process id of the shard (tests kill it)."""
        return os.getpid()

    def close(self) -> None:
        """Release the store and the Redis connection."""
        self.system.close()
        if self._redis is not None:
            self._redis.close()


_COLUMNS = ("keys", "values", "timestamps", "hashes", "kappas", "calls")


def _rss() -> int:
    """Resident bytes of this process (Linux's /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _private() -> int:
    """Resident bytes of this process's own memory (Linux's ``RssAnon``): RSS without
    the shared libraries and shared memory it maps, which other processes share
    (Ray's compiled-graph channels load libraries the first graph call maps in).
    Falls back to the whole RSS where /proc has no such line."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _rss()


def _tuples(coords: np.ndarray) -> list[tuple[int, int, int]]:
    c = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
    return [(int(a), int(b), int(d)) for a, b, d in c.tolist()]
