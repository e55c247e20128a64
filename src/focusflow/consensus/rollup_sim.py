"""A deterministic, seeded discrete-event simulation of semantic rollups and their hubs.

The design splits the link graph into R buckets, one rollup chain per bucket, each
computing its own incremental rank. Relayers carry each rollup block's header and
its Δ-rank packet to a hub, which verifies the packet on chain (light client plus
Merkle membership proof) and merges the latest Δ-rank of every rollup into a
snapshot every 1–3 s. Past a few hundred rollups one hub cannot verify every
packet, so regional hubs aggregate their rollups and three global hubs reconcile
the regional aggregates. Nothing of this runs yet at 10³ chains; this module
answers, before it is built, what latency and what hub load the hierarchy implies
for stated parameters, and which parameters meet the design's targets (≤ 0.5 s
local finality, ≤ 3 s global rank sync, 2.1·10⁸ links/s).

It is sans-io and in the style of :mod:`focusflow.consensus.sim`: one
``random.Random(seed)`` draws every delay, events are ordered by (time, sequence),
so a seed replays the same run exactly. Only what sets latency and hub load is
modelled; rank values, hashes and signatures are not computed, their costs are.

The model (every number is a field of :class:`Params`):

- **Rollups.** Rollup r cuts a block every ``block_interval`` (uniform jitter
  ``±block_jitter``, a relative fraction), pipelined: the links that arrived during
  the window are in the block, which commits ``rollup_commit`` (a BFT round) after
  the cut; heights commit in order. A block carries ``links_per_s · utilisation ·
  interval`` links. A link's *local finality* is its commit time minus its arrival,
  with arrival uniform in the window (one link sampled per block).
- **Delays.** Every network or commit delay is a :class:`Delay`: a fixed floor
  plus a lognormal part with a stated median and shape. Channels are ordered
  (IBC ordered channels): a message never overtakes an earlier one on the same
  channel. A relayer adds ``relayer`` seconds (query, build and submit).
- **Hub verification.** Each hub verifies each packet it receives before using it:
  ``signatures · sig_verify_s`` for the header's commit certificate plus
  ``ceil(log2(state_keys)) · hash_s`` for the membership proof, plus, if
  ``delta_entries_per_link`` > 0, one hash per Δ-rank entry of the packet (rollup
  packets only). Packets queue first-in first-out on ``hub_cores`` cores; the
  *load* of a hub is the verification work offered per second (core-seconds per
  second), and a hub whose load exceeds its cores falls behind without bound.
  Merging verified Δ-ranks is assumed to cost nothing beside verification.
- **Regional hubs** (``topology="hierarchy"``). Rollups ``[g·region_size,
  (g+1)·region_size)`` form region g, whose hub merges every ``merge_interval``
  (each hub at its own random phase) the latest verified height of each of its
  rollups, commits that aggregate (``hub_commit``), and relays it over the WAN to
  each of the ``global_hubs`` global hubs.
- **Global hubs.** They share epochs every ``global_interval``. At an epoch each
  live global hub takes the latest aggregate it has verified of each region (its
  *cut*) and commits it (``global_commit``). The epoch's leader (rotating; a down
  leader costs ``view_change_timeout`` per skipped hub) waits for the cuts of
  ``quorum`` hubs counting its own, proposes their element-wise minimum (the
  aggregates every member holds verified, so each recomputes the same merged
  root), and the snapshot is *global* when ``quorum`` hubs have signed it: the
  leader's proposal reaches the others and ``quorum - 1`` acknowledgements return
  (two WAN delays). ``quorum=2`` is the 2-of-3 rule; ``quorum=3`` needs all three.
- **Return trip.** The global snapshot goes to each regional hub over the WAN and
  from there to each rollup (``regional_link`` plus a relayer), which checks the
  quorum's certificates (``quorum · hub_header_signatures`` signatures).
- **Flat topology** (``topology="flat"``). One hub for the world: every rollup
  relays over the WAN to it, it verifies every packet, merges every
  ``merge_interval``, and its commit (``global_commit``) is the global snapshot.
- **Faults** (:class:`Faults`). Halted rollups stop cutting blocks at ``halt_at``;
  hubs keep merging their last (stale) height. Down global hubs receive and send
  nothing. A partitioned regional hub neither receives nor sends during its
  partition; what crosses it is delivered when it heals.

Measured per block committed inside the measurement window ``[warmup, duration -
drain]``: local finality; *sync to hub*, from the block's commit to the first
global snapshot that includes it becoming global; *sync delivered*, to that
snapshot's arrival back at the block's rollup. A block no snapshot covered by
``duration`` counts as infinitely late, so an overloaded or stalled hierarchy shows
as ``inf`` percentiles, not as missing samples. The simulation is bounded by
``duration`` (simulated seconds) and ``max_events``.

Checked as it runs (``violations``): a snapshot never covers a height its rollup
had not committed, a global hub never verifies an aggregate before the regional
hub committed it, and a snapshot is formed only from a quorum of live hubs.
"""

