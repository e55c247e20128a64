"""A seeded cost-model simulation: the proposer carrying every transaction against
certified batches ordered by Tendermint.

What it answers: with a link bandwidth, a signature-verification cost and a
per-transaction execution cost, how many transactions per second does a network
of ``n`` validators commit, and how long does a transaction take from submission
to execution at the validator it was submitted to (finality), in each design?

- ``"proposer"`` (today's node): each validator verifies the transactions its
  clients submit and gossips them, in bundles every ``tick_s``, to every peer,
  which verifies them too (the mempool's precheck). A height's proposer puts
  every pending transaction it holds (up to ``max_block_txs``) in its block and
  sends the block to each peer from its own uplink.
- ``"dag"`` (:mod:`focusflow.consensus.dag_mempool`): each validator verifies its
  clients' transactions and, every ``tick_s`` (one DAG round), seals them into a
  signed batch sent to every peer; a peer stores it, signs a vote back, and
  then checks the transactions' signatures (after the vote: a vote vouches for
  availability, not validity; execution needs them checked, as the mempool's
  precheck does today); above 2/3 of the votes the author broadcasts
  the certificate, whose every signature each validator verifies
  (``cert_checks="all"``) or, as ``DagMempool`` does (``"lazy"``), only a
  validator lacking the batch and the next ``LOOKAHEAD`` proposers do, the
  proposer checking what is left before it proposes. A height's
  proposer orders every certificate it holds by reference (slot and digest,
  ``CERT_REF_BYTES`` each); a validator prevotes once it holds the certificates
  named (under lazy checks: each batch or its certificate) and executes once
  it holds their batches.

Both order by Tendermint's happy path: round 0, a round-robin proposer, prevotes
and precommits to all, each vote's signature verified by each receiver. A
height starts when its proposer has executed the previous block (execution is
on the critical path in both, as in the node: a block names the state root it
leaves). A transaction is final when the validator it was submitted to has
executed the block holding it.

Cost model: every validator has one CPU queue (a FIFO of tasks: signature
checks at ``verify_s``, spread over ``verify_threads`` when many are checked at
once, signing at ``sign_s``, execution at ``exec_s`` per transaction
whose signature was checked already, as the chain executes mempool-checked ones)
and a full-duplex link of ``bandwidth`` bytes/s each way (a message occupies the
sender's uplink for size/bandwidth, then takes a one-way delay drawn uniformly
from ``delay_s``, then the receiver's downlink). Message sizes: a transaction
``tx_bytes``, a vote ``VOTE_BYTES``, a batch or block ``HEADER_BYTES`` plus its
content, a certificate ``HEADER_BYTES`` plus ``CERT_SIG_BYTES`` per signer.
Hashing, sorting and the state machines' own Python time are not modelled.
One ``random.Random(seed)`` draws arrivals and delays, so a seed replays a run.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
import statistics
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from focusflow.core.errors import InvalidParameterError
from focusflow.core.sig_batch import SERIAL_BELOW

VOTE_BYTES = 160
HEADER_BYTES = 200
CERT_SIG_BYTES = 96
CERT_REF_BYTES = 80
DESIGNS = ("proposer", "dag")
CERT_CHECKS = ("all", "lazy")
#: Under lazy checks, the validators proposing the next this many heights check
#: every certificate as it comes.
LOOKAHEAD = 2


@dataclass(frozen=True)
class SimCosts:
    """The cost model (seconds, bytes); ``bench/dag_mempool.py`` measures the CPU costs."""

    verify_s: float
    sign_s: float
    exec_s: float
    tx_bytes: int
    bandwidth: float = 125e6
    delay_s: tuple[float, float] = (0.001, 0.050)
    #: Threads that check many signatures at once (a bundle's or a batch's
    #: transactions, a certificate's votes), as ``core.sig_batch`` spreads them
    #: from SERIAL_BELOW items on; single checks, signing and execution use one.
    verify_threads: int = 1

    def bulk_verify_s(self, count: int) -> float:
        """CPU queue time of ``count`` signature checks made at once."""
        threads = self.verify_threads if count >= SERIAL_BELOW else 1
        return count * self.verify_s / threads


@dataclass(frozen=True)
class SimConfig:
    n: int
    design: str
    rate: float
    duration_s: float = 6.0
    warmup_s: float = 1.0
    tick_s: float = 0.05
    #: Transactions submitted in the last ``slack_s`` are left out of ``final_share``.
    slack_s: float = 1.0
    max_block_txs: int = 10_000
    #: "all": every validator checks every certificate; "lazy": only one whose
    #: batch it lacks, or that it proposes (``DagMempool.on_certificate``).
    cert_checks: str = "all"
    seed: int = 1

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise InvalidParameterError(f"design {self.design!r} is not one of {DESIGNS}")
        if self.cert_checks not in CERT_CHECKS:
            raise InvalidParameterError(
                f"cert_checks {self.cert_checks!r} is not one of {CERT_CHECKS}"
            )
        if self.n < 1 or self.rate <= 0 or self.tick_s <= 0:
            raise InvalidParameterError("n, rate and tick_s must be positive")


@dataclass
class SimResult:
    config: SimConfig
    committed: int
    tx_per_s: float
    finality_p50_s: float
    finality_p99_s: float
    heights: int
    #: Medians of the phases of a transaction's path (seconds).
    phases: dict[str, float] = field(default_factory=dict)
    cpu_busy: float = 0.0
    #: Share of the transactions submitted from the warm-up to ``slack_s`` before
    #: the end that are final by the end: under 1 when a backlog builds.
    final_share: float = 0.0


@dataclass
class _Tx:
    submitted: float
    home: int
    id: int
    sealed: float = math.nan
    certified: float = math.nan


@dataclass
class _Node:
    cpu_free: float = 0.0
    up_free: float = 0.0
    down_free: float = 0.0
    cpu_busy: float = 0.0
    pool: deque[_Tx] = field(default_factory=deque)
    arrivals: deque[_Tx] = field(default_factory=deque)
    submitted: list[_Tx] = field(default_factory=list)
    outbox: list[_Tx] = field(default_factory=list)
    #: Batches and certificates held, by id.
    batches: set[int] = field(default_factory=set)
    certs: set[int] = field(default_factory=set)
    unchecked: set[int] = field(default_factory=set)
    unordered: list[int] = field(default_factory=list)
    waiting: list[tuple[Callable[[], bool], Callable[[float], None]]] = field(default_factory=list)
    height: int = 0


@dataclass
class _Height:
    number: int
    proposer: int
    txs: list[_Tx]
    batch_ids: list[int]
    proposed_at: float
    #: Per validator: prevotes and precommits counted, and what it did.
    prevotes: list[int]
    precommits: list[int]
    precommitted: list[bool]
    committed: list[bool]

    @classmethod
    def start(
        cls, number: int, proposer: int, txs: list[_Tx], batch_ids: list[int], t: float, n: int
    ) -> _Height:
        return cls(number, proposer, txs, batch_ids, t, [0] * n, [0] * n, [False] * n, [False] * n)


class DagSimulation:
    def __init__(self, config: SimConfig, costs: SimCosts) -> None:
        self.c = config
        self.k = costs
        self.rng = random.Random(config.seed)
        self.now = 0.0
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self.nodes = [_Node() for _ in range(config.n)]
        self.quorum = 2 * config.n // 3 + 1
        #: (transaction, proposed at, final at) for each transaction executed at home.
        self.final: list[tuple[_Tx, float, float]] = []
        self.ordered_at: dict[int, float] = {}
        self.heights = 0
        self._batches: dict[int, tuple[int, list[_Tx], float]] = {}
        self._batch_ids = itertools.count()
        self._votes: dict[int, int] = {}
        self._committed_txs: set[int] = set()
        self._height = 1
        self._make_arrivals()

    # The engine: events, CPU and links.

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), fn))

    def cpu(self, i: int, t: float, seconds: float) -> float:
        node = self.nodes[i]
        start = max(t, node.cpu_free)
        node.cpu_free = start + seconds
        node.cpu_busy += seconds
        return node.cpu_free

    def send(self, src: int, dst: int, size: int, t: float, then: Callable[[float], None]) -> None:
        s, d = self.nodes[src], self.nodes[dst]
        wire = size / self.k.bandwidth
        s.up_free = max(t, s.up_free) + wire
        arrive = s.up_free + self.rng.uniform(*self.k.delay_s)
        d.down_free = max(arrive, d.down_free + wire)
        done = d.down_free
        self.at(done, lambda: then(done))

    def broadcast(self, src: int, size: int, t: float, then: Callable[[int, float], None]) -> None:
        for j in self.rng.sample(range(self.c.n), self.c.n):
            if j != src:
                self.send(src, j, size, t, functools.partial(then, j))

    def wait_until(self, i: int, ready: Callable[[], bool], go: Callable[[float], None]) -> None:
        if ready():
            go(self.now)
        else:
            self.nodes[i].waiting.append((ready, go))

    def _wake(self, i: int) -> None:
        node = self.nodes[i]
        still = []
        for ready, go in node.waiting:
            if ready():
                go(self.now)
            else:
                still.append((ready, go))
        node.waiting = still

    def run(self) -> SimResult:
        for i in range(self.c.n):
            self.at(self.rng.uniform(0, self.c.tick_s), functools.partial(self._tick, i))
        self.at(0.0, lambda: self._propose(1, 0.0))
        end = self.c.duration_s
        while self._events and self._events[0][0] <= end:
            t, _, fn = heapq.heappop(self._events)
            self.now = t
            fn()
        return self._result()

    # Clients.

    def _make_arrivals(self) -> None:
        per_node = self.c.rate / self.c.n
        ids = itertools.count()
        for i, node in enumerate(self.nodes):
            t = self.rng.expovariate(per_node)
            while t < self.c.duration_s:
                node.arrivals.append(_Tx(t, i, next(ids)))
                node.submitted.append(node.arrivals[-1])
                t += self.rng.expovariate(per_node)

    def _tick(self, i: int) -> None:
        """Every ``tick_s``: verify what clients submitted and gossip it (proposer
        design) or seal it into a batch (DAG design)."""
        node = self.nodes[i]
        fresh = []
        while node.arrivals and node.arrivals[0].submitted <= self.now:
            fresh.append(node.arrivals.popleft())
        if fresh:
            done = self.cpu(i, self.now, self.k.bulk_verify_s(len(fresh)))
            if self.c.design == "proposer":
                self.at(done, lambda: self._gossip(i, fresh))
            else:
                node.outbox.extend(fresh)
                self.at(done, lambda: self._seal(i))
        self.at(self.now + self.c.tick_s, lambda: self._tick(i))

    # The proposer design: gossip, then blocks of transactions.

    def _gossip(self, i: int, txs: list[_Tx]) -> None:
        self.nodes[i].pool.extend(txs)
        size = len(txs) * self.k.tx_bytes

        def received(j: int, t: float) -> None:
            done = self.cpu(j, t, self.k.bulk_verify_s(len(txs)))
            self.at(done, lambda: self.nodes[j].pool.extend(txs))

        self.broadcast(i, size, self.now, received)

    # The DAG design: batches, votes, certificates.

    def _seal(self, i: int) -> None:
        node = self.nodes[i]
        if not node.outbox:
            return
        txs, node.outbox = node.outbox, []
        bid = next(self._batch_ids)
        done = self.cpu(i, self.now, self.k.sign_s)
        for tx in txs:
            tx.sealed = done
        self._batches[bid] = (i, txs, done)
        self._votes[bid] = 1
        node.batches.add(bid)
        size = HEADER_BYTES + len(txs) * self.k.tx_bytes

        def stored(j: int, t: float) -> None:
            self.nodes[j].batches.add(bid)
            self._wake(j)
            signed = self.cpu(j, t, self.k.verify_s + self.k.sign_s)
            # The transactions' signatures are checked after the vote is signed:
            # off the vote's path, before execution needs them.
            self.cpu(j, signed, self.k.bulk_verify_s(len(txs)))
            self.at(
                signed, lambda: self.send(j, i, VOTE_BYTES, signed, lambda t2: self._vote(bid, t2))
            )

        self.at(done, lambda: self.broadcast(i, size, done, stored))

    def _vote(self, bid: int, t: float) -> None:
        author = self._batches[bid][0]
        checked = self.cpu(author, t, self.k.verify_s)
        self._votes[bid] += 1
        if self._votes[bid] == self.quorum:
            self.at(checked, lambda: self._certify(bid))

    def _certify(self, bid: int) -> None:
        author, txs, _ = self._batches[bid]
        for tx in txs:
            tx.certified = self.now
        self._hold_cert(author, bid)
        size = HEADER_BYTES + self.quorum * CERT_SIG_BYTES

        def got(j: int, t: float) -> None:
            if self.c.cert_checks == "lazy" and bid in self.nodes[j].batches and not self._soon(j):
                self.nodes[j].unchecked.add(bid)
                self._hold_cert(j, bid)
                return
            done = self.cpu(j, t, self.k.bulk_verify_s(self.quorum))
            self.at(done, lambda: self._hold_cert(j, bid))

        self.broadcast(author, size, self.now, got)

    def _hold_cert(self, j: int, bid: int) -> None:
        node = self.nodes[j]
        if bid not in self.ordered_at:
            node.unordered.append(bid)
        node.certs.add(bid)
        self._wake(j)

    def _soon(self, j: int) -> bool:
        """``j`` proposes one of the next LOOKAHEAD heights."""
        return (j - (self._height - 1)) % self.c.n <= LOOKAHEAD

    def _check_unchecked(self, j: int, t: float) -> float:
        node = self.nodes[j]
        count = sum(1 for b in node.unchecked if b not in self.ordered_at)
        node.unchecked.clear()
        return self.cpu(j, t, self.k.bulk_verify_s(count * self.quorum)) if count else t

    # Tendermint's happy path, both designs.

    def _propose(self, number: int, t: float) -> None:
        p = (number - 1) % self.c.n
        node = self.nodes[p]
        self._height = number
        for d in range(1, LOOKAHEAD + 1):  # the next proposers check ahead of their turn
            self._check_unchecked((p + d) % self.c.n, t)
        t = self._check_unchecked(p, t)
        if self.c.design == "proposer":
            txs: list[_Tx] = []
            while node.pool and len(txs) < self.c.max_block_txs:
                tx = node.pool.popleft()
                if tx.id not in self._committed_txs:
                    txs.append(tx)
            batch_ids: list[int] = []
            size = HEADER_BYTES + len(txs) * self.k.tx_bytes
        else:
            batch_ids = [b for b in node.unordered if b not in self.ordered_at]
            node.unordered = []
            txs = [tx for b in batch_ids for tx in self._batches[b][1]]
            size = HEADER_BYTES + len(batch_ids) * CERT_REF_BYTES
        for b in batch_ids:
            self.ordered_at[b] = t
        for tx in txs:
            self._committed_txs.add(tx.id)
        h = _Height.start(number, p, txs, batch_ids, t, self.c.n)
        signed = self.cpu(p, t, self.k.sign_s)
        self.at(signed, lambda: self._deliver_proposal(h, p, signed))
        self.at(
            signed,
            lambda: self.broadcast(p, size, signed, lambda j, t2: self._deliver_proposal(h, j, t2)),
        )

    def _deliver_proposal(self, h: _Height, j: int, t: float) -> None:
        checked = self.cpu(j, t, 0.0 if j == h.proposer else self.k.verify_s)
        node = self.nodes[j]

        def prevote(t2: float) -> None:
            self._vote_step(h, j, max(t2, checked), "prevote")

        if self.c.design == "dag":
            if self.c.cert_checks == "all":
                held = lambda: node.certs.issuperset(h.batch_ids)  # noqa: E731
            else:  # a held batch stands for its certificate
                held = lambda: all(b in node.batches or b in node.certs for b in h.batch_ids)  # noqa: E731
            self.at(checked, lambda: self.wait_until(j, held, prevote))
        else:
            self.at(checked, lambda: prevote(checked))

    def _vote_step(self, h: _Height, j: int, t: float, step: str) -> None:
        signed = self.cpu(j, t, self.k.sign_s)

        def counted(k: int, t2: float) -> None:
            done = self.cpu(k, t2, 0.0 if k == j else self.k.verify_s)
            self.at(done, lambda: self._count(h, k, step))

        self.at(signed, lambda: counted(j, signed))
        self.at(signed, lambda: self.broadcast(j, VOTE_BYTES, signed, counted))

    def _count(self, h: _Height, k: int, step: str) -> None:
        tally = h.prevotes if step == "prevote" else h.precommits
        tally[k] += 1
        if step == "prevote" and tally[k] == self.quorum and not h.precommitted[k]:
            h.precommitted[k] = True
            self._vote_step(h, k, self.now, "precommit")
        elif step == "precommit" and tally[k] == self.quorum and not h.committed[k]:
            h.committed[k] = True
            self._commit(h, k)

    def _commit(self, h: _Height, k: int) -> None:
        node = self.nodes[k]

        def execute(t: float) -> None:
            done = self.cpu(k, t, len(h.txs) * self.k.exec_s)
            self.at(done, lambda: self._executed(h, k, done))

        if self.c.design == "dag":
            self.wait_until(k, lambda: node.batches.issuperset(h.batch_ids), execute)
        else:
            execute(self.now)

    def _executed(self, h: _Height, k: int, t: float) -> None:
        self.final.extend((tx, h.proposed_at, t) for tx in h.txs if tx.home == k)
        if k == h.number % self.c.n:  # the next height's proposer
            self.heights = h.number
            self._propose(h.number + 1, t)

    def _result(self) -> SimResult:
        lo, hi = self.c.warmup_s, self.c.duration_s
        done_in_window = sum(1 for _, _, t in self.final if lo <= t <= hi)
        rows = [r for r in self.final if r[0].submitted >= lo]
        lat = sorted(t - tx.submitted for tx, _, t in rows)
        cut = hi - self.c.slack_s
        due = [tx for node in self.nodes for tx in node.submitted if lo <= tx.submitted < cut]
        final_ids = {tx.id for tx, _, _ in rows}
        share = sum(1 for tx in due if tx.id in final_ids) / len(due) if due else 0.0
        phases: dict[str, float] = {}
        if rows:
            phases["submit_to_proposal"] = statistics.median(p - tx.submitted for tx, p, _ in rows)
            phases["proposal_to_final"] = statistics.median(t - p for _, p, t in rows)
            if self.c.design == "dag":
                phases["submit_to_sealed"] = statistics.median(
                    tx.sealed - tx.submitted for tx, _, _ in rows
                )
                phases["sealed_to_certified"] = statistics.median(
                    tx.certified - tx.sealed for tx, _, _ in rows
                )
                phases["certified_to_proposal"] = statistics.median(
                    p - tx.certified for tx, p, _ in rows
                )
        return SimResult(
            self.c,
            done_in_window,
            done_in_window / (hi - lo),
            lat[len(lat) // 2] if lat else math.nan,
            lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else math.nan,
            self.heights,
            phases,
            max(n.cpu_busy for n in self.nodes) / hi,
            share,
        )


def simulate(config: SimConfig, costs: SimCosts) -> SimResult:
    return DagSimulation(config, costs).run()
