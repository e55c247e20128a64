"""The tri-kernel solver: diffusion, springs and heat iterated to their equilibrium.

One coupled iteration (docs/architecture.md §3.2) applies all three operators to the
same ``phi``, blends them with weights ``(lambda_d, lambda_s, lambda_h)``,
renormalises to mass 1 and feeds the result back, until the L1 change between
successive iterates drops below ``tol`` (never a fixed step count), at most
``max_iter`` (2048) times. With weights (1, 0, 0) this is weighted PageRank;
``cyberank`` mode runs go-cyber's loop instead (see ``cyberank.py``).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import OrderedDict
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.anderson import Anderson
from focusflow.focus.backends import get_backend
from focusflow.focus.backends.base import (
    Backend,
    Capabilities,
    DeviceArray,
    DeviceSolve,
    ExactBackend,
    GraphOperator,
    Progress,
    capabilities,
    inverse_out_weight,
)
from focusflow.focus.params import (
    DIFFUSION_ANDERSON,
    FAST,
    ArithmeticName,
    FocusParams,
    Precision,
    make_params,
)
from focusflow.focus.policy import TriPolicy
from focusflow.focus.result import Diagnostics, FocusResult
from focusflow.focus.spectral import (
    HeatState,
    SpringsState,
    blend,
    blend_pays,
    heat,
    op_norm,
    springs,
    springs_and_heat,
)
from focusflow.graph.cybergraph import Cybergraph
from focusflow.graph.snapshot import Snapshot

if TYPE_CHECKING:
    import scipy.sparse as sp

    from focusflow.graph.tables import Key


GraphLike = Union[Cybergraph, Snapshot, "sp.spmatrix", "sp.sparray"]


#: Snapshots whose prepared operators (SELL storage, float32 copies) are kept
#: for later compute() calls, most recently used last. An operator holds its
#: snapshot, so this bound is what frees both: with a weak-keyed map the
#: operator kept its own key alive, and every snapshot ever solved on stayed
#: in memory (a node answering inference queries under ever new semcon
#: weights grew without limit).
OPERATORS_KEPT = 8
#: Per snapshot id: the snapshot, and per ``(backend, precision, arithmetic)``
#: the ``(version, n)`` the operator was made at and the operator.
_OPERATORS: OrderedDict[
    int, tuple[Snapshot, dict[tuple[str, str, str], tuple[tuple[int, int], GraphOperator]]]
] = OrderedDict()
_OPERATORS_LOCK = threading.Lock()


def operator_for(
    snap: Snapshot, backend: str, precision: Precision, arithmetic: ArithmeticName = FAST
) -> GraphOperator:
    """The backend's operator for ``snap``, cached until the snapshot is patched
    or ``OPERATORS_KEPT`` other snapshots were used since."""
    chosen = get_backend(backend)
    key = (chosen.name, precision, arithmetic)
    # An entry holds its snapshot, so while it exists no other object has that id.
    with _OPERATORS_LOCK:
        held = _OPERATORS.get(id(snap))
        if held is not None:
            _OPERATORS.move_to_end(id(snap))
            entry = held[1].get(key)
            if entry is not None and entry[0] == (snap.version, snap.n):
                return entry[1]
    op = make_operator(chosen, snap, precision, arithmetic)
    with _OPERATORS_LOCK:
        held = _OPERATORS.setdefault(id(snap), (snap, {}))
        _OPERATORS.move_to_end(id(snap))
        held[1][key] = ((snap.version, snap.n), op)
        while len(_OPERATORS) > OPERATORS_KEPT:
            _OPERATORS.popitem(last=False)
    return op


def release_operators(snap: Snapshot) -> None:
    """Drop the operators kept for ``snap`` (one-off solves on large graphs)."""
    with _OPERATORS_LOCK:
        _OPERATORS.pop(id(snap), None)


def make_operator(
    backend: Backend, snap: Snapshot, precision: Precision, arithmetic: ArithmeticName = FAST
) -> GraphOperator:
    """``backend``'s operator for ``snap`` in ``arithmetic`` (exact ones: numba's only;
    ``FocusParams.check_backend`` refuses the others first), its optional
    operations resolved (``capabilities``)."""
    if arithmetic == FAST:
        op = backend.operator(snap, precision)
    else:
        op = cast("ExactBackend", backend).operator(snap, precision, arithmetic)
    capabilities(op)
    return op


def total_of(op: GraphOperator, v: DeviceArray) -> float:
    """``sum(v)`` by the operator's fixed-order reduction where it has one (exact
    arithmetic), else numpy's (whose order its build chooses)."""
    fixed = capabilities(op).total
    total: float = fixed.total(v) if fixed is not None else v.sum()
    return total


