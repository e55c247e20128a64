"""The fast CPU backend: parallel numba kernels over the snapshot's CSR arrays.

What makes it fast (docs/focus.md §6, measured in bench/focus_cpu.py):

* pull-style SpMV over the in-link matrix in SELL-8 storage (``sell.py``):
  rows sorted by length and advanced eight at a time in SIMD lanes, work split
  among threads by stored entries, not rows, since hubs hold most of them;
* one pass over the edges per diffusion step: the source's ``x / out_weight``
  is prepared in the previous step's pass over particles, so the edge pass
  reads one value per edge and nothing else;
* teleport and dangling mass added as ``(1 - sum(alpha P^T x)) * prior``, which
  keeps mass exactly 1 even with float32 matrix values (the plain formula
  leaks mass when the stored row sums are not exactly 1);
* optional float32 storage of edge weights and of the gathered vector, with
  every sum accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import numba as nb
import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.core.structure import Check
from focusflow.focus.backends import exact_tree
from focusflow.focus.backends.base import AndersonKernels, ScreenedCG, inverse_out_weight
from focusflow.focus.backends.numba_lap import (
    ScaledSymmetric,
    cg_direction,
    cg_product,
    cg_start,
    cg_update,
    cheb_step,
    lap_apply,
    pair_pack,
    pair_start,
    pair_step,
    residual_of,
    springs_rhs,
)
from focusflow.focus.backends.sell import (
    C,
    SellMatrix,
    csr_pull_add,
    group_bounds,
    sell_pull,
)
from focusflow.focus.backends.sym_half import HalfSymmetric
from focusflow.focus.params import (
    EXACT_V1,
    EXACT_V3,
    FAST,
    ArithmeticName,
    FocusParams,
    LaplacianKind,
    Precision,
)
from focusflow.focus.reduce import chunked_sum, exact_twin, ordered_sum, strict_sum
from focusflow.graph.csr import balanced_chunks
from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    import numpy.typing as npt
    from numba.core.dispatcher import Dispatcher

    from focusflow.focus.spectral import SpringsState

# Fixed number of work chunks (not per thread), so sums are grouped the same way
# whatever the thread count.
_CHUNKS = 64
#: What a SELL group of the diffusion pull costs beside its slots, in slots
#: (``sell.group_bounds``; R-MAT 20, two cores: 4 a lane was the best of 0–6).
PULL_GROUP_SLOTS = 4 * C
#: What an operator always has, and what springs and heat add once used.
_OPERATOR_FIELDS = (
    "snapshot",
    "dtype",
    "parts",
    "_sym",
    "sell",
    "sell_bounds",
    "sell_rows",
    "ylink",
    "n",
    "ov_rows",
    "ov_ptr",
    "ov_indices",
    "ov_in_w",
    "inv_out",
    "dangling",
    "z",
    "_z_of",
)
_LAPLACIAN_FIELDS = (
    "_sym_kind",
    "lap_sigma",
    "lap_diag",
    "lam_max",
    "_args",
    "_buf",
    "_mu",
    "_pair",
    "_t_next",
    "_diag_mu",
    "_minv",
    "_terms",
)


@nb.njit(cache=True, parallel=True)
def _finish_diffusion(
    ylink: np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    prior: np.ndarray,
    inv_out: np.ndarray,
    z: np.ndarray,
    tele: float,
    nparts: int,
) -> tuple[float, float]:
    """``y = ylink + tele * prior``; returns ``(||y - x||_1, sum y)``, writes ``z = y / W``."""
    n = y.shape[0]
    step = (n + nparts - 1) // nparts
    l1 = np.zeros(nparts)
    mass = np.zeros(nparts)
    for t in nb.prange(nparts):
        a = 0.0
        m = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = ylink[i] + tele * prior[i]
            y[i] = v
            a += abs(v - x[i])
            m += v
            z[i] = v * inv_out[i]
        l1[t] = a
        mass[t] = m
    return ordered_sum(l1), ordered_sum(mass)


@nb.njit(cache=True, parallel=True)
def _dot(a: np.ndarray, b: np.ndarray, nparts: int) -> float:
    n = a.shape[0]
    step = (n + nparts - 1) // nparts
    partial = np.zeros(nparts)
    for t in nb.prange(nparts):
        s = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            s += a[i] * b[i]
        partial[t] = s
    return ordered_sum(partial)


class Kernels(NamedTuple):
    """The kernels that sum or that ``fastmath`` speeds up, by arithmetic: each
    one's dispatcher, typed by what it returns (its arguments are the
    kernel's own). mypy reads a dispatcher field through the dispatcher's
    ``__get__`` (a bound method), so results are typed where they are taken."""

    sell_pull: Dispatcher[Callable[..., float]]
    lap_apply: Dispatcher[Callable[..., None]]
    cheb_step: Dispatcher[Callable[..., None]]
    cg_product: Dispatcher[Callable[..., float]]
    pair_step: Dispatcher[Callable[..., float]]
    cg_update: Dispatcher[Callable[..., tuple[float, float]]]
    cg_start: Dispatcher[Callable[..., tuple[float, float]]]
    springs_rhs: Dispatcher[Callable[..., float]]
    finish_diffusion: Dispatcher[Callable[..., tuple[float, float]]]
    dot: Dispatcher[Callable[..., float]]
    # Passes that neither sum nor contract, shared by both arithmetics (a
    # device operator in exact arithmetic supplies its own).
    residual_of: Dispatcher[Callable[..., None]]
    cg_direction: Dispatcher[Callable[..., None]]
    pair_start: Dispatcher[Callable[..., None]]
    pair_pack: Dispatcher[Callable[..., None]]
    blend_sum: Dispatcher[Callable[..., float]]
    divide_l1: Dispatcher[Callable[..., float]]


#: How many of ``Kernels``' fields ``fastmath`` changes (the rest are compiled
#: without it and serve both arithmetics).
_TWINNED = 10


@nb.njit(cache=True, parallel=True, fastmath=False)
def _blend_sum(
    d: np.ndarray,
    s: np.ndarray,
    h: np.ndarray,
    ld: float,
    ls: float,
    lh: float,
    use_s: bool,
    use_h: bool,
    nparts: int,
) -> float:
    """``d = ld d + ls s + lh h`` (each product and sum rounded in that order);
    returns ``sum(d)`` over fixed chunks combined in order."""
    n = d.shape[0]
    step = (n + nparts - 1) // nparts
    partial = np.zeros(nparts)
    for t in nb.prange(nparts):
        m = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = ld * d[i]
            if use_s:
                v = v + ls * s[i]
            if use_h:
                v = v + lh * h[i]
            d[i] = v
            m += v
        partial[t] = m
    return strict_sum(partial)


@nb.njit(cache=True, parallel=True, fastmath=False)
def _divide_l1(d: np.ndarray, phi: np.ndarray, total: float, nparts: int) -> float:
    """``d /= total``; returns ``||d - phi||_1`` over fixed chunks in order."""
    n = d.shape[0]
    step = (n + nparts - 1) // nparts
    partial = np.zeros(nparts)
    for t in nb.prange(nparts):
        a = 0.0
        for i in range(t * step, min(n, (t + 1) * step)):
            v = d[i] / total
            d[i] = v
            a += abs(v - phi[i])
        partial[t] = a
    return strict_sum(partial)


FAST_KERNELS = Kernels(
    sell_pull,
    lap_apply,
    cheb_step,
    cg_product,
    pair_step,
    cg_update,
    cg_start,
    springs_rhs,
    _finish_diffusion,
    _dot,
    residual_of,
    cg_direction,
    pair_start,
    pair_pack,
    _blend_sum,
    _divide_l1,
)
#: The same kernels without contraction or reassociation, their sums strict
#: (reduce.exact_twin).
EXACT_KERNELS = Kernels._make(
    [*(exact_twin(k) for k in FAST_KERNELS[:_TWINNED]), *FAST_KERNELS[_TWINNED:]]
)
#: ``exact-v3``'s kernels: every sum in chunks of 1,024 combined by a fixed
#: tree (backends/exact_tree.py); the passes that do not sum are shared.
TREE_KERNELS = Kernels(
    exact_tree.sell_pull,
    exact_tree.lap_apply,
    exact_tree.cheb_step,
    exact_tree.cg_product,
    exact_tree.pair_step,
    exact_tree.cg_update,
    exact_tree.cg_start,
    exact_tree.springs_rhs,
    exact_tree.finish_diffusion,
    exact_tree.dot,
    residual_of,
    cg_direction,
    pair_start,
    pair_pack,
    exact_tree.blend_sum,
    exact_tree.divide_l1,
)


class NumbaOperator(ScreenedCG):
    """Graph products on all CPU cores; ``precision`` sets the stored value type."""

    name = "numba"
    arithmetic: ArithmeticName = FAST
    kernels = FAST_KERNELS
    #: The array module of the vectors the kernels take (a device subclass's own).
    _xp: ModuleType = np
    # Set up by ``setup_laplacian`` (absent before: ``_LAPLACIAN_FIELDS``).
    _sym_kind: LaplacianKind
    lap_sigma: npt.NDArray[np.float64]
    lap_diag: npt.NDArray[np.float64]
    lam_max: float
    _args: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    _buf: list[np.ndarray]
    _pair: np.ndarray | None
    _t_next: np.ndarray
    _diag_mu: np.ndarray
    _minv: np.ndarray
    _terms: list[np.ndarray]
    _half: tuple[ScaledSymmetric, HalfSymmetric]

    def __init__(self, snapshot: Snapshot, precision: Precision = "float64") -> None:
        self.snapshot = snapshot
        self.dtype: type[np.floating] = np.float32 if precision == "float32" else np.float64
        self.parts = _CHUNKS
        self._sym: ScaledSymmetric | None = None
        self.refresh()

    @staticmethod
    def pull_bounds(gptr: np.ndarray) -> np.ndarray:
        """The diffusion pull's chunks of SELL groups: of about equal cost
        (``sell.group_bounds``). The exact operator's are ``balanced_chunks``:
        its total is summed per chunk, so its chunks are part of its bits."""
        return group_bounds(gptr, _CHUNKS, PULL_GROUP_SLOTS)

    def refresh(self, info: PatchInfo | None = None) -> None:
        """Re-read the snapshot after a patch.

        With the patch's record, only the rewritten base values are copied into
        the SELL storage; without it everything is rebuilt.
        """
        s = self.snapshot
        if info is None or info.base_entries is None or not hasattr(self, "sell"):
            self.sell = SellMatrix(s.in_indptr, s.in_indices, s.in_w, self.dtype)
            self.sell_bounds = self.pull_bounds(self.sell.gptr)
            # Particles added by later patches have no base in-links, so the
            # SELL groups (built over these rows) stay valid; _pull_into
            # writes the rows past them itself.
            self.sell_rows = s.n
        elif len(info.base_entries):
            in_pos = s.out_to_in[info.base_entries]
            self.sell.update(in_pos, s.in_w)
        if getattr(self, "n", -1) != s.n:
            self.ylink = self._xp.zeros(s.n)
        self.n = s.n
        self.ov_rows, self.ov_ptr, self.ov_indices, ov_w = s.overlay_in_rows()
        self.ov_in_w = ov_w.astype(self.dtype)
        self._row_weights(info)
        self.z = self._xp.zeros(self.n, dtype=self.dtype)
        self._z_of: np.ndarray | None = None
        self._sym = None
        self.__dict__.pop("_half", None)

    def _row_weights(self, info: PatchInfo | None) -> None:
        """``1 / W_p`` of every particle and which are dangling, after a
        patch (``info``) or a full refresh (a GPU twin updates its copy
        where the patch changed them)."""
        self.inv_out, linked = inverse_out_weight(self.snapshot.out_weight)
        self.dangling = ~linked

    def rebuild_sell(self, rows: int) -> None:
        """The in-link SELL storage over the snapshot's first ``rows`` rows, as
        the full refresh that built it did when the snapshot had that many
        particles (rows added since hold no base in-links: ``_pull_into``
        writes them). A restored engine (``FocusEngine.load_state``) calls it:
        the pull's chunks, and so its sums' bits, follow the rows."""
        if rows == self.sell_rows:
            return
        s = self.snapshot
        self.sell = SellMatrix(s.in_indptr[: rows + 1], s.in_indices, s.in_w, self.dtype)
        self.sell_bounds = self.pull_bounds(self.sell.gptr)
        self.sell_rows = rows

    @staticmethod
    def check_structure(op: object, check: Check, snap: Snapshot, params: FocusParams) -> None:
        """``op`` is the operator ``params`` make on ``snap`` (class, value type,
        chunk count), with the arrays its kernels index without bounds checks:
        the SELL storage of the in-links (``SellMatrix.check_structure``) and
        its chunk bounds, the overlay's compact in-rows, per-particle vectors
        of ``n`` entries, and the symmetric matrix with its buffers when one
        is set up (``ScaledSymmetric.check_structure``); what a dropped one
        left behind is replaced before it is read again."""
        exact = params.arithmetic != FAST
        cls = ExactNumbaOperator if exact else NumbaOperator
        a = check.fields(
            op,
            cls,
            (*_OPERATOR_FIELDS, "arithmetic") if exact else _OPERATOR_FIELDS,
            (*_LAPLACIAN_FIELDS, "_thread_sums"),
        )
        if type(a.get("_thread_sums", False)) is not bool:
            check.fail("_thread_sums", "is not true or false")
        if exact and a["arithmetic"] != params.arithmetic:
            check.fail("arithmetic", f"= {a['arithmetic']!r}, not {params.arithmetic!r}")
        if a["snapshot"] is not snap:
            check.fail("snapshot", "is not the engine's snapshot")
        dtype = np.float32 if params.precision == "float32" else np.float64
        if a["dtype"] is not dtype:
            check.fail("dtype", f"= {a['dtype']!r}, not {dtype.__name__}")
        check.integer("parts", a["parts"], _CHUNKS, _CHUNKS)
        n = check.integer("n", a["n"], snap.n, snap.n)
        rows = check.integer("sell_rows", a["sell_rows"], 0, n)
        SellMatrix.check_structure(
            a["sell"], check.at("sell"), rows, n, len(snap.in_indices), dtype
        )
        bounds = check.array("sell_bounds", a["sell_bounds"], np.int64)
        check.equal("sell_bounds", bounds, cls.pull_bounds(a["sell"].gptr), "its chunks")
        ov_rows = check.array("ov_rows", a["ov_rows"], np.int64, lo=0, hi=n)
        idx = check.array("ov_indices", a["ov_indices"], np.int32, lo=0, hi=n)
        check.indptr("ov_ptr", a["ov_ptr"], len(ov_rows), len(idx))
        check.array("ov_in_w", a["ov_in_w"], dtype, len(idx), finite=True, nonneg=True)
        check.array("inv_out", a["inv_out"], np.float64, n, finite=True, nonneg=True)
        check.array("dangling", a["dangling"], np.bool_, n)
        check.array("ylink", a["ylink"], np.float64, n)
        check.array("z", a["z"], dtype, n)
        check.optional_array("_z_of", a["_z_of"], np.float64, n)
        if a["_sym"] is None:
            NumbaOperator._check_dropped_laplacian(check, a)
            return
        NumbaOperator._check_laplacian(check, a, n, dtype)

    @staticmethod
    def _check_dropped_laplacian(check: Check, a: dict[str, Any]) -> None:
        """No symmetric matrix: the arrays a dropped one left behind (alone,
        or in the kernel arguments and buffers) are stale."""
        for name in _LAPLACIAN_FIELDS:
            value = a.get(name)
            listed = type(value) in (list, tuple)
            items = cast("Sequence[object]", value) if listed else [value]
            for k, item in enumerate(items):
                if type(item) is np.ndarray:
                    check.stale(f"{name}[{k}]" if listed else name, item)

    @staticmethod
    def _check_buffers(check: Check, a: dict[str, Any], n: int, dtype: type) -> None:
        """CG's four float64 buffers, and the series' two vectors (storage
        precision) where a series has run."""
        buf = a["_buf"]
        if type(buf) is not list or len(buf) != 4:
            check.fail("_buf", "is not four buffers")
        for k, b in enumerate(buf):
            check.array(f"_buf[{k}]", b, np.float64, n)
        terms = a.get("_terms")
        if terms is not None:
            if type(terms) is not list or len(terms) != 2:
                check.fail("_terms", "is not two vectors")
            for k, t in enumerate(terms):
                check.array(f"_terms[{k}]", t, dtype, n)

    @staticmethod
    def _check_laplacian(check: Check, a: dict[str, Any], n: int, dtype: type) -> None:
        """The symmetric matrix (``ScaledSymmetric.check_structure``) with its
        scaling, the kernels' arguments and buffers taken from it, and the
        springs solve's shifted diagonal and pair buffers where set up."""
        sym = a["_sym"]
        ScaledSymmetric.check_structure(sym, check.at("_sym"), n, dtype)
        check.once(sym)
        missing = [f for f in _LAPLACIAN_FIELDS[:7] if f not in a]
        if missing:
            check.fail(missing[0], "is missing beside the symmetric matrix")
        if a["_sym_kind"] not in ("normalized", "combinatorial"):
            check.fail("_sym_kind", f"= {a['_sym_kind']!r} is not a Laplacian")
        if a["lap_sigma"] is not sym.sigma or a["lap_diag"] is not sym.diag:
            check.fail("lap_sigma", "is not the symmetric matrix's scaling")
        check.number("lam_max", a["lam_max"], nonneg=True)
        want = (sym.grows, sym.gptr, sym.glen, sym.sidx, sym.sval, sym.bounds)
        args = a["_args"]
        if type(args) is not tuple or len(args) != 6:
            check.fail("_args", "is not the symmetric matrix's six arrays")
        if any(x is not y for x, y in zip(args, want, strict=True)):
            check.fail("_args", "is not the symmetric matrix's arrays")
        NumbaOperator._check_buffers(check, a, n, dtype)
        mu = a["_mu"]
        for name in ("_diag_mu", "_minv"):
            if mu is not None:
                check.array(name, a.get(name), np.float64, n)
            elif name in a:
                check.stale(name, a[name])
        if mu is not None:
            check.number("_mu", mu)
        if a["_pair"] is not None:
            check.array("_pair", a["_pair"], np.float64, shape=(n, 2))
            check.array("_t_next", a.get("_t_next"), np.float64, n)
        elif "_t_next" in a:
            check.stale("_t_next", a["_t_next"])

    def prepare(self, x: np.ndarray) -> None:
        """Compute the gathered vector ``z = x / out_weight`` for the next step."""
        np.multiply(x, self.inv_out, out=self.z, casting="unsafe")
        self._z_of = x

    def _pull_into(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        m = self.sell
        total: float = self.kernels.sell_pull(
            m.grows, m.gptr, m.glen, m.sidx, m.sval, z, out, self.sell_bounds, scale
        )
        out[self.sell_rows : self.n] = 0.0
        if len(self.ov_rows):
            total += csr_pull_add(
                self.ov_rows,
                self.ov_ptr,
                self.ov_indices,
                self.ov_in_w,
                z,
                out,
                scale,
            )
        return total

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]`` (0 where no in-links); returns the sum."""
        return self._pull_into(z.astype(self.dtype, copy=False), out, scale)

    def diffusion(self, x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
        if self._z_of is not x:
            self.prepare(x)
        linked_mass = self._pull_into(self.z, self.ylink, alpha)
        tele = 1.0 - linked_mass
        l1: float
        l1, _ = self.kernels.finish_diffusion(
            self.ylink, y, x, prior, self.inv_out, self.z, tele, self.parts
        )
        self._z_of = y
        return l1

    # --- springs and heat --------------------------------------------------
    def setup_laplacian(self, kind: LaplacianKind) -> None:
        """``N = sigma (W + W^T) sigma`` in SELL-8 storage, kept until the snapshot changes."""
        if self._sym is not None and self._sym_kind == kind:
            return
        self._sym_kind = kind
        self._sym = self._symmetric(kind)
        self.lam_max = self._sym.lam_max
        self._bind_symmetric()
        n = self.snapshot.n
        self._buf = [self._xp.empty(n) for _ in range(4)]
        self._mu = None
        self._pair = None

    def _symmetric(self, kind: LaplacianKind) -> ScaledSymmetric:
        """The snapshot's scaled symmetric matrix (a GPU twin builds it there)."""
        return ScaledSymmetric(self.snapshot, kind, self.dtype)

    def _bind_symmetric(self) -> None:
        """The matrix's scaling and storage as the kernels take them (a GPU
        twin takes them on the device)."""
        m = self._sym
        assert m is not None
        self.lap_sigma, self.lap_diag = m.sigma, m.diag
        self._args = (m.grows, m.gptr, m.glen, m.sidx, m.sval, m.bounds)

    def lap_matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        self.kernels.lap_apply(*self._args, self.lap_diag, x, out)

    def chebyshev(self, v: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        """``sum_k a_k T_k(Z) v``, ``Z = (2 / lam_max) Ls - I``: one fused pass per term."""
        acc: np.ndarray = coeffs[0] * v
        if len(coeffs) == 1:
            return acc
        args = self._args
        scale = 2.0 / self.lam_max
        t_cur, t_prev = self._series_vectors()
        t_cur[:] = v
        half = self._half_matrix()
        if half is not None:
            half.step(scale, t_cur, t_prev, acc, coeffs[1], coeffs[0], True)
            for a_k in coeffs[2:]:
                t_cur, t_prev = t_prev, t_cur
                half.step(scale, t_cur, t_prev, acc, a_k, 0.0, False)
            return acc
        step = self.kernels.cheb_step
        step(*args, self.lap_diag, scale, t_cur, t_prev, acc, coeffs[1], coeffs[0], True)
        for a_k in coeffs[2:]:
            t_cur, t_prev = t_prev, t_cur
            step(*args, self.lap_diag, scale, t_cur, t_prev, acc, a_k, 0.0, False)
        return acc

    def _half_matrix(self) -> HalfSymmetric | None:
        """The symmetric matrix with each pair once (``sym_half``), built on the
        series' first use where its buffers are worth it and the solve allows
        sums grouped by thread count (``FocusParams.thread_sums``); never for
        the exact kernels, whose sums keep the full layout's order. Not kept in a pickle
        or a deep copy (``__getstate__``): rebuilt on first use."""
        if self.kernels is not FAST_KERNELS or self._sym is None:
            return None
        if not self.__dict__.get("_thread_sums", False):
            return None
        half = self.__dict__.get("_half")
        if half is None or half[0] is not self._sym:
            parts = nb.get_num_threads()
            if not HalfSymmetric.worth(self._sym.nnz, self.n, parts):
                return None
            half = self._half = (self._sym, HalfSymmetric(self._sym, parts))
        return half[1]

    def allow_thread_sums(self, allowed: bool) -> None:
        """Whether this solve's series may run over the half-stored matrix
        (``FocusParams.thread_sums``); set by the solver before each solve."""
        self._thread_sums = allowed

    def __getstate__(self) -> dict[str, Any]:
        """The operator without the half-stored matrix, which its first use
        rebuilds, and without the last solve's ``thread_sums``, which the next
        solve sets: a checkpoint or a copy of the focus state need not carry
        them."""
        state = dict(self.__dict__)
        state.pop("_half", None)
        state.pop("_thread_sums", None)
        return state

    def _series_vectors(self) -> list[np.ndarray]:
        """The series' two recurrence vectors, in the storage precision as the
        diffusion's gathered vector is: each term gathers the vector the last
        one wrote, half of it from the other core's cache, and float32 moves half
        the bytes (bench/cheb_passes.py). Made on first use: focus states saved
        before they existed load without them."""
        terms = self.__dict__.get("_terms")
        if terms is None or len(terms[0]) != self.n:
            terms = self._terms = [self._xp.empty(self.n, dtype=self.dtype) for _ in range(2)]
        return terms

    def _cg_begin(
        self, phi: np.ndarray, mu: float, state: SpringsState, tol: float, exact: bool
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], float, float, float]:
        """Right-hand side, residual and first direction of the springs solve.

        The residual of the previous solve is carried over where
        ``_cg_prepare`` allows; ``exact`` solves, a first solve, or one on
        another matrix recompute it from ``y``. Returns ``(y, r, rz, rr,
        goal)``: the state's iterate and residual, which the solve updates.
        """
        n = self.n
        sigma = self.lap_sigma
        carry = self._cg_prepare(phi, mu, state, exact)
        if not carry:
            state.r, state.rhs = self._xp.empty(n), self._xp.empty(n)
        y, r, rhs = state.y, state.r, state.rhs
        # _cg_prepare starts y; a carried residual comes with its right-hand side.
        assert y is not None and r is not None and rhs is not None
        p, z, ap = self._buf[1], self._buf[2], self._buf[3]
        rhs_sq = self.kernels.springs_rhs(phi, sigma, mu, rhs, r, not carry)
        if not carry:
            self.kernels.cg_product(*self._args, self._diag_mu, y, ap)
            self.kernels.residual_of(rhs, ap, r)
        state.owner = self.matrix_version()
        rz, rr = self.kernels.cg_start(r, self._minv, z, p)
        return y, r, rz, rr, tol * np.sqrt(rhs_sq)

    def springs_solve(
        self,
        phi: np.ndarray,
        mu: float,
        state: SpringsState,
        tol: float,
        max_iter: int,
        exact: bool = True,
    ) -> np.ndarray:
        """Solve ``(Ls + mu I) y = mu sigma phi`` by Jacobi-PCG from ``state.y``.

        Returns ``y / sigma``.
        """
        y, r, rz, rr, goal = self._cg_begin(phi, mu, state, tol, exact)
        args = self._args
        p, z, ap = self._buf[1], self._buf[2], self._buf[3]
        it = 0
        while np.sqrt(rr) > goal and it < max_iter:
            pap = self.kernels.cg_product(*args, self._diag_mu, p, ap)
            rz_new, rr = self.kernels.cg_update(y, r, p, ap, self._minv, rz / pap, z)
            self.kernels.cg_direction(p, z, rz_new / rz)
            rz = rz_new
            it += 1
        state.iterations += it
        return y / self.lap_sigma

    def springs_heat(
        self,
        phi: np.ndarray,
        mu: float,
        state: SpringsState,
        cg_tol: float,
        max_iter: int,
        exact: bool,
        v: np.ndarray,
        coeffs: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Springs (as ``springs_solve``) and ``sum_k a_k T_k(Z) v`` (as ``chebyshev``).

        Each pass over the matrix serves one CG step and one Chebyshev term:
        the direction and the Chebyshev vector sit side by side in one
        ``(n, 2)`` array, so a gathered column index fetches both. When one of
        the two is done the other goes on alone in the same kernel. Returns
        ``(y / sigma, heat sum)``.
        """
        n = self.n
        if self._pair is None or len(self._pair) != n:
            self._pair = self._xp.empty((n, 2))
            self._t_next = self._xp.empty(n)
        x2, t_next, t_prev = self._pair, self._t_next, self._buf[0]
        y, r, rz, rr, goal = self._cg_begin(phi, mu, state, cg_tol, exact)
        args = self._args
        p, z, ap = self._buf[1], self._buf[2], self._buf[3]
        terms = len(coeffs)
        acc: np.ndarray = coeffs[0] * v if terms == 1 else self._xp.empty(n)
        scale = 2.0 / self.lam_max
        self.kernels.pair_start(x2, p, v)
        it, k = 0, 1
        do_cg = bool(np.sqrt(rr) > goal and max_iter > 0)
        while do_cg or k < terms:
            do_heat = k < terms
            a_k = coeffs[k] if do_heat else 0.0
            pap = self.kernels.pair_step(
                *args,
                x2,
                self._diag_mu,
                ap,
                do_cg,
                self.lap_diag,
                scale,
                t_prev,
                t_next,
                acc,
                a_k,
                coeffs[0],
                k == 1,
                do_heat,
            )
            beta = 0.0
            if do_cg:
                rz_new, rr = self.kernels.cg_update(y, r, p, ap, self._minv, rz / pap, z)
                beta = rz_new / rz
                rz = rz_new
                it += 1
                do_cg = bool(np.sqrt(rr) > goal and it < max_iter)
            k += 1
            self.kernels.pair_pack(x2, p, z, beta, do_cg, t_next, k < terms)
        state.iterations += it
        return y / self.lap_sigma, acc

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        """Inner product on numba's threads (numpy's would wake BLAS threads that
        fight numba's for the same cores)."""
        product: float = self.kernels.dot(a, b, self.parts)
        return product

    def blend(
        self,
        phi: np.ndarray,
        d: np.ndarray,
        s: np.ndarray | None,
        h: np.ndarray | None,
        weights: tuple[float, float, float],
    ) -> float:
        """``d <- (ld d + ls s + lh h) / sum``; returns ``||d - phi||_1``, in two
        passes on numba's threads where numpy's blend would take six. Its sums
        run over fixed chunks in order, so the exact operator shares it.

        ``d`` is rewritten, so its quotient by the out-weights that the
        diffusion step prepared is stale. ``exact-v1`` kept reading it (the
        defect ``params.EXACT_V2`` fixes), and its chains must replay so.
        """
        if self.arithmetic != EXACT_V1:
            self._z_of = None
        ld, ls, lh = weights
        total = self.kernels.blend_sum(
            d,
            d if s is None else s,
            d if h is None else h,
            ld,
            ls,
            lh,
            s is not None,
            h is not None,
            self.parts,
        )
        if not math.isfinite(total) or total <= 0:
            raise FloatingPointError("focus iteration lost its mass (non-finite values)")
        return float(self.kernels.divide_l1(d, phi, total, self.parts))


class ExactNumbaOperator(NumbaOperator):
    """The numba operator in exact arithmetic (``FocusParams.arithmetic``).

    Its kernels are compiled without ``fastmath``, and it supplies the solver's
    sum that would otherwise be numpy's (``total``; ``blend`` is the fast
    operator's, already exact): every sum runs over fixed chunks whose
    partials are combined in a fixed order (``exact-v1``, ``exact-v2``: the
    64 ``_CHUNKS`` added in order; ``exact-v3``: chunks of 1,024 values
    combined by a tree, and Anderson's passes its own), so the result is the
    same bits on every IEEE-754 machine with any numpy, numba or thread count.
    """

    @staticmethod
    def pull_bounds(gptr: np.ndarray) -> np.ndarray:
        return balanced_chunks(gptr, _CHUNKS)

    def __init__(
        self, snapshot: Snapshot, precision: Precision, arithmetic: ArithmeticName
    ) -> None:
        self.arithmetic = arithmetic
        super().__init__(snapshot, precision)

    @property
    def kernels(self) -> Kernels:  # type: ignore[override]  # by arithmetic, not by class
        """The exact kernels of this operator's arithmetic."""
        return TREE_KERNELS if self.arithmetic == EXACT_V3 else EXACT_KERNELS

    @property
    def anderson_kernels(self) -> AndersonKernels | None:
        """``exact-v3``'s Anderson passes (its sums are the tree's); None for
        the earlier versions, whose passes are ``anderson``'s exact twins."""
        return exact_tree.TreeAnderson() if self.arithmetic == EXACT_V3 else None

    def _pull_into(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        if self.arithmetic != EXACT_V3:
            return super()._pull_into(z, out, scale)
        m = self.sell
        total: float = exact_tree.sell_pull(
            m.grows, m.gptr, m.glen, m.sidx, m.sval, z, out, self.sell_bounds, scale
        )
        out[self.sell_rows : self.n] = 0.0
        if len(self.ov_rows):
            total += exact_tree.csr_pull_add(
                self.ov_rows, self.ov_ptr, self.ov_indices, self.ov_in_w, z, out, scale
            )
        return total

    def total(self, v: np.ndarray) -> float:
        """``sum(v)``, the same bits everywhere."""
        if self.arithmetic == EXACT_V3:
            return float(chunked_sum(v))
        return float(strict_sum(v))


class NumbaBackend:
    name = "numba"

    @staticmethod
    def check_operator(op: object, check: Check, snap: Snapshot, params: FocusParams) -> None:
        """See ``NumbaOperator.check_structure``."""
        NumbaOperator.check_structure(op, check, snap, params)

    @staticmethod
    def check_matrix(matrix: object, check: Check) -> None:
        """A symmetric matrix a springs or heat state remembers (None, or one
        of this backend's, possibly of an earlier snapshot)."""
        if matrix is not None and check.once(matrix):
            ScaledSymmetric.check_structure(matrix, check)

    @staticmethod
    def adopt(op: object) -> NumbaOperator:
        """The numba form of another backend's exact operator (cuda's
        ``host_twin``): the same matrices and vectors, on the host."""
        twin = getattr(op, "host_twin", None)
        if twin is None:
            raise InvalidParameterError(
                f"the {getattr(op, 'name', type(op).__name__)} operator cannot move to numba"
            )
        host: NumbaOperator = twin()
        return host

    def available(self) -> tuple[bool, str]:
        threads = nb.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # not in numba's stubs
        return True, f"numba {nb.__version__}, {threads} threads"

    def operator(
        self,
        snapshot: Snapshot,
        precision: Precision = "float64",
        arithmetic: ArithmeticName = FAST,
    ) -> NumbaOperator:
        if arithmetic != FAST:
            return ExactNumbaOperator(snapshot, precision, arithmetic)
        return NumbaOperator(snapshot, precision)
