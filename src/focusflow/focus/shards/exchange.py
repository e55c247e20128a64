"""How a shard's halo values reach the shards that read them.

A product on shard ``i`` reads, from each other shard ``j``, the values of
the particles in its halo that ``j`` owns (``layout.Halo``). Both sides know
the list, so what travels is one float64 buffer per ordered pair of shards
and per product, holding one value per listed particle and per vector
(``width``: diffusion's ``x / out_weight`` and the Laplacian's ``sigma x``
travel together at the start of an outer iteration).

* ``ObjectStoreExchange``: the buffers are extra results of the posting
  call; the driver hands their references to the reading calls, and Ray
  moves the bytes between the nodes' object stores (never through the
  driver, past its inlining threshold). A worker killed mid-step loses
  nothing the driver cannot ask for again.
* ``CollectiveExchange``: the buffers travel by ``ray.util.collective``
  point-to-point sends over gloo between CPU processes. Pairs exchange in the
  rounds of a round-robin tournament, the smaller rank sending first, so no
  cycle of blocking sends can form.
* ``NcclExchange``: between GPUs, by NCCL through CuPy: every send and
  receive of one exchange in one NCCL group call, device memory to device
  memory. (Ray's own NCCL group sends PyTorch tensors only.)
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Exchange(Protocol):
    """Posting a shard's halo values and collecting the ones it reads."""

    def routes(self, send: list[np.ndarray], recv: np.ndarray) -> None:
        """``send[j]``: own positions shard ``j`` reads; ``recv``: halo bounds per owner."""
        ...

    def post(self, vectors: list[np.ndarray]) -> list[Any]:
        """Post ``vectors``' values at every peer's positions; one result per shard."""
        ...

    def collect(self, incoming: list[Any], width: int) -> list[np.ndarray]:
        """The halo of each of the ``width`` vectors last posted by the owners."""
        ...


class _Routes:
    shard: int
    shards: int
    xp: Any

    def routes(self, send: list[np.ndarray], recv: np.ndarray) -> None:
        self.send = [self.xp.asarray(p) for p in send]
        self.recv = recv

    def _pack(self, vectors: list[Any], j: int) -> Any:
        pos = self.send[j]
        if not vectors or j == self.shard or not len(pos):
            return self.xp.empty(0)
        return self.xp.concatenate([v[pos] for v in vectors])

    def _count(self, j: int) -> int:
        return int(self.recv[j + 1] - self.recv[j])

    def _unpack(self, buffers: list[Any], width: int) -> list[Any]:
        out = []
        for k in range(width):
            parts = []
            for j, buf in enumerate(buffers):
                m = self._count(j)
                if j == self.shard or m == 0:
                    continue
                if buf.shape[0] < width * m:
                    raise RuntimeError(
                        f"shard {self.shard}: halo buffer from shard {j} holds {buf.shape[0]}"
                        f" values, expected {width * m}"
                    )
                parts.append(buf[k * m : (k + 1) * m])
            out.append(self.xp.concatenate(parts) if parts else self.xp.empty(0))
        return out


class ObjectStoreExchange(_Routes):
    """Buffers as call results, moved by Ray's object store (module docstring)."""

    def __init__(self, shard: int, shards: int, xp: Any = np) -> None:
        self.shard, self.shards, self.xp = shard, shards, xp
        self.send: list[np.ndarray] = []
        self.recv = np.zeros(shards + 1, dtype=np.int64)

    def post(self, vectors: list[Any]) -> list[Any]:
        """The buffers, on the host (the object store holds host memory)."""
        packed = [self._pack(vectors, j) for j in range(self.shards)]
        return packed if self.xp is np else [self.xp.asnumpy(b) for b in packed]

    def collect(self, incoming: list[Any], width: int) -> list[Any]:
        if width == 0:
            return []
        return self._unpack([self.xp.asarray(b) for b in incoming], width)


