"""The seam between the focus algorithms and the hardware that runs them.

A backend turns a :class:`~focusflow.graph.Snapshot` into a
:class:`GraphOperator`: the few graph products the tri-kernel needs, on
vectors in the snapshot's internal order. The solver, CG and Chebyshev loops
are written once against this interface; a backend supplies fast products
(numba on CPUs, CuPy and WebGPU on GPUs) and may override the loops where
fusing them pays.

Every optional operation is a :class:`typing.Protocol` below, and
:func:`capabilities` resolves once per operator which of them it offers (a
:class:`Capabilities` record), so the solver's choices are made when the
operator is made, not by probing attributes in the middle of a solve:

* :class:`DeviceVectors`: the operator keeps its vectors on a device the host
  reaches through ``from_host``/``to_host`` (``xp`` is the array module; cuda).
* :class:`DeviceSolver`: the whole diffusion or tri iteration on the device,
  with a few scalars as the only per-step traffic (wgpu, whose host round
  trip per step would cost more than the step); both return a
  :class:`DeviceSolve`.
* :class:`FusedBlend`: the tri blend and its L1 change in one pass (cuda,
  numba's exact arithmetic).
* :class:`FusedDot`, :class:`FixedTotal`: the operator's own reductions
  (numba's threads, cuda's device; a fixed order in exact arithmetic).
* :class:`FusedSprings`, :class:`FusedChebyshev`, :class:`FusedSpringsHeat`:
  the springs CG, the Chebyshev series, or both side by side with one pass
  over the matrix per pair.
* :class:`MatrixVersioned`: a token naming the symmetric matrix as it is now,
  which inner states carried between solves belong to.
* :class:`LinkAppender`: links taken without a snapshot patch, for
  ``FocusEngine``'s blocks whose links keep every weight the operator holds;
  the next ``refresh(info)`` replaces them by the patched entries.
* :class:`AndersonPasses`: the two passes of Anderson mixing as device kernels.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, cast, runtime_checkable

import numpy as np

from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    from focusflow.core.structure import Check
    from focusflow.focus.params import ArithmeticName, FocusParams, LaplacianKind, Precision
    from focusflow.focus.spectral import HeatState, SpringsState

#: ``progress(iteration, l1_change)``, called after each outer iteration.
Progress = Callable[[int, float], None]
#: A vector or matrix where an operator keeps it: a numpy array on the host,
#: or a CuPy array on an NVIDIA GPU. CuPy ships no types, so to a type
#: checker this is Any; the name says which values are meant.
DeviceArray: TypeAlias = Any


class GraphOperator(Protocol):
    """Graph products over one snapshot, in internal particle order."""

    name: str
    n: int
    snapshot: Snapshot

    def diffusion(self, x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
        """``y <- D(x)``, normalised to mass 1; returns ``||y - x||_1``.

        ``D(x) = alpha P^T x + (alpha * dangling_mass(x) + (1 - alpha)) * prior``.
        """
        ...

    def refresh(self, info: PatchInfo | None = None) -> None:
        """Re-read the snapshot after a patch (``info``: the patch record, if known)."""
        ...

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        """``out[q] = scale * sum_p W[p, q] z[p]``; returns ``sum(out)``."""
        ...

    def setup_laplacian(self, kind: LaplacianKind) -> None:
        """Prepare ``Ls``, the symmetric form of the Laplacian behind springs and heat."""
        ...

    def lap_matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        """``out <- Ls x``."""
        ...

    lap_sigma: np.ndarray
    lap_diag: np.ndarray
    lam_max: float


class Backend(Protocol):
    """A factory of operators; ``available()`` says whether it can run here."""

    name: str

    def available(self) -> tuple[bool, str]: ...

    def operator(self, snapshot: Snapshot, precision: Precision = "float64") -> GraphOperator: ...


class ExactBackend(Backend, Protocol):
    """A backend that also implements the exact arithmetics
    (``params.EXACT_BACKENDS``: numba, cuda)."""

    def operator(
        self,
        snapshot: Snapshot,
        precision: Precision = "float64",
        arithmetic: ArithmeticName = "fast",
    ) -> GraphOperator: ...


@runtime_checkable
class CheckingBackend(Protocol):
    """A backend that checks its operators' and matrices' structure (numba)."""

    def check_operator(
        self, op: object, check: Check, snap: Snapshot, params: FocusParams
    ) -> None: ...

    def check_matrix(self, matrix: object, check: Check) -> None: ...


# --- optional operations -------------------------------------------------------
@runtime_checkable
class DeviceVectors(Protocol):
    """Vectors live on a device: ``xp`` is their array module (CuPy)."""

    xp: ModuleType

    def from_host(self, array: np.ndarray) -> DeviceArray: ...

    def to_host(self, array: DeviceArray) -> np.ndarray: ...


@runtime_checkable
class FixedTotal(Protocol):
    """``sum(v)`` by a fixed-order reduction (exact arithmetic)."""

    def total(self, v: np.ndarray) -> float: ...


@runtime_checkable
class FusedDot(Protocol):
    """``a . b`` by the operator's own reduction."""

    def dot(self, a: np.ndarray, b: np.ndarray) -> float: ...


