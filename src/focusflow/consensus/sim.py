"""A deterministic, seeded network simulator for :class:`Tendermint` machines.

Used by the tests and the benchmark. One ``random.Random(seed)`` draws every
delay and every byzantine choice, and events are ordered by (time, sequence), so a
seed replays the same run exactly; a failing seed is a reproducible bug report.

The network model is partial synchrony: each message takes a random delay
(which reorders messages); a partition holds the messages that cross it and
delivers them after it heals (links are reliable, as the paper assumes, just slow
before GST). Crashed validators lose what is sent to them and their timers; when
restarted they resume from their WAL and catch up on heights they missed through
"block sync": decided values with certificates, checked by ``verify_certificate``.
Gossip is modelled where it matters: a node starting a height receives that
height's messages again, and a byzantine message reaching one honest node is
relayed to all.

Values carry the proposer's local time (``value_time``); each node's clock is
the simulated time plus a fixed skew of at most ``max_skew``. The honest validity
rule refuses a value whose time is beyond the validator's local time plus
``max_drift`` (a validator prevotes nil on it), as the chain refuses a block from
the far future.

Byzantine behaviours (validators holding their own keys, so their signatures are
valid): ``"equivocating_proposer"`` sends different peers different proposals for
the same round; ``"double_proposer"`` sends every peer two valid proposals for each
round it leads, in random order (a second proposal per height); ``"double_voter"``
sends different peers different votes (nil, its own vote, or another proposal's
value) for the same step; ``"silent"`` sends nothing; ``"future_timestamp"``
proposes values whose time is ``FAR_FUTURE_MS`` (2^64 - 1); ``"junk_gossip"`` sends,
with each message, junk: its own messages with broken signatures (at this height
and the next), votes signed by a key outside the set, proposals from a validator
that is not the round's proposer, and proposals whose value id is not their
value's hash; ``"lying_sync_peer"`` claims a huge height to block sync and serves
forged decisions for heights nobody decided (certificates it signed alone, or
another height's certificate). They run an honest machine underneath and tamper
with its output.

Peers are penalised only for what provably came from them: a node that receives
a message its machine refuses penalises the peer that sent it, and block sync
penalises a peer whose decision fails ``verify_certificate``. An honest node
relays only messages whose signer, signature, proposer and value id it checked,
so penalising an honest node is a violation.

The simulator checks, as it runs: safety (no two honest validators decide
different values at one height, synced ones included), that no honest validator
ever signs two different messages for one (height, round, step), and that no
honest node is penalised.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from focusflow.consensus.actions import (
    Accept,
    Action,
    Broadcast,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
    SendTo,
)
from focusflow.consensus.certificate import (
    CommitCertificate,
    verify_certificate,
)
from focusflow.consensus.engine import ENGINES
from focusflow.consensus.errors import InvalidCertificateError, InvalidMessageError
from focusflow.consensus.evidence import Evidence, verify_evidence
from focusflow.consensus.fallback import SWITCH_AFTER_ROUNDS, Fallback
from focusflow.consensus.messages import Message, Proposal, Step, Vote
from focusflow.consensus.notarise import ACCEPT_ROUND, Notarised
from focusflow.consensus.poll_messages import Chits, PollMessage, Query, Switch
from focusflow.consensus.signer import Signer
from focusflow.consensus.snowball import SnowmanParams
from focusflow.consensus.snowman import Snowman
from focusflow.consensus.tendermint import Tendermint
from focusflow.consensus.timeouts import Timeouts
from focusflow.consensus.validators import ValidatorSet, has_one_third
from focusflow.consensus.wal import WriteAheadLog
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair, verify

BYZANTINE_KINDS = (
    "equivocating_proposer",
    "double_proposer",
    "double_voter",
    "silent",
    "future_timestamp",
    "junk_gossip",
    "lying_sync_peer",
)

#: The time a "future_timestamp" proposer puts in its values (the largest uint64).
FAR_FUTURE_MS = 2**64 - 1
#: The height a "lying_sync_peer" claims to have.
LYING_HEIGHT = 10**9
#: Heights one round of block sync adopts at most (the next round goes on).
SYNC_BATCH = 64
#: Default bound on how far ahead of a validator's clock a value's time may be.
MAX_DRIFT = 0.5

#: Timeouts scaled to the simulated delays (milliseconds, not LAN seconds).
SIM_TIMEOUTS = Timeouts(
    propose=0.2,
    propose_delta=0.1,
    prevote=0.1,
    prevote_delta=0.05,
    precommit=0.1,
    precommit_delta=0.05,
)


@dataclass
class SimNode:
    index: int
    key: KeyPair
    wal: WriteAheadLog
    byzantine: str | None = None
    machine: Any = None  # a ConsensusEngine: Tendermint, Snowman or Fallback
    decisions: dict[int, Decide | Accept] = field(default_factory=dict)
    incarnation: int = 0
    proposals_made: int = 0
    skew: float = 0.0  # this node's clock minus the simulated time

    @property
    def alive(self) -> bool:
        return self.machine is not None

    @property
    def height(self) -> int:
        """Highest decided height (0 before the first)."""
        return max(self.decisions, default=0)


class Simulation:
    """N validators on a simulated network; see the module docstring."""

    def __init__(  # noqa: PLR0913 - keyword-only simulation knobs with defaults
        self,
        n: int = 4,
        *,
        seed: int = 0,
        powers: list[int] | None = None,
        byzantine: Mapping[int, str] | None = None,
        min_delay: float = 0.001,
        max_delay: float = 0.05,
        timeouts: Timeouts = SIM_TIMEOUTS,
        sync_delay: float = 0.5,
        chain_id: str = "focusflow-sim",
        machine_factory: Callable[..., Tendermint] = Tendermint,
        is_valid: Callable[[int, int, bytes], bool] | None = None,
        verification: str = "shared",
        max_drift: float = MAX_DRIFT,
        max_skew: float = MAX_DRIFT / 4,
        engine: str = "tendermint",
        snowman: SnowmanParams | None = None,
        switch_after_rounds: int = SWITCH_AFTER_ROUNDS,
        notarise: bool = False,
        measure_cpu: bool = False,
    ) -> None:
        """``verification``: "shared" checks each distinct signature once for the whole
        network (fast tests); "per_node" makes every node verify everything it
        receives, as real nodes do; "off" skips checks (only to measure their cost).
        ``max_drift``: how far past its own clock a validator accepts a value's time;
        ``max_skew``: the largest clock error of a node (below ``max_drift`` so honest
        values stay valid).
        ``engine``: "tendermint" (``machine_factory``), "snowman" or "fallback", with
        ``snowman`` polling parameters and the fallback's ``switch_after_rounds``;
        ``notarise`` runs a polling engine as the node does, its accepts
        certified by attestations (``notarise.py``).
        ``measure_cpu``: add the CPU time of every machine call to ``machine_cpu_s``
        (for the benchmark; reading the process clock costs more than many calls)."""
        if verification not in ("shared", "per_node", "off"):
            raise InvalidParameterError(f"unknown verification mode {verification!r}")
        if engine not in ENGINES:
            raise InvalidParameterError(f"unknown consensus engine {engine!r}")
        self.engine = engine
        self.snowman = snowman or SnowmanParams()
        self.switch_after_rounds = switch_after_rounds
        self.notarise = notarise and engine != "tendermint"
        self.seed = seed
        self.rng = random.Random(seed)
        self.chain_id = chain_id
        self.min_delay, self.max_delay, self.sync_delay = min_delay, max_delay, sync_delay
        self.timeouts = timeouts
        self.machine_factory = machine_factory
        self.node_is_valid = is_valid
        self.verification = verification
        self.max_drift = max_drift
        self.byzantine = dict(byzantine or {})
        for kind in self.byzantine.values():
            if kind not in BYZANTINE_KINDS:
                raise InvalidParameterError(f"unknown byzantine behaviour {kind!r}")
        keys = [KeyPair.from_seed(sha256(b"sim-validator-%d-%d" % (seed, i))) for i in range(n)]
        powers = powers or [1] * n
        self.nodes = [
            SimNode(
                i,
                k,
                WriteAheadLog(None),
                self.byzantine.get(i),
                skew=self.rng.uniform(-max_skew, max_skew),
            )
            for i, k in enumerate(keys)
        ]
        self._outsider = KeyPair.from_seed(sha256(b"sim-outsider-%d" % seed))
        self._by_key = {k.public_key: i for i, k in enumerate(keys)}
        self._sets = {
            1: ValidatorSet.create({k.public_key: p for k, p in zip(keys, powers, strict=True)})
        }
        self.now = 0.0
        self._queue: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._groups: list[set[int]] | None = None
        self._held: list[tuple[int, int, Message | PollMessage]] = []
        self.committed: dict[int, Decide | Accept] = {}  # first decision seen per height
        self.violations: list[str] = []
        self.evidence: list[Evidence] = []
        self.invalid_messages = 0
        self.penalties: dict[int, int] = {}  # node index -> times a peer penalised it
        self.forged_syncs = 0  # sync answers refused for a bad certificate
        self.delivered = 0
        self.measure_cpu = measure_cpu
        self.machine_cpu_s = 0.0  # CPU spent inside the state machines (benchmark)
        self._signed: dict[tuple[object, ...], Message | PollMessage] = {}
        self._log: dict[int, dict[Message | PollMessage, int]] = {}
        self._verified: dict[tuple[bytes, bytes, bytes], bool] = {}
        self._relayed: set[Message] = set()
        self._sync_pending: set[int] = set()
        for node in self.nodes:
            self._boot(node)

    # ----------------------------------------------------------- scenario API

    def validator_set(self, height: int) -> ValidatorSet:
        """The set of ``height``: genesis set stepped once per height."""
        while height not in self._sets:
            last = max(self._sets)
            self._sets[last + 1] = self._sets[last].next_height()
        return self._sets[height]

    def node_of(self, public_key: bytes) -> SimNode:
        return self.nodes[self._by_key[public_key]]

    def honest(self) -> list[SimNode]:
        return [n for n in self.nodes if n.byzantine is None]

    def at(self, time: float, action: Callable[[], None]) -> None:
        """Run ``action`` (crash, restart, partition, heal...) at simulated ``time``."""
        self._push(time, "call", action)

    def crash(self, i: int) -> None:
        node = self.nodes[i]
        node.machine = None
        node.incarnation += 1

    def restart(self, i: int) -> None:
        """Restart from the WAL (the same object stands for the same file)."""
        node = self.nodes[i]
        node.incarnation += 1
        self._boot(node)
        self._schedule_sync(node)

    def partition(self, *groups: set[int]) -> None:
        """Only nodes of one group reach each other until ``heal``."""
        self._groups = [set(g) for g in groups]

    def heal(self) -> None:
        self._groups = None
        held, self._held = self._held, []
        for src, dst, message in held:
            self._send(src, dst, message)
        for node in self.nodes:
            self._schedule_sync(node)

    def run(self, until: float, stop: Callable[[Simulation], bool] | None = None) -> None:
        """Process events up to simulated time ``until`` (or until ``stop`` is true)."""
        while self._queue and self._queue[0][0] <= until:
            time, _, kind, payload = heapq.heappop(self._queue)
            self.now = time
            self._dispatch(kind, payload)
            if stop is not None and stop(self):
                return
        self.now = max(self.now, until)

    def min_honest_height(self, alive_only: bool = True) -> int:
        nodes = [n for n in self.honest() if n.alive or not alive_only]
        return min((n.height for n in nodes), default=0)

    # -------------------------------------------------------------- internals

    def _push(self, time: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time, self._seq, kind, payload))

    def _penalise(self, node: SimNode, peer: int, why: str) -> None:
        """``node`` blames ``peer`` for a message or answer that provably came from it."""
        self.penalties[peer] = self.penalties.get(peer, 0) + 1
        if node.byzantine is None and self.nodes[peer].byzantine is None:
            self.violations.append(
                f"t={self.now:.3f} node {node.index} penalised honest node {peer}: {why}"
            )

    def _boot(self, node: SimNode) -> None:
        signer = Signer(node.key, self.chain_id, node.wal)
        common: dict[str, Any] = {
            "signer": signer,
            "get_value": lambda h, node=node: self._value(node, h),
            "is_valid": lambda h, v, node=node: self._is_valid(node, h, v),
            "verify": {"shared": self._verify, "per_node": verify, "off": lambda *_: True}[
                self.verification
            ],
        }
        # Polling engines draw samples from their own generator, seeded per node and
        # incarnation, so the network's draws stay the same for a given seed.
        rng = random.Random(f"{self.seed}/{node.index}/{node.incarnation}")
        if self.engine == "snowman":
            node.machine = Snowman(self.chain_id, params=self.snowman, rng=rng, **common)
        elif self.engine == "fallback":
            node.machine = Fallback(
                self.chain_id,
                timeouts=self.timeouts,
                params=self.snowman,
                rng=rng,
                switch_after_rounds=self.switch_after_rounds,
                **common,
            )
        else:
            node.machine = self.machine_factory(self.chain_id, timeouts=self.timeouts, **common)
        if self.notarise:
            node.machine = Notarised(
                node.machine, self.chain_id, signer=signer, verify=common["verify"]
            )
        self._start(node, node.height + 1)

    def _start(self, node: SimNode, height: int) -> None:
        """Start ``height`` on a node, then let peers gossip what it has missed of it.

        CometBFT peers send a peer the votes and proposal of its height that it
        lacks; re-sending every message seen at that height models that.
        """
        assert node.machine is not None
        self._apply(
            node, self._timed(node.machine.start_height, height, self.validator_set(height))
        )
        for message, sender in list(self._log.get(height, {}).items()):
            if sender != node.index:
                self._send(sender, node.index, message)

    def _timed(self, call: Callable[..., list[Action]], *args: Any) -> list[Action]:
        """Call into a machine, adding its CPU time to ``machine_cpu_s`` if measured."""
        if not self.measure_cpu:
            return call(*args)
        start = time.process_time()
        try:
            return call(*args)
        finally:
            self.machine_cpu_s += time.process_time() - start

    def _verify(self, public_key: bytes, signature: bytes, message: bytes) -> bool:
        """Ed25519 verification, once per distinct signed message in the whole network."""
        key = (public_key, signature, message)
        ok = self._verified.get(key)
        if ok is None:
            ok = self._verified[key] = verify(public_key, signature, message)
        return ok

    def local_ms(self, node: SimNode) -> int:
        """``node``'s clock in milliseconds (simulated time plus its skew)."""
        return max(0, round((self.now + node.skew) * 1000))

    def _value(self, node: SimNode, height: int) -> bytes:
        node.proposals_made += 1
        stamp = FAR_FUTURE_MS if node.byzantine == "future_timestamp" else self.local_ms(node)
        return encode(["block", height, node.index, node.proposals_made, stamp])

    def _is_valid(self, node: SimNode, height: int, value: bytes) -> bool:
        """The honest rule: a value's time may not be beyond local time + drift."""
        if node.byzantine is not None:
            return True
        if value_time(value) > self.local_ms(node) + round(self.max_drift * 1000):
            return False
        if self.node_is_valid is None:
            return True
        return self.node_is_valid(node.index, height, value)

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "call":
            payload()
        elif kind == "deliver":
            src, dst, message = payload
            node = self.nodes[dst]
            if node.machine is None:
                return
            self.delivered += 1
            try:
                actions = self._timed(node.machine.receive, message)
            except InvalidMessageError as exc:
                self.invalid_messages += 1
                self._penalise(node, src, str(exc))
                return
            self._relay(node, message)
            self._apply(node, actions)
        elif kind == "timeout":
            i, incarnation, timeout = payload
            node = self.nodes[i]
            if node.machine is not None and node.incarnation == incarnation:
                self._apply(node, self._timed(node.machine.on_timeout, timeout))
        elif kind == "sync":
            self._sync(self.nodes[payload])

    def _apply(self, node: SimNode, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                self._broadcast(node, action.message)
            elif isinstance(action, ScheduleTimeout):
                self._push(
                    self.now + action.delay,
                    "timeout",
                    (node.index, node.incarnation, action.timeout),
                )
            elif isinstance(action, SendTo):
                self._send_to(node, action)
            elif isinstance(action, (Decide, Accept)):
                self._decide(node, action)
            elif isinstance(action, ReportEvidence):
                self._evidence(action.evidence)

    def _send_to(self, node: SimNode, action: SendTo) -> None:
        """A poll message to its peers, or to all (a switch, gossiped like a vote)."""
        if action.peers is None:
            self._broadcast(node, action.message)
            return
        if node.byzantine is None:
            self._check_single_signature(node, action.message)
        for pk in action.peers:
            peer = self._by_key.get(pk)
            if peer is None or peer == node.index:
                continue
            for out in self._tamper(node, action.message):
                self._send(node.index, peer, out)

    def _decide(self, node: SimNode, decision: Decide | Accept) -> None:
        self._record(node, decision)
        for other in self.nodes:
            if other is not node:
                self._schedule_sync(other)
        self._start(node, decision.height + 1)

    def _record(self, node: SimNode, decision: Decide | Accept) -> None:
        """Store a node's decision (its own or synced) and check it against the others'."""
        h = decision.height
        node.decisions[h] = decision
        if node.byzantine is None:
            first = self.committed.setdefault(h, decision)
            if first.value_id != decision.value_id:
                self.violations.append(
                    f"t={self.now:.3f} height {h}: node {node.index} decided "
                    f"{decision.value_id.hex()[:8]}, another {first.value_id.hex()[:8]}"
                )

    def _schedule_sync(self, node: SimNode) -> None:
        if node.index not in self._sync_pending:
            self._sync_pending.add(node.index)
            self._push(self.now + self.sync_delay, "sync", node.index)

    def _sync(self, node: SimNode) -> None:
        """Block sync: adopt certified decisions of reachable peers, then rejoin.

        Peers are asked in order of the height they claim, tallest first (so a peer
        that lies about its height is asked first); an answer counts only if its
        certificate verifies for the height and the value, else the peer is
        penalised and not asked again in this round of sync.
        """
        self._sync_pending.discard(node.index)
        if node.machine is None:
            return
        progressed = False
        refused: set[int] = set()
        for _ in range(SYNC_BATCH):
            h = node.height + 1
            decision = next(
                (
                    d
                    for p in self._sync_peers(node, h, refused)
                    if (d := self._certified(node, p, h, refused)) is not None
                ),
                None,
            )
            if decision is None:
                break
            self._record(node, decision)
            progressed = True
        else:
            self._schedule_sync(node)  # more to fetch than one batch
        if progressed:
            self._start(node, node.height + 1)

    def _claimed_height(self, peer: SimNode) -> int:
        return LYING_HEIGHT if peer.byzantine == "lying_sync_peer" else peer.height

    def _sync_peers(self, node: SimNode, height: int, refused: set[int]) -> list[SimNode]:
        """Reachable peers claiming ``height`` or more, tallest claim first."""
        peers = [
            p
            for p in self.nodes
            if p is not node
            and p.index not in refused
            and self._claimed_height(p) >= height
            and self._connected(p.index, node.index)
        ]
        return sorted(peers, key=lambda p: (-self._claimed_height(p), p.index))

    def _certified(
        self, node: SimNode, peer: SimNode, height: int, refused: set[int]
    ) -> Decide | Accept | None:
        """``peer``'s answer for ``height`` if its certificate proves it, else None.

        A polled decision (``Accept``) has no certificate: it is adopted when
        reachable peers holding more than a third of the power serve that same
        value, so at least one honest validator decided it; by Snowman's safety
        every honest one decided it (with the failure probability of its
        parameters).
        """
        d = self._sync_answer(peer, height)
        if d is None:
            return None
        if isinstance(d, Accept):
            vs = self.validator_set(height)
            power = sum(
                vs.power_of(p.key.public_key)
                for p in self.nodes
                if p is not node
                and p.index not in refused
                and self._connected(p.index, node.index)
                and (a := self._sync_answer(p, height)) is not None
                and a.value_id == d.value_id
            )
            return d if has_one_third(power, vs.total_power) else None
        try:
            if d.height != height:
                raise InvalidCertificateError(f"answer for height {d.height}, not {height}")
            verify_certificate(
                d.certificate,
                self.validator_set(height),
                self.chain_id,
                height=height,
                value_id=sha256(d.value),
            )
        except InvalidCertificateError as exc:
            self.forged_syncs += 1
            refused.add(peer.index)
            self._penalise(node, peer.index, f"sync: {exc}")
            return None
        return d

    def _sync_answer(self, peer: SimNode, height: int) -> Decide | Accept | None:
        """What ``peer`` serves for ``height``: its decision, or a liar's forgery."""
        if peer.byzantine != "lying_sync_peer":
            return peer.decisions.get(height)
        value = encode(["forged", height, peer.index, FAR_FUTURE_MS])
        value_id = sha256(value)
        real = self.committed.get(height - 1)
        if real is not None and self.rng.random() < 0.5 and isinstance(real, Decide):
            # A real certificate of another height, relabelled for this one.
            cert = real.certificate
            forged = CommitCertificate(height, cert.round, value_id, cert.signatures)
        else:
            own = Vote.sign(peer.key, self.chain_id, height, 0, Step.PRECOMMIT, value_id)
            forged = CommitCertificate.from_votes([own])
        return Decide(height, 0, value, value_id, forged)

    def _relay(self, node: SimNode, message: Message) -> None:
        """Gossip: the first honest receiver of a byzantine message forwards it to all.

        The paper's liveness argument assumes that a message one correct process
        receives reaches every correct process (gossip). Honest senders already
        send to everyone over reliable links; a byzantine one may send a message to
        a few, so the simulator relays those once, as peers' gossip would. A node
        forwards only what it checked itself (``_authentic``): the machine buffers
        next-height messages unchecked, and forwarding those would get the relayer
        blamed for another's junk.
        """
        if node.byzantine is not None or message in self._relayed:
            return
        if not isinstance(message, (Proposal, Vote)):
            return  # polls and chits are point to point; switches reach all already
        signer = message.proposer if isinstance(message, Proposal) else message.validator
        index = self._by_key.get(signer)
        if index is None or self.nodes[index].byzantine is None:
            return
        if not self._authentic(message):
            return
        self._relayed.add(message)
        for peer in self.nodes:
            if peer is not node:
                self._send(node.index, peer.index, message)

    def _authentic(self, message: Message) -> bool:
        """What a machine checks before it accepts a message, without its round state:
        a member signed it, the signature verifies, and a proposal comes from its
        round's proposer, with a valid round below its round and its value's hash."""
        vs = self.validator_set(message.height)
        if isinstance(message, Proposal):
            if message.proposer != vs.proposer(message.round).public_key:
                return False
            if not -1 <= message.valid_round < message.round:
                return False
            if sha256(message.value) != message.value_id:
                return False
            signer = message.proposer
        else:
            signer = message.validator
            if vs.index_of(signer) is None:
                return False
        return self._verify(signer, message.signature, message.sign_bytes(self.chain_id))

    def _connected(self, a: int, b: int) -> bool:
        return self._groups is None or any(a in g and b in g for g in self._groups)

    def _evidence(self, evidence: Evidence) -> None:
        if evidence in self.evidence:
            return
        verify_evidence(evidence, self.validator_set(evidence.height), self.chain_id)
        if self.node_of(evidence.validator).byzantine is None:
            self.violations.append("evidence against an honest validator")
        self.evidence.append(evidence)

    def _broadcast(self, node: SimNode, message: Message | PollMessage) -> None:
        if node.byzantine is None:
            self._check_single_signature(node, message)
        log = self._log.setdefault(message.height, {})
        for peer in self.nodes:
            if peer is node:
                continue
            for out in self._tamper(node, message):
                log.setdefault(out, node.index)
                self._send(node.index, peer.index, out)

    def _check_single_signature(self, node: SimNode, message: Message | PollMessage) -> None:
        slot: tuple[object, ...]
        if isinstance(message, Query):
            slot = (node.index, message.height, "query", message.poll)
        elif isinstance(message, Chits):
            slot = (node.index, message.height, "chits", message.requester, message.poll)
        elif isinstance(message, Switch):
            slot = (node.index, message.height, "switch")
        else:
            step = message.step if isinstance(message, Vote) else Step.PROPOSE
            slot = (node.index, message.height, message.round, int(step))
        earlier = self._signed.setdefault(slot, message)
        if earlier != message:
            self.violations.append(f"node {node.index} signed twice for {slot[1:]}")

    def _tamper(self, node: SimNode, message: Message | PollMessage) -> list[Message | PollMessage]:
        """What a byzantine node sends one peer instead of ``message``."""
        kind = node.byzantine
        if kind is None:
            return [message]
        if kind == "silent":
            return []
        if isinstance(message, (Query, Chits, Switch)):
            return self._tamper_poll(node, message)
        if kind in ("equivocating_proposer", "double_proposer") and isinstance(message, Proposal):
            value = encode(["evil", message.height, message.round, node.index, self.local_ms(node)])
            evil = Proposal.sign(
                node.key, self.chain_id, message.height, message.round, -1, value, sha256(value)
            )
            if kind == "double_proposer":
                both: list[Message | PollMessage] = [message, evil]
                self.rng.shuffle(both)
                return both
            return self._some_of([message, evil])
        if kind == "junk_gossip":
            return [message, *self._junk(node, message)]
        if kind == "double_voter" and isinstance(message, Vote):
            assert node.machine is not None
            choices: list[bytes | None] = [None, message.value_id]
            choices.extend(node.machine.proposed_value_ids(message.round))
            votes: list[Message | PollMessage] = [
                Vote.sign(
                    node.key, self.chain_id, message.height, message.round, message.step, value_id
                )
                for value_id in dict.fromkeys(choices)  # in order: a seed replays
            ]
            return self._some_of(votes)
        return [message]

    def _tamper_poll(
        self, node: SimNode, message: Query | Chits | Switch
    ) -> list[Message | PollMessage]:
        """Lying chits (a "double_voter" answers each poll with a random choice:
        nothing, another proposal's value or a value nobody proposed, and at
        times with its true answer too, which the poller proves), and junk
        polls: a broken signature ahead of the real message, which a poller or
        responder checks first and blames on its sender."""
        kind = node.byzantine
        if kind == "double_voter" and isinstance(message, Chits):
            assert node.machine is not None
            choices: list[bytes | None] = [None, message.value_id, sha256(b"lie%d" % node.index)]
            choices.extend(node.machine.proposed_value_ids(0))
            lie = self.rng.choice(choices)
            lying = Chits.sign(
                node.key, self.chain_id, message.height, message.requester, message.poll, lie
            )
            return self._some_of([lying, message])
        if kind == "junk_gossip" and isinstance(message, (Query, Chits)):
            if isinstance(message, Query):
                broken_q = Query(message.height, message.poll, message.requester, bytes(64))
                return [broken_q, message]
            m = message
            broken_c = Chits(m.height, m.requester, m.poll, m.value_id, m.responder, bytes(64))
            return [broken_c, message]
        return [message]

    def _junk(self, node: SimNode, message: Message) -> list[Message]:
        """Invalid messages a "junk_gossip" node sends along with ``message``."""
        h, r = message.height, message.round

        def broken(m: Vote) -> Vote:
            return Vote(m.height, m.round, m.step, m.value_id, m.validator, bytes(64))

        own = Vote.sign(node.key, self.chain_id, h, r, Step.PREVOTE, None)
        ahead = Vote.sign(node.key, self.chain_id, h + 1, 0, Step.PREVOTE, None)
        stranger = Vote.sign(self._outsider, self.chain_id, h, r, Step.PRECOMMIT, None)
        value = encode(["junk", h, r, node.index, self.local_ms(node)])
        vs = self.validator_set(h)
        # An attestation's round is no proposal round: its junk proposals go to round 0.
        pr = 0 if r == ACCEPT_ROUND else r
        wrong_round = next(
            (
                x
                for x in range(pr, pr + len(self.nodes))
                if vs.proposer(x).public_key != node.key.public_key
            ),
            pr,
        )
        usurper = Proposal.sign(node.key, self.chain_id, h, wrong_round, -1, value, sha256(value))
        mislabelled = Proposal.sign(node.key, self.chain_id, h, pr, -1, value, sha256(b"other"))
        return [broken(own), broken(ahead), stranger, usurper, mislabelled]

    def _some_of(self, messages: list[Message | PollMessage]) -> list[Message | PollMessage]:
        """A random non-empty selection in random order (a peer may see both sides)."""
        picked: list[Message | PollMessage] = [m for m in messages if self.rng.random() < 0.5] or [
            self.rng.choice(messages)
        ]
        self.rng.shuffle(picked)
        return picked

    def _send(self, src: int, dst: int, message: Message | PollMessage) -> None:
        if not self._connected(src, dst):
            self._held.append((src, dst, message))
            return
        delay = self.rng.uniform(self.min_delay, self.max_delay)
        self._push(self.now + delay, "deliver", (src, dst, message))


def value_time(value: bytes) -> int:
    """The time (ms) a simulated value carries: its last item."""
    return int(decode(value)[-1])
