"""BlockArray: a sparse 3D grid of blocks (up to 1000³ and beyond), keyed by Morton code.

Only active blocks cost memory. Each active block owns one slot in a handful of
parallel numpy arrays (Morton key, value, timestamp, hash, and the per-cell state
of the FemtoLLM at that coordinate: κ and a call counter), and a dict maps Morton
key to slot. That is about 45 bytes of arrays plus about 100 bytes of dict entry
per block, so 10^6 active blocks take roughly 150 MB whatever the grid's size.

Blockchain properties: every block carries the hash
``sha256(f"{x},{y},{z},{v},{dim}")[:16]``; neighbours attest a block by recording
the hash they compute from the value they read; a block is *accepted* when its
stored hash matches its value and at least 2/3 of its active neighbours attested
that hash. A value changed behind the array's back (tampering) no longer matches
its hash, and a value changed through :meth:`set` loses its old attestations
until the neighbours attest again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict

import numpy as np

from focusflow.konomi import morton
from focusflow.konomi.errors import CoordinateOutOfRangeError, InvalidOperationError

KAPPA_STAR = 0.6
"""The Konomi constant κ that every cell drifts toward."""

_NEIGHBOURS_6 = np.array(
    [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)], dtype=np.int64
)
_NEIGHBOURS_26 = np.array(
    [
        (i, j, k)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        for k in (-1, 0, 1)
        if (i, j, k) != (0, 0, 0)
    ],
    dtype=np.int64,
)


def neighbour_offsets(adjacency: int) -> np.ndarray:
    """The (dx, dy, dz) offsets of the 6 face or 26 face/edge/corner neighbours."""
    if adjacency == 6:
        return _NEIGHBOURS_6
    if adjacency == 26:
        return _NEIGHBOURS_26
    raise InvalidOperationError(f"adjacency must be 6 or 26, got {adjacency}")


def hash_block(x: int, y: int, z: int, v: float, dim: tuple[int, int, int]) -> str:
    """The seed's block hash: the first 16 hex digits of SHA-256 of "x,y,z,v,dim"."""
    data = f"{int(x)},{int(y)},{int(z)},{float(v)},{tuple(int(d) for d in dim)}"
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _hash_int(x: int, y: int, z: int, v: float, dim_text: str) -> int:
    data = f"{x},{y},{z},{v},{dim_text}"
    return int.from_bytes(hashlib.sha256(data.encode()).digest()[:8], "big")


@dataclass(frozen=True)
class Attestation:
    """The outcome of asking a block's neighbours whether they vouch for its hash.

    ``valid``: the stored hash matches the block's current value. ``attesting``:
    active neighbours whose recorded hash equals that hash. ``accepted``: valid, and
    ``3 * attesting >= 2 * neighbours`` (a block without active neighbours is
    accepted on its own hash alone: there is nobody to ask).
    """

    coordinate: tuple[int, int, int]
    hash: str
    valid: bool
    attesting: int
    neighbours: int
    accepted: bool


class BlockRecord(TypedDict):
    """The seed's per-block record (:meth:`BlockArray.block`)."""

    value: float
    timestamp: float
    connections: list[tuple[int, int, int]]
    hash: str


class ActiveBlocks(Mapping[tuple[int, int, int], BlockRecord]):
    """Read-only view ``coordinate -> {value, timestamp, hash, connections}`` of active blocks."""

    def __init__(self, array: BlockArray) -> None:
        self._a = array

    def __contains__(self, coord: object) -> bool:
        return self._a.is_active(*coord) if isinstance(coord, tuple) and len(coord) == 3 else False

    def __getitem__(self, coord: tuple[int, int, int]) -> BlockRecord:
        return self._a.block(*coord)

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        x, y, z = self._a.coordinates()
        return iter(zip(x.tolist(), y.tolist(), z.tolist(), strict=True))

    def __len__(self) -> int:
        return self._a.size


