"""``compute(graph, shards=N, cluster=...)``: the sharded solve behind the focus API."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams
from focusflow.focus.result import Diagnostics, FocusResult
from focusflow.focus.shards.cluster import connect
from focusflow.focus.shards.inputs import (
    locality_owners,
    owners_of,
    parts_of_file,
    parts_of_snapshot,
)
from focusflow.focus.shards.partition import check_shards
from focusflow.focus.shards.solve import ExchangeName, Reduce, ShardedSolve, ShardReport
from focusflow.focus.solver import contraction_rate

if TYPE_CHECKING:
    from focusflow.focus.solver import GraphLike


def diagnostics_of(report: ShardReport) -> Diagnostics:
    """The one-process solver's diagnostics record, filled from a sharded solve."""
    diag = Diagnostics()
    diag.iterations = report.iterations
    diag.converged = report.converged
    diag.residual_history = list(report.residual_history)
    diag.residual = report.residual_history[-1] if report.residual_history else float("inf")
    diag.contraction_rate = contraction_rate(report.residual_history)
    diag.timings = dict(report.timings)
    diag.inner = {"series_terms": report.series_terms, "shards": report.shards}
    return diag


def compute_sharded(
    graph: GraphLike,
    params: FocusParams,
    shards: int,
    *,
    cluster: str | None = None,
    x0: np.ndarray | None = None,
    progress: Callable[[int, float], None] | None = None,
    exchange: ExchangeName = "object-store",
    reduce: Reduce = "all-reduce",
    device: str = "cpu",
    assign: str = "hash",
) -> FocusResult:
    """Focus of ``graph`` solved by ``shards`` Ray actors (``focus.shards``).

    ``assign``: ``hash`` (``murmur64(key) mod shards``) or ``locality``
    (``inputs.locality_owners``: fewer halo values where the graph has
    locality to find, at the price of an ordering of the whole graph here)."""
    from focusflow.focus.solver import snapshot_of

    shards = check_shards(shards)
    if assign not in ("hash", "locality"):
        raise InvalidParameterError(f"assign must be hash or locality, got {assign!r}")
    t0 = time.perf_counter()
    snap, keys = snapshot_of(graph)
    ray, started = connect(cluster, shards)
    try:
        if assign == "hash":
            owner = owners_of(snap.n, keys, shards)
        else:
            owner = locality_owners(snap, shards)
        parts = parts_of_snapshot(ray, snap, owner, shards)
        solve = ShardedSolve(
            parts, params, exchange=exchange, reduce=reduce, progress=progress, device=device
        )
        try:
            start = None
            if x0 is not None:
                x = np.asarray(x0, dtype=np.float64)
                if (
                    x.shape != (snap.n,)
                    or not np.all(np.isfinite(x))
                    or x.min() < 0
                    or x.sum() <= 0
                ):
                    raise InvalidParameterError(
                        f"x0 must be {snap.n} finite values >= 0, not all 0"
                    )
                x = x / x.sum()
                start = [x[owner == s] for s in range(shards)]
            report = solve.solve(start)
            ids, phi, _ = solve.gather()
        finally:
            solve.close()
    finally:
        if started:
            ray.shutdown()
    focus = np.zeros(snap.n)
    focus[ids] = phi
    diag = diagnostics_of(report)
    diag.timings["total"] = time.perf_counter() - t0
    result = FocusResult(focus=focus, params=params, backend="shards", diagnostics=diag, keys=keys)
    result.shards = report  # type: ignore[attr-defined]
    return result


def compute_file_sharded(
    path: Path,
    sep: str,
    params: FocusParams,
    shards: int,
    *,
    cluster: str | None = None,
    readers: int | None = None,
    progress: Callable[[int, float], None] | None = None,
    exchange: ExchangeName = "object-store",
    reduce: Reduce = "all-reduce",
) -> tuple[list[str], np.ndarray, ShardReport]:
    """Focus of the edge list ``path`` read and solved by shards: ``(keys, focus, report)``."""
    shards = check_shards(shards)
    ray, started = connect(cluster, shards)
    try:
        t = time.perf_counter()
        parts = parts_of_file(ray, path, sep, shards, readers or shards)
        solve = ShardedSolve(parts, params, exchange=exchange, reduce=reduce, progress=progress)
        try:
            report = solve.solve()
            _, phi, keys = solve.gather()
        finally:
            solve.close()
        report.timings["total"] = time.perf_counter() - t
    finally:
        if started:
            ray.shutdown()
    assert keys is not None
    return keys, phi, report


__all__: list[Any] = ["compute_file_sharded", "compute_sharded", "diagnostics_of"]