@runtime_checkable
class FusedBlend(Protocol):
    """``d <- (ld d + ls s + lh h) / sum`` in one fused pass; returns its L1
    change from ``phi`` (``s`` or ``h`` None when that weight is 0)."""

    def blend(
        self,
        phi: np.ndarray,
        d: np.ndarray,
        s: np.ndarray | None,
        h: np.ndarray | None,
        weights: tuple[float, float, float],
    ) -> float: ...


@runtime_checkable
class FusedSprings(Protocol):
    """The whole springs solve ``(Ls + mu I) y = mu sigma phi``; returns ``y / sigma``."""

    def springs_solve(
        self,
        phi: np.ndarray,
        mu: float,
        state: SpringsState,
        tol: float,
        max_iter: int,
        exact: bool = True,
    ) -> np.ndarray: ...


@runtime_checkable
class FusedChebyshev(Protocol):
    """``sum_k a_k T_k(Z) v`` with ``Z = (2 / lam_max) Ls - I``."""

    def chebyshev(self, v: np.ndarray, coeffs: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class ThreadSums(Protocol):
    """An operator whose fast sums may be grouped by thread count
    (``FocusParams.thread_sums``): the solver says, for each solve, whether
    they may."""

    def allow_thread_sums(self, allowed: bool) -> None: ...


@runtime_checkable
class FusedSpringsHeat(Protocol):
    """Springs CG and the Chebyshev series side by side, one pass over the
    matrix per pair; returns ``(S(phi), sum_k a_k T_k(Z) v)``."""

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
    ) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class MatrixVersioned(Protocol):
    """What a carried inner state belongs to: the symmetric matrix as it is now
    (an operator that changes it in place gives each change a token)."""

    def matrix_version(self) -> object: ...


@runtime_checkable
class Arithmetic(Protocol):
    """An operator that names its arithmetic (``FocusParams.arithmetic``)."""

    arithmetic: ArithmeticName


@runtime_checkable
class LinkAppender(Protocol):
    """Links taken without a snapshot patch (internal ids, ``n`` particles, new
    ones numbered after the old; the ids may be arrays on the device)."""

    def append_links(
        self, src: DeviceArray, dst: DeviceArray, weights: np.ndarray, n: int
    ) -> None: ...


class AndersonKernels(Protocol):
    """Anderson mixing's two passes (the signatures of ``anderson``'s numba kernels)."""

    def record(
        self,
        x: DeviceArray,
        gx: DeviceArray,
        x_prev: DeviceArray,
        g_prev: DeviceArray,
        dx: DeviceArray,
        dg: DeviceArray,
        slot: int,
        live: bool,
        k: int,
    ) -> tuple[np.ndarray | None, np.ndarray | None]: ...

    def mix(
        self,
        gx: DeviceArray,
        dx: DeviceArray,
        dg: DeviceArray,
        gamma: np.ndarray,
        k: int,
        out: DeviceArray,
    ) -> float: ...


@runtime_checkable
class AdoptingBackend(Protocol):
    """A backend that takes over another backend's operator with the same bits
    (numba and cuda in an exact arithmetic: ``FocusEngine.moved``)."""

    def adopt(self, op: object) -> GraphOperator: ...


@runtime_checkable
class AndersonPasses(Protocol):
    """An operator whose device runs Anderson mixing's passes."""

    anderson_kernels: AndersonKernels


@dataclass
class DeviceSolve:
    """What a device loop returns: the iterate on the host (internal order),
    the L1 change of every outer iteration, whether the last one was below
    tol, the seconds spent in each part of the solve, the Anderson
    restarts, and the steps of a diffusion start the device ran itself."""

    phi: np.ndarray
    residual_history: list[float]
    converged: bool
    timings: dict[str, float] = field(default_factory=dict)
    anderson_restarts: int = 0
    start_iterations: int = 0