def snapshot_of(graph: GraphLike) -> tuple[Snapshot, list[Key] | None]:
    """The snapshot to solve on, and the particle keys when the input has them.

    A one-shot solve never patches it: a graph that holds none yet, or a
    matrix, gets a static one (smaller and faster to build; ``Cybergraph.snapshot``)."""
    if isinstance(graph, Cybergraph):
        return graph.snapshot(patchable=False), graph.particles.keys()
    if isinstance(graph, Snapshot):
        return graph, None
    # scipy.sparse is looked up, not imported: a graph cannot be one of its
    # matrices unless the caller imported it, and a command-line run saves
    # the import.
    sp = sys.modules.get("scipy.sparse")
    if sp is not None and sp.issparse(graph):
        m = sp.coo_matrix(graph)
        if m.shape[0] != m.shape[1]:
            raise InvalidParameterError(f"adjacency matrix must be square, got {m.shape}")
        if m.nnz and (not np.all(np.isfinite(m.data)) or m.data.min() < 0):
            raise InvalidParameterError("adjacency weights must be finite and >= 0")
        return Snapshot(m.shape[0], m.row, m.col, m.data, patchable=False), None
    raise InvalidParameterError(
        f"cannot compute focus of a {type(graph).__name__}: give a Cybergraph, "
        "Snapshot or scipy sparse adjacency matrix"
    )


def prior_vector(
    snap: Snapshot, prior: str | np.ndarray, op: GraphOperator | None = None
) -> np.ndarray:
    """The teleport distribution ``u`` in internal order.

    ``stake``: proportional to the total link weight touching a particle (what
    stake says about it before any diffusion); uniform where the graph is empty.
    ``op``: the operator whose reduction sums (``total_of``; numpy's without).
    """
    n = snap.n
    if isinstance(prior, str) and prior == "uniform":
        return np.full(n, 1.0 / n)
    if isinstance(prior, str) and prior == "stake":
        touch = snap.out_weight.copy()
        touch += np.bincount(snap.out_indices, weights=snap.out_w, minlength=n)[:n]
        touch += np.bincount(snap.ov_out_indices, weights=snap.ov_out_w, minlength=n)[:n]
        total = touch.sum() if op is None else total_of(op, touch)
        return touch / total if total > 0 else np.full(n, 1.0 / n)
    vec = np.asarray(prior, dtype=np.float64)
    if vec.shape != (n,):
        raise InvalidParameterError(f"prior vector must have {n} entries, got {vec.shape}")
    if not np.all(np.isfinite(vec)) or vec.min() < 0 or vec.sum() <= 0:
        raise InvalidParameterError("prior vector must be finite, >= 0 and not all zero")
    return snap.to_internal_order(vec / (vec.sum() if op is None else total_of(op, vec)))


def contraction_rate(history: list[float], window: int = 10) -> float | None:
    """Geometric mean of the last successive residual ratios."""
    h = [r for r in history if r > 0]
    if len(h) < 3:
        return None
    k = min(window, len(h) - 1)
    rate: float = (h[-1] / h[-1 - k]) ** (1.0 / k)
    return rate


