"""The driver of a sharded solve: shards on Ray actors, the outer iteration here.

Each outer iteration is three phases on every shard at once (``worker.py``):
``advance`` (normalise, post the halo), the terms of the springs-and-heat
series (one product each, posted and read through the object store without
the driver waiting between them), and ``finish`` (diffusion and the blend).
The driver waits twice per iteration, for two sums: the L1 change and
dangling mass after ``advance``, and the blend's total after ``finish``.
Those sums are an all-reduce here, in shard order (the same bits every run),
or push-sum gossip among the shards (``pushsum.py``). The stopping rule is
global: the L1 change of the whole ``phi`` below ``tol``.

The fixed point is the one-process solver's
(``phi = N(lam_d D(phi) + lam_s S(phi) + lam_h H(phi))``), reached by plain
iteration with springs and heat as one Chebyshev series applied exactly (to
``SERIES_TOL``), so both agree to within their tolerances, not to rounding.

A worker that dies is restarted by Ray (``max_restarts``): its constructor
rebuilds the shard from the same inputs, the driver configures it again and
hands every shard the iterate it kept of the last finished step, and the
step is repeated. Every step is a function of that iterate, so the answer
is the same bits as without the failure.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.params import FocusParams
from focusflow.focus.shards.cluster import connect, ray_module
from focusflow.focus.shards.layout import EdgeBlock
from focusflow.focus.shards.partition import check_shards
from focusflow.focus.shards.pushsum import target
from focusflow.focus.shards.worker import ShardWorker, SolveConfig
from focusflow.focus.solver import contraction_rate
from focusflow.focus.spectral import blend_series

Reduce = Literal["all-reduce", "push-sum"]
ExchangeName = Literal["object-store", "gloo", "nccl"]
REDUCES: tuple[Reduce, ...] = ("all-reduce", "push-sum")
EXCHANGES: tuple[ExchangeName, ...] = ("object-store", "gloo", "nccl")

#: Accuracy of the springs-and-heat series: far below any ``tol`` a caller
#: asks for, so the sharded and one-process answers differ by their outer
#: tolerances alone.
SERIES_TOL = 1e-15
#: Push-sum runs until every shard's estimate is within this (relative) of
#: every other's, or ``PUSH_MAX_ROUNDS``.
PUSH_EPS = 1e-12
PUSH_MAX_ROUNDS = 400
#: Restarts of one worker within one solve before the solve gives up.
MAX_RESTARTS = 4


@dataclass
class ShardInput:
    """What one shard is built from: the particles it owns (global ids) and its
    in- and out-links (``EdgeBlock``), as values or Ray object references."""

    own: Any
    links_in: list[Any]
    links_out: list[Any]
    names: list[Any] = field(default_factory=list)


@dataclass
class ShardReport:
    """What a sharded solve tells besides ``phi``."""

    shards: int
    iterations: int = 0
    converged: bool = False
    residual_history: list[float] = field(default_factory=list)
    shard_history: list[list[float]] = field(default_factory=list)
    contraction: list[float | None] = field(default_factory=list)
    series_terms: int = 0
    halo_values: int = 0
    cross_links: int = 0
    bytes_per_iteration: int = 0
    push_rounds: int = 0
    push_spread: float = 0.0
    restarts: int = 0
    shard_info: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
            "iterations": self.iterations,
            "series_terms": self.series_terms,
            "halo_values": self.halo_values,
            "cross_links": self.cross_links,
            "bytes_per_iteration": self.bytes_per_iteration,
            "push_rounds": self.push_rounds,
            "push_spread": self.push_spread,
            "restarts": self.restarts,
            "contraction": self.contraction,
            "shard_bytes": [i["bytes"] for i in self.shard_info],
            "shard_rss": [i["rss"] for i in self.shard_info],
        }


class ShardedSolve:
    """Shards of one graph on Ray actors, solved (and solved again after new links).

    ``exchange``: ``object-store`` (default; Ray moves the halo buffers, and a
    killed worker is recovered), ``gloo`` or ``nccl`` (a collective group).
    ``reduce``: ``all-reduce`` (exact, default) or ``push-sum``.
    ``incremental``: the workers keep their link lists, so that ``add_links``
    can route more to them (twice the memory of the links). ``device``:
    ``cuda`` puts each shard's vectors and products on a GPU of its own (Ray's
    ``num_gpus=1``), with ``exchange="nccl"`` between them."""

    def __init__(
        self,
        parts: Sequence[ShardInput],
        params: FocusParams,
        *,
        cluster: str | None = None,
        exchange: ExchangeName = "object-store",
        reduce: Reduce = "all-reduce",
        threads: int | None = None,
        cpus_per_shard: float | None = None,
        progress: Callable[[int, float], None] | None = None,
        incremental: bool = False,
        device: str = "cpu",
    ) -> None:
        shards = check_shards(len(parts))
        if reduce not in REDUCES:
            raise InvalidParameterError(
                f"reduce must be one of {', '.join(REDUCES)}, got {reduce!r}"
            )
        if exchange not in EXCHANGES:
            raise InvalidParameterError(
                f"exchange must be one of {', '.join(EXCHANGES)}, got {exchange!r}"
            )
        if device not in ("cpu", "cuda"):
            raise InvalidParameterError(f"device must be cpu or cuda, got {device!r}")
        if exchange == "nccl" and device != "cuda":
            raise InvalidParameterError("the nccl exchange runs between GPUs: give device='cuda'")
        if params.mode == "cyberank":
            raise InvalidParameterError("a sharded solve runs tri or diffusion, not cyberank")
        if not isinstance(params.prior, str):
            raise InvalidParameterError("a sharded solve takes prior 'uniform' or 'stake'")
        self.params = params
        self.shards = shards
        self.reduce, self.exchange_name = reduce, exchange
        self.progress = progress
        self.weights = (1.0, 0.0, 0.0) if params.mode == "diffusion" else params.weights
        self.tri = self.weights[1] > 0 or self.weights[2] > 0
        t0 = time.perf_counter()
        self.ray, self._started = connect(cluster, shards)
        ray = self.ray
        cpus = cpus_per_shard if cpus_per_shard is not None else _cpus_per_shard(ray, shards)
        self.threads = threads if threads is not None else max(1, int(cpus))
        remote = ray.remote(max_restarts=MAX_RESTARTS, max_task_retries=0)(ShardWorker)
        self.workers = []
        for i, part in enumerate(parts):
            own = part.own
            self.workers.append(
                remote.options(
                    num_cpus=cpus,
                    num_gpus=1 if device == "cuda" else 0,
                    scheduling_strategy="SPREAD",
                ).remote(
                    i,
                    shards,
                    self.tri,
                    self.threads,
                    len(part.links_in),
                    len(part.links_out),
                    incremental,
                    own,
                    *part.links_in,
                    *part.links_out,
                    *part.names,
                    device=device,
                )
            )
        # The inputs stay referenced while the workers live: a restarted worker
        # is built from them again.
        self._parts = list(parts)
        self._added: list[list[tuple[list[Any], list[Any]]]] = [[] for _ in parts]
        self.report = ShardReport(shards=shards)
        self._checkpoint: list[Any] | None = None
        self._cfg: SolveConfig | None = None
        self._needs: list[list[Any]] = []
        self._setup()
        if exchange == "nccl":
            uid = ray.get(self.workers[0].nccl_id.remote())
            ray.get([w.join_nccl.remote(uid) for w in self.workers])
        elif exchange == "gloo":
            ray.get([w.join_group.remote(f"focus-{id(self)}", exchange) for w in self.workers])
        self.report.timings["setup"] = time.perf_counter() - t0

    # --- set-up ---------------------------------------------------------------------
    def _setup(self) -> None:
        ray, p, s = self.ray, self.params, self.shards
        self._needs = self._ask_needs()
        sizes = np.array(ray.get([w.local_sizes.remote() for w in self.workers]))
        count = int(sizes[:, 0].sum())
        if count == 0:
            raise InvalidParameterError("the graph has no particles")
        touch_total = float(sizes[:, 1].sum())
        entry_max = float(sizes[:, 2].max())
        degree_max = 0.0
        coeffs: tuple[float, ...] = ()
        if self.tri:
            degree_max = max(
                ray.get([w.degree_max.remote(p.laplacian, entry_max) for w in self.workers])
            )
            lam_max = 2.0 if p.laplacian == "normalized" else 2.0 * degree_max
            _, lam_s, lam_h = self.weights
            share = lam_s / (lam_s + lam_h)
            if lam_max > 0:
                a, _ = blend_series(p.tau * lam_max / 2.0, p.mu, lam_max, share, SERIES_TOL)
                coeffs = tuple(float(x) for x in a)
            else:
                coeffs = (1.0,)
        self._cfg = SolveConfig(
            count=count,
            alpha=p.alpha,
            weights=self.weights,
            prior=str(p.prior),
            touch_total=touch_total,
            laplacian=p.laplacian,
            entry_max=entry_max,
            degree_max=degree_max,
            coeffs=coeffs,
        )
        self._configure(range(s))
        infos = ray.get([w.info.remote() for w in self.workers])
        self.report.shard_info = infos
        halo = sum(int(i["halo"]) for i in infos)
        self.report.halo_values = halo
        self.report.cross_links = sum(int(i["cross_links"]) for i in infos)
        self.report.series_terms = len(coeffs)
        exchanges = (
            (2 + max(len(coeffs) - 2, 0))
            if self.tri and len(coeffs) > 1
            else (2 if self.tri else 1)
        )
        self.report.bytes_per_iteration = 8 * halo * exchanges

    def _ask_needs(self) -> list[list[Any]]:
        """Every shard's need lists, one reference per owner."""
        s = self.shards
        return [_listed(w.needs.options(num_returns=s).remote()) for w in self.workers]

    def _configure(self, which: Sequence[int] | range) -> None:
        s = self.shards
        self.ray.get(
            [
                self.workers[i].configure.remote(self._cfg, *[self._needs[j][i] for j in range(s)])
                for i in which
            ]
        )

    @property
    def count(self) -> int:
        assert self._cfg is not None
        return self._cfg.count

    # --- the iteration -----------------------------------------------------------------
    def solve(self, x0: Sequence[Any] | None = None) -> ShardReport:
        """Iterate to ``params.tol`` from ``x0`` (one slice per shard, values or
        references; None: uniform, or the last solve's ``phi`` if there was one)."""
        p = self.params
        ray = self.ray
        t0 = time.perf_counter()
        if x0 is not None:
            self._checkpoint = [
                ray.put(np.asarray(v, dtype=np.float64)) if not _is_ref(ray, v) else v for v in x0
            ]
        self._restore()
        rep = self.report
        rep.residual_history, rep.shard_history = [], [[] for _ in range(self.shards)]
        rep.converged, rep.iterations = False, 0
        total: float | str | None = None
        for it in range(1, p.max_iter + 1):
            total, change, per_shard = self._step(total)
            if change is None:
                continue
            rep.iterations = it - 1
            rep.residual_history.append(change)
            for k, v in enumerate(per_shard):
                rep.shard_history[k].append(v)
            if self.progress is not None:
                self.progress(it - 1, change)
            if change < p.tol:
                rep.converged = True
                break
        rep.contraction = [contraction_rate(h) for h in rep.shard_history]
        rep.timings["solve"] = time.perf_counter() - t0
        return rep

    def _restore(self) -> None:
        ckpt = self._checkpoint
        self.ray.get(
            [
                w.restore.remote(None if ckpt is None else ckpt[i])
                for i, w in enumerate(self.workers)
            ]
        )

    def _step(self, total: float | str | None) -> tuple[float | str, float | None, list[float]]:
        """``advance(total)`` then the series and ``finish``; returns the next
        total, and the L1 change (None on the first step) with its shards' parts.
        A dead worker makes it recover and repeat (module docstring)."""
        ray = self.ray
        attempts = 0
        while True:
            try:
                outs = self._advance(total)
                scalars = np.array(ray.get([o[self.shards] for o in outs]))
                per_shard = [float(v) for v in scalars[:, 0]]
                dm: float | None = None
                if self.reduce == "push-sum" and self.shards > 1:
                    whole = float(self._gossip("advance")[0])
                else:
                    whole = math.fsum(scalars[:, 0])
                    dm = math.fsum(scalars[:, 1])
                change = whole if total is not None else None
                candidate = [o[self.shards + 1] for o in outs]
                if change is not None and change < self.params.tol:
                    self._checkpoint = candidate
                    return 0.0, change, per_shard
                new_total = self._finish(outs, dm)
                self._checkpoint = candidate
                return new_total, change, per_shard
            except ray.exceptions.RayActorError:
                attempts += 1
                if self.exchange_name != "object-store":
                    raise
                if attempts > MAX_RESTARTS:
                    raise
                self._recover()
                if total is not None:
                    # The blend ``total`` normalises was lost with the worker:
                    # recompute it from the checkpoint, the same bits as before.
                    outs = self._advance(None)
                    scalars = np.array(ray.get([o[self.shards] for o in outs]))
                    dm = None
                    if self.reduce == "push-sum" and self.shards > 1:
                        self._gossip("advance")
                    else:
                        dm = math.fsum(scalars[:, 1])
                    total = self._finish(outs, dm)

    def _advance(self, total: float | str | None) -> list[list[Any]]:
        s = self.shards
        arg = "push" if (self.reduce == "push-sum" and total is not None) else total
        return [w.advance.options(num_returns=s + 2).remote(arg) for w in self.workers]

    def _gossip(self, which: str) -> np.ndarray:
        """Push-sum over the shards until their estimates agree (``PUSH_EPS``)."""
        ray, s = self.ray, self.shards
        ray.get([w.push_start.remote(which) for w in self.workers])
        assert self._cfg is not None
        seed = self._cfg.push_seed
        inbox: list[list[Any]] = [[] for _ in range(s)]
        spread = math.inf
        rounds = 0
        while rounds < PUSH_MAX_ROUNDS:
            outs = [w.push_round.remote(rounds, *inbox[i]) for i, w in enumerate(self.workers)]
            inbox = [[] for _ in range(s)]
            for i, msg in enumerate(outs):
                inbox[target(rounds, i, s, seed)].append(msg)
            rounds += 1
            estimates = np.array(
                ray.get([w.push_absorb.remote(*inbox[i]) for i, w in enumerate(self.workers)])
            )
            inbox = [[] for _ in range(s)]
            spread = _spread(estimates)
            if spread <= PUSH_EPS:
                break
        self.report.push_rounds += rounds
        self.report.push_spread = max(self.report.push_spread, spread)
        return np.asarray(estimates[0])

    def _finish(self, outs: list[list[Any]], dm: float | None) -> float | str:
        """The series' terms and ``finish``; returns the blend's total (or ``"push"``)."""
        ray, s, cfg = self.ray, self.shards, self._cfg
        assert cfg is not None
        posts = [o[:s] for o in outs]
        for _ in range(max(len(cfg.coeffs) - 1, 0) if self.tri else 0):
            posts = [
                _listed(w.cheb_step.options(num_returns=s).remote(*[posts[j][i] for j in range(s)]))
                for i, w in enumerate(self.workers)
            ]
        # Under push-sum each shard takes its own estimate of the dangling mass.
        c = None if dm is None else self.params.alpha * dm + (1.0 - self.params.alpha)
        sums = ray.get(
            [
                w.finish.remote(c, *[posts[j][i] for j in range(s)])
                for i, w in enumerate(self.workers)
            ]
        )
        if self.reduce == "all-reduce" or s == 1:
            return math.fsum(sums)
        self._gossip("total")
        return "push"

    def _recover(self) -> None:
        """Wait for restarted workers, configure every one again and restore the checkpoint."""
        ray = self.ray
        self.report.restarts += 1
        deadline = time.monotonic() + 120.0
        while True:
            try:
                ray.get([w.pid.remote() for w in self.workers], timeout=30)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # A restarted worker was built from its first inputs: hand it the links
        # added since, in the order they came.
        held = ray.get([w.added.remote() for w in self.workers])
        ray.get(
            [
                w.add_links.remote(len(ins), *ins, *outs)
                for w, k, batches in zip(self.workers, held, self._added, strict=True)
                for ins, outs in batches[k:]
            ]
        )
        self._needs = self._ask_needs()
        self._configure(range(self.shards))
        self._restore()

    # --- results and changes -----------------------------------------------------------
    def gather(self) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """Global ids, ``phi`` and (where the shards hold them) keys of every
        particle, shard by shard."""
        parts = self.ray.get([w.gather.remote() for w in self.workers])
        ids = np.concatenate([p[0] for p in parts])
        phi = np.concatenate([p[1] for p in parts])
        keys = None
        if all(p[2] is not None for p in parts):
            keys = [k for p in parts for k in p[2]]
        return ids, phi, keys

    def add_links(self, blocks: Sequence[tuple[list[Any], list[Any]]]) -> None:
        """Route new links to their shards (``blocks[i]``: shard ``i``'s in- and
        out-links) and set up again; the next ``solve()`` starts from the
        current ``phi`` (a warm restart)."""
        ray = self.ray
        for kept, batch in zip(self._added, blocks, strict=True):
            kept.append((list(batch[0]), list(batch[1])))
        ray.get(
            [
                w.add_links.remote(len(ins), *ins, *outs)
                for w, (ins, outs) in zip(self.workers, blocks, strict=True)
            ]
        )
        current = ray.get([w.current.remote() for w in self.workers])
        self._setup()
        self._checkpoint = [ray.put(v) for v in current]

    def close(self) -> None:
        """Stop the workers (and the local Ray, if this solve started it)."""
        for w in self.workers:
            self.ray.kill(w, no_restart=True)
        self.workers = []
        if self._started:
            self.ray.shutdown()


def _listed(refs: Any) -> list[Any]:
    """A call's results as a list: Ray gives a single reference, not a list of
    one, for ``num_returns=1`` (one shard)."""
    return refs if isinstance(refs, list) else [refs]


def _spread(estimates: np.ndarray) -> float:
    scale = np.maximum(np.abs(estimates).max(axis=0), 1e-300)
    return float(((estimates.max(axis=0) - estimates.min(axis=0)) / scale).max())


def _is_ref(ray: Any, v: Any) -> bool:
    return isinstance(v, ray.ObjectRef)


def _cpus_per_shard(ray: Any, shards: int) -> float:
    """Logical CPUs each shard's actor asks for: the cluster's, shared out."""
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(total // shards, 1.0) if total >= shards else total / shards


__all__ = ["EdgeBlock", "ShardInput", "ShardReport", "ShardedSolve", "ray_module"]
