"""Parameters of a focus computation, validated once at the door.

Defaults are docs/architecture.md §3.2's: alpha 0.85, mu 1, tau 1, blend weights
(0.5, 0.3, 0.2), L1 tolerance 1e-6, at most 2048 iterations. docs/focus.md gives
each parameter's meaning, unit and source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np

from focusflow.core.errors import InvalidParameterError
from focusflow.focus.hebbian import HebbianParams

Mode = Literal["tri", "diffusion", "cyberank"]
LaplacianKind = Literal["normalized", "combinatorial"]
Precision = Literal["float64", "float32"]
Start = Literal["diffusion", "uniform"]
HeatReuse = Literal["bounded", "exact"]
Finish = Literal["bounded", "fixed"]
SpringsMethod = Literal["auto", "cg", "series"]
ArithmeticName = Literal["fast", "exact-v1", "exact-v2", "exact-v3"]
PriorName = Literal["uniform", "stake"]
Model = Literal["blend", "free-energy", "local-rule"]

#: The values each string parameter takes, read from its type (validate's lists).
MODES: tuple[Mode, ...] = get_args(Mode)
MODELS: tuple[Model, ...] = get_args(Model)
LAPLACIANS: tuple[LaplacianKind, ...] = get_args(LaplacianKind)
PRECISIONS: tuple[Precision, ...] = get_args(Precision)
STARTS: tuple[Start, ...] = get_args(Start)
HEAT_REUSE: tuple[HeatReuse, ...] = get_args(HeatReuse)
FINISHES: tuple[Finish, ...] = get_args(Finish)
SPRINGS_METHODS: tuple[SpringsMethod, ...] = get_args(SpringsMethod)
PRIORS: tuple[PriorName, ...] = get_args(PriorName)
#: The arithmetic a solve runs in. ``fast``: the numba kernels may contract
#: and reassociate (``fastmath``), numpy reduces as its build does and LAPACK
#: and scipy supply the small solve and the heat coefficients, so the last bits
#: depend on the CPU and the libraries. ``exact-v1``: every operation of the
#: solve is fixed by this code (no contraction or reassociation, reductions in
#: fixed chunks combined in order, our own small solve and Bessel series), so
#: any x86-64 or other IEEE-754 machine computes the same bits; what consensus
#: runs (docs/focus.md, *Arithmetic*). A new exact version gets a new name.
#: ``exact-v2`` is ``exact-v1`` with one defect fixed: in a tri solve v1's
#: normalising blend rewrites the vector that the diffusion step has already
#: divided by the out-weights for the next step, and the next step reads
#: that stale quotient (the diffusion part of the blend, not the blend) after
#: every plain step (the first, and each after an Anderson restart), so v1
#: can converge elsewhere or cycle on small graphs. v1 stays as it was: its
#: chains replay with it. ``exact-v3`` is ``exact-v2`` with every sum (over
#: particles, over a matrix's rows, and a hub row's products) cut into chunks
#: of 1,024 values added in order and combined by a fixed binary tree
#: (``reduce.tree_sum``) instead of 64 chunks added in order: the same bits on
#: a CPU and on a GPU that sums every chunk at once (backends/exact_tree.py).
FAST: ArithmeticName = "fast"
EXACT_V1: ArithmeticName = "exact-v1"
EXACT_V2: ArithmeticName = "exact-v2"
EXACT_V3: ArithmeticName = "exact-v3"
ARITHMETICS: tuple[ArithmeticName, ...] = get_args(ArithmeticName)
#: The backends that implement the exact arithmetics (cuda: the numba exact
#: kernels' twins on the GPU, backends/cuda_exact.py).
EXACT_BACKENDS = ("numba", "cuda")
#: The longest period of the Hebbian rule, in blocks.
MAX_HEBBIAN_EVERY = 1_000_000
#: Default Anderson windows. Tri on R-MAT graphs from the diffusion start
#: (numba, scales 16 and 19; cuda, scale 23): window 6 takes 10 outer
#: iterations, windows 2 and 4 take 10-11; each costs springs and heat, and
#: the longer history costs two vector passes per step. Diffusion takes 9 with
#: any window from 1 to 5 (bench/RESULTS.md).
DIFFUSION_ANDERSON = 2
TRI_ANDERSON = 6
#: With ``finish="bounded"`` the exact phase's inner solves may add at most this
#: fraction of ``tol`` to the result's L1 error (``FocusParams.exact_share``).
EXACT_SHARE = 0.01
#: Where the diffusion start of a cold tri solve stops by default
#: (``FocusParams.start_tol``).
DIFFUSION_START_TOL = 1e-2


@dataclass(frozen=True)
class FocusParams:
    """Everything that decides the answer of a focus computation.

    ``weights`` are (lambda_d, lambda_s, lambda_h) of the composite; ``laplacian``
    picks the Laplacian behind springs and heat (``normalized`` = random-walk
    Laplacian, scale-free; ``combinatorial`` = ``diag(A 1) - A`` on raw weights);
    ``prior`` is ``uniform``, ``stake`` or an explicit vector over particles.
    """

    mode: Mode = "tri"
    alpha: float = 0.85
    mu: float = 1.0
    tau: float = 1.0
    weights: tuple[float, float, float] = (0.5, 0.3, 0.2)
    tol: float = 1e-6
    max_iter: int = 2048
    laplacian: LaplacianKind = "normalized"
    cg_tol: float = 1e-10
    cg_max_iter: int = 10_000
    heat_tol: float = 1e-12
    prior: PriorName | np.ndarray = "uniform"
    precision: Precision = "float64"
    spectral_gap: bool = False
    #: Anderson window; None picks 2 for diffusion and 6 for tri, where an
    #: iteration costs several products and a longer memory pays for itself.
    anderson: int | None = None
    #: Where a cold tri solve begins: ``diffusion`` (diffusion alone iterated
    #: to ``start_tol`` first) or ``uniform``.
    start: Start = "diffusion"
    #: The L1 change at which the diffusion start stops (taken when ``tol`` is
    #: below it). 1e-2 saved a global solve its first outer iterations (R-MAT
    #: scales 17-19: 10 instead of 13); a personalized solve needs only the
    #: start's first steps, which carry the context's mass a few links out
    #: (``focusflow.infer`` takes 0.5: bench/infer_latency.py).
    start_tol: float = DIFFUSION_START_TOL
    #: When heat builds on its last result: ``bounded`` (whenever the carried
    #: error bound leaves room; spectral._heat_input) or ``exact`` (only in
    #: the exact phase). ``exact``, with ``start="uniform"`` and window 2, is
    #: the algorithm focus was first committed with on chain, which a chain
    #: keeps unless its genesis names another (chain.focus_commit).
    heat_reuse: HeatReuse = "bounded"
    #: How a tri solve ends (solver._iterate). ``bounded``: the exact phase
    #: begins once the next step is predicted below ``tol``, keeping the
    #: Anderson history, and its inner solves are as accurate as the result
    #: needs (their error in it at most 1 % of ``tol``; ``cg_tol`` and
    #: ``heat_tol`` are then floors). ``fixed``: it begins after a step below
    #: ``tol``, restarts Anderson, and solves to ``cg_tol`` and ``heat_tol``:
    #: the rule chains keep unless their genesis names another. Both rules are
    #: ``policy.TriPolicy``'s, which the host loop and wgpu's device loop share.
    finish: Finish = "bounded"
    #: ``fast`` or an exact version (ARITHMETICS): see there. Library calls
    #: keep ``fast``; a chain names its arithmetic in its genesis.
    arithmetic: ArithmeticName = FAST
    #: How a tri solve applies springs. ``cg``: conjugate gradients, each step
    #: side by side with a heat term in one pass over the matrix. ``series``:
    #: springs and heat as one Chebyshev series of their blend, applied to the
    #: change like heat (spectral.blend). ``auto``: the series where its terms
    #: shrink fast enough (spectral.blend_pays: the normalized Laplacian with
    #: mu >= 0.025) on CPU backends; cg otherwise. The answers
    #: agree within ``tol``; chains keep ``cg`` unless their genesis names
    #: another.
    springs_method: SpringsMethod = "auto"
    #: With ``finish="bounded"``: the largest share of ``tol`` that the exact
    #: phase's inner solves may add to the result's L1 error
    #: (``policy.TriPolicy.exact_tolerances``). The default keeps it at 1 %;
    #: a caller whose answer only needs its ranking (``focusflow.infer``)
    #: trades a larger share for fewer series terms.
    exact_share: float = EXACT_SHARE
    #: Whether fast sums may be grouped by the thread count, for speed: the
    #: springs-and-heat series then runs over the symmetric matrix stored once
    #: per pair where that pays (``backends.sym_half``: 1.3x a series at R-MAT
    #: 20 on two cores), and its answers are the same bits for the same thread
    #: count, within rounding of each other otherwise. Off (the default for
    #: engines and chains), every fast solve gives the same bits whatever the
    #: thread count; ``compute()`` turns it on unless given ``params``.
    thread_sums: bool = False
    #: What focus is. ``blend``: the fixed point of the blend
    #: ``lambda_d D + lambda_s S + lambda_h H`` (the tri-kernel; the default
    #: and every chain's before this field). ``free-energy``: the minimiser of
    #: ``F = E - T S`` over the simplex at ``temperature`` (energy.py, with the
    #: entropy's sign of docs/focus.md section 9), computed by the exact
    #: minimiser (energy_exact.py): the same bits on every machine whatever
    #: ``arithmetic`` names, so it needs an exact one and the numba backend.
    #: ``local-rule``: F's local update rule run every block, not to its end:
    #: ``local_steps`` steps of step size ``local_eta`` from the last block's
    #: focus (energy_exact.ExactFreeEnergy.local_steps), so focus follows F's
    #: minimiser across blocks as each particle could compute it from its
    #: neighbours and one gossiped sum.
    model: Model = "blend"
    #: The free-energy model's temperature T (> 0): high T spreads focus
    #: toward uniform, low T concentrates it on the energy's minima.
    temperature: float = 1.0
    #: The local rule's steps per block (1..64) and step size (0 < eta <= 1).
    #: It contracts near F's minimiser iff eta < 2T / (T + L), L the energy's
    #: curvature, which the graph sets: on a fixed graph 0.03 converged on the
    #: bostrom sample at T = 0.5 and 1 and collapsed onto a vertex on R-MAT 12;
    #: 0.01 converged there at T = 1 and collapsed after 21 blocks at T = 0.5
    #: (docs/focus.md section 11.3). No fixed step is safe on every graph: a
    #: genesis names the one its graph allows.
    local_steps: int = 4
    local_eta: float = 0.01
    #: The chain's Hebbian rule (focus/hebbian.py; docs/focus.md section 12):
    #: every ``hebbian_every`` blocks (0: never, the default) each link's
    #: weight factor moves with the co-activation of its two ends in the last
    #: committed focus, by ``hebbian_eta``, decays by ``hebbian_delta``, stays
    #: within [1, ``hebbian_cap``], and one update adds at most
    #: ``hebbian_mass_cap`` of the staked weight. Read by a chain's focus
    #: state (chain/focus_hebbian.py), not by a one-off solve.
    hebbian_every: int = 0
    hebbian_eta: float = 0.01
    hebbian_delta: float = 0.1
    hebbian_cap: float = 2.0
    hebbian_mass_cap: float = 0.01

    @property
    def exact(self) -> bool:
        """Whether the solve must give the same bits on every machine."""
        return self.arithmetic != FAST

    def check_backend(self, backend: str) -> None:
        """Refuse a backend that does not implement this arithmetic or model."""
        if self.model != "blend" and backend != "numba":
            raise InvalidParameterError(
                f"the {self.model} model runs on the numba backend only, not {backend!r}"
            )
        if self.exact and backend not in EXACT_BACKENDS:
            raise InvalidParameterError(
                f"arithmetic {self.arithmetic!r} runs on the "
                f"{' or '.join(EXACT_BACKENDS)} backend only, not {backend!r}"
            )

    def with_(self, **changes: Any) -> FocusParams:
        return replace(self, **changes)

    def validate(self) -> FocusParams:
        """Raise InvalidParameterError for any value outside its domain."""
        self._check_scalars()
        w = self._checked_weights()
        self._check_solver_bounds()
        anderson = self._checked_anderson()
        self._check_choices()
        return replace(
            self,
            weights=w,
            anderson=anderson,
            temperature=float(self.temperature),
            local_eta=float(self.local_eta),
            hebbian_eta=float(self.hebbian_eta),
            hebbian_delta=float(self.hebbian_delta),
            hebbian_cap=float(self.hebbian_cap),
            hebbian_mass_cap=float(self.hebbian_mass_cap),
        )

    def _check_scalars(self) -> None:
        """The mode, and the damping and the springs and heat scales."""
        if self.mode not in MODES:
            raise InvalidParameterError(
                f"mode must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        if not (isinstance(self.alpha, float | int) and 0.0 < self.alpha < 1.0):
            raise InvalidParameterError(f"alpha must be in (0, 1), got {self.alpha}")
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise InvalidParameterError(f"mu must be > 0, got {self.mu}")
        if not (math.isfinite(self.tau) and self.tau > 0):
            raise InvalidParameterError(f"tau must be > 0, got {self.tau}")

    def _checked_weights(self) -> tuple[float, float, float]:
        """The blend weights as floats: three, finite, >= 0, summing to 1, and
        in tri mode with diffusion's > 0."""
        w = tuple(float(x) for x in self.weights)
        if len(w) != 3:
            raise InvalidParameterError(
                f"weights needs 3 values (diffusion, springs, heat), got {len(w)}"
            )
        if any((not math.isfinite(x)) or x < 0 for x in w):
            raise InvalidParameterError(f"weights must be finite and >= 0, got {w}")
        if abs(sum(w) - 1.0) > 1e-9:
            raise InvalidParameterError(f"weights must sum to 1, got {sum(w):g}")
        if self.mode == "tri" and w[0] == 0.0:
            raise InvalidParameterError(
                "the diffusion weight must be > 0: springs and heat alone keep the mass of "
                "each connected component fixed and have no unique equilibrium"
            )
        return w

    def _check_solver_bounds(self) -> None:
        """The outer tolerance and iteration cap, the Laplacian, the inner tolerances."""
        if not (math.isfinite(self.tol) and self.tol > 0):
            raise InvalidParameterError(f"tol must be > 0, got {self.tol}")
        if not (isinstance(self.max_iter, int) and 1 <= self.max_iter <= 2048):
            raise InvalidParameterError(f"max_iter must be in 1..2048, got {self.max_iter}")
        if self.laplacian not in LAPLACIANS:
            raise InvalidParameterError(
                f"laplacian must be one of {', '.join(LAPLACIANS)}, got {self.laplacian!r}"
            )
        if not (0 < self.cg_tol < 1) or not (0 < self.heat_tol < 1):
            raise InvalidParameterError("cg_tol and heat_tol must be in (0, 1)")
        if not (isinstance(self.start_tol, float | int) and 0 < self.start_tol <= 1):
            raise InvalidParameterError(f"start_tol must be in (0, 1], got {self.start_tol}")
        if not (isinstance(self.exact_share, float | int) and 0 < self.exact_share <= 1):
            raise InvalidParameterError(f"exact_share must be in (0, 1], got {self.exact_share}")

    def _checked_anderson(self) -> int:
        """The Anderson window, the mode's default where None."""
        anderson = self.anderson
        if anderson is None:
            anderson = TRI_ANDERSON if self.mode == "tri" else DIFFUSION_ANDERSON
        if not (isinstance(anderson, int) and 0 <= anderson <= 10):
            raise InvalidParameterError(f"anderson must be an integer in 0..10, got {anderson}")
        return anderson

    def _check_choices(self) -> None:
        """The string parameters name values this version implements."""
        if self.start not in STARTS:
            raise InvalidParameterError(
                f"start must be one of {', '.join(STARTS)}, got {self.start!r}"
            )
        if self.finish not in FINISHES:
            raise InvalidParameterError(
                f"finish must be one of {', '.join(FINISHES)}, got {self.finish!r}"
            )
        if self.heat_reuse not in HEAT_REUSE:
            raise InvalidParameterError(
                f"heat_reuse must be one of {', '.join(HEAT_REUSE)}, got {self.heat_reuse!r}"
            )
        if self.springs_method not in SPRINGS_METHODS:
            raise InvalidParameterError(
                f"springs_method must be one of {', '.join(SPRINGS_METHODS)}, "
                f"got {self.springs_method!r}"
            )
        if self.arithmetic not in ARITHMETICS:
            raise InvalidParameterError(
                f"arithmetic {self.arithmetic!r} is not implemented here "
                f"(this focusflow implements {', '.join(ARITHMETICS)})"
            )
        if type(self.thread_sums) is not bool:
            raise InvalidParameterError(
                f"thread_sums must be true or false, got {self.thread_sums!r}"
            )
        self._check_model()
        self._check_hebbian()
        if self.precision not in PRECISIONS:
            raise InvalidParameterError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if isinstance(self.prior, str) and self.prior not in PRIORS:
            raise InvalidParameterError(
                f"prior must be 'uniform', 'stake' or a vector, got {self.prior!r}"
            )

    def _check_model(self) -> None:
        """The model and its numbers (a temperature above 0, the local rule's
        steps and step size), and what a model other than the blend needs:
        the tri or diffusion energy, float64 and an exact arithmetic (a
        chain's focus must be the same bits everywhere, and the minimiser's
        and the rule's are; a library call that wants F with float64 sums
        uses ``energy.FreeEnergyModel``)."""
        if self.model not in MODELS:
            raise InvalidParameterError(
                f"model must be one of {', '.join(MODELS)}, got {self.model!r}"
            )
        t = self.temperature
        if not (isinstance(t, float | int) and not isinstance(t, bool) and math.isfinite(t)):
            raise InvalidParameterError(f"temperature must be a finite number, got {t!r}")
        if not t > 0:
            raise InvalidParameterError(f"temperature must be > 0, got {t!r}")
        steps = self.local_steps
        if not (isinstance(steps, int) and not isinstance(steps, bool) and 1 <= steps <= 64):
            raise InvalidParameterError(f"local_steps must be an integer in 1..64, got {steps!r}")
        eta = self.local_eta
        if not (
            isinstance(eta, float | int)
            and not isinstance(eta, bool)
            and math.isfinite(eta)
            and 0 < eta <= 1
        ):
            raise InvalidParameterError(f"local_eta must be in (0, 1], got {eta!r}")
        if self.model == "blend":
            return
        if self.mode == "cyberank":
            raise InvalidParameterError(f"the {self.model} model is defined for tri and diffusion")
        if not self.exact:
            raise InvalidParameterError(
                f"the {self.model} model needs an exact arithmetic (exact-v2 or exact-v3)"
            )
        if self.precision != "float64":
            raise InvalidParameterError(f"the {self.model} model computes in float64 only")

    def _check_hebbian(self) -> None:
        """The Hebbian rule's period (0..MAX_HEBBIAN_EVERY) and numbers
        (``HebbianParams.check``), and that a chain running it has an exact
        arithmetic (its factors enter every later block's focus)."""
        every = self.hebbian_every
        if not (type(every) is int and 0 <= every <= MAX_HEBBIAN_EVERY):
            raise InvalidParameterError(
                f"hebbian_every must be an integer in 0..{MAX_HEBBIAN_EVERY}, got {every!r}"
            )
        numbers = {
            "hebbian_eta": self.hebbian_eta,
            "hebbian_delta": self.hebbian_delta,
            "hebbian_cap": self.hebbian_cap,
            "hebbian_mass_cap": self.hebbian_mass_cap,
        }
        for name, value in numbers.items():
            if not isinstance(value, float | int) or isinstance(value, bool):
                raise InvalidParameterError(f"{name} must be a number, got {value!r}")
        self.hebbian().check()
        if every and not self.exact:
            raise InvalidParameterError(
                "the Hebbian rule needs an exact arithmetic (exact-v2 or exact-v3)"
            )

    def hebbian(self) -> HebbianParams:
        """The Hebbian rule's numbers as the rule takes them."""
        return HebbianParams(
            eta=float(self.hebbian_eta),
            delta=float(self.hebbian_delta),
            cap=float(self.hebbian_cap),
            mass_cap=float(self.hebbian_mass_cap),
        )


def make_params(params: FocusParams | None = None, **overrides: Any) -> FocusParams:
    """Defaults, then ``params``, then keyword overrides; validated."""
    base = params if params is not None else FocusParams()
    unknown = set(overrides) - set(FocusParams.__dataclass_fields__)
    if unknown:
        raise InvalidParameterError(f"unknown focus parameter(s): {', '.join(sorted(unknown))}")
    if "weights" in overrides and overrides["weights"] is not None:
        overrides["weights"] = tuple(overrides["weights"])
    return replace(base, **{k: v for k, v in overrides.items() if v is not None}).validate()