@runtime_checkable
class DeviceSolver(Protocol):
    """The whole iteration on the device (wgpu): ``x0 = None`` is the uniform
    start, filled there; a few scalars are the only per-step traffic.

    ``solve_tri`` follows the host's outer rules (``focus.policy.TriPolicy``)
    and adds its inner solves' counts to the two states; with ``x0 = None``
    it makes the diffusion start (``FocusParams.start``) itself, keeping its
    iterate on the device.
    """

    def solve_diffusion(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        alpha: float,
        tol: float,
        max_iter: int,
        progress: Progress | None = None,
        anderson: int = 0,
    ) -> DeviceSolve: ...

    def solve_tri(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        params: FocusParams,
        springs_state: SpringsState,
        heat_state: HeatState,
        progress: Progress | None = None,
    ) -> DeviceSolve: ...


#: The optional operations, by the name :class:`Capabilities` gives each.
OPTIONAL: dict[str, type] = {
    "device": DeviceVectors,
    "solver": DeviceSolver,
    "blend": FusedBlend,
    "dot": FusedDot,
    "total": FixedTotal,
    "springs": FusedSprings,
    "chebyshev": FusedChebyshev,
    "thread_sums": ThreadSums,
    "springs_heat": FusedSpringsHeat,
    "versioned": MatrixVersioned,
    "appender": LinkAppender,
}


class Capabilities:
    """Which optional operations one operator offers, resolved once per
    operator by :func:`capabilities`: each property is the operator narrowed
    to that protocol, or None where it does not offer it.

    The record holds its operator weakly (it is kept in a weak map keyed by
    the operator, so a strong reference would keep every operator alive).
    """

    def __init__(self, op: object) -> None:
        self._op = weakref.ref(op)
        self.offered = frozenset(name for name, proto in OPTIONAL.items() if isinstance(op, proto))
        device = op if isinstance(op, DeviceVectors) else None
        #: The array module of the operator's vectors (numpy on the host).
        self.xp: ModuleType = device.xp if device is not None else np
        #: The device passes of Anderson mixing, where the operator has them.
        self.anderson: AndersonKernels | None = (
            op.anderson_kernels if isinstance(op, AndersonPasses) else None
        )
        #: The operator's arithmetic (``FocusParams.arithmetic``; ``fast`` unless named).
        self.arithmetic: ArithmeticName = op.arithmetic if isinstance(op, Arithmetic) else "fast"

    def _narrowed(self, name: str) -> Any:
        return self._op() if name in self.offered else None

    @property
    def host(self) -> bool:
        """Whether the vectors are numpy arrays on the host."""
        return self.xp is np

    @property
    def device(self) -> DeviceVectors | None:
        return cast("DeviceVectors | None", self._narrowed("device"))

    @property
    def solver(self) -> DeviceSolver | None:
        return cast("DeviceSolver | None", self._narrowed("solver"))

    @property
    def blend(self) -> FusedBlend | None:
        return cast("FusedBlend | None", self._narrowed("blend"))

    @property
    def dot(self) -> FusedDot | None:
        return cast("FusedDot | None", self._narrowed("dot"))

    @property
    def total(self) -> FixedTotal | None:
        return cast("FixedTotal | None", self._narrowed("total"))

    @property
    def springs(self) -> FusedSprings | None:
        return cast("FusedSprings | None", self._narrowed("springs"))

    @property
    def chebyshev(self) -> FusedChebyshev | None:
        return cast("FusedChebyshev | None", self._narrowed("chebyshev"))

    @property
    def thread_sums(self) -> ThreadSums | None:
        return cast("ThreadSums | None", self._narrowed("thread_sums"))

    @property
    def springs_heat(self) -> FusedSpringsHeat | None:
        return cast("FusedSpringsHeat | None", self._narrowed("springs_heat"))

    @property
    def versioned(self) -> MatrixVersioned | None:
        return cast("MatrixVersioned | None", self._narrowed("versioned"))

    @property
    def appender(self) -> LinkAppender | None:
        return cast("LinkAppender | None", self._narrowed("appender"))


_RESOLVED: weakref.WeakKeyDictionary[object, Capabilities] = weakref.WeakKeyDictionary()


def capabilities(op: object) -> Capabilities:
    """``op``'s :class:`Capabilities`, resolved on its first call (the solver's
    ``make_operator`` makes that call as it builds the operator) and kept
    for the operator's lifetime: an operator's class and its construction
    decide what it offers, not its state during a solve."""
    caps = _RESOLVED.get(op)
    if caps is None:
        caps = Capabilities(op)
        _RESOLVED[op] = caps
    return caps