def solve(
    op: GraphOperator,
    params: FocusParams,
    prior: DeviceArray,
    x0: DeviceArray | None = None,
    *,
    springs_state: SpringsState | None = None,
    heat_state: HeatState | None = None,
    progress: Progress | None = None,
) -> tuple[DeviceArray, Diagnostics]:
    """Iterate the composite map on ``op`` from ``x0`` (uniform if None); internal
    order, vectors where the operator keeps them. ``params`` are validated
    (``make_params``), which fills in the Anderson window."""
    n = op.n
    caps = capabilities(op)
    xp = caps.xp
    _, lam_s, lam_h = params.weights
    diag = Diagnostics()
    timings = {"diffusion": 0.0, "springs": 0.0, "heat": 0.0}
    if n == 0:
        diag.converged, diag.residual = True, 0.0
        return xp.empty(0), diag
    assert params.anderson is not None  # validate() sets the window
    springs_state = springs_state if springs_state is not None else SpringsState()
    heat_state = heat_state if heat_state is not None else HeatState()
    use_lap = lam_s > 0 or lam_h > 0
    if caps.thread_sums is not None:
        caps.thread_sums.allow_thread_sums(params.thread_sums)
    if use_lap:
        t = time.perf_counter()
        op.setup_laplacian(params.laplacian)
        timings["laplacian_setup"] = time.perf_counter() - t
    device = caps.solver
    series = use_lap and lam_s > 0 and _series_chosen(caps, op, params, device is not None)
    device_loop = device is not None and (not use_lap or not series)
    start_iterations = 0
    # A device loop makes the diffusion start itself and keeps it there (DeviceSolver).
    starts = params.start == "diffusion" and params.tol < params.start_tol
    if x0 is None and use_lap and starts and not device_loop:
        t = time.perf_counter()
        x0, start_iterations = _diffusion_start(op, params, prior)
        timings["diffusion_start"] = time.perf_counter() - t
    restarts = 0
    if device is not None and device_loop:
        # The operator keeps every vector on its device and runs the whole
        # iteration there (wgpu); only a few scalars per step come back. A
        # uniform start is filled on the device (None), not built and uploaded;
        # the operator reports where the solve's time went (setup, encoding,
        # waiting, read-back), so a device run shows more than one number.
        # Tri follows _iterate's rules (focus.policy.TriPolicy).
        start = None if x0 is None else _start(xp, n, x0)
        t = time.perf_counter()
        run: DeviceSolve
        if use_lap:
            run = device.solve_tri(prior, start, params, springs_state, heat_state, progress)
            timings["device_tri"] = time.perf_counter() - t
        else:
            run = device.solve_diffusion(
                prior, start, params.alpha, params.tol, params.max_iter, progress, params.anderson
            )
            timings["diffusion"] = time.perf_counter() - t
        phi, diag.residual_history, diag.converged = run.phi, run.residual_history, run.converged
        timings.update(run.timings)
        it = len(diag.residual_history)
        restarts = run.anderson_restarts
        start_iterations = run.start_iterations
    else:
        phi = _start(xp, n, x0, op)
        accel = Anderson(params.anderson, n, xp, caps.anderson, params.exact)
        phi, it = _iterate(
            op,
            params,
            prior,
            phi,
            diag,
            timings,
            springs_state,
            heat_state,
            progress,
            accel,
            series,
        )
        restarts = accel.restarts
    diag.iterations = it
    diag.residual = diag.residual_history[-1]
    diag.contraction_rate = contraction_rate(diag.residual_history)
    if params.spectral_gap and diag.contraction_rate is not None:
        diag.spectral_gap = 1.0 - diag.contraction_rate
    diag.timings = timings
    diag.inner = {
        "cg_iterations": springs_state.iterations,
        "heat_terms": heat_state.terms,
        "anderson_restarts": restarts,
        "diffusion_start_iterations": start_iterations,
        "springs_method": "series" if series else "cg",
    }
    return phi, diag


