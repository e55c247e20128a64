"""The coordinator: routes each request to the shard that owns its block, fans face
operations out to every shard and gathers their answers.

It runs in the API process and holds no block. A batch is split by owner with
numpy and sent as one call per shard, all calls in flight at once. A call lost
because its shard died (the actor is being restarted from its persisted state)
is sent again until a bounded deadline when the operation is idempotent
(reads, ``set``, ``activate``); a lost non-idempotent one (``process``, a κ step)
answers ``shard_unavailable`` at once, since it may or may not have been applied.
Past the deadline every call answers ``shard_unavailable``: a shard that is down
never hangs the API.

Face operations give exactly what one process gives: each shard returns the plane
positions and κ of the blocks it processed, and the coordinator sums κ in the
plane's order and chunks, as :meth:`KonomiSystem.interlock` does. ``sync`` reads
face neighbours that live on other shards, so the coordinator runs it chunk by
chunk: gather the κ of a chunk's blocks and of their neighbours, average them in
one process's order, and send each owner its new κ.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from focusflow.konomi import errors as konomi_errors
from focusflow.konomi.block_array import BlockArray, neighbour_offsets
from focusflow.konomi.errors import (
    CoordinateOutOfRangeError,
    InvalidOperationError,
    KonomiError,
    ShardUnavailableError,
)
from focusflow.konomi.events import Event
from focusflow.konomi.shards.routing import check_batch, check_shards, owner_of, owners, split
from focusflow.konomi.shards.state import ShardState, store_url_of
from focusflow.konomi.system import CHUNK, OPERATIONS, check_dims

Dims = tuple[int, int, int]
#: How long a call may wait for a shard that is down or restarting, in seconds.
RETRY_S = 30.0
#: The methods a shard serves (nothing else is called by name on it).
METHODS = frozenset(
    {
        "open",
        "set",
        "set_many",
        "get",
        "get_many",
        "value_info",
        "process_text",
        "active",
        "attest",
        "consensus",
        "face",
        "kappas_of",
        "put_kappas",
        "memory",
        "pid",
    }
)
#: Methods whose effect repeats identically when a lost call is sent again.
IDEMPOTENT = METHODS - {"process_text", "face"}


def idempotent(method: str, args: tuple[Any, ...]) -> bool:
    """Whether a lost call may be sent again: an ``activate`` face operation only
    activates what is not active yet, a ``process`` one steps κ again."""
    return method in IDEMPOTENT or (method == "face" and args[-1] == "activate")


class ShardLostError(Exception):
    """A call's shard died before answering (raised by a backend, handled here)."""


Reply = tuple[str, Any, Any, list[Event]]


def serve(state: ShardState, method: str, args: tuple[Any, ...]) -> Reply:
    """Run ``method`` on a shard: ``("ok", result, None, events)``, or
    ``("error", class name, message, events)`` for a grid error (the coordinator
    raises the same class, so a shard's error reaches the client with its code)."""
    if method not in METHODS:
        return ("error", "InvalidOperationError", f"no shard method {method!r}", [])
    try:
        result = getattr(state, method)(*args)
    except KonomiError as exc:
        return ("error", type(exc).__name__, str(exc), state.take_events())
    return ("ok", result, None, state.take_events())


class Backend(Protocol):
    """Where the shards run: in this process, or as Ray actors."""

    count: int

    def submit(self, shard: int, method: str, args: tuple[Any, ...], alone: bool = False) -> Any:
        """Start a call; a handle for :meth:`result`. ``alone``: the caller waits
        for this call's result before it starts another, so a backend may send it
        on a path that carries one call at a time."""

    def result(self, handle: Any, deadline: float) -> Reply:
        """The call's reply; ShardLostError when its shard died,
        ShardUnavailableError when ``deadline`` (monotonic) passed."""

    def close(self) -> None:
        """Stop the shards."""


