"""Tri mode on the wgpu device: springs by CG and heat by Chebyshev, in WGSL.

``A = W + W^T`` (``symmetric.py``, built on the host once per snapshot
version) is a second SELL-32 matrix in device buffers next to ``(sigma,
diag)`` of the Laplacian; springs is Jacobi-preconditioned CG and heat the
Chebyshev recurrence, both on float32 device vectors with their dot products
in the double-float reductions of the vector module. CG's scalars (``r.z``,
the step, ``beta``, the stop test against ``tol * ||rhs||`` and
``cg_max_iter``) are computed on the device, so a batch of CG iterations is
encoded at once and iterations past convergence change nothing (their
products are indirect dispatches whose workgroup counts the stop test
zeroes); the host reads back 64 bytes per batch (the flag and the count) and
sizes the next batch from the last count. Heat's coefficients come from the
host (``spectral.heat_coefficients``, written into the scalar buffer), after
the device has reduced the two norms that the incremental error budget needs.

The outer iteration follows the host solver's rules, one object for both
(:class:`~focusflow.focus.policy.TriPolicy`: loose inner solves proportional
to the last change, the switch to exact ones, the stop rule), and mixes with
the host's Anderson coefficients (:class:`~focusflow.focus.anderson.AndersonWindow`)
through the same kernels as diffusion. Per outer iteration that is two or
three waits for a few scalars; an exact step under ``finish="bounded"`` waits
once more, for ``||sigma x||`` (the spread its inner tolerances scale by).
CG's warm start stays on the device between solves on the same
:class:`~focusflow.focus.spectral.SpringsState` (an engine's blocks). After a
patch the device matrix gets new values where the sparsity of ``A`` is
unchanged, and is rebuilt where it is not. The host-side ``lap_matvec``
remains for the protocol (one upload and one read-back).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from focusflow.focus.anderson import AndersonWindow
from focusflow.focus.backends.base import DeviceSolve, Progress, inverse_out_weight
from focusflow.focus.backends.symmetric import symmetric_matrix
from focusflow.focus.backends.webgpu_diffusion import WgpuDiffusion, mix_coefficients, stats_bytes
from focusflow.focus.backends.webgpu_storage import (
    BindGroup,
    CommandBuffer,
    DeviceSell,
    as_float64,
    nparts,
)
from focusflow.focus.backends.wgsl import (
    MAX_ANDERSON,
    TRI_KERNELS,
    TriBinding,
    TriParam,
    TriScalar,
    shader,
)
from focusflow.focus.params import DIFFUSION_ANDERSON
from focusflow.focus.policy import TriPolicy
from focusflow.focus.spectral import heat_coefficients
from focusflow.graph.snapshot import PatchInfo, Snapshot

if TYPE_CHECKING:
    from focusflow.focus.params import FocusParams, LaplacianKind
    from focusflow.focus.spectral import HeatState, SpringsState

T = TriBinding
#: Scalars of the tri module read back after each CG batch (those before the coefficients).
TRI_SCALARS = int(TriScalar.COEF0)
#: The n-vectors of the tri module (``lap`` holds two floats a particle).
_VECTORS = (T.YCG, T.R, T.P, T.AP, T.T, T.ACC, T.HOUT, T.HPHI, T.HA, T.HB, T.HC, T.HACC)
_WIDE = "wide"


class WgpuTri(WgpuDiffusion):
    """The symmetric matrix, the tri module's buffers and the encoding of its passes."""

    #: CG iterations recorded in the first batch of a tri solve (later batches:
    #: the last solve's count + 2; iterations past the stop are empty).
    cg_first_batch = 4

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self._sym: DeviceSell | None = None
        #: The host CSR of ``_sym`` (``ptr``, ``idx``, ``w``): what a patch compares.
        self._sym_csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._sym_kind: LaplacianKind | None = None
        self._sym_stale = True
        #: ``||1 / sigma||_2`` of the current Laplacian (see inverse_sigma_norm).
        self._inv_sigma_norm: float | None = None
        self._tri_n = -1
        self._springs_of: object = None
        self._tgroups: dict[tuple[str, int, int], BindGroup] = {}
        #: Symmetric matrices built, and patches that wrote new values into one.
        self.sym_builds = 0
        self.sym_patches = 0
        #: The last tri solve's CG batches (one wait each), CG iterations, heat
        #: terms, and waits for the spread of a bounded exact step.
        self.tri_counts = {"cg_batches": 0, "cg_iterations": 0, "heat_terms": 0, "spread_waits": 0}

    def refresh(self, info: PatchInfo | None = None) -> None:
        super().refresh(info)
        self._tgroups = {}
        self._sym_stale = True

    def setup_laplacian(self, kind: LaplacianKind) -> None:
        """``A = W + W^T`` in SELL-32 on the device and ``(sigma, diag)`` per particle.

        Built on the host (``symmetric_matrix``) once per snapshot version; after
        a patch that keeps the sparsity of ``A`` (rewritten weights) only the
        values are written into the device matrix, otherwise it is rebuilt.
        """
        if self._sym is not None and self._sym_kind == kind and not self._sym_stale:
            return
        ptr, idx, w, sigma, diag, lam_max = symmetric_matrix(self.snapshot, kind)
        old, csr = self._sym, self._sym_csr
        if (
            old is not None
            and csr is not None
            and self._sym_kind == kind
            and np.array_equal(csr[0], ptr)
            and np.array_equal(csr[1], idx)
        ):
            old.update(self, np.flatnonzero(w != csr[2]), w)
            self.sym_patches += 1
        else:
            sym = DeviceSell(self, ptr, idx, w)
            sym.set_scale(self, 1.0)
            self._sym = sym
            self._tgroups = {}
            self.sym_builds += 1
        self._sym_csr = (ptr, idx, w)
        self._sym_kind = kind
        self._sym_stale = False
        self.lap_sigma, self.lap_diag, self.lam_max = sigma, diag, lam_max
        self._inv_sigma_norm = None
        lap = np.empty((max(self.n, 1), 2), dtype=np.float32)
        lap[: self.n, 0] = sigma
        lap[: self.n, 1] = diag
        if self._tri_n != self.n:
            self._tri_buffers()
        self.device.queue.write_buffer(self._tb[T.LAP], 0, lap)
        dims = np.zeros(18, dtype=np.uint32)
        for j, (_, size, _count) in enumerate(self._symmetric().steps()):
            dims[3 * j : 3 * j + 3] = size
        self.device.queue.write_buffer(self._tb[T.DIMS], 0, dims)

    def inverse_sigma_norm(self) -> float:
        """``||1 / sigma||_2`` (0 for a particle without links), once per
        Laplacian: the host pass over n values cost more than a bounded exact
        step's device work when every solve repeated it."""
        if self._inv_sigma_norm is None:
            inv = inverse_out_weight(self.lap_sigma)[0]
            self._inv_sigma_norm = float(np.sqrt(float(inv @ inv)))
        return self._inv_sigma_norm

    def _symmetric(self) -> DeviceSell:
        if self._sym is None:
            raise RuntimeError("setup_laplacian has not run")
        return self._sym

    def lap_matvec(self, x: np.ndarray, out: np.ndarray) -> None:
        acc = self.product(self._symmetric(), self.lap_sigma * x)
        out[:] = self.lap_diag * x - self.lap_sigma * acc

    # --- buffers and passes ------------------------------------------------------
    def _tri_buffers(self) -> None:
        """The tri module's pipelines (once) and its n-vectors (per size)."""
        if "cg_init_a" not in self._pipelines:
            self._pipelines.update(self._compile(shader("tri"), TRI_KERNELS))
        n4 = 4 * max(self.n, 1)
        self._tb: dict[TriBinding, Any] = {b: self._empty(n4) for b in _VECTORS}
        self._tb[T.LAP] = self._empty(2 * n4)
        self._tb[T.TS] = self._empty(4 * (TRI_SCALARS + 128))
        self._tb[T.TP] = self._uniform(64)
        self._tb[T.DIMS] = self.device.create_buffer(
            size=4 * 18,
            usage=self.wgpu.BufferUsage.STORAGE
            | self.wgpu.BufferUsage.INDIRECT
            | self.wgpu.BufferUsage.COPY_SRC
            | self.wgpu.BufferUsage.COPY_DST,
        )
        self._tri_n = self.n
        self._tri_stage = self._staging(4 * TRI_SCALARS)
        self._tp = np.zeros(16, dtype=np.uint32)
        self._tgroups = {}
        self._springs_of = None

    def _tri_coefficients(self, coeffs: np.ndarray) -> None:
        """Write the Chebyshev coefficients after the scalars (growing the buffer)."""
        need = 4 * (TRI_SCALARS + len(coeffs))
        if self._tb[T.TS].size < need:
            self._tb[T.TS] = self._empty(need + 4 * 128)
            self._tgroups = {}
        self.device.queue.write_buffer(self._tb[T.TS], 4 * TRI_SCALARS, coeffs.astype(np.float32))

    def _tdispatch(self, cpass: Any, name: str, parity: int, size: Any, rot: int = 0) -> None:
        """A tri kernel with ``x = _vec[parity]``, ``y`` the other one and the
        Chebyshev buffers rotated ``rot`` places (T_{k-1}, T_k, T_{k+1})."""
        if size == _WIDE:
            size = (nparts(self.n), 1, 1)
        key = (name, parity, rot)
        group = self._tgroups.get(key)
        if group is None:
            b = self._tb
            heat = (b[T.HA], b[T.HB], b[T.HC])
            buffers = {
                **b,
                T.X: self._vec[parity],
                T.Y: self._vec[1 - parity],
                T.PART: self._part,
                T.HA: heat[rot % 3],
                T.HB: heat[(rot + 1) % 3],
                T.HC: heat[(rot + 2) % 3],
            }
            group = self._bind_group(name, buffers)
            self._tgroups[key] = group
        cpass.set_pipeline(self._pipelines[name])
        cpass.set_bind_group(0, group)
        cpass.dispatch_workgroups(*size)

    def _sym_product(self, cpass: Any, indirect: bool = False) -> None:
        """``acc = A t`` (the symmetric matrix, scale 1); ``indirect``: only
        while CG runs (the counts of ``dims[9..18]``)."""
        b = self._tb
        where = (b[T.DIMS], 36) if indirect else None
        self._symmetric().encode(self, cpass, b[T.T], b[T.ACC], where)

    def _encode_cg(self, cpass: Any, parity: int, count: int) -> None:
        for _ in range(count):
            self._sym_product(cpass, indirect=True)
            self._tdispatch(cpass, "cg_ap", parity, _WIDE)
            self._tdispatch(cpass, "cg_step", parity, (1, 1, 1))
            self._tdispatch(cpass, "cg_update", parity, _WIDE)
            self._tdispatch(cpass, "cg_final", parity, (1, 1, 1))
            self._tdispatch(cpass, "cg_dir", parity, _WIDE)

    def _encode_heat(self, cpass: Any, parity: int, terms: int) -> None:
        self._tdispatch(cpass, "heat_init", parity, _WIDE)
        if terms > 1:
            self._sym_product(cpass)
            self._tdispatch(cpass, "heat_first", parity, _WIDE)
        for k in range(2, terms):
            self._sym_product(cpass)
            self._tdispatch(cpass, "heat_term", parity, _WIDE, rot=(k - 2) % 3)
            self._tdispatch(cpass, "heat_tick", parity, (1, 1, 1))

    def _submit_scalars(self, encoder: Any) -> None:
        """Copy the tri scalars to staging at the end of ``encoder`` and submit it."""
        encoder.copy_buffer_to_buffer(self._tb[T.TS], 0, self._tri_stage, 0, 4 * TRI_SCALARS)
        self.device.queue.submit([encoder.finish()])

    def _wait_scalars(self) -> np.ndarray:
        """Wait for the scalars of the last :meth:`_submit_scalars`."""
        t = time.perf_counter()
        out = self._map(self._tri_stage, 4 * TRI_SCALARS, as_float64)
        self.timings["device_wait"] += time.perf_counter() - t
        return out

    def _encode_tri_head(self, m: int, head: bool, springs: bool, batch: int, norms: bool) -> Any:
        """(A) of an outer step: the head (``head``: start fill, gather or
        Anderson mix, and the diffusion step into ``y``), the CG start and
        ``batch`` iterations (``springs``), and the norms of the incremental
        heat's budget and of the spread (``norms``). Returns the open encoder."""
        cur = self._cur
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        if head:
            self._encode_step_head(cpass, m)
            self._dispatch(cpass, "finish", cur, (nparts(self.n), 1, 1))
        if springs:
            self._tdispatch(cpass, "cg_init_a", cur, _WIDE)
            self._sym_product(cpass)
            self._tdispatch(cpass, "cg_init_b", cur, _WIDE)
            self._tdispatch(cpass, "cg_init_final", cur, (1, 1, 1))
            self._encode_cg(cpass, cur, batch)
        if norms:
            self._tdispatch(cpass, "heat_norms", cur, _WIDE)
            self._tdispatch(cpass, "heat_norms_final", cur, (1, 1, 1))
        cpass.end()
        return encoder

    def _encode_tri_blend(self, m: int, coeffs: np.ndarray | None) -> tuple[Any, int]:
        """(B) of an outer step: heat with ``coeffs`` (None: no heat), the blend,
        its sum, the normalised iterate and its L1 change (with the Anderson
        bookkeeping when ``m``), and the copy of the scalars to staging.
        Returns the command buffer and the bytes of scalars it leaves."""
        cur = self._cur
        wide = (nparts(self.n), 1, 1)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        if coeffs is not None:
            self._encode_heat(cpass, cur, len(coeffs))
        self._tdispatch(cpass, "tri_blend", cur, wide)
        self._dispatch(cpass, "sum_partial", cur, wide)
        self._dispatch(cpass, "blend_final", cur, (1, 1, 1))
        if m:
            self._dispatch(cpass, "finish_aa", cur, wide)
            self._dispatch(cpass, "aa_final", cur, (1, 1, 1))
            nbytes = stats_bytes(m)
        else:
            self._dispatch(cpass, "finish", cur, wide)
            self._dispatch(cpass, "l1_final", cur, (1, 1, 1))
            nbytes = 16
        cpass.end()
        encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, nbytes)
        return encoder.finish(), nbytes

    def solve_tri(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        params: FocusParams,
        springs_state: SpringsState,
        heat_state: HeatState,
        progress: Progress | None = None,
    ) -> DeviceSolve:
        """The coupled tri iteration with every vector on the device.

        ``x0 = None`` under ``params.start == "diffusion"`` starts from
        diffusion alone to ``params.start_tol`` (as the host solver does),
        run on the device and kept there; ``DeviceSolve.start_iterations``
        counts its steps.

        Per outer iteration two submissions: (A) the head (start fill, gather or
        Anderson mix), the diffusion step into ``y``, the springs CG from its
        warm start for a predicted number of iterations (more batches if the
        device says it has not converged) and, for incremental heat, the norms
        its error budget needs; (B) heat by Chebyshev, the blend, its sum, the
        normalised iterate with its L1 change (and the Anderson products),
        recorded while (A) runs unless heat's coefficients wait for the norms.
        Besides those scalars nothing comes back until the final iterate.
        """
        if (params.anderson or 0) > MAX_ANDERSON:
            raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
        self.setup_laplacian(params.laplacian)
        t = time.perf_counter()
        keep = x0 is None and params.start == "diffusion" and params.tol < params.start_tol
        start_iterations = 0
        if keep:
            # The solver's diffusion start (``solver._diffusion_start``), run
            # here so that its iterate stays on the device: read back and
            # uploaded again it cost two conversions of n values on the host.
            history, _ = self.run_diffusion(
                prior,
                None,
                params.alpha,
                params.start_tol,
                params.max_iter,
                None,
                DIFFUSION_ANDERSON,
            )
            start_iterations = len(history)
        start_s = time.perf_counter() - t
        self.start_diffusion(prior, x0, params.alpha, keep=keep)
        run = _TriRun(self, params, springs_state, heat_state, progress)
        converged = run.loop()
        self._springs_of = springs_state
        self.anderson_restarts = run.window.restarts
        phi = self.current()
        timings = dict(self.timings)
        if keep:
            timings["diffusion_start"] = start_s
        return DeviceSolve(
            phi, run.history, converged, timings, run.window.restarts, start_iterations
        )


