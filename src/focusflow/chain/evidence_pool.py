"""Equivocation evidence waiting for a block, and the chain's rules for it.

The consensus layer proves an equivocation by itself (two signed, conflicting
votes, or two signed proposals of one round with different values:
:func:`focusflow.consensus.verify_evidence`); whether the chain punishes
it is decided here, the same way by the pool, the proposer and every validator:

* the offender is in the validator set of the evidence's height (sets change
  at epoch boundaries, chain/valsets.py records each);
* the evidence is of a height before the block that includes it and at most
  ``evidence_max_age`` blocks before it (an unbonding-like window: older
  offences go unpunished, so nobody can be slashed for ancient history after
  the stake has moved on);
* the offence, one per (validator public key, height), was not punished before.
  A validator that signed conflicting prevotes and precommits at one height, or
  in two rounds, or conflicting proposals, committed one offence: it is
  slashed once. The punishment is
  recorded in state at :func:`slashed_key` (the bank writes it when it slashes),
  so the rule survives restarts and is part of the state root.

:class:`EvidencePool` holds verified evidence (bounded) until a block includes it
or it expires. It is fed by gossip (topic ``evidence``) and by this validator's
own consensus machine (``ReportEvidence``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from focusflow.chain.errors import (
    AlreadyPunishedError,
    EvidenceError,
    EvidenceOutOfRangeError,
    EvidencePoolFullError,
)
from focusflow.chain.module import Offence
from focusflow.chain.params import ChainParams
from focusflow.chain.state import Readable
from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.consensus.evidence import Evidence, verify_evidence
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.keys import address_bytes

#: Where the bank records a punished offence: ``<prefix><public key><height, 8 bytes>``
#: -> ``[block height, slashed amount]``.
SLASHED_PREFIX = b"/token/slashed/"
#: Evidence held at most; real equivocations are rare and each needs a
#: validator's signatures, so a full pool means the chain is already in trouble.
MAX_POOL_EVIDENCE = 1_000

#: The validator set in force at a height (``ValidatorSets.at``).
ValidatorsAt = Callable[[int], ValidatorSet]


def slashed_key(public_key: bytes, height: int) -> bytes:
    return SLASHED_PREFIX + public_key + height.to_bytes(8, "big")


def check_evidence(
    evidence: Evidence,
    *,
    validators: ValidatorsAt,
    chain_id: str,
    params: ChainParams,
    block_height: int,
    state: Readable,
    newest: int | None = None,
) -> Offence:
    """The offence ``evidence`` proves for a block at ``block_height``, or EvidenceError.

    ``newest`` is the highest evidence height accepted (default: the block's
    parent; the pool also takes evidence of the height under consensus now).
    ``state`` is the state the block executes on (the parent's).
    """
    newest = block_height - 1 if newest is None else newest
    height = evidence.height
    if height < 1 or height > newest:
        raise EvidenceOutOfRangeError(
            f"evidence of height {height} cannot be included before height {height + 1}"
        )
    if block_height - height > params.evidence_max_age:
        raise EvidenceOutOfRangeError(
            f"evidence of height {height} is older than evidence_max_age="
            f"{params.evidence_max_age} at height {block_height}"
        )
    try:
        validator = verify_evidence(evidence, validators(height), chain_id)
    except InvalidEvidenceError as exc:
        raise EvidenceError(str(exc)) from None
    if state.get(slashed_key(validator.public_key, height)) is not None:
        raise AlreadyPunishedError(
            f"validator {validator.public_key.hex()[:16]} was slashed for height {height} already"
        )
    return Offence(
        validator.public_key, address_bytes(validator.public_key), height, evidence.hash()
    )


def block_offences(
    evidence: Sequence[Evidence],
    *,
    validators: ValidatorsAt,
    chain_id: str,
    params: ChainParams,
    block_height: int,
    state: Readable,
    strict: bool,
) -> tuple[list[Evidence], list[Offence]]:
    """The evidence a block includes and the offences it proves.

    ``strict`` (validating a received block): any invalid piece, a second piece
    for one offence, or more than ``max_block_evidence`` pieces raise
    EvidenceError. Otherwise (proposing) such pieces are left out.
    """
    kept: list[Evidence] = []
    offences: list[Offence] = []
    seen: set[tuple[bytes, int]] = set()
    for piece in evidence:
        if len(kept) >= params.max_block_evidence:
            if strict:
                raise EvidenceError(
                    f"block carries more than max_block_evidence={params.max_block_evidence}"
                )
            break
        try:
            offence = check_evidence(
                piece,
                validators=validators,
                chain_id=chain_id,
                params=params,
                block_height=block_height,
                state=state,
            )
            if (offence.public_key, offence.height) in seen:
                raise AlreadyPunishedError(
                    f"block proves the offence of {offence.public_key.hex()[:16]} "
                    f"at height {offence.height} twice"
                )
        except EvidenceError:
            if strict:
                raise
            continue
        seen.add((offence.public_key, offence.height))
        kept.append(piece)
        offences.append(offence)
    return kept, offences


class EvidencePool:
    """Verified evidence not yet in a block, one piece per offence, at most ``capacity``.

    Thread-safe: gossip adds on the event loop while the proposer reads in a
    worker thread.
    """

    def __init__(
        self,
        chain_id: str,
        validators: ValidatorsAt,
        params: ChainParams,
        capacity: int = MAX_POOL_EVIDENCE,
    ) -> None:
        self.chain_id = chain_id
        self.validators = validators
        self.params = params
        self.capacity = capacity
        self._lock = threading.Lock()
        self._held: dict[tuple[bytes, int], Evidence] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def add(self, evidence: Evidence, head_height: int, state: Readable) -> bool:
        """Verify and hold ``evidence``; False if its offence is held already.

        ``head_height`` is the committed height and ``state`` its state: evidence
        of the height under consensus (``head_height + 1``) is accepted, for a
        later block. Raises EvidenceError (invalid, out of range, punished) or
        EvidencePoolFullError.
        """
        offence = check_evidence(
            evidence,
            validators=self.validators,
            chain_id=self.chain_id,
            params=self.params,
            block_height=head_height + 1,
            state=state,
            newest=head_height + 1,
        )
        key = (offence.public_key, offence.height)
        with self._lock:
            if key in self._held:
                return False
            if len(self._held) >= self.capacity:
                raise EvidencePoolFullError(f"the evidence pool holds {self.capacity} pieces")
            self._held[key] = evidence
        return True

    def pending(self) -> list[Evidence]:
        """Held evidence, oldest offence first (the proposer re-checks it for its block)."""
        with self._lock:
            return sorted(self._held.values(), key=lambda e: (e.height, e.validator))

    def update(self, head_height: int, state: Readable) -> None:
        """After a commit: drop evidence that was punished or can no longer be included."""
        oldest = head_height + 1 - self.params.evidence_max_age
        with self._lock:
            for key in list(self._held):
                public_key, height = key
                if height < oldest or state.get(slashed_key(public_key, height)) is not None:
                    del self._held[key]


__all__ = [
    "MAX_POOL_EVIDENCE",
    "SLASHED_PREFIX",
    "EvidencePool",
    "ValidatorsAt",
    "block_offences",
    "check_evidence",
    "slashed_key",
]
