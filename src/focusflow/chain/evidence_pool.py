"""Equivocation evidence waiting for a block, and the chain's rules for it.

The consensus layer proves an equivocation by itself (two signed, conflicting
votes, or two signed proposals of one round with different values, or two
digests signed for one batch slot:
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

A batch equivocation (consensus/batches.py) names a slot ``(epoch, author,
sequence)``, not a height. The chain dates it by the epoch's heights
(:func:`~focusflow.chain.valsets.epoch_heights`, :func:`offence_heights`): it
is judged against the set of the epoch's first height, may be included once
that height is reached (the rule above with the first height for the
evidence's height), and until ``evidence_max_age`` blocks after the epoch's
last height, since an author or voter signs a slot anywhere in its epoch.
Unbonding outlasts ``evidence_max_age + epoch_blocks`` (``ChainParams.check``),
so stake that backed the epoch's set is still slashable then. The offence is
one per (validator, slot), recorded at :func:`slashed_slot_key`: an author that
sealed two batches into a slot and voted for both committed one offence.

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
from focusflow.chain.valsets import epoch_heights
from focusflow.consensus.batches import BatchEquivocation
from focusflow.consensus.errors import InvalidEvidenceError
from focusflow.consensus.evidence import BlockEvidence, verify_evidence
from focusflow.consensus.validators import ValidatorSet
from focusflow.core.keys import address_bytes

#: Where the bank records a punished offence: ``<prefix><public key><height, 8 bytes>``
#: -> ``[block height, slashed amount]``.
SLASHED_PREFIX = b"/token/slashed/"
#: Where it records a punished batch equivocation: ``<prefix><public key><epoch,
#: 8 bytes><author key><sequence, 8 bytes>`` -> ``[block height, slashed amount]``.
SLASHED_SLOT_PREFIX = b"/token/slashed_slot/"
#: Evidence held at most; real equivocations are rare and each needs a
#: validator's signatures, so a full pool means the chain is already in trouble.
MAX_POOL_EVIDENCE = 1_000

#: The validator set in force at a height (``ValidatorSets.at``).
ValidatorsAt = Callable[[int], ValidatorSet]


def slashed_key(public_key: bytes, height: int) -> bytes:
    return SLASHED_PREFIX + public_key + height.to_bytes(8, "big")


def slashed_slot_key(public_key: bytes, slot: tuple[int, bytes, int]) -> bytes:
    epoch, author, sequence = slot
    return (
        SLASHED_SLOT_PREFIX
        + public_key
        + epoch.to_bytes(8, "big")
        + author
        + sequence.to_bytes(8, "big")
    )


def offence_heights(evidence: BlockEvidence, params: ChainParams) -> tuple[int, int]:
    """The first and last heights the offence may have been committed at.

    A vote, proposal or answer is of one height. A batch slot is of an epoch,
    signed at any of its heights: the first names the set that judges it and
    dates the offence, the last is what its age counts from.
    """
    if isinstance(evidence, BatchEquivocation):
        return epoch_heights(evidence.epoch, params.epoch_blocks)
    return evidence.height, evidence.height


def offence_key(evidence: BlockEvidence) -> bytes:
    """Where the punishment of the offence ``evidence`` claims is recorded; it
    identifies the offence (verification confirms the claimed validator)."""
    if isinstance(evidence, BatchEquivocation):
        return slashed_slot_key(evidence.signer, evidence.slot)
    return slashed_key(evidence.validator, evidence.height)


def describe(evidence: BlockEvidence, params: ChainParams) -> str:
    """What the offence is of, for error messages: a height, or a batch slot
    and its epoch's heights."""
    if isinstance(evidence, BatchEquivocation):
        first, last = offence_heights(evidence, params)
        return (
            f"batch slot (epoch {evidence.epoch}, author {evidence.author.hex()[:16]}, "
            f"sequence {evidence.sequence}) of heights {first}..{last}"
        )
    return f"height {evidence.height}"


def check_evidence(
    evidence: BlockEvidence,
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
    first, last = offence_heights(evidence, params)
    what = describe(evidence, params)
    if first < 1 or first > newest:
        raise EvidenceOutOfRangeError(
            f"evidence of {what} cannot be included before height {first + 1}"
        )
    if block_height - last > params.evidence_max_age:
        raise EvidenceOutOfRangeError(
            f"evidence of {what} is older than evidence_max_age="
            f"{params.evidence_max_age} at height {block_height}"
        )
    try:
        validator = verify_evidence(evidence, validators(first), chain_id)
    except InvalidEvidenceError as exc:
        raise EvidenceError(str(exc)) from None
    key = offence_key(evidence)
    if state.get(key) is not None:
        raise AlreadyPunishedError(
            f"validator {validator.public_key.hex()[:16]} was slashed for {what} already"
        )
    return Offence(
        validator.public_key, address_bytes(validator.public_key), first, evidence.hash(), key
    )


def block_offences(
    evidence: Sequence[BlockEvidence],
    *,
    validators: ValidatorsAt,
    chain_id: str,
    params: ChainParams,
    block_height: int,
    state: Readable,
    strict: bool,
) -> tuple[list[BlockEvidence], list[Offence]]:
    """The evidence a block includes and the offences it proves.

    ``strict`` (validating a received block): any invalid piece, a second piece
    for one offence, or more than ``max_block_evidence`` pieces raise
    EvidenceError. Otherwise (proposing) such pieces are left out.
    """
    kept: list[BlockEvidence] = []
    offences: list[Offence] = []
    seen: set[bytes] = set()
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
            if offence.key in seen:
                raise AlreadyPunishedError(
                    f"block proves the offence of {offence.public_key.hex()[:16]} "
                    f"at {describe(piece, params)} twice"
                )
        except EvidenceError:
            if strict:
                raise
            continue
        seen.add(offence.key)
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
        #: Held evidence by its offence's key, with the height the offence is dated at.
        self._held: dict[bytes, tuple[int, BlockEvidence]] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def add(self, evidence: BlockEvidence, head_height: int, state: Readable) -> bool:
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
        with self._lock:
            if offence.key in self._held:
                return False
            if len(self._held) >= self.capacity:
                raise EvidencePoolFullError(f"the evidence pool holds {self.capacity} pieces")
            self._held[offence.key] = (offence.height, evidence)
        return True

    def pending(self) -> list[BlockEvidence]:
        """Held evidence, oldest offence first, ties by offence key (the proposer
        re-checks it for its block)."""
        with self._lock:
            ordered = sorted(self._held.items(), key=lambda item: (item[1][0], item[0]))
        return [evidence for _, (_, evidence) in ordered]

    def update(self, head_height: int, state: Readable) -> None:
        """After a commit: drop evidence that was punished or can no longer be included."""
        oldest = head_height + 1 - self.params.evidence_max_age
        with self._lock:
            for key, (_, evidence) in list(self._held.items()):
                last = offence_heights(evidence, self.params)[1]
                if last < oldest or state.get(key) is not None:
                    del self._held[key]


__all__ = [
    "MAX_POOL_EVIDENCE",
    "SLASHED_PREFIX",
    "SLASHED_SLOT_PREFIX",
    "EvidencePool",
    "ValidatorsAt",
    "block_offences",
    "check_evidence",
    "describe",
    "offence_heights",
    "offence_key",
    "slashed_key",
    "slashed_slot_key",
]
