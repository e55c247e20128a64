"""The hub's side of the semantic rollups' focus: checking, merging, committing.

A network of rollups splits the links by their source particle
(:mod:`focusflow.focus.buckets`); rollup ``b`` sends the hub *rank packets*
(:class:`~focusflow.focus.rollup_rank.BucketRank`), the hub checks and stores
the latest of each bucket, merges them into one global focus every round and
answers each bucket with an *inflow packet*. docs/rollups.md gives the
iteration and its proof; this module holds the hub's integer bookkeeping:

* Everything the hub stores is an integer (focus in fixed point, 10^15 = 1,
  link counts, IEEE-754 bit patterns of edge weights), so its state and the
  snapshot it commits are the same bits on every machine.
* Packets are **deltas**: an entry is sent when its value differs from what the
  same sender sent the same receiver last time. Ordered channels deliver every
  packet, so the receiver's table is the sender's. A value 0 is a flow of 0;
  a particle once named stays known (links are append-only, so particles never
  leave the union graph).
* In ``tri`` mode the hub keeps the union's aggregated weighted graph (one
  weight per distinct edge, forwarded by the edge's source bucket) and solves
  the tri-kernel on it with the consensus engine's exact arithmetic, warm
  started from its last snapshot: springs and heat are global operators whose
  exact distributed evaluation needs one exchange per matrix product.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import scipy.sparse as sp

from focusflow.core.encoding import encode
from focusflow.core.errors import FocusflowError
from focusflow.core.hashing import merkle_proof, merkle_root
from focusflow.core.snapshot_tree import snapshot_leaf, verify_snapshot_path
from focusflow.focus.buckets import particle_bucket
from focusflow.focus.params import EXACT_V2, FocusParams

#: Fixed-point scale of focus: q = round(phi * UNIT), a snapshot sums to UNIT.
UNIT: Final = 10**15
#: Packet format version (both directions).
VERSION: Final = 1
#: Most entries of one list in one packet (owned, outflow, inflow, neudeg,
#: edges, focus): a bucket with more changes sends them over several rounds.
MAX_ENTRIES: Final = 1 << 20
#: Most bytes of one encoded rank packet.
MAX_PACKET_BYTES: Final = 64 << 20
#: Longest particle CID in bytes (a CIDv1 with a 64-byte digest fits).
MAX_CID_BYTES: Final = 128
#: A neuron address.
NEURON_BYTES: Final = 20
#: Largest focus value or flow in fixed point, and largest link count.
MAX_VALUE: Final = (1 << 63) - 1
#: Rounding slack of the conservation bounds, in units of 10^-15, added to
#: one unit per entry (each value is rounded once, and the float sums behind
#: a flow carry relative errors far below 10^-12).
SLACK_UNITS: Final = 1000
#: Bit patterns of finite non-negative float64 weights lie below this.
_INF_BITS: Final = 0x7FF0000000000000
#: The keys of a rank packet.
RANK_KEYS: Final = frozenset(
    {"v", "bucket", "round", "mode", "n", "owned", "outflow", "dangling", "neudeg", "edges"}
)


class RankUnsupportedError(FocusflowError, ValueError):
    """A rank packet no honest rollup could send, or an inflow no honest hub
    could; the message names the bound. On a chain it fails the packet's
    receipt: its acknowledgement carries this code."""

    code = "rank_unsupported"


def weight_bits(w: float) -> int:
    """The IEEE-754 bit pattern of a float64 weight: sent as an integer, it
    crosses chains losslessly, so the hub's graph has the rollups' weights."""
    return int(struct.unpack("<Q", struct.pack("<d", w))[0])


def bits_weight(bits: int) -> float:
    """The float64 whose bit pattern is ``bits`` (:func:`weight_bits`'s inverse)."""
    return float(struct.unpack("<d", struct.pack("<Q", bits))[0])


def normalise(raw: Sequence[int]) -> list[int]:
    """Non-negative integers scaled to sum to UNIT exactly, in integers.

    Largest remainder: each value gets ``floor(r * UNIT / S)``, and the units
    left go one each to the largest remainders, ties to the lower index, so
    the result depends on nothing but the values. All zero gives uniform."""
    n = len(raw)
    if n == 0:
        return []
    total = sum(raw)
    if total <= 0:
        raw, total = [1] * n, n
    quot: list[int] = []
    rem: list[int] = []
    for r in raw:
        q, m = divmod(r * UNIT, total)
        quot.append(q)
        rem.append(m)
    left = UNIT - sum(quot)
    for i in sorted(range(n), key=lambda i: (-rem[i], i))[:left]:
        quot[i] += 1
    return quot


@dataclass(frozen=True)
class SnapshotProof:
    """A particle's place in a snapshot: index, value, audit path, tree size
    (RFC 6962 verification needs the size)."""

    index: int
    value: int
    path: list[bytes]
    size: int


@dataclass(frozen=True)
class Snapshot:
    """One round's global focus: particles sorted by CID bytes, fixed-point
    values summing to UNIT, and the buckets whose values were held stale."""

    round: int
    particles: list[bytes]
    focus: list[int]
    stale: frozenset[int] = field(default_factory=frozenset)

    def _leaves(self) -> list[bytes]:
        return [snapshot_leaf(c, v) for c, v in zip(self.particles, self.focus, strict=True)]

    def root(self) -> bytes:
        """RFC 6962 Merkle root over one leaf per particle, in CID order."""
        return merkle_root(self._leaves())

    def proof(self, cid: bytes) -> SnapshotProof:
        """The proof of ``cid``'s focus; KeyError if it is not a particle."""
        i = _bisect(self.particles, cid)
        if i < 0:
            raise KeyError(cid.hex())
        path = merkle_proof(self._leaves(), i)
        return SnapshotProof(i, self.focus[i], path, len(self.particles))

    def value(self, cid: bytes) -> int:
        """``cid``'s fixed-point focus (0 for an unknown particle)."""
        i = _bisect(self.particles, cid)
        return self.focus[i] if i >= 0 else 0


def verify_snapshot_proof(root: bytes, cid: bytes, value: int, proof: SnapshotProof) -> bool:
    """What a light client runs: does ``root`` commit ``cid`` with ``value``?"""
    if value != proof.value:
        return False
    return verify_snapshot_path(root, cid, value, proof.index, proof.size, proof.path)


def _bisect(keys: list[bytes], key: bytes) -> int:
    lo, hi = 0, len(keys)
    while lo < hi:
        mid = (lo + hi) // 2
        if keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < len(keys) and keys[lo] == key else -1


def hub_params(params: FocusParams) -> FocusParams:
    """The parameters of the hub's tri solve: the chain's, in an exact
    arithmetic (``exact-v2`` where the chain's is ``fast``), since the hub
    commits what it computes."""
    return params if params.exact else params.with_(arithmetic=EXACT_V2)


@dataclass
class _BucketState:
    """What the hub holds of one bucket: its latest tables (integers)."""

    owned: dict[bytes, int] = field(default_factory=dict)
    outflow: dict[bytes, int] = field(default_factory=dict)
    neudeg: dict[bytes, int] = field(default_factory=dict)
    edges: dict[tuple[bytes, bytes], int] = field(default_factory=dict)
    dangling: int = 0
    owned_sum: int = 0
    outflow_sum: int = 0
    last_round: int = -1
    # What the hub last sent this bucket (the inflow packets' deltas).
    sent_inflow: dict[bytes, int] = field(default_factory=dict)
    sent_neudeg: dict[bytes, int] = field(default_factory=dict)
    sent_focus: dict[bytes, int] = field(default_factory=dict)


class _Refuse:
    """Raises RankUnsupportedError naming the bucket and the failed bound."""

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket

    def __call__(self, what: str) -> RankUnsupportedError:
        return RankUnsupportedError(f"rank packet of bucket {self.bucket}: {what}")


def _int(x: object, lo: int, hi: int) -> bool:
    return type(x) is int and lo <= x <= hi


def _pairs(
    packet: Mapping[str, Any], key: str, fail: _Refuse, key_len: tuple[int, int]
) -> list[tuple[bytes, int]]:
    """A sorted list of ``[bytes, int]`` entries, checked and returned as tuples."""
    entries = packet[key]
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise fail(f"{key} must be a list of at most {MAX_ENTRIES} entries")
    out: list[tuple[bytes, int]] = []
    lo, hi = key_len
    for e in entries:
        if not (isinstance(e, list | tuple) and len(e) == 2):
            raise fail(f"{key} entries are [key, value] pairs")
        k, v = e
        if not (isinstance(k, bytes) and lo <= len(k) <= hi and _int(v, 0, MAX_VALUE)):
            raise fail(f"{key} entry out of range (key of {lo}-{hi} bytes, 0 <= value < 2^63)")
        if out and k <= out[-1][0]:
            raise fail(f"{key} entries must be sorted and distinct")
        out.append((k, v))
    return out


#: The keys of an inflow packet.
INFLOW_KEYS: Final = frozenset(
    {"v", "bucket", "round", "n", "dangling", "inflow", "neudeg", "focus"}
)


def check_inflow(doc: object, bucket: int, buckets: int, last_round: int) -> None:
    """Refuse (RankUnsupportedError) an inflow packet no honest hub could send to
    ``bucket``: the rollup checks it on arrival, so a bad one is refused in its
    acknowledgement and never reaches the rollup's solve at the block's end."""
    fail = _Refuse(bucket)
    if not isinstance(doc, Mapping) or set(doc) != INFLOW_KEYS:
        raise fail(f"an inflow packet has exactly the keys {sorted(INFLOW_KEYS)}")
    if doc["v"] != VERSION or doc["bucket"] != bucket:
        raise fail(f"inflow version must be {VERSION} and bucket {bucket}")
    if not _int(doc["round"], max(last_round, 0), MAX_VALUE):
        raise fail(f"inflow round must be at least {max(last_round, 0)}")
    if not _int(doc["n"], 0, MAX_VALUE) or not _int(doc["dangling"], 0, MAX_VALUE):
        raise fail("n and dangling must be integers in 0..2^63-1")
    for key in ("inflow", "focus"):
        for cid, _ in _pairs(doc, key, fail, (1, MAX_CID_BYTES)):
            if particle_bucket(cid, buckets) != bucket:
                raise fail(f"{key} names a particle of another bucket")
    _pairs(doc, "neudeg", fail, (NEURON_BYTES, NEURON_BYTES))


def _edges(packet: Mapping[str, Any], fail: _Refuse) -> list[tuple[bytes, bytes, int]]:
    """The ``[src, dst, weight bits]`` entries, sorted by (src, dst), no self-edges."""
    entries = packet["edges"]
    if not isinstance(entries, list) or len(entries) > MAX_ENTRIES:
        raise fail(f"edges must be a list of at most {MAX_ENTRIES} entries")
    out: list[tuple[bytes, bytes, int]] = []
    for e in entries:
        if not (isinstance(e, list | tuple) and len(e) == 3):
            raise fail("edges entries are [src, dst, weight bits]")
        s, d, w = e
        ok = isinstance(s, bytes) and isinstance(d, bytes) and _int(w, 0, _INF_BITS - 1)
        if not ok or not (1 <= len(s) <= MAX_CID_BYTES and 1 <= len(d) <= MAX_CID_BYTES):
            raise fail("edge entry out of range (CIDs of 1-128 bytes, finite weight >= 0)")
        if s == d:
            raise fail("an edge from a particle to itself")
        if out and (s, d) <= out[-1][:2]:
            raise fail("edges must be sorted by (src, dst) and distinct")
        out.append((s, d, w))
    return out


class HubMerge:
    """The hub's side: checks and stores rank packets, merges them into global
    snapshots and answers each bucket's inflow. Deterministic: its state is
    integers, and every snapshot follows from the packets applied in order."""

    def __init__(self, buckets: int, params: FocusParams) -> None:
        if not 1 <= buckets <= 4096:
            raise ValueError(f"buckets must be in 1..4096, got {buckets}")
        if params.mode not in ("diffusion", "tri"):
            raise ValueError(f"rollups rank in diffusion or tri mode, not {params.mode!r}")
        self.buckets = buckets
        self.params = params
        self.round = 0
        self._state = [_BucketState() for _ in range(buckets)]
        self._stale: set[int] = set()
        self._owner: dict[bytes, int] = {}
        # Per bucket: the other buckets' summed latest outflows into its
        # particles (kept as packets apply, in integers).
        self._in: list[dict[bytes, int]] = [{} for _ in range(buckets)]
        self._neudeg: dict[bytes, int] = {}
        self._n = 0
        self._dangling = 0
        self._sorted: list[bytes] = []
        self._graph_version = 0
        self._solved_version = -1
        self.snapshot = Snapshot(0, [], [], frozenset())
        #: Inner work of the last tri solve (outer iterations, heat terms ...).
        self.last_solve: dict[str, Any] = {}

    # --- particles -------------------------------------------------------------
    def owner(self, cid: bytes) -> int:
        """The bucket of ``cid`` (cached: each CID is hashed once)."""
        b = self._owner.get(cid)
        if b is None:
            b = particle_bucket(cid, self.buckets)
            self._owner[cid] = b
            self._sorted = []
        return b

    # --- check -----------------------------------------------------------------
    def check(self, bucket: int, packet: Mapping[str, Any]) -> None:
        """Refuse (RankUnsupportedError) a packet that no honest rollup could send."""
        fail = _Refuse(bucket)
        if not 0 <= bucket < self.buckets:
            raise fail(f"bucket out of range 0..{self.buckets - 1}")
        st = self._state[bucket]
        self._check_header(bucket, packet, st, fail)
        owned = _pairs(packet, "owned", fail, (1, MAX_CID_BYTES))
        outflow = _pairs(packet, "outflow", fail, (1, MAX_CID_BYTES))
        _pairs(packet, "neudeg", fail, (NEURON_BYTES, NEURON_BYTES))
        edges = _edges(packet, fail)
        if self.params.mode == "tri" and (owned or outflow or packet["dangling"]):
            raise fail("owned, outflow and dangling are empty in tri mode")
        if self.params.mode == "diffusion" and edges:
            raise fail("edges are sent in tri mode only")
        # particle_bucket, not owner(): a refused packet's particles must not
        # become known to the hub (they would join the next snapshot).
        n = self.buckets
        for k, _ in owned:
            if particle_bucket(k, n) != bucket:
                raise fail("an owned particle that hashes to another bucket")
        for k, _ in outflow:
            if particle_bucket(k, n) == bucket:
                raise fail("an outflow to the bucket's own particle")
        for s, _, _ in edges:
            if particle_bucket(s, n) != bucket:
                raise fail("an edge whose source hashes to another bucket")
        self._check_mass(packet, st, owned, outflow, fail)

    def _check_header(
        self, bucket: int, packet: Mapping[str, Any], st: _BucketState, fail: _Refuse
    ) -> None:
        if not isinstance(packet, Mapping) or set(packet) != RANK_KEYS:
            raise fail(f"a packet has exactly the keys {sorted(RANK_KEYS)}")
        try:
            size = len(encode(dict(packet)))
        except (TypeError, ValueError) as exc:
            raise fail(f"not encodable: {exc}") from None
        if size > MAX_PACKET_BYTES:
            raise fail(f"oversized: {size} bytes > {MAX_PACKET_BYTES}")
        if packet["v"] != VERSION or packet["bucket"] != bucket:
            raise fail(f"version must be {VERSION} and bucket {bucket}")
        if packet["mode"] != self.params.mode:
            raise fail(f"mode must be {self.params.mode!r}")
        if not _int(packet["round"], max(st.last_round, 0), self.round):
            raise fail(f"wrong round: must lie in {max(st.last_round, 0)}..{self.round}")
        if not _int(packet["n"], 0, MAX_VALUE) or not _int(packet["dangling"], 0, MAX_VALUE):
            raise fail("n and dangling must be integers in 0..2^63-1")

    def _check_mass(
        self,
        packet: Mapping[str, Any],
        st: _BucketState,
        owned: list[tuple[bytes, int]],
        outflow: list[tuple[bytes, int]],
        fail: _Refuse,
    ) -> None:
        """Conservation after the delta: the weighted mass of the iterates is at
        most 1 (docs/rollups.md), so a bucket holds at most 1/(1-alpha); its
        outflow is at most alpha times what it holds, its dangling mass at most
        what it holds."""
        owned_sum = st.owned_sum + sum(v - st.owned.get(k, 0) for k, v in owned)
        out_sum = st.outflow_sum + sum(v - st.outflow.get(k, 0) for k, v in outflow)
        n_owned = len(st.owned) + sum(1 for k, _ in owned if k not in st.owned)
        slack = n_owned + len(st.outflow) + len(outflow) + SLACK_UNITS
        alpha = self.params.alpha
        cap = int(UNIT / (1.0 - alpha)) + slack
        if owned_sum > cap:
            raise fail(f"mass not conserved: sum of owned {owned_sum} > {cap}")
        if out_sum > alpha * owned_sum + slack:
            raise fail(f"mass not conserved: sum of outflow {out_sum} > alpha * owned + {slack}")
        if packet["dangling"] > owned_sum + slack:
            raise fail(f"dangling mass {packet['dangling']} > owned {owned_sum}")
        if self.params.mode == "diffusion" and packet["n"] != n_owned:
            raise fail(f"n = {packet['n']} but the bucket owns {n_owned} particles")

    # --- apply -----------------------------------------------------------------
    def apply(self, bucket: int, packet: Mapping[str, Any]) -> None:
        """Store a checked packet as the bucket's latest (deltas onto its tables)."""
        st = self._state[bucket]
        for k, v in packet["owned"]:
            self.owner(k)
            st.owned_sum += v - st.owned.get(k, 0)
            st.owned[k] = v
        for k, v in packet["outflow"]:
            old = st.outflow.get(k, 0)
            st.outflow_sum += v - old
            st.outflow[k] = v
            into = self._in[self.owner(k)]
            into[k] = into.get(k, 0) + v - old
        for k, v in packet["neudeg"]:
            self._neudeg[k] = self._neudeg.get(k, 0) + v - st.neudeg.get(k, 0)
            st.neudeg[k] = v
        for s, d, w in packet["edges"]:
            st.edges[(s, d)] = w
            self.owner(s)
            self.owner(d)
        if packet["edges"]:
            self._graph_version += 1
        st.dangling = packet["dangling"]
        st.last_round = packet["round"]
        self._stale.discard(bucket)

    def stale(self, buckets: Iterable[int]) -> None:
        """Mark buckets stale: their last values are held and flagged."""
        for b in buckets:
            if not 0 <= b < self.buckets:
                raise ValueError(f"bucket {b} out of range")
            self._stale.add(b)

    # --- merge -----------------------------------------------------------------
    def particles(self) -> list[bytes]:
        """Every particle the hub knows, sorted by CID bytes."""
        if len(self._sorted) != len(self._owner):
            self._sorted = sorted(self._owner)
        return self._sorted

    def merge(self) -> Snapshot:
        """The next global snapshot from every bucket's latest packet (held
        buckets keep theirs), normalised to sum UNIT; bumps the round."""
        cids = self.particles()
        raw = self._tri_raw(cids) if self.params.mode == "tri" else self._diffusion_raw(cids)
        self._n = len(cids)
        self._dangling = sum(st.dangling for st in self._state)
        self.round += 1
        self.snapshot = Snapshot(self.round, list(cids), normalise(raw), frozenset(self._stale))
        return self.snapshot

    def _diffusion_raw(self, cids: list[bytes]) -> list[int]:
        """Each particle's value as its owner last reported it (0 if not yet)."""
        owner, state = self._owner, self._state
        return [state[owner[c]].owned.get(c, 0) for c in cids]

    def _tri_raw(self, cids: list[bytes]) -> list[int]:
        """The tri-kernel on the union's aggregated graph, in the exact
        arithmetic, warm-started from the last snapshot; solved again only
        when an edge changed."""
        if self._solved_version == self._graph_version and cids == self.snapshot.particles:
            return list(self.snapshot.focus)
        from focusflow.focus.solver import compute

        n = len(cids)
        if n == 0:
            return []
        index = {c: i for i, c in enumerate(cids)}
        src: list[int] = []
        dst: list[int] = []
        wts: list[float] = []
        for st in self._state:
            for (s, d), w in sorted(st.edges.items()):
                src.append(index[s])
                dst.append(index[d])
                wts.append(bits_weight(w))
        adj = sp.coo_matrix((np.array(wts), (np.array(src), np.array(dst))), shape=(n, n))
        last = dict(zip(self.snapshot.particles, self.snapshot.focus, strict=True))
        x0 = np.array([last.get(c, UNIT // n) / UNIT for c in cids], dtype=np.float64)
        res = compute(adj, hub_params(self.params), backend="numba", x0=x0)
        self.last_solve = {"iterations": res.diagnostics.iterations, **res.diagnostics.inner}
        self._solved_version = self._graph_version
        return [int(v) for v in np.rint(res.focus * UNIT).astype(np.int64)]

    # --- inflow ----------------------------------------------------------------
    def inflow(self, bucket: int) -> dict[str, Any]:
        """The inflow packet for ``bucket`` (deltas since the last one sent it)."""
        st = self._state[bucket]
        flows = self._in[bucket]
        neudeg = {k: self._neudeg.get(k, 0) for k in st.neudeg}
        focus: dict[bytes, int] = {}
        if self.params.mode == "tri":
            snap = self.snapshot
            focus = {
                c: v
                for c, v in zip(snap.particles, snap.focus, strict=True)
                if self.owner(c) == bucket
            }
        return {
            "v": VERSION,
            "bucket": bucket,
            "round": self.round,
            "n": self._n,
            "dangling": self._dangling,
            "inflow": delta(flows, st.sent_inflow),
            "neudeg": delta(neudeg, st.sent_neudeg),
            "focus": delta(focus, st.sent_focus),
        }

    # --- persistence -------------------------------------------------------------
    def export_state(self) -> dict[str, Any]:
        """Everything the hub's next checks, merges and inflows depend on, as
        CBOR-able integers and bytes (:meth:`restore_state` takes it back): a
        chain stores it so a restarted node continues with the same bits."""
        snap = self.snapshot
        return {
            "round": self.round,
            "n": self._n,
            "dangling": self._dangling,
            "stale": sorted(self._stale),
            "graph_version": self._graph_version,
            "solved_version": self._solved_version,
            "snapshot": [snap.round, list(snap.particles), list(snap.focus), sorted(snap.stale)],
            "buckets": [_export_bucket(st) for st in self._state],
        }

    def restore_state(self, doc: Mapping[str, Any]) -> None:
        """Take back :meth:`export_state`'s output (of a hub of as many buckets)."""
        if len(doc["buckets"]) != self.buckets:
            raise ValueError(f"a state of {len(doc['buckets'])} buckets, not {self.buckets}")
        self.round = int(doc["round"])
        self._n = int(doc["n"])
        self._dangling = int(doc["dangling"])
        self._stale = set(doc["stale"])
        self._graph_version = int(doc["graph_version"])
        self._solved_version = int(doc["solved_version"])
        rnd, particles, focus, stale = doc["snapshot"]
        self.snapshot = Snapshot(rnd, list(particles), list(focus), frozenset(stale))
        self._state = [_restore_bucket(raw) for raw in doc["buckets"]]
        self._owner, self._sorted = {}, []
        self._in = [{} for _ in range(self.buckets)]
        self._neudeg = {}
        for st in self._state:
            for k in st.owned:
                self.owner(k)
            for a, b in st.edges:
                self.owner(a)
                self.owner(b)
            for k, v in st.outflow.items():
                into = self._in[self.owner(k)]
                into[k] = into.get(k, 0) + v
            for k, v in st.neudeg.items():
                self._neudeg[k] = self._neudeg.get(k, 0) + v


def sorted_pairs(table: Mapping[bytes, int]) -> list[list[Any]]:
    return [[k, table[k]] for k in sorted(table)]


def _export_bucket(st: _BucketState) -> list[Any]:
    return [
        sorted_pairs(st.owned), sorted_pairs(st.outflow), sorted_pairs(st.neudeg),
        [[a, b, st.edges[(a, b)]] for a, b in sorted(st.edges)],
        st.dangling, st.last_round,
        sorted_pairs(st.sent_inflow), sorted_pairs(st.sent_neudeg), sorted_pairs(st.sent_focus),
    ]  # fmt: skip


def _restore_bucket(raw: Sequence[Any]) -> _BucketState:
    owned, outflow, neudeg, edges, dangling, last_round, s_in, s_neu, s_focus = raw
    st = _BucketState(
        owned={bytes(k): int(v) for k, v in owned},
        outflow={bytes(k): int(v) for k, v in outflow},
        neudeg={bytes(k): int(v) for k, v in neudeg},
        edges={(bytes(a), bytes(b)): int(w) for a, b, w in edges},
        dangling=int(dangling),
        last_round=int(last_round),
        sent_inflow={bytes(k): int(v) for k, v in s_in},
        sent_neudeg={bytes(k): int(v) for k, v in s_neu},
        sent_focus={bytes(k): int(v) for k, v in s_focus},
    )
    st.owned_sum = sum(st.owned.values())
    st.outflow_sum = sum(st.outflow.values())
    return st


def delta(now: Mapping[Any, int], sent: dict[Any, int]) -> list[list[Any]]:
    """Entries of ``now`` that differ from ``sent`` (or were never sent),
    sorted by key, as ``[key, value]`` (a tuple key spread: ``[src, dst,
    value]`` for an edge); ``sent`` takes their values. Capped at MAX_ENTRIES:
    the rest go with the next packet."""
    out: list[list[Any]] = []
    for k in sorted(now):
        v = now[k]
        if sent.get(k) != v:
            if len(out) == MAX_ENTRIES:
                break
            sent[k] = v
            out.append([*k, v] if isinstance(k, tuple) else [k, v])
    return out
