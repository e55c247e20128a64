"""A validator process: QUIC transport + Tendermint + the chain + the REST API.

One asyncio event loop runs everything that waits (the QUIC :class:`Node`,
uvicorn, timers). :class:`ValidatorRuntime` is the face the rest of the node
uses (the API, the extensions, the devnet and network launchers); the work is
done by parts, each named for what it does:

* the consensus driver (consensus_driver.py): the consensus task, which owns
  the Tendermint state machine and the chain and takes its inputs in order
  from a bounded inbox (inbox.py), carries out the machine's actions and
  commits each decided block;
* proposals (proposals.py): this validator's proposals from the mempool, and
  its judgement of others' (re-executed, every root compared, then the
  extensions' checks), with the executed state kept for the commit;
* gossip intake (gossip_intake.py): transactions, proposals, votes and
  evidence from gossip, each checked before it is forwarded or queued
  (gossip_check.py); evidence goes to the chain's pool (evidence.py);
* the round's messages (round_messages.py): what this node accepted or
  signed at the running height, kept once to answer ``round`` requests;
* peer requests (peer_requests.py): ``status``, ``block`` and ``round``
  served, and what a peer that connects is asked and handed;
* block sync (block_sync.py): a task of its own that believes a peer's
  height only when a commit certificate backs it, fetches the blocks and
  applies them under the chain lock the consensus task takes for each step;
* halts (halts.py): why the node stopped following its chain, for good (a
  verified fraud proof, or an upgrade this code cannot run).

Wire use of ``focusflow.net``:

* gossip topic ``tx``: transactions submitted to any node reach every mempool;
* ``block_part``: proposals (the value is the block and the parent's
  certificate, Brotli CBOR, see :meth:`Pending.proposal_value`);
* ``vote``: prevotes and precommits; ``evidence``: duplicate votes, verified
  into the chain's evidence pool (ours, from ``ReportEvidence``, too) for the
  next proposer to include and the bank to slash;
* request ``status`` -> ``[committed height, its commit certificate, base]``
  (rate-limited per peer); ``block`` (``height``) -> the stored block record
  with its certificate (block sync); ``round`` (``height``) -> the consensus
  messages this node holds for that height, so a validator that (re)connects
  mid-height catches up on votes it missed.

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
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from focusflow.chain.chain import Chain
from focusflow.chain.errors import BlockError
from focusflow.chain.tx import Tx
from focusflow.consensus import (
    ConsensusEngine,
    Signer,
    Timeouts,
    ValidatorSet,
    WriteAheadLog,
)
from focusflow.consensus.votes_seen import VotesSeen
from focusflow.core.keys import KeyPair
from focusflow.net import TRANSACTIONS, NetConfig, Node
from focusflow.net.errors import NetError
from focusflow.node.block_sync import BlockSync, SyncHooks
from focusflow.node.bootstrap import Bootstrap
from focusflow.node.consensus_driver import ConsensusDriver, DriverParts, Pacing, members
from focusflow.node.dag_host import DagHost, dag_log_path
from focusflow.node.engines import build_engine
from focusflow.node.extensions import NodeExtension, ProposalCheck
from focusflow.node.gossip_check import VerifiedSignatures
from focusflow.node.gossip_intake import GossipIntake
from focusflow.node.halts import Halts
from focusflow.node.inbox import Inbox, StartHeight
from focusflow.node.peer_requests import PeerRequests
from focusflow.node.proposals import Proposals, decode_value, value_id_of
from focusflow.node.round_messages import RoundMessages
from focusflow.node.runtime import BlockEvent, NodeRuntime

if TYPE_CHECKING:
    from focusflow.net.node import GossipHandler
    from focusflow.net.reqresp import Handler
    from focusflow.node.faults import FaultPlan

T = TypeVar("T")

log = logging.getLogger("focusflow.node")

#: Non-validator peers (full nodes) a node accepts at once besides the
#: validator set; each is scored and banned like any peer.
MAX_GUESTS = 16


class ValidatorRuntime(NodeRuntime):
    """A validator, or a full node: the face over its parts (see the module
    docstring). Start with :meth:`start_async` on a loop."""

    #: The classes of the proposals part and the consensus driver (a test's
    #: byzantine validator runs its own).
    proposals_type: ClassVar[type[Proposals]] = Proposals
    driver_type: ClassVar[type[ConsensusDriver]] = ConsensusDriver

    def __init__(  # noqa: PLR0913 - keyword-only node settings with defaults
        self,
        chain: Chain,
        key: KeyPair,
        *,
        wal_path: Path,
        listen: tuple[str, int] | None,
        peers: Iterable[str] = (),
        timeouts: Timeouts | None = None,
        snowman_timeouts: Mapping[str, float] | None = None,
        faucet_key: KeyPair | None = None,
        net_config: NetConfig | None = None,
        commit_wait: float = 0.2,
        block_interval: float = 0.0,
        faults: FaultPlan | None = None,
        follow_only: bool = False,
        guests: int = MAX_GUESTS,
    ) -> None:
        """``listen`` None: no transport (the one-validator devnet, see the module
        docstring). ``commit_wait`` and ``block_interval``: see
        consensus_driver.Pacing. ``snowman_timeouts``: a polling engine's timers
        (engines.snowman_timeouts_of). ``faults``: fault injection for tests, see
        NodeRuntime. ``follow_only``: a full node, which follows consensus and
        re-executes every block but never signs (no signer, no WAL; ``key`` is
        only its transport identity). ``guests``: non-validator peers (full
        nodes) accepted at once besides the validator set."""
        super().__init__(chain, faucet_key=faucet_key, faults=faults)
        self.follow_only = follow_only
        self.guests = guests
        self.key = key
        self.net: Node | None = None
        if listen is not None:
            # Only nodes of this genesis (chain id, parameters, focus engine) may connect.
            config = replace(net_config or NetConfig(), network_id=chain.genesis.hash)
            self.net = Node(key, listen=listen, peers=list(peers), config=config)
            self.net.set_allowed(members(chain.validators), guests)
        self.signer = None if follow_only else Signer(key, chain.chain_id, WriteAheadLog(wal_path))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        #: Parts added to the node by ``focusflow.node.extensions`` (share
        #: serving, fraud proofs, snapshots), attached before the transport
        #: starts; each reaches the node only as an ``ExtensionHost``.
        self.extensions: list[NodeExtension] = []
        #: Called on the loop with a certified block that block sync could not
        #: apply here (its bytes as served) and why (``on_refused_block``):
        #: focusflow.node.da_net proves a bad encoding of its data square from it.
        self.refused_blocks: list[Callable[[bytes, BlockError], None]] = []
        #: Taken by the consensus task for each step and by block sync to apply
        #: blocks: the chain is never used by both at once.
        chain_lock = asyncio.Lock()
        self.inbox = Inbox()
        self.held = RoundMessages()
        self.halts = Halts(chain)
        # The parts reach each other through the ones built after them only
        # when they run (the lambdas), never while the node is being built.
        self.proposals = self.proposals_type(node=self, locked=lambda: self.consensus.locked())
        #: The DAG mempool's host, on a chain whose genesis names it (a validator only).
        self.dag: DagHost | None = None
        if chain.params.engine().mempool == "dag" and not follow_only:
            self.dag = DagHost(
                node=self, key=key, log_path=dag_log_path(wal_path), run_soon=self.run_soon
            )
            self.proposals.dag = self.dag
            self.listeners.append(self.dag.on_block)
        verify = VerifiedSignatures()
        engine = build_engine(
            chain.params.engine(),
            chain.chain_id,
            signer=self.signer,
            proposals=self.proposals,
            timeouts=timeouts,
            verify=verify,
            snowman_timeouts=snowman_timeouts,
        )
        self.consensus = self.driver_type(
            node=self,
            tm=engine,
            parts=DriverParts(
                proposals=self.proposals,
                held=self.held,
                open_gate=self._open_height,
                inbox=self.inbox,
                halts=self.halts,
                chain_lock=chain_lock,
            ),
            pacing=Pacing(
                commit_wait=commit_wait, block_interval=block_interval, address=key.address_raw
            ),
            net=self.net,
            guests=guests,
            publish=self._publish,
        )
        self.halts.on_halt.append(self.consensus.cancel_timers)
        self.intake = GossipIntake(
            node=self,
            net=self.net,
            consensus=self.consensus,
            proposals=self.proposals,
            verify=verify,
            inbox=self.inbox,
            held=self.held,
        )
        self.requests = PeerRequests(
            node=self, net=self.net, consensus=self.consensus, held=self.held, intake=self.intake
        )
        self.sync: BlockSync | None = None
        if self.net is not None:
            self.sync = BlockSync(
                node=self,
                net=self.net,
                consensus=self.consensus,
                halts=self.halts,
                inbox=self.inbox,
                chain_lock=chain_lock,
                hooks=SyncHooks(
                    pull_round=self.requests.pull_round,
                    spawn=self._spawn,
                    refused_blocks=self.refused_blocks,
                ),
            )

    def dag_status(self) -> dict[str, int] | None:
        """The DAG mempool's counters (``GET /v1/status``), on a DAG chain's validator."""
        return None if self.dag is None else self.dag.status()

    async def _open_height(self, height: int, vset: ValidatorSet) -> None:
        """A height starts: the DAG follows its epoch (a validator that left the
        set gossips what it still owed), gossip intake opens for it."""
        if self.dag is not None:
            for raw in self.dag.adopt(height, vset):
                await self._publish(TRANSACTIONS, raw)
        await self.intake.open(height, vset)

    # --- NodeService -------------------------------------------------------------
    def submit(self, raw: bytes | Tx) -> Tx:
        """Admit locally, then gossip to every validator; a DAG chain's validator
        seals its clients' transactions into its own batches instead."""
        tx = super().submit(raw)
        if self.dag is not None and self.dag.sealing:
            return tx
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
        return self.consensus.state

    @property
    def tm(self) -> ConsensusEngine:
        """The consensus engine the driver runs (Tendermint unless the genesis
        names a polling engine)."""
        return self.consensus.tm

    @property
    def vset(self) -> ValidatorSet:
        """The validator set of the height under consensus."""
        return self.consensus.vset

    @property
    def votes_seen(self) -> VotesSeen:
        """Each validator's last vote, received or signed here (GET /v1/validators)."""
        return self.consensus.votes_seen

    @property
    def decisions(self) -> list[tuple[int, int]]:
        """(height, round) of recent decisions."""
        return self.consensus.decisions

    @property
    def failure(self) -> BaseException | None:
        """Why consensus stopped making progress here, once a step failed."""
        return self.consensus.failure

    @property
    def on_failure(self) -> Callable[[], None] | None:
        """Called on the event loop when a consensus step fails: the devnet
        stops (no peer could repair it); a network validator leaves it unset,
        block sync repairs."""
        return self.consensus.on_failure

    @on_failure.setter
    def on_failure(self, callback: Callable[[], None] | None) -> None:
        self.consensus.on_failure = callback

    @property
    def proposal_checks(self) -> list[ProposalCheck]:
        """Checks a proposal must pass, after it re-executed, before this node
        prevotes for it (data availability sampling; ``add_proposal_check``)."""
        return self.proposals.checks

    @property
    def synced_blocks(self) -> int:
        """Blocks block sync applied since the node started."""
        return 0 if self.sync is None else self.sync.synced_blocks

    @property
    def halted(self) -> str | None:
        """Why this node stopped following its chain (:meth:`halt`), or None."""
        return self.halts.reason

    def halt(self, reason: str) -> None:
        """Stop following this chain for good (a verified fraud proof showed a
        committed block is invalid, or the next height needs a focus algorithm
        this code lacks): consensus and sync stop, the API keeps serving what
        was committed, and /v1/status says why."""
        self.halts.halt(reason)

    @property
    def bootstrap(self) -> Bootstrap | None:
        """The bootstrap phases' duty (``node.bootstrap``), where one is attached."""
        return next((e for e in self.extensions if isinstance(e, Bootstrap)), None)

    # --- ExtensionHost (focusflow.node.extensions) ---------------------------------
    def register(self, name: str, handler: Handler) -> None:
        self._transport().register(name, handler)

    def subscribe(self, topic: str, handler: GossipHandler) -> None:
        self._transport().subscribe(topic, handler)

    def add_proposal_check(self, check: ProposalCheck) -> None:
        self.proposals.checks.append(check)

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

    # --- lifecycle -----------------------------------------------------------------
    async def start_async(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.inbox.open()
        if self.net is not None:
            self.intake.subscribe(self.net)
            self.requests.register(self.net)
            self.net.watch_peers(self._on_peer)
        for extension in self.extensions:
            extension.attach(self)
        if self.net is not None and self.dag is not None:
            self.dag.attach(self.net)
        if self.net is not None:
            await self.net.start()
        if self.dag is not None:
            self.dag.start()
        if self.sync is not None:
            self._tasks.append(asyncio.create_task(self.sync.run(), name="sync-poll"))
        self._tasks.append(asyncio.create_task(self.consensus.run(), name="consensus"))
        self.inbox.put(StartHeight())

    async def stop_async(self) -> None:
        self.consensus.cancel_timers()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for extension in self.extensions:
            with contextlib.suppress(Exception):
                await extension.stop()
        if self.dag is not None:
            await self.dag.stop()
        if self.net is not None:
            await self.net.stop()
        if self.signer is not None:
            self.signer.wal.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
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

    def _on_peer(self, peer_id: bytes, connected: bool) -> None:
        """A peer connected: poll it again at once, ask it for the running
        height's messages and hand it the pending transactions."""
        if not connected:
            return
        if self.sync is not None:
            self.sync.forgive(peer_id)
        if self._loop is not None:
            self._spawn(self.requests.pull_round(peer_id))
            if self.dag is None or not self.dag.sealing:  # a sealing validator shares none
                self._spawn(self.requests.share_mempool(peer_id))
            if self.sync is not None:
                self.sync.wake()


__all__ = [
    "MAX_GUESTS",
    "ValidatorRuntime",
    # Re-exported from proposals.py, where they moved.
    "decode_value",
    "value_id_of",
]
