"""The wgpu backend's snapshot upload, host-side products and device-resident diffusion.

Diffusion is device-resident (:meth:`WgpuDiffusion.solve_diffusion`): the
iterate, the next iterate, the gathered vector ``z = x / W_p``, the prior and
the inverse out-weights live in float32 device buffers, and one command encoder
per iteration holds every pass (SELL product, hub chunks, overlay rows, the
mass reduction, the finish pass, the L1 reduction). Pipelines, bind groups and
uniform buffers are built once per snapshot; uniforms change by
``queue.write_buffer``. Only 8 bytes per iteration come back (the L1 change),
and several iterations are encoded into one submission when the observed
contraction says the solve cannot stop sooner, so the host waits once per batch.
Per-solve host work is kept off the n-vectors: a uniform start is a fill pass,
a uniform prior a flag (nothing uploaded, nothing read per step), and the answer
is copied back once and converted to float64 straight from the mapped staging
buffer.

Anderson mixing (window ``m``) runs on the device too, with the host's
coefficient rules (:class:`~focusflow.focus.anderson.AndersonWindow`): the
finish pass keeps a history (``x_prev``, ``g_prev`` and ``m`` slots of ``dx +
dg`` and ``dg``) and reduces the ``2 m`` Gram products in the same
deterministic pairs as the L1 change; each step is one submission whose
scalars the host waits for, solves the small least-squares problem on, and
answers with the mix pass at the head of the next submission (recorded while
the device runs the current one). The mixed iterate is not renormalised: the
next step's teleport term gives its image mass 1 whatever its own mass. Those
kernels are compiled per window (a module constant), so their slot loops
unroll and their sums stay in registers.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from focusflow.focus.anderson import AndersonWindow
from focusflow.focus.backends.base import (
    DeviceSolve,
    Progress,
    inverse_out_weight,
    uniform_value,
)
from focusflow.focus.backends.webgpu_storage import (
    MAX_BATCH,
    MAX_PARTS,
    TIMING_KEYS,
    WG,
    BindGroup,
    Buffer,
    CommandBuffer,
    DeviceSell,
    Pipeline,
    WgpuDevice,
    as_float64,
    dispatch_size,
    normalised,
    nparts,
    u32,
)
from focusflow.focus.backends.wgsl import (
    AA_KERNELS,
    MAX_ANDERSON,
    VectorBinding,
    VectorParam,
    vector_shader,
)
from focusflow.graph.snapshot import PatchInfo, Snapshot

B = VectorBinding


def stats_bytes(m: int) -> int:
    """Bytes of scalars an Anderson step of window ``m`` leaves (the L1 change
    and the ``2 m`` Gram products as pairs, after the two leading words)."""
    return 4 * (2 + 2 * (1 + 2 * m))


def stats_pairs(stats: np.ndarray, m: int) -> np.ndarray:
    """The ``1 + 2 m`` values of an Anderson step's scalars, each pair summed."""
    pairs: np.ndarray = stats[2 : 2 * (2 + 2 * m) : 2] + stats[3 : 2 * (2 + 2 * m) + 1 : 2]
    return pairs


