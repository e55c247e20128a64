"""Springs and heat on CPUs: the scaled symmetric matrix in SELL-8 and fused kernels.

The numba backend stores ``N = sigma A sigma`` (``A = W + W^T``, base and
overlay merged; ``sigma`` from ``laplacian_scaling``) so that
``Ls x = diag * x - N x`` is one pass over the entries with no pre-scaling of
``x``. Building it takes two parallel passes over the sorted rows of the
out-link and in-link CSRs (row lengths, degrees and the largest entry; then
the SELL groups, merged on the fly); no intermediate CSR and no entry map are kept (the matrix is
rebuilt when the snapshot changes).

The kernels fuse each product with the vector work around it:

* a Chebyshev term: the product, the three-term recurrence and the
  accumulation of ``a_k T_k`` in one pass;
* a conjugate-gradient step: the product with ``p . (Ls + mu) p`` in one pass,
  then one pass that updates ``y``, ``r``, ``z = M^-1 r`` and returns
  ``r . z`` and ``r . r``, then the new direction;
* a CG step and a Chebyshev term together (``pair_step``): springs and heat
  are independent given ``phi``, so their vectors sit side by side in an
  ``(n, 2)`` array and one pass over the entries (one gathered cache line per
  entry) serves both.

Every reduction sums a fixed number of chunk partials in order, so results do
not depend on the thread count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from focusflow.core.structure import Check
from focusflow.focus.backends.base import laplacian_scaling
from focusflow.focus.backends.sell import U64, UC, C
from focusflow.focus.backends.symmetric import merge_counts, merge_rows
from focusflow.focus.reduce import ordered_sum
from focusflow.graph.csr import balanced_chunks

if TYPE_CHECKING:
    from focusflow.focus.params import LaplacianKind
    from focusflow.graph.snapshot import Snapshot

_PARTS = 64


@nb.njit(cache=True, parallel=True)
def _sell_fill(  # noqa: PLR0913 - a numba kernel takes flat arrays and scalars
    gbounds: np.ndarray,
    grows: np.ndarray,
    gptr: np.ndarray,
    a_ptr: np.ndarray,
    a_idx: np.ndarray,
    a_w: np.ndarray,
    b_ptr: np.ndarray,
    b_idx: np.ndarray,
    b_w: np.ndarray,
    sigma: np.ndarray,
    scale: float,
    sidx: np.ndarray,
    sval: np.ndarray,
) -> None:
    """SELL groups of ``scale * sigma_r (A + B)_rq sigma_q``, merging the sorted rows
    of ``A`` and ``B`` on the fly (every slot written, padding 0)."""
    for t in nb.prange(gbounds.shape[0] - 1):
        for g in range(gbounds[t], gbounds[t + 1]):
            base = gptr[g]
            width = (gptr[g + 1] - base) // C
            for lane in range(C):
                r = grows[g * C + lane]
                k = 0
                if r >= 0:
                    sr = sigma[r] * scale
                    i, ie = a_ptr[r], a_ptr[r + 1]
                    j, je = b_ptr[r], b_ptr[r + 1]
                    while i < ie or j < je:
                        if j >= je or (i < ie and a_idx[i] < b_idx[j]):
                            q = a_idx[i]
                            v = a_w[i]
                            i += 1
                        elif i >= ie or b_idx[j] < a_idx[i]:
                            q = b_idx[j]
                            v = b_w[j]
                            j += 1
                        else:
                            q = a_idx[i]
                            v = a_w[i] + b_w[j]
                            i += 1
                            j += 1
                        o = base + k * C + lane
                        x = sr * v * sigma[q]
                        sidx[o] = q
                        sval[o] = x
                        k += 1
                for j in range(k, width):
                    o = base + j * C + lane
                    sidx[o] = 0
                    sval[o] = 0.0


class ScaledSymmetric:
    """``Ls = diag(diag) - N`` with ``N = sigma A sigma`` in SELL-8 storage."""

    def __init__(self, snap: Snapshot, kind: LaplacianKind, dtype: type[np.floating]) -> None:
        n = snap.n
        a = (snap.out_indptr, snap.out_indices, snap.out_w)
        b = (snap.in_indptr, snap.in_indices, snap.in_w)
        if snap.overlay_nnz:
            ov = merge_rows(
                n,
                snap.ov_out_indptr,
                snap.ov_out_indices,
                snap.ov_out_w,
                snap.ov_in_indptr,
                snap.ov_in_indices,
                snap.ov_in_w,
            )
            a = merge_rows(n, *a, *b)[:3]
            b = ov[:3]
        _, length, rowsum, top = merge_counts(n, *a, *b)
        self.nnz = int(length.sum())
        # The normalized operator does not depend on the weights' scale: divide
        # by the largest entry so that d^-1/2 stays far from overflow.
        scale = 1.0
        if kind == "normalized" and top > 0:
            scale = 1.0 / top
            rowsum = rowsum * scale
        self.sigma, self.diag, self.lam_max = laplacian_scaling(rowsum, kind)
        order = np.argsort(-length, kind="stable")
        groups = (n + C - 1) // C
        self.grows = np.full(groups * C, -1, dtype=np.int64)
        self.grows[:n] = order
        self.glen = length[self.grows[::C]] if groups else np.zeros(0, dtype=np.int64)
        self.gptr = np.zeros(groups + 1, dtype=np.int64)
        np.cumsum(self.glen * C, out=self.gptr[1:])
        self.bounds = balanced_chunks(self.gptr, _PARTS)
        size = int(self.gptr[-1])
        self.sidx = np.empty(size, dtype=np.int32)
        self.sval = np.empty(size, dtype=dtype)
        _sell_fill(
            self.bounds,
            self.grows,
            self.gptr,
            *a,
            *b,
            self.sigma,
            scale,
            self.sidx,
            self.sval,
        )

    def __deepcopy__(self, memo: dict[int, object]) -> ScaledSymmetric:
        """This matrix itself: nothing writes it once built (a patch makes the
        operator build a new one), so a copy of the focus state shares it,
        and its arrays wherever else the copy meets them (the operator's
        kernel arguments)."""
        memo[id(self)] = self
        for value in vars(self).values():
            memo[id(value)] = value
        return self

    @staticmethod
    def check_structure(
        sym: object, check: Check, n: int | None = None, dtype: type | None = None
    ) -> None:
        """The layout the Laplacian kernels read without bounds checks: every
        row of ``n`` (``len(sigma)`` when not given) in one lane, the rest
        -1, each group's slots ``glen * C`` from ``gptr``, the chunk bounds
        ``balanced_chunks`` makes of them, slot indices in ``[0, n)``, and
        finite scaling, diagonal and values (of ``dtype`` when given)."""
        fields = (
            "nnz",
            "sigma",
            "diag",
            "lam_max",
            "grows",
            "glen",
            "gptr",
            "bounds",
            "sidx",
            "sval",
        )
        a = check.fields(sym, ScaledSymmetric, fields)
        sigma = a["sigma"]
        if n is None:
            n = len(sigma) if type(sigma) is np.ndarray else 0
        check.array("sigma", sigma, np.float64, n, finite=True)
        check.array("diag", a["diag"], np.float64, n, finite=True)
        check.number("lam_max", a["lam_max"], nonneg=True)
        check.integer("nnz", a["nnz"], 0)
        groups = (n + C - 1) // C
        grows = check.array("grows", a["grows"], np.int64, groups * C, lo=-1, hi=n)
        check.permutation("grows", grows[:n], n)
        pad = np.flatnonzero(grows[n:] != -1)
        if len(pad):
            check.fail(f"grows[{n + int(pad[0])}]", "pads the last group with a row")
        glen = check.array("glen", a["glen"], np.int64, groups, lo=0)
        gptr = check.array("gptr", a["gptr"], np.int64, groups + 1)
        if gptr[0] != 0:
            check.fail("gptr[0]", f"= {gptr[0]}, not 0")
        check.equal("gptr", np.diff(gptr), glen * C, "each group's slots: glen * C")
        bounds = check.array("bounds", a["bounds"], np.int64)
        check.equal("bounds", bounds, balanced_chunks(gptr, _PARTS), "the groups' chunks")
        total = int(gptr[-1])
        check.array("sidx", a["sidx"], np.int32, total, lo=0, hi=n)
        check.array("sval", a["sval"], dtype or (np.float64, np.float32), total, finite=True)


@nb.njit(cache=True, parallel=True, fastmath=True)
def lap_apply(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag: np.ndarray,
    x: np.ndarray,
    out: np.ndarray,
) -> None:
    """``out = diag * x - N x``."""
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc[lane] = 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    acc[lane] += sval[o + lane] * x[U64(np.uint32(sidx[o + lane]))]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    out[r] = diag[r] * x[r] - acc[lane]


@nb.njit(cache=True, parallel=True, fastmath=True)
def cheb_step(  # noqa: PLR0913 - a numba kernel takes flat arrays and scalars
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag: np.ndarray,
    scale: float,
    t_cur: np.ndarray,
    t_prev: np.ndarray,
    acc_out: np.ndarray,
    a_k: float,
    a_0: float,
    first: bool,
) -> None:
    """One Chebyshev term with ``Z = scale * Ls - I``.

    ``first``: ``t_prev <- Z t_cur`` and ``acc_out = a_0 t_cur + a_k Z t_cur``. Otherwise
    ``t_prev <- 2 Z t_cur - t_prev`` and ``acc_out += a_k t_prev``.
    """
    for c in nb.prange(bounds.shape[0] - 1):
        acc = np.zeros(C)
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc[lane] = 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    acc[lane] += sval[o + lane] * t_cur[U64(np.uint32(sidx[o + lane]))]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    tc = t_cur[r]
                    u = scale * (diag[r] * tc - acc[lane]) - tc
                    if first:
                        t_prev[r] = u
                        acc_out[r] = a_0 * tc + a_k * u
                    else:
                        v = 2.0 * u - t_prev[r]
                        t_prev[r] = v
                        acc_out[r] += a_k * v


@nb.njit(cache=True, parallel=True, fastmath=True)
def cg_product(
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    diag_mu: np.ndarray,
    p: np.ndarray,
    ap: np.ndarray,
) -> float:
    """``ap = (diag + mu) p - N p``; returns ``p . ap``."""
    nchunks = bounds.shape[0] - 1
    partial = np.zeros(nchunks)
    for c in nb.prange(nchunks):
        acc = np.zeros(C)
        total = 0.0
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc[lane] = 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    acc[lane] += sval[o + lane] * p[U64(np.uint32(sidx[o + lane]))]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    v = diag_mu[r] * p[r] - acc[lane]
                    ap[r] = v
                    total += p[r] * v
        partial[c] = total
    return ordered_sum(partial)


@nb.njit(cache=True, parallel=True)
def cg_update(
    y: np.ndarray,
    r: np.ndarray,
    p: np.ndarray,
    ap: np.ndarray,
    minv: np.ndarray,
    step: float,
    z: np.ndarray,
) -> tuple[float, float]:
    """``y += step p; r -= step ap; z = minv r``; returns ``(r . z, r . r)``."""
    n = y.shape[0]
    size = (n + _PARTS - 1) // _PARTS
    rz = np.zeros(_PARTS)
    rr = np.zeros(_PARTS)
    for t in nb.prange(_PARTS):
        a = 0.0
        b = 0.0
        for i in range(t * size, min(n, (t + 1) * size)):
            y[i] += step * p[i]
            ri = r[i] - step * ap[i]
            r[i] = ri
            zi = minv[i] * ri
            z[i] = zi
            a += ri * zi
            b += ri * ri
        rz[t] = a
        rr[t] = b
    return ordered_sum(rz), ordered_sum(rr)


@nb.njit(cache=True, parallel=True)
def cg_start(r: np.ndarray, minv: np.ndarray, z: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """``z = p = minv r``; returns ``(r . z, r . r)``."""
    n = r.shape[0]
    size = (n + _PARTS - 1) // _PARTS
    rz = np.zeros(_PARTS)
    rr = np.zeros(_PARTS)
    for t in nb.prange(_PARTS):
        a = 0.0
        b = 0.0
        for i in range(t * size, min(n, (t + 1) * size)):
            ri = r[i]
            zi = minv[i] * ri
            z[i] = zi
            p[i] = zi
            a += ri * zi
            b += ri * ri
        rz[t] = a
        rr[t] = b
    return ordered_sum(rz), ordered_sum(rr)


@nb.njit(cache=True, parallel=True, fastmath=False)
def cg_direction(p: np.ndarray, z: np.ndarray, beta: float) -> None:
    """``p = z + beta p``."""
    n = p.shape[0]
    size = (n + _PARTS - 1) // _PARTS
    for t in nb.prange(_PARTS):
        for i in range(t * size, min(n, (t + 1) * size)):
            p[i] = z[i] + beta * p[i]


@nb.njit(cache=True, parallel=True)
def springs_rhs(
    phi: np.ndarray, sigma: np.ndarray, mu: float, rhs: np.ndarray, r: np.ndarray, fresh: bool
) -> float:
    """``rhs_new = mu sigma phi``; ``r += rhs_new - rhs`` unless ``fresh``; ``rhs = rhs_new``.

    Returns ``||rhs_new||_2^2``.
    """
    n = phi.shape[0]
    size = (n + _PARTS - 1) // _PARTS
    sq = np.zeros(_PARTS)
    for t in nb.prange(_PARTS):
        s = 0.0
        for i in range(t * size, min(n, (t + 1) * size)):
            v = mu * sigma[i] * phi[i]
            if not fresh:
                r[i] += v - rhs[i]
            rhs[i] = v
            s += v * v
        sq[t] = s
    return ordered_sum(sq)


@nb.njit(cache=True, parallel=True, fastmath=False)
def residual_of(rhs: np.ndarray, ap: np.ndarray, r: np.ndarray) -> None:
    """``r = rhs - ap``."""
    for i in nb.prange(r.shape[0]):
        r[i] = rhs[i] - ap[i]


@nb.njit(cache=True, parallel=True, fastmath=True)
def pair_step(  # noqa: PLR0913 - a numba kernel takes flat arrays and scalars
    grows: np.ndarray,
    gptr: np.ndarray,
    glen: np.ndarray,
    sidx: np.ndarray,
    sval: np.ndarray,
    bounds: np.ndarray,
    x2: np.ndarray,
    diag_mu: np.ndarray,
    ap: np.ndarray,
    do_cg: bool,
    diag: np.ndarray,
    scale: float,
    t_prev: np.ndarray,
    t_next: np.ndarray,
    acc_out: np.ndarray,
    a_k: float,
    a_0: float,
    first: bool,
    do_heat: bool,
) -> float:
    """A CG product and a Chebyshev term in one pass over the entries.

    ``x2[:, 0]`` is the CG direction ``p``, ``x2[:, 1]`` the Chebyshev vector
    ``T_k``; both are gathered from the same cache line. With ``do_cg``:
    ``ap = (diag + mu) p - N p`` and the result is ``p . ap``. With
    ``do_heat``: ``t_next = T_{k+1}`` (``Z T_k`` when ``first``), ``t_prev <-
    T_k`` and ``acc_out`` gains ``a_k t_next`` (is set to ``a_0 T_0 + a_k T_1``
    when ``first``).
    """
    nchunks = bounds.shape[0] - 1
    partial = np.zeros(nchunks)
    for c in nb.prange(nchunks):
        acc0 = np.zeros(C)
        acc1 = np.zeros(C)
        total = 0.0
        for g in range(bounds[c], bounds[c + 1]):
            for lane in range(C):
                acc0[lane] = 0.0
                acc1[lane] = 0.0
            base = U64(gptr[g])
            for j in range(U64(glen[g])):
                o = base + j * UC
                for lane in range(UC):
                    q = U64(np.uint32(sidx[o + lane]))
                    v = sval[o + lane]
                    acc0[lane] += v * x2[q, U64(0)]
                    acc1[lane] += v * x2[q, U64(1)]
            for lane in range(C):
                r = grows[g * C + lane]
                if r >= 0:
                    if do_cg:
                        pr = x2[r, 0]
                        w = diag_mu[r] * pr - acc0[lane]
                        ap[r] = w
                        total += pr * w
                    if do_heat:
                        tc = x2[r, 1]
                        u = scale * (diag[r] * tc - acc1[lane]) - tc
                        if first:
                            t_next[r] = u
                            acc_out[r] = a_0 * tc + a_k * u
                        else:
                            v = 2.0 * u - t_prev[r]
                            t_next[r] = v
                            acc_out[r] += a_k * v
                        t_prev[r] = tc
        partial[c] = total
    return ordered_sum(partial)


@nb.njit(cache=True, parallel=True, fastmath=False)
def pair_pack(
    x2: np.ndarray,
    p: np.ndarray,
    z: np.ndarray,
    beta: float,
    do_cg: bool,
    t_next: np.ndarray,
    do_heat: bool,
) -> None:
    """``p = z + beta p`` into ``p`` and ``x2[:, 0]``; ``x2[:, 1] = t_next``."""
    n = p.shape[0]
    size = (n + _PARTS - 1) // _PARTS
    for t in nb.prange(_PARTS):
        for i in range(t * size, min(n, (t + 1) * size)):
            if do_cg:
                v = z[i] + beta * p[i]
                p[i] = v
                x2[i, 0] = v
            if do_heat:
                x2[i, 1] = t_next[i]


@nb.njit(cache=True, parallel=True, fastmath=False)
def pair_start(x2: np.ndarray, p: np.ndarray, v: np.ndarray) -> None:
    """``x2[:, 0] = p``, ``x2[:, 1] = v``."""
    for i in nb.prange(p.shape[0]):
        x2[i, 0] = p[i]
        x2[i, 1] = v[i]