def _series_chosen(
    caps: Capabilities, op: GraphOperator, params: FocusParams, device_loop: bool
) -> bool:
    """Whether springs and heat run as one series (``FocusParams.springs_method``):
    ``auto`` takes it where ``blend_pays`` on host vectors (numba, numpy); a
    GPU's vectors and a device's own tri loop keep CG, which was measured
    there. In an exact arithmetic the choice is part of the bits, so it is
    the host's on every backend (numba's and cuda's exact operators agree)."""
    if params.springs_method == "auto":
        fits = blend_pays(params.mu, op.lam_max)
        return fits if params.exact else caps.host and not device_loop and fits
    return params.springs_method == "series"


def _diffusion_start(
    op: GraphOperator, params: FocusParams, prior: DeviceArray
) -> tuple[DeviceArray, int]:
    """Diffusion alone to ``params.start_tol``: the start of a cold tri solve
    (a few cheap products that save the first outer iterations, each of which
    costs springs and heat), and its iterations."""
    pre = params.with_(weights=(1.0, 0.0, 0.0), tol=params.start_tol, anderson=DIFFUSION_ANDERSON)
    phi, diag = solve(op, pre, prior)
    return phi, diag.iterations


def _start(
    xp: ModuleType, n: int, x0: DeviceArray | None, op: GraphOperator | None = None
) -> DeviceArray:
    """The start vector: ``x0`` (copied) or uniform, normalised to mass 1."""
    phi = xp.full(n, 1.0 / n) if x0 is None else xp.asarray(x0, dtype=xp.float64).copy()
    phi /= phi.sum() if op is None else total_of(op, phi)
    return phi


def _iterate(  # noqa: PLR0913 - solve()'s operator, inputs, states and outputs, handed on
    op: GraphOperator,
    params: FocusParams,
    prior: DeviceArray,
    phi: DeviceArray,
    diag: Diagnostics,
    timings: dict[str, float],
    springs_state: SpringsState,
    heat_state: HeatState,
    progress: Progress | None,
    accel: Anderson,
    series: bool = False,
) -> tuple[DeviceArray, int]:
    """The coupled iteration on host-driven operators; returns ``(phi, iterations)``.

    With ``series`` springs and heat are one series (``spectral.blend``) whose
    result enters the blend with weight ``lam_s + lam_h``; its accuracy is the
    stricter of the two inner tolerances.
    """
    n = op.n
    caps = capabilities(op)
    xp = caps.xp
    fused_blend = caps.blend
    policy = TriPolicy.of(params)
    lam_d, lam_s, lam_h = params.weights
    weights = (lam_d, 0.0, lam_s + lam_h) if series else params.weights
    share = lam_s / (lam_s + lam_h) if series else 0.0
    use_lap = lam_s > 0 or lam_h > 0
    nxt = xp.empty(n)
    # The outer rules (loose inner solves, the switch to exact ones, the stop)
    # are focus.policy.TriPolicy's, which wgpu's device loop follows too.
    inv_sigma_norm = None  # ||1 / sigma||_2: fixed for the solve, taken once
    exact = not use_lap
    res = 1.0
    spare = xp.empty(n) if params.anderson else None
    for it in range(1, params.max_iter + 1):
        t = time.perf_counter()
        res_d = op.diffusion(phi, nxt, params.alpha, prior)
        timings["diffusion"] += time.perf_counter() - t
        if use_lap:
            spread = 0.0
            if policy.needs_spread(exact):
                if inv_sigma_norm is None:
                    inv_sigma_norm = op_norm(op, inverse_out_weight(op.lap_sigma)[0])
                spread = spread_of(op, phi, inv_sigma_norm)
            tolerances = policy.tolerances(res, exact, spread)
            mixed = None if fused_blend is not None else lam_d * nxt
            s_out, h_out = _inner_terms(
                op,
                params,
                phi,
                springs_state,
                heat_state,
                series,
                share,
                tolerances,
                exact,
                timings,
            )
            if fused_blend is not None:
                # The operator normalises in place and returns the L1 change.
                res = fused_blend.blend(phi, nxt, s_out, h_out, weights)
            else:
                nxt, res = _blended(xp, phi, mixed, s_out, h_out, weights)
        else:
            res = res_d
        diag.residual_history.append(res)
        if progress is not None:
            progress(it, res)
        last = diag.residual_history[-2] if it > 1 else None
        verdict = policy.judge(res, last, exact)
        if verdict.stop:
            phi = nxt
            diag.converged = True
            break
        exact = verdict.exact
        if verdict.reset:
            accel.reset()
        if params.anderson:
            mixed = accel.step(phi, nxt, res, spare)
            if mixed is spare:
                phi, spare = spare, phi
            else:
                phi, nxt = nxt, phi
        else:
            phi, nxt = nxt, phi
    return phi, it


