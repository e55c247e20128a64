"""Snowman for one validator, as a sans-io state machine behind ``ConsensusEngine``.

Avalanche's Snowman on a chain that decides one block per height: at each
height the machine gathers valid proposals, prefers one, and polls samples of
validators until Snowball (``snowball.py``) finalizes a value. It is driven the
way :class:`~focusflow.consensus.tendermint.Tendermint` is (``start_height``,
``receive``, ``on_timeout``, each returning actions), so the simulator and later
the node drive either.

- **Proposals.** A height's proposer schedule is the validator set's
  (``proposer(slot)``, as Tendermint's rounds): the proposer of slot 0 proposes at
  once; while no valid proposal is known, each ``propose_timeout`` moves the
  machine to the next slot, whose proposer then proposes. Proposals are
  Tendermint ``Proposal`` messages with valid round -1, signed through the
  :class:`Signer` (one per slot, across crashes). Any valid proposal of a slot
  up to ``MAX_SLOT_AHEAD`` past the local one becomes a Snowball choice; the
  first one heard of is the first preference, and the slot ranks choices where
  a poll that prefers nothing is tied (``snowball.py``).
- **Polls.** With a preference, the machine keeps ``concurrent_polls`` polls
  open. A poll samples ``k`` validators by stake without replacement (the
  host's seeded ``random.Random``, so a simulation replays), sends each a signed
  :class:`Query`, and counts one :class:`Chits` per sampled responder, with a
  verified signature, for this poll; it ends when all answered or after
  its timer, or as soon as one choice has ``alpha_confidence`` answers (the
  rest cannot change the outcome). The timer starts at ``poll_timeout``; an
  answer that comes after its poll's timer doubles it for later polls (up to
  ``poll_timeout_max``), a poll that ends early takes 1% off (down to
  ``poll_timeout``); a validator that never answers lengthens nothing. Its
  own sample slot answers with its own preference.
- **Answers.** A query for the current height gets the preference (or nothing
  yet, held until a preference exists); for a past height the decision, at
  once (even while this height has no preference); for the
  next height it is held until that height starts. Each (requester, poll) is
  answered once.
- **Decision.** ``beta`` confident polls in a row: :class:`Accept`, no
  certificate. Safety is probabilistic: ``snowball.failure_probability``.
- **Its own answers** are signed through the signer, which keeps one answer per
  (height, requester, poll) across crashes, all of a step's new answers with
  one fsync (``Signer.sign_chits``).
- **Evidence.** Two answers of one responder to one of this machine's polls
  naming different values, and two valid proposals of one slot, are reported
  (:class:`ReportEvidence`): an honest validator signs neither.

The timers reuse :class:`Timeout`: step PROPOSE with ``round`` = slot is the
proposal timer, step PREVOTE with ``round`` = -1 - poll number the poll timer
(negative, so a Tendermint machine beside it, in the fallback, never mistakes
it for its own); the host only feeds them back.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from focusflow.consensus.actions import (
    Accept,
    Action,
    Broadcast,
    ReportEvidence,
    ScheduleTimeout,
    SendTo,
    Timeout,
)
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.evidence import DuplicateChitsEvidence, DuplicateProposalEvidence
from focusflow.consensus.messages import Message, Proposal, Step
from focusflow.consensus.poll_messages import Chits, PollMessage, Query, Switch
from focusflow.consensus.signer import ChitsRequest, Signer
from focusflow.consensus.snowball import Snowball, SnowmanParams
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.hashing import sha256
from focusflow.core.keys import verify as verify_signature

#: Proposal slots further ahead than this are dropped (a flood of future slots
#: cannot grow the machine's state).
MAX_SLOT_AHEAD = 64
#: Distinct proposals kept per height (Snowball choices).
MAX_CHOICES = 16
#: Queries held for a height not started or a preference not yet formed.
MAX_HELD_QUERIES = 4096
#: Decisions kept to answer queries of laggards.
KEEP_DECISIONS = 256
#: What a poll that ends before its timer takes off the timer. An answer that
#: comes after its poll's timer doubles it, so the timer settles where about one
#: poll in 70 ends before an answer it could have counted (ln 2 / -ln 0.99 is
#: 69): rare enough for ``beta`` polls in a row to pass. A long timer costs
#: little: a poll with a quorum ends as soon as it has one.
POLL_TIMEOUT_EASE = 0.99
#: Polls that ended at their timer kept per height, to notice late answers.
MAX_TIMED_OUT_POLLS = 256
#: Answers to this machine's polls kept per height to catch a responder that
#: contradicts itself (after a poll ends too: a second answer may come late).
MAX_KEPT_ANSWERS = 1 << 16


@dataclass
class Poll:
    sample: frozenset[bytes]
    #: Seconds its timer was set to (what a timeout doubles).
    timeout: float = 0.0
    answers: dict[bytes, bytes | None] = field(default_factory=dict)


class Snowman:
    """One validator's Snowman state (a follower, ``signer=None``, only answers nothing)."""

    def __init__(
        self,
        chain_id: str,
        *,
        signer: Signer | None,
        get_value: Callable[[int], bytes],
        is_valid: Callable[[int, bytes], bool],
        params: SnowmanParams | None = None,
        rng: random.Random | None = None,
        value_id_of: Callable[[bytes], bytes] = sha256,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
        propose: bool = True,
        validate_proposal: Callable[[int, Proposal], bool] | None = None,
    ) -> None:
        """``propose=False`` makes a poller that takes its choices from its owner
        (the fallback mode feeds it Tendermint's proposals) instead of proposing.
        ``validate_proposal``, when given, judges a proposal in place of
        ``is_valid`` (as Tendermint's does: the host sees the signed proposal, so
        it can require the block to name its signer as maker)."""
        self.chain_id = chain_id
        self.signer = signer
        self.get_value = get_value
        self.is_valid = is_valid
        self.params = params or SnowmanParams()
        self.rng = rng or random.Random(os.urandom(32))
        self.value_id_of = value_id_of
        self.verify = verify
        self.proposes = propose
        self.validate_proposal = validate_proposal
        self.height = -1
        self.validators: ValidatorSet | None = None
        self.decided: dict[int, tuple[bytes, bytes]] = {}  # height -> (value, value_id)
        self._held: list[Query] = []
        #: The timer of the next poll: kept across heights, since what it
        #: follows (how late answers come) outlasts a height.
        self.poll_timeout = self.params.poll_timeout
        self._reset()

    def _reset(self) -> None:
        self.slot = 0
        self.values: dict[bytes, bytes] = {}  # value id -> value (valid choices)
        self._valid_cache: dict[bytes, bool] = {}
        self.snowball: Snowball | None = None
        self._polls: dict[int, Poll] = {}
        #: Polls of this height that ended at their timer, kept to notice an
        #: answer that comes after it (what lengthens the timer).
        self._timed_out: dict[int, Poll] = {}
        self._answered: set[tuple[bytes, int]] = set()
        self._to_sign: list[ChitsRequest] = []
        self._received: dict[tuple[int, bytes], Chits] = {}  # (poll, responder) -> answer
        self._slot_proposals: dict[int, Proposal] = {}
        self._reported: set[bytes] = set()
        self._actions: list[Action] = []
        self.polling = self.proposes  # the fallback turns polling on itself

    # ----------------------------------------------------------------- inputs

    def start_height(self, height: int, validator_set: ValidatorSet) -> list[Action]:
        if height <= self.height:
            raise ValueError(f"height {height} does not follow {self.height}")
        if self.signer is not None:
            self.signer.prune(height)
        self._reset()
        self.height = height
        self.validators = validator_set
        k, ap, ac = self.params.effective(len(validator_set))
        self.k = k
        self.snowball = Snowball(ap, ac, self.params.beta)
        if self.proposes:
            self._enter_slot(0)
        held, self._held = self._held, []
        for q in held:
            if q.height >= height:
                self._held.append(q)
        self._answer_held()
        self._poll_more()
        return self._flush()

    def receive(self, message: Message | PollMessage) -> list[Action]:
        """Handle a proposal, query or chits; InvalidMessageError when provably bad."""
        if self.validators is None:
            return []
        if isinstance(message, Query):
            self._on_query(message)
        elif isinstance(message, Chits):
            self._on_chits(message)
        elif isinstance(message, Proposal):
            self._on_proposal(message)
        elif isinstance(message, Switch):
            return []
        else:
            raise InvalidMessageError("a vote is not a Snowman message")
        self._answer_held()
        self._poll_more()
        return self._flush()

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        if timeout.height != self.height or self.height in self.decided:
            return []
        if timeout.step == Step.PROPOSE:
            if timeout.round == self.slot and not self.values:
                self._enter_slot(self.slot + 1)
        else:
            number = -1 - timeout.round
            poll = self._polls.pop(number, None)
            if poll is not None:
                if len(self._timed_out) >= MAX_TIMED_OUT_POLLS:
                    del self._timed_out[next(iter(self._timed_out))]
                self._timed_out[number] = poll
                self._finish(poll)
        self._poll_more()
        return self._flush()

    def proposed_value_ids(self, round: int) -> list[bytes]:
        """The valid choices known at this height (every slot's)."""
        return list(self.values)

    # ------------------------------------------------------------- proposals

    def _enter_slot(self, slot: int) -> None:
        assert self.validators is not None
        self.slot = slot
        proposer = self.validators.proposer(slot).public_key
        if self.signer is not None and proposer == self.signer.public_key:
            value = self.get_value(self.height)
            proposal = self.signer.sign_proposal(
                self.height, slot, -1, value, self.value_id_of(value)
            )
            self._actions.append(Broadcast(proposal))
            self._on_proposal(proposal)
        if not self.values:
            timeout = Timeout(Step.PROPOSE, self.height, slot)
            self._actions.append(ScheduleTimeout(timeout, self.params.propose_timeout))

    def _on_proposal(self, p: Proposal) -> None:
        assert self.validators is not None
        if p.height != self.height or p.value_id in self.values or not self.proposes:
            return
        if p.round > self.slot + MAX_SLOT_AHEAD:
            return
        first = self._slot_proposals.get(p.round)
        if len(self.values) >= MAX_CHOICES and (first is None or first.value_id == p.value_id):
            return
        if p.proposer != self.validators.proposer(p.round).public_key:
            raise InvalidMessageError(f"slot {p.round} proposal not from its proposer")
        if p.valid_round != -1:
            raise InvalidMessageError("a Snowman proposal has valid round -1")
        if self.value_id_of(p.value) != p.value_id:
            raise InvalidMessageError("proposal value id is not the hash of its value")
        if not self.verify(p.proposer, p.signature, p.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad proposal signature")
        if self.validate_proposal is not None and p.value_id not in self._valid_cache:
            self._valid_cache[p.value_id] = bool(self.validate_proposal(self.height, p))
        if first is None:
            self._slot_proposals[p.round] = p
        elif first.value_id != p.value_id:
            self._report(DuplicateProposalEvidence.of(first, p))
        if len(self.values) < MAX_CHOICES:
            self.add_choice(p.value, p.value_id, p.round)

    def add_choice(self, value: bytes, value_id: bytes, rank: int = 0) -> None:
        """Make a value a choice if the chain finds it valid (asked once per id)."""
        if self.height in self.decided or value_id in self.values:
            return
        ok = self._valid_cache.get(value_id)
        if ok is None:
            ok = self._valid_cache[value_id] = bool(self.is_valid(self.height, value))
        if not ok:
            return
        assert self.snowball is not None
        self.values[value_id] = value
        self.snowball.add(value_id, rank)

    def restrict_to(self, value: bytes, value_id: bytes) -> None:
        """Make ``value`` the only choice, with fresh counters (the fallback's lock)."""
        assert self.snowball is not None
        sb = self.snowball
        self.values = {value_id: value}
        self._valid_cache[value_id] = True
        self.snowball = Snowball(sb.alpha_preference, sb.alpha_confidence, sb.beta)
        self.snowball.add(value_id)

    def kick(self) -> list[Action]:
        """Answer held queries and open polls after the owner changed the choices."""
        self._answer_held()
        self._poll_more()
        return self._flush()

    def value_of(self, value_id: bytes) -> bytes | None:
        """A valid choice of this height, or the decided value, by id."""
        value = self.values.get(value_id)
        if value is None:
            decided = self.decided.get(self.height)
            if decided is not None and decided[1] == value_id:
                value = decided[0]
        return value

    def record_decision(self, height: int, value: bytes, value_id: bytes) -> None:
        """The height was decided by a certificate: stop polling, answer with it."""
        if height == self.height and height not in self.decided:
            self.decided[height] = (value, value_id)
            self._polls.clear()

    def polling_state(self) -> dict[str, object]:
        """Where this height's polling stands, for a log line on a slow height."""
        sb = self.snowball
        return {
            "slot": self.slot,
            "choices": len(self.values),
            "polls": 0 if sb is None else sb.polls,
            "confidence": 0 if sb is None else sb.confidence,
            "open_polls": len(self._polls),
            "poll_timeout_s": round(self.poll_timeout, 3),
            "held_queries": len(self._held),
        }

    # ----------------------------------------------------------------- polls

    def preference(self) -> bytes | None:
        """What this machine answers at its height (its decision once decided)."""
        if self.height in self.decided:
            return self.decided[self.height][1]
        return None if self.snowball is None else self.snowball.preference

    def _poll_more(self) -> None:
        if (
            not self.polling
            or self.signer is None
            or self.height in self.decided
            or self.preference() is None
        ):
            return
        while len(self._polls) < self.params.concurrent_polls:
            self._issue_poll()
            if self.height in self.decided:
                return

    def _issue_poll(self) -> None:
        assert self.signer is not None and self.validators is not None
        sample = self._sample()
        # A random poll number: a restarted validator must not reuse one, or late
        # chits of its earlier life would count in its new polls.
        number = self.rng.getrandbits(62)
        poll = Poll(frozenset(sample), self.poll_timeout)
        me = self.signer.public_key
        if me in poll.sample:
            poll.answers[me] = self.preference()
        if len(poll.answers) == len(poll.sample):
            self._finish(poll)
            return
        self._polls[number] = poll
        query = Query.sign(self.signer.key, self.chain_id, self.height, number)
        peers = tuple(pk for pk in sample if pk != me)
        self._actions.append(SendTo(peers, query))
        timeout = Timeout(Step.PREVOTE, self.height, -1 - number)
        self._actions.append(ScheduleTimeout(timeout, poll.timeout))

    def _sample(self) -> list[bytes]:
        """``k`` distinct validators, each draw weighted by stake."""
        assert self.validators is not None
        pool = [(v.public_key, v.power) for v in self.validators.validators]
        picked: list[bytes] = []
        for _ in range(self.k):
            total = sum(w for _, w in pool)
            x = self.rng.randrange(total)
            for i, (pk, w) in enumerate(pool):
                if x < w:
                    picked.append(pk)
                    del pool[i]
                    break
                x -= w
        return picked

    def _on_chits(self, c: Chits) -> None:
        assert self.validators is not None
        if self.signer is None or c.requester != self.signer.public_key:
            return
        if c.height != self.height:
            return
        earlier = self._received.get((c.poll, c.responder))
        if earlier is not None:
            if earlier.value_id != c.value_id and c.signature != earlier.signature:
                if not self.verify(c.responder, c.signature, c.sign_bytes(self.chain_id)):
                    raise InvalidMessageError("bad chits signature")
                self._report(DuplicateChitsEvidence.of(earlier, c))
            return
        poll = self._polls.get(c.poll)
        if poll is None:
            self._on_late_answer(c)
            return
        if c.responder not in poll.sample or c.responder in poll.answers:
            return
        if not self.verify(c.responder, c.signature, c.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad chits signature")
        if len(self._received) < MAX_KEPT_ANSWERS:
            self._received[(c.poll, c.responder)] = c
        poll.answers[c.responder] = c.value_id
        counts = self._counts(poll)
        if len(poll.answers) == len(poll.sample) or self._has_quorum(counts):
            # Ended before its timer: answers come in time, so the timer may
            # come down again (never below the configured one).
            del self._polls[c.poll]
            self.poll_timeout = max(self.params.poll_timeout, POLL_TIMEOUT_EASE * self.poll_timeout)
            self._finish(poll, counts)

    def _on_late_answer(self, c: Chits) -> None:
        """A sampled validator answered after its poll's timer: answers come
        later than the timer allows here, so the next polls get twice that
        poll's time (once per poll; at most ``poll_timeout_max``). A poll that
        timed out for want of an answer that never comes (a validator down)
        lengthens nothing: waiting longer would not bring it."""
        poll = self._timed_out.get(c.poll)
        if poll is None or c.responder not in poll.sample or c.responder in poll.answers:
            return
        if not self.verify(c.responder, c.signature, c.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad chits signature")
        del self._timed_out[c.poll]
        longer = min(self.params.poll_timeout_max, 2 * poll.timeout)
        self.poll_timeout = max(self.poll_timeout, longer)

    def _counts(self, poll: Poll) -> dict[bytes, int]:
        """A poll's answers in stake-free units (one per sampled validator), per
        choice they may count for."""
        counts: dict[bytes, int] = {}
        for value_id in poll.answers.values():
            if value_id is not None and value_id in self.values and self.counts_for(value_id):
                counts[value_id] = counts.get(value_id, 0) + 1
        return counts

    def _has_quorum(self, counts: dict[bytes, int]) -> bool:
        """Whether one choice has ``alpha_confidence`` answers already. The rest
        cannot change what the poll records then (no other choice can reach the
        quorum, more than half of ``k``, and this one's count only grows past
        it), so the poll ends without waiting for a validator that may be down."""
        assert self.snowball is not None
        return max(counts.values(), default=0) >= self.snowball.alpha_confidence

    def _finish(self, poll: Poll, counts: dict[bytes, int] | None = None) -> None:
        """Record a poll's answers (``counts``, when already counted) in
        Snowball; decide when it finalizes."""
        assert self.snowball is not None
        self.snowball.record(self._counts(poll) if counts is None else counts)
        final = self.snowball.finalized
        if final is not None and self.height not in self.decided:
            self._decide(final)

    def counts_for(self, value_id: bytes) -> bool:
        """Whether answers naming ``value_id`` count (the fallback narrows this)."""
        return True

    def _decide(self, value_id: bytes) -> None:
        assert self.snowball is not None
        value = self.values[value_id]
        self.decided[self.height] = (value, value_id)
        for h in [h for h in self.decided if h <= self.height - KEEP_DECISIONS]:
            del self.decided[h]
        self._polls.clear()
        self._actions.append(Accept(self.height, value, value_id, self.snowball.polls))

    # --------------------------------------------------------------- answers

    def _on_query(self, q: Query) -> None:
        assert self.validators is not None
        if self.validators.index_of(q.requester) is None and q.height <= self.height:
            raise InvalidMessageError("query from a key outside the validator set")
        if q.height > self.height + 1 or self.signer is None:
            return
        if not self.verify(q.requester, q.signature, q.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad query signature")
        # A past height is answered from its decision at once: held until this
        # height has a preference, it kept a laggard's polls short of a quorum
        # while this height waited for a proposal.
        if q.height > self.height or (q.height == self.height and self.preference() is None):
            if len(self._held) < MAX_HELD_QUERIES:
                self._held.append(q)
            return
        self._answer(q)

    def _answer(self, q: Query) -> None:
        assert self.signer is not None
        if (q.requester, q.poll) in self._answered and q.height == self.height:
            return
        if q.height == self.height:
            self._answered.add((q.requester, q.poll))
            value_id = self.preference()
        else:
            past = self.decided.get(q.height)
            if past is None:
                return
            value_id = past[1]
        self._to_sign.append((q.height, q.requester, q.poll, value_id))

    def _report(self, evidence: DuplicateChitsEvidence | DuplicateProposalEvidence) -> None:
        key = evidence.hash()
        if key not in self._reported:
            self._reported.add(key)
            self._actions.append(ReportEvidence(evidence))

    def _answer_held(self) -> None:
        if not self._held:
            return
        preference = self.preference()
        held, self._held = self._held, []
        for q in held:
            if q.height > self.height or (q.height == self.height and preference is None):
                self._held.append(q)
            else:
                self._answer(q)

    def _flush(self) -> list[Action]:
        if self._to_sign:
            assert self.signer is not None
            requests, self._to_sign = self._to_sign, []
            for chits in self.signer.sign_chits(requests):
                if chits is not None:
                    self._actions.append(SendTo((chits.requester,), chits))
        actions, self._actions = self._actions, []
        return actions
