"""Gossip intake: what arrives on the gossip topics, checked before anything uses it.

* ``tx``: a transaction is admitted to the mempool before it is forwarded;
  one that does not decode or is badly signed is its sender's fault (a node
  admits before it forwards), any other refusal (known, nonce used, fee too
  low) is neither forwarded nor blamed.
* ``block_part`` and ``vote``: proposals and votes are checked before they
  are forwarded or queued for the state machine (node/gossip_check.py):
  signature, membership, proposer, value id, at the height under consensus,
  the gate. Messages of the next height are held, bounded, until the consensus
  driver opens the gate for it (:meth:`GossipIntake.open`); a late vote of a
  decided height is recorded for ``/v1/validators``; a message that fails
  costs its sender (and a signer that signed what it should not) score, never
  an honest relayer's.
* ``evidence``: duplicate votes, verified into the chain's evidence pool
  (evidence.py) for the next proposer to include and the bank to slash.
* ``poll``: a polling engine's queries, answers and switches, sent to this
  node by name and never forwarded (:meth:`GossipIntake.on_poll`). A polled
  height's attestations (precommits at ``ACCEPT_ROUND``) come on ``vote`` and
  pass the round window by their round.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from focusflow.chain.chain import Chain
from focusflow.chain.errors import BadSignatureError
from focusflow.consensus import (
    Proposal,
    ValidatorSet,
    Vote,
    decode_evidence,
    decode_message,
)
from focusflow.consensus.notarise import ACCEPT_ROUND
from focusflow.consensus.poll_messages import decode_poll_message
from focusflow.consensus.snowman import KEEP_DECISIONS
from focusflow.core.errors import DecodeError, FocusflowError
from focusflow.net import (
    BLOCK_PARTS,
    EVIDENCE,
    POLLS,
    TRANSACTIONS,
    VOTES,
    Node,
    Offence,
    Verdict,
)
from focusflow.node.evidence import hold_evidence
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
from focusflow.node.inbox import Inbox, Received
from focusflow.node.proposals import Proposals
from focusflow.node.round_messages import RoundMessages
from focusflow.node.runtime import NodeRuntime

log = logging.getLogger("focusflow.node")

#: A poll message is some 200 bytes; a fallback switch carries its lock's
#: polka, at most MAX_POLKA_VOTES prevotes of about 170 bytes.
MAX_POLL_BYTES = 256 << 10
#: Heights below the running one whose polls are still answered.
POLL_HEIGHTS = KEEP_DECISIONS


class RunningRound(Protocol):
    """What gossip intake reads of the consensus it feeds (the consensus driver)."""

    @property
    def round(self) -> int:
        """The round the state machine is in."""
        ...

    def saw_vote(self, vote: Vote) -> None:
        """Record a vote whose signature was checked (``/v1/validators``)."""
        ...


class GossipIntake:
    """The node's gossip handlers; see the module docstring."""

    def __init__(
        self,
        *,
        node: NodeRuntime,
        net: Node | None,
        consensus: RunningRound,
        proposals: Proposals,
        verify: VerifiedSignatures,
        inbox: Inbox,
        held: RoundMessages,
    ) -> None:
        self.node = node
        self.chain: Chain = node.chain
        self.net = net
        self.consensus = consensus
        self.proposals = proposals
        self.verify = verify
        self.inbox = inbox
        self.held = held
        #: (height, set) whose gossip is checked and forwarded: the height running.
        self.gate: tuple[int, ValidatorSet] | None = None
        #: Proposal value ids accepted per round of the gate's height.
        self._proposals_seen: dict[int, set[bytes]] = {}
        self._future = FutureMessages()

    def subscribe(self, net: Node) -> None:
        net.subscribe(TRANSACTIONS, self.on_tx)
        net.subscribe(BLOCK_PARTS, self.on_proposal)
        net.subscribe(VOTES, self.on_vote)
        net.subscribe(POLLS, self.on_poll)
        net.subscribe(EVIDENCE, self.on_evidence)

    async def open(self, height: int, vset: ValidatorSet) -> None:
        """Check and forward the gossip of ``height`` (whose set is ``vset``)
        from now on, and take the messages held for it through the checks."""
        self.gate, self._proposals_seen = (height, vset), {}
        for sender, message, raw in self._future.take(height):
            await self.receive(sender, message, raw)

    # --- topics ---------------------------------------------------------------------
    async def on_tx(self, sender: bytes, payload: bytes) -> Verdict:
        """Admitted: forwarded. Undecodable or badly signed: the sender's fault (a
        node admits before it forwards). Refused otherwise (known, nonce used,
        fee too low): not forwarded, not proof of malice."""
        try:
            await self.node.admit(payload, relay=False)
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

    async def on_proposal(self, sender: bytes, payload: bytes) -> Verdict:
        try:
            message = decode_message(payload)
        except DecodeError:
            return Verdict.REJECT
        if not isinstance(message, Proposal):
            return Verdict.REJECT  # a vote on the proposal topic
        return await self.receive(sender, message, payload)

    async def on_vote(self, sender: bytes, payload: bytes) -> Verdict:
        if len(payload) > MAX_VOTE_BYTES:
            return Verdict.REJECT  # no vote is that large: do not even decode it
        try:
            message = decode_message(payload)
        except DecodeError:
            return Verdict.REJECT
        if not isinstance(message, Vote):
            return Verdict.REJECT
        return await self.receive(sender, message, payload)

    async def on_poll(self, sender: bytes, payload: bytes) -> Verdict:
        """A Snowman query or answer, or a fallback switch, sent to this node.

        Bounded before it is decoded, its signature and its signer's place in
        the set checked (a failure is the sender's fault: nobody relays polls,
        so the sender signed or forged it), then queued for the engine; never
        forwarded. Heights other than the running one go to the engine too
        (it answers a laggard's poll of a decided height, and holds the next
        height's queries) within ``POLL_HEIGHTS`` of it; the rest is dropped.
        """
        if len(payload) > MAX_POLL_BYTES:
            return Verdict.REJECT
        try:
            message = decode_poll_message(payload)
        except DecodeError:
            return Verdict.REJECT
        gate = self.gate
        if gate is None or not gate[0] - POLL_HEIGHTS <= message.height <= gate[0] + 1:
            return Verdict.IGNORE
        if not self.verify(
            message.signer, message.signature, message.sign_bytes(self.chain.chain_id)
        ):
            return Verdict.REJECT
        if message.height == gate[0] and gate[1].index_of(message.signer) is None:
            return Verdict.REJECT
        self.inbox.put(Received(sender, message, payload))
        return Verdict.IGNORE

    async def on_evidence(self, sender: bytes, payload: bytes) -> bool | None:
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
        return hold_evidence(self.chain, evidence)

    # --- consensus messages -----------------------------------------------------------
    async def receive(self, sender: bytes, message: Proposal | Vote, raw: bytes) -> Verdict:
        """Check a consensus message before anything else sees it (see
        gossip_check): ACCEPT (queued for the state machine and forwarded) only
        when it passes every check for the height running; the next height's are
        held, not forwarded; others are dropped. A failure is blamed here."""
        try:
            if self.held.is_held(raw):
                return Verdict.IGNORE  # accepted before: not queued or forwarded again
            check_signature(message, self.chain.chain_id, self.verify)
            gate = self.gate
            if gate is not None and message.height == gate[0]:
                attestation = isinstance(message, Vote) and message.round == ACCEPT_ROUND
                if message.round > self.consensus.round + ROUND_WINDOW and not attestation:
                    return Verdict.IGNORE
                if isinstance(message, Proposal):
                    seen = self._proposals_seen.setdefault(message.round, set())
                    if message.value_id in seen or len(seen) >= MAX_PROPOSALS_PER_ROUND:
                        return Verdict.IGNORE
                    await asyncio.to_thread(
                        check_for_height, message, gate[1], self.proposals.value_id
                    )
                    if gate is not self.gate:
                        return Verdict.IGNORE  # the height moved on meanwhile
                    seen.add(message.value_id)
                else:
                    check_for_height(message, gate[1], self.proposals.value_id)
                self.inbox.put(Received(sender, message, raw))
                return Verdict.ACCEPT
            next_height = gate[0] + 1 if gate is not None else self.chain.height + 1
            if message.height == next_height:
                self._future.add(sender, message, raw)
            elif isinstance(message, Vote) and message.height < next_height:
                # Late for the state machine (the height was decided with the
                # others' votes), but it shows its validator voting: without it a
                # validator that is always the last to vote looks silent.
                self.consensus.saw_vote(message)
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


__all__ = ["GossipIntake", "RunningRound"]
