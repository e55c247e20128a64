"""One shard's part of the graph: its particles, their rows, and its halo.

A shard owns a set of particles (global ids, sorted) and holds

* the rows of ``W^T`` for them (their in-links; diffusion pulls along them),
* for springs and heat, their rows of ``A = W + W^T`` (in- and out-links),
* the out-weight of each (the normalisation of diffusion), and
* the *halo*: the particles of other shards those rows read, grouped by
  owner. A product reads them from a vector extended past the shard's own
  entries (``ext = [own | halo]``), so a row's columns are plain indices into
  it and the halo arrives as one buffer per owner, in an order both sides
  agree on (ascending global id), never as per-link messages.

Diffusion reads ``x / out_weight`` of a link's source and springs and heat
``sigma x`` of a neighbour, so the owner sends those pre-scaled: a shard
never needs another shard's out-weights or degrees. Everything here is numpy
and numba, with no Ray: the worker (``worker.py``) wraps it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from focusflow.core.errors import InvalidParameterError
from focusflow.graph.links import flush_tiny


@dataclass
class Halo:
    """The particles of other shards a shard's rows read, grouped by owner.

    ``ids[bounds[j]:bounds[j + 1]]`` are shard ``j``'s, ascending; they sit at
    ``n_own + bounds[j] ...`` of the extended vector."""

    ids: np.ndarray
    bounds: np.ndarray

    def of(self, owner: int) -> np.ndarray:
        return self.ids[self.bounds[owner] : self.bounds[owner + 1]]

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])


@dataclass
class EdgeBlock:
    """Links as three aligned arrays (global ids, weights) and each far end's owner."""

    src: np.ndarray
    dst: np.ndarray
    w: np.ndarray
    owner: np.ndarray  # in-links: the source's shard; out-links: the target's

    @classmethod
    def empty(cls) -> EdgeBlock:
        i = np.empty(0, dtype=np.int64)
        return cls(i, i, np.empty(0), np.empty(0, dtype=np.int32))

    @classmethod
    def concat(cls, blocks: list[EdgeBlock]) -> EdgeBlock:
        if not blocks:
            return cls.empty()
        return cls(
            np.concatenate([b.src for b in blocks]).astype(np.int64, copy=False),
            np.concatenate([b.dst for b in blocks]).astype(np.int64, copy=False),
            np.concatenate([b.w for b in blocks]).astype(np.float64, copy=False),
            np.concatenate([b.owner for b in blocks]).astype(np.int32, copy=False),
        )

    @property
    def nbytes(self) -> int:
        return int(self.src.nbytes + self.dst.nbytes + self.w.nbytes + self.owner.nbytes)


@dataclass
class ShardLayout:
    """A shard's particles, rows and halo (module docstring)."""

    shard: int
    shards: int
    ids: np.ndarray  # own particles' global ids, ascending
    out_weight: np.ndarray
    in_weight: np.ndarray
    pull: sp.csr_matrix  # rows: own particles; columns: ext (W^T)
    sym: sp.csr_matrix | None  # rows: own particles; columns: ext (W + W^T, unscaled)
    halo: Halo
    links_in: int = 0
    links_out: int = 0
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.ids.shape[0])

    def local(self, ids: np.ndarray) -> np.ndarray:
        """Positions of own particles ``ids``; ``invalid_parameter`` for one not owned."""
        pos = np.searchsorted(self.ids, ids)
        pos = np.minimum(pos, max(self.n - 1, 0))
        if self.n == 0 or not np.array_equal(self.ids[pos], ids):
            raise InvalidParameterError(
                f"shard {self.shard} was asked for particles it does not own"
            )
        return pos

    @property
    def nbytes(self) -> int:
        total = self.ids.nbytes + self.out_weight.nbytes + self.in_weight.nbytes
        total += self.halo.ids.nbytes
        for m in (self.pull, self.sym):
            if m is not None:
                total += m.data.nbytes + m.indices.nbytes + m.indptr.nbytes
        return int(total)


