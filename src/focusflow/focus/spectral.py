"""Springs and heat: the two Laplacian operators of the tri-kernel.

Both act on a distribution ``phi`` through the symmetric form ``Ls`` of the
chosen Laplacian (see ``backends.base.laplacian_scaling``): with ``sigma`` the
scaling vector, ``L = sigma^-1 Ls sigma`` is the operator on distributions, so

* springs ``S(phi) = mu (L + mu I)^-1 phi = sigma^-1 y`` where
  ``(Ls + mu I) y = mu sigma phi`` is solved by Jacobi-preconditioned conjugate
  gradients, warm-started from the previous solution (Hestenes and Stiefel 1952);
* heat ``H(phi) = exp(-tau L) phi = sigma^-1 exp(-tau Ls) sigma phi`` is the
  Chebyshev expansion of ``exp(-tau x)`` on ``[0, lam_max]`` with coefficients
  from exponentially scaled modified Bessel functions, truncated where the
  coefficient tail bounds the error (Hochbruck and Lubich 1997; Higham, *Functions
  of Matrices*, 2008, ch. 10).

Both preserve total mass and non-negativity (exactly, and to the solver
tolerance respectively).

Both are functions of the same ``Ls``, so their blend ``lam_s S + lam_h H`` is
one too: ``sigma^-1 g(Ls) sigma`` with ``g(x) = lam_s mu / (x + mu) + lam_h
exp(-tau x)``. ``springs_method="series"`` expands ``g`` as one Chebyshev
series (``blend_series``; the resolvent's coefficients have a closed form) and
applies it like heat, to the change since the last result: each pass over the
matrix then gathers one vector instead of CG's and heat's two side by side.
The series needs more terms than CG needs steps (it converges at the rate set
by the pole at ``-mu``, CG at the rate of the actual spectrum) but each costs
less than half a paired pass (bench/RESULTS.md, tri at R-MAT scale 20).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from focusflow.core.structure import Check
from focusflow.focus.backends.base import DeviceArray, GraphOperator, capabilities
from focusflow.focus.params import FAST, HeatReuse


def heat_series(c: float, tol: float, exact: bool = False) -> tuple[np.ndarray, float]:
    """Chebyshev coefficients of ``exp(-c (1 + z))`` on ``z in [-1, 1]`` and the
    bound on the error of the truncated series.

    ``exp(-c(1+z)) = ive(0,c) + 2 sum_k (-1)^k ive(k,c) T_k(z)``; the series is cut
    at the first K whose remaining coefficients sum to at most ``tol``. That sum
    (returned) bounds the truncation error in the 2-norm, since ``|T_k| <= 1``.
    ``exact``: the coefficients and the tail sums come from our own code
    (``_exact_series``), the same bits on every machine, instead of scipy's
    ``ive`` and numpy's ``cumsum``.
    """
    if c <= 0:
        return np.array([1.0]), 0.0
    kmax = _heat_kmax(c)
    if exact:
        a_list, tail_list = _exact_series(float(c), kmax)
        a, tail = np.array(a_list), np.array(tail_list)
    else:
        from scipy.special import ive  # only the fast arithmetic's tri needs it

        k = np.arange(kmax + 1)
        a = 2.0 * ive(k, c) * np.where(k % 2 == 0, 1.0, -1.0)
        a[0] = ive(0, c)
        tail = np.append(np.cumsum(np.abs(a)[::-1])[::-1], 0.0)
    return _cut(a, tail, tol)


def _heat_kmax(c: float) -> int:
    """The last index of heat's series worth computing at ``c`` (its terms
    past it are far below double precision)."""
    return int(c + 12.0 * math.sqrt(c) + 60.0)


def _cut(a: np.ndarray, tail: np.ndarray, tol: float) -> tuple[np.ndarray, float]:
    """``a`` cut at the first K whose remaining coefficients sum to at most
    ``tol`` (``tail[k]``, one more entry than ``a``: 0), at least one term;
    and that sum, the bound on the truncation error."""
    keep = np.flatnonzero(tail <= tol)
    cut = max(int(keep[0]) if len(keep) else len(a), 1)
    return a[:cut], float(tail[cut])


def _tail_sums(a: list[float]) -> list[float]:
    """``sum_{j>=k} |a_j|`` for each k and a final 0, summed from the last term
    backwards in Python floats (the same bits everywhere)."""
    tail = [0.0] * (len(a) + 1)
    for k in range(len(a) - 1, -1, -1):
        tail[k] = tail[k + 1] + abs(a[k])
    return tail


#: Above this the backward recurrence rescales its values (far below overflow).
_BIG = 1e250


def bessel_ive(c: float, kmax: int) -> list[float]:
    """``exp(-c) I_k(c)`` for ``k = 0..kmax`` (``c > 0``), in Python floats.

    Miller's backward recurrence (``I_{k-1} = I_{k+1} + (2k / c) I_k``, stable
    downwards) from an index far past ``kmax`` where the true values are
    negligible, normalised by ``I_0 + 2 sum_k I_k = exp(c)``, i.e. the scaled
    values sum to 1 that way: no exponential and no library function, each
    step one IEEE-754 operation in a fixed order, so the result is the same
    bits on every machine. Agrees with ``scipy.special.ive`` to a few units in
    the last place (tests/focus/test_arithmetic.py).
    """
    start = 2 * (kmax + int(math.sqrt(40.0 * (kmax + c))) + 20)
    vals = [0.0] * (start + 2)
    vals[start] = 1e-30
    two_over_c = 2.0 / c
    for k in range(start, 0, -1):
        v = vals[k + 1] + (k * two_over_c) * vals[k]
        vals[k - 1] = v
        if v > _BIG:
            for j in range(k - 1, start + 1):
                vals[j] = vals[j] / _BIG
    total = 0.0
    for k in range(start, 0, -1):
        total = total + vals[k]
    total = vals[0] + 2.0 * total
    return [vals[k] / total for k in range(kmax + 1)]


@functools.lru_cache(maxsize=32)
def _exact_series(c: float, kmax: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Coefficients ``a_k`` of the heat series and the sums ``sum_{j>=k} |a_j|``
    (one more, 0, at the end), summed from the last term backwards."""
    ive_k = bessel_ive(c, kmax)
    a = [ive_k[0]] + [(2.0 if k % 2 == 0 else -2.0) * ive_k[k] for k in range(1, kmax + 1)]
    return tuple(a), tuple(_tail_sums(a))


