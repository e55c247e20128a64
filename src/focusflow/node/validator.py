"""A validator process: QUIC transport + Tendermint + the chain + the REST API.

One asyncio event loop runs everything that waits (the QUIC :class:`Node`,
uvicorn, timers); one *consensus task* owns the state machine and the chain and
handles its inputs in order from a bounded queue: proposals and votes from
gossip, timer events, and block sync. Every call into the state machine runs in
a worker thread (``asyncio.to_thread``), because it may call back into the
chain: ``get_value`` (this validator proposes: :meth:`Chain.propose` from the
mempool) and ``is_valid`` (re-execute a proposal, focus included, and compare
every root: :meth:`Chain.validate`). The loop keeps serving the API and the
network meanwhile; the consensus task awaits one step at a time, so the chain is
never used by two steps at once.

Wire use of ``focusflow.net``:

* gossip topic ``tx``: transactions submitted to any node reach every mempool;
* ``block_part``: proposals (the value is the block and the parent's
  certificate, Brotli CBOR, see :meth:`Pending.proposal_value`);
* ``vote``: prevotes and precommits; ``evidence``: duplicate votes, verified
  into the chain's evidence pool (ours, from ``ReportEvidence``, too) for the
  next proposer to include and the bank to slash;
* request ``status`` -> ``[committed height, its commit certificate]``
  (rate-limited per peer); ``block`` (``height``) -> the stored block record
  with its certificate (block sync); ``round`` (``height``) -> the consensus
  messages this node holds for that height, so a validator that (re)connects
  mid-height catches up on votes it missed.

Consensus gossip is checked before it is forwarded or held
(:mod:`focusflow.node.gossip_check`): signature, membership, proposer, value
id, at the height under consensus; the next height's messages are held,
bounded, until it starts; a message that fails costs its sender (and a
signer that signed what it should not) score, never an honest relayer's.

A ``Decide`` commits the decided block with its certificate (re-validating it
if another proposal moved the focus engine since), runs the listeners
(WebSocket, metrics), and starts the next height. Block sync runs in
a task of its own: it polls the peers' status, believes a higher height only
when a commit certificate backs it (:mod:`focusflow.node.sync`), fetches the
blocks with short timeouts, and applies each (certificate and all roots,
:meth:`Chain.apply_block`) holding the chain lock the consensus task takes for
each of its steps; then consensus restarts above them. A peer that claims a
height it cannot back or serve, or serves a block that does not apply, loses
score, and is not asked again for a while.

Without ``listen`` there is no transport at all: that is the devnet, a set of
one validator, which has no peer to gossip to, sync from or be reached by, so it
opens no QUIC port; its own Tendermint instance still proposes, votes, decides
and certifies every block, through the same WAL and commit path.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from focusflow.chain.block import BlockRecord
from focusflow.chain.chain import Chain
from focusflow.chain.da_commit import block_square, recent_squares
from focusflow.chain.errors import (
    AlreadyPunishedError,
    BadSignatureError,
    BlockError,
    BlockNotKeptError,
    EvidenceError,
    EvidenceOutOfRangeError,
    EvidencePoolFullError,
    UnknownBlockError,
)
from focusflow.chain.pending import Pending
from focusflow.chain.tx import Tx
from focusflow.consensus import (
    Broadcast,
    Decide,
    Evidence,
    InvalidMessageError,
    Proposal,
    ReportEvidence,
    ScheduleTimeout,
    Signer,
    SignRefusedError,
    Tendermint,
    Timeout,
    Timeouts,
    ValidatorSet,
    Vote,
    WriteAheadLog,
    decode_evidence,
    decode_message,
    encode_evidence,
    encode_message,
)
from focusflow.consensus.certificate import encode_certificate
from focusflow.consensus.votes_seen import VotesSeen
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.core.hashing import sha256
from focusflow.core.keys import KeyPair, address_bytes
from focusflow.net import (
    BLOCK_PARTS,
    EVIDENCE,
    TRANSACTIONS,
    VOTES,
    NetConfig,
    Node,
    Offence,
    Verdict,
)
from focusflow.net.errors import NetError, RateLimitedError, RemoteError, RequestTimeoutError
from focusflow.node.bootstrap import Bootstrap
from focusflow.node.extensions import NodeExtension, ProposalCheck
from focusflow.node.gossip_check import (
    MAX_PROPOSALS_PER_ROUND,
    MAX_VOTE_BYTES,
    ROUND_WINDOW,
    FutureMessages,
    GossipFaultError,
    VerifiedSignatures,
    check_for_height,
    check_signature,
    signer_of,
)
from focusflow.node.runtime import BlockEvent, NodeRuntime
from focusflow.node.sync import (
    STATUS_BURST,
    STATUS_RATE,
    ClaimError,
    RateLimiter,
    check_claim,
    parse_status,
    sync_refusal_is_a_lie,
)

if TYPE_CHECKING:
    from focusflow.net.node import GossipHandler
    from focusflow.net.reqresp import Handler
    from focusflow.node.faults import FaultPlan

T = TypeVar("T")

log = logging.getLogger("focusflow.node")

#: Inputs waiting for the consensus task; gossip beyond this is dropped (and
#: recovered by the ``round`` request).
INBOX_SIZE = 10_000


# What the consensus task takes from its inbox, one step at a time. ``kind``
# names the input in the log line of a step that failed.


@dataclass(frozen=True, slots=True)
class StartHeight:
    """Start the height after the chain's head (at startup and after a decision)."""

    kind: ClassVar[str] = "start"


@dataclass(frozen=True, slots=True)
class Synced:
    """Block sync applied blocks: start the next height unless consensus is
    already running one above the chain's head."""

    kind: ClassVar[str] = "synced"