def _inner_terms(
    op: GraphOperator,
    params: FocusParams,
    phi: DeviceArray,
    springs_state: SpringsState,
    heat_state: HeatState,
    series: bool,
    share: float,
    tolerances: tuple[float, float],
    exact: bool,
    timings: dict[str, float],
) -> tuple[DeviceArray | None, DeviceArray | None]:
    """Springs' and heat's terms of one outer step at ``phi``, to ``tolerances``
    (``(cg_tol, heat_tol)``): None for a term the blend weighs 0; with
    ``series`` both are one series (``share = lam_s / (lam_s + lam_h)``),
    returned as heat's term. The time they take goes to ``timings``."""
    _, lam_s, lam_h = params.weights
    cg_tol, heat_tol = tolerances
    s_out = h_out = None
    if series:
        t = time.perf_counter()
        h_out = blend(
            op,
            phi,
            params.mu,
            params.tau,
            share,
            heat_state,
            min(cg_tol, heat_tol),
            params.heat_reuse,
            exact,
        )
        timings["springs_heat"] = timings.get("springs_heat", 0.0) + time.perf_counter() - t
    elif lam_s > 0 and lam_h > 0:
        t = time.perf_counter()
        s_out, h_out = springs_and_heat(
            op,
            phi,
            params.mu,
            params.tau,
            springs_state,
            heat_state,
            cg_tol,
            heat_tol,
            params.cg_max_iter,
            exact,
            params.heat_reuse,
        )
        timings["springs_heat"] = timings.get("springs_heat", 0.0) + time.perf_counter() - t
    elif lam_s > 0:
        t = time.perf_counter()
        s_out = springs(op, phi, params.mu, springs_state, cg_tol, params.cg_max_iter, exact)
        timings["springs"] += time.perf_counter() - t
    elif lam_h > 0:
        t = time.perf_counter()
        h_out = heat(op, phi, params.tau, heat_state, heat_tol, params.heat_reuse, exact)
        timings["heat"] += time.perf_counter() - t
    return s_out, h_out


def _blended(
    xp: ModuleType,
    phi: DeviceArray,
    mixed: DeviceArray,
    s_out: DeviceArray | None,
    h_out: DeviceArray | None,
    weights: tuple[float, float, float],
) -> tuple[DeviceArray, float]:
    """The blend without a fused pass: ``mixed`` (the weighted diffusion step)
    plus the weighted springs and heat terms, normalised to mass 1 in place;
    returns it and its L1 change from ``phi``."""
    if s_out is not None:
        mixed += weights[1] * s_out
    if h_out is not None:
        mixed += weights[2] * h_out
    total = float(mixed.sum())
    if not math.isfinite(total) or total <= 0:
        raise FloatingPointError("focus iteration lost its mass (non-finite values)")
    mixed /= total
    return mixed, float(xp.abs(mixed - phi).sum())


def spread_of(op: GraphOperator, phi: DeviceArray, inv_sigma_norm: float) -> float:
    """``F = ||sigma phi||_2 ||1 / sigma||_2``, what ``TriPolicy.exact_tolerances``
    scales by (``inv_sigma_norm``: ``||1 / sigma||_2``, 0 where sigma is)."""
    return op_norm(op, op.lap_sigma * phi) * inv_sigma_norm


