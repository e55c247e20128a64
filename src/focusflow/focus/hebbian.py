"""Hebbian link weights: links whose two ends hold focus together grow stronger.

The design notes ask for "local hebbian-like updates + global consensus
refinement". Here the local update is a per-link *factor* ``h_e`` that
multiplies the link's staked weight ``ŝ_ν`` (docs/focus.md §1), so the weight
the tri-kernel sees is ``w_e = ŝ_ν · h_e``. After each block, from the focus
that block committed:

    r_p   = n · φ_p                                  relative focus (1 when uniform)
    a_e   = r_src · r_dst                            co-activation of link e
    b_e   = η · a_e  (0 for an ineligible link)      the boost
    b     ← b · min(1, β Σ ŝ / Σ ŝ b)                 at most β of the staked mass a block
    h_e   ← clip(1 + (1 − δ)(h_e − 1) + b_e, 1, c)

so without co-activation a factor decays geometrically back to its stake
(``h → 1``), and under steady focus it settles at ``1 + b/δ``, at most ``c``.

"Consensus refinement" is that every validator computes the same factors:
the rule reads only the committed focus (the chain's quantised vector divided
by its scale: exact in float64, as every value is below 2^53), the links and
their stakes, and does elementwise IEEE-754 operations (each correctly
rounded, so the same bits on every CPU) in link order; its only two sums are
``math.fsum`` (correctly rounded whatever the order or the machine). What a
chain would commit is the factor vector's bits (float64, link order) under a
root of its own beside the focus root; the weights it changes enter the next
block's focus.

Farming is bounded three ways:

- **the cap**: ``1 ≤ h_e ≤ c``, so a link's transition probability moves by at
  most a factor c either way (its row's other links may grow too);
- **the mass cap**: the boosts of one block add at most ``β`` of the total
  staked weight (before clipping; after it, less);
- **own particles**: a link gets no boost when both its ends were brought
  into the graph by the link's own neuron (the neuron of the first link that
  touched the particle, in link order) or when it is a self-link: a neuron
  that links a clique of particles only it made, and pumps focus into them,
  gets its stake's weight there and nothing more.

What the cap buys an attacker, in diffusion: on a row where its links hold
share s of the weight, factors in [1, c] move the row's transition
distribution by at most ``t = s(1 − s)(c − 1) / (1 + s(c − 1))`` in total
variation; the fixed point of ``x ↦ αPᵀx + (α·dangling(x) + 1 − α)u`` then
moves by at most ``α/(1 − α) · Σ_p φ_p · 2t_p`` in L1 (the perturbed map
contracts by α), and any set of particles by half that. In tri the composite
map contracts L1 distances by ``κ = λ_d α + λ_s + λ_h``, which bounds the move
a posteriori by ``‖F(φ) − φ‖₁ / (1 − κ)``. Both are checked against dense
solves in tests/focus/test_hebbian.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from focusflow.core.errors import InvalidParameterError


@dataclass(frozen=True)
class HebbianParams:
    """The rule's four numbers (a genesis would fix them; docs/focus.md).

    ``eta`` boost per block per unit co-activation; ``delta`` share of a
    factor's excess over 1 that decays each block; ``cap`` the largest factor
    (``c >= 1``); ``mass_cap`` the largest boost a block may add, as a share
    of the total staked weight (``β``).
    """

    eta: float = 0.01
    delta: float = 0.1
    cap: float = 2.0
    mass_cap: float = 0.01

    def check(self) -> None:
        if not (math.isfinite(self.eta) and self.eta >= 0.0):
            raise InvalidParameterError(f"hebbian eta must be finite and >= 0, got {self.eta}")
        if not 0.0 < self.delta <= 1.0:
            raise InvalidParameterError(f"hebbian delta must be in (0, 1], got {self.delta}")
        if not (math.isfinite(self.cap) and self.cap >= 1.0):
            raise InvalidParameterError(f"hebbian cap must be finite and >= 1, got {self.cap}")
        if not (math.isfinite(self.mass_cap) and self.mass_cap >= 0.0):
            raise InvalidParameterError(
                f"hebbian mass_cap must be finite and >= 0, got {self.mass_cap}"
            )


def particle_owners(n: int, src: np.ndarray, dst: np.ndarray, neuron: np.ndarray) -> np.ndarray:
    """The neuron that brought each particle into the graph: that of the first
    link (in link order) touching it; -1 for a particle no link touches.

    Link order is the chain's order, so every validator finds the same owner.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    neuron = np.asarray(neuron, dtype=np.int64)
    m = len(src)
    first = np.full(n, m, dtype=np.int64)
    order = np.arange(m, dtype=np.int64)
    np.minimum.at(first, src, order)
    np.minimum.at(first, dst, order)
    owner = np.full(n, -1, dtype=np.int64)
    touched = first < m
    owner[touched] = neuron[first[touched]]
    return owner


