"""Tendermint consensus for one validator, as a sans-io state machine.

This is Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
Milosevic 2018, arXiv:1807.04938), with the paper's names (``h_p``, ``round_p``,
``step_p``, ``lockedValue_p``, ``lockedRound_p``, ``validValue_p``,
``validRound_p``) as attributes, and each upon-rule a method that cites its lines.
Inputs are messages (:meth:`Tendermint.receive`), timer events
(:meth:`Tendermint.on_timeout`) and the start of a height
(:meth:`Tendermint.start_height`); each returns the actions of
:mod:`focusflow.consensus.actions` for the host to carry out.

Differences from the paper, each for a reason:

- "2f + 1" and "f + 1" are in voting power (more than 2/3 and 1/3 of the total).
- After deciding (line 51) the machine waits: the host applies the block and calls
  ``start_height`` with the next validator set, instead of lines 52-54 running at
  once, because the set of height h + 1 is an output of executing block h.
- ``valid(v)`` is the injected ``is_valid(height, value)`` (the chain re-executes the
  block and compares roots) and ``getValue()`` is ``get_value(height)``; both are
  called at most once per value and height. A host that judges more than the value
  passes ``validate_proposal(height, proposal)`` instead of relying on
  ``is_valid`` alone: it sees the signed proposal, so it can require a fresh
  proposal's block (valid round -1) to name the proposal's signer, the round's
  proposer, as its maker, and judge its time against the local clock; it is
  called at most once per value id, signer and kind (fresh or re-proposed): a
  host that fetches a re-proposal's data from its signer asks again when another
  validator re-proposes the value, so one that withholds it cannot keep the
  value invalid for the whole height while others are locked on it.
- Own messages pass through the :class:`~focusflow.consensus.signer.Signer`, which
  writes them to the WAL before they leave and never signs two for one step; on
  ``start_height`` the machine resumes from what the WAL says it signed and locked.
- Messages of the next height are buffered (bounded) and replayed by
  ``start_height``; older heights are dropped; rounds far ahead are dropped, so a
  faulty validator cannot make the machine hold unbounded state.
"""

from __future__ import annotations

from collections.abc import Callable

from focusflow.consensus.actions import (
    Action,
    Broadcast,
    Decide,
    ReportEvidence,
    ScheduleTimeout,
    Timeout,
)
from focusflow.consensus.certificate import CommitCertificate
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.evidence import DuplicateProposalEvidence, DuplicateVoteEvidence
from focusflow.consensus.messages import Message, Proposal, Step, Vote
from focusflow.consensus.signer import Signer
from focusflow.consensus.timeouts import Timeouts
from focusflow.consensus.validators import ValidatorSet
from focusflow.consensus.votes import RoundState
from focusflow.core.hashing import sha256
from focusflow.core.keys import verify as verify_signature

#: Messages for rounds further ahead than this are dropped (round skipping still
#: works: honest validators are never this far apart after GST).
MAX_ROUND_AHEAD = 1000
#: Distinct proposals kept per round (a byzantine proposer can sign any number).
MAX_PROPOSALS_PER_ROUND = 4
#: Messages of the next height kept until ``start_height``.
MAX_FUTURE_MESSAGES = 20_000