@dataclass(frozen=True, slots=True)
class Received:
    """A consensus message from ``sender`` (``raw``: its encoding), checked for
    the height running when it arrived."""

    kind: ClassVar[str] = "msg"
    sender: bytes
    message: Proposal | Vote
    raw: bytes


@dataclass(frozen=True, slots=True)
class TimeoutDue:
    """A timeout the state machine scheduled has expired."""

    kind: ClassVar[str] = "timeout"
    timeout: Timeout


InboxItem = StartHeight | Synced | Received | TimeoutDue
#: Messages of the current height kept to answer ``round`` requests (checked
#: ones only), in count and bytes.
MAX_HELD_MESSAGES = 4_000
MAX_HELD_BYTES = 32 << 20
#: Bytes of held messages one ``round`` response carries at most.
MAX_ROUND_RESPONSE = 6 << 20
#: Blocks fetched per sync pass before consensus gets a turn.
SYNC_BATCH = 200
#: Block requests of one sync pass in flight at once (each answer is at most a
#: block record: the peer's per-peer request limit is well above this).
SYNC_WINDOW = 8
#: Seconds between status polls of the peers.
POLL_INTERVAL = 1.0
#: Seconds a peer has to answer a status poll, and a block request of sync.
STATUS_TIMEOUT = 1.0
BLOCK_TIMEOUT = 3.0
#: Seconds a peer that failed to serve a block it claimed is not synced from,
#: and one that did not answer a status poll is not polled (each doubling on
#: each failure up to SYNC_BACKOFF_MAX; a poll answered or a reconnect ends
#: the second).
SYNC_BACKOFF = 5.0
SYNC_BACKOFF_MAX = 60.0
#: Pending transactions handed to a peer when it connects.
SHARED_TXS = 10_000
#: Non-validator peers (full nodes) a node accepts at once besides the
#: validator set; each is scored and banned like any peer.
MAX_GUESTS = 16
#: Validated proposals kept (their executed state, to commit without
#: re-executing); a byzantine proposer may sign several per round.
MAX_PENDING = 4


#: Proposal values kept decoded: the machine asks a value's id when the proposal
#: arrives and its validity right after, and decoding a block of 10^4 links
#: (canonical CBOR, checked) costs milliseconds each time.
DECODED_VALUES = 4


def value_id_of(value: bytes, decoded: dict[bytes, BlockRecord] | None = None) -> bytes:
    """A proposal's value id is the hash of the block it carries (what the
    certificate then names); undecodable values get an id no proposal claims.
    ``decoded``: a cache of decoded values to read and fill (see ``decode_value``)."""
    try:
        return decode_value(value, decoded).block.hash
    except DecodeError:
        return sha256(b"undecodable" + value)


def decode_value(value: bytes, decoded: dict[bytes, BlockRecord] | None = None) -> BlockRecord:
    """``BlockRecord.decode(value)``, through ``decoded`` (the last DECODED_VALUES values)."""
    if decoded is None:
        return BlockRecord.decode(value)
    record = decoded.get(value)
    if record is None:
        record = BlockRecord.decode(value)
        if len(decoded) >= DECODED_VALUES:
            decoded.pop(next(iter(decoded)))
        decoded[value] = record
    return record


