"""FocusEngine: focus kept current across blocks of edge deltas.

A block appends links and stake changes to the graph; ``apply()`` patches the
snapshot (never rebuilds it unless the overlay has grown large) and updates
focus from the previous state instead of solving from scratch:

* ``diffusion`` mode with the uniform prior keeps the unnormalised linear
  system and its residual (``push.py``): only the residual along the changed
  rows moves, and forward push spends work where that residual is, with a
  guaranteed L1 error of at most ``tol`` against the exact new equilibrium;
* other modes warm-start the coupled iteration from the previous focus (and the
  springs/heat solver states), which converges in fewer iterations;
* on a GPU, a block whose links have final weights (edge lists, a neuron's
  first links) skips the host patch: the links go to the device as
  they are, and the host snapshot takes them in later, at the next block that
  needs it (stake moves, compaction) or when someone asks for it.

The result equals a cold solve on the final graph within the tolerance; the
tests check it over many random batches.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.core.structure import Check
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.base import (
    AdoptingBackend,
    CheckingBackend,
    DeviceArray,
    DeviceVectors,
    GraphOperator,
    Progress,
    capabilities,
)
from focusflow.focus.params import FocusParams, make_params
from focusflow.focus.push import check_push_state, delta_residual, push
from focusflow.focus.result import DeferredFocusResult, Diagnostics, FocusResult
from focusflow.focus.solver import make_operator, prior_vector, solve, total_of
from focusflow.focus.spectral import HeatState, SpringsState
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.links import Cyberlink, FactorBatch, StakeBatch
from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    from focusflow.focus.backends.numba_cpu import NumbaOperator

#: What an engine always has; ``_version`` comes with its first operator and
#: the push candidates with its first push.
_ENGINE_FIELDS = (
    "graph",
    "params",
    "backend",
    "_snap",
    "_epoch",
    "_op",
    "_phi",
    "_xhat",
    "_r",
    "_rsum",
    "_springs",
    "_heat",
    "result",
    "_perm_dev",
    "_seen_links",
    "_seen_log",
    "deferred_links",
)
_ENGINE_LATER = ("_version", "_cand", "_ncand", "_in_cand")

#: Push only when the block left at most this many times the target residual:
#: on well-connected graphs a wider perturbation spreads over the whole graph
#: before it decays, and parallel passes beat sequential pushes there.
PUSH_RATIO = 16.0


@dataclass(frozen=True)
class PushState:
    """The unnormalised system forward push keeps between blocks
    (``FocusEngine.uses_push``): ``x``, its residual ``r`` and the residual's
    running L1 sum, and the particles listed as candidates, in list order."""

    x: np.ndarray
    r: np.ndarray
    rsum: float
    candidates: np.ndarray


@dataclass(frozen=True)
class EngineState:
    """What an engine carries from one block to the next besides its graph
    (whose snapshot decides the operator's matrices): the focus it warm-starts
    from (internal order), the springs solve's last iterate, push's system
    where push runs, and the rows the operator's in-link storage was built
    over (its pull's chunks are part of its bits). The rest is rebuilt by the
    next block before it is read: the operator's symmetric matrix, buffers and
    scratch, the springs solve's residual (taken on the previous matrix) and
    heat's last result (each block starts heat afresh)."""

    focus: np.ndarray
    springs: np.ndarray | None
    sell_rows: int
    push: PushState | None


class FocusEngine:
    """Holds a graph, its focus, and the solver state for incremental updates."""

    # Set with the first operator (``_version``) and the first push (the
    # candidates): ``_ENGINE_LATER``.
    _version: int
    _cand: np.ndarray
    _ncand: int
    _in_cand: np.ndarray

    def __init__(
        self,
        graph: Cybergraph,
        params: FocusParams | None = None,
        *,
        backend: str = "auto",
        **overrides: Any,
    ) -> None:
        self.graph = graph
        self.params = make_params(params, **overrides)
        if self.params.mode == "cyberank":
            raise ValueError("FocusEngine runs tri or diffusion; use compute() for cyberank")
        self.backend = get_backend(backend)
        self.params.check_backend(self.backend.name)
        self._snap: Snapshot | None = None
        self._epoch = -1
        self._op: GraphOperator | None = None
        #: Focus in internal order, where the operator keeps its vectors.
        self._phi: DeviceArray | None = None
        self._xhat: np.ndarray | None = None
        self._r: np.ndarray | None = None
        self._rsum = 0.0
        self._springs = SpringsState()
        self._heat = HeatState()
        self.result: FocusResult | None = None
        #: The snapshot's permutation and its copy on the operator's device.
        self._perm_dev: tuple[np.ndarray, DeviceArray] | None = None
        # What the operator holds: links [0, _seen_links) and log entries up
        # to _seen_log; the last deferred_links of them it took raw, after its
        # last refresh from a patched snapshot.
        self._seen_links = 0
        self._seen_log = 0
        self.deferred_links = 0

    # --- structure -----------------------------------------------------------
    def check_structure(
        self, check: Check, graph: Cybergraph, params: FocusParams, backend: str
    ) -> None:
        """An engine over ``graph`` running ``params`` on ``backend`` (a host
        backend that checks its operators), whose state the next ``apply``
        reads as it is: the graph's own snapshot (checked with the graph)
        bound to the operator the backend checks, the focus vector of the
        operator's length, the push system where push runs
        (``push.check_push_state``), the springs and heat states, the last
        result, and the counters of what the operator has seen within the
        graph's links and log. A state that has not solved yet holds none."""
        a = check.fields(self, FocusEngine, _ENGINE_FIELDS, _ENGINE_LATER)
        if a["graph"] is not graph:
            check.fail("graph", "is not the state's graph")
        if type(a["params"]) is not FocusParams or a["params"] != params:
            check.fail("params", "are not the state's focus parameters")
        host = get_backend(backend)
        if type(a["backend"]) is not type(host) or vars(a["backend"]):
            check.fail("backend", f"is not the {backend} backend")
        if not isinstance(host, CheckingBackend):
            check.fail("backend", f"{backend} cannot check its operators")
        check.integer("_seen_links", a["_seen_links"], 0, graph.n_links)
        check.integer("_seen_log", a["_seen_log"], graph.log.trimmed, graph.log.head)
        check.integer("deferred_links", a["deferred_links"], 0, 0)
        if a["_perm_dev"] is not None:
            check.fail("_perm_dev", "is set on a host backend")
        check.integer("_epoch", a["_epoch"], -1)
        snap = a["_snap"]
        if snap is not None:
            if snap is not graph._snapshot:
                check.fail("_snap", "is not the graph's snapshot")
            host.check_operator(a["_op"], check.at("_op"), snap, params)
        SpringsState.check_structure(a["_springs"], check.at("_springs"), host.check_matrix)
        HeatState.check_structure(a["_heat"], check.at("_heat"), host.check_matrix)
        if a["_phi"] is None:
            unset = ("_snap", "_op", "_xhat", "_r", "result", *_ENGINE_LATER)
            for name in unset:
                if a.get(name) is not None:
                    check.fail(name, "is set before the first solve")
            return
        if snap is None:
            check.fail("_snap", "is missing beside a focus vector")
        check.integer("_epoch", a["_epoch"], graph.epoch, graph.epoch)
        check.integer("_version", a.get("_version"), snap.version, snap.version)
        n = snap.n
        check.array("_phi", a["_phi"], np.float64, n, finite=True)
        if self.uses_push:
            check_push_state(check, a, n)
        else:
            for name in ("_xhat", "_r", "_cand", "_ncand", "_in_cand"):
                if a.get(name) is not None:
                    check.fail(name, "is set where push does not run")
            check.number("_rsum", a["_rsum"])
        FocusResult.check_structure(a["result"], check.at("result"), n)

    # --- state between blocks ---------------------------------------------------
    def state(self) -> EngineState | None:
        """What :meth:`load_state` needs besides the graph (views, not copies);
        None before the first solve. Of a numba engine only: a GPU engine's
        state is taken from its numba form (``moved``)."""
        if self._phi is None:
            return None
        op = self._bound_op()
        if self.backend.name != "numba" or not isinstance(self._phi, np.ndarray):
            raise ValueError(f"the state of a {self.backend.name} engine is taken from numba's")
        push = None
        if self.uses_push:
            push = PushState(
                self._system_x(), self._system_r(), self._rsum, self._cand[: self._ncand]
            )
        y = self._springs.y
        return EngineState(
            focus=self._phi,
            springs=y if isinstance(y, np.ndarray) and len(y) == op.n else None,
            sell_rows=self._push_op().sell_rows,
            push=push,
        )

    def load_state(self, state: EngineState, diagnostics: Diagnostics) -> None:
        """Take ``state`` into this fresh numba engine, whose graph holds the
        snapshot it belongs to: the next ``apply`` computes the bits the
        engine that left ``state`` would have. ``diagnostics`` describe the
        last solve (its result's). StructureError names a field that does not
        fit the snapshot: a vector of another length or not finite, a push
        system where push does not run (or none where it does), candidates
        repeated or outside the particles, in-link rows outside the base's
        particles and the snapshot's."""
        if self._phi is not None or self.backend.name != "numba":
            raise ValueError("load_state fills a fresh numba engine")
        check = Check()
        snap = self.graph.snapshot()
        n = snap.n
        rows = check.integer("sell_rows", state.sell_rows, snap.base_n, n)
        phi = check.array("focus", state.focus, np.float64, n, finite=True)
        springs = check.optional_array("springs", state.springs, np.float64, n, finite=True)
        push = state.push
        if (push is not None) != self.uses_push:
            check.fail("push", "is kept where push does not run" if push else "is missing")
        self._bind(snap)
        self._push_op().rebuild_sell(rows)
        self._phi = phi
        if springs is not None:
            self._springs = SpringsState(y=springs)
        if push is not None:
            self._xhat = check.array("push x", push.x, np.float64, n, finite=True)
            self._r = check.array("push r", push.r, np.float64, n, finite=True)
            self._rsum = check.number("push rsum", push.rsum)
            cand = check.array("push candidates", push.candidates, np.int64, lo=0, hi=n)
            if np.any(np.bincount(cand, minlength=n) > 1):
                check.fail("push candidates", "lists a particle twice")
            self._cand = np.empty(n, dtype=np.int64)
            self._cand[: len(cand)] = cand
            self._ncand = len(cand)
            self._in_cand = np.zeros(n, dtype=np.bool_)
            self._in_cand[cand] = True
        self._mark_seen(0)
        self._publish(diagnostics)

    # --- moving between backends ----------------------------------------------
    def moved(self, backend: str) -> FocusEngine:
        """This engine's state on ``backend``: the same matrices, focus and
        solver states, so that the next blocks compute the bits they would
        have here. Returns self where it runs there already.

        An exact arithmetic moves between numba and cuda (whose exact operator
        computes numba's bits on a GPU): a GPU node checkpoints its chain's
        focus, and sends it to peers, in the numba form every node loads, and
        takes a loaded one back to its GPU. The copy shares the graph; this
        engine is not used after (its operator's matrices are the copy's).
        InvalidParameterError where the operator cannot move."""
        target = get_backend(backend)
        if target.name == self.backend.name:
            return self
        self.params.check_backend(target.name)
        twin = copy.copy(self)
        twin.backend = target
        twin._perm_dev = None
        twin._springs = copy.copy(self._springs)
        twin._heat = copy.copy(self._heat)
        if self._op is None:
            return twin
        if not isinstance(target, AdoptingBackend):
            raise InvalidParameterError(f"the {target.name} backend takes no other operator")
        old = capabilities(self._op).device
        twin._op = target.adopt(self._op)
        new = capabilities(twin._op).device

        def move(v: DeviceArray | None) -> DeviceArray | None:
            if v is None:
                return None
            if new is None:
                return v if isinstance(v, np.ndarray) or old is None else old.to_host(v)
            return new.from_host(v) if isinstance(v, np.ndarray) else v

        twin._phi = move(self._phi)
        s_state, h_state = twin._springs, twin._heat
        s_state.y, s_state.r, s_state.rhs = move(s_state.y), move(s_state.r), move(s_state.rhs)
        h_state.phi, h_state.out = move(h_state.phi), move(h_state.out)
        if isinstance(self.result, DeferredFocusResult):
            r = self.result
            twin.result = FocusResult(
                focus=r.focus,
                params=r.params,
                backend=r.backend,
                diagnostics=r.diagnostics,
                keys=r.keys,
            )
        return twin

    # --- public --------------------------------------------------------------
    @property
    def operator(self) -> GraphOperator | None:
        """The operator the engine solves on (None before its first solve)."""
        return self._op

    @property
    def uses_push(self) -> bool:
        p = self.params
        # Push keeps its residual with numpy sums: exact arithmetic runs the
        # warm iteration instead, whose every sum has a fixed order.
        return (
            p.mode == "diffusion"
            and not p.exact
            and isinstance(p.prior, str)
            and p.prior == "uniform"
            and self.backend.name == "numba"
        )

    def compute(self, progress: Progress | None = None) -> FocusResult:
        """Cold solve on the current graph; resets the incremental state."""
        t0 = time.perf_counter()
        snap = self.graph.snapshot()
        self._bind(snap)
        self._springs, self._heat = SpringsState(), HeatState()
        self._mark_seen(0)
        phi, diag = self._solve(None, progress)
        self._phi = phi
        if self.uses_push:
            diag.inner = self._init_linear_system()
        diag.timings["total"] = time.perf_counter() - t0
        return self._publish(diag)

    def apply(
        self,
        links: Sequence[Cyberlink] | None = None,
        stakes: Mapping[str, float] | None = None,
    ) -> FocusResult:
        """Add ``links``/``stakes`` (optional; the graph may already hold them) and update."""
        if links:
            self.graph.add_cyberlinks(links)
        if stakes:
            ids = self.graph.add_neurons(list(stakes))
            self.graph.set_stakes(ids, np.fromiter(stakes.values(), dtype=np.float64))
        if self._phi is None:
            return self.compute()
        t0 = time.perf_counter()
        fresh = self._fresh_links()
        if fresh is not None:
            return self._apply_fresh(fresh, t0)
        snap, info = self.graph.refresh(old_rows=self.uses_push)
        t_patch = time.perf_counter() - t0
        t = time.perf_counter()
        if snap is not self._snap or info is None or self.graph.epoch != self._epoch:
            self._rebind(snap)
            info = None
        elif info.version_before != self._version:
            # Someone refreshed the graph's snapshot behind our back. The graph
            # keeps its last patch records: the operator takes what they changed
            # (the push path needs each patch's old rows, which do not merge).
            missed = None if self.uses_push else self.graph.patches_since(self._version)
            if missed is not None:
                info = missed
                self._bound_op().refresh(info)
            else:
                self._bound_op().refresh()
                self._rederive()
                info = None
        else:
            self._bound_op().refresh(info)
        self._version = snap.version
        self._mark_seen(0)
        t_refresh = time.perf_counter() - t
        diag = self._update_push(info) if self.uses_push else self._update_warm(info)
        diag.timings["patch"] = t_patch
        diag.timings["refresh"] = t_refresh
        diag.timings["total"] = time.perf_counter() - t0
        return self._publish(diag)

    # --- blocks without a host patch -------------------------------------------
    def _fresh_links(
        self,
    ) -> tuple[tuple[DeviceArray, DeviceArray, np.ndarray], dict[str, float]] | None:
        """The links added since the operator last saw the graph, as internal
        ``(src, dst, weight)``, when they may reach it without a host patch, and
        the seconds each step of finding them took.

        That needs an operator taking raw links (the cuda one, and the numpy
        reference), the uniform prior (other priors are built from the host
        snapshot), no compaction due, and final weights: anonymous links, or
        links of neurons all of whose links arrived since (a neuron that linked
        before, or whose stake moved after, re-weighs links the operator
        already holds), and no link factor set since (it re-weighs older
        links too). None means: patch the host snapshot.
        """
        p = self._run_params()
        if (
            capabilities(self._op).appender is None
            or not (isinstance(p.prior, str) and p.prior == "uniform")
            or self.graph.needs_compaction()
        ):
            return None
        g = self.graph
        t0 = time.perf_counter()
        first, last = self._seen_links, g.n_links
        links = g.links()
        neuron = links.neuron[first:last]
        named = neuron[neuron >= 0].astype(np.int64)
        entries = g.log.since(self._seen_log)
        if any(isinstance(e.batch, FactorBatch) for e in entries):
            return None
        moved = [e.batch.neuron for e in entries if isinstance(e.batch, StakeBatch)]
        check = np.unique(np.concatenate([named, *moved]).astype(np.int64))
        if len(check):
            counts = np.bincount(named, minlength=g.n_neurons)
            if np.any(g.neudeg[check] != counts[check]):
                return None
        t1 = time.perf_counter()
        weights = g.link_weight_range(first, last)
        t2 = time.perf_counter()
        src, dst = self._internal_ids(links.src[first:last], links.dst[first:last])
        fresh = (src, dst, weights)
        # The host part of a deferred block, by step: it varies between blocks
        # by milliseconds on a GPU host, and a total alone cannot say where.
        steps = {
            "links_check": t1 - t0,
            "links_weights": t2 - t1,
            "links_ids": time.perf_counter() - t2,
        }
        return fresh, steps

    def _apply_fresh(
        self,
        found: tuple[tuple[DeviceArray, DeviceArray, np.ndarray], dict[str, float]],
        t0: float,
    ) -> FocusResult:
        fresh, steps = found
        t = time.perf_counter()
        op = self._bound_op()
        appender = capabilities(op).appender
        if appender is None:  # _fresh_links offers links only to an appender
            raise TypeError(f"the {op.name} operator takes no raw links")
        appender.append_links(*fresh, self.graph.n_particles)
        t_append = time.perf_counter() - t
        self.deferred_links += len(fresh[0])
        self._mark_seen(self.deferred_links)
        diag = self._update_warm(None)
        diag.timings["links"] = t - t0
        diag.timings.update(steps)
        diag.timings["append"] = t_append
        diag.timings["total"] = time.perf_counter() - t0
        return self._publish(diag)

    def _internal_ids(self, *ids: np.ndarray) -> list[DeviceArray]:
        """Particle ids in the operator's order, where the operator keeps its
        vectors: a GPU operator maps them on the device. On the H100's host the
        lookup of a block's 2 x 10^5 endpoints in an 8M-entry permutation (64
        MB, random reads) took 7-11 ms of a 17-22 ms block; uploading the ids
        and gathering there takes a fraction of a millisecond."""
        op = self._op
        device = capabilities(op).device
        if device is None:
            snap = self._bound_snap()
            return [snap.internal_ids(i) for i in ids]
        perm = self._device_perm(self.graph.n_particles)
        return [perm[device.from_host(i)] for i in ids]

    def _device_perm(self, n: int) -> DeviceArray:
        """The snapshot's permutation on the operator's device (uploaded once per
        snapshot layout), extended to ``n`` entries: particles added since the
        snapshot last grew keep their own ids."""
        snap, device = self._bound_snap(), self._device()
        if self._perm_dev is None or self._perm_dev[0] is not snap.perm:
            self._perm_dev = (snap.perm, device.from_host(snap.perm))
        perm = self._perm_dev[1]
        if len(perm) < n:
            xp = device.xp
            perm = xp.concatenate([perm, xp.arange(len(perm), n, dtype=perm.dtype)])
            self._perm_dev = (snap.perm, perm)
        return perm

    @property
    def seen_log(self) -> int:
        """The sequence number of the last graph log entry this engine has
        taken in: entries up to it may be trimmed (``DeltaLog.trim``)."""
        return self._seen_log

    def _mark_seen(self, deferred: int) -> None:
        self._seen_links = self.graph.n_links
        self._seen_log = self.graph.log.head
        self.deferred_links = deferred

    # --- state -----------------------------------------------------------------
    def _run_params(self) -> FocusParams:
        p = self.params
        return p.with_(weights=(1.0, 0.0, 0.0)) if p.mode == "diffusion" else p

    def _bound_op(self) -> GraphOperator:
        """The operator the engine is bound to (from its first solve on)."""
        assert self._op is not None, "the engine has not solved yet"
        return self._op

    def _bound_snap(self) -> Snapshot:
        """The snapshot the operator was made on (from the first solve on)."""
        assert self._snap is not None, "the engine has not solved yet"
        return self._snap

    def _bound_phi(self) -> DeviceArray:
        """Focus in internal order (from the first solve on)."""
        assert self._phi is not None, "the engine has not solved yet"
        return self._phi

    def _push_op(self) -> NumbaOperator:
        """The operator push reads the out-weights of: numba's (``uses_push``)."""
        return cast("NumbaOperator", self._bound_op())

    def _system_x(self) -> np.ndarray:
        """``x`` of the unnormalised system push keeps (where push runs)."""
        assert self._xhat is not None, "push has no system"
        return self._xhat

    def _system_r(self) -> np.ndarray:
        """The residual of the unnormalised system push keeps (where push runs)."""
        assert self._r is not None, "push has no system"
        return self._r

    def _solve(
        self,
        x0: DeviceArray | None,
        progress: Progress | None = None,
        params: FocusParams | None = None,
    ) -> tuple[DeviceArray, Diagnostics]:
        """The coupled iteration on the current operator, keeping the inner states.

        On a GPU operator focus stays on the device between blocks: a block
        uploads only what its patch changed, and the answer is read back when
        someone asks for it (``_publish``), not per block.
        """
        if self.params.model != "blend":
            return self._minimise(x0)
        prior = self._prior()
        device = capabilities(self._op).device
        if device is not None and isinstance(x0, np.ndarray):
            x0 = device.from_host(x0)
        phi, diag = solve(
            self._bound_op(),
            params if params is not None else self._run_params(),
            prior,
            x0,
            springs_state=self._springs,
            heat_state=self._heat,
            progress=progress,
        )
        return phi, diag

    def _minimise(self, x0: DeviceArray | None) -> tuple[np.ndarray, Diagnostics]:
        """The free-energy model's focus on the bound snapshot
        (``energy_exact.model_focus``), started from ``x0``: the last block's
        focus in internal order, new particles at 1/n (uniform on a cold
        solve). The minimiser's bits depend on its inputs alone (it restarts
        its springs solve every call), so this warm start is all a block
        carries to the next: the checkpoint's focus vector."""
        from focusflow.focus.energy_exact import model_focus

        snap = self._bound_snap()
        host = self._host(x0)
        start = None if host is None else snap.to_particle_order(host)
        focus, diag = model_focus(snap, self.params, start)
        return np.ascontiguousarray(snap.to_internal_order(focus)), diag

    def _prior(self) -> DeviceArray:
        """The teleport vector, made where the operator keeps its vectors."""
        xp = capabilities(self._op).xp
        prior = self.params.prior
        n = self._bound_op().n
        if isinstance(prior, str) and prior == "uniform":
            return xp.full(n, 1.0 / n)
        vec = prior_vector(self._bound_snap(), prior, self._op)
        return vec if xp is np else self._device().from_host(vec)

    def _host(self, vec: DeviceArray | None) -> np.ndarray | None:
        """A vector of the operator's (possibly on a GPU) as a numpy array."""
        if vec is None or isinstance(vec, np.ndarray):
            return vec
        return self._device().to_host(vec)

    def _device(self) -> DeviceVectors:
        """The operator as a keeper of device vectors (only such operators hand
        out vectors that are not numpy arrays)."""
        device = capabilities(self._op).device
        if device is None:
            raise TypeError(f"the {self._bound_op().name} operator keeps its vectors on the host")
        return device

    def _bind(self, snap: Snapshot) -> None:
        self._snap = snap
        self._epoch = self.graph.epoch
        self._version = snap.version
        self._op = make_operator(self.backend, snap, self.params.precision, self.params.arithmetic)

    def _rederive(self) -> None:
        """Recompute the residual from scratch on the current snapshot."""
        n = self._bound_snap().n
        self._phi = self._host(self._phi)
        assert self._phi is not None  # the engine has solved
        grow = n - len(self._phi)
        if grow:
            self._phi = np.concatenate([self._phi, np.full(grow, 1.0 / n)])
            self._phi /= total_of(self._bound_op(), self._phi)
        self._springs, self._heat = SpringsState(), HeatState()
        if self._xhat is not None:
            self._xhat = np.concatenate([self._xhat, np.zeros(grow)])
            self._recompute_residual()
            self._cand = np.empty(n, dtype=np.int64)
            self._ncand = 0
            self._in_cand = np.zeros(n, dtype=np.bool_)

    def _rebind(self, snap: Snapshot) -> None:
        """New snapshot (compaction): carry the state over through particle order."""
        old = self._bound_snap()
        host = self._host(self._phi)
        assert host is not None  # the engine has solved
        phi = old.to_particle_order(host)
        xhat = old.to_particle_order(self._xhat) if self._xhat is not None else None
        self._bind(snap)
        grow = snap.n - len(phi)
        phi = np.concatenate([phi, np.full(grow, 1.0 / snap.n)])
        self._phi = snap.to_internal_order(phi / total_of(self._bound_op(), phi))
        self._springs, self._heat = SpringsState(), HeatState()
        if xhat is not None:
            self._xhat = snap.to_internal_order(np.concatenate([xhat, np.zeros(grow)]))
            self._recompute_residual()
            self._cand = np.empty(snap.n, dtype=np.int64)
            self._ncand = 0
            self._in_cand = np.zeros(snap.n, dtype=np.bool_)

    def _init_linear_system(self) -> dict[str, int]:
        """Derive the unnormalised system from ``phi``, solved to a tighter tolerance.

        The tighter solve leaves a residual well under the accuracy target
        everywhere, so later blocks meet the target by pushing only where they
        changed things. Returns the work counts of the extra iterations and push.
        """
        run = self._run_params()
        tight = run.tol * (1.0 - self.params.alpha) / 16
        phi, diag = self._solve(self._phi, params=run.with_(tol=tight))
        self._phi = phi
        counts = self._derive_system(phi, polish=True)
        counts["sweeps"] = diag.iterations
        return counts

    def _derive_system(self, phi: np.ndarray, polish: bool = False) -> dict[str, int]:
        """Scale ``phi`` to the unnormalised system and compute its residual."""
        alpha = self.params.alpha
        n = len(phi)
        dangling_mass = float(phi[self._push_op().dangling].sum())
        scale = (1.0 - alpha) * n / (1.0 - alpha + alpha * dangling_mass)
        self._xhat = phi * scale
        self._recompute_residual()
        counts = {"pushes": 0, "push_work": 0, "sweeps": 0}
        if polish:
            self._cand = np.arange(n, dtype=np.int64)
            self._ncand = n
            self._in_cand = np.ones(n, dtype=np.bool_)
            counts = self._push(0.125)
        self._cand = np.empty(n, dtype=np.int64)
        self._ncand = 0
        self._in_cand = np.zeros(n, dtype=np.bool_)
        return counts

    def _recompute_residual(self) -> None:
        """Exact ``r = b + alpha P^T x - x`` by one full product (after rebuilds)."""
        alpha = self.params.alpha
        x = self._system_x()
        op = self._push_op()
        z = x * op.inv_out
        r = np.empty(len(x))
        op.pull(z, r, alpha)
        r += (1.0 - alpha) - x
        self._r = r
        self._rsum = float(np.abs(r).sum())

    def _target(self) -> float:
        """Residual bound that guarantees ``||phi - phi*||_1 <= tol``.

        ``||x - x*||_1 <= ||r||_1 / (1 - alpha)`` for the unnormalised system, and
        normalising at most doubles the relative error, hence the factor 1/2.
        This is stricter than the cold solver's stop rule (whose error is about
        ``tol * rho / (1 - rho)`` for a contraction rate ``rho``), so an
        incremental answer is never less accurate than a cold one.
        """
        return 0.5 * (1.0 - self.params.alpha) * self.params.tol * float(self._system_x().sum())

    def _add_candidates(self, nodes: np.ndarray) -> None:
        """Remember nodes whose residual moved; push may draw on them in later blocks."""
        n = len(self._system_r())
        if len(self._cand) < n:
            grow = n - len(self._in_cand)
            self._cand = np.concatenate([self._cand, np.empty(n - len(self._cand), np.int64)])
            self._in_cand = np.concatenate([self._in_cand, np.zeros(grow, dtype=np.bool_)])
        fresh = np.unique(nodes[~self._in_cand[nodes]])
        self._cand[self._ncand : self._ncand + len(fresh)] = fresh
        self._ncand += len(fresh)
        self._in_cand[fresh] = True

    def _push(self, factor: float) -> dict[str, int]:
        """Forward push from the candidates toward ``factor`` times the target."""
        snap, op = self._bound_snap(), self._push_op()
        budget = (len(snap.out_indices) + snap.overlay_nnz) // 4 + snap.n
        rsum, ncand, work, pushes = push(
            snap.out_indptr,
            snap.out_indices,
            snap.out_w,
            snap.ov_out_indptr,
            snap.ov_out_indices,
            snap.ov_out_w,
            op.inv_out,
            self.params.alpha,
            self._system_x(),
            self._system_r(),
            self._rsum,
            self._target() * factor,
            self._cand,
            self._ncand,
            self._in_cand,
            budget,
        )
        self._rsum = rsum
        self._ncand = ncand
        return {"pushes": int(pushes), "push_work": int(work), "sweeps": 0}

    def _settle(self) -> dict[str, int]:
        """Meet the accuracy target: nothing, push, or a warm power iteration.

        Push pays when the block's residual is within a small factor of the
        target; a wide perturbation needs about as many passes over the graph
        by push as by iteration, and the parallel iteration does them faster.
        The warm iteration stops by the cold solver's rule (same accuracy as a
        cold solve), then the linear system is derived again from its answer.
        """
        target = self._target()
        if self._rsum <= target:
            return {"pushes": 0, "push_work": 0, "sweeps": 0}
        tried = {"pushes": 0, "push_work": 0}
        if self._rsum <= PUSH_RATIO * target:
            tried = self._push(1.0)
            if self._rsum <= target:
                return tried
        x = self._system_x()
        phi, diag = self._solve(x / x.sum())
        self._phi = phi
        self._derive_system(phi)
        return {
            "pushes": tried["pushes"],
            "push_work": tried["push_work"],
            "sweeps": diag.iterations,
        }

    def _update_push(self, info: PatchInfo | None) -> Diagnostics:
        t = time.perf_counter()
        snap = self._bound_snap()
        n = snap.n
        if info is not None:
            grow = n - len(self._system_x())
            if grow:
                self._xhat = np.concatenate([self._system_x(), np.zeros(grow)])
                self._r = np.concatenate([self._system_r(), np.full(grow, 1.0 - self.params.alpha)])
                self._rsum += grow * (1.0 - self.params.alpha)
            touched = np.empty(n, dtype=np.int64)
            in_touched = np.zeros(n, dtype=np.bool_)
            nt, change = delta_residual(
                info.sources,
                info.old_ptr,
                info.old_indices,
                info.old_weights,
                info.old_out_weight,
                snap.out_indptr,
                snap.out_indices,
                snap.out_w,
                snap.ov_out_indptr,
                snap.ov_out_indices,
                snap.ov_out_w,
                snap.out_weight,
                self._system_x(),
                self._system_r(),
                self.params.alpha,
                touched,
                in_touched,
            )
            self._rsum += change
            self._add_candidates(
                np.concatenate([touched[:nt], np.arange(info.n_before, n, dtype=np.int64)])
            )
        else:
            self._add_candidates(np.flatnonzero(np.abs(self._system_r()) > 0))
        t_res = time.perf_counter() - t
        t = time.perf_counter()
        counts = self._settle()
        x = self._system_x()
        self._phi = x / x.sum()
        diag = Diagnostics(
            iterations=counts["sweeps"],
            residual=self._rsum / ((1.0 - self.params.alpha) * float(x.sum())),
            converged=self._rsum <= self._target() * (1 + 1e-9),
        )
        diag.inner = counts
        diag.timings = {"residual": t_res, "push": time.perf_counter() - t}
        return diag

    def _update_warm(self, info: PatchInfo | None) -> Diagnostics:
        # Heat is applied to differences only within one operator: start afresh.
        self._heat = HeatState()
        n = self._bound_op().n
        phi = self._bound_phi()
        if len(phi) < n:
            xp = capabilities(self._op).xp
            phi = xp.concatenate([xp.asarray(phi), xp.full(n - len(phi), 1.0 / n)])
            phi /= total_of(self._bound_op(), phi)
        t = time.perf_counter()
        phi, diag = self._solve(phi)
        diag.timings["solve"] = time.perf_counter() - t
        self._phi = phi
        return diag

    def _publish(self, diag: Diagnostics) -> FocusResult:
        params, backend, keys = self.params, self.backend.name, self.graph.particles.keys()
        if isinstance(self._phi, np.ndarray):
            self.result = FocusResult(
                focus=self._bound_snap().to_particle_order(self._phi),
                params=params,
                backend=backend,
                diagnostics=diag,
                keys=keys,
            )
        else:
            self.result = DeferredFocusResult(
                self._fetcher(), params=params, backend=backend, diagnostics=diag, keys=keys
            )
        return self.result

    def _fetcher(self) -> Callable[[], np.ndarray]:
        """Reads this block's focus back in particle order, when first asked.

        The permutation is applied on the device (uploaded once per snapshot
        layout); the block's vector and the permutation are bound now, so a
        later block does not change what this result returns.
        """
        device, phi = self._device(), self._bound_phi()
        perm = self._device_perm(len(phi))[: len(phi)]
        return lambda: device.to_host(phi[perm])
