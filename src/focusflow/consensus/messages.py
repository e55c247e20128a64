"""Proposals and votes: what validators sign and send each other.

Names follow Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
Milosevic 2018): a ``⟨PROPOSAL, h, r, v, vr⟩`` carries a value ``v`` and its valid
round ``vr`` (-1 when the proposer has no polka for it); a ``⟨PREVOTE, h, r, id(v)⟩``
or ``⟨PRECOMMIT, h, r, id(v)⟩`` carries the value's id or ``nil`` (None here).

Values are opaque bytes (a serialized block); ``value_id`` is their 32-byte hash,
and votes name values only by id, so a vote is ~100 bytes whatever the block size.

What is signed (``docs/consensus.md`` has the byte layout): the canonical CBOR of a
list that starts with a domain tag naming the message kind and version, then the
chain id, height, round, step and value id (and the valid round for proposals).
The domain tag keeps a vote signature from ever being valid as a proposal or
transaction signature, the chain id keeps it from being replayed on another chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, verify

VALUE_ID_SIZE = 32
#: Heights and rounds are unsigned 63-bit integers, like CometBFT's int64 fields.
MAX_INT = 2**63 - 1

PROPOSAL_DOMAIN = "focusflow/consensus/proposal/v1"
VOTE_DOMAIN = "focusflow/consensus/vote/v1"


class Step(IntEnum):
    """``step_p`` of Algorithm 1; the order matters (line 36 tests ``step_p ≥ prevote``)."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


def proposal_sign_bytes(
    chain_id: str, height: int, round: int, valid_round: int, value_id: bytes
) -> bytes:
    """The bytes a proposer signs: the value is bound through its id."""
    return encode([PROPOSAL_DOMAIN, chain_id, height, round, valid_round, value_id])


def vote_sign_bytes(
    chain_id: str, height: int, round: int, step: Step, value_id: bytes | None
) -> bytes:
    """The bytes a validator signs for a prevote or precommit (nil is CBOR null)."""
    return encode([VOTE_DOMAIN, chain_id, height, round, int(step), value_id])


@dataclass(frozen=True)
class Proposal:
    """``⟨PROPOSAL, height, round, value, valid_round⟩`` signed by ``proposer``."""

    height: int
    round: int
    valid_round: int
    value: bytes
    value_id: bytes
    proposer: bytes
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: KeyPair,
        chain_id: str,
        height: int,
        round: int,
        valid_round: int,
        value: bytes,
        value_id: bytes,
    ) -> Proposal:
        sig = key.sign(proposal_sign_bytes(chain_id, height, round, valid_round, value_id))
        return cls(height, round, valid_round, value, value_id, key.public_key, sig)

    def sign_bytes(self, chain_id: str) -> bytes:
        return proposal_sign_bytes(
            chain_id, self.height, self.round, self.valid_round, self.value_id
        )

    def verify_signature(self, chain_id: str) -> bool:
        return verify(self.proposer, self.signature, self.sign_bytes(chain_id))


@dataclass(frozen=True)
class Vote:
    """A prevote or precommit for ``value_id`` (None is nil) signed by ``validator``."""

    height: int
    round: int
    step: Step
    value_id: bytes | None
    validator: bytes
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: KeyPair,
        chain_id: str,
        height: int,
        round: int,
        step: Step,
        value_id: bytes | None,
    ) -> Vote:
        sig = key.sign(vote_sign_bytes(chain_id, height, round, step, value_id))
        return cls(height, round, Step(step), value_id, key.public_key, sig)

    def sign_bytes(self, chain_id: str) -> bytes:
        return vote_sign_bytes(chain_id, self.height, self.round, self.step, self.value_id)

    def verify_signature(self, chain_id: str) -> bool:
        return verify(self.validator, self.signature, self.sign_bytes(chain_id))


Message = Proposal | Vote


def message_to_plain(message: Message) -> list[object]:
    """The CBOR data model form of a message (also nested in evidence)."""
    if isinstance(message, Proposal):
        m = message
        return [
            "proposal",
            m.height,
            m.round,
            m.valid_round,
            m.value,
            m.value_id,
            m.proposer,
            m.signature,
        ]
    if isinstance(message, Vote):
        v = message
        return ["vote", v.height, v.round, int(v.step), v.value_id, v.validator, v.signature]
    raise TypeError(f"not a consensus message: {type(message).__name__}")


def encode_message(message: Message) -> bytes:
    """Canonical CBOR of a proposal or vote, as gossiped and written to the WAL."""
    return encode(message_to_plain(message))


def decode_message(data: bytes) -> Message:
    """The proposal or vote ``data`` encodes; DecodeError for anything else."""
    return message_from_plain(decode(data, "consensus message"))


def message_from_plain(item: object) -> Message:
    """Check the shape and ranges of a decoded message; DecodeError names the flaw."""
    if not isinstance(item, list) or not item:
        raise DecodeError("malformed consensus message: not a non-empty array")
    kind = item[0]
    if kind == "proposal" and len(item) == 8:
        _, height, round_, valid_round, value, value_id, proposer, sig = item
        check_int(height, "height", 0)
        check_int(round_, "round", 0)
        check_int(valid_round, "valid round", -1)
        if not isinstance(value, bytes):
            raise DecodeError("malformed proposal: value is not bytes")
        check_bytes(value_id, VALUE_ID_SIZE, "value id")
        check_bytes(proposer, PUBLIC_KEY_SIZE, "proposer key")
        check_bytes(sig, SIGNATURE_SIZE, "signature")
        return Proposal(height, round_, valid_round, value, value_id, proposer, sig)
    if kind == "vote" and len(item) == 7:
        _, height, round_, step, value_id, validator, sig = item
        check_int(height, "height", 0)
        check_int(round_, "round", 0)
        if step not in (Step.PREVOTE, Step.PRECOMMIT) or isinstance(step, bool):
            raise DecodeError(f"malformed vote: step {step!r} is not prevote or precommit")
        if value_id is not None:
            check_bytes(value_id, VALUE_ID_SIZE, "value id")
        check_bytes(validator, PUBLIC_KEY_SIZE, "validator key")
        check_bytes(sig, SIGNATURE_SIZE, "signature")
        return Vote(height, round_, Step(step), value_id, validator, sig)
    raise DecodeError(f"malformed consensus message: unknown kind or arity {kind!r}")


def check_int(value: object, name: str, low: int, what: str = "consensus message") -> None:
    """``DecodeError`` unless ``value`` is an int (not a bool) in [low, MAX_INT];
    ``what`` names the message kind in the error."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= MAX_INT:
        raise DecodeError(f"malformed {what}: {name} {value!r} out of range")


def check_bytes(value: object, size: int, name: str, what: str = "consensus message") -> None:
    """``DecodeError`` unless ``value`` is bytes of exactly ``size``."""
    if not isinstance(value, bytes) or len(value) != size:
        raise DecodeError(f"malformed {what}: {name} is not {size} bytes")
