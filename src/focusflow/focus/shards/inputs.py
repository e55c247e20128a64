"""A graph cut into shards' inputs: from a graph in memory, or from a file read in parallel.

In memory (``parts_of_snapshot``): the particles are the snapshot's, numbered
as the caller numbers them, and the owner of each is ``murmur64`` of its key
(of its number where the graph has no keys) mod the shard count.

From a file (``parts_of_file``): the file is cut at line starts into one
range per reader; each reader (a Ray task) parses its range with the edge
list reader's rules, hashes every key (its id is ``murmur64(key)``, its owner
that mod the shard count) and returns, per shard, the links it owns and the
names of its particles. No process ever holds the whole graph: the driver
sees only references.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from focusflow.focus.shards.layout import EdgeBlock
from focusflow.focus.shards.partition import (
    murmur64_ints,
    murmur64_keys,
    shard_of_hashes,
)
from focusflow.focus.shards.solve import ShardInput
from focusflow.graph.importers import edge_frame, range_error
from focusflow.graph.snapshot import Snapshot


def owners_of(n: int, keys: list[Any] | None, shards: int) -> np.ndarray:
    """Each particle's shard: ``murmur64(key) mod shards`` (of its number without keys)."""
    hashes = murmur64_keys(keys) if keys is not None else murmur64_ints(np.arange(n))
    return shard_of_hashes(hashes, shards)


def locality_owners(snap: Snapshot, shards: int) -> np.ndarray:
    """Each particle's shard by locality: the reverse Cuthill-McKee order of the
    undirected link pattern (neighbours near each other), cut into ``shards``
    runs that hold equal numbers of link ends. Needs the whole graph in one
    process, so it is for graphs that fit one; ``murmur64`` needs nothing."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    n = snap.n
    src, dst, _ = snapshot_links(snap)
    pattern = sp.csr_matrix((np.ones(src.shape[0]), (src, dst)), shape=(n, n))
    pattern = (pattern + pattern.T).tocsr()
    order = reverse_cuthill_mckee(pattern, symmetric_mode=True)
    weight = np.diff(pattern.indptr)[order].astype(np.float64) + 1.0
    ends = np.cumsum(weight)
    cuts = ends[-1] * np.arange(1, shards) / shards if n else np.empty(0)
    owner = np.empty(n, dtype=np.int32)
    owner[order] = np.searchsorted(cuts, ends - weight / 2.0, side="right")
    return owner


def snapshot_links(snap: Snapshot) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The snapshot's links (base and overlay) as particle ids and weights."""
    rows = np.repeat(np.arange(snap.n, dtype=np.int64), np.diff(snap.out_indptr))
    src = snap.iperm[rows]
    dst = snap.iperm[snap.out_indices.astype(np.int64)]
    w = np.asarray(snap.out_w, dtype=np.float64)
    if snap.overlay_nnz:
        src = np.concatenate([src, snap.iperm[snap.ov_src.astype(np.int64)]])
        dst = np.concatenate([dst, snap.iperm[snap.ov_dst.astype(np.int64)]])
        w = np.concatenate([w, np.asarray(snap.ov_w, dtype=np.float64)])
    return src, dst, w


def split_links(
    src: np.ndarray,
    dst: np.ndarray,
    w: np.ndarray,
    owner_src: np.ndarray,
    owner_dst: np.ndarray,
    shards: int,
) -> list[tuple[EdgeBlock, EdgeBlock]]:
    """Per shard, its in-links (targets owned) and out-links (sources owned)."""
    out = []
    by_dst = np.argsort(owner_dst, kind="stable")
    by_src = np.argsort(owner_src, kind="stable")
    dst_cut = np.searchsorted(owner_dst[by_dst], np.arange(shards + 1))
    src_cut = np.searchsorted(owner_src[by_src], np.arange(shards + 1))
    for s in range(shards):
        i = by_dst[dst_cut[s] : dst_cut[s + 1]]
        o = by_src[src_cut[s] : src_cut[s + 1]]
        out.append(
            (
                EdgeBlock(src[i], dst[i], w[i], owner_src[i]),
                EdgeBlock(src[o], dst[o], w[o], owner_dst[o]),
            )
        )
    return out