def compute(
    graph: GraphLike,
    params: FocusParams | None = None,
    *,
    backend: str = "auto",
    x0: np.ndarray | None = None,
    progress: Progress | None = None,
    shards: int | None = None,
    cluster: str | None = None,
    **overrides: Any,
) -> FocusResult:
    """Focus of a graph: ``compute(graph, mode="tri", alpha=0.85, ...)``.

    ``graph`` is a :class:`Cybergraph`, a :class:`Snapshot`, or a scipy sparse
    weighted adjacency matrix (rows are sources). Keyword arguments override the
    fields of :class:`FocusParams`; without ``params``, ``thread_sums`` is on
    (a one-shot solve takes the fastest sums; an engine's default keeps them
    the same bits for any thread count). ``x0`` (particle order) warm-starts
    the iteration. The returned focus is indexed by particle id and sums to 1.
    ``shards``: solve on that many Ray actors (``focus.shards``; ``cluster``
    is a Ray head's address, None a local Ray for the call).
    """
    if params is None:
        overrides.setdefault("thread_sums", True)
    p = make_params(params, **overrides)
    if shards is not None or cluster is not None:
        if p.model != "blend":
            raise InvalidParameterError(f"the {p.model} model is not solved on shards")
        if shards is None:
            raise InvalidParameterError("cluster needs shards")
        from focusflow.focus.shards.api import compute_sharded

        return compute_sharded(graph, p, shards, cluster=cluster, x0=x0, progress=progress)
    if p.mode == "cyberank":
        from focusflow.focus.cyberank import cyberank

        return cyberank(graph, p)
    if p.model != "blend":
        return _model_focus(graph, p, backend, x0)
    t0 = time.perf_counter()
    snap, keys = snapshot_of(graph)
    t_snap = time.perf_counter() - t0
    chosen = get_backend(backend)
    p.check_backend(chosen.name)
    t = time.perf_counter()
    op = operator_for(snap, chosen.name, p.precision, p.arithmetic)
    t_op = time.perf_counter() - t
    prior = prior_vector(snap, p.prior, op)
    p_run = p.with_(weights=(1.0, 0.0, 0.0)) if p.mode == "diffusion" else p
    start = None if x0 is None else snap.to_internal_order(np.asarray(x0, dtype=np.float64))
    device = capabilities(op).device
    if device is not None:
        prior = device.from_host(prior)
        start = None if start is None else device.from_host(start)
    t = time.perf_counter()
    phi, diag = solve(op, p_run, prior, start, progress=progress)
    if device is not None:
        phi = device.to_host(phi)
    diag.timings.update(
        {
            "snapshot": t_snap,
            "prepare": t_op,
            "solve": time.perf_counter() - t,
            "total": time.perf_counter() - t0,
        }
    )
    return FocusResult(
        focus=snap.to_particle_order(phi),
        params=p,
        backend=chosen.name,
        diagnostics=diag,
        keys=keys,
    )


def _model_focus(
    graph: GraphLike, p: FocusParams, backend: str, x0: np.ndarray | None
) -> FocusResult:
    """``compute`` for a model other than the blend (``energy_exact.model_focus``)
    on numba (``auto`` picks it; another backend is refused by
    ``check_backend``); ``x0`` starts it (by particle id)."""
    from focusflow.focus.energy_exact import model_focus

    t0 = time.perf_counter()
    chosen = get_backend("numba" if backend == "auto" else backend)
    p.check_backend(chosen.name)
    snap, keys = snapshot_of(graph)
    start = None if x0 is None else np.asarray(x0, dtype=np.float64)
    focus, diag = model_focus(snap, p, start)
    diag.timings["total"] = time.perf_counter() - t0
    return FocusResult(focus=focus, params=p, backend=chosen.name, diagnostics=diag, keys=keys)