class _TriRun:
    """One tri solve's outer loop on a :class:`WgpuTri` (its state between steps)."""

    def __init__(
        self,
        op: WgpuTri,
        params: FocusParams,
        springs_state: SpringsState,
        heat_state: HeatState,
        progress: Progress | None,
    ) -> None:
        t0 = time.perf_counter()
        self.op, self.params = op, params
        self.springs_state, self.heat_state, self.progress = springs_state, heat_state, progress
        self.policy = TriPolicy.of(params)
        self.m = params.anderson or 0
        self.window = AndersonWindow(self.m)
        if self.m:
            op._ensure_history(self.m)
        tp = op._tp
        tp[:] = 0
        tp[[TriParam.N, TriParam.NPARTS, TriParam.CG_MAX]] = (
            op.n,
            nparts(op.n),
            params.cg_max_iter,
        )
        floats = tp.view(np.float32)
        floats[TriParam.MU] = params.mu
        floats[[TriParam.LAM_D, TriParam.LAM_S, TriParam.LAM_H]] = params.weights
        floats[TriParam.HSCALE] = 2.0 / op.lam_max if op.lam_max > 0 else 0.0
        self.c = params.tau * op.lam_max / 2.0
        self.fresh = op._springs_of is not springs_state or springs_state is None
        op._springs_of = None
        op.tri_counts = dict.fromkeys(op.tri_counts, 0)
        self.history: list[float] = []
        op.timings["device_setup"] += time.perf_counter() - t0

    def _write_params(self) -> None:
        self.op.device.queue.write_buffer(self.op._tb[T.TP], 0, self.op._tp)

    def _spread(self) -> float:
        """``||sigma x||_2 ||1 / sigma||_2`` of this step's iterate (the policy's
        spread ``F``): the head and the norms in a submission of their own,
        and a wait for them (their scalars stay for the incremental heat)."""
        op = self.op
        t = time.perf_counter()
        self._write_params()
        encoder = op._encode_tri_head(self.m, True, False, 0, True)
        op.timings["device_encode"] += time.perf_counter() - t
        op._submit_scalars(encoder)
        norms = op._wait_scalars()
        op.tri_counts["spread_waits"] += 1
        base = math.sqrt(max(norms[TriScalar.BASE_HI] + norms[TriScalar.BASE_LO], 0.0))
        return base * op.inverse_sigma_norm()

    def loop(self) -> bool:
        """Outer steps until the policy stops (True) or ``max_iter`` (False)."""
        op, params, policy, m = self.op, self.params, self.policy, self.m
        _, lam_s, lam_h = params.weights
        tp, floats = op._tp, op._tp.view(np.float32)
        mix: np.ndarray | None = None
        exact = heat_valid = False
        res = 1.0
        batch = op.cg_first_batch
        while len(self.history) < params.max_iter:
            incremental = exact and heat_valid and op.lam_max > 0
            if m:
                op._set_mix(self.window.slot, mix)
            headed = policy.needs_spread(exact)
            spread = self._spread() if headed else 0.0
            t = time.perf_counter()
            cg_tol, heat_tol = policy.tolerances(res, exact, spread)
            tp[TriParam.FRESH] = int(self.fresh)
            floats[TriParam.CG_TOL] = cg_tol
            tp[TriParam.INCREMENTAL] = int(incremental)
            self._write_params()
            # Heat's coefficients are known now unless the incremental budget
            # needs the device's norms: then (B) is recorded while (A) runs.
            coeffs = None
            if lam_h > 0 and not incremental:
                coeffs = np.ones(1) if op.lam_max <= 0 else heat_coefficients(self.c, heat_tol)
                op._tri_coefficients(coeffs)
            command_a = op._encode_tri_head(
                m, not headed, lam_s > 0, batch, incremental and not headed
            )
            op.timings["device_encode"] += time.perf_counter() - t
            op._submit_scalars(command_a)
            t = time.perf_counter()
            command_b = None
            if lam_h == 0 or coeffs is not None:
                command_b, nbytes = op._encode_tri_blend(m, coeffs)
            op.timings["device_encode"] += time.perf_counter() - t
            scalars = self._springs(op._wait_scalars(), lam_s > 0)
            if lam_s > 0:
                # The warm-started solve takes about as many iterations as the
                # last one; those recorded past the stop cost a few empty
                # dispatches (no product), a wait for more costs a round trip.
                batch = int(scalars[TriScalar.CG_ITERATIONS]) + 2
                self.fresh = False
            t = time.perf_counter()
            if command_b is None:
                coeffs = self._incremental_coefficients(scalars, heat_tol)
                command_b, nbytes = op._encode_tri_blend(m, coeffs)
            if coeffs is not None:
                self.heat_state.terms += len(coeffs)
                op.tri_counts["heat_terms"] += len(coeffs)
                heat_valid = True
            pairs = self._submit_blend(command_b, nbytes, t)
            res = float(pairs[0])
            self.history.append(res)
            if not math.isfinite(res):
                raise FloatingPointError("focus iteration lost its mass (non-finite values)")
            if self.progress is not None:
                self.progress(len(self.history), res)
            last = self.history[-2] if len(self.history) > 1 else None
            verdict = policy.judge(res, last, exact)
            if verdict.stop:
                return True
            exact = verdict.exact
            if verdict.reset:
                self.window.reset()
            mix = mix_coefficients(self.window, pairs, m) if m else None
        return False

    def _submit_blend(self, command: CommandBuffer, nbytes: int, t: float) -> np.ndarray:
        """Submit a step's blend (B), wait for its ``nbytes`` of scalars and
        return them with each (hi, lo) pair summed: the L1 change, then the
        Gram products. ``t``: when (B)'s encoding began; until the submit
        that time counts as encoding."""
        op = self.op
        queue = op.device.queue
        if not self.m:
            queue.write_buffer(op._counter, 0, np.zeros(4, dtype=np.uint32))
        queue.submit([command])
        op._cur = 1 - op._cur
        t_wait = time.perf_counter()
        op.timings["device_encode"] += t_wait - t
        stats = op._map(op._stage_stats, nbytes, as_float64)
        op.timings["device_wait"] += time.perf_counter() - t_wait
        pairs: np.ndarray = stats[2::2] + stats[3::2]
        return pairs

    def _springs(self, scalars: np.ndarray, springs: bool) -> np.ndarray:
        """More CG batches while the device says CG has not stopped; counts
        the iterations. Returns the last scalars."""
        op = self.op
        op.tri_counts["cg_batches"] += 1
        while springs and scalars[TriScalar.ACTIVE] > 0.5:
            t = time.perf_counter()
            encoder = op.device.create_command_encoder()
            cpass = encoder.begin_compute_pass()
            op._encode_cg(cpass, op._cur, 4)
            cpass.end()
            op.timings["device_encode"] += time.perf_counter() - t
            op._submit_scalars(encoder)
            scalars = op._wait_scalars()
            op.tri_counts["cg_batches"] += 1
        if springs:
            done = int(scalars[TriScalar.CG_ITERATIONS])
            self.springs_state.iterations += done
            op.tri_counts["cg_iterations"] += done
        return scalars

    def _incremental_coefficients(self, scalars: np.ndarray, heat_tol: float) -> np.ndarray:
        """Heat's coefficients for the change since its last input, cut to the
        budget the device's norms leave (``spectral._heat_input``'s rule)."""
        S = TriScalar
        size = math.sqrt(max(scalars[S.DELTA_HI] + scalars[S.DELTA_LO], 0.0))
        base = math.sqrt(max(scalars[S.BASE_HI] + scalars[S.BASE_LO], 0.0))
        rel = min(0.5, heat_tol * base / size) if size > 0 else 0.5
        coeffs = heat_coefficients(self.c, rel)
        self.op._tri_coefficients(coeffs)
        return coeffs
