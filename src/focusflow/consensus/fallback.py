"""Tendermint first; a height that stalls switches to Snowman polling.

The fast path is :class:`Tendermint` unchanged. When a height has run
``switch_after_rounds`` rounds without a decision (or validators holding more
than a third of the power have switched, so at least one honest one did), the
validator *switches* that height: it stops signing Tendermint messages for it
(the machine keeps counting, with no signer) and broadcasts a signed
:class:`Switch` with its lock (``locked_round``, ``locked_value_id``) and the
polka that proves the lock. It starts polling only once it holds switches of
validators with more than 2/3 of the power, and then prefers, and counts
answers for, only:

- the value of the **highest verified lock** in every switch it holds, if any
  switch carries a lock;
- otherwise any valid proposal of the height (Snowball among them).

Why a height Tendermint decided is never polled to another value. Say v got
more than 2/3 precommits in round r. Every polka of a round >= r is for v
(Tendermint's lock argument), so every verified lock of round >= r is on v.
Honest validators precommit only before they switch, and their locks change
only to newer polkas, so each honest precommitter of v switches with a lock on
v of round >= r. A poller's switches cover more than 2/3 of the power, the
honest precommitters more than 1/3, so at least one of them is among its
switches: its highest verified lock is of round >= r, hence v. So every honest
poller prefers v and answers v, from its first poll on; only liars ever answer
w, and w is finalized only if ``beta`` polls in a row each draw at least
``alpha_confidence`` liars (``snowball.failure_probability``, "byzantine
only"). Conversely, after a lock-free quorum of switches no Tendermint
decision can follow: its precommits would need one of those honest switchers
to have precommitted, hence locked, before switching.

A validator restarted in the middle of a height switches that height at once:
its WAL cannot tell whether it had switched before the crash, and a switch is
always allowed where voting again after one is not. Its switch is rebuilt from
the WAL's lock, the lock it switched with (a switched machine records no lock).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from focusflow.consensus.actions import Accept, Action, Decide, SendTo, Timeout
from focusflow.consensus.errors import InvalidMessageError
from focusflow.consensus.messages import Message, Proposal, Step
from focusflow.consensus.poll_messages import Chits, PollMessage, Query, Switch
from focusflow.consensus.signer import Signer
from focusflow.consensus.snowball import SnowmanParams
from focusflow.consensus.snowman import Snowman
from focusflow.consensus.tendermint import Tendermint
from focusflow.consensus.timeouts import Timeouts
from focusflow.consensus.validators import ValidatorSet, has_one_third, has_two_thirds
from focusflow.core.hashing import sha256
from focusflow.core.keys import verify as verify_signature

#: Rounds a height runs in Tendermint before it switches to polling.
SWITCH_AFTER_ROUNDS = 3


class _LockedPoller(Snowman):
    """A Snowman poller whose choices the fallback sets (it never proposes)."""

    only: bytes | None = None

    def counts_for(self, value_id: bytes) -> bool:
        return self.only is None or value_id == self.only


class Fallback:
    """One validator running Tendermint with the polling fallback (module docstring)."""

    def __init__(  # noqa: PLR0913 - Tendermint's and Snowman's arguments side by side
        self,
        chain_id: str,
        *,
        signer: Signer | None,
        get_value: Callable[[int], bytes],
        is_valid: Callable[[int, bytes], bool],
        timeouts: Timeouts | None = None,
        params: SnowmanParams | None = None,
        rng: random.Random | None = None,
        switch_after_rounds: int = SWITCH_AFTER_ROUNDS,
        value_id_of: Callable[[bytes], bytes] = sha256,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
        validate_proposal: Callable[[int, Proposal], bool] | None = None,
    ) -> None:
        """``validate_proposal``: Tendermint's (its proposals are the poller's choices)."""
        if switch_after_rounds < 1:
            raise ValueError("switch_after_rounds must be >= 1")
        self.chain_id = chain_id
        self.signer = signer
        self.verify = verify
        self.switch_after_rounds = switch_after_rounds
        self.tm = Tendermint(
            chain_id,
            signer=signer,
            get_value=get_value,
            is_valid=is_valid,
            timeouts=timeouts,
            value_id_of=value_id_of,
            verify=verify,
            validate_proposal=validate_proposal,
        )
        self.poller = _LockedPoller(
            chain_id,
            signer=signer,
            get_value=get_value,
            is_valid=is_valid,
            params=params,
            rng=rng,
            value_id_of=value_id_of,
            verify=verify,
            propose=False,
        )
        self.validators: ValidatorSet | None = None
        self._reset()

    def _reset(self) -> None:
        self.switched = False
        self.switches: dict[bytes, Switch] = {}
        self.done = False  # this height decided, by either path
        self.decided_by: str | None = None

    @property
    def height(self) -> int:
        return self.tm.height

    # ----------------------------------------------------------------- inputs

    def start_height(self, height: int, validator_set: ValidatorSet) -> list[Action]:
        self._reset()
        self.poller.only = None  # a lock of the last height says nothing of this one
        self.validators = validator_set
        self.tm.signer = self.signer
        resumed = self.signer is not None and bool(self.signer.signed(height))
        actions = self.tm.start_height(height, validator_set)
        actions += self.poller.start_height(height, validator_set)
        if resumed:
            actions += self._switch()  # restarted mid-height (module docstring)
        return self._after(actions)

    def receive(self, message: Message | PollMessage) -> list[Action]:
        if isinstance(message, Switch):
            actions: list[Action] = []
            if message.height == self.height and not self.done:
                self._on_switch(message)
                actions = self._update_polling()
            return self._after(actions)
        if isinstance(message, (Query, Chits)):
            return self._after(self.poller.receive(message))
        return self._after(self.tm.receive(message))

    def on_timeout(self, timeout: Timeout) -> list[Action]:
        if timeout.round < 0:
            return self._after(self.poller.on_timeout(timeout))
        return self._after(self.tm.on_timeout(timeout))

    def proposed_value_ids(self, round: int) -> list[bytes]:
        return self.tm.proposed_value_ids(round)

    def value_of(self, value_id: bytes) -> bytes | None:
        """A value of this height held here: a poller's choice or a Tendermint proposal."""
        value = self.poller.value_of(value_id)
        if value is None:
            for p in self.tm.proposals():
                if p.value_id == value_id:
                    return p.value
        return value

    def record_decision(self, height: int, value: bytes, value_id: bytes) -> None:
        """The height was decided by attestations: neither path goes on with it."""
        if height == self.height and not self.done:
            self.done = True
            self.decided_by = "certificate"
            self.poller.record_decision(height, value, value_id)

    # ------------------------------------------------------------- switching

    def _after(self, actions: list[Action]) -> list[Action]:
        """Keep one decision per height; switch when the height stalls."""
        out: list[Action] = []
        for action in actions:
            if isinstance(action, (Decide, Accept)):
                if self.done:
                    continue
                self.done = True
                self.decided_by = "tendermint" if isinstance(action, Decide) else "polling"
                self.poller.decided[action.height] = (action.value, action.value_id)
            out.append(action)
        if not self.done and not self.switched and self.validators is not None:
            switched_power = sum(self.validators.power_of(pk) for pk in self.switches)
            if self.tm.round >= self.switch_after_rounds or has_one_third(
                switched_power, self.validators.total_power
            ):
                out += self._switch()
        if not self.done and self.switched:
            out += self._send_switch()
            out += self._update_polling()
        return out

    def _switch(self) -> list[Action]:
        self.switched = True
        self.tm.signer = None  # never signs for this height again
        return self._send_switch()

    def _send_switch(self) -> list[Action]:
        """Sign and send this validator's switch once the polka of its lock is held.

        A validator restarted mid-height locked before the crash, but holds that
        round's prevotes again only when peers re-send them; until then it has
        switched (it signs nothing) without saying so.
        """
        if self.signer is None or self.validators is None:
            return []
        me = self.signer.public_key
        if me in self.switches or self.validators.index_of(me) is None:
            return []
        lock = self.signer.lock(self.height)
        if lock is None:
            switch = Switch.sign(self.signer.key, self.chain_id, self.height, -1, None, ())
        else:
            round_, _, value_id = lock
            polka = self.tm.polka(round_, value_id)
            power = sum(self.validators.power_of(v.validator) for v in polka)
            if not has_two_thirds(power, self.validators.total_power):
                return []
            switch = Switch.sign(
                self.signer.key, self.chain_id, self.height, round_, value_id, tuple(polka)
            )
        self.switches[me] = switch
        return [SendTo(None, switch)]

    def _on_switch(self, s: Switch) -> None:
        """Admit a switch: a member's, signed, its lock proven by a polka."""
        assert self.validators is not None
        if s.validator in self.switches:
            return
        if self.validators.index_of(s.validator) is None:
            raise InvalidMessageError("switch from a key outside the validator set")
        if not self.verify(s.validator, s.signature, s.sign_bytes(self.chain_id)):
            raise InvalidMessageError("bad switch signature")
        if s.locked_round >= 0:
            assert s.locked_value_id is not None
            power, seen = 0, set()
            for v in s.polka:
                if (v.height, v.round, v.step, v.value_id) != (
                    s.height,
                    s.locked_round,
                    Step.PREVOTE,
                    s.locked_value_id,
                ):
                    raise InvalidMessageError("switch polka holds another vote")
                if v.validator in seen or self.validators.index_of(v.validator) is None:
                    raise InvalidMessageError("switch polka repeats or strays outside the set")
                if not self.verify(v.validator, v.signature, v.sign_bytes(self.chain_id)):
                    raise InvalidMessageError("bad prevote signature in a switch polka")
                seen.add(v.validator)
                power += self.validators.power_of(v.validator)
            if not has_two_thirds(power, self.validators.total_power):
                raise InvalidMessageError("switch lock without a polka of more than 2/3")
        self.switches[s.validator] = s

    def _update_polling(self) -> list[Action]:
        """With a 2/3 quorum of switches, poll over what the rule allows."""
        assert self.validators is not None
        if not self.switched or self.done:
            return []
        power = sum(self.validators.power_of(pk) for pk in self.switches)
        if not has_two_thirds(power, self.validators.total_power):
            return []
        locks = [s for s in self.switches.values() if s.locked_round >= 0]
        poller = self.poller
        if locks:
            top = max(locks, key=lambda s: s.locked_round).locked_value_id
            assert top is not None
            if poller.only != top:
                held = next((p for p in self.tm.proposals() if p.value_id == top), None)
                if held is None or not self.tm.is_valid_proposal(held):
                    return []  # its proposal has not arrived (a polka's value is valid)
                poller.only = top
                poller.restrict_to(held.value, top)
        else:
            for p in self.tm.proposals():
                if p.value_id not in poller.values and self.tm.is_valid_proposal(p):
                    poller.add_choice(p.value, p.value_id, p.round)
        poller.polling = True
        return poller.kick()
