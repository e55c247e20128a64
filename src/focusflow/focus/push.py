"""Residual push for incremental PageRank-style diffusion (forward push).

Diffusion with uniform teleport and uniform dangling redistribution has the
same normalised solution as the linear system ``x = alpha P^T x + (1 - alpha) 1``
in which dangling rows of ``P`` are simply zero (Langville and Meyer, "Deeper
inside PageRank", 2004): solve for ``x`` and divide by its sum. That system is
what we keep between blocks, with its residual ``r = b + alpha P^T x - x``.

A block's edge deltas change only the rows of their sources, so the residual
changes only along those rows: subtract each changed source's old row, add its
new one. Forward push (Andersen, Chung and Lang, FOCS 2006; Gauss-Southwell
order with a falling threshold) then moves residual into ``x`` node by node,
touching only where the perturbation is large, until ``||r||_1`` meets the same
stop rule as the cold solver (``engine.FocusEngine._target``); the error is then
bounded by ``||x - x*||_1 <= ||r||_1 / (1 - alpha)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numba as nb
import numpy as np

from focusflow.core.structure import Check


@nb.njit(cache=True)
def _spread(
    lo: int,
    hi: int,
    idx: np.ndarray,
    w: np.ndarray,
    c: float,
    r: np.ndarray,
    touched: np.ndarray,
    in_touched: np.ndarray,
    nt: int,
) -> tuple[int, float]:
    """``r[idx[e]] += c * w[e]`` over one row; returns ``(nt, change of sum |r|)``."""
    change = 0.0
    for e in range(lo, hi):
        q = idx[e]
        before = r[q]
        r[q] = before + c * w[e]
        change += abs(r[q]) - abs(before)
        if not in_touched[q]:
            in_touched[q] = True
            touched[nt] = q
            nt += 1
    return nt, change


@nb.njit(cache=True)
def delta_residual(  # noqa: PLR0913 - a numba kernel takes flat arrays and scalars
    sources: np.ndarray,
    old_ptr: np.ndarray,
    old_idx: np.ndarray,
    old_w: np.ndarray,
    old_out: np.ndarray,
    out_ptr: np.ndarray,
    out_idx: np.ndarray,
    out_w: np.ndarray,
    ov_ptr: np.ndarray,
    ov_idx: np.ndarray,
    ov_w: np.ndarray,
    new_out: np.ndarray,
    xhat: np.ndarray,
    r: np.ndarray,
    alpha: float,
    touched: np.ndarray,
    in_touched: np.ndarray,
) -> tuple[int, float]:
    """Move ``r`` from the old rows of ``sources`` to their new rows.

    Returns ``(#touched, change of sum |r|)``; ``touched``/``in_touched``
    collect every node whose residual changed.
    """
    nt = 0
    change = 0.0
    for k in range(sources.shape[0]):
        p = sources[k]
        if old_out[k] > 0.0:
            c = -alpha * xhat[p] / old_out[k]
            nt, d = _spread(
                old_ptr[k], old_ptr[k + 1], old_idx, old_w, c, r, touched, in_touched, nt
            )
            change += d
        if new_out[p] > 0.0:
            c = alpha * xhat[p] / new_out[p]
            nt, d = _spread(
                out_ptr[p], out_ptr[p + 1], out_idx, out_w, c, r, touched, in_touched, nt
            )
            change += d
            nt, d = _spread(ov_ptr[p], ov_ptr[p + 1], ov_idx, ov_w, c, r, touched, in_touched, nt)
            change += d
    return nt, change


@nb.njit(cache=True)
def push(  # noqa: C901, PLR0912, PLR0913, PLR0915 - a numba kernel: flat arrays in, one work-queue loop
    out_ptr: np.ndarray,
    out_idx: np.ndarray,
    out_w: np.ndarray,
    ov_ptr: np.ndarray,
    ov_idx: np.ndarray,
    ov_w: np.ndarray,
    inv_out: np.ndarray,
    alpha: float,
    xhat: np.ndarray,
    r: np.ndarray,
    rsum: float,
    target: float,
    cand: np.ndarray,
    ncand: int,
    in_cand: np.ndarray,
    max_work: int,
) -> tuple[float, int, int, int]:
    """Forward push from the candidate nodes until ``sum |r| <= target``.

    ``rsum`` is the current ``sum |r|`` (kept incrementally by the caller).
    Nodes are pushed when ``|r_p| > theta (deg_p + 1)``; ``theta`` falls by 4x
    whenever no candidate is above it. Returns ``(rsum, ncand, work, pushes)``;
    the caller falls back to full sweeps if ``rsum`` is still above target
    (the remaining residual sits outside the candidates, or work ran out).
    """
    n = r.shape[0]
    queue = np.empty(n, dtype=np.int64)
    in_queue = np.zeros(n, dtype=np.bool_)
    theta = 0.0
    for k in range(ncand):
        p = cand[k]
        d = (out_ptr[p + 1] - out_ptr[p]) + (ov_ptr[p + 1] - ov_ptr[p]) + 1
        v = abs(r[p]) / d
        if v > theta:
            theta = v
    theta *= 0.5
    work = 0
    pushes = 0
    floor = target * 1e-9 / max(n, 1)
    while rsum > target and theta > floor and work < max_work:
        head = 0
        tail = 0
        for k in range(ncand):
            p = cand[k]
            d = (out_ptr[p + 1] - out_ptr[p]) + (ov_ptr[p + 1] - ov_ptr[p]) + 1
            if abs(r[p]) > theta * d and not in_queue[p]:
                in_queue[p] = True
                queue[tail % n] = p
                tail += 1
        if tail == 0:
            theta *= 0.25
            continue
        while head < tail and rsum > target and work < max_work:
            p = queue[head % n]
            head += 1
            in_queue[p] = False
            rp = r[p]
            deg = (out_ptr[p + 1] - out_ptr[p]) + (ov_ptr[p + 1] - ov_ptr[p])
            if abs(rp) <= theta * (deg + 1):
                continue
            xhat[p] += rp
            r[p] = 0.0
            rsum -= abs(rp)
            pushes += 1
            work += deg + 1
            if inv_out[p] > 0.0:
                c = alpha * rp * inv_out[p]
                for part in range(2):
                    if part == 0:
                        a, b = out_ptr[p], out_ptr[p + 1]
                    else:
                        a, b = ov_ptr[p], ov_ptr[p + 1]
                    for e in range(a, b):
                        if part == 0:
                            q = out_idx[e]
                            wq = out_w[e]
                        else:
                            q = ov_idx[e]
                            wq = ov_w[e]
                        before = r[q]
                        after = before + c * wq
                        r[q] = after
                        rsum += abs(after) - abs(before)
                        if not in_cand[q]:
                            in_cand[q] = True
                            cand[ncand] = q
                            ncand += 1
                        if not in_queue[q]:
                            dq = (out_ptr[q + 1] - out_ptr[q]) + (ov_ptr[q + 1] - ov_ptr[q]) + 1
                            if abs(after) > theta * dq:
                                in_queue[q] = True
                                queue[tail % n] = q
                                tail += 1
    return rsum, ncand, work, pushes


def check_push_state(check: Check, state: Mapping[str, object], n: int) -> None:
    """The linear system's state an engine keeps between blocks for push
    (``state`` holds its ``_xhat``, ``_r``, ``_rsum``, ``_cand``, ``_ncand``,
    ``_in_cand``; the last three appear with the first push): float64
    vectors of ``n``, and a candidate list of ``n`` slots whose first
    ``_ncand`` are distinct particles, exactly those ``_in_cand`` marks.

    ``push`` appends a particle to ``cand`` only when ``in_cand`` does not
    mark it, so that the list never holds more than ``n``: a particle listed
    but not marked would be appended again, past the list's end.
    """
    check.array("_xhat", state["_xhat"], np.float64, n, finite=True)
    check.array("_r", state["_r"], np.float64, n, finite=True)
    check.number("_rsum", state["_rsum"])
    names = ("_cand", "_ncand", "_in_cand")
    present = [name in state for name in names]
    if not any(present):
        return
    if not all(present):
        check.fail(names[present.index(False)], "is missing beside the other candidates")
    cand = check.array("_cand", state["_cand"], np.int64, n)
    ncand = check.integer("_ncand", state["_ncand"], 0, n)
    in_cand = check.array("_in_cand", state["_in_cand"], np.bool_, n)
    listed = cand[:ncand]
    check.contents("_cand", listed, lo=0, hi=n)
    marked = np.bincount(listed, minlength=n)
    wrong = np.flatnonzero(marked != in_cand)
    if len(wrong):
        p = int(wrong[0])
        check.fail(f"_in_cand[{p}]", f"= {bool(in_cand[p])}, but _cand lists it {marked[p]} times")