class Tendermint:
    """One validator's (or follower's, with ``signer=None``) consensus state."""

    def __init__(
        self,
        chain_id: str,
        *,
        signer: Signer | None,
        get_value: Callable[[int], bytes],
        is_valid: Callable[[int, bytes], bool],
        timeouts: Timeouts | None = None,
        value_id_of: Callable[[bytes], bytes] = sha256,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
        validate_proposal: Callable[[int, Proposal], bool] | None = None,
    ) -> None:
        """``verify(public_key, signature, message)`` checks Ed25519 signatures; a host
        that sees one message from many peers can pass a cached one.
        ``validate_proposal``, when given, replaces ``is_valid`` (module docstring)."""
        self.chain_id = chain_id
        self.signer = signer
        self.get_value = get_value
        self.is_valid = is_valid
        self.validate_proposal = validate_proposal
        self.timeouts = timeouts or Timeouts()
        self.value_id_of = value_id_of
        self.verify = verify
        self.height = -1  # h_p; -1 until the first start_height
        self.validators: ValidatorSet | None = None
        self._future: list[Message] = []
        self._reset()

    def _reset(self) -> None:
        self.round = 0  # round_p
        self.step = Step.PROPOSE  # step_p
        self.locked_value: bytes | None = None  # lockedValue_p
        self.locked_value_id: bytes | None = None
        self.locked_round = -1  # lockedRound_p
        self.valid_value: bytes | None = None  # validValue_p
        self.valid_value_id: bytes | None = None
        self.valid_round = -1  # validRound_p
        self.decision: Decide | None = None  # decision_p[h_p]
        self._rounds: dict[int, RoundState] = {}
        self._valid_cache: dict[tuple[bytes, bytes | None, bool], bool] = {}
        self._actions: list[Action] = []

    # ----------------------------------------------------------------- inputs

    def start_height(self, height: int, validator_set: ValidatorSet) -> list[Action]:
        """Begin ``height`` with its validator set (line 10, and lines 52-54).

        Raises SignRefusedError if the WAL shows this validator already started a
        later height (its block store is behind: sync blocks first). If the WAL
        holds messages this validator signed at ``height`` (it crashed and
        restarted), the machine resumes at the highest round it signed in, with
        the lock it recorded, and re-broadcasts those same messages.
        """
        if height <= self.height:
            raise ValueError(f"height {height} does not follow {self.height}")
        if self.signer is not None:
            self.signer.prune(height)  # SignRefusedError if the WAL went further
        self._reset()
        self.height = height
        self.validators = validator_set
        own: list[Message] = []
        if self.signer is not None:
            own = self.signer.signed(height)
            lock = self.signer.lock(height)
            if lock is not None:
                # A lock implies the polka of line 36 was seen: lines 38-39 and 42-43.
                round_, value, value_id = lock
                self.locked_round = self.valid_round = round_
                self.locked_value = self.valid_value = value
                self.locked_value_id = self.valid_value_id = value_id
        resume = max((m.round for m in own), default=0)
        self._start_round(resume)
        for message in own:
            if not (isinstance(message, Proposal) and message.round == resume):
                self._actions.append(Broadcast(message))
                self._add(message)
            if isinstance(message, Vote) and message.round == resume:
                self.step = max(self.step, message.step)
        future, self._future = self._future, []
        for message in future:
            if message.height > height:
                self._future.append(message)
            elif message.height == height:
                self._replay(message)
        return self._run()

    def _replay(self, message: Message) -> None:
        """Apply a buffered message; a bad one is dropped (its peer is long gone)."""
        try:
            admitted = self._admit(message)
        except InvalidMessageError:
            return
        if admitted:
            self._add(message)

    def receive(self, message: Message) -> list[Action]:
        """Handle a proposal or vote from the network.

        Raises InvalidMessageError when the message is provably bad (wrong signature,
        signer outside the set, wrong proposer, value id not the hash of the value):
        the transport should penalise the peer that relayed it.
        """
        if self.validators is None or message.height > self.height:
            if (message.height == self.height + 1 or self.validators is None) and len(
                self._future
            ) < MAX_FUTURE_MESSAGES:
                self._future.append(message)
            return []
        if message.height < self.height or self.decision is not None:
            return []
        if self._admit(message):
            self._add(message)
        return self._run()

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        """A timer scheduled by ScheduleTimeout fired (lines 57-67)."""
        if (timeout.height, timeout.round) != (self.height, self.round) or self.decision:
            return []
        if timeout.step == Step.PROPOSE:
            self._on_timeout_propose()
        elif timeout.step == Step.PREVOTE:
            self._on_timeout_prevote()
        else:
            self._on_timeout_precommit()
        return self._run()

    def proposed_value_ids(self, round: int) -> list[bytes]:
        """Ids of the proposals received for ``round`` of this height, in arrival order."""
        rs = self._rounds.get(round)
        return [] if rs is None else list(rs.proposals)

    def proposals(self) -> list[Proposal]:
        """Every proposal held at this height, by round then arrival."""
        return [p for r in sorted(self._rounds) for p in self._rounds[r].proposals.values()]

    def polka(self, round: int, value_id: bytes) -> list[Vote]:
        """The prevotes for ``value_id`` held for ``round`` (a polka once > 2/3)."""
        rs = self._rounds.get(round)
        return [] if rs is None else rs.prevotes.votes_for(value_id)

    def is_valid_proposal(self, proposal: Proposal) -> bool:
        """``valid(v)`` for a held proposal, from the same once-per-value cache."""
        return self._valid(proposal)

    # ------------------------------------------------------------ bookkeeping

    def _run(self) -> list[Action]:
        """Fire upon-rules until none applies, then hand over the actions."""
        while self.decision is None and self._fire_one_rule():
            pass
        actions, self._actions = self._actions, []
        return actions

    def _admit(self, message: Message) -> bool:
        """Check a message of the current height; False for harmless drops."""
        assert self.validators is not None
        if message.round > self.round + MAX_ROUND_AHEAD:
            return False
        rs = self._rounds.get(message.round)
        if isinstance(message, Proposal):
            if rs is not None and message.value_id in rs.proposals:
                return False
            if rs is not None and len(rs.proposals) >= MAX_PROPOSALS_PER_ROUND:
                return False
            expected = self.validators.proposer(message.round).public_key
            if message.proposer != expected:
                raise InvalidMessageError(f"round {message.round} proposal not from its proposer")
            if not -1 <= message.valid_round < message.round:
                raise InvalidMessageError(f"valid round {message.valid_round} not below round")
            if self.value_id_of(message.value) != message.value_id:
                raise InvalidMessageError("proposal value id is not the hash of its value")
            if not self.verify(
                message.proposer, message.signature, message.sign_bytes(self.chain_id)
            ):
                raise InvalidMessageError("bad proposal signature")
            return True
        if rs is not None and rs.votes(message.step).has(message):
            return False
        if self.validators.index_of(message.validator) is None:
            raise InvalidMessageError("vote from a key outside the validator set")
        if not self.verify(message.validator, message.signature, message.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad vote signature")
        return True

    def _add(self, message: Message) -> None:
        rs = self._round_state(message.round)
        if isinstance(message, Proposal):
            earlier = next(iter(rs.proposals.values()), None)
            if earlier is not None and earlier.value_id != message.value_id:
                # Every proposal held for a round is from its proposer (_admit).
                self._actions.append(ReportEvidence(DuplicateProposalEvidence.of(earlier, message)))
            rs.proposals.setdefault(message.value_id, message)
            rs.note_sender(message.proposer)
            return
        earlier_vote = rs.votes(message.step).add(message, rs.proposals)
        if earlier_vote is not None:
            self._actions.append(ReportEvidence(DuplicateVoteEvidence.of(earlier_vote, message)))
        rs.note_sender(message.validator)

    def _round_state(self, round: int) -> RoundState:
        rs = self._rounds.get(round)
        if rs is None:
            assert self.validators is not None
            rs = self._rounds[round] = RoundState(self.validators)
        return rs

    def _valid(self, proposal: Proposal) -> bool:
        """``valid(v)``, asked of the chain once per value id and height (and, with
        ``validate_proposal``, per signer and kind: the host may judge a fresh
        proposal by who made it, and fetch a re-proposal's data from who
        re-proposed it; one re-proposer that withholds it must not make the
        value invalid here for the height, or a lock on it would never clear)."""
        key: tuple[bytes, bytes | None, bool]
        if self.validate_proposal is None:
            key = (proposal.value_id, None, False)
        else:
            key = (proposal.value_id, proposal.proposer, proposal.valid_round == -1)
        ok = self._valid_cache.get(key)
        if ok is None:
            if self.validate_proposal is None:
                ok = bool(self.is_valid(self.height, proposal.value))
            else:
                ok = bool(self.validate_proposal(self.height, proposal))
            self._valid_cache[key] = ok
        return ok

    def _is_validator(self) -> bool:
        assert self.validators is not None
        signer = self.signer
        return signer is not None and self.validators.index_of(signer.public_key) is not None

    def _schedule(self, step: Step) -> None:
        delay = self.timeouts.duration(step, self.round)
        self._actions.append(ScheduleTimeout(Timeout(step, self.height, self.round), delay))

    def _broadcast(self, message: Message) -> None:
        self._actions.append(Broadcast(message))
        self._add(message)

    def _vote(self, step: Step, value_id: bytes | None) -> None:
        """Sign (through the WAL) and broadcast a vote, and move to ``step``."""
        if self._is_validator():
            assert self.signer is not None
            self._broadcast(self.signer.sign_vote(self.height, self.round, step, value_id))
        self.step = step

    # ------------------------------------------------------------- Algorithm 1

    def _start_round(self, round: int) -> None:
        """Lines 11-21: StartRound(round)."""
        assert self.validators is not None
        self.round = round
        self.step = Step.PROPOSE
        self._round_state(round)
        proposer = self.validators.proposer(round).public_key
        if self._is_validator() and self.signer is not None and proposer == self.signer.public_key:
            if self.valid_value is not None and self.valid_value_id is not None:
                value, value_id = self.valid_value, self.valid_value_id  # line 16
            else:
                value = self.get_value(self.height)  # line 18
                value_id = self.value_id_of(value)
            proposal = self.signer.sign_proposal(
                self.height, round, self.valid_round, value, value_id
            )
            self._broadcast(proposal)  # line 19
        else:
            self._schedule(Step.PROPOSE)  # line 21

    def _fire_one_rule(self) -> bool:
        """Apply the first upon-rule whose condition holds; False when none does.

        Line 49 comes first (a decision ends the height), then line 55 (round skip),
        then the rules of the current round in the paper's order.
        """
        return (
            self._rule_decide()
            or self._rule_skip_round()
            or self._rule_prevote_on_proposal()
            or self._rule_schedule_prevote_timeout()
            or self._rule_lock_on_polka()
            or self._rule_precommit_nil()
            or self._rule_schedule_precommit_timeout()
        )

    def _rule_prevote_on_proposal(self) -> bool:
        """Lines 22-27 (fresh proposal, vr = -1) and 28-33 (re-proposal with a POL).

        Line 23: prevote v if valid and we are not locked, or locked on v. Line 29:
        also if our lock is not newer than the proposal's proof-of-lock round vr,
        which is what unlocks a validator that locked on a value which lost.
        """
        if self.step != Step.PROPOSE:
            return False
        for p in self._rounds[self.round].proposals.values():
            vr = p.valid_round
            if vr == -1:
                ok = self._valid(p) and (
                    self.locked_round == -1 or self.locked_value_id == p.value_id
                )
            elif (
                vr < self.round
                and vr in self._rounds
                and (self._rounds[vr].prevotes.has_quorum_for(p.value_id))
            ):
                ok = self._valid(p) and (
                    self.locked_round <= vr or self.locked_value_id == p.value_id
                )
            else:
                continue
            self._vote(Step.PREVOTE, p.value_id if ok else None)
            return True
        return False

    def _rule_schedule_prevote_timeout(self) -> bool:
        """Lines 34-35: 2f+1 prevotes for anything, first time in this round."""
        rs = self._rounds[self.round]
        if self.step != Step.PREVOTE or rs.prevote_timeout_scheduled:
            return False
        if not rs.prevotes.has_quorum_any():
            return False
        rs.prevote_timeout_scheduled = True
        self._schedule(Step.PREVOTE)
        return True

    def _rule_lock_on_polka(self) -> bool:
        """Lines 36-43: a proposal and 2f+1 prevotes for it (a polka) in this round.

        In step prevote: lock on v and precommit it (lines 37-41; the lock is written
        to the WAL first). In any step >= prevote: v becomes the valid value that
        this validator will re-propose (lines 42-43).
        """
        rs = self._rounds[self.round]
        if self.step < Step.PREVOTE or rs.polka_seen:
            return False
        value_id = rs.prevotes.quorum_value()
        if value_id is None or value_id not in rs.proposals:
            return False
        p = rs.proposals[value_id]
        if not self._valid(p):
            return False
        rs.polka_seen = True
        if self.step == Step.PREVOTE:
            self.locked_value, self.locked_value_id, self.locked_round = (
                p.value,
                value_id,
                self.round,
            )
            if self._is_validator():
                assert self.signer is not None
                self.signer.record_lock(self.height, self.round, p.value, value_id)
            self._vote(Step.PRECOMMIT, value_id)
        self.valid_value, self.valid_value_id, self.valid_round = p.value, value_id, self.round
        return True

    def _rule_precommit_nil(self) -> bool:
        """Lines 44-46: 2f+1 nil prevotes: precommit nil."""
        if self.step != Step.PREVOTE or not self._rounds[self.round].prevotes.has_quorum_for(None):
            return False
        self._vote(Step.PRECOMMIT, None)
        return True

    def _rule_schedule_precommit_timeout(self) -> bool:
        """Lines 47-48: 2f+1 precommits for anything, first time in this round."""
        rs = self._rounds[self.round]
        if rs.precommit_timeout_scheduled or not rs.precommits.has_quorum_any():
            return False
        rs.precommit_timeout_scheduled = True
        self._schedule(Step.PRECOMMIT)
        return True

    def _rule_decide(self) -> bool:
        """Lines 49-51: a proposal of any round r and 2f+1 precommits for it: decide."""
        for r, rs in self._rounds.items():
            value_id = rs.precommits.quorum_value()
            if value_id is None or value_id not in rs.proposals:
                continue
            p = rs.proposals[value_id]
            if not self._valid(p):
                continue
            cert = CommitCertificate.from_votes(rs.precommits.votes_for(value_id))
            self.decision = Decide(self.height, r, p.value, value_id, cert)
            self._actions.append(self.decision)
            return True
        return False

    def _rule_skip_round(self) -> bool:
        """Lines 55-56: f+1 of the power sent messages of a higher round: go there."""
        higher = [r for r, rs in self._rounds.items() if r > self.round and rs.has_skip_quorum()]
        if not higher:
            return False
        self._start_round(max(higher))
        return True

    def _on_timeout_propose(self) -> None:
        """Lines 57-60: no acceptable proposal in time: prevote nil."""
        if self.step == Step.PROPOSE:
            self._vote(Step.PREVOTE, None)

    def _on_timeout_prevote(self) -> None:
        """Lines 61-64: prevotes split or late: precommit nil."""
        if self.step == Step.PREVOTE:
            self._vote(Step.PRECOMMIT, None)

    def _on_timeout_precommit(self) -> None:
        """Lines 65-67: no decision in this round: start the next one."""
        self._start_round(self.round + 1)