@functools.cache
def kernel_source(name: str) -> str:
    """The text of ``kernels/<name>``: a shader (``.wgsl``) or CUDA C (``.cu``)
    file shipped with the package (``tool.setuptools.package-data``)."""
    return files(__package__).joinpath("kernels", name).read_text(encoding="utf-8")


def inverse_out_weight(out_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 / W_p, linked)`` with 0 where a particle has no outgoing weight (dangling)."""
    linked = out_weight > 0
    return np.where(linked, 1.0 / np.where(linked, out_weight, 1.0), 0.0), linked


def uniform_value(prior: DeviceArray) -> float | None:
    """The value of a constant (uniform) prior vector, None for any other: GPU
    backends then pass the value instead of reading the vector every step.
    Works on numpy and CuPy arrays."""
    if not len(prior):
        return None
    lo, hi = float(prior.min()), float(prior.max())
    return lo if lo == hi else None


class ScreenedCG:
    """The start of a springs solve, shared by the operators that fuse CG.

    The host needs ``n``, ``lap_sigma``, ``lap_diag``, ``_sym`` (the current
    symmetric matrix) and ``_mu`` (None after each Laplacian set-up).
    """

    n: int
    lap_sigma: DeviceArray
    lap_diag: DeviceArray
    _sym: object
    _mu: float | None
    _diag_mu: DeviceArray
    _minv: DeviceArray

    def matrix_version(self) -> object:
        """What a springs state's residual belongs to: the symmetric matrix as it
        is now (an operator that changes it in place gives each change a token)."""
        return self._sym

    def _cg_prepare(self, phi: DeviceArray, mu: float, state: SpringsState, exact: bool) -> bool:
        """Cache ``diag + mu`` and its inverse, start ``y`` at ``sigma phi`` on a
        first solve; returns whether the previous solve's residual can be
        carried over (an inexact solve on the same matrix: the right-hand side
        then moves by ``mu sigma (phi - phi_prev)``, which saves the product
        that would recompute it)."""
        if self._mu != mu:
            self._mu = mu
            self._diag_mu = self.lap_diag + mu
            self._minv = 1.0 / self._diag_mu
        warm = state.y is not None and len(state.y) == self.n
        if not warm:
            state.y = self.lap_sigma * phi
        return (
            warm
            and not exact
            and state.owner is self.matrix_version()
            and state.r is not None
            and len(state.r) == self.n
        )


#: Least degree, relative to the largest, of a particle springs and heat link.
DEGREE_FLOOR = 1e-12


def laplacian_scaling(
    degree: np.ndarray, kind: LaplacianKind, xp: Any = np
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(sigma, diag, lam_max)`` so that ``Ls = diag(diag) - sigma A sigma``.

    ``xp`` is the array module ``degree`` lives in (CuPy for a GPU build):
    every step is a comparison, a square root or a quotient, each correctly
    rounded by IEEE 754 on either, so both give the same bits.

    ``normalized``: the random-walk Laplacian ``I - A D^-1`` acting on
    distributions equals ``D^1/2 Ls D^-1/2`` with ``Ls = I - D^-1/2 A D^-1/2``;
    its spectrum lies in [0, 2]. ``combinatorial``: ``Ls = L = D - A``, spectrum
    in [0, 2 max(d)] (Gershgorin). Particles without links have a zero row.
    """
    linked = degree > 0
    if kind == "normalized":
        # A particle whose degree is at float noise next to the largest would be
        # scaled by d^-1/2 > 10^6: its entries would dominate every norm the
        # solvers take, and springs would stop to a tolerance meaningless for
        # all other particles (result depending on particle order, no
        # convergence). Such particles count as unlinked for springs and heat.
        if len(degree):
            linked &= degree > DEGREE_FLOOR * degree.max()
        sigma = xp.where(linked, 1.0 / xp.sqrt(xp.where(linked, degree, 1.0)), 1.0)
        diag = linked.astype(np.float64)
        lam_max = 2.0
    elif kind == "combinatorial":
        sigma = xp.ones_like(degree)
        diag = degree.astype(np.float64)
        lam_max = float(2.0 * degree.max()) if len(degree) else 0.0
    else:
        raise ValueError(f"unknown laplacian {kind!r}")
    return sigma, diag, lam_max
