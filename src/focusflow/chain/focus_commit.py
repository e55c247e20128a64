"""Focus as chain state: the graph a block's deltas grow, and the committed vector.

The chain keeps one :class:`~focusflow.graph.Cybergraph` (particles keyed by
binary CID, neurons by 20-byte address, stakes in base units) and a
:class:`~focusflow.focus.FocusEngine` over it. After a block's transactions
run, its deltas go into the graph and the engine updates focus incrementally.

The committed form is fixed point: ``q[i] = round(phi[i] * 10**15)`` as uint64
(go-cyber's scale) in particle order (the order in which particles first
appeared on chain). The focus root is the RFC 6962 Merkle root of the vector
cut into chunks of FOCUS_CHUNK values, each chunk the little-endian bytes of
its uint64s: one hash per thousand particles keeps committing a million-particle
vector at a few milliseconds, and a proof of one particle's focus is its chunk
(8 KiB) plus log2(chunks) hashes. The particle order itself is committed in the
state under ``/graph/particles/<chunk>``, so a light client can tell which
index a CID has.

Determinism: the engine runs with the chain's focus parameters, in the
arithmetic its genesis names (``focus.arithmetic``), on the numba CPU backend
or, in an exact arithmetic where the node asks for it
(``FOCUSFLOW_CHAIN_BACKEND``, :func:`engine_backend`), on the cuda backend,
whose exact operator computes the numba one's bits on a GPU. In an
exact arithmetic (``exact-v2``, what a genesis written now names) two nodes that
apply the same blocks in the same order perform the same IEEE-754 operations in
the same order on any CPU, thread count or library build, and commit
byte-identical vectors (tests/chain/test_golden_roots.py). A genesis that names
no arithmetic gets ``fast``, the arithmetic its blocks were committed with:
its roots can differ between CPUs (fused multiply-adds, vector widths), so
such a chain is only safe among identical machines; the node says so in its
log. A restarted node replays the stored blocks' deltas through the same
incremental path to reach the same engine state (``ChainLifecycle.open``, chain/lifecycle.py).

Convergence: a block whose focus solve stops at ``max_iter`` without meeting
``tol`` still commits the focus it reached (in an exact arithmetic every node
reaches the same vector after the same iterations, so refusing the block would
only let one graph halt the chain); it is never silent: the node logs a
warning, counts it (``FocusState.unconverged_blocks``), and in an exact
arithmetic the committed focus record says ``converged: false`` with the
iterations, so light clients and explorers see it (docs/chain.md).
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import time
from typing import Any

import numpy as np

from focusflow.chain.focus_hebbian import HebbianState
from focusflow.chain.focus_spec import (
    CHAIN_FOCUS_DEFAULTS as CHAIN_FOCUS_DEFAULTS,
)
from focusflow.chain.focus_spec import (
    FOCUS_CHUNK,
    FOCUS_KEY,
    PARTICLE_CHUNK,
    SCALE,
    chain_focus_params,
    particle_chunk_key,
)
from focusflow.chain.focus_spec import (
    NEW_CHAIN_FOCUS as NEW_CHAIN_FOCUS,
)
from focusflow.chain.focus_spec import (
    PARTICLES_PREFIX as PARTICLES_PREFIX,
)
from focusflow.chain.focus_view import FocusView, build_view
from focusflow.chain.module import Deltas
from focusflow.core.encoding import encode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import merkle_root
from focusflow.focus.engine import FocusEngine
from focusflow.focus.params import FocusParams
from focusflow.graph.cybergraph import Cybergraph

#: The backend every node can run and reproduce bit for bit, and the form in
#: which a focus state is checkpointed and sent to peers (snapshot.py).
CHAIN_BACKEND = "numba"
#: Where a node runs an exact chain's focus: ``numba`` (the default), ``cuda``
#: (the same bits on a GPU; bench/cuda_exact.py says from what size it pays)
#: or ``auto`` (cuda once the graph holds ``AUTO_CUDA_LINKS`` links where CuPy
#: sees a GPU, else numba).
CHAIN_BACKEND_ENV = "FOCUSFLOW_CHAIN_BACKEND"
#: Links from which ``auto`` moves an exact chain's focus to the GPU. On an
#: H200 host (16-core Intel Xeon), blocks of 10,000 links in exact-v3: R-MAT
#: graphs of 95,304 links 0.041 s numba against 0.103 s cuda, of 291,796 links
#: 0.075 s both, of 1,078,077 links 0.163 s against 0.118 s (bench/RESULTS.md,
#: cuda_exact.py); a node with fewer cores gains from the GPU sooner.
AUTO_CUDA_LINKS = 500_000
CHAIN_BACKENDS = ("numba", "cuda", "auto")
log = logging.getLogger("focusflow.chain.focus")


class FocusValueError(FloatingPointError):
    """A focus vector that cannot be committed (a value not finite or too large)."""

    code = "focus_not_finite"


def engine_backend(params: FocusParams, links: int = 0) -> str:
    """The backend this node runs a chain's focus on, over a graph of ``links``.

    An exact arithmetic runs where ``FOCUSFLOW_CHAIN_BACKEND`` says (``auto``:
    on the GPU from ``AUTO_CUDA_LINKS`` links, where there is one; every
    exact version has its GPU twin, the same bits, so the engine may move
    between blocks); ``fast`` always on numba, since its bits differ between
    backends and a node that moved would commit roots its peers do not.
    InvalidParameterError names an unknown choice; ``cuda`` without a usable
    GPU is the backend's own BackendUnavailableError when the engine is made.
    The free-energy model and the local rule run on numba wherever the node
    asks (their kernels have no GPU twin), and so does a chain running the
    Hebbian rule (its factor updates re-weigh links through the host
    snapshot, a path no GPU golden root covers)."""
    choice = os.environ.get(CHAIN_BACKEND_ENV, CHAIN_BACKEND)
    if choice not in CHAIN_BACKENDS:
        raise InvalidParameterError(
            f"{CHAIN_BACKEND_ENV}={choice!r}: choose one of {', '.join(CHAIN_BACKENDS)}"
        )
    if (
        not params.exact
        or choice == CHAIN_BACKEND
        or params.model != "blend"
        or params.hebbian_every
    ):
        return CHAIN_BACKEND
    if choice == "auto":
        return "cuda" if links >= AUTO_CUDA_LINKS and _gpu_present() else CHAIN_BACKEND
    return choice


@functools.cache
def _gpu_present() -> bool:
    """Whether CuPy sees a GPU (asked once per process: ``auto`` asks every block)."""
    from focusflow.focus.backends.cuda import cuda_available

    return cuda_available()[0]


def engine_identity(params: FocusParams) -> str:
    """What decides a chain's focus bits besides its parameters: the algorithm
    and the arithmetic version, e.g. ``tri/exact-v2``; the free-energy model
    at its temperature, e.g. ``free-energy(tri, T=0.5)/exact-v3``; the
    Hebbian rule's numbers after a ``+``."""
    if params.model == "free-energy":
        name = f"free-energy({params.mode}, T={params.temperature!r})/{params.arithmetic}"
    elif params.model == "local-rule":
        name = (
            f"local-rule({params.mode}, T={params.temperature!r}, "
            f"{params.local_steps} x {params.local_eta!r})/{params.arithmetic}"
        )
    else:
        name = f"{params.mode}/{params.arithmetic}"
    if params.hebbian_every:
        h = params.hebbian()
        name += (
            f"+hebbian(every {params.hebbian_every}, eta={h.eta!r}, delta={h.delta!r}, "
            f"cap={h.cap!r}, mass_cap={h.mass_cap!r})"
        )
    return name