def eligible_links(
    src: np.ndarray, dst: np.ndarray, neuron: np.ndarray, owner: np.ndarray
) -> np.ndarray:
    """Links that may be boosted: not self-links, and not a neuron's link
    between two particles it brought in itself (an anonymous link, neuron
    -1, has no owner to farm for and is eligible)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    neuron = np.asarray(neuron, dtype=np.int64)
    own = (neuron >= 0) & (owner[src] == neuron) & (owner[dst] == neuron)
    return np.asarray((src != dst) & ~own)


@dataclass
class HebbianStep:
    """What one block's update did: the boost mass it asked for and added
    (both in staked weight, before clipping), the scale the mass cap applied
    (1 when under it) and how many factors sit at the cap."""

    boost_mass: float
    mass_limit: float
    scale: float
    at_cap: int


def hebbian_step(
    factors: np.ndarray,
    base: np.ndarray,
    phi: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    eligible: np.ndarray,
    params: HebbianParams,
) -> tuple[np.ndarray, HebbianStep]:
    """The factors after one block with committed focus ``phi`` (particle order).

    ``base`` is each link's staked weight ``ŝ_ν``; ``factors`` the current
    ``h`` (all 1 at genesis). Returns new arrays; the inputs are not changed.
    """
    params.check()
    h = np.asarray(factors, dtype=np.float64)
    base = np.asarray(base, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    if not (h.shape == base.shape == eligible.shape == np.shape(src) == np.shape(dst)):
        raise InvalidParameterError("factors, base, eligible, src and dst must be one per link")
    n = float(len(phi))
    rel = n * phi
    boost = params.eta * (rel[src] * rel[dst])
    boost[~eligible] = 0.0
    asked = math.fsum((base * boost).tolist())
    limit = params.mass_cap * math.fsum(base.tolist())
    scale = 1.0
    if asked > limit:
        scale = limit / asked
        boost = boost * scale
    new = 1.0 + (1.0 - params.delta) * (h - 1.0) + boost
    np.clip(new, 1.0, params.cap, out=new)
    return new, HebbianStep(asked, limit, scale, int(np.count_nonzero(new >= params.cap)))


#: The focus of a weighted graph: ``(link_weights, warm_start) -> phi``.
FocusOf = Callable[[np.ndarray, np.ndarray | None], np.ndarray]


def run_blocks(
    base: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    eligible: np.ndarray,
    params: HebbianParams,
    blocks: int,
    focus_of: FocusOf,
    *,
    observe: Callable[[int, np.ndarray, np.ndarray, HebbianStep], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``blocks`` blocks of a static graph: each commits the focus of the
    current weights ``base · h``, then updates ``h`` from it. Returns the
    last factors and the last focus; ``observe(block, h, phi, step)`` hears
    each block."""
    h = np.ones(len(base), dtype=np.float64)
    phi: np.ndarray | None = None
    for b in range(blocks):
        phi = focus_of(base * h, phi)
        h, step = hebbian_step(h, base, phi, src, dst, eligible, params)
        if observe is not None:
            observe(b, h, phi, step)
    if phi is None:
        phi = focus_of(base * h, None)
    return h, phi