class WgpuVectors(WgpuDevice):
    """The snapshot on the device, the vectors of a diffusion step, and the
    host-side protocol (``pull``, ``diffusion``) on numpy arrays."""

    snapshot: Snapshot
    n: int

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.n = -1
        self.timings = dict.fromkeys(TIMING_KEYS, 0.0)
        self._need_fill = False
        self._need_prep = False
        self._cur = 0
        #: In-link matrices built (a patch that keeps the layout writes values).
        self.matrix_builds = 0

    def refresh(self, info: PatchInfo | None = None) -> None:
        """Upload the snapshot, or after a patch the rewritten values, the
        out-weights and the overlay (the base matrix stays on the device)."""
        s = self.snapshot
        rewritten = None if info is None or self.n < 0 else info.base_entries
        full = rewritten is None
        if rewritten is None:
            self.sell = DeviceSell(self, s.in_indptr, s.in_indices, s.in_w)
            self.matrix_builds += 1
        elif len(rewritten):
            self.sell.update(self, s.out_to_in[rewritten], s.in_w)
        if full or s.n != self.n:
            # Vectors for the (new) size; after a patch that brought particles
            # the matrix stays and zeroes the rows past its own in every product.
            self.sell.set_rows(s.n)
            self.n = s.n
            self._allocate()
        self.inv_out, linked = inverse_out_weight(s.out_weight)
        self.dangling = ~linked
        if self.n > 0:
            self.device.queue.write_buffer(self._inv, 0, self.inv_out.astype(np.float32))
        rows, ptr, indices, weights = s.overlay_in_rows()
        self._ov = rows, ptr, indices, weights
        self._ov_rows = rows
        self._ov_buffers = {
            B.OVROW: self._buffer(u32(rows)),
            B.OVSTART: self._buffer(u32(ptr[:-1])),
            B.OVEND: self._buffer(u32(ptr[1:])),
            B.OVIDX: self._buffer(u32(indices)),
            B.OVVAL: self._buffer(u32(weights, np.float32)),
        }
        self._vgroups: dict[tuple[str, int], BindGroup] = {}

    def _allocate(self) -> None:
        """The n-vectors and reduction buffers of the current size."""
        n4 = 4 * max(self.n, 1)
        self._z = self._empty(n4)
        self._out = self._empty(n4)
        self._stage_vec = self._staging(n4)
        # device-resident diffusion: iterate pair, gathered vector, prior, 1/W_p
        self._vec = (self._empty(n4), self._empty(n4))
        self._zv = self._empty(n4)
        self._prior = self._empty(n4)
        self._inv = self._empty(n4)
        # One (hi, lo) pair per part for each value a reduction carries: the
        # L1 change alone, or with the 2 m Gram products of an Anderson step.
        self._part = self._empty(8 * MAX_PARTS * (1 + 2 * MAX_ANDERSON))
        self._stats = self._empty(4 * (2 + 2 * MAX_BATCH))
        self._counter = self._empty(16)
        self._stage_stats = self._staging(4 * (2 + 2 * MAX_BATCH))
        self._vparams = self._uniform(4 * len(VectorParam))
        self._params = np.zeros(len(VectorParam), dtype=np.uint32)
        self._aa_buffers: dict[VectorBinding, Buffer] = {}
        self._prior_of: np.ndarray | None = None
        self._uniform_prior = False

    # --- host-side products ----------------------------------------------------
    def product(self, m: DeviceSell, z: np.ndarray) -> np.ndarray:
        """``sum_j M[j, r] z[j]`` for every row of ``m`` (the in-link matrix
        ``sell`` or the symmetric one), on the device, read back as float64."""
        queue = self.device.queue
        queue.write_buffer(self._z, 0, np.ascontiguousarray(z, dtype=np.float32))
        m.set_scale(self, 1.0)
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        m.encode(self, cpass, self._z, self._out)
        cpass.end()
        encoder.copy_buffer_to_buffer(self._out, 0, self._stage_vec, 0, 4 * self.n)
        queue.submit([encoder.finish()])
        return self._map(self._stage_vec, 4 * self.n, as_float64)

    def pull(self, z: np.ndarray, out: np.ndarray, scale: float) -> float:
        sums = self.product(self.sell, z)
        rows, ptr, indices, weights = self._ov
        for k, r in enumerate(rows.tolist()):
            a, b = ptr[k], ptr[k + 1]
            sums[r] += float(weights[a:b] @ z[indices[a:b]])
        out[:] = scale * sums
        return float(out.sum())

    def diffusion(self, x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray) -> float:
        """One step on host vectors (the protocol's form; the solver uses
        :meth:`WgpuDiffusion.solve_diffusion` instead)."""
        linked_mass = self.pull(x * self.inv_out, y, alpha)
        y += (1.0 - linked_mass) * prior
        return float(np.abs(y - x).sum())

    # --- the device iterate ------------------------------------------------------
    def _vgroup(self, name: str, parity: int) -> Any:
        """The cached bind group of vector kernel ``name`` with ``x = _vec[parity]``."""
        key = (name, parity)
        group = self._vgroups.get(key)
        if group is None:
            buffers = {
                B.X: self._vec[parity],
                B.Y: self._vec[1 - parity],
                B.Z: self._zv,
                B.PRIOR: self._prior,
                B.INV_OUT: self._inv,
                B.PART: self._part,
                B.STATS: self._stats,
                B.VP: self._vparams,
                B.COUNTER: self._counter,
                **self._ov_buffers,
                **self._aa_buffers,
            }
            group = self._bind_group(name, buffers)
            self._vgroups[key] = group
        return group

    def _dispatch(self, cpass: Any, name: str, parity: int, size: tuple[int, int, int]) -> None:
        cpass.set_pipeline(self._pipelines[name])
        cpass.set_bind_group(0, self._vgroup(name, parity))
        cpass.dispatch_workgroups(*size)

    def _set_prior(self, prior: np.ndarray) -> None:
        """Make ``prior`` the device prior: nothing if it is the last one, a flag
        if it is uniform (no upload, and the finish pass reads no prior), else
        an upload of its float32 values."""
        if self._prior_of is prior:
            return
        value = uniform_value(prior)
        self._uniform_prior = value is not None and value > 0
        if self._uniform_prior:
            self._inv_prior_sum = 1.0 / self.n
        else:
            p32 = np.ascontiguousarray(prior, dtype=np.float32)
            self.device.queue.write_buffer(self._prior, 0, p32)
            total = float(p32.sum(dtype=np.float64))
            self._inv_prior_sum = 1.0 / total if total > 0 else 0.0
        self._prior_of = prior

    def start_diffusion(
        self, prior: np.ndarray, x0: np.ndarray | None, alpha: float, *, keep: bool = False
    ) -> None:
        """Set the prior (see :meth:`_set_prior`), the start vector and ``alpha``.

        ``x0 = None`` is the uniform start ``1 / n``: a fill pass on the device
        at the head of the first batch instead of an n-vector upload.
        ``keep``: the start is the iterate the device holds (a diffusion start
        just run there), neither read back nor uploaded again.
        """
        t = time.perf_counter()
        queue = self.device.queue
        self._set_prior(prior)
        P = VectorParam
        params = self._params
        params[:] = 0
        params[[P.N, P.NPARTS, P.NOV, P.WIDTH]] = (
            self.n,
            nparts(self.n),
            len(self._ov_rows),
            65535 * WG,
        )
        params[P.INV_PRIOR_SUM] = np.float32(self._inv_prior_sum).view(np.uint32)
        params[P.SCALE] = np.float32(alpha).view(np.uint32)
        params[P.UNIFORM_PRIOR] = int(self._uniform_prior)
        params[P.FILL_VALUE] = np.float32(1.0 / max(self.n, 1)).view(np.uint32)
        queue.write_buffer(self._vparams, 0, params)
        self.sell.set_scale(self, alpha)
        self._need_fill = x0 is None and not keep
        if keep:
            if x0 is not None:
                raise ValueError("a kept start takes no start vector")
        else:
            if x0 is not None:
                queue.write_buffer(self._vec[0], 0, np.ascontiguousarray(x0, dtype=np.float32))
            self._cur = 0
        self._need_prep = True
        self.timings = dict.fromkeys(TIMING_KEYS, 0.0)
        self.timings["device_setup"] = time.perf_counter() - t

    def _set_mix(self, slot: int, mix: np.ndarray | None) -> None:
        """The Anderson slot the next step records into and the coefficients of
        the mix at its head (None: no mix), written before it is submitted."""
        P = VectorParam
        self._params[[P.AA_SLOT, P.AA_K]] = (slot, 0 if mix is None else len(mix))
        self.device.queue.write_buffer(self._vparams, 0, self._params)
        if mix is not None:
            self.device.queue.write_buffer(self._aa_buffers[B.COEF], 0, mix.astype(np.float32))

    def _encode_step_head(self, cpass: Any, m: int) -> None:
        """The head of a step on ``x = _vec[cur]``: the start fill, the gather
        (first step) or the Anderson mix (``m``: a plain gather when the
        uniform's ``aa_k`` is 0), then the product into ``y``, the overlay rows
        and the mass reduction."""
        wide = (nparts(self.n), 1, 1)
        cur = self._cur
        if self._need_fill:
            # y of the other parity is _vec[cur]: the start vector
            self._dispatch(cpass, "fill", 1 - cur, wide)
            self._need_fill = False
        if self._need_prep:
            self._dispatch(cpass, "prep", cur, wide)
            self._need_prep = False
        elif m:
            self._dispatch(cpass, "aa_mix", 1 - cur, wide)
        self.sell.encode(self, cpass, self._zv, self._vec[1 - cur])
        nov = len(self._ov_rows)
        if nov:
            self._dispatch(cpass, "ov_add", cur, dispatch_size(nov))
        self._dispatch(cpass, "sum_partial", cur, wide)
        self._dispatch(cpass, "mass_final", cur, (1, 1, 1))

    def current(self, normalise: bool = True) -> np.ndarray:
        """The device iterate, read back as float64 and renormalised to mass 1
        (``normalise=False``: as the device holds it).

        One copy to the persistent staging buffer (float32, 4 bytes a particle),
        then, straight from the mapped memory, one parallel pass that sums it
        in float64 and one that writes ``x / total`` as float64
        (:func:`~focusflow.focus.backends.webgpu_storage.normalised`).
        ``readback_parts`` splits the time into the copy and map (``map``) and
        the conversion (``convert``).
        """
        t = time.perf_counter()
        self.readback_parts = {"map": 0.0, "convert": 0.0}
        nbytes = 4 * self.n
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(self._vec[self._cur], 0, self._stage_vec, 0, nbytes)
        self.device.queue.submit([encoder.finish()])
        t_map = time.perf_counter()
        convert = normalised if normalise else as_float64
        x = self._map(self._stage_vec, nbytes, convert, self.readback_parts)
        self.timings["device_readback"] = time.perf_counter() - t
        self.readback_parts["map"] += t_map - t
        return x