def _far_columns(
    shard: int, shards: int, ids: np.ndarray, far: np.ndarray, owner: np.ndarray
) -> tuple[np.ndarray, Halo]:
    """Columns in the extended vector of the far ends ``far`` (owners
    ``owner``), and the halo they make: the other shards' particles sorted by
    (owner, id). One sort of the far ends finds both (no search per owner)."""
    cols = np.empty(far.shape[0], dtype=np.int64)
    mine = owner == shard
    cols[mine] = np.searchsorted(ids, far[mine])
    other = np.flatnonzero(~mine)
    if not other.shape[0]:
        return cols, Halo(np.empty(0, dtype=np.int64), np.zeros(shards + 1, dtype=np.int64))
    uniq, first, inverse = np.unique(far[other], return_index=True, return_inverse=True)
    uowner = owner[other[first]].astype(np.int64)
    order = np.lexsort((uniq, uowner))
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = np.arange(order.shape[0], dtype=np.int64)
    cols[other] = ids.shape[0] + rank[inverse.ravel()]
    bounds = np.searchsorted(uowner[order], np.arange(shards + 1), side="left").astype(np.int64)
    return cols, Halo(uniq[order].astype(np.int64), bounds)


def build_layout(
    shard: int,
    shards: int,
    own: np.ndarray,
    links_in: EdgeBlock,
    links_out: EdgeBlock,
    symmetric: bool,
) -> ShardLayout:
    """The layout of ``shard`` from its in-links (targets owned), out-links
    (sources owned) and any particles it owns without links (``own``).

    Self-links are dropped and weights below ``MIN_WEIGHT`` are 0, as a
    one-process snapshot does, so both solve the same matrix."""
    keep_in = links_in.src != links_in.dst
    keep_out = links_out.src != links_out.dst
    lin = EdgeBlock(
        links_in.src[keep_in],
        links_in.dst[keep_in],
        flush_tiny(links_in.w[keep_in]),
        links_in.owner[keep_in],
    )
    lout = EdgeBlock(
        links_out.src[keep_out],
        links_out.dst[keep_out],
        flush_tiny(links_out.w[keep_out]),
        links_out.owner[keep_out],
    )
    own = own.astype(np.int64)
    ids, inverse = np.unique(np.concatenate([own, lin.dst, lout.src]), return_inverse=True)
    inverse = inverse.ravel()
    n = ids.shape[0]
    rows_in = inverse[own.shape[0] : own.shape[0] + lin.dst.shape[0]]
    rows_out = inverse[own.shape[0] + lin.dst.shape[0] :]
    far = np.concatenate([lin.src, lout.dst]) if symmetric else lin.src
    far_owner = np.concatenate([lin.owner, lout.owner]) if symmetric else lin.owner
    cols, halo = _far_columns(shard, shards, ids, far, far_owner)
    ext = n + halo.size
    cols_in = cols[: lin.src.shape[0]]
    pull = sp.csr_matrix((lin.w, (rows_in, cols_in)), shape=(n, ext))
    pull.sum_duplicates()
    out_weight = np.bincount(rows_out, weights=lout.w, minlength=n).astype(np.float64)
    in_weight = np.bincount(rows_in, weights=lin.w, minlength=n).astype(np.float64)
    sym = None
    if symmetric:
        cols_out = cols[lin.src.shape[0] :]
        sym = sp.csr_matrix(
            (
                np.concatenate([lin.w, lout.w]),
                (np.concatenate([rows_in, rows_out]), np.concatenate([cols_in, cols_out])),
            ),
            shape=(n, ext),
        )
        sym.sum_duplicates()
    return ShardLayout(
        shard=shard,
        shards=shards,
        ids=ids,
        out_weight=out_weight,
        in_weight=in_weight,
        pull=pull,
        sym=sym,
        halo=halo,
        links_in=int(lin.src.shape[0]),
        links_out=int(lout.src.shape[0]),
    )