def parts_of_snapshot(ray: Any, snap: Snapshot, owner: np.ndarray, shards: int) -> list[ShardInput]:
    """The shards' inputs for ``snap`` (``owner``: each particle's shard), put in Ray's store."""
    src, dst, w = snapshot_links(snap)
    blocks = split_links(src, dst, w, owner[src], owner[dst], shards)
    parts = []
    for s, (lin, lout) in enumerate(blocks):
        own = np.flatnonzero(owner == s).astype(np.int64)
        parts.append(ShardInput(ray.put(own), [ray.put(lin)], [ray.put(lout)]))
    return parts


def byte_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``parts`` ranges of ``path`` cut just after a newline (some may be empty)."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as fh:
        for k in range(1, parts):
            at = max(size * k // parts, cuts[-1])
            fh.seek(at)
            if at > 0:
                fh.seek(at - 1)
                fh.readline()
            cuts.append(min(max(fh.tell(), cuts[-1]), size))
    cuts.append(size)
    return [(cuts[k], cuts[k + 1]) for k in range(parts)]


def read_range(path: str, start: int, end: int, sep: str, shards: int) -> list[Any]:
    """One reader's share of an edge list: ``3 * shards + 1`` results, per shard
    its in-links, then per shard its out-links, then per shard ``(ids, keys)``,
    and last whether the range parsed (``parts_of_file`` checks that before
    any shard reads the rest, and names the bad line)."""
    import pandas as pd

    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start)
    names: list[Any] = [(np.empty(0, dtype=np.int64), [])] * shards
    empty = EdgeBlock.empty()
    failed = [empty] * (2 * shards) + names + [False]
    if not data.strip():
        return [empty] * (2 * shards) + names + [True]
    try:
        frame = edge_frame(io.BytesIO(data), sep)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError):
        return failed
    blank = frame.isna() | (frame == "")
    if not blank[3].all() or blank[[0, 1]].any(axis=None):
        return failed
    w = pd.to_numeric(frame[2], errors="coerce").to_numpy(dtype=np.float64, copy=True)
    w[blank[2].to_numpy()] = 1.0
    if not np.all(np.isfinite(w)) or (w < 0).any():
        return failed
    m = len(frame)
    keys = np.concatenate([frame[0].to_numpy(dtype=object), frame[1].to_numpy(dtype=object)])
    uniq, inv = np.unique(keys, return_inverse=True)
    hashes = murmur64_keys(list(uniq))
    ids = hashes.view(np.int64)
    owner = shard_of_hashes(hashes, shards)
    src, dst = ids[inv[:m]], ids[inv[m:]]
    blocks = split_links(src, dst, w, owner[inv[:m]], owner[inv[m:]], shards)
    names = []
    for s in range(shards):
        sel = np.flatnonzero(owner == s)
        names.append((ids[sel], [str(uniq[k]) for k in sel]))
    return [b[0] for b in blocks] + [b[1] for b in blocks] + names + [True]


def parts_of_file(ray: Any, path: Path, sep: str, shards: int, readers: int) -> list[ShardInput]:
    """The shards' inputs for the edge list ``path``, read by ``readers`` Ray tasks;
    a bad line is ``bad_input_file`` naming it, as the one-process reader does."""
    reader = ray.remote(read_range).options(num_returns=3 * shards + 1, num_cpus=0)
    ranges = byte_ranges(path, readers)
    outs = [reader.remote(os.fspath(path), a, b, sep, shards) for a, b in ranges]
    parsed = ray.get([o[3 * shards] for o in outs])
    for (start, end), ok in zip(ranges, parsed, strict=True):
        if not ok:
            raise range_error(path, sep, start, end)
    parts = []
    for s in range(shards):
        parts.append(
            ShardInput(
                np.empty(0, dtype=np.int64),
                [o[s] for o in outs],
                [o[shards + s] for o in outs],
                [o[2 * shards + s] for o in outs],
            )
        )
    return parts