def chain_graph() -> Cybergraph:
    """An empty graph as a chain keeps it: particles keyed by binary CID (not
    validated again: transactions carry them), neurons by address, no stake
    until a block sets one."""
    return Cybergraph(require_cids=False, default_stake=0.0)


def quantise(phi: np.ndarray) -> np.ndarray:
    """``round(phi * SCALE)`` as uint64.

    FocusValueError for a value that is not finite or would not fit (their cast
    is undefined: it wraps on one CPU and saturates on another). A negative
    value (solver noise around 0: focus is a distribution) commits as 0, where
    its cast would otherwise wrap to nearly 2^64 on x86 and give 0 elsewhere.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = np.rint(np.asarray(phi, dtype=np.float64) * SCALE)
    bad = ~(np.isfinite(scaled) & (scaled < 2.0**63))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FocusValueError(
            f"focus cannot be committed: {int(bad.sum())} value(s) not finite or too large, "
            f"the first at particle {i}: {float(np.asarray(phi, dtype=np.float64)[i])!r}"
        )
    return np.maximum(scaled, 0.0).astype(np.uint64)


def focus_root(q: np.ndarray) -> bytes:
    """RFC 6962 root over FOCUS_CHUNK-value chunks of the quantised vector."""
    raw = np.ascontiguousarray(q, dtype="<u8").tobytes()
    return _chunked_root(raw)


def factor_root(factors: np.ndarray) -> bytes:
    """The Hebbian factors' root: as :func:`focus_root`, over the
    little-endian bits of each float64 (focus_hebbian.py)."""
    return _chunked_root(np.ascontiguousarray(factors, dtype="<f8").tobytes())


def _chunked_root(raw: bytes) -> bytes:
    step = FOCUS_CHUNK * 8
    return merkle_root([raw[i : i + step] for i in range(0, len(raw), step)])


class FocusState:
    """The chain's graph and engine, advanced one block of deltas at a time."""

    def __init__(self, focus: dict[str, Any] | None = None) -> None:
        self.params: FocusParams = chain_focus_params(focus)
        if not self.params.exact:
            log.warning(
                "focus arithmetic 'fast': this chain's focus roots can differ between "
                "CPUs and library builds; run it only among identical machines "
                "(a genesis naming focus.arithmetic 'exact-v2' commits the same bits "
                "everywhere)",
                extra={"fields": {"engine": engine_identity(self.params)}},
            )
        self.graph = chain_graph()
        self.engine = FocusEngine(self.graph, self.params, backend=engine_backend(self.params))
        #: The Hebbian rule's state where the parameters run it (else None).
        self.hebbian = HebbianState(self.params, self.graph) if self.params.hebbian_every else None
        self.q = np.zeros(0, dtype=np.uint64)
        self.root = focus_root(self.q)
        self.iterations = 0
        self.seconds = 0.0
        #: Whether the last block's solve met its tolerance, and how many
        #: blocks' did not (see the module docstring, *Convergence*).
        self.converged = True
        self.unconverged_blocks = 0
        #: Seconds spent in :meth:`apply` so far: what a replay of these blocks
        #: would cost again (the chain checkpoints by it).
        self.work_s = 0.0

    @classmethod
    def restored(
        cls,
        params: FocusParams,
        graph: Cybergraph,
        engine: FocusEngine,
        *,
        iterations: int,
        converged: bool,
        unconverged_blocks: int,
    ) -> FocusState:
        """A state of ``graph`` and ``engine`` as a focus checkpoint or a peer's
        snapshot rebuilt them (chain/focus_state_format.py), its committed
        vector quantised from the engine's last result (as the block that
        left it committed it). The timings start again from 0."""
        state = cls.__new__(cls)
        state.params = params
        state.graph = graph
        state.engine = engine
        state.hebbian = HebbianState(params, graph) if params.hebbian_every else None
        result = engine.result
        if graph.n_links and result is not None:
            state.q = quantise(result.focus)
        else:
            state.q = np.zeros(graph.n_particles, dtype=np.uint64)
        state.root = focus_root(state.q)
        state.iterations = iterations
        state.seconds = 0.0
        state.converged = converged
        state.unconverged_blocks = unconverged_blocks
        state.work_s = 0.0
        return state

    def host_form(self) -> FocusState:
        """This state as a checkpoint or a peer's snapshot holds it: the
        engine in its numba form (a GPU engine's exact operator mirrors the
        numba one, matrices and vectors), which every node can load and check.
        Self where it runs on numba; else a copy for one immediate use (it
        shares the graph and the operator's host matrices with this state)."""
        if self.engine.backend.name == CHAIN_BACKEND:
            return self
        twin = copy.copy(self)
        twin.engine = self.engine.moved(CHAIN_BACKEND)
        return twin

    def on_node_backend(self) -> FocusState:
        """This state with its engine where this node runs it
        (:func:`engine_backend`): a loaded checkpoint taken to the GPU, or
        under ``auto`` a graph grown past ``AUTO_CUDA_LINKS``."""
        want = engine_backend(self.params, self.graph.n_links)
        if self.engine.backend.name != want:
            self.engine = self.engine.moved(want)
        return self

    def moves(self, deltas: Deltas, height: int | None) -> bool:
        """Whether block ``height`` with ``deltas`` changes this state: it
        has deltas, or it is a height at which the Hebbian rule moves the
        factors of a graph with links."""
        return bool(deltas) or self._hebbian_due(height)

    def apply(self, deltas: Deltas, height: int | None = None) -> dict[bytes, bytes]:
        """Feed block ``height``'s deltas; returns the state writes that
        commit the new focus (none for a block that moves nothing: see
        :meth:`moves`). ``height`` matters only to the Hebbian rule; a caller
        replaying blocks passes each block's."""
        if not self.moves(deltas, height):
            return {}
        return self._timed(deltas, height)

    def apply_upgrade(
        self, params: FocusParams, deltas: Deltas, height: int | None = None
    ) -> dict[bytes, bytes]:
        """Feed the deltas of a block whose height is a focus upgrade's
        (focus_upgrade.py), running ``params`` from it on.

        The engine is replaced by one running them, which solves cold over the
        graph after the deltas: every node commits the same root whatever its
        old engine held, and a block without deltas commits the new focus too.
        An upgrade that turns the Hebbian rule on starts every factor at 1;
        one that turns it off gives every link its staked weight again; one
        that changes its numbers keeps the factors.
        """
        self.params = params
        if not params.hebbian_every:
            self.hebbian = None
            self.graph.clear_factors()
        else:
            self.hebbian = HebbianState(params, self.graph)
        self.engine = FocusEngine(
            self.graph, params, backend=engine_backend(params, self.graph.n_links)
        )
        return self._timed(deltas, height)

    def _hebbian_due(self, height: int | None) -> bool:
        return (
            self.hebbian is not None
            and self.hebbian.due(height)
            and self.graph.n_links > 0
            and len(self.q) == self.graph.n_particles
        )

    def _timed(self, deltas: Deltas, height: int | None) -> dict[bytes, bytes]:
        t0 = time.perf_counter()
        try:
            return self._apply(deltas, height)
        finally:
            self.work_s += time.perf_counter() - t0

    def _apply(self, deltas: Deltas, height: int | None) -> dict[bytes, bytes]:
        n_before = self.graph.n_particles
        g = self.graph
        if self.hebbian is not None and self._hebbian_due(height):
            # From the focus the previous block committed, before this
            # block's links: they join with factor 1.
            self._hebbian_step()
        if deltas.stakes:
            addrs = list(deltas.stakes)
            ids = g.add_neurons(addrs)
            g.set_stakes(ids, np.array([deltas.stakes[a] for a in addrs], dtype=np.float64))
        if deltas.links:
            g.add_links(*deltas.flat_links())
            if self.hebbian is not None:
                self.hebbian.note_links(g)
        writes = self._particle_writes(n_before)
        self.converged = True
        if g.n_links:
            result = self.engine.apply()
            # The engine has read the log's batches; their links are in the
            # graph's columns. Dropped here, block by block, so that what a
            # state holds never depends on when a checkpoint was taken.
            g.log.trim(self.engine.seen_log)
            # ``auto``: the graph may have grown past the GPU's size; the
            # engine moves between blocks, with the same bits.
            self.on_node_backend()
            self.q = quantise(result.focus)
            self.iterations = result.iterations
            self.seconds = result.diagnostics.timings.get("total", 0.0)
            self.converged = bool(result.diagnostics.converged)
        else:
            self.q = np.zeros(g.n_particles, dtype=np.uint64)
        self.root = focus_root(self.q)
        record = {"root": self.root, "particles": len(self.q), "scale": SCALE, "chunk": FOCUS_CHUNK}
        if not self.converged:
            self._not_converged(record)
        if self.hebbian is not None:
            record["hebbian"] = self.hebbian_root()
        writes[FOCUS_KEY] = encode(record)
        return writes

    def hebbian_root(self) -> bytes | None:
        """The root of the link factors the last solve weighed (None
        without the Hebbian rule): what the focus record commits."""
        factors = self.graph.factors
        return None if self.hebbian is None or factors is None else factor_root(factors)

    def _hebbian_step(self) -> None:
        assert self.hebbian is not None
        step = self.hebbian.update(self.graph, self.q)
        log.debug(
            "hebbian factors moved",
            extra={
                "fields": {
                    "boost_mass": step.boost_mass,
                    "mass_limit": step.mass_limit,
                    "scale": step.scale,
                    "at_cap": step.at_cap,
                }
            },
        )

    def _not_converged(self, record: dict[str, Any]) -> None:
        """A solve that stopped at ``max_iter``: counted, logged, and (exact
        arithmetic) recorded in the committed focus record."""
        self.unconverged_blocks += 1
        residual = self.engine.result.diagnostics.residual if self.engine.result else None
        log.warning(
            "focus did not converge: committed after the iteration cap",
            extra={
                "fields": {
                    "iterations": self.iterations,
                    "max_iter": self.params.max_iter,
                    "residual": residual,
                    "tol": self.params.tol,
                }
            },
        )
        if self.params.exact:
            # The fast arithmetic's record keeps the format its blocks were
            # committed with, so that their state roots still replay.
            record["converged"] = False
            record["iterations"] = self.iterations

    def _particle_writes(self, n_before: int) -> dict[bytes, bytes]:
        n = self.graph.n_particles
        if n == n_before:
            return {}
        keys = self.graph.particles.keys()
        writes = {}
        for chunk in range(n_before // PARTICLE_CHUNK, (n - 1) // PARTICLE_CHUNK + 1):
            lo = chunk * PARTICLE_CHUNK
            writes[particle_chunk_key(chunk)] = encode(keys[lo : min(n, lo + PARTICLE_CHUNK)])
        return writes

    def view(self, height: int, previous: FocusView | None = None) -> FocusView:
        """The readers' picture of focus after block ``height`` (see focus_view)."""
        return build_view(
            height, SCALE, self.q, self.graph, self.iterations, self.seconds, previous
        )

    def focus_of(self, cid: bytes) -> tuple[int, int] | None:
        """(quantised focus, particle index) of a CID, None if it is not in the graph."""
        i = self.graph.particles.get(cid)
        if i < 0 or i >= len(self.q):
            return None
        return int(self.q[i]), i


def warm_up(focus: dict[str, Any] | None = None) -> float:
    """Compile (or load from numba's cache) every kernel a block's focus update runs.

    A node calls this before serving: otherwise the first block with links pays
    several seconds of JIT compilation while users wait for it. Returns seconds.
    """
    t0 = time.perf_counter()
    state = FocusState(focus)
    a, b, c, n1, n2 = (bytes([i]) * 4 for i in range(1, 6))
    first = Deltas(links=[(n1, [[a, b], [b, c], [c, a]], None)], stakes={n1: 3})
    second = Deltas(links=[(n2, [[a, c]], None)], stakes={n2: 1})
    state.apply(first)
    state.apply(second)
    state.view(2)
    return time.perf_counter() - t0