def heat_coefficients(c: float, tol: float) -> np.ndarray:
    """The coefficients of ``heat_series(c, tol)``."""
    return heat_series(c, tol)[0]


#: A series no longer than this is cut where its tail is small enough; a
#: longer one (a resolvent pole nearly on the spectrum) is cut here and its
#: bound says how far off it is.
MAX_SERIES_TERMS = 20_000
#: ``springs_method="auto"`` takes the series where the resolvent's terms
#: shrink at least this fast (``rho``, see ``resolvent_rate``): mu >= 0.025
#: with the normalized Laplacian, never with the combinatorial one on a graph
#: with hubs. Measured with numba at R-MAT scales 17-18: at mu = 1 (rho = 3.7)
#: a solve took 68 single passes against 31 CG steps beside 50 heat terms and
#: was 2x faster; at mu = 0.03 (rho = 1.28) 335 terms against 126 CG steps,
#: still 1.3x faster.
SERIES_MIN_RATE = 1.25


def resolvent_rate(mu: float, lam_max: float) -> float:
    """How fast the Chebyshev coefficients of ``mu / (x + mu)`` on ``[0,
    lam_max]`` shrink: ``|a_k| ~ rho^-k`` with ``rho = a + sqrt(a^2 - 1)``,
    ``a = 1 + 2 mu / lam_max`` (the pole ``-mu`` mapped onto ``z = -a``)."""
    if lam_max <= 0.0:
        return math.inf
    a = 1.0 + 2.0 * mu / lam_max
    return a + math.sqrt(a * a - 1.0)


