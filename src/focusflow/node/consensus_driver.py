"""The consensus driver: the task that runs the consensus engine over the chain.

The engine is the genesis's choice (``ChainParams.engine``): Tendermint, or a
polling engine (Snowman, Tendermint with the polling fallback) whose polled
decisions are notarised into commit certificates (consensus/notarise.py), so
that every committed block carries one. Poll messages (``SendTo``) go to the
named validators only, on their own topic.

One *consensus task* owns the state machine and the chain and handles its
inputs in order from the inbox (inbox.py): proposals and votes that gossip
intake checked (gossip_intake.py), its own timers, and block sync's word that
blocks were applied (block_sync.py). Every call into the state machine runs
in a worker thread (``asyncio.to_thread``), because it may call back into the
chain through the proposals part (proposals.py): ``get_value`` when this
validator proposes and ``is_valid`` to re-execute a proposal. The event loop
keeps serving the API and the network meanwhile; the task awaits one step at
a time, holding the chain lock block sync also takes, so the chain is never
used by two steps at once.

The state machine's actions are carried out here: a broadcast is held for
``round`` requests (round_messages.py) and published, a timeout is scheduled
back into the inbox, evidence is verified into the chain's pool and gossiped,
and a ``Decide`` commits the decided block with its certificate (re-validating
it if another proposal moved the focus engine since), runs the listeners, and
starts the next height after the commit wait. A height starts with the
chain's validator set for it: when its members changed, the transport lets in
only them (and the guests), and gossip intake opens its gate for the height.

Before each step the node's halts are asked (halts.py): a node that stopped
following its chain, or whose next height needs a focus algorithm this code
lacks, takes no step.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from focusflow.chain.errors import BlockError
from focusflow.consensus import (
    Accept,
    Broadcast,
    ConsensusEngine,
    Decide,
    Fallback,
    InvalidMessageError,
    Proposal,
    ReportEvidence,
    ScheduleTimeout,
    SendTo,
    SignRefusedError,
    Snowman,
    Tendermint,
    ValidatorSet,
    Vote,
    encode_evidence,
    encode_message,
    encode_poll_message,
)
from focusflow.consensus.notarise import Notarised
from focusflow.consensus.poll_messages import PollMessage
from focusflow.consensus.snowman import KEEP_DECISIONS
from focusflow.consensus.votes_seen import VotesSeen
from focusflow.core.errors import DecodeError
from focusflow.net import BLOCK_PARTS, EVIDENCE, POLLS, VOTES
from focusflow.node.evidence import hold_evidence
from focusflow.node.halts import Halts
from focusflow.node.inbox import Inbox, InboxItem, Received, StartHeight, Synced, TimeoutDue
from focusflow.node.proposals import Proposals
from focusflow.node.round_messages import RoundMessages

if TYPE_CHECKING:
    from focusflow.consensus.actions import Action
    from focusflow.net import Node
    from focusflow.node.runtime import BlockEvent, NodeRuntime

log = logging.getLogger("focusflow.node")

#: Publishes a payload on a gossip topic (the node's, which logs a failure).
Publish = Callable[[str, bytes], Coroutine[Any, Any, None]]
#: Opens gossip intake's gate for a height and its set (GossipIntake.open).
OpenGate = Callable[[int, ValidatorSet], Coroutine[Any, Any, None]]


#: How often an anvil-like devnet's idle consensus looks for a transaction or a
#: block asked for (seconds): the latency a transaction waits for its block.
DEMAND_POLL_S = 0.01
#: A height undecided this long (seconds) is logged as a warning, and again
#: each time as long again passes: where its state machine stands.
SLOW_HEIGHT_S = 10.0


def members(vset: ValidatorSet) -> frozenset[bytes]:
    """The node ids of ``vset``'s validators: who the transport lets in."""
    return frozenset(v.public_key for v in vset.validators)


@dataclass(frozen=True, kw_only=True)
class Pacing:
    """How long a decided height waits before the next one starts."""

    #: Pause after a commit before the next height starts (CometBFT's
    #: ``timeout_commit``) unless the next block has transactions ready:
    #: lets transactions gather instead of a stream of empty blocks, and
    #: late precommits arrive. With transactions ready, the next height
    #: starts at once: the pause would only add to their latency.
    #: Transactions stuck behind a nonce gap are not ready: they must not
    #: turn the chain into a stream of empty blocks.
    commit_wait: float = 0.2
    #: Least time from the start of one height to the start of the next:
    #: the devnet's --block-time. An idle chain makes a block per interval;
    #: after a block that took longer the next height starts at once, so a
    #: loaded devnet commits back to back, as its producer loop used to.
    block_interval: float = 0.0
    #: This node's account address: the proposer of the blocks it makes.
    address: bytes


