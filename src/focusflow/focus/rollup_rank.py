"""Focus over a network of semantic rollups: one rollup's side, and the reference.

Rollup ``b`` holds exactly the links whose source particle hashes to ``b``
(:func:`focusflow.focus.buckets.particle_bucket`), so it knows the whole row
of the transition matrix P of every particle it owns. The hub
(:class:`HubMerge`, in :mod:`focusflow.focus.rollup_merge`) merges the
rollups' ranks every round into one global focus and answers each rollup with
the mass flowing into its particles from the others.

``diffusion`` runs fully distributed, as block Jacobi by bucket with exact
local solves: with the hub's last inflow ``i_b``, particle count ``n`` and
dangling mass ``d``, rollup ``b`` solves

    phi_b = alpha P_bb^T phi_b + i_b + (alpha d + 1 - alpha) / n

for its particles and returns them with its outflows ``alpha P_bc^T phi_b``
to every other bucket ``c``. A fixed point of the exchange is the union
graph's focus, and the exchange converges at least as fast as alpha^k
(docs/rollups.md gives both proofs and measured rates).

``tri`` couples buckets through in-edges as well (springs and heat act on
W + W^T), so the rollups forward their aggregated edge weights and the hub
solves the tri-kernel on the union's weighted graph (rollup_merge).

Determinism: a rank packet depends on the multiset of the bucket's links (not
the order in which they were added), the stakes, and the inflow packets
received in order; every float step is an elementwise IEEE-754 operation or a
sequential ``np.bincount`` over arrays in a canonical order (links sorted by
source, target, neuron), every stop rule a maximum (exact in any order), and
what crosses chains is integers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np

from focusflow.focus.buckets import particle_bucket
from focusflow.focus.params import FocusParams
from focusflow.focus.rollup_merge import (
    UNIT,
    VERSION,
    HubMerge,
    RankUnsupportedError,
    Snapshot,
    SnapshotProof,
    check_inflow,
    sorted_pairs,
    verify_snapshot_proof,
    weight_bits,
)
from focusflow.focus.rollup_merge import delta as _delta

__all__ = [
    "UNIT",
    "BucketRank",
    "HubMerge",
    "RankUnsupportedError",
    "Snapshot",
    "SnapshotProof",
    "check_inflow",
    "l1_error",
    "union_focus",
    "verify_snapshot_proof",
]

#: The local solve stops when no owned value moved more than this (times the
#: number of owned particles: an L1 bound) in one sweep: well below the
#: fixed point's resolution of 10^-15 per value.
LOCAL_TOL: Final = 1e-14
#: Most sweeps of one local solve (its rate is at most alpha: from a cold
#: start 0.85^250 < 1e-17).
LOCAL_MAX_ITER: Final = 1000


class _Structure:
    """A bucket's links in canonical order, with what one solve needs.

    Built when links, stakes or link counts change: the particle indices (owned
    sorted by CID, then foreign targets sorted by CID), the distinct edges and
    their weights, each owned particle's out-weight."""

    def __init__(
        self,
        bucket: int,
        buckets: int,
        links: list[tuple[bytes, bytes, bytes]],
        extra_owned: Iterable[bytes],
        per_link: Mapping[bytes, float],
    ) -> None:
        links = sorted(links)
        dsts = {d for _, d, _ in links}
        own_dst = {d for d in dsts if particle_bucket(d, buckets) == bucket}
        owned = sorted({s for s, _, _ in links} | own_dst | set(extra_owned))
        foreign = sorted(dsts - own_dst)
        self.owned = owned
        self.foreign = foreign
        index = {c: i for i, c in enumerate(owned)}
        index.update({c: len(owned) + i for i, c in enumerate(foreign)})
        # Distinct edges in (src, dst) order; each link's per-link stake is
        # summed into its edge in (src, dst, neuron) order.
        edge_of: dict[tuple[bytes, bytes], int] = {}
        link_edge = np.fromiter(
            (edge_of.setdefault((s, d), len(edge_of)) for s, d, _ in links),
            dtype=np.int64,
            count=len(links),
        )
        terms = np.fromiter((per_link[v] for _, _, v in links), dtype=np.float64, count=len(links))
        self.edge_keys = list(edge_of)
        self.weight = np.bincount(link_edge, weights=terms, minlength=len(edge_of))
        self.src = np.array([index[s] for s, _ in edge_of], dtype=np.int64)
        self.dst = np.array([index[d] for _, d in edge_of], dtype=np.int64)
        n_owned = len(owned)
        self.out_weight = np.bincount(self.src, weights=self.weight, minlength=n_owned)
        self.local = self.dst < n_owned