class ValidatorRuntime(NodeRuntime):
    """A validator: see the module docstring. Start with :meth:`serve` on a loop."""

    def __init__(  # noqa: PLR0913 - keyword-only node settings with defaults
        self,
        chain: Chain,
        key: KeyPair,
        *,
        wal_path: Path,
        listen: tuple[str, int] | None,
        peers: Iterable[str] = (),
        timeouts: Timeouts | None = None,
        faucet_key: KeyPair | None = None,
        net_config: NetConfig | None = None,
        commit_wait: float = 0.2,
        block_interval: float = 0.0,
        faults: FaultPlan | None = None,
        follow_only: bool = False,
        guests: int = MAX_GUESTS,
    ) -> None:
        """``listen`` None: no transport (the one-validator devnet, see the module
        docstring). ``faults``: fault injection for tests, see NodeRuntime.
        ``follow_only``: a full node, which follows consensus and re-executes
        every block but never signs (no signer, no WAL; ``key`` is only its
        transport identity). ``guests``: non-validator peers (full nodes)
        accepted at once besides the validator set."""
        super().__init__(chain, faucet_key=faucet_key, faults=faults)
        self.follow_only = follow_only
        self.guests = guests
        #: Pause after a commit before the next height starts (CometBFT's
        #: ``timeout_commit``) unless the next block has transactions ready:
        #: lets transactions gather instead of a stream of empty blocks, and
        #: late precommits arrive. With transactions ready, the next height
        #: starts at once: the pause would only add to their latency.
        #: Transactions stuck behind a nonce gap are not ready: they must not
        #: turn the chain into a stream of empty blocks.
        self.commit_wait = commit_wait
        #: Least time from the start of one height to the start of the next:
        #: the devnet's --block-time. An idle chain makes a block per interval;
        #: after a block that took longer the next height starts at once, so a
        #: loaded devnet commits back to back, as its producer loop used to.
        self.block_interval = block_interval
        self._height_began = time.monotonic()
        self.key = key
        self.net: Node | None = None
        if listen is not None:
            # Only nodes of this genesis (chain id, parameters, focus engine) may connect.
            config = replace(net_config or NetConfig(), network_id=chain.genesis.hash)
            self.net = Node(key, listen=listen, peers=list(peers), config=config)
            self.net.set_allowed(self._members(chain.validators), guests)
        self.signer = None if follow_only else Signer(key, chain.chain_id, WriteAheadLog(wal_path))
        self._decoded: dict[bytes, BlockRecord] = {}
        #: The gossip check and the state machine decode values in different
        #: worker threads; the cache is shared, so its updates are serialised.
        self._decoded_lock = threading.Lock()
        self._verify = VerifiedSignatures()
        self.tm = Tendermint(
            chain.chain_id,
            signer=self.signer,
            get_value=self._get_value,
            is_valid=self._is_valid,
            timeouts=timeouts,
            value_id_of=self._value_id,
            verify=self._verify,
            validate_proposal=self._is_valid_proposal,
        )
        #: The set of the height under consensus (the chain's set of head + 1).
        self.vset = chain.validators
        #: (height, set) whose gossip is checked and forwarded: the height running.
        self._gate: tuple[int, ValidatorSet] | None = None
        #: Proposal value ids accepted per round of the gate's height.
        self._proposals_seen: dict[int, set[bytes]] = {}
        self._future = FutureMessages()
        self._pending: OrderedDict[bytes, Pending] = OrderedDict()
        self._held: list[bytes] = []  # checked encoded messages of the current height
        self._held_bytes = 0
        #: Digests of the messages in ``_held``: each is kept (and queued) once.
        self._held_ids: set[bytes] = set()
        #: Taken by the consensus task for each step and by block sync to apply
        #: blocks: the chain is never used by both at once.
        self._chain_lock = asyncio.Lock()
        self._status_limit = RateLimiter(STATUS_RATE, STATUS_BURST)
        self._status_cache: tuple[int, bytes] | None = None
        #: Peers not synced from until the time given (they failed to serve).
        self._sync_backoff: dict[bytes, tuple[float, float]] = {}
        #: Peers not polled until the time given (their status timed out).
        self._poll_backoff: dict[bytes, tuple[float, float]] = {}
        self._inbox: asyncio.Queue[InboxItem] | None = None
        #: Set when a peer connects: the sync task polls at once.
        self._poll_wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task] = []
        self._timers: list[asyncio.TimerHandle] = []
        self._started = False  # consensus running at tm.height
        self._next_height_due = False  # a decision was committed: start the next height
        self._progress_at = time.monotonic()
        #: (height, round) of recent decisions.
        self.decisions: list[tuple[int, int]] = []
        self.synced_blocks = 0
        #: Each validator's last vote, received or signed here (GET /v1/validators).
        self.votes_seen = VotesSeen(chain.chain_id)
        #: Why consensus stopped making progress here, once a step failed.
        self.failure: BaseException | None = None
        #: Called on the event loop when a step fails: the devnet stops (no peer
        #: could repair it); a network validator leaves it unset, block sync repairs.
        self.on_failure: Callable[[], None] | None = None
        #: Checks a proposal must pass, after it re-executed, before this node
        #: prevotes for it (data availability sampling; ``add_proposal_check``).
        #: They run in a worker thread; one that needs the network runs its
        #: requests on the loop (``run_soon``).
        self.proposal_checks: list[ProposalCheck] = []
        #: Parts added to the node by ``focusflow.node.extensions`` (share
        #: serving, fraud proofs, snapshots), attached before the transport
        #: starts; each reaches the node only as an ``ExtensionHost``.
        self.extensions: list[NodeExtension] = []
        #: Why this node stopped following its chain (a verified fraud proof
        #: against a committed block): no vote, commit or sync after it.
        self.halted: str | None = None
        #: Called on the loop with a certified block that block sync could not
        #: apply here (its bytes as served) and why (``on_refused_block``):
        #: focusflow.node.da_net proves a bad encoding of its data square from it.
        self.refused_blocks: list[Callable[[bytes, BlockError], None]] = []

    # --- NodeService ---------------------------------------------------------
    def submit(self, raw: bytes | Tx) -> Tx:
        """Admit locally, then gossip to every validator."""
        tx = super().submit(raw)
        if self._loop is not None and self.net is not None:
            self._loop.call_soon_threadsafe(self._spawn, self._publish(TRANSACTIONS, tx.encoded))
        return tx

    @property
    def consensus_state(self) -> tuple[int, int, str, ValidatorSet]:
        """(height, round, step, validator set) of the state machine, read together.

        ``step`` is ``propose``, ``prevote``, ``precommit``, or ``commit`` from
        the decision until the next height starts (the commit wait); before the
        first height starts: the next height, round 0, ``propose``.
        """
        tm = self.tm
        height, vset = tm.height, tm.validators
        if vset is None:
            return self.chain.height + 1, 0, "propose", self.vset
        step = "commit" if tm.decision is not None else tm.step.name.lower()
        return height, tm.round, step, vset

    @property
    def bootstrap(self) -> Bootstrap | None:
        """The bootstrap phases' duty (``node.bootstrap``), where one is attached."""
        return next((e for e in self.extensions if isinstance(e, Bootstrap)), None)

    # --- ExtensionHost (focusflow.node.extensions) --------------------------------
    def register(self, name: str, handler: Handler) -> None:
        self._transport().register(name, handler)

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        self._transport().subscribe(topic, handler)

    def add_proposal_check(self, check: ProposalCheck) -> None:
        self.proposal_checks.append(check)

    def on_commit(self, listener: Callable[[BlockEvent], None]) -> None:
        self.listeners.append(listener)

    def on_refused_block(self, listener: Callable[[bytes, BlockError], None]) -> None:
        self.refused_blocks.append(listener)

    def call_soon(self, callback: Callable[..., object], *args: object) -> None:
        self._running_loop().call_soon_threadsafe(callback, *args)

    def run_soon(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._running_loop())

    def _transport(self) -> Node:
        if self.net is None:
            raise RuntimeError("this node has no transport (the devnet): no peers to serve")
        return self.net

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the node is not running: start_async has not been called")
        return self._loop

    # --- lifecycle -----------------------------------------------------------
    async def start_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue(INBOX_SIZE)
        if self.net is not None:
            self.net.subscribe(TRANSACTIONS, self._on_tx)
            self.net.subscribe(BLOCK_PARTS, self._on_proposal)
            self.net.subscribe(VOTES, self._on_vote)
            self.net.subscribe(EVIDENCE, self._on_evidence)
            self.net.register("status", self._serve_status)
            self.net.register("block", self._serve_block)
            self.net.register("round", self._serve_round)
            self.net.watch_peers(self._on_peer)
        for extension in self.extensions:
            extension.attach(self)
        if self.net is not None:
            await self.net.start()
            self._tasks.append(asyncio.create_task(self._poll_task(), name="sync-poll"))
        self._tasks.append(asyncio.create_task(self._consensus_task(), name="consensus"))
        self._inbox.put_nowait(StartHeight())

    async def stop_async(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for extension in self.extensions:
            with contextlib.suppress(Exception):
                await extension.stop()
        if self.net is not None:
            await self.net.stop()
        if self.signer is not None:
            self.signer.wal.close()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def _publish(self, topic: str, payload: bytes) -> None:
        if self.net is None:
            return
        try:
            await self.net.publish(topic, payload)
        except NetError as exc:
            log.warning("publish failed", extra={"fields": {"topic": topic, "error": str(exc)}})

    # --- gossip in -----------------------------------------------------------
    async def _on_tx(self, sender: bytes, payload: bytes) -> Verdict:
        """Admitted: forwarded. Undecodable or badly signed: the sender's fault (a
        node admits before it forwards). Refused otherwise (known, nonce used,
        fee too low): not forwarded, not proof of malice."""
        try:
            await self.admit(payload, relay=False)
        except (DecodeError, BadSignatureError):
            return Verdict.REJECT
        except FocusflowError as exc:
            # admit raises only the typed error that refused the transaction
            # (known already, nonce used, fee too low, admission busy): routine
            # on a gossip topic, so logged at debug level.
            log.debug(
                "gossiped transaction not admitted",
                extra={"fields": {"code": exc.code, "error": exc.message}},
            )
            return Verdict.IGNORE
        return Verdict.ACCEPT

    async def _on_proposal(self, sender: bytes, payload: bytes) -> Verdict:
        try:
            message = decode_message(payload)
        except DecodeError:
            return Verdict.REJECT
        if not isinstance(message, Proposal):
            return Verdict.REJECT  # a vote on the proposal topic
        return await self._gossip_in(sender, message, payload)

    async def _on_vote(self, sender: bytes, payload: bytes) -> Verdict:
        if len(payload) > MAX_VOTE_BYTES:
            return Verdict.REJECT  # no vote is that large: do not even decode it
        try:
            message = decode_message(payload)
        except DecodeError:
            return Verdict.REJECT
        if not isinstance(message, Vote):
            return Verdict.REJECT
        return await self._gossip_in(sender, message, payload)

    async def _gossip_in(self, sender: bytes, message: Proposal | Vote, raw: bytes) -> Verdict:
        """Check a consensus message before anything else sees it (see
        gossip_check): ACCEPT (queued for the state machine and forwarded) only
        when it passes every check for the height running; the next height's are
        held, not forwarded; others are dropped. A failure is blamed here."""
        try:
            if self._is_held(raw):
                return Verdict.IGNORE  # accepted before: not queued or forwarded again
            check_signature(message, self.chain.chain_id, self._verify)
            gate = self._gate
            if gate is not None and message.height == gate[0]:
                if message.round > self.tm.round + ROUND_WINDOW:
                    return Verdict.IGNORE
                if isinstance(message, Proposal):
                    seen = self._proposals_seen.setdefault(message.round, set())
                    if message.value_id in seen or len(seen) >= MAX_PROPOSALS_PER_ROUND:
                        return Verdict.IGNORE
                    await asyncio.to_thread(check_for_height, message, gate[1], self._value_id)
                    if gate is not self._gate:
                        return Verdict.IGNORE  # the height moved on meanwhile
                    seen.add(message.value_id)
                else:
                    check_for_height(message, gate[1], self._value_id)
                self._enqueue(Received(sender, message, raw))
                return Verdict.ACCEPT
            next_height = gate[0] + 1 if gate is not None else self.chain.height + 1
            if message.height == next_height:
                self._future.add(sender, message, raw)
            elif isinstance(message, Vote) and message.height < next_height:
                # Late for the state machine (the height was decided with the
                # others' votes), but it shows its validator voting: without it a
                # validator that is always the last to vote looks silent.
                self._saw_vote(message)
            return Verdict.IGNORE
        except GossipFaultError as fault:
            self._blame(sender, message, fault)
            return Verdict.IGNORE

    def _blame(self, sender: bytes, message: Proposal | Vote, fault: GossipFaultError) -> None:
        """Penalise the sender of a message that fails the relay checks, and its
        signer too where its good signature makes it accountable."""
        assert self.net is not None
        what = f"{type(message).__name__.lower()} h{message.height} r{message.round}: {fault}"
        self.net.report(sender, Offence.INVALID, f"sent {what}")
        signer = signer_of(message)
        if fault.signer_at_fault and signer != sender:
            self.net.report(signer, Offence.INVALID, f"signed {what}")

    def _value_id(self, value: bytes) -> bytes:
        with self._decoded_lock:
            return value_id_of(value, self._decoded)

    async def _on_evidence(self, sender: bytes, payload: bytes) -> bool | None:
        """Hold gossiped evidence for a block; False (the peer is reported) if it
        proves nothing: malformed, badly signed, no conflict, not a validator.

        Evidence outside the age window or already punished is dropped without
        blame (a peer a block behind or ahead sees the window shifted); evidence
        held already is not gossiped on again.
        """
        try:
            evidence = decode_evidence(payload)
        except DecodeError:
            return False
        return self._hold_evidence(evidence)

    def _hold_evidence(self, evidence: Evidence) -> bool | None:
        try:
            added = self.chain.add_evidence(evidence)
        except (EvidenceOutOfRangeError, AlreadyPunishedError, EvidencePoolFullError):
            return None
        except EvidenceError as exc:
            log.info("invalid evidence", extra={"fields": {"error": str(exc)}})
            return False
        if added:
            log.warning(
                "duplicate vote evidence",
                extra={
                    "fields": {
                        "validator": evidence.validator.hex()[:16],
                        "height": evidence.height,
                    }
                },
            )
        return True if added else None

    def _enqueue(self, item: InboxItem) -> None:
        assert self._inbox is not None
        with contextlib.suppress(asyncio.QueueFull):
            self._inbox.put_nowait(item)

    def _on_peer(self, peer_id: bytes, connected: bool) -> None:
        if connected:
            self._poll_backoff.pop(peer_id, None)
        if connected and self._loop is not None:
            self._spawn(self._pull_round(peer_id))
            self._spawn(self._share_mempool(peer_id))
            self._poll_wake.set()

    async def _share_mempool(self, peer_id: bytes) -> None:
        """Hand a peer that just connected our pending transactions (at most
        SHARED_TXS): gossip is fire-and-forget, so a transaction admitted while
        this node had no peer (a full node starting up) would otherwise never
        leave it. The peer drops those it holds already."""
        assert self.net is not None
        with self._pool_lock:
            txs = self.mempool.oldest(SHARED_TXS)
        for tx in txs:
            try:
                await self.net.send_to(peer_id, TRANSACTIONS, tx.encoded)
            except NetError:
                return

    # --- requests served -----------------------------------------------------
    async def _serve_status(self, peer_id: bytes, payload: bytes) -> bytes:
        """``[height, certificate of that block]``, at most STATUS_RATE a second a peer."""
        if not self._status_limit.allow(peer_id):
            raise RateLimitedError(f"status is served {STATUS_RATE:g} times a second")
        # The height is the certificate's: a commit in a worker thread sets the
        # head and the certificate one after the other, and a height read
        # between them with the other's certificate would look like a lie.
        cert = self.chain.last_certificate
        height = 0 if cert is None else cert.height
        cached = self._status_cache
        if cached is None or cached[0] != height:
            base = min(self.chain.base, height)
            raw = encode([height, None if cert is None else encode_certificate(cert), base])
            self._status_cache = cached = (height, raw)
        return cached[1]

    async def _serve_block(self, peer_id: bytes, payload: bytes) -> bytes:
        height = decode(payload, "block request")
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise DecodeError(f"a block request names height {height!r}, not one >= 1")
        with self.chain.reader() as r:
            raw = r.block(height)
        if raw is None:
            if height <= self.chain.base:
                raise BlockNotKeptError(
                    f"block {height} is below this store's snapshot height {self.chain.base}"
                )
            raise UnknownBlockError(f"no block {height} (the head is {self.chain.height})")
        return raw

    async def _serve_round(self, peer_id: bytes, payload: bytes) -> bytes:
        height = decode(payload, "round request")
        if height != self.tm.height:
            return encode([])
        out, size = [], 0
        for raw in reversed(self._held):
            size += len(raw)
            if size > MAX_ROUND_RESPONSE:
                break
            out.append(raw)
        out.reverse()
        return encode(out)

    async def _pull_round(self, peer_id: bytes) -> None:
        """Ask a peer for its messages of our height (we may have missed them)."""
        assert self.net is not None  # peers connect only with a network
        if not self._started:
            return
        try:
            raw = await self.net.request(
                peer_id, "round", encode(self.tm.height), timeout=5.0, blame_timeout=False
            )
            items = decode(raw, "round response")
        except (NetError, DecodeError):
            return
        if not isinstance(items, list):
            self.net.report(peer_id, why="round response is not a list")
            return
        for item in items:
            if isinstance(item, bytes) and self._is_held(item):
                continue  # held here already: not decoded again
            try:
                message = decode_message(item)
            except (DecodeError, TypeError):
                self.net.report(peer_id, why="undecodable message in round response")
                return
            # A peer holds only messages it checked: a bad one is its fault.
            await self._gossip_in(peer_id, message, item)

    # --- the consensus task --------------------------------------------------
    async def _consensus_task(self) -> None:
        assert self._inbox is not None
        while True:
            if self._next_height_due:
                # Started here, not from _decide: with one validator start_height
                # itself decides, and start -> decide -> start would recurse
                # without end (RecursionError after some 300 heights).
                self._next_height_due = False
                item: InboxItem = StartHeight()
            else:
                item = await self._inbox.get()
            try:
                async with self._chain_lock:
                    await self._handle(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("consensus step failed", extra={"fields": {"input": item.kind}})
                self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        """Consensus cannot go on by itself here: record why and tell the host."""
        self.failure = exc
        if self.on_failure is not None:
            self.on_failure()

    def halt(self, reason: str) -> None:
        """Stop following this chain for good (a verified fraud proof showed a
        committed block is invalid, or the next height needs a focus algorithm
        this code lacks): consensus and sync stop, the API keeps serving what
        was committed, and /v1/status says why."""
        if self.halted is None:
            self.halted = reason
            log.error("stopped following the chain", extra={"fields": {"reason": reason}})
        for timer in self._timers:
            timer.cancel()

    def _upgrade_halts(self) -> bool:
        """Whether this node stopped following: for good, or because the next
        height switches the chain's focus algorithm to one this code cannot run
        (Chain.upgrade_needed: it halts then, as after a fraud proof, with
        ``UPGRADE NEEDED at height N`` in /v1/status and its log)."""
        if self.halted is None:
            needed = self.chain.upgrade_needed
            if needed is not None:
                self.halt(needed.message)
        return self.halted is not None

    async def _handle(self, item: InboxItem) -> None:
        if self._upgrade_halts():
            return
        if isinstance(item, StartHeight):
            await self._start_height()
        elif isinstance(item, Received):
            message, raw = item.message, item.raw
            # Checked for the height running when it arrived (see _gossip_in).
            if not self._started or message.height != self.tm.height:
                return
            try:
                actions = await asyncio.to_thread(self.tm.receive, message)
            except InvalidMessageError as exc:
                # The relay checks passed, so the two disagree: not the peer's fault.
                log.error(
                    "checked message refused by the state machine",
                    extra={"fields": {"error": str(exc)}},
                )
                return
            self._hold(raw)
            if isinstance(message, Vote):
                self._saw_vote(message)
            await self._act(actions)
        elif isinstance(item, TimeoutDue):
            if self._started:
                await self._act(await asyncio.to_thread(self.tm.on_timeout, item.timeout))
        elif isinstance(item, Synced) and (
            not self._started or self.tm.height <= self.chain.height
        ):
            await self._start_height()

    def _hold(self, raw: bytes) -> None:
        """Keep a checked message of the current height for ``round`` requests,
        once: a stalled height is pulled from every peer every two seconds, and
        copies kept again would be served, decoded and queued again each time."""
        digest = sha256(raw)
        if digest in self._held_ids:
            return
        if len(self._held) < MAX_HELD_MESSAGES and self._held_bytes + len(raw) <= MAX_HELD_BYTES:
            self._held.append(raw)
            self._held_ids.add(digest)
            self._held_bytes += len(raw)

    def _is_held(self, raw: bytes) -> bool:
        """Whether this message of the current height was accepted and kept already."""
        return sha256(raw) in self._held_ids

    async def _start_height(self) -> None:
        height = self.chain.height + 1
        if height <= self.tm.height:
            self._started = True
            return
        self._pending.clear()
        self._held, self._held_bytes, self._held_ids = [], 0, set()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        self._adopt_set(self.chain.validators)
        try:
            actions = await asyncio.to_thread(self.tm.start_height, height, self.vset)
        except SignRefusedError as exc:
            # Our WAL went further than our store: sync blocks before voting again.
            self._started = False
            log.warning("waiting for block sync", extra={"fields": {"reason": str(exc)}})
            return
        self._started = True
        self._progress_at = time.monotonic()
        self._gate, self._proposals_seen = (height, self.vset), {}
        for sender, message, raw in self._future.take(height):
            await self._gossip_in(sender, message, raw)
        await self._act(actions)

    async def _act(self, actions: list) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                message = action.message
                raw = encode_message(message)
                if message.height == self.tm.height:
                    self._hold(raw)
                if isinstance(message, Vote):
                    self._saw_vote(message)
                if isinstance(message, Proposal):
                    await asyncio.to_thread(self._keep_square, message)
                topic = BLOCK_PARTS if isinstance(message, Proposal) else VOTES
                await self._publish(topic, raw)
            elif isinstance(action, ScheduleTimeout):
                assert self._loop is not None
                self._timers = [t for t in self._timers if not t.cancelled()]
                self._timers.append(
                    self._loop.call_later(action.delay, self._enqueue, TimeoutDue(action.timeout))
                )
            elif isinstance(action, ReportEvidence):
                if self._hold_evidence(action.evidence):
                    await self._publish(EVIDENCE, encode_evidence(action.evidence))
            elif isinstance(action, Decide):
                await self._decide(action)
                return  # the height is over; the consensus task starts the next

    def _keep_square(self, proposal: Proposal) -> None:
        """Hold the data square of a proposal this node sends, so it can serve
        it to the validators that sample it: a re-proposed block, or a proposal
        re-sent after a restart (from the WAL), was not built in this process,
        and sampling this node would find nothing and refuse the proposal. A
        block executed here has its square at hand; another is decoded once."""
        known = self._pending.get(proposal.value_id)
        if known is not None:
            if recent_squares.get(known.block.header.data_root) is None:
                recent_squares.add(known.square)
            return
        try:
            with self._decoded_lock:
                record = decode_value(proposal.value, self._decoded)
        except DecodeError:
            return
        if recent_squares.get(record.block.header.data_root) is None:
            block_square(record.block.txs)

    @staticmethod
    def _members(vset: ValidatorSet) -> frozenset[bytes]:
        return frozenset(v.public_key for v in vset.validators)

    def _adopt_set(self, vset: ValidatorSet) -> None:
        """Run the next height with ``vset``; when its members changed (an epoch
        boundary, a jailing), only they may stay connected: a new validator is
        accepted from now on, a removed one is closed."""
        if self.net is not None and self._members(vset) != self._members(self.vset):
            self.net.set_allowed(self._members(vset), self.guests)
            log.info(
                "validator set changed",
                extra={"fields": {"height": self.chain.height + 1, "validators": len(vset)}},
            )
        self.vset = vset

    def _saw_vote(self, vote: Vote) -> None:
        """Record a vote for ``/v1/validators``. Every vote comes here verified:
        this node's own, or one that passed ``_gossip_in``'s signature check."""
        self.votes_seen.observe(
            vote, self.vset, self.tm.height, int(time.time() * 1000), verified=True
        )

    async def _decide(self, decision: Decide) -> None:
        if self.halted is not None:
            return
        if decision.height <= self.chain.height:
            # Block sync applied this height meanwhile (same block: both are certified).
            self._next_height_due = True
            return
        pending = self._pending.get(decision.value_id)
        t0 = time.perf_counter()

        def commit():
            p = pending
            if p is None or not self.chain.is_current(p):
                p = self.chain.validate(decision.value)
            result = self.chain.commit(p, decision.certificate)
            return self.after_commit(result)

        try:
            event = await asyncio.to_thread(commit)
        except BlockError:
            # Cannot happen for an honest majority (we prevoted only valid values);
            # if it does, block sync from peers repairs us.
            log.exception("decided block does not commit here")
            self._started = False
            if self.net is None:
                self._failed(RuntimeError(f"decided block {decision.height} does not commit"))
            return  # the sync task's next poll repairs us
        self.decisions.append((decision.height, decision.round))
        del self.decisions[:-1000]
        self.log_block(event, round=decision.round, ms=(time.perf_counter() - t0) * 1000)
        await asyncio.sleep(self._pause_after_commit())
        self._next_height_due = True

    def _pause_after_commit(self) -> float:
        """``commit_wait`` (none with transactions ready for the next block),
        or longer where ``block_interval`` asks for it."""
        now = time.monotonic()
        with self._pool_lock:
            ready = self.mempool.has_ready(self.nonce_of)
        wait = 0.0 if ready else self.commit_wait
        pause = max(wait, self._height_began + self.block_interval - now)
        head = self.chain.head
        if self.block_interval and head.proposer == self.key.address_raw:
            # A proposal's time is taken when it is built, a varying while
            # after its height begins: spacing the heights alone let two of our
            # own blocks' times come closer than the interval on a busy machine
            # (38 ms at 50 ms). Another proposer's time is its own clock's,
            # which may run ahead, so it sets no wait here.
            pause = max(pause, head.time_ms / 1000 + self.block_interval - time.time())
        self._height_began = now + pause
        return pause

    # --- the state machine's callbacks (worker thread, consensus task waiting) --
    def _get_value(self, height: int) -> bytes:
        params = self.chain.params
        with self._pool_lock:
            txs = self.mempool.reap(self.nonce_of, params.max_block_txs, params.max_block_bytes)
        pending = self.chain.propose(txs, verified=True)
        with self._pool_lock:
            for rejected in pending.rejected:
                self.mempool.discard(rejected.tx.hash)
                log.info(
                    "transaction left out of proposal",
                    extra={
                        "fields": {
                            "height": height,
                            "tx": rejected.tx.hash.hex()[:16],
                            "nonce": rejected.tx.nonce,
                            "code": rejected.error.code,
                            "reason": str(rejected.error),
                        }
                    },
                )
        self._keep_pending(pending)
        return pending.proposal_value()

    def _is_valid_proposal(self, height: int, proposal: Proposal) -> bool:
        """A fresh proposal's block must be made by its signer, the round's
        proposer, and not be from further ahead than our clock allows
        (docs/chain.md "Block time"); a re-proposal's block was prevoted by
        more than 2/3 in an earlier round, so it is checked like a synced one.
        Either is sampled from its signer, who holds its data: a re-proposal's
        maker may be gone, and sampling it would refuse the block for good."""
        if proposal.valid_round != -1:
            return self._is_valid(height, proposal.value, signer=proposal.proposer)
        maker = address_bytes(proposal.proposer)
        return self._is_valid(
            height, proposal.value, maker, int(time.time() * 1000), signer=proposal.proposer
        )

    def _is_valid(
        self,
        height: int,
        value: bytes,
        proposer: bytes | None = None,
        now_ms: int | None = None,
        signer: bytes | None = None,
    ) -> bool:
        try:
            with self._decoded_lock:
                record = decode_value(value, self._decoded)
        except DecodeError:
            return False
        known = self._pending.get(record.block.hash)
        if known is not None and self.chain.is_current(known):
            # Executed here before (our own proposal, or a re-proposal's block).
            return proposer is None or known.block.header.proposer == proposer
        try:
            pending = self.chain.validate(record, now_ms=now_ms, proposer=proposer)
        except BlockError as exc:
            log.warning(
                "prevote nil: proposal does not validate",
                extra={"fields": {"height": height, "reason": str(exc)}},
            )
            return False
        for check in self.proposal_checks:
            refused = check(record, signer)
            if refused is not None:
                log.warning(
                    "prevote nil: proposal refused",
                    extra={"fields": {"height": height, "reason": refused}},
                )
                self.chain.abandon(pending)
                return False
        self._keep_pending(pending)
        return True

    def _keep_pending(self, pending: Pending) -> None:
        """Keep a validated proposal's executed state for its commit; at most
        MAX_PENDING, the oldest dropped first except the value this validator is
        locked on or holds as valid (a dropped one is re-validated if decided)."""
        self._pending[pending.hash] = pending
        keep = {self.tm.locked_value_id, self.tm.valid_value_id, pending.hash}
        for value_id in list(self._pending):
            if len(self._pending) <= MAX_PENDING:
                break
            if value_id not in keep:
                self.chain.abandon(self._pending.pop(value_id))

    # --- block sync (its own task: never inside the consensus task) ------------
    async def _poll_task(self) -> None:
        """Poll every POLL_INTERVAL; at once when a peer connects (a starting
        node learns how far behind it is without waiting a period), and again
        right after a pass that applied blocks (a node far behind goes on
        fetching instead of pausing a period per SYNC_BATCH blocks)."""
        assert self.net is not None  # started only with a network
        synced = 0
        while True:
            if not synced:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._poll_wake.wait(), POLL_INTERVAL)
            self._poll_wake.clear()
            synced = 0
            try:
                synced = await self._poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("block sync pass failed")
            if time.monotonic() - self._progress_at > 2 * POLL_INTERVAL and self._started:
                self._progress_at = time.monotonic()
                for peer in self.net.connected_peers():
                    self._spawn(self._pull_round(peer))

    async def _poll_once(self) -> int:
        """Ask every peer its status at once (STATUS_TIMEOUT each); sync from the
        highest whose claim a certificate backs, if it is ahead of us. Returns
        the blocks applied."""
        if self.net is None or self._upgrade_halts():
            return 0
        peers = [p for p in self.net.connected_peers() if not self._backing_off(p)]
        claims = await asyncio.gather(*(self._claim_of(p) for p in peers))
        best, best_peer = self.chain.height, None
        for peer, height in zip(peers, claims, strict=True):
            if height is not None and height > best:
                best, best_peer = height, peer
        if best_peer is None:
            return 0
        stalled = time.monotonic() - self._progress_at > 2 * POLL_INTERVAL
        # One block ahead is what a peer that decided first looks like: our own
        # consensus is about to commit it, unless it is stalled or not running.
        if best > self.chain.height + 1 or stalled or not self._started:
            return await self._sync(best_peer, best)
        return 0

    async def _claim_of(self, peer: bytes) -> int | None:
        """The height ``peer`` claims, if above ours and backed by its commit
        certificate, and it holds our next block (its base, the snapshot it
        started from, is below it); None otherwise. A claim it cannot back costs
        it score."""
        assert self.net is not None
        try:
            raw = await self.net.request(
                peer, "status", b"", timeout=STATUS_TIMEOUT, blame_timeout=False
            )
            height, cert, base = parse_status(decode(raw, "status"))
            self._poll_backoff.pop(peer, None)
        except RequestTimeoutError:
            _back_off(self._poll_backoff, peer)  # crashed, or too busy: poll it less
            return None
        except (NetError, DecodeError, ClaimError) as exc:
            if isinstance(exc, ClaimError | DecodeError):
                self.net.report(peer, why=f"malformed status: {exc}")
            return None
        if height <= self.chain.height or base > self.chain.height:
            return None
        try:
            await asyncio.to_thread(check_claim, height, cert, self.vset, self.chain.chain_id)
        except ClaimError as exc:
            self.net.report(peer, why=f"status claim refused: {exc}")
            return None
        return height

    def _backing_off(self, peer: bytes) -> bool:
        now = time.monotonic()
        return any(
            peer in table and now < table[peer][0]
            for table in (self._sync_backoff, self._poll_backoff)
        )

    async def _sync(self, peer_id: bytes, target: int) -> int:  # noqa: C901 - fetch window, verify and apply, each with its own failure
        """Fetch (BLOCK_TIMEOUT each), verify (certificate and roots) and commit
        blocks up to ``target``, holding the chain lock only to apply each; then
        have the consensus task restart above them.

        Up to SYNC_WINDOW requests are in flight at once, so applying one block
        overlaps fetching the next ones instead of waiting a round trip each;
        blocks are still applied strictly in height order."""
        assert self.net is not None
        net = self.net
        applied = 0
        fetches: dict[int, asyncio.Task[bytes]] = {}
        start = self.chain.height + 1
        last = min(target, self.chain.height + SYNC_BATCH)

        def fetch_ahead(height: int) -> None:
            for h in range(height, min(last, height + SYNC_WINDOW - 1) + 1):
                if h not in fetches:
                    fetches[h] = asyncio.ensure_future(
                        net.request(peer_id, "block", encode(h), timeout=BLOCK_TIMEOUT)
                    )

        try:
            for height in range(start, last + 1):
                if self.halted is not None or self.chain.height != height - 1:
                    break  # consensus committed meanwhile: poll again
                fetch_ahead(height)
                try:
                    raw = await fetches.pop(height)
                except (RemoteError, RequestTimeoutError) as exc:
                    if sync_refusal_is_a_lie(exc):
                        self.net.report(peer_id, why=f"claimed {target}, did not serve {height}")
                    log.info("block sync request failed", extra={"fields": {"error": str(exc)}})
                    _back_off(self._sync_backoff, peer_id)
                    break
                except NetError as exc:
                    log.info("block sync request failed", extra={"fields": {"error": str(exc)}})
                    break

                def apply(raw=raw):
                    return self.after_commit(self.chain.apply_block(raw))

                async with self._chain_lock:
                    if self.chain.height != height - 1:
                        break  # consensus committed meanwhile: poll again
                    try:
                        await asyncio.to_thread(apply)
                    except BlockError as exc:
                        log.warning(
                            "peer served an invalid block",
                            extra={"fields": {"height": height, "error": str(exc)}},
                        )
                        self.net.report(peer_id, why=f"invalid block {height}")
                        _back_off(self._sync_backoff, peer_id)
                        for listener in self.refused_blocks:
                            listener(raw, exc)
                        break
                applied += 1
                self.synced_blocks += 1
        finally:
            for task in fetches.values():
                task.cancel()
            for task in fetches.values():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if applied:
            self._sync_backoff.pop(peer_id, None)
            log.info(
                "synced blocks", extra={"fields": {"to": self.chain.height, "blocks": applied}}
            )
        if applied or not self._started:
            self._enqueue(Synced())
        return applied


def _back_off(table: dict[bytes, tuple[float, float]], peer: bytes) -> None:
    """Leave ``peer`` out for a while, twice as long as last time (SYNC_BACKOFF
    the first time, SYNC_BACKOFF_MAX at most)."""
    _, last = table.get(peer, (0.0, SYNC_BACKOFF / 2))
    delay = min(2 * last, SYNC_BACKOFF_MAX)
    table[peer] = (time.monotonic() + delay, delay)


__all__ = ["ValidatorRuntime", "value_id_of"]