class BlockArray:
    """Sparse 3D grid of blocks with per-block value, hash, timestamp and FemtoLLM state."""

    def __init__(self, dims: Sequence[int] = (1000, 1000, 1000), capacity: int = 64) -> None:
        sizes = tuple(int(d) for d in dims)
        if len(sizes) != 3 or min(sizes) < 1 or max(sizes) > morton.MAX_COORD + 1:
            raise InvalidOperationError(
                f"dimensions must be three sizes in [1, {morton.MAX_COORD + 1}], got {sizes}"
            )
        self.dim: tuple[int, int, int] = (sizes[0], sizes[1], sizes[2])
        self._dim_text = str(self.dim)
        self._index: dict[int, int] = {}
        self._n = 0
        cap = max(1, capacity)
        self._keys = np.zeros(cap, np.uint64)
        self._values = np.zeros(cap, np.float64)
        self._times = np.zeros(cap, np.float64)
        self._hashes = np.zeros(cap, np.uint64)
        self._kappa = np.full(cap, KAPPA_STAR, np.float32)
        self._calls = np.zeros(cap, np.uint32)
        self._links: dict[int, set[int]] = {}
        self._version = 0
        self._sorted: tuple[int, np.ndarray, np.ndarray] | None = None
        self._attested: dict[int, dict[int, int]] = {}

    # -- bookkeeping -------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of active blocks."""
        return self._n

    @property
    def active_blocks(self) -> ActiveBlocks:
        """The seed's ``active_blocks`` mapping, as a view over the arrays."""
        return ActiveBlocks(self)

    def nbytes(self) -> int:
        """Bytes held by the per-block arrays (the dict index comes on top, ~100 B/block)."""
        arrays = (self._keys, self._values, self._times, self._hashes, self._kappa, self._calls)
        return sum(a.nbytes for a in arrays)

    def _grow(self, need: int) -> None:
        cap = len(self._keys)
        if need <= cap:
            return
        new = max(need, cap * 2)
        for name in ("_keys", "_values", "_times", "_hashes", "_kappa", "_calls"):
            old = getattr(self, name)
            arr = (
                np.zeros(new, old.dtype)
                if name != "_kappa"
                else np.full(new, KAPPA_STAR, old.dtype)
            )
            arr[: self._n] = old[: self._n]
            setattr(self, name, arr)

    def _check(self, x: int, y: int, z: int) -> None:
        dx, dy, dz = self.dim
        if not (0 <= x < dx and 0 <= y < dy and 0 <= z < dz):
            raise CoordinateOutOfRangeError(
                f"coordinate ({x}, {y}, {z}) is outside the array's dimensions {self.dim}"
            )

    def _check_many(self, coords: np.ndarray) -> np.ndarray:
        c = np.asarray(coords, dtype=np.int64).reshape(-1, 3)
        bad = (c < 0).any(axis=1) | (c >= np.asarray(self.dim, dtype=np.int64)).any(axis=1)
        if bad.any():
            first = tuple(int(v) for v in c[np.argmax(bad)])
            raise CoordinateOutOfRangeError(
                f"{int(bad.sum())} coordinates are outside the array's dimensions {self.dim},"
                f" first {first}"
            )
        return c

    def slot(self, x: int, y: int, z: int) -> int | None:
        """The array slot of an active block, or None when the block is not active."""
        return self._index.get(morton.encode_one(x, y, z))

    def is_active(self, x: int, y: int, z: int) -> bool:
        """Whether (x, y, z) is an active block (out-of-range coordinates are not)."""
        dx, dy, dz = self.dim
        if not (0 <= x < dx and 0 <= y < dy and 0 <= z < dz):
            return False
        return morton.encode_one(x, y, z) in self._index

    # -- single-block operations -------------------------------------------------------

    def activate(self, x: int, y: int, z: int, value: float = 1.0) -> int:
        """Activate a block ("mining" it: value, timestamp, hash); returns its slot."""
        self._check(x, y, z)
        key = morton.encode_one(x, y, z)
        i = self._index.get(key)
        if i is None:
            self._grow(self._n + 1)
            i = self._n
            self._n += 1
            self._index[key] = i
            self._version += 1
            self._keys[i] = key
            self._kappa[i] = KAPPA_STAR
            self._calls[i] = 0
        v = float(value)
        self._values[i] = v
        self._times[i] = time.time()
        self._hashes[i] = _hash_int(x, y, z, v, self._dim_text)
        return i

    def set(self, x: int, y: int, z: int, v: float) -> int:
        """Set a block's value, activating it when needed (as the seed's ``set``)."""
        return self.activate(x, y, z, v)

    def get(self, x: int, y: int, z: int) -> float:
        """A block's value; 0.0 for an inactive block inside the grid."""
        self._check(x, y, z)
        i = self._index.get(morton.encode_one(x, y, z))
        return 0.0 if i is None else float(self._values[i])

    def deactivate(self, x: int, y: int, z: int) -> bool:
        """Remove a block (its slot is refilled by the last one); False when not active."""
        key = morton.encode_one(x, y, z)
        i = self._index.pop(key, None)
        if i is None:
            return False
        last = self._n - 1
        self._version += 1
        if i != last:
            for a in (
                self._keys,
                self._values,
                self._times,
                self._hashes,
                self._kappa,
                self._calls,
            ):
                a[i] = a[last]
            self._index[int(self._keys[i])] = i
        self._n = last
        self._links.pop(key, None)
        self._attested.pop(key, None)
        return True

    def block(self, x: int, y: int, z: int) -> BlockRecord:
        """The seed's per-block record: value, timestamp, connections, hash."""
        i = self.slot(x, y, z)
        if i is None:
            raise KeyError((x, y, z))
        key = int(self._keys[i])
        return {
            "value": float(self._values[i]),
            "timestamp": float(self._times[i]),
            "connections": [self._coord(k) for k in self._links.get(key, ())],
            "hash": f"{int(self._hashes[i]):016x}",
        }

    def _coord(self, key: int) -> tuple[int, int, int]:
        x, y, z = morton.decode(np.uint64(key))
        return int(x), int(y), int(z)

    def hash_block(self, x: int, y: int, z: int, v: float) -> str:
        """The seed's block hash for this array's dimensions."""
        return hash_block(x, y, z, v, self.dim)

    def stored_hash(self, x: int, y: int, z: int) -> str:
        """The hash recorded when the block's value was last set."""
        i = self.slot(x, y, z)
        if i is None:
            raise KeyError((x, y, z))
        return f"{int(self._hashes[i]):016x}"

    def connect(self, a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
        """A custom, bidirectional connection between two active blocks."""
        for c in (a, b):
            self._check(*c)
            if not self.is_active(*c):
                raise InvalidOperationError(f"block {c} is not active")
        ka, kb = morton.encode_one(*a), morton.encode_one(*b)
        self._links.setdefault(ka, set()).add(kb)
        self._links.setdefault(kb, set()).add(ka)

    def connections(self, x: int, y: int, z: int) -> int:
        """Number of custom connections of a block."""
        return len(self._links.get(morton.encode_one(x, y, z), ()))

    def get_neighbors(
        self, x: int, y: int, z: int, adjacency: int = 6
    ) -> list[tuple[int, int, int]]:
        """Active blocks among the 6 face (or 26 face, edge and corner) neighbours."""
        c = np.array([x, y, z], dtype=np.int64) + neighbour_offsets(adjacency)
        inside = ((c >= 0) & (c < np.asarray(self.dim))).all(axis=1)
        c = c[inside]
        keys = morton.encode(c[:, 0], c[:, 1], c[:, 2]).tolist()
        return [
            (int(p[0]), int(p[1]), int(p[2]))
            for p, k in zip(c, keys, strict=True)
            if k in self._index
        ]

    # -- consensus ---------------------------------------------------------------------

    def verify(self, x: int, y: int, z: int) -> bool:
        """Whether the block's stored hash still matches its current value."""
        i = self.slot(x, y, z)
        if i is None:
            raise KeyError((x, y, z))
        return int(self._hashes[i]) == _hash_int(x, y, z, float(self._values[i]), self._dim_text)

    def record_attestation(
        self, block: tuple[int, int, int], by: tuple[int, int, int], digest: str
    ) -> None:
        """Record that neighbour ``by`` vouches for ``digest`` as ``block``'s hash.

        Honest neighbours go through :meth:`attest`; this entry point lets a test or a
        remote peer submit any digest, including a Byzantine one.
        """
        key = morton.encode_one(*block)
        self._attested.setdefault(key, {})[morton.encode_one(*by)] = int(digest, 16)

    def attest(
        self,
        x: int,
        y: int,
        z: int,
        adjacency: int = 6,
        neighbours: Sequence[tuple[int, int, int]] | None = None,
    ) -> int:
        """Every active neighbour recomputes the block's hash from the value it reads and
        records it; returns the number of neighbours that attested. ``neighbours``
        names the active ones when they live elsewhere (another shard's array)."""
        i = self.slot(x, y, z)
        if i is None:
            raise KeyError((x, y, z))
        digest = _hash_int(x, y, z, float(self._values[i]), self._dim_text)
        votes = self._attested.setdefault(int(self._keys[i]), {})
        if neighbours is None:
            neighbours = self.get_neighbors(x, y, z, adjacency)
        for n in neighbours:
            votes[morton.encode_one(*n)] = digest
        return len(neighbours)

    def consensus(
        self,
        x: int,
        y: int,
        z: int,
        adjacency: int = 6,
        neighbours: Sequence[tuple[int, int, int]] | None = None,
    ) -> Attestation:
        """Whether the block is accepted: valid hash and >= 2/3 of active neighbours attest
        it (``neighbours``: the active ones, when they live elsewhere)."""
        i = self.slot(x, y, z)
        if i is None:
            raise KeyError((x, y, z))
        stored = int(self._hashes[i])
        valid = stored == _hash_int(x, y, z, float(self._values[i]), self._dim_text)
        votes = self._attested.get(int(self._keys[i]), {})
        if neighbours is None:
            neighbours = self.get_neighbors(x, y, z, adjacency)
        attesting = sum(1 for n in neighbours if votes.get(morton.encode_one(*n)) == stored)
        accepted = valid and 3 * attesting >= 2 * len(neighbours)
        return Attestation((x, y, z), f"{stored:016x}", valid, attesting, len(neighbours), accepted)

    # -- batch operations --------------------------------------------------------------

    def coordinates(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coordinates of all active blocks, in slot order."""
        return morton.decode(self._keys[: self._n])

    def keys(self) -> np.ndarray:
        """Morton keys of all active blocks, in slot order (a view: copy before mutating)."""
        return self._keys[: self._n]

    def values(self) -> np.ndarray:
        """Values of all active blocks, in slot order (a view)."""
        return self._values[: self._n]

    def hashes(self) -> np.ndarray:
        """Hashes of all active blocks as uint64, in slot order (a view)."""
        return self._hashes[: self._n]

    def timestamps(self) -> np.ndarray:
        """Activation/update times of all active blocks, in slot order (a view)."""
        return self._times[: self._n]

    def kappas(self) -> np.ndarray:
        """κ of every active block's FemtoLLM, in slot order (a view)."""
        return self._kappa[: self._n]

    def calls(self) -> np.ndarray:
        """Processing calls of every active block's FemtoLLM, in slot order (a view)."""
        return self._calls[: self._n]

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each Morton key, -1 where not active.

        Large batches use a sorted copy of the keys and ``searchsorted`` (rebuilt
        only after blocks are added or removed), small ones the dict.
        """
        keys = np.asarray(keys, dtype=np.uint64)
        if len(keys) < 4096:
            get = self._index.get
            return np.fromiter((get(k, -1) for k in keys.tolist()), np.int64, count=len(keys))
        if self._sorted is None or self._sorted[0] != self._version:
            order = np.argsort(self._keys[: self._n], kind="stable")
            self._sorted = (self._version, self._keys[: self._n][order], order)
        _, skeys, order = self._sorted
        if len(skeys) == 0:
            return np.full(len(keys), -1, np.int64)
        pos = np.minimum(np.searchsorted(skeys, keys), len(skeys) - 1)
        return np.where(skeys[pos] == keys, order[pos], -1).astype(np.int64)

    def _slots_for(self, keys: np.ndarray) -> np.ndarray:
        """Slot of each key, allocating fresh slots (κ 0.6, no calls) for new keys."""
        slots = self.lookup(keys)
        new = np.flatnonzero(slots < 0)
        if len(new):
            new_keys = keys[new]
            uniq = np.unique(new_keys)
            start = self._n
            self._grow(start + len(uniq))
            fresh = np.arange(start, start + len(uniq), dtype=np.int64)
            self._keys[fresh] = uniq
            self._kappa[fresh] = KAPPA_STAR
            self._calls[fresh] = 0
            self._index.update(zip(uniq.tolist(), fresh.tolist(), strict=True))
            self._n = start + len(uniq)
            self._version += 1
            slots[new] = fresh[np.searchsorted(uniq, new_keys)]
        return slots

    def slots_of(self, coords: np.ndarray) -> np.ndarray:
        """Slot of each coordinate, -1 where the block is not active."""
        c = self._check_many(coords)
        return self.lookup(morton.encode(c[:, 0], c[:, 1], c[:, 2]))

    def get_many(self, coords: np.ndarray) -> np.ndarray:
        """Values at many coordinates (0.0 where inactive)."""
        s = self.slots_of(coords)
        out = np.zeros(len(s), np.float64)
        hit = s >= 0
        out[hit] = self._values[s[hit]]
        return out

    def activate_many(
        self,
        coords: np.ndarray,
        values: float | np.ndarray = 1.0,
        *,
        timestamp: float | None = None,
    ) -> np.ndarray:
        """Activate (or set) many blocks at once; returns their slots.

        Duplicated coordinates keep the last value. Hashes are computed per block
        (SHA-256 has no vectorised form in numpy); everything else is array work.
        """
        c = self._check_many(coords)
        v = np.broadcast_to(np.asarray(values, dtype=np.float64), (len(c),))
        slots = self._slots_for(morton.encode(c[:, 0], c[:, 1], c[:, 2]))
        self._values[slots] = v
        self._times[slots] = time.time() if timestamp is None else timestamp
        xs, ys, zs = c[:, 0].tolist(), c[:, 1].tolist(), c[:, 2].tolist()
        dim = self._dim_text
        vals = self._values[slots].tolist()
        self._hashes[slots] = np.fromiter(
            (_hash_int(a, b, d, w, dim) for a, b, d, w in zip(xs, ys, zs, vals, strict=True)),
            dtype=np.uint64,
            count=len(c),
        )
        return slots

    def merge(
        self,
        keys: np.ndarray,
        values: np.ndarray,
        timestamps: np.ndarray,
        hashes: np.ndarray,
        kappas: np.ndarray,
        calls: np.ndarray,
    ) -> np.ndarray:
        """Upsert blocks exactly as recorded elsewhere (a store, another process): hashes are
        taken as given, not recomputed, so tampering upstream is still detected. Returns
        the slots."""
        slots = self._slots_for(np.asarray(keys, dtype=np.uint64))
        self._values[slots] = values
        self._times[slots] = timestamps
        self._hashes[slots] = np.asarray(hashes, dtype=np.uint64)
        self._kappa[slots] = kappas
        self._calls[slots] = calls
        return slots

    def restore(
        self,
        keys: np.ndarray,
        values: np.ndarray,
        timestamps: np.ndarray,
        hashes: np.ndarray,
        kappas: np.ndarray,
        calls: np.ndarray,
    ) -> None:
        """Replace every block with persisted ones (see :meth:`merge`)."""
        self._index = {}
        self._n = 0
        self._links.clear()
        self._attested.clear()
        self._version += 1
        self.merge(keys, values, timestamps, hashes, kappas, calls)

    def plane(self, axis: str, index: int) -> np.ndarray:
        """All coordinates of a face of the grid (e.g. every (x, y, 500) for z=500), as (n, 3)."""
        if axis not in ("x", "y", "z"):
            raise InvalidOperationError(f"plane must be 'x', 'y' or 'z', got {axis!r}")
        ax = "xyz".index(axis)
        if not 0 <= index < self.dim[ax]:
            raise CoordinateOutOfRangeError(
                f"{axis}={index} is outside the array's dimensions {self.dim}"
            )
        others = [i for i in range(3) if i != ax]
        a, b = np.meshgrid(
            np.arange(self.dim[others[0]], dtype=np.int64),
            np.arange(self.dim[others[1]], dtype=np.int64),
            indexing="ij",
        )
        out = np.empty((a.size, 3), np.int64)
        out[:, ax] = index
        out[:, others[0]] = a.ravel()
        out[:, others[1]] = b.ravel()
        return out

    def shard_of(self, x: int, y: int, z: int, num_shards: int = 1000) -> int:
        """The shard that owns a block: SplitMix64 of its Morton key modulo the shard count."""
        self._check(x, y, z)
        return int(morton.splitmix64(morton.encode_one(x, y, z)) % np.uint64(num_shards))

    def shards(self, num_shards: int = 1000) -> np.ndarray:
        """Shard of every active block (slot order), vectorised."""
        return (morton.splitmix64(self.keys()) % np.uint64(num_shards)).astype(np.int64)