class BucketRank:
    """One rollup's side of the rollups' focus; deterministic.

    Call :meth:`add_links` and :meth:`set_stakes` as blocks apply, and
    :meth:`solve` with every inflow packet the hub sends, in order (or
    :meth:`receive` for one that arrives between two solves): packets are
    deltas, so a skipped one would leave stale entries."""

    def __init__(self, bucket: int, buckets: int, params: FocusParams) -> None:
        if not 0 <= bucket < buckets:
            raise ValueError(f"bucket {bucket} out of range 0..{buckets - 1}")
        if params.mode not in ("diffusion", "tri"):
            raise ValueError(f"rollups rank in diffusion or tri mode, not {params.mode!r}")
        self.bucket = bucket
        self.buckets = buckets
        self.params = params
        self._links: list[tuple[bytes, bytes, bytes]] = []
        self._local_deg: dict[bytes, int] = {}
        self._stakes: dict[bytes, int] = {}
        self._global_deg: dict[bytes, int] = {}
        self._inflow: dict[bytes, int] = {}
        #: The hub's committed focus of this bucket's particles (tri mode).
        self.focus: dict[bytes, int] = {}
        self._round = 0
        self._n = 0
        self._dangling = 0
        self._structure: _Structure | None = None
        self._owned: dict[bytes, int] = {}
        self._sent_owned: dict[bytes, int] = {}
        self._sent_outflow: dict[bytes, int] = {}
        self._sent_neudeg: dict[bytes, int] = {}
        self._sent_edges: dict[tuple[bytes, bytes], int] = {}
        #: Sweeps of the last local solve.
        self.last_sweeps = 0

    # --- inputs -----------------------------------------------------------------
    def add_links(
        self, src: Sequence[bytes], dst: Sequence[bytes], neuron: Sequence[bytes]
    ) -> None:
        """Append this bucket's links (the caller checked their bucket). Self-links
        are dropped and not counted in the neuron's link count, as the graph does."""
        if not len(src) == len(dst) == len(neuron):
            raise ValueError("src, dst and neuron must have the same length")
        for s, d, v in zip(src, dst, neuron, strict=True):
            if s == d:
                continue
            self._links.append((bytes(s), bytes(d), bytes(v)))
            self._local_deg[bytes(v)] = self._local_deg.get(bytes(v), 0) + 1
        self._structure = None

    def set_stakes(self, stakes: Mapping[bytes, int]) -> None:
        """Set neurons' bonded stakes (base units); a neuron never given one weighs 0."""
        for k, v in stakes.items():
            if not (isinstance(v, int) and v >= 0):
                raise ValueError(f"stake of {k.hex()} must be an integer >= 0")
            self._stakes[bytes(k)] = v
        self._structure = None

    @property
    def round(self) -> int:
        """The round of the last inflow taken (0 before the first)."""
        return self._round

    def receive(self, inflow: Mapping[str, Any]) -> None:
        """Take one inflow packet's deltas (solve() does this for its argument)."""
        if inflow["v"] != VERSION or inflow["bucket"] != self.bucket:
            raise ValueError(f"inflow for bucket {inflow['bucket']}, not {self.bucket}")
        self._round = int(inflow["round"])
        self._n = int(inflow["n"])
        self._dangling = int(inflow["dangling"])
        grew = False
        for k, v in inflow["inflow"]:
            grew |= k not in self._inflow
            self._inflow[k] = int(v)
        for k, v in inflow["neudeg"]:
            self._global_deg[k] = int(v)
        for k, v in inflow["focus"]:
            self.focus[k] = int(v)
        if grew or inflow["neudeg"]:
            self._structure = None

    # --- persistence ----------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """What the next solves depend on besides the links and stakes (which the
        chain holds): the hub's numbers, the warm start and what was sent, as
        CBOR-able integers and bytes for :meth:`restore_state`."""
        return {
            "round": self._round,
            "n": self._n,
            "dangling": self._dangling,
            "global_deg": sorted_pairs(self._global_deg),
            "inflow": sorted_pairs(self._inflow),
            "focus": sorted_pairs(self.focus),
            "owned": sorted_pairs(self._owned),
            "sent_owned": sorted_pairs(self._sent_owned),
            "sent_outflow": sorted_pairs(self._sent_outflow),
            "sent_neudeg": sorted_pairs(self._sent_neudeg),
            "sent_edges": [[a, b, self._sent_edges[(a, b)]] for a, b in sorted(self._sent_edges)],
        }

    def restore_state(self, doc: Mapping[str, Any]) -> None:
        """Take back :meth:`export_state`'s output; the links and stakes are the
        caller's to add (before or after)."""
        self._round = int(doc["round"])
        self._n = int(doc["n"])
        self._dangling = int(doc["dangling"])
        self._global_deg = {bytes(k): int(v) for k, v in doc["global_deg"]}
        self._inflow = {bytes(k): int(v) for k, v in doc["inflow"]}
        self.focus = {bytes(k): int(v) for k, v in doc["focus"]}
        self._owned = {bytes(k): int(v) for k, v in doc["owned"]}
        self._sent_owned = {bytes(k): int(v) for k, v in doc["sent_owned"]}
        self._sent_outflow = {bytes(k): int(v) for k, v in doc["sent_outflow"]}
        self._sent_neudeg = {bytes(k): int(v) for k, v in doc["sent_neudeg"]}
        self._sent_edges = {(bytes(a), bytes(b)): int(w) for a, b, w in doc["sent_edges"]}
        self._structure = None

    # --- solve --------------------------------------------------------------------
    def _per_link(self) -> dict[bytes, float]:
        """Each neuron's per-link stake stake / neudeg, with the hub's global
        link count once known (ARCHITECTURE §3.1 counts all of a neuron's links)."""
        out: dict[bytes, float] = {}
        for v, local in self._local_deg.items():
            deg = max(self._global_deg.get(v, 0), local)
            out[v] = self._stakes.get(v, 0) / deg
        return out

    def _built(self) -> _Structure:
        if self._structure is None:
            self._structure = _Structure(
                self.bucket, self.buckets, self._links, self._inflow, self._per_link()
            )
        return self._structure

    def solve(self, inflow: Mapping[str, Any] | None) -> dict[str, Any]:
        """Take the hub's last inflow (None before the first) and return the
        rank packet to send: the deltas since this rollup's previous packet."""
        if inflow is not None:
            self.receive(inflow)
        st = self._built()
        owned: dict[bytes, int] = {}
        outflow: dict[bytes, int] = {}
        dangling = 0
        edges: dict[tuple[bytes, bytes], int] = {}
        if self.params.mode == "diffusion":
            owned, outflow, dangling = self._diffuse(st)
        else:
            edges = {k: weight_bits(float(w)) for k, w in zip(st.edge_keys, st.weight, strict=True)}
        neudeg = dict(self._local_deg)
        packet = {
            "v": VERSION,
            "bucket": self.bucket,
            "round": self._round,
            "mode": self.params.mode,
            "n": len(st.owned) if self.params.mode == "diffusion" else 0,
            "owned": _delta(owned, self._sent_owned),
            "outflow": _delta(outflow, self._sent_outflow),
            "dangling": dangling,
            "neudeg": _delta(neudeg, self._sent_neudeg),
            "edges": _delta(edges, self._sent_edges),
        }
        return packet

    def _diffuse(self, st: _Structure) -> tuple[dict[bytes, int], dict[bytes, int], int]:
        """The exact local solve, then the owned values, outflows and dangling
        mass in fixed point."""
        n_owned = len(st.owned)
        alpha = self.params.alpha
        n = self._n if self._n > 0 else max(1, self.buckets * n_owned)
        c0 = (alpha * (self._dangling / UNIT) + (1.0 - alpha)) / n
        inflow = np.array([self._inflow.get(c, 0) for c in st.owned], dtype=np.float64) / UNIT
        rhs = inflow + c0
        out_w = st.out_weight
        safe = np.where(out_w > 0, out_w, 1.0)
        coef = np.where(out_w[st.src] > 0, alpha * (st.weight / safe[st.src]), 0.0)
        x = np.array([self._owned.get(c, -1) for c in st.owned], dtype=np.float64)
        x = np.where(x < 0, rhs, x / UNIT)
        x = self._sweeps(x, rhs, coef, st)
        cross = ~st.local
        flow = np.bincount(
            st.dst[cross] - n_owned,
            weights=coef[cross] * x[st.src[cross]],
            minlength=len(st.foreign),
        )
        q_owned = np.rint(x * UNIT).astype(np.int64)
        q_flow = np.rint(flow * UNIT).astype(np.int64)
        owned = dict(zip(st.owned, q_owned.tolist(), strict=True))
        self._owned = owned
        outflow = dict(zip(st.foreign, q_flow.tolist(), strict=True))
        dangling = int(q_owned[out_w <= 0].sum())
        return owned, outflow, dangling

    def _sweeps(
        self, x: np.ndarray, rhs: np.ndarray, coef: np.ndarray, st: _Structure
    ) -> np.ndarray:
        """x = alpha P_bb^T x + rhs by Jacobi sweeps (a contraction of rate at
        most alpha in L1), each a sequential bincount in canonical edge order."""
        loc = st.local
        src, dst, c = st.src[loc], st.dst[loc], coef[loc]
        n_owned = len(x)
        bound = LOCAL_TOL / max(n_owned, 1)
        self.last_sweeps = 0
        for k in range(LOCAL_MAX_ITER):
            new = rhs + np.bincount(dst, weights=c * x[src], minlength=n_owned)
            moved = float(np.max(np.abs(new - x))) if n_owned else 0.0
            x = new
            self.last_sweeps = k + 1
            if moved <= bound:
                break
        return x