def resolvent_series(mu: float, lam_max: float, kmax: int) -> list[float]:
    """Chebyshev coefficients (``k = 0..kmax``) of ``mu / (x + mu)`` on ``[0, lam_max]``.

    With ``x = (lam_max / 2)(1 + z)`` the function is ``b / (z + a)``, ``b = 2 mu
    / lam_max``, ``a = 1 + b``, whose expansion is known in closed form:
    ``1 / (z + a) = (2 / s) (1/2 + sum_k (-1/rho)^k T_k(z))`` with ``s =
    sqrt(a^2 - 1)`` and ``rho = a + s`` (Mason and Handscomb, *Chebyshev
    Polynomials*, 2003, 5.14). Computed by repeated multiplication in Python
    floats: the same bits on every machine.
    """
    b = 2.0 * mu / lam_max
    a = 1.0 + b
    root = math.sqrt(a * a - 1.0)
    step = -1.0 / (a + root)
    lead = b * 2.0 / root
    out = [lead * 0.5]
    term = lead
    for _ in range(kmax):
        term = term * step
        out.append(term)
    return out


@functools.lru_cache(maxsize=32)
def _blend_terms(
    c: float, mu: float, lam_max: float, share: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Coefficients of ``g / (lam_s + lam_h)`` (``share = lam_s / (lam_s +
    lam_h)``) and their tail sums, as far as double precision can tell them
    apart from 0 (``MAX_SERIES_TERMS`` at most)."""
    rate = resolvent_rate(mu, lam_max)
    springs_k = math.ceil(40.0 / math.log(rate)) + 2 if rate > 1.0 else MAX_SERIES_TERMS
    heat_k = _heat_kmax(c) if c > 0 else 0
    kmax = min(MAX_SERIES_TERMS, max(springs_k, heat_k))
    res = resolvent_series(mu, lam_max, kmax)
    if c > 0:
        heat_a, _ = _exact_series(c, kmax)
    else:
        heat_a = (1.0,) + (0.0,) * kmax
    rest = 1.0 - share
    a = [share * res[k] + rest * heat_a[k] for k in range(kmax + 1)]
    return tuple(a), tuple(_tail_sums(a))


def blend_series(
    c: float, mu: float, lam_max: float, share: float, tol: float
) -> tuple[np.ndarray, float]:
    """Chebyshev coefficients of ``g / (lam_s + lam_h)`` on ``[0, lam_max]`` and
    the bound on the truncation error, cut as ``heat_series`` cuts (the first
    K whose remaining coefficients sum to at most ``tol``).

    ``c = tau lam_max / 2`` (heat's series parameter), ``share = lam_s /
    (lam_s + lam_h)``. One code path for both arithmetics: the heat part comes
    from ``bessel_ive`` and the resolvent's from ``resolvent_series``, so the
    coefficients are the same bits everywhere.
    """
    a, tail = _blend_terms(c, mu, lam_max, share)
    return _cut(np.array(a), np.array(tail), tol)


def blend_pays(mu: float, lam_max: float) -> bool:
    """Whether ``springs_method="auto"`` takes the series (``SERIES_MIN_RATE``)."""
    return resolvent_rate(mu, lam_max) >= SERIES_MIN_RATE


@dataclass
class SpringsState:
    """Warm-start state of the springs solve between iterations or blocks."""

    #: The last solution, where the operator keeps its vectors.
    y: DeviceArray | None = None
    iterations: int = 0
    #: Residual and right-hand side of the last solve, and the operator they
    #: belong to (backends with ``FusedSprings`` carry them to the next solve).
    r: DeviceArray | None = None
    rhs: DeviceArray | None = None
    owner: object = None

    def check_structure(self, check: Check, check_owner: Callable[[object, Check], None]) -> None:
        """Float64 vectors; the residual and right-hand side of one length
        (a carried-over solve uses both once ``y`` and ``r`` have the
        operator's length); ``owner`` as the backend checks its matrices."""
        a = check.fields(self, SpringsState, SpringsState.__dataclass_fields__)
        check.optional_array("y", a["y"], np.float64)
        r = check.optional_array("r", a["r"], np.float64)
        rhs = check.optional_array("rhs", a["rhs"], np.float64)
        if (r is None) != (rhs is None) or (
            r is not None and rhs is not None and len(r) != len(rhs)
        ):
            check.fail("rhs", "is not of the residual's length")
        check.integer("iterations", a["iterations"], 0)
        check_owner(a["owner"], check.at("owner"))


def op_dot(op: GraphOperator, a: np.ndarray, b: np.ndarray) -> float:
    """``a . b`` by the operator's own reduction where it has one (numba's runs
    on its threads, cuda's on the device), else numpy's."""
    fast = capabilities(op).dot
    return float(fast.dot(a, b)) if fast is not None else float(a @ b)


def op_norm(op: GraphOperator, a: np.ndarray) -> float:
    return float(np.sqrt(op_dot(op, a, a)))


def springs(
    op: GraphOperator,
    phi: np.ndarray,
    mu: float,
    state: SpringsState,
    tol: float,
    max_iter: int,
    exact: bool = True,
) -> np.ndarray:
    """``S(phi)``: solve ``(Ls + mu I) y = mu sigma phi`` by PCG from ``state.y``.

    A backend may supply the whole solve (``op.springs_solve``); with ``exact``
    false it may start from the previous solve's residual instead of
    recomputing it.
    """
    fast = capabilities(op).springs
    if fast is not None:
        return fast.springs_solve(phi, mu, state, tol, max_iter, exact)
    sigma = op.lap_sigma
    rhs = mu * sigma * phi
    y = state.y.copy() if state.y is not None and len(state.y) == len(phi) else sigma * phi
    ap = np.empty_like(y)
    op.lap_matvec(y, ap)
    r = rhs - (ap + mu * y)
    minv = 1.0 / (op.lap_diag + mu)
    goal = tol * op_norm(op, rhs)
    z = minv * r
    p = z.copy()
    rz = op_dot(op, r, z)
    it = 0
    while op_norm(op, r) > goal and it < max_iter:
        op.lap_matvec(p, ap)
        ap += mu * p
        step = rz / op_dot(op, p, ap)
        y += step * p
        r -= step * ap
        z = minv * r
        rz_new = op_dot(op, r, z)
        p *= rz_new / rz
        p += z
        rz = rz_new
        it += 1
    state.y = y
    state.iterations += it
    solution: np.ndarray = y / sigma
    return solution


#: Share of its error budget a fresh heat application spends. The rest is left
#: to the next iterations, whose smaller budgets an increment on top of this
#: result must fit into with its own error (see ``_heat_input``).
FRESH_SHARE = 0.1


@dataclass
class HeatState:
    """Last input and output of the heat operator, to apply it to differences."""

    #: Input and output, where the operator keeps its vectors.
    phi: DeviceArray | None = None
    out: DeviceArray | None = None
    terms: int = 0
    #: Bound on the error of ``out`` in the symmetric frame,
    #: ``||sigma out - exp(-tau Ls) sigma phi||_2``.
    err: float = np.inf
    #: The relative accuracy ``out`` was asked for.
    tol: float = np.inf
    #: The operator's matrix and the series parameter ``out`` was computed with.
    owner: object = None
    c: float = np.nan
    #: Which function of ``Ls`` ``out`` holds: ``heat``, or the springs and heat
    #: blend of ``blend`` (``_Series.kind``); an increment only builds on its own.
    kind: str = "heat"

    def check_structure(self, check: Check, check_owner: Callable[[object, Check], None]) -> None:
        """Float64 input and output of one length (an increment subtracts
        them), the counts and bounds numbers, ``owner`` as the backend
        checks its matrices."""
        a = check.fields(self, HeatState, HeatState.__dataclass_fields__)
        phi = check.optional_array("phi", a["phi"], np.float64)
        out = check.optional_array("out", a["out"], np.float64)
        if (phi is None) != (out is None) or (
            phi is not None and out is not None and len(phi) != len(out)
        ):
            check.fail("out", "is not of the input's length")
        check.integer("terms", a["terms"], 0)
        for name in ("err", "tol", "c"):
            if type(a[name]) not in (float, int, np.float64):
                check.fail(name, f"is a {type(a[name]).__name__}, not a number")
        if type(a["kind"]) is not str:
            check.fail("kind", f"is a {type(a['kind']).__name__}, not a string")
        check_owner(a["owner"], check.at("owner"))


def _chebyshev(op: GraphOperator, v: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
    """``sum_k a_k T_k(Z) v`` with ``Z = (2 / lam_max) Ls - I`` (three-term recurrence)."""
    fast = capabilities(op).chebyshev
    if fast is not None:
        return fast.chebyshev(v, coeffs)
    acc: np.ndarray = coeffs[0] * v
    if len(coeffs) == 1:
        return acc
    scale = 2.0 / op.lam_max
    buf = np.empty_like(v)
    op.lap_matvec(v, buf)
    t_prev = v
    t_cur = scale * buf - v
    acc += coeffs[1] * t_cur
    for a_k in coeffs[2:]:
        op.lap_matvec(t_cur, buf)
        t_next = 2.0 * (scale * buf - t_cur) - t_prev
        acc += a_k * t_next
        t_prev, t_cur = t_cur, t_next
    return acc


def _heat_owner(op: GraphOperator) -> object:
    """What a stored heat result belongs to: the symmetric matrix as it is now."""
    versioned = capabilities(op).versioned
    return versioned.matrix_version() if versioned is not None else op.lap_sigma


class _Series(NamedTuple):
    """A function of ``Ls`` expanded as a Chebyshev series on ``[0, lam_max]``:
    what a stored result holds (``kind``, ``c``) and its coefficients cut at
    a given accuracy (``cut(tol) -> (coefficients, error bound)``)."""

    kind: str
    c: float
    cut: Callable[[float], tuple[np.ndarray, float]]


def _heat_family(op: GraphOperator, tau: float) -> _Series:
    """``exp(-tau Ls)``: ``heat_series`` at ``c = tau lam_max / 2``."""
    c = tau * op.lam_max / 2.0
    fixed = capabilities(op).arithmetic != FAST
    return _Series("heat", c, functools.partial(heat_series, c, exact=fixed))


def _blend_family(op: GraphOperator, mu: float, tau: float, share: float) -> _Series:
    """``g(Ls) / (lam_s + lam_h)``: ``blend_series`` (``share = lam_s / (lam_s + lam_h)``)."""
    c = tau * op.lam_max / 2.0
    return _Series(
        f"blend mu={mu!r} share={share!r}",
        c,
        functools.partial(blend_series, c, mu, op.lam_max, share),
    )


class _HeatPlan(NamedTuple):
    v: np.ndarray
    coeffs: np.ndarray
    err: float
    base: np.ndarray | None
    c: float
    tol: float
    kind: str


def _heat_input(
    op: GraphOperator,
    phi: np.ndarray,
    series: _Series,
    state: HeatState,
    tol: float,
    reuse: HeatReuse = "bounded",
    exact: bool = True,
) -> _HeatPlan:
    """What to expand for ``H(phi)`` (or the ``series`` given) to within ``tol *
    ||sigma phi||_2``.

    Heat is linear, so ``H(phi) = H(phi_prev) + H(phi - phi_prev)``, and the
    change shrinks as the solver converges: an increment on the stored result
    needs fewer terms for the same absolute error. The errors add up, so with
    ``reuse="bounded"`` an increment is only taken when the stored result's
    error bound leaves room in this application's budget, and then the
    increment gets what remains. A fresh application spends ``FRESH_SHARE`` of
    its budget, so that the next iterations (whose budgets are smaller: the
    inner tolerances follow the outer change) can still build on it.
    ``reuse="exact"`` is the rule focus was first committed with on chain (see
    ``FocusParams.heat_reuse``): increments only in the solver's ``exact``
    phase, on a result asked for at ``tol`` or tighter, each with the whole
    budget. ``v`` is in the symmetric frame, ``err`` the new bound, ``base``
    the stored result an increment adds to.
    """
    sigma = op.lap_sigma
    c = series.c
    sphi = sigma * phi
    scale = op_norm(op, sphi)
    budget = tol * scale
    ours = (
        state.out is not None
        and state.phi is not None
        and len(state.phi) == len(phi)
        and state.c == c
        and state.kind == series.kind
        and state.owner is _heat_owner(op)
    )
    if reuse == "exact":
        room = budget if ours and exact and state.tol <= tol else None
        fresh, bound = series.cut(tol)
    else:
        room = budget - state.err if ours and state.err < budget else None
        fresh, bound = series.cut(FRESH_SHARE * tol)
    if room is not None:
        delta = sigma * (phi - state.phi)
        size = op_norm(op, delta)
        inc, inc_bound = series.cut(min(0.5, room / size) if size > 0 else 0.5)
        if reuse == "exact" or len(inc) < len(fresh):
            return _HeatPlan(
                delta, inc, state.err + inc_bound * size, state.out, c, tol, series.kind
            )
    return _HeatPlan(sphi, fresh, bound * scale, None, c, tol, series.kind)


def _heat_finish(
    op: GraphOperator, phi: np.ndarray, state: HeatState, plan: _HeatPlan, acc: np.ndarray
) -> np.ndarray:
    out: np.ndarray = acc / op.lap_sigma
    if plan.base is not None:
        out += plan.base
    state.phi = phi.copy()
    state.out = out
    state.err = plan.err
    state.tol = plan.tol
    state.owner = _heat_owner(op)
    state.c = plan.c
    state.kind = plan.kind
    state.terms += len(plan.coeffs)
    return out


def heat(
    op: GraphOperator,
    phi: np.ndarray,
    tau: float,
    state: HeatState,
    tol: float,
    reuse: HeatReuse = "bounded",
    exact: bool = True,
) -> np.ndarray:
    """``H(phi)`` to within ``tol * ||sigma phi||_2`` (in the symmetric frame),
    applied to the change since ``state``'s result where ``reuse`` allows it
    (``_heat_input``)."""
    return _apply_series(op, phi, _heat_family(op, tau), state, tol, reuse, exact)


def blend(
    op: GraphOperator,
    phi: np.ndarray,
    mu: float,
    tau: float,
    share: float,
    state: HeatState,
    tol: float,
    reuse: HeatReuse = "bounded",
    exact: bool = True,
) -> np.ndarray:
    """``(lam_s S(phi) + lam_h H(phi)) / (lam_s + lam_h)`` as one Chebyshev
    series (``blend_series``, ``share = lam_s / (lam_s + lam_h)``), to within
    ``tol * ||sigma phi||_2`` in the symmetric frame, applied to the change
    since ``state``'s result as ``heat`` is. Preserves mass (``g(0) = 1``)."""
    series = _blend_family(op, mu, tau, share)
    return _apply_series(op, phi, series, state, tol, reuse, exact)


def _apply_series(
    op: GraphOperator,
    phi: np.ndarray,
    series: _Series,
    state: HeatState,
    tol: float,
    reuse: HeatReuse,
    exact: bool,
) -> np.ndarray:
    """A series of ``Ls`` applied to ``phi`` as ``_heat_input`` plans it (the
    identity on a graph without links, where ``lam_max`` is 0 and there is no
    series to take)."""
    if op.lam_max <= 0.0:
        return phi.copy()
    plan = _heat_input(op, phi, series, state, tol, reuse, exact)
    return _heat_finish(op, phi, state, plan, _chebyshev(op, plan.v, plan.coeffs))


def springs_and_heat(  # noqa: PLR0913 - springs' and heat's arguments side by side
    op: GraphOperator,
    phi: np.ndarray,
    mu: float,
    tau: float,
    s_state: SpringsState,
    h_state: HeatState,
    cg_tol: float,
    heat_tol: float,
    cg_max_iter: int,
    exact: bool,
    reuse: HeatReuse = "bounded",
) -> tuple[np.ndarray, np.ndarray]:
    """``(S(phi), H(phi))`` as ``springs`` and ``heat`` compute them.

    A backend with ``springs_heat`` runs the CG steps and the Chebyshev terms
    side by side, one pass over the matrix for each pair (the two solves are
    independent given ``phi``); the answers are the same as apart.
    """
    fused = capabilities(op).springs_heat
    if fused is None or op.lam_max <= 0.0:
        return (
            springs(op, phi, mu, s_state, cg_tol, cg_max_iter, exact),
            heat(op, phi, tau, h_state, heat_tol, reuse, exact),
        )
    plan = _heat_input(op, phi, _heat_family(op, tau), h_state, heat_tol, reuse, exact)
    s_out, acc = fused.springs_heat(
        phi, mu, s_state, cg_tol, cg_max_iter, exact, plan.v, plan.coeffs
    )
    return s_out, _heat_finish(op, phi, h_state, plan, acc)