def tournament(shards: int) -> list[list[tuple[int, int]]]:
    """Rounds of a round-robin tournament: every pair of shards meets once."""
    players = list(range(shards)) + ([-1] if shards % 2 else [])
    m = len(players)
    rounds = []
    for _ in range(m - 1):
        pairs = [(players[k], players[m - 1 - k]) for k in range(m // 2)]
        rounds.append([(min(a, b), max(a, b)) for a, b in pairs if a >= 0 and b >= 0])
        players = [players[0], players[-1], *players[1:-1]]
    return rounds


class CollectiveExchange(_Routes):
    """Buffers by ``ray.util.collective`` sends (module docstring); ``xp`` is the
    array module of the vectors (numpy for gloo, CuPy for NCCL)."""

    def __init__(self, shard: int, shards: int, group: str, xp: Any = np) -> None:
        import ray.util.collective as col

        self.col, self.group, self.xp = col, group, xp
        self.shard, self.shards = shard, shards
        self.send = []
        self.recv = np.zeros(shards + 1, dtype=np.int64)
        self._posted: list[np.ndarray] = []
        self._width = 0
        self._rounds = tournament(shards)

    def post(self, vectors: list[np.ndarray]) -> list[Any]:
        self._width = len(vectors)
        self._posted = [self._pack(vectors, j) for j in range(self.shards)]
        return [None] * self.shards

    def collect(self, incoming: list[Any], width: int) -> list[np.ndarray]:
        if width == 0:
            return []
        got: list[Any] = [self.xp.empty(0)] * self.shards
        for pairs in self._rounds:
            for a, b in pairs:
                if self.shard not in (a, b):
                    continue
                peer = b if self.shard == a else a
                out = self._posted[peer]
                into = self.xp.empty(width * self._count(peer))
                if self.shard == a:
                    self._send_to(out, peer)
                    self._recv_from(into, peer)
                else:
                    self._recv_from(into, peer)
                    self._send_to(out, peer)
                got[peer] = into
        return self._unpack(got, width)

    def _send_to(self, buf: np.ndarray, peer: int) -> None:
        if buf.shape[0]:
            self.col.send(buf, peer, self.group)

    def _recv_from(self, buf: np.ndarray, peer: int) -> None:
        if buf.shape[0]:
            self.col.recv(buf, peer, self.group)


class NcclExchange(_Routes):
    """Buffers between GPUs by CuPy's NCCL (module docstring); ``uid`` is the
    communicator's id, made by rank 0 (``nccl_id``) and handed to every rank."""

    def __init__(self, shard: int, shards: int, uid: Any, xp: Any) -> None:
        import importlib

        self.nccl: Any = importlib.import_module("cupy.cuda.nccl")
        self.shard, self.shards, self.xp = shard, shards, xp
        self.send = []
        self.recv = np.zeros(shards + 1, dtype=np.int64)
        self.comm = self.nccl.NcclCommunicator(shards, uid, shard)
        self._posted: list[Any] = []

    def post(self, vectors: list[Any]) -> list[Any]:
        self._posted = [self._pack(vectors, j) for j in range(self.shards)]
        return [None] * self.shards

    def collect(self, incoming: list[Any], width: int) -> list[Any]:
        if width == 0:
            return []
        nccl, xp = self.nccl, self.xp
        got: list[Any] = [xp.empty(width * self._count(j)) for j in range(self.shards)]
        stream = xp.cuda.get_current_stream()
        nccl.groupStart()
        for peer in range(self.shards):
            if peer == self.shard:
                continue
            out = self._posted[peer]
            if out.shape[0]:
                self.comm.send(out.data.ptr, out.shape[0], nccl.NCCL_FLOAT64, peer, stream.ptr)
            if got[peer].shape[0]:
                self.comm.recv(
                    got[peer].data.ptr, got[peer].shape[0], nccl.NCCL_FLOAT64, peer, stream.ptr
                )
        nccl.groupEnd()
        stream.synchronize()
        return self._unpack(got, width)


def nccl_id() -> Any:
    """A fresh NCCL communicator id (made on a GPU worker: the driver may have none)."""
    import importlib

    return importlib.import_module("cupy.cuda.nccl").get_unique_id()
