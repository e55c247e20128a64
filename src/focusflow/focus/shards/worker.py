"""One shard's state and steps, as the Ray actor of a sharded solve runs them.

The driver (``solve.py``) calls these methods on every shard at once, one
phase of an outer iteration at a time:

* ``advance``: normalise the last blend into the new ``phi``, report the
  shard's L1 change and dangling mass, and post the halo values the next
  products read (``x / out_weight`` for diffusion, ``sigma x`` for the
  Laplacian);
* ``cheb_step``: one term of the Chebyshev series of springs and heat
  (``spectral.blend_series``), posting the next term's halo values;
* ``finish``: the diffusion pull, teleport and dangling mass, and the blend.

Nothing here waits for another shard: the halo values travel as the
methods' extra results through Ray's object store (or through a collective
group: ``exchange.py``), and the few scalars each step needs come from the
driver. That keeps a step's bits a function of the shard's inputs, so a
restarted worker given the last iterate repeats them exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.backends.base import DEGREE_FLOOR
from focusflow.focus.shards.exchange import Exchange, ObjectStoreExchange
from focusflow.focus.shards.kernels import Product, RowProduct
from focusflow.focus.shards.layout import EdgeBlock, ShardLayout, build_layout
from focusflow.focus.shards.pushsum import PushSum


@dataclass
class SolveConfig:
    """What every shard is told before a solve: the global quantities and parameters."""

    count: int  # particles in the whole graph
    alpha: float
    weights: tuple[float, float, float]
    prior: str  # "uniform" or "stake"
    touch_total: float = 0.0
    laplacian: str = "normalized"
    entry_max: float = 0.0
    degree_max: float = 0.0
    coeffs: tuple[float, ...] = ()
    push_seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tri(self) -> bool:
        return self.weights[1] > 0 or self.weights[2] > 0


class ShardWorker:
    """A shard of a sharded solve (module docstring). Plain Python: ``solve.py``
    wraps it in ``ray.remote``; tests may call it directly."""

    def __init__(
        self,
        shard: int,
        shards: int,
        symmetric: bool,
        threads: int,
        n_in: int,
        n_out: int,
        keep_links: bool,
        own: np.ndarray,
        *blocks: Any,
        device: str = "cpu",
    ) -> None:
        if threads > 0:
            import numba

            numba.set_num_threads(max(1, min(threads, numba.get_num_threads())))
        self.shard, self.shards, self.symmetric = shard, shards, symmetric
        # Where the solve's vectors live: numpy on the host, or CuPy on the GPU
        # Ray gave this actor (the rows are built on the host and copied once).
        self.device = device
        self.xp: Any = np
        if device == "cuda":
            import importlib

            self.xp = importlib.import_module("cupy")
        elif device != "cpu":
            raise InvalidParameterError(f"device must be cpu or cuda, got {device!r}")
        self._own = np.asarray(own, dtype=np.int64)
        self._in = EdgeBlock.concat(list(blocks[:n_in]))
        self._out = EdgeBlock.concat(list(blocks[n_in : n_in + n_out]))
        self._names = _names_of(list(blocks[n_in + n_out :]))
        if self._names is not None:
            self._own = np.concatenate([self._own, self._names[0]])
        self.exchange: Exchange = ObjectStoreExchange(shard, shards, self.xp)
        self._build()
        self.keep_links = keep_links
        self._batches = 0
        if not keep_links:
            # The rows hold the links now; the lists are kept only to add links.
            self._in = self._out = EdgeBlock.empty()
        self.phi = np.zeros(self.layout.n)
        self.history: list[float] = []
        self._z: np.ndarray | None = None
        self._ext: Any = None
        self._dm = 0.0
        self.push = PushSum(shard, shards)

    # --- structure -----------------------------------------------------------------
    def _build(self) -> None:
        self.layout: ShardLayout = build_layout(
            self.shard, self.shards, self._own, self._in, self._out, self.symmetric
        )
        lay = self.layout
        keep = self._in.src != self._in.dst
        self._cross = int((self._in.owner[keep] != self.shard).sum())
        self.pull: Product = RowProduct(lay.pull.indptr, lay.pull.indices, lay.pull.data)
        self.dangling = lay.out_weight <= 0
        self.inv_out = np.where(
            self.dangling, 0.0, 1.0 / np.where(self.dangling, 1.0, lay.out_weight)
        )
        self._send: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * self.shards
        self._degrees: tuple[tuple[str, float], np.ndarray] | None = None
        self._lap_rows: RowProduct | None = None
        self._lap: Product | None = None
        self.sigma: Any = None
        self.diag: Any = None

    def info(self) -> dict[str, Any]:
        """Sizes (particles, halo, links, bytes held) and where the worker runs."""
        lay = self.layout
        held = lay.nbytes + self.pull.nbytes + self._in.nbytes + self._out.nbytes
        if self._lap_rows is not None:
            held += self._lap_rows.nbytes
        return {
            "shard": self.shard,
            "particles": lay.n,
            "halo": lay.halo.size,
            "links_in": lay.links_in,
            "links_out": lay.links_out,
            "bytes": int(held),
            "rss": _rss(),
            "pid": os.getpid(),
            "cross_links": self._cross,
        }

    def added(self) -> int:
        """How many batches of links ``add_links`` took since this worker was built."""
        return self._batches

    def current(self) -> np.ndarray:
        """This shard's ``phi`` as it is now (on the host)."""
        return self._host(self.phi)

    def _host(self, v: Any) -> np.ndarray:
        host: np.ndarray = v if self.xp is np else self.xp.asnumpy(v)
        return host

    def needs(self) -> list[np.ndarray]:
        """Per owner, the ids of its particles this shard's rows read (empty for itself)."""
        lay = self.layout
        return [lay.halo.of(j) for j in range(self.shards)]

    def add_links(self, n_in: int, *blocks: EdgeBlock) -> int:
        """Take more links (in-links of own targets, out-links of own sources) and
        rebuild the rows; ``phi`` keeps its values, new particles start at 0.
        Only for a worker made with ``keep_links``."""
        if not self.keep_links:
            raise InvalidParameterError("links can be added only to a solve made incremental")
        old_ids, old_phi = self.layout.ids, self._host(self.phi)
        self._batches += 1
        self._in = EdgeBlock.concat([self._in, *blocks[:n_in]])
        self._out = EdgeBlock.concat([self._out, *blocks[n_in:]])
        self._build()
        self.phi = np.zeros(self.layout.n)
        self.phi[np.searchsorted(self.layout.ids, old_ids)] = old_phi
        self._z = None
        return self.layout.n

    # --- global quantities asked before a solve ------------------------------------
    def local_sizes(self) -> np.ndarray:
        """``[particles, touch mass, largest entry of A]``: what the driver combines."""
        lay = self.layout
        entry_max = float(lay.sym.data.max()) if lay.sym is not None and lay.sym.nnz else 0.0
        touch = float((lay.out_weight + lay.in_weight).sum())
        return np.array([lay.n, touch, entry_max])

    def degree_max(self, laplacian: str, entry_max: float) -> float:
        """The largest degree of the shard's rows of ``A`` (scaled as ``laplacian`` scales it)."""
        return float(self._degree(laplacian, entry_max).max(initial=0.0))

    def _degree(self, laplacian: str, entry_max: float) -> np.ndarray:
        """Row sums of ``A`` as ``laplacian`` scales it (kept: the driver asks for
        the largest before ``configure`` uses them all)."""
        key = (laplacian, entry_max)
        if self._degrees is None or self._degrees[0] != key:
            self._degrees = (key, self._row_sums(laplacian, entry_max))
        return self._degrees[1]

    def _row_sums(self, laplacian: str, entry_max: float) -> np.ndarray:
        sym = self.layout.sym
        if sym is None:
            return np.zeros(self.layout.n)
        degree = np.asarray(sym.sum(axis=1)).ravel()
        if laplacian == "normalized" and entry_max > 0:
            degree = np.asarray((sym / entry_max).sum(axis=1)).ravel()
        return degree

    def configure(self, cfg: SolveConfig, *peer_needs: np.ndarray) -> None:
        """Take the solve's parameters and each peer's need list (its halo's ids
        owned here, ``peer_needs[i]`` from shard ``i``; this shard's own is empty)."""
        self.cfg = cfg
        lay = self.layout
        self._send = [
            lay.local(np.asarray(need, dtype=np.int64))
            if j != self.shard and len(need)
            else np.empty(0, dtype=np.int64)
            for j, need in enumerate(peer_needs)
        ]
        self.exchange.routes(self._send, lay.halo.bounds)
        if cfg.prior == "stake" and cfg.touch_total > 0:
            self.prior = (lay.out_weight + lay.in_weight) / cfg.touch_total
        else:
            self.prior = np.full(lay.n, 1.0 / cfg.count)
        if cfg.tri:
            if lay.sym is None:
                raise InvalidParameterError("a tri solve needs shards built with symmetric rows")
            self._set_laplacian(cfg)
        self.history = []
        if self.xp is not np:
            self._to_device()

    def _to_device(self) -> None:
        """The vectors and products of the solve on this actor's GPU."""
        from focusflow.focus.shards.kernels import DeviceProduct

        xp, lay = self.xp, self.layout
        self.inv_out = self._dev(self.inv_out)
        self.dangling = self._dev(self.dangling)
        self.prior = self._dev(self.prior)
        self.pull = DeviceProduct(
            xp, lay.pull.indptr, lay.pull.indices, lay.pull.data, lay.pull.shape[1]
        )
        if self._lap_rows is not None:
            self.sigma = self._dev(self.sigma)
            self.diag = self._dev(self.diag)
            lap = self._lap_rows
            self._lap = DeviceProduct(xp, lap.indptr, lap.indices, lap.data, lay.pull.shape[1])
        self.phi = self._dev(self.phi)

    def _dev(self, v: Any) -> Any:
        """``v`` on this actor's device (a host array is copied there once)."""
        return self.xp.asarray(v) if isinstance(v, np.ndarray) else v

    def _set_laplacian(self, cfg: SolveConfig) -> None:
        lay = self.layout
        assert lay.sym is not None
        degree = self._degree(cfg.laplacian, cfg.entry_max)
        if cfg.laplacian == "normalized":
            linked = degree > 0
            linked &= degree > DEGREE_FLOOR * cfg.degree_max
            self.sigma = np.where(linked, 1.0 / np.sqrt(np.where(linked, degree, 1.0)), 1.0)
            self.diag = linked.astype(np.float64)
            self.lam_max = 2.0
            data = lay.sym.data / cfg.entry_max if cfg.entry_max > 0 else lay.sym.data
        else:
            self.sigma = np.ones(lay.n)
            self.diag = degree
            self.lam_max = 2.0 * cfg.degree_max
            data = lay.sym.data
        self._lap_rows = RowProduct(lay.sym.indptr, lay.sym.indices, data)
        self._lap = self._lap_rows

    def restore(self, phi: np.ndarray | None) -> None:
        """Set ``phi`` (this shard's slice; None: uniform over the whole graph)."""
        xp = self.xp
        self.phi = (
            xp.full(self.layout.n, 1.0 / self.cfg.count)
            if phi is None
            else xp.array(np.asarray(phi), dtype=np.float64)
        )
        self._z = None

    def nccl_id(self) -> Any:
        """A new NCCL communicator id, for ``join_nccl`` on every shard."""
        from focusflow.focus.shards.exchange import nccl_id

        return nccl_id()

    def join_nccl(self, uid: Any) -> None:
        """Exchange halos between GPUs by NCCL (every shard calls this at once)."""
        from focusflow.focus.shards.exchange import NcclExchange

        fresh = NcclExchange(self.shard, self.shards, uid, self.xp)
        fresh.routes(self._send, self.layout.halo.bounds)
        self.exchange = fresh

    def join_group(self, group: str, backend: str) -> None:
        """Exchange halos through the collective group ``group`` (``exchange.py``)
        instead of the object store; the routes are kept."""
        import importlib

        from focusflow.focus.shards.exchange import CollectiveExchange

        col: Any = importlib.import_module("ray.util.collective")

        if not col.is_group_initialized(group):
            col.init_collective_group(self.shards, self.shard, backend=backend, group_name=group)
        fresh = CollectiveExchange(self.shard, self.shards, group, self.xp)
        fresh.routes(self._send, self.layout.halo.bounds)
        self.exchange = fresh

    # --- one outer iteration ----------------------------------------------------------
    def advance(self, total: float | str | None) -> list[Any]:
        """``phi <- z / total`` (the last blend, normalised; ``"push"``: by this
        shard's push-sum estimate of the total; None: keep ``phi``, as after a
        restore), then post the halo values of the next products. Returns the
        posts, ``[L1 change, dangling mass]`` of this shard, and ``phi``."""
        change = 0.0
        if total is not None:
            if self._z is None:
                raise RuntimeError("advance without a blend to normalise")
            if total == "push":
                total = float(self.push.estimate()[0])
            new = self._z / float(total)
            change = float(self.xp.abs(new - self.phi).sum())
            self.phi = new
            self.history.append(change)
        self._z = None
        self._dm = float(self.phi[self.dangling].sum())
        # What this step's products read of this shard, kept for its own rows
        # as well as posted for the others'.
        self._u = self.phi * self.inv_out
        posts: list[np.ndarray] = [self._u]
        if self.cfg.tri:
            self._k = 0
            self._t_prev: np.ndarray | None = None
            self._t_cur = self.sigma * self.phi
            self._acc = self.cfg.coeffs[0] * self._t_cur
            self._st = self.sigma * self._t_cur
            posts.append(self._st)
        out = self.exchange.post(posts)
        return [*out, np.array([change, self._dm]), self._host(self.phi)]

    def _extended(self, own: Any, halo: Any) -> Any:
        """``[own | halo]`` in a buffer kept between products."""
        n = own.shape[0]
        size = n + halo.shape[0]
        if self._ext is None or self._ext.shape[0] != size:
            self._ext = self.xp.empty(size)
        self._ext[:n] = own
        self._ext[n:] = halo
        return self._ext

    def _lap_times(self, cur: np.ndarray, halo: np.ndarray) -> np.ndarray:
        """``Ls cur`` from ``sigma cur`` (``self._st``, as posted) and the halo's."""
        assert self._lap is not None
        out: np.ndarray = self.diag * cur - self.sigma * self._lap(self._extended(self._st, halo))
        return out

    def cheb_step(self, *incoming: np.ndarray) -> list[np.ndarray]:
        """The next term of the series: ``T_{k+1}`` from ``T_k`` and ``T_{k-1}``."""
        halos = self.exchange.collect(list(incoming), 2 if self._k == 0 else 1)
        if self._k == 0:
            self._u_halo = halos[0]
        halo = halos[-1]
        scale = 2.0 / self.lam_max
        buf = self._lap_times(self._t_cur, halo)
        if self._t_prev is None:
            nxt = scale * buf - self._t_cur
        else:
            nxt = 2.0 * (scale * buf - self._t_cur) - self._t_prev
        self._k += 1
        self._acc += self.cfg.coeffs[self._k] * nxt
        self._t_prev, self._t_cur = self._t_cur, nxt
        if self._k + 1 < len(self.cfg.coeffs):
            self._st = self.sigma * nxt
            return self.exchange.post([self._st])
        return self.exchange.post([])

    def finish(self, c: float | None, *incoming: np.ndarray) -> float:
        """The blend ``z`` of this shard: ``lam_d (alpha P^T phi + c prior) +
        (lam_s + lam_h) sigma^-1 g(Ls) sigma phi``; returns its sum here.
        ``c = alpha * dangling mass + (1 - alpha)`` (None: push-sum's estimate)."""
        cfg = self.cfg
        if cfg.tri and len(cfg.coeffs) > 1:
            self.exchange.collect(list(incoming), 0)
            u_halo = self._u_halo
        else:
            u_halo = self.exchange.collect(list(incoming), 2 if cfg.tri else 1)[0]
        if c is None:
            c = cfg.alpha * self.push.estimate()[1] + (1.0 - cfg.alpha)
        y = cfg.alpha * self.pull(self._extended(self._u, u_halo)) + c * self.prior
        if cfg.tri:
            lam_d, lam_s, lam_h = cfg.weights
            y *= lam_d
            y += (lam_s + lam_h) * (self._acc / self.sigma)
        self._z = y
        return float(y.sum())

    # --- push-sum ------------------------------------------------------------------------
    def push_start(self, which: str) -> None:
        """Start push-sum on this shard's ``[blend total]`` (``which="total"``) or
        ``[L1 change, dangling mass]`` of the last advance (``"advance"``)."""
        if which == "total":
            if self._z is None:
                raise RuntimeError("push-sum of a blend that was not made")
            self.push.start(np.array([float(self._z.sum()), 0.0]))
        else:
            change = self.history[-1] if self.history else 0.0
            self.push.start(np.array([change, self._dm]))

    def push_round(self, r: int, *incoming: Any) -> Any:
        """One gossip round: take the messages sent here, keep half, send half."""
        return self.push.round(r, self.cfg.push_seed, list(incoming))

    def push_absorb(self, *incoming: Any) -> np.ndarray:
        """Take the last round's messages; returns this shard's estimate."""
        self.push.absorb(list(incoming))
        return np.asarray(self.push.estimate())

    # --- results ------------------------------------------------------------------------------
    def gather(self) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
        """``(global ids, phi, keys)`` of this shard (keys: where it was given names)."""
        keys = None
        if self._names is not None:
            ids, names = self._names
            keys = [names[k] for k in np.searchsorted(ids, self.layout.ids)]
        return self.layout.ids, self._host(self.phi), keys

    def pid(self) -> int:
        return os.getpid()


def _names_of(blocks: list[tuple[np.ndarray, list[str]]]) -> tuple[np.ndarray, list[str]] | None:
    """The particles' names from the readers' ``(ids, keys)`` blocks: ids
    ascending, one name each; ``invalid_parameter`` where two keys hash to one id."""
    if not blocks:
        return None
    ids = np.concatenate([b[0] for b in blocks]).astype(np.int64, copy=False)
    keys = [k for b in blocks for k in b[1]]
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    names = [keys[k] for k in order]
    first = np.ones(ids.shape[0], dtype=bool)
    first[1:] = ids[1:] != ids[:-1]
    for k in np.flatnonzero(~first):
        if names[k] != names[k - 1]:
            raise InvalidParameterError(
                f"particles {names[k - 1]!r} and {names[k]!r} hash to one id;"
                " solve this graph in one process"
            )
    return ids[first], [names[k] for k in np.flatnonzero(first)]


def _rss() -> int:
    """Resident bytes of this process (Linux), 0 where unknown."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0