class LocalShards:
    """Every shard in this process (tests, and a machine without Ray)."""

    def __init__(self, count: int, store: str | None = None) -> None:
        self.count = check_shards(count)
        self.states = [ShardState(i, self.count, store_url_of(store, i)) for i in range(count)]

    def submit(self, shard: int, method: str, args: tuple[Any, ...], alone: bool = False) -> Any:
        return serve(self.states[shard], method, args)

    def result(self, handle: Any, deadline: float) -> Reply:
        reply: Reply = handle
        return reply

    def close(self) -> None:
        for s in self.states:
            s.close()


class Coordinator:
    """Routes, fans out and gathers over a backend's shards."""

    def __init__(
        self,
        backend: Backend,
        on_event: Callable[[Event], None] | None = None,
        retry_s: float = RETRY_S,
    ) -> None:
        self.backend = backend
        self.count = backend.count
        self.on_event = on_event
        self.retry_s = retry_s
        self._shapes: dict[Dims, BlockArray] = {}
        self.restarts = 0

    # -- calls ---------------------------------------------------------------------------

    def _shape(self, dims: Sequence[int]) -> BlockArray:
        key = (int(dims[0]), int(dims[1]), int(dims[2]))
        shape = self._shapes.get(key)
        if shape is None:
            shape = BlockArray(check_dims(key), capacity=1)
            self._shapes[key] = shape
        return shape

    def call_many(self, calls: dict[int, tuple[str, tuple[Any, ...]]]) -> dict[int, Any]:
        """Send every call at once; their results by shard, retried within the deadline."""
        deadline = time.monotonic() + self.retry_s
        alone = len(calls) == 1
        handles = {i: self.backend.submit(i, m, a, alone) for i, (m, a) in calls.items()}
        out: dict[int, Any] = {}
        first: KonomiError | None = None
        for i, handle in handles.items():
            method, args = calls[i]
            while True:
                try:
                    status, result, message, events = self.backend.result(handle, deadline)
                    break
                except ShardLostError as exc:
                    self.restarts += 1
                    if not idempotent(method, args) or time.monotonic() >= deadline:
                        raise ShardUnavailableError(
                            f"shard {i} was lost during {method!r}"
                            + (
                                " (it may or may not have been applied; the shard restarts"
                                " from its persisted state)"
                                if not idempotent(method, args)
                                else f" and did not come back within {self.retry_s:g} s"
                            )
                        ) from exc
                    time.sleep(0.05)
                    handle = self.backend.submit(i, method, args, alone)
            for event in events:
                if self.on_event is not None:
                    self.on_event(event)
            if status == "ok":
                out[i] = result
            elif first is None:
                cls = getattr(konomi_errors, str(result), KonomiError)
                first = cls(message) if isinstance(cls, type) else KonomiError(message)
        if first is not None:
            raise first
        return out

    def call(self, shard: int, method: str, *args: Any) -> Any:
        """One call on one shard."""
        return self.call_many({shard: (method, args)})[shard]

    def owner(self, dims: Dims, x: int, y: int, z: int) -> int:
        """The shard that owns (x, y, z), after checking it lies in the grid."""
        self._shape(dims)._check(x, y, z)
        return owner_of(x, y, z, self.count)

    def _split(self, dims: Dims, coords: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        c = self._shape(dims)._check_many(check_batch(coords))
        return c, split(owners(c, self.count), self.count)

    def open(self, iid: str, dims: Dims) -> int:
        """Every shard loads its part of an instance; the active blocks in all."""
        self._shape(dims)
        res = self.call_many({i: ("open", (iid, dims)) for i in range(self.count)})
        return int(sum(res.values()))

    # -- blocks --------------------------------------------------------------------------

    def set_many(self, iid: str, dims: Dims, coords: np.ndarray, values: Any = 1.0) -> int:
        """Set many blocks, one call per owning shard; persisted when it returns."""
        c, parts = self._split(dims, coords)
        v = np.broadcast_to(np.asarray(values, np.float64), (len(c),))
        calls = {
            i: ("set_many", (iid, dims, c[p], np.ascontiguousarray(v[p])))
            for i, p in enumerate(parts)
            if len(p)
        }
        return int(sum(self.call_many(calls).values()))

    def get_many(self, iid: str, dims: Dims, coords: np.ndarray) -> np.ndarray:
        """Values of many blocks, in the order given."""
        c, parts = self._split(dims, coords)
        calls = {i: ("get_many", (iid, dims, c[p])) for i, p in enumerate(parts) if len(p)}
        out = np.zeros(len(c), np.float64)
        for i, vals in self.call_many(calls).items():
            out[parts[i]] = vals
        return out

    def set(self, iid: str, dims: Dims, x: int, y: int, z: int, v: float) -> dict[str, Any]:
        """Set one block on its owner; its record."""
        result: dict[str, Any] = self.call(self.owner(dims, x, y, z), "set", iid, dims, x, y, z, v)
        return result

    def get(self, iid: str, dims: Dims, x: int, y: int, z: int) -> tuple[float, int]:
        """One block's value and the nanoseconds its shard spent on it."""
        value, ns = self.call(self.owner(dims, x, y, z), "get", iid, dims, x, y, z)
        return float(value), int(ns)

    def value_info(self, iid: str, dims: Dims, x: int, y: int, z: int) -> dict[str, Any]:
        """What ``GET /value`` answers, from the owner."""
        result: dict[str, Any] = self.call(
            self.owner(dims, x, y, z), "value_info", iid, dims, x, y, z
        )
        return result

    def process_text(
        self, iid: str, dims: Dims, x: int, y: int, z: int, text: str
    ) -> tuple[str, float]:
        """The FemtoLLM at a block, on its owner."""
        out, kappa = self.call(self.owner(dims, x, y, z), "process_text", iid, dims, x, y, z, text)
        return str(out), float(kappa)

    def _active_neighbours(
        self, iid: str, dims: Dims, x: int, y: int, z: int, adjacency: int
    ) -> np.ndarray:
        c = np.array([x, y, z], dtype=np.int64) + neighbour_offsets(adjacency)
        c = c[((c >= 0) & (c < np.asarray(dims))).all(axis=1)]
        parts = split(owners(c, self.count), self.count)
        calls = {i: ("active", (iid, dims, c[p])) for i, p in enumerate(parts) if len(p)}
        active = np.zeros(len(c), bool)
        for i, mask in self.call_many(calls).items():
            active[parts[i]] = mask
        found: np.ndarray = c[active]
        return found

    def attest(self, iid: str, dims: Dims, x: int, y: int, z: int, adjacency: int = 6) -> int:
        """A block attested by its active neighbours, wherever they live."""
        owner = self.owner(dims, x, y, z)
        n = self._active_neighbours(iid, dims, x, y, z, adjacency)
        return int(self.call(owner, "attest", iid, dims, x, y, z, n))

    def consensus(
        self, iid: str, dims: Dims, x: int, y: int, z: int, adjacency: int = 6
    ) -> dict[str, Any]:
        """Whether a block is accepted among its active neighbours, wherever they live."""
        owner = self.owner(dims, x, y, z)
        n = self._active_neighbours(iid, dims, x, y, z, adjacency)
        result: dict[str, Any] = self.call(owner, "consensus", iid, dims, x, y, z, n)
        return result

    # -- faces ---------------------------------------------------------------------------

    def face(
        self, iid: str, dims: Dims, plane: str, index: int, operation: str
    ) -> tuple[int, float, list[float]]:
        """A face operation over every shard: (processed, Σκ, each shard's seconds),
        Σκ summed in one process's order so that the answer is the same bits."""
        if operation not in OPERATIONS:
            raise InvalidOperationError(
                f"unknown operation {operation!r}; use {', '.join(OPERATIONS)}"
            )
        shape = self._shape(dims)
        if operation == "sync":
            return (*self._sync(iid, dims, shape.plane(plane, index)), [])
        cells = _plane_cells(shape.dim, plane, index)
        calls = {i: ("face", (iid, dims, plane, index, operation)) for i in range(self.count)}
        kappa = np.zeros(cells, np.float32)
        hit = np.zeros(cells, bool)
        seconds = []
        for _, (pos, kap, secs) in sorted(self.call_many(calls).items()):
            kappa[pos] = kap
            hit[pos] = True
            seconds.append(float(secs))
        processed, total = _chunk_sums(kappa, hit)
        return processed, total, seconds

    def _sync(self, iid: str, dims: Dims, coords: np.ndarray) -> tuple[int, float]:
        """``sync`` as one process runs it: chunk after chunk, each chunk reading the κ
        its predecessors wrote, and within a chunk every block reading the κ of before."""
        processed, total = 0, 0.0
        offsets = neighbour_offsets(6)
        limit = np.asarray(dims)
        for start in range(0, len(coords), CHUNK):
            chunk = coords[start : start + CHUNK]
            around = chunk[:, None, :] + offsets[None, :, :]
            inside = ((around >= 0) & (around < limit)).all(axis=2)
            own_k = self._kappas(iid, dims, chunk)
            active = ~np.isnan(own_k)
            near = np.full(inside.shape, np.nan, np.float32)
            near[inside] = self._kappas(iid, dims, around[inside])
            c, k0, nk = chunk[active], own_k[active], near[active]
            sums = k0.astype(np.float64)
            count = np.ones(len(c))
            for j in range(len(offsets)):
                hit = ~np.isnan(nk[:, j])
                sums[hit] += nk[hit, j]
                count[hit] += 1
            new = (sums / count).astype(np.float32)
            if len(c):
                parts = split(owners(c, self.count), self.count)
                self.call_many(
                    {
                        i: ("put_kappas", (iid, dims, c[p], new[p]))
                        for i, p in enumerate(parts)
                        if len(p)
                    }
                )
            processed += len(c)
            total += float(new.astype(np.float64).sum())
        return processed, total

    def _kappas(self, iid: str, dims: Dims, coords: np.ndarray) -> np.ndarray:
        parts = split(owners(coords, self.count), self.count)
        calls = {i: ("kappas_of", (iid, dims, coords[p])) for i, p in enumerate(parts) if len(p)}
        out = np.full(len(coords), np.nan, np.float32)
        for i, k in self.call_many(calls).items():
            out[parts[i]] = k
        return out

    # -- reporting -----------------------------------------------------------------------

    def memory(self) -> list[dict[str, float]]:
        """Each shard's resident memory and blocks."""
        res = self.call_many({i: ("memory", ()) for i in range(self.count)})
        return [res[i] for i in range(self.count)]

    def pids(self) -> list[int]:
        """Each shard's process id."""
        res = self.call_many({i: ("pid", ()) for i in range(self.count)})
        return [int(res[i]) for i in range(self.count)]

    def close(self) -> None:
        """Stop the shards."""
        self.backend.close()


def _plane_cells(dims: Dims, plane: str, index: int) -> int:
    """How many cells a face has, its name and index checked as BlockArray.plane
    checks them (without building its coordinates)."""
    if plane not in ("x", "y", "z"):
        raise InvalidOperationError(f"plane must be 'x', 'y' or 'z', got {plane!r}")
    axis = "xyz".index(plane)
    if not 0 <= index < dims[axis]:
        raise CoordinateOutOfRangeError(f"{plane}={index} is outside the array's dimensions {dims}")
    return int(np.prod(dims)) // dims[axis]


def _chunk_sums(kappa: np.ndarray, hit: np.ndarray) -> tuple[int, float]:
    """Blocks processed and Σκ over a plane, summed chunk by chunk in plane order."""
    processed, total = 0, 0.0
    for start in range(0, len(kappa), CHUNK):
        sel = hit[start : start + CHUNK]
        processed += int(sel.sum())
        total += float(kappa[start : start + CHUNK][sel].astype(np.float64).sum())
    return processed, total