from __future__ import annotations

import heapq
import math
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from focusflow.core.errors import FocusflowError, InvalidParameterError

#: The design's targets.
TARGET_LINKS_PER_S = 2.1e8
TARGET_LOCAL_FINALITY_S = 0.5
TARGET_GLOBAL_SYNC_S = 3.0

_BLOCK, _MERGE, _EPOCH, _FINAL = 0, 1, 2, 3


class SimulationLimitError(FocusflowError):
    """A run took more events than its ``max_events`` bound."""

    code = "simulation_limit"


@dataclass(frozen=True)
class Delay:
    """A delay: ``floor`` seconds plus a lognormal part of median ``median`` and
    shape ``sigma`` (``sigma=0`` makes it the constant ``floor + median``).

    A floor plus a heavy right tail is how commit rounds and network paths look
    when measured: a fixed minimum (propagation, three message delays) and a tail
    from queueing and retransmission."""

    floor: float
    median: float
    sigma: float = 0.5

    def draw(self, rng: random.Random) -> float:
        if self.median <= 0.0:
            return self.floor
        if self.sigma == 0.0:
            return self.floor + self.median
        return self.floor + self.median * math.exp(self.sigma * rng.gauss(0.0, 1.0))


@dataclass(frozen=True)
class Params:
    """The model's parameters; the defaults are the measured 2-core profile."""

    rollups: int = 1000
    topology: Literal["hierarchy", "flat"] = "hierarchy"
    region_size: int = 32
    global_hubs: int = 3
    quorum: int = 2
    # Rollups. Calibrated so that the simulated local finality (p50 ≈ 0.37 s,
    # p99 ≈ 0.75 s) matches four validators on loopback committing ~7,000 links/s
    # on the 2-vCPU VM (p50 0.38–0.42 s, p99 0.72–0.99 s).
    block_interval: float = 0.3
    block_jitter: float = 0.2
    rollup_commit: Delay = Delay(0.10, 0.12)
    links_per_s: float = 7000.0
    utilisation: float = 1.0
    # Network: a region is one metro area; the WAN spans continents.
    relayer: float = 0.005
    regional_link: Delay = Delay(0.002, 0.010)
    wan_link: Delay = Delay(0.020, 0.050)
    # Hubs.
    merge_interval: float = 1.0
    global_interval: float = 1.0
    hub_commit: Delay = Delay(0.10, 0.12)
    global_commit: Delay = Delay(0.20, 0.10)
    hub_cores: int = 2
    view_change_timeout: float = 1.0
    # Verification costs: one Ed25519 verify measured 152 µs and one proof level
    # 0.6 µs (a 20-level inclusion proof in 12 µs) on the 2-vCPU VM.
    sig_verify_s: float = 152e-6
    hash_s: float = 0.6e-6
    header_signatures: int = 3
    hub_header_signatures: int = 3
    state_keys: int = 2**30
    delta_entries_per_link: float = 0.0
    # Bounds and the measurement window.
    duration: float = 60.0
    warmup: float = 3.0
    drain: float = 10.0
    max_events: int = 5_000_000

    def check(self) -> None:
        """Refuse parameters outside the model's domain."""
        if self.topology not in ("hierarchy", "flat"):
            raise InvalidParameterError(f"unknown topology {self.topology!r}")
        for name in ("rollups", "region_size", "global_hubs", "quorum", "hub_cores"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"{name} must be >= 1")
        if self.quorum > self.global_hubs:
            raise InvalidParameterError("quorum must not exceed global_hubs")
        for name in ("block_interval", "merge_interval", "global_interval", "duration"):
            if getattr(self, name) <= 0:
                raise InvalidParameterError(f"{name} must be > 0")
        if not 0 <= self.block_jitter < 1 or not 0 < self.utilisation <= 1:
            raise InvalidParameterError("block_jitter must be in [0, 1), utilisation in (0, 1]")
        if self.warmup + self.drain >= self.duration:
            raise InvalidParameterError("warmup + drain must be shorter than duration")

    @property
    def proof_hashes(self) -> int:
        """Hashes of one membership proof: the depth of a tree over the state."""
        return max(1, math.ceil(math.log2(self.state_keys)))

    @property
    def regions(self) -> int:
        if self.topology == "flat":
            return 1
        return -(-self.rollups // self.region_size)

    @property
    def aggregate_verify_s(self) -> float:
        """A global hub's cost to verify one regional aggregate."""
        return self.hub_header_signatures * self.sig_verify_s + self.proof_hashes * self.hash_s

    @property
    def snapshot_verify_s(self) -> float:
        """A rollup's cost to verify the global snapshot's quorum certificates."""
        signatures = self.hub_header_signatures * (
            self.quorum if self.topology == "hierarchy" else 1
        )
        return signatures * self.sig_verify_s + self.proof_hashes * self.hash_s

    def packet_verify_s(self, links: float) -> float:
        """A first-level hub's cost to verify one rollup block's packet of ``links`` links."""
        return (
            self.header_signatures * self.sig_verify_s
            + (self.proof_hashes + self.delta_entries_per_link * links) * self.hash_s
        )


#: The defaults (the measured 2-core rollup, 7,000 links/s) under another name.
VM_PROFILE = Params()
#: An assumed GPU rollup: 2.1·10⁸ / 10³ links/s each, datacenter validators whose
#: BFT round is shorter (not measured here: the design's sub-second GPU path).
GPU_PROFILE = Params(
    links_per_s=210_000.0,
    block_interval=0.2,
    rollup_commit=Delay(0.05, 0.06),
)


@dataclass(frozen=True)
class Faults:
    """Faults injected into a run.

    ``halted_fraction`` of the rollups (chosen by the seed) stop at ``halt_at``;
    ``global_down`` global hubs are down for the whole run; ``partitions`` are
    ``(region, start, end)``: that regional hub is cut off from everyone during
    ``[start, end)``."""

    halted_fraction: float = 0.0
    halt_at: float = 0.0
    global_down: frozenset[int] = frozenset()
    partitions: tuple[tuple[int, float, float], ...] = ()


@dataclass(frozen=True)
class Percentiles:
    """Nearest-rank percentiles of a sample, in seconds (``inf`` for never)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @staticmethod
    def of(values: Iterable[float]) -> Percentiles:
        v = sorted(values)
        if not v:
            nan = math.nan
            return Percentiles(0, nan, nan, nan, nan)

        def rank(q: float) -> float:
            return v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]

        return Percentiles(len(v), rank(0.50), rank(0.95), rank(0.99), v[-1])


@dataclass(frozen=True)
class Report:
    """What a run measured; equal for equal (params, faults, seed), ``wall_s`` aside.

    Latencies are per block of the measurement window, in seconds. ``hub_*`` are
    the busiest first-level hub's (regional, or the flat hub): packets verified
    per second, verification load (core-seconds per second) and backlog at the
    end; ``global_load`` the busiest live global hub's load. ``links_per_s`` is
    links committed per second after the warm-up; ``snapshots`` the global
    snapshots formed, ``failed_epochs`` those epochs without a live quorum."""

    local_finality: Percentiles
    sync_to_hub: Percentiles
    sync_delivered: Percentiles
    uncovered_blocks: int
    links_per_s: float
    snapshots: int
    failed_epochs: int
    hub_packets_per_s: float
    hub_load: float
    hub_backlog: int  # packets arrived at the busiest hub and still queued or in service
    global_load: float
    violations: tuple[str, ...]
    events: int
    wall_s: float = field(compare=False)

    def meets(self) -> dict[str, bool]:
        """The design's targets: latencies judged at the 99th percentile (sync as
        delivered back to the rollup); throughput within 0.5 %, the sampling noise
        of counting whole blocks in a finite window."""
        return {
            "local_finality": self.local_finality.p99 <= TARGET_LOCAL_FINALITY_S,
            "global_sync": self.sync_delivered.p99 <= TARGET_GLOBAL_SYNC_S,
            "throughput": self.links_per_s >= 0.995 * TARGET_LINKS_PER_S,
        }


class _Hub:
    """A hub's verification queue: FIFO over ``cores`` cores, packets processed
    lazily in arrival order (exactly what an event per arrival would give, since a
    FIFO server's output depends only on the sorted arrivals)."""

    __slots__ = ("arrivals", "busy_s", "done", "free", "offered", "packets")

    def __init__(self, cores: int) -> None:
        self.free = [0.0] * cores
        self.arrivals: list[tuple[float, int, int, int, float]] = []
        self.done: list[tuple[float, int, int, int]] = []
        self.busy_s = 0.0
        self.offered = 0.0  # verification work of packets arrived by the end
        self.packets = 0

    def advance(self, now: float, seq: int) -> int:
        """Start every packet arrived by ``now``; returns the next sequence number."""
        while self.arrivals and self.arrivals[0][0] <= now:
            arrival, _, source, height, cost = heapq.heappop(self.arrivals)
            start = max(arrival, heapq.heappop(self.free))
            heapq.heappush(self.free, start + cost)
            self.busy_s += cost
            self.offered += cost
            self.packets += 1
            seq += 1
            heapq.heappush(self.done, (start + cost, seq, source, height))
        return seq


class RollupSimulation:
    """R rollups, their regional hubs and the global hubs; see the module docstring."""

    def __init__(
        self, params: Params = VM_PROFILE, *, seed: int = 0, faults: Faults = Faults()
    ) -> None:
        params.check()
        self.p = params
        self.faults = faults
        self.rng = random.Random(seed)
        p = params
        self.flat = p.topology == "flat"
        size = p.rollups if self.flat else p.region_size
        self.region_of = [r // size for r in range(p.rollups)]
        self.members = [
            list(range(g * size, min(p.rollups, (g + 1) * size))) for g in range(p.regions)
        ]
        for g, _, _ in faults.partitions:
            if not 0 <= g < p.regions:
                raise InvalidParameterError(f"no region {g} to partition")
        self.down = frozenset(faults.global_down)
        if any(not 0 <= h < p.global_hubs for h in self.down):
            raise InvalidParameterError("global_down names a hub that does not exist")
        self.now = 0.0
        self.events = 0
        self._queue: list[tuple[float, int, int, int]] = []
        self._seq = 0
        self.violations: list[str] = []
        # Per rollup: commit time of each height (height h at index h - 1).
        self.commits: list[list[float]] = [[] for _ in range(p.rollups)]
        self._cut = [0.0] * p.rollups
        self._last_commit = [0.0] * p.rollups
        self._last_arrival = [0.0] * p.rollups
        self.covered = [0] * p.rollups  # highest height some final snapshot covered
        self._last_delivery = [0.0] * p.rollups
        self.to_hub: list[list[float]] = [[] for _ in range(p.rollups)]
        self.delivered: list[list[float]] = [[] for _ in range(p.rollups)]
        self.finality: list[float] = []
        self.window_links = 0.0
        # Regional (or the flat) hubs: their verification queue, the latest
        # verified height per member, and the aggregates they committed.
        self.hubs = [_Hub(p.hub_cores) for _ in range(p.regions)]
        self.verified = [[0] * len(m) for m in self.members]
        self.aggregates: list[list[tuple[float, list[int]]]] = [[] for _ in range(p.regions)]
        self._agg_arrival = [[0.0] * p.global_hubs for _ in range(p.regions)]
        # Global hubs: verification queue and latest verified aggregate per region.
        self.global_queues = [_Hub(p.hub_cores) for _ in range(p.global_hubs)]
        self.global_cut = [[-1] * p.regions for _ in range(p.global_hubs)]
        self._finals: dict[int, list[int]] = {}  # snapshots awaiting their final event
        self._finals_made: list[float] = []
        self.snapshots = 0
        self.failed_epochs = 0
        self.wall_s = 0.0
        for r in range(p.rollups):
            self._push(self._interval(), _BLOCK, r)
        for g in range(p.regions):
            self._push(self.rng.uniform(0.0, p.merge_interval), _MERGE, g)
        if not self.flat:
            self._push(p.global_interval, _EPOCH, 1)
        # Drawn last, so that a run with halted rollups draws the same block times
        # and merge phases as the run without them up to the halt.
        n_halt = round(faults.halted_fraction * p.rollups)
        self.halted = frozenset(self.rng.sample(range(p.rollups), n_halt))

    # -- the event loop ------------------------------------------------------

    def _push(self, at: float, kind: int, arg: int) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, arg))

    def run(self) -> Report:
        """Run to ``duration`` and report; raises :class:`SimulationLimitError` past
        ``max_events``."""
        started = time.perf_counter()
        p = self.p
        queue = self._queue
        while queue and queue[0][0] <= p.duration:
            at, _, kind, arg = heapq.heappop(queue)
            self.now = at
            self.events += 1
            if self.events > p.max_events:
                raise SimulationLimitError(f"more than {p.max_events} events")
            if kind == _BLOCK:
                self._block(arg)
            elif kind == _MERGE:
                self._merge(arg)
            elif kind == _EPOCH:
                self._epoch(arg)
            else:
                self._final(arg)
        self.now = p.duration
        for hub in self.hubs:
            self._seq = hub.advance(p.duration, self._seq)
        for hub in self.global_queues:
            self._seq = hub.advance(p.duration, self._seq)
        self.wall_s = time.perf_counter() - started
        return self.report()

    # -- rollups --------------------------------------------------------------

    def _interval(self) -> float:
        j = self.p.block_jitter
        return self.p.block_interval * self.rng.uniform(1.0 - j, 1.0 + j)

    def _deliver(self, region: int, send: float, transit: float) -> float:
        """Arrival of a message to or from ``region``'s hub sent at ``send``: held
        by a partition it would cross, delivered after the heal."""
        for g, start, end in self.faults.partitions:
            if g == region and send < end and send + transit > start:
                return end + transit
        return send + transit

    def _block(self, r: int) -> None:
        """Rollup ``r`` cuts a block: it commits after a BFT round, and its packet
        goes to the rollup's first-level hub on an ordered channel."""
        p, rng = self.p, self.rng
        cut = self.now
        if r in self.halted and cut > self.faults.halt_at:
            return
        interval = cut - self._cut[r]
        self._cut[r] = cut
        commit = max(self._last_commit[r], cut + p.rollup_commit.draw(rng))
        self._last_commit[r] = commit
        self.commits[r].append(commit)
        links = p.links_per_s * p.utilisation * interval
        if p.warmup <= commit <= p.duration - p.drain:
            self.finality.append(commit - (cut - rng.random() * interval))
        if p.warmup <= commit <= p.duration:
            self.window_links += links
        g = self.region_of[r]
        link = p.wan_link if self.flat else p.regional_link
        arrival = self._deliver(g, commit + p.relayer, link.draw(rng))
        arrival = max(arrival, self._last_arrival[r])
        self._last_arrival[r] = arrival
        self._seq += 1
        heapq.heappush(
            self.hubs[g].arrivals,
            (arrival, self._seq, r, len(self.commits[r]), p.packet_verify_s(links)),
        )
        self._push(cut + self._interval(), _BLOCK, r)

    # -- regional (or flat) hubs ------------------------------------------------

    def _merge(self, g: int) -> None:
        """Hub ``g`` merges the latest verified height of each of its rollups and
        commits the aggregate; flat, that commit is the global snapshot."""
        p, rng = self.p, self.rng
        now = self.now
        self._push(now + p.merge_interval, _MERGE, g)
        if self._partitioned(g, now):
            return  # its validators see no new packets; nothing to send out either
        hub = self.hubs[g]
        self._seq = hub.advance(now, self._seq)
        verified = self.verified[g]
        first = self.members[g][0]
        while hub.done and hub.done[0][0] <= now:
            _, _, r, height = heapq.heappop(hub.done)
            verified[r - first] = max(verified[r - first], height)
        heights = list(verified)
        commit = now + (p.global_commit if self.flat else p.hub_commit).draw(rng)
        if self.flat:
            self._finals[len(self._finals_made)] = [len(self.aggregates[g])]
            self.aggregates[g].append((commit, heights))
            self._push(commit, _FINAL, len(self._finals_made))
            self._finals_made.append(commit)
            return
        index = len(self.aggregates[g])
        self.aggregates[g].append((commit, heights))
        for h in range(p.global_hubs):
            if h in self.down:
                continue
            arrival = self._deliver(g, commit + p.relayer, p.wan_link.draw(rng))
            arrival = max(arrival, self._agg_arrival[g][h])
            self._agg_arrival[g][h] = arrival
            self._seq += 1
            heapq.heappush(
                self.global_queues[h].arrivals,
                (arrival, self._seq, g, index, p.aggregate_verify_s),
            )

    def _partitioned(self, g: int, at: float) -> bool:
        return any(x == g and s <= at < e for x, s, e in self.faults.partitions)

    # -- global hubs -------------------------------------------------------------

    def _global_cut(self, h: int, epoch_at: float) -> list[int]:
        hub = self.global_queues[h]
        self._seq = hub.advance(epoch_at, self._seq)
        cut = self.global_cut[h]
        while hub.done and hub.done[0][0] <= epoch_at:
            done, _, g, index = heapq.heappop(hub.done)
            if self.aggregates[g][index][0] > done:
                self.violations.append(f"hub {h} verified region {g}'s aggregate before commit")
            cut[g] = max(cut[g], index)
        return list(cut)

    def _epoch(self, k: int) -> None:
        """Epoch ``k``: live global hubs commit their cuts, and the leader gathers a
        quorum of cuts, proposes their minimum and collects a quorum of signatures."""
        p, rng = self.p, self.rng
        now = self.now
        self._push(now + p.global_interval, _EPOCH, k + 1)
        alive = [h for h in range(p.global_hubs) if h not in self.down]
        if len(alive) < p.quorum:
            self.failed_epochs += 1
            return
        cuts = {h: self._global_cut(h, now) for h in alive}
        done = {h: now + p.global_commit.draw(rng) for h in alive}
        order = [(k + i) % p.global_hubs for i in range(p.global_hubs)]
        skipped = next(i for i, h in enumerate(order) if h in cuts)
        leader = order[skipped]
        view = now + skipped * p.view_change_timeout
        others = sorted(
            (max(done[h], view) + p.wan_link.draw(rng), h) for h in alive if h != leader
        )
        members = [leader] + [h for _, h in others[: p.quorum - 1]]
        proposed = max(done[leader], view)
        if p.quorum > 1:
            proposed = max(proposed, others[p.quorum - 2][0])
        agreed = [min(cuts[h][g] for h in members) for g in range(p.regions)]
        acks = sorted(
            proposed + p.wan_link.draw(rng) + p.wan_link.draw(rng) for h in alive if h != leader
        )
        final = acks[p.quorum - 2] if p.quorum > 1 else proposed
        if len(set(members)) < p.quorum or any(h in self.down for h in members):
            self.violations.append(f"epoch {k} formed without a live quorum")
        self._finals[len(self._finals_made)] = agreed
        self._push(final, _FINAL, len(self._finals_made))
        self._finals_made.append(final)

    # -- the snapshot's return trip ------------------------------------------------

    def _final(self, key: int) -> None:
        """A snapshot became global now: account the blocks it covers first, and
        deliver it to every rollup through its regional hub."""
        p, rng = self.p, self.rng
        now = self.now
        cut = self._finals.pop(key)
        self.snapshots += 1
        lo, hi = p.warmup, p.duration - p.drain
        for g, index in enumerate(cut):
            if index < 0:
                continue
            heights = self.aggregates[g][index][1]
            if self.flat:  # the hub relays straight to every rollup over the WAN
                at_region = now
                link = p.wan_link
            else:
                at_region = self._deliver(g, now + p.relayer, p.wan_link.draw(rng))
                link = p.regional_link
            for i, r in enumerate(self.members[g]):
                arrival = self._deliver(g, at_region + p.relayer, link.draw(rng))
                delivery = max(self._last_delivery[r], arrival + p.snapshot_verify_s)
                self._last_delivery[r] = delivery
                height = heights[i]
                covered = self.covered[r]
                if height <= covered:
                    continue
                commits = self.commits[r]
                if commits[height - 1] > now:
                    self.violations.append(f"rollup {r} height {height} covered before commit")
                to_hub, delivered = self.to_hub[r], self.delivered[r]
                for b in range(covered, height):
                    c = commits[b]
                    if lo <= c <= hi:
                        to_hub.append(now - c)
                        delivered.append(delivery - c)
                self.covered[r] = height

    # -- results ----------------------------------------------------------------

    def uncovered(self, rollups: Iterable[int] | None = None) -> int:
        """Blocks in the measurement window that no snapshot covered by the end."""
        lo, hi = self.p.warmup, self.p.duration - self.p.drain
        rs = range(self.p.rollups) if rollups is None else rollups
        return sum(1 for r in rs for c in self.commits[r][self.covered[r] :] if lo <= c <= hi)

    def sync_latencies(
        self, rollups: Iterable[int] | None = None, to: Literal["hub", "delivered"] = "delivered"
    ) -> Percentiles:
        """Sync latency of the given rollups' blocks (all by default); a block never
        covered counts as ``inf``."""
        rs = list(range(self.p.rollups) if rollups is None else rollups)
        samples = self.delivered if to == "delivered" else self.to_hub
        values = [x for r in rs for x in samples[r]]
        values.extend([math.inf] * self.uncovered(rs))
        return Percentiles.of(values)

    def report(self) -> Report:
        p = self.p
        span = p.duration - p.warmup
        busiest = max(self.hubs, key=lambda h: h.offered)
        backlog = max(sum(1 for d in h.done if d[0] > p.duration) for h in self.hubs)
        live_globals = [q for i, q in enumerate(self.global_queues) if i not in self.down]
        return Report(
            local_finality=Percentiles.of(self.finality),
            sync_to_hub=self.sync_latencies(to="hub"),
            sync_delivered=self.sync_latencies(to="delivered"),
            uncovered_blocks=self.uncovered(),
            links_per_s=self.window_links / span,
            snapshots=self.snapshots,
            failed_epochs=self.failed_epochs,
            hub_packets_per_s=busiest.packets / p.duration,
            hub_load=busiest.offered / p.duration,
            hub_backlog=backlog,
            global_load=max((q.offered for q in live_globals), default=0.0) / p.duration,
            violations=tuple(self.violations),
            events=self.events,
            wall_s=self.wall_s,
        )


def simulate(params: Params = VM_PROFILE, *, seed: int = 0, faults: Faults = Faults()) -> Report:
    """Run one simulation and return its report."""
    return RollupSimulation(params, seed=seed, faults=faults).run()


def fixed_path_s(params: Params) -> tuple[float, float]:
    """The sum of the fixed delays (floors, relayers, verification) on the path from
    a rollup's commit to the snapshot becoming global, and to its delivery back:
    a lower bound of every sync latency, whatever the draws and waits."""
    p = params
    if p.topology == "flat":
        hub = p.relayer + p.wan_link.floor + p.packet_verify_s(0.0) + p.global_commit.floor
        return hub, hub + p.relayer + p.wan_link.floor + p.snapshot_verify_s
    hub = (
        p.relayer
        + p.regional_link.floor
        + p.packet_verify_s(0.0)
        + p.hub_commit.floor
        + p.relayer
        + p.wan_link.floor
        + p.aggregate_verify_s
        + p.global_commit.floor
        + (3 if p.quorum > 1 else 0) * p.wan_link.floor
    )
    back = 2 * p.relayer + p.wan_link.floor + p.regional_link.floor + p.snapshot_verify_s
    return hub, hub + back
