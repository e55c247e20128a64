"""Commit certificates: the proof, stored with a block, that it was decided.

A certificate for (height, round, value_id) is a set of precommit signatures over
``vote_sign_bytes(chain_id, height, round, PRECOMMIT, value_id)`` from validators
holding more than 2/3 of the voting power of the height's validator set (line 49
of Algorithm 1: "2f + 1 ⟨PRECOMMIT, h_p, r, id(v)⟩"). Followers and block sync
check it with :func:`verify_certificate` and nothing else: no consensus state,
no network. Two valid certificates for different values at one height would need
more than 1/3 of the power to have signed both, which is slashable evidence.

Wire form (canonical CBOR): ``["commit", height, round, value_id,
[[public_key, signature], ...]]`` with signatures sorted by public key, so a
certificate has exactly one encoding.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from focusflow.consensus.errors import InvalidCertificateError
from focusflow.consensus.messages import (
    MAX_INT,
    VALUE_ID_SIZE,
    Step,
    Vote,
    vote_sign_bytes,
)
from focusflow.consensus.validators import ValidatorSet, has_two_thirds
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, verify


@dataclass(frozen=True)
class CommitSignature:
    public_key: bytes
    signature: bytes


@dataclass(frozen=True)
class CommitCertificate:
    height: int
    round: int
    value_id: bytes
    signatures: tuple[CommitSignature, ...]

    @classmethod
    def from_votes(cls, votes: Iterable[Vote]) -> CommitCertificate:
        """Bundle precommits for one (height, round, value_id); order does not matter."""
        votes = list(votes)
        if not votes:
            raise InvalidCertificateError("a certificate needs at least one precommit")
        first = votes[0]
        key = (first.height, first.round, first.value_id)
        for v in votes:
            if v.step != Step.PRECOMMIT or (v.height, v.round, v.value_id) != key:
                raise InvalidCertificateError("votes of a certificate must be one precommit kind")
        if first.value_id is None:
            raise InvalidCertificateError("a certificate commits a value, not nil")
        sigs = {v.validator: CommitSignature(v.validator, v.signature) for v in votes}
        return cls(
            first.height, first.round, first.value_id, tuple(sigs[pk] for pk in sorted(sigs))
        )

    def votes(self) -> list[Vote]:
        """The precommits this certificate holds, as votes (to feed a state machine)."""
        return [
            Vote(self.height, self.round, Step.PRECOMMIT, self.value_id, s.public_key, s.signature)
            for s in self.signatures
        ]


def verify_certificate(
    cert: CommitCertificate,
    validator_set: ValidatorSet,
    chain_id: str,
    *,
    height: int | None = None,
    value_id: bytes | None = None,
) -> None:
    """Raise InvalidCertificateError unless ``cert`` proves a commit under this set.

    ``validator_set`` must be the set of the certificate's height (the chain knows
    it from the previous block's validator-set hash). ``height`` and ``value_id``,
    when given, must match: a follower checks the certificate commits the block it
    holds. Every signature must verify and come from a distinct member; signatures
    of non-members are refused rather than skipped, so a certificate is minimal
    garbage-free evidence.
    """
    if height is not None and cert.height != height:
        raise InvalidCertificateError(f"certificate is for height {cert.height}, not {height}")
    if value_id is not None and cert.value_id != value_id:
        raise InvalidCertificateError("certificate commits another value")
    if len(cert.value_id) != VALUE_ID_SIZE:
        raise InvalidCertificateError("certificate value id is not 32 bytes")
    message = vote_sign_bytes(chain_id, cert.height, cert.round, Step.PRECOMMIT, cert.value_id)
    power = 0
    seen: set[bytes] = set()
    for s in cert.signatures:
        if s.public_key in seen:
            raise InvalidCertificateError(f"validator {s.public_key.hex()} signed twice")
        seen.add(s.public_key)
        weight = validator_set.power_of(s.public_key)
        if weight == 0:
            raise InvalidCertificateError(f"signer {s.public_key.hex()} is not a validator")
        if not verify(s.public_key, s.signature, message):
            raise InvalidCertificateError(f"bad precommit signature of {s.public_key.hex()}")
        power += weight
    if not has_two_thirds(power, validator_set.total_power):
        raise InvalidCertificateError(
            f"signers hold {power} of {validator_set.total_power} power, not more than 2/3"
        )


def encode_certificate(cert: CommitCertificate) -> bytes:
    sigs = [[s.public_key, s.signature] for s in cert.signatures]
    return encode(["commit", cert.height, cert.round, cert.value_id, sigs])


def decode_certificate(data: bytes) -> CommitCertificate:
    """Parse a certificate; DecodeError for malformed bytes (validity is not checked)."""
    item = decode(data, "commit certificate")
    if not (isinstance(item, list) and len(item) == 5 and item[0] == "commit"):
        raise DecodeError("malformed commit certificate: not a commit array")
    _, height, round_, value_id, sigs = item
    for name, n in (("height", height), ("round", round_)):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_INT:
            raise DecodeError(f"malformed commit certificate: {name} out of range")
    if not isinstance(value_id, bytes) or len(value_id) != VALUE_ID_SIZE:
        raise DecodeError("malformed commit certificate: value id is not 32 bytes")
    if not isinstance(sigs, list):
        raise DecodeError("malformed commit certificate: signatures is not an array")
    out = []
    for s in sigs:
        if not (
            isinstance(s, list)
            and len(s) == 2
            and isinstance(s[0], bytes)
            and len(s[0]) == PUBLIC_KEY_SIZE
            and isinstance(s[1], bytes)
            and len(s[1]) == SIGNATURE_SIZE
        ):
            raise DecodeError("malformed commit certificate: bad signature entry")
        out.append(CommitSignature(s[0], s[1]))
    keys = [s.public_key for s in out]
    if keys != sorted(set(keys)):
        raise DecodeError("malformed commit certificate: signers not sorted and distinct")
    return CommitCertificate(height, round_, value_id, tuple(out))