class WgpuDiffusion(WgpuVectors):
    """Batches of plain steps and Anderson-mixed steps on the device."""

    #: Steps per queue submission inside a batch. 1: the device runs step k while
    #: Python encodes step k + 1 (encoding a step costs ~0.1-0.2 ms of Python);
    #: larger values save submissions where those cost more (bench/focus_gpu.py
    #: measures both).
    submit_every = 1

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__(snapshot)
        self._aa_pipelines: dict[int, dict[str, Pipeline]] = {}
        self._aa_m: int | None = None
        #: Anderson restarts of the last device solve.
        self.anderson_restarts = 0

    def _ensure_history(self, m: int) -> None:
        """Pipelines and device buffers for an Anderson window of ``m``.

        The Anderson kernels are compiled per window (a module constant lets
        the compiler unroll the slot loops and keep the sums in registers) and
        kept per operator; the history is ``(2 + 2 m) n`` floats. Bind groups
        made for other pipelines or buffers are dropped.
        """
        hist = self._aa_buffers.get(B.HIST)
        stale = self._aa_m != m
        if hist is None or hist.size < 4 * (2 + 2 * m) * self.n:
            self._aa_buffers = {
                B.HIST: self._empty(4 * (2 + 2 * m) * self.n),
                B.COEF: self._empty(4 * MAX_ANDERSON),
            }
            stale = True
        if self._aa_m != m:
            pipelines = self._aa_pipelines.get(m)
            if pipelines is None:
                pipelines = self._compile(vector_shader(m), AA_KERNELS)
                self._aa_pipelines[m] = pipelines
            self._pipelines.update(pipelines)
            self._aa_m = m
        if stale:
            self._vgroups = {k: g for k, g in self._vgroups.items() if k[0] not in AA_KERNELS}

    def _encode_anderson(self, m: int) -> Any:
        """Record one Anderson submission and return its command buffer.

        The first one fills or gathers the start vector; every later one begins
        with the mix of the last step's ``G(x)`` (``y`` of the other parity), a
        plain gather when the uniform says ``aa_k = 0``. Then one step whose
        differences go to slot ``aa_slot``, and the copy of its scalars to the
        staging buffer. Nothing recorded depends on the mixing decision (only
        the uniform and the coefficients do, written before submitting), so the
        next submission is recorded while the device runs the current one.

        The history is never cleared: a slot is read only after a step of this
        solve wrote it (the first step's differences, against stale or garbage
        ``x_prev``, go to a slot that the second step overwrites).
        """
        encoder = self.device.create_command_encoder()
        cpass = encoder.begin_compute_pass()
        cur = self._cur
        self._encode_step_head(cpass, m)
        self._dispatch(cpass, "finish_aa", cur, (nparts(self.n), 1, 1))
        self._dispatch(cpass, "aa_final", cur, (1, 1, 1))
        self._cur = 1 - cur
        cpass.end()
        encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, stats_bytes(m))
        return encoder.finish()

    def _anderson_step(
        self, m: int, slot: int, mix: np.ndarray | None, command: CommandBuffer
    ) -> tuple[np.ndarray, CommandBuffer]:
        """Submit ``command`` with slot ``slot`` and coefficients ``mix`` (None:
        no mix), record the next submission while it runs, wait, and return
        the float64 scalars (the L1 change and the Gram products) and the next
        command buffer."""
        t = time.perf_counter()
        self._set_mix(slot, mix)
        self.device.queue.submit([command])
        following = self._encode_anderson(m)
        t_wait = time.perf_counter()
        stats = self._map(self._stage_stats, stats_bytes(m), as_float64)
        self.timings["device_encode"] += t_wait - t
        self.timings["device_wait"] += time.perf_counter() - t_wait
        return stats, following

    def _solve_anderson(
        self, m: int, tol: float, max_iter: int, history: list[float], progress: Progress | None
    ) -> bool:
        """Anderson-mixed iteration (the host's rules, ``AndersonWindow``) with
        the vectors on the device: one submission and one wait per step, which
        brings back the L1 change and the ``2 m`` Gram products; the host
        solves the ``k x k`` least-squares problem and the mix runs at the head
        of the next submission. Stops when one plain step's change is below
        ``tol`` and keeps that step, as the host path does."""
        self._ensure_history(m)
        window = AndersonWindow(m)
        command = self._encode_anderson(m)
        try:
            mix: np.ndarray | None = None
            while len(history) < max_iter:
                stats, command = self._anderson_step(m, window.slot, mix, command)
                mix = None
                pairs = stats_pairs(stats, m)
                res = float(pairs[0])
                history.append(res)
                if not math.isfinite(res):
                    raise FloatingPointError("focus iteration lost its mass (non-finite values)")
                if progress is not None:
                    progress(len(history), res)
                if res < tol:
                    return True
                mix = mix_coefficients(window, pairs, m)
            return False
        finally:
            # the last recorded submission never ran: its parity flip is undone
            self._cur = 1 - self._cur
            self.anderson_restarts = window.restarts

    def steps(self, count: int) -> list[float]:
        """Run ``count`` diffusion steps and wait once; their L1 changes.

        Each step is one compute pass (every kernel of the step) that reads
        ``x = _vec[cur]`` and writes the next iterate into the other buffer;
        steps go to the queue ``submit_every`` at a time, and the host waits
        once, for ``8 * count`` bytes.
        """
        if not 1 <= count <= MAX_BATCH:
            raise ValueError(f"count must be in 1..{MAX_BATCH}")
        queue = self.device.queue
        queue.write_buffer(self._counter, 0, np.zeros(4, dtype=np.uint32))
        wide = (nparts(self.n), 1, 1)
        nbytes = 4 * (2 + 2 * count)
        t = time.perf_counter()
        encoder = self.device.create_command_encoder()
        for k in range(count):
            cpass = encoder.begin_compute_pass()
            cur = self._cur
            self._encode_step_head(cpass, 0)
            self._dispatch(cpass, "finish", cur, wide)
            self._dispatch(cpass, "l1_final", cur, (1, 1, 1))
            self._cur = 1 - cur
            cpass.end()
            if k == count - 1:
                encoder.copy_buffer_to_buffer(self._stats, 0, self._stage_stats, 0, nbytes)
                queue.submit([encoder.finish()])
            elif (k + 1) % self.submit_every == 0:
                queue.submit([encoder.finish()])
                encoder = self.device.create_command_encoder()
        t_wait = time.perf_counter()
        stats = self._map(self._stage_stats, nbytes, as_float64)
        done = time.perf_counter()
        self.timings["device_encode"] += t_wait - t
        self.timings["device_wait"] += done - t_wait
        changes: list[float] = (stats[2::2] + stats[3::2]).tolist()
        return changes

    def solve_diffusion(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        alpha: float,
        tol: float,
        max_iter: int,
        progress: Progress | None = None,
        anderson: int = 0,
    ) -> DeviceSolve:
        """Power iteration on the device until the L1 change is below ``tol``.

        ``phi`` comes back on the host in internal order, with the seconds
        spent in each part of the solve (:data:`TIMING_KEYS`). ``x0 = None``
        starts from the uniform vector, filled on the device. A batch of steps
        is submitted at once when the observed contraction rate says the stop
        rule cannot fire sooner (at most a few steps past the first one below
        ``tol``, each of which only brings the iterate closer to the fixed
        point); the answer is the last step of the batch, and converged means
        that step's change is below tol.
        """
        history, converged = self.run_diffusion(prior, x0, alpha, tol, max_iter, progress, anderson)
        phi = self.current()
        return DeviceSolve(phi, history, converged, dict(self.timings), self.anderson_restarts)

    def run_diffusion(
        self,
        prior: np.ndarray,
        x0: np.ndarray | None,
        alpha: float,
        tol: float,
        max_iter: int,
        progress: Progress | None = None,
        anderson: int = 0,
    ) -> tuple[list[float], bool]:
        """:meth:`solve_diffusion` without the read-back: the iterate stays in
        the device's current vector (a tri solve starts from it). Returns the
        L1 changes and whether the last was below ``tol``."""
        self.start_diffusion(prior, x0, alpha)
        history: list[float] = []
        self.anderson_restarts = 0
        if anderson > 0:
            if anderson > MAX_ANDERSON:
                raise ValueError(f"the wgpu backend mixes at most {MAX_ANDERSON} steps")
            return history, self._solve_anderson(anderson, tol, max_iter, history, progress)
        converged = False
        while len(history) < max_iter:
            batch = _batch(history, tol, max_iter - len(history))
            for res in self.steps(batch):
                history.append(res)
                if not math.isfinite(res):
                    raise FloatingPointError("focus iteration lost its mass (non-finite values)")
                if progress is not None:
                    progress(len(history), res)
            if history[-1] < tol:
                converged = True
                break
        return history, converged


def mix_coefficients(window: AndersonWindow, pairs: np.ndarray, m: int) -> np.ndarray | None:
    """The next mix's coefficients from a device step's scalars (``pairs``: the
    L1 change, ``m`` Gram products, ``m`` right-hand sides)."""
    return window.recorded_step(float(pairs[0]), pairs[1 : 1 + m], pairs[1 + m : 1 + 2 * m])


def _batch(history: list[float], tol: float, left: int) -> int:
    """Steps to submit at once: those the observed contraction says are needed.

    One step at a time until two changes give a rate; then the predicted number
    of steps to reach ``tol`` (never more than ``MAX_BATCH`` or ``left``), so
    the host waits about once per solve instead of once per step.
    """
    if len(history) < 2 or history[-1] < tol:
        return 1
    rate = history[-1] / history[-2] if history[-2] > 0 else 1.0
    if not 0 < rate < 1:
        return 1
    need = math.log(tol / history[-1]) / math.log(rate)
    return max(1, min(MAX_BATCH, left, int(need)))


__all__ = ["Buffer", "WgpuDiffusion", "WgpuVectors", "mix_coefficients", "stats_pairs"]