def union_focus(
    links: Iterable[tuple[bytes, bytes, bytes]],
    stakes: Mapping[bytes, int],
    params: FocusParams,
) -> dict[bytes, float]:
    """One process's focus of the union graph, by the engine itself: the
    reference the rollups' exchange must reach. Solved to L1 1e-11 so that its
    own error does not count; neurons without a stake weigh 0."""
    from focusflow.focus.solver import compute
    from focusflow.graph.cybergraph import Cybergraph

    g = Cybergraph(require_cids=False, default_stake=0.0)
    names = sorted(stakes)
    if names:
        g.add_neurons(names, [float(stakes[k]) for k in names])
    src, dst, neu = [], [], []
    for s, d, v in links:
        src.append(s)
        dst.append(d)
        neu.append(v)
    g.add_links(src, dst, neu)
    res = compute(g, params.with_(tol=1e-11), backend="numba")
    keys = res.keys or []
    return {
        k if isinstance(k, bytes) else k.encode(): float(v)
        for k, v in zip(keys, res.focus, strict=True)
    }


def l1_error(snapshot: Snapshot, reference: Mapping[bytes, float]) -> float:
    """L1 distance between a snapshot (read as phi = q / 10^15) and a
    reference focus; particles missing on either side count as 0 there."""
    mine = dict(zip(snapshot.particles, snapshot.focus, strict=True))
    keys = set(mine) | set(reference)
    return math.fsum(abs(mine.get(k, 0) / UNIT - reference.get(k, 0.0)) for k in keys)