@dataclass(frozen=True, kw_only=True)
class DriverParts:
    """The node's parts the consensus driver reads and feeds."""

    proposals: Proposals
    held: RoundMessages
    open_gate: OpenGate
    inbox: Inbox
    halts: Halts
    #: Taken for each step, and by block sync to apply blocks.
    chain_lock: asyncio.Lock


class ConsensusDriver:
    """Runs the state machine ``tm`` over the node's chain; see the module docstring."""

    def __init__(
        self,
        *,
        node: NodeRuntime,
        tm: ConsensusEngine,
        parts: DriverParts,
        pacing: Pacing,
        net: Node | None,
        guests: int,
        publish: Publish,
    ) -> None:
        """``net``: the transport whose allowed peers follow the validator set
        (None: the devnet), with ``guests`` non-validator peers besides."""
        self.node = node
        self.chain = node.chain
        self.tm = tm
        self.proposals = parts.proposals
        self.held = parts.held
        self.open_gate = parts.open_gate
        self.inbox = parts.inbox
        self.halts = parts.halts
        self.chain_lock = parts.chain_lock
        self.pacing = pacing
        self.net = net
        self.guests = guests
        self.publish = publish
        #: The set of the height under consensus (the chain's set of head + 1).
        self.vset: ValidatorSet = node.chain.validators
        self.started = False  # consensus running at tm.height
        self.next_height_due = False  # a decision was committed: start the next height
        #: When consensus last started a height (block sync pulls rounds after a stall).
        self.progress_at = time.monotonic()
        self._height_began = time.monotonic()
        #: When the running height started, and when it was last logged as slow.
        self._started_at = self._slow_logged_at = time.monotonic()
        self.timers: list[asyncio.TimerHandle] = []
        #: (height, round) of recent decisions.
        self.decisions: list[tuple[int, int]] = []
        #: Each validator's last vote, received or signed here (GET /v1/validators).
        self.votes_seen = VotesSeen(node.chain.chain_id)
        #: Why consensus stopped making progress here, once a step failed.
        self.failure: BaseException | None = None
        #: Called on the event loop when a step fails: the devnet stops (no peer
        #: could repair it); a network validator leaves it unset, block sync repairs.
        self.on_failure: Callable[[], None] | None = None

    # --- what the node reads ------------------------------------------------------
    @property
    def height(self) -> int:
        """The height the state machine runs."""
        return self.tm.height

    @property
    def engine(self) -> ConsensusEngine:
        """The engine deciding heights: a polling engine without its notarising wrapper."""
        return self.tm.inner if isinstance(self.tm, Notarised) else self.tm

    @property
    def tendermint(self) -> Tendermint | None:
        """The Tendermint machine running the height, if one does (not under Snowman)."""
        engine = self.engine
        if isinstance(engine, Tendermint):
            return engine
        return engine.tm if isinstance(engine, Fallback) else None

    @property
    def round(self) -> int:
        """The round the state machine is in (Snowman: its proposal slot)."""
        tm = self.tendermint
        if tm is not None:
            return tm.round
        engine = self.engine
        return engine.slot if isinstance(engine, Snowman) else 0

    @property
    def state(self) -> tuple[int, int, str, ValidatorSet]:
        """(height, round, step, validator set) of the state machine, read together
        (``ValidatorRuntime.consensus_state``); a polling engine's step is ``poll``."""
        tm = self.tendermint
        if tm is None:
            if not self.started:
                return self.chain.height + 1, 0, "propose", self.vset
            decided = bool(self.decisions) and self.decisions[-1][0] == self.tm.height
            step = "commit" if decided else "poll"
            return self.tm.height, self.round, step, self.vset
        height, vset = tm.height, tm.validators
        if vset is None:
            return self.chain.height + 1, 0, "propose", self.vset
        step = "commit" if tm.decision is not None else tm.step.name.lower()
        return height, tm.round, step, vset

    def _log_if_slow(self) -> None:
        """Warn, every SLOW_HEIGHT_S, while a height stays undecided: a stalled
        chain otherwise logs nothing, and the operator (or a failed test) is
        left to guess which step it waits in."""
        now = time.monotonic()
        if now - self._slow_logged_at < SLOW_HEIGHT_S:
            return
        self._slow_logged_at = now
        height, round_, step, _ = self.state
        fields: dict[str, object] = {
            "height": height,
            "seconds": round(now - self._started_at, 1),
            "round": round_,
            "step": step,
        }
        engine = self.engine
        poller = engine.poller if isinstance(engine, Fallback) else engine
        if isinstance(poller, Snowman):
            fields.update(poller.polling_state())
        log.warning("height undecided", extra={"fields": fields})

    def locked(self) -> tuple[bytes | None, bytes | None]:
        """The value ids the state machine is locked on and holds as valid."""
        tm = self.tendermint
        if tm is None:
            return None, None
        return tm.locked_value_id, tm.valid_value_id

    def cancel_timers(self) -> None:
        for timer in self.timers:
            timer.cancel()

    # --- the consensus task ---------------------------------------------------------
    async def run(self) -> None:
        """The consensus task: one input at a time, until cancelled."""
        while True:
            if self.next_height_due:
                # Started here, not from decide: with one validator start_height
                # itself decides, and start -> decide -> start would recurse
                # without end (RecursionError after some 300 heights).
                self.next_height_due = False
                item: InboxItem = StartHeight()
            else:
                item = await self.inbox.get()
            try:
                async with self.chain_lock:
                    await self.handle(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("consensus step failed", extra={"fields": {"input": item.kind}})
                self.failed(exc)

    def failed(self, exc: BaseException) -> None:
        """Consensus cannot go on by itself here: record why and tell the host."""
        self.failure = exc
        if self.on_failure is not None:
            self.on_failure()

    async def handle(self, item: InboxItem) -> None:
        """Take one input (the chain lock held)."""
        if self.halts.upgrade_halts():
            return
        if isinstance(item, StartHeight):
            await self.start_height()
        elif isinstance(item, Received):
            message, raw = item.message, item.raw
            # Checked for the height running when it arrived (see GossipIntake.receive).
            # A poll may be about a decided height (a laggard's) or the next one.
            polled = isinstance(message, PollMessage)
            if polled and not isinstance(self.tm, Notarised):
                return  # a Tendermint chain takes no polls
            low = self.tm.height - KEEP_DECISIONS if polled else self.tm.height
            high = self.tm.height + 1 if polled else self.tm.height
            if not self.started or not low <= message.height <= high:
                return
            # Polls reach only a polling engine (dropped above otherwise).
            receive: Callable[..., list[Action]] = self.tm.receive
            try:
                actions = await asyncio.to_thread(receive, message)
            except InvalidMessageError as exc:
                # The relay checks passed, so the two disagree: not the peer's fault.
                log.error(
                    "checked message refused by the state machine",
                    extra={"fields": {"error": str(exc)}},
                )
                return
            if not polled:
                self.held.hold(raw)
            if isinstance(message, Vote):
                self.saw_vote(message)
            await self.act(actions)
        elif isinstance(item, TimeoutDue):
            if self.started:
                await self.act(await asyncio.to_thread(self.tm.on_timeout, item.timeout))
                self._log_if_slow()
        elif isinstance(item, Synced) and (not self.started or self.tm.height <= self.chain.height):
            await self.start_height()

    async def start_height(self) -> None:
        """Start the height after the chain's head, unless it runs already."""
        height = self.chain.height + 1
        if height <= self.tm.height:
            self.started = True
            return
        self.proposals.clear()
        self.held.clear()
        self.cancel_timers()
        self.timers.clear()
        self._adopt_set(self.chain.validators)
        try:
            actions = await asyncio.to_thread(self.tm.start_height, height, self.vset)
        except SignRefusedError as exc:
            # Our WAL went further than our store: sync blocks before voting again.
            self.started = False
            log.warning("waiting for block sync", extra={"fields": {"reason": str(exc)}})
            return
        self.started = True
        self.progress_at = self._started_at = self._slow_logged_at = time.monotonic()
        await self.open_gate(height, self.vset)
        await self.act(actions)

    async def act(self, actions: list[Action]) -> None:
        """Carry out the state machine's actions, in order."""
        for action in actions:
            if isinstance(action, Broadcast):
                message = action.message
                raw = encode_message(message)
                if message.height == self.tm.height:
                    self.held.hold(raw)
                if isinstance(message, Vote):
                    self.saw_vote(message)
                if isinstance(message, Proposal):
                    await asyncio.to_thread(self.proposals.keep_square, message)
                topic = BLOCK_PARTS if isinstance(message, Proposal) else VOTES
                await self.publish(topic, raw)
            elif isinstance(action, ScheduleTimeout):
                loop = asyncio.get_running_loop()
                self.timers = [t for t in self.timers if not t.cancelled()]
                self.timers.append(
                    loop.call_later(action.delay, self.inbox.put, TimeoutDue(action.timeout))
                )
            elif isinstance(action, SendTo):
                await self._send_poll(action)
            elif isinstance(action, Accept):
                # A polling engine runs notarised: its accepts become attestations.
                log.error("an un-notarised accept reached the driver; ignored")
            elif isinstance(action, ReportEvidence):
                if hold_evidence(self.chain, action.evidence):
                    await self.publish(EVIDENCE, encode_evidence(action.evidence))
            elif isinstance(action, Decide):
                await self._decide(action)
                return  # the height is over; the consensus task starts the next

    async def _send_poll(self, action: SendTo) -> None:
        """A poll message to the named validators (all of them when None)."""
        raw = encode_poll_message(action.message)
        if action.peers is None or self.net is None:
            await self.publish(POLLS, raw)
            return
        for peer in action.peers:
            # A peer not connected is skipped: its place in the poll times out.
            await self.net.send_to(peer, POLLS, raw)

    def _adopt_set(self, vset: ValidatorSet) -> None:
        """Run the next height with ``vset``; when its members changed (an epoch
        boundary, a jailing), only they may stay connected: a new validator is
        accepted from now on, a removed one is closed."""
        if self.net is not None and members(vset) != members(self.vset):
            self.net.set_allowed(members(vset), self.guests)
            log.info(
                "validator set changed",
                extra={"fields": {"height": self.chain.height + 1, "validators": len(vset)}},
            )
        self.vset = vset

    def saw_vote(self, vote: Vote) -> None:
        """Record a vote for ``/v1/validators``. Every vote comes here verified:
        this node's own, or one that passed gossip intake's signature check."""
        self.votes_seen.observe(
            vote, self.vset, self.tm.height, int(time.time() * 1000), verified=True
        )

    # --- decisions ------------------------------------------------------------------
    async def _decide(self, decision: Decide) -> None:
        if self.halts.reason is not None:
            return
        if decision.height <= self.chain.height:
            # Block sync applied this height meanwhile (same block: both are certified).
            self.next_height_due = True
            return
        pending = self.proposals.executed(decision.value_id)
        t0 = time.perf_counter()

        def commit() -> BlockEvent:
            p = pending
            self.proposals.deciding(decision.value)
            if p is None or not self.chain.is_current(p):
                p = self.chain.validate(self.proposals.decode(decision.value))
            result = self.chain.commit(p, decision.certificate)
            return self.node.after_commit(result)

        try:
            event = await asyncio.to_thread(commit)
        except (BlockError, DecodeError):
            # Cannot happen for an honest majority (we prevoted only valid values);
            # if it does, block sync from peers repairs us.
            log.exception("decided block does not commit here")
            self.started = False
            if self.net is None:
                self.failed(RuntimeError(f"decided block {decision.height} does not commit"))
            return  # the sync task's next poll repairs us
        self.decisions.append((decision.height, decision.round))
        del self.decisions[:-1000]
        self.node.log_block(event, round=decision.round, ms=(time.perf_counter() - t0) * 1000)
        if self.node.dev is not None:
            await self._wait_for_demand()
        else:
            await asyncio.sleep(self._pause_after_commit())
        self.next_height_due = True

    async def _wait_for_demand(self) -> None:
        """An anvil-like devnet's next height waits for a reason to make a block:
        a transaction ready for it (a block per transaction, as anvil's automine)
        or a block ``evm_mine`` asked for. The pool is looked at every
        ``DEMAND_POLL_S``: admission does not wake consensus."""
        dev = self.node.dev
        assert dev is not None
        while not dev.take_block():
            if self.node.has_ready():
                return
            await asyncio.sleep(DEMAND_POLL_S)

    def _pause_after_commit(self) -> float:
        """``commit_wait`` (none with transactions ready for the next block),
        or longer where ``block_interval`` asks for it."""
        pacing = self.pacing
        now = time.monotonic()
        wait = 0.0 if self.node.has_ready() else pacing.commit_wait
        pause = max(wait, self._height_began + pacing.block_interval - now)
        head = self.chain.head
        if pacing.block_interval and head.proposer == pacing.address:
            # A proposal's time is taken when it is built, a varying while
            # after its height begins: spacing the heights alone let two of our
            # own blocks' times come closer than the interval on a busy machine
            # (38 ms at 50 ms). Another proposer's time is its own clock's,
            # which may run ahead, so it sets no wait here.
            pause = max(pause, head.time_ms / 1000 + pacing.block_interval - time.time())
        self._height_began = now + pause
        return pause


__all__ = ["ConsensusDriver", "DriverParts", "OpenGate", "Pacing", "Publish", "members"]
