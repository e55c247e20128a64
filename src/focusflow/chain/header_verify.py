"""Header verification by commit certificates alone (CometBFT's light client rules).

One implementation serves two verifiers: the light client (``focusflow.light``,
which reads headers from a node it does not trust) and the chain's own light
clients of other chains (``modules.ibc_client``, which reads headers a relayer
it does not trust carries in a transaction). It lives in the chain layer so
that a module may import it; ``focusflow.light.verify`` re-exports it and
turns its errors into the light client's (exit status 3).

A :class:`LightBlock` is a header, the certificate that committed it and the
validator set that signs its height. It is *consistent*
(:func:`check_consistent`) when the listed set hashes to the header's
``validators_hash`` and the certificate commits exactly this header with more
than 2/3 of that set's power; a consistent block is *verified* from a trusted
one:

* adjacent (``h + 1``): the header's parent is the trusted hash, and its set is
  the trusted set (equal hash) or the set the trusted state records for
  ``h + 1`` (``/token/valset/<h + 1>`` proven against the trusted state root,
  the chain's counterpart of CometBFT's ``NextValidatorsHash``);
* skipping (``h + n``): more than ``trust_level`` (1/3) of the trusted set's
  power signed the certificate, and more than 2/3 of the target's own set. If
  the first fails the caller bisects (:class:`InsufficientTrustError`).

Both require the trusted header to be within the trusting period of "now" (the
local clock for the light client, the verifying chain's block time on chain)
and the target to be later than it and not from the future.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from focusflow.chain.block import Header
from focusflow.chain.header_errors import (
    BadCertificateError,
    HeaderMismatchError,
    InsufficientTrustError,
    TrustExpiredError,
    ValidatorSetMismatchError,
)
from focusflow.consensus.certificate import (
    CommitCertificate,
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from focusflow.consensus.errors import InvalidCertificateError, InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode
from focusflow.core.errors import (
    ChainIdMismatchError,
    DecodeError,
    InvalidParameterError,
)
from focusflow.core.hashing import sha256
from focusflow.store.smt import Proof, verify_proof

#: How far ahead of "now" a header's time may be.
MAX_CLOCK_DRIFT_MS = 10_000
#: CometBFT's default: more than 1/3 of the trusted set must have signed a far header.
DEFAULT_TRUST_LEVEL = Fraction(1, 3)
#: Most validators a light block may list (a genesis lists at most as many).
MAX_VALIDATORS = 1024


@dataclass(frozen=True)
class LightBlock:
    header: Header
    hash: bytes
    header_cbor: bytes
    certificate: CommitCertificate | None
    validators: ValidatorSet

    @property
    def height(self) -> int:
        return self.header.height

    def to_json(self) -> dict[str, Any]:
        """The shape of a node's ``/v1/light/header`` answer, enough to parse it
        again (``light.verify.parse_light_block``); byte strings in hex."""
        return {
            "height": self.height,
            "hash": self.hash.hex(),
            "chain_id": self.header.chain_id,
            "header_cbor": self.header_cbor.hex(),
            "certificate_cbor": None
            if self.certificate is None
            else encode_certificate(self.certificate).hex(),
            "validators": [
                {"public_key": v.public_key.hex(), "power": v.power}
                for v in self.validators.validators
            ],
        }

    def to_cbor(self) -> list[Any]:
        """``[header_cbor, certificate_cbor or null, [[public_key, power], ...]]``:
        the bytes a relayer carries in ``ibc.update_client``."""
        return [
            self.header_cbor,
            None if self.certificate is None else encode_certificate(self.certificate),
            [[v.public_key, v.power] for v in self.validators.validators],
        ]


def validator_set_of(rows: list[tuple[bytes, int]]) -> ValidatorSet:
    """The set listed as ``(public_key, power)`` in its order (priorities are
    not hashed: zeros); DecodeError if it is no valid set."""
    try:
        members = tuple(Validator(k, p) for k, p in rows)
        return ValidatorSet(members, (0,) * len(members))
    except (TypeError, ValueError, InvalidValidatorSetError) as exc:
        raise DecodeError(f"bad validator list: {exc}") from None


def check_consistent(
    header_cbor: bytes,
    certificate: CommitCertificate | None,
    vset: ValidatorSet,
    chain_id: str,
    *,
    signatures: bool = True,
) -> LightBlock:
    """The block these parts make, checked for consistency (not yet trusted).

    The header must be of ``chain_id``, ``vset`` must hash to its
    ``validators_hash`` and (above height 0, unless ``signatures`` is False,
    which only a store of blocks verified before may ask) the certificate must
    commit its hash with more than 2/3 of that set's power.
    """
    header = Header.from_cbor(decode(header_cbor, "header"))
    actual = sha256(header_cbor)
    if header.chain_id != chain_id:
        raise ChainIdMismatchError(
            f"header {header.height} is of chain {header.chain_id!r}, not {chain_id!r}"
        )
    if vset.hash() != header.validators_hash:
        raise ValidatorSetMismatchError(
            f"the validators listed for height {header.height} do not hash to its validators_hash"
        )
    if header.height > 0 and signatures:
        if certificate is None:
            raise BadCertificateError(f"header {header.height} comes without a certificate")
        check_certificate(certificate, vset, header, actual)
    return LightBlock(header, actual, header_cbor, certificate, vset)


def decode_light_block(raw: bytes, chain_id: str, max_bytes: int) -> LightBlock:
    """A light block from the bytes of :meth:`LightBlock.to_cbor`, bounded in
    size and members before anything is decoded further, and checked for
    consistency. DecodeError for a shape that is not that."""
    if len(raw) > max_bytes:
        raise DecodeError(f"a light block is at most {max_bytes} bytes")
    value = decode(raw, "light block")
    if not isinstance(value, list) or len(value) != 3:
        raise DecodeError("a light block is [header, certificate, validators]")
    header_cbor, cert_cbor, rows = value
    if not isinstance(header_cbor, bytes) or not (
        cert_cbor is None or isinstance(cert_cbor, bytes)
    ):
        raise DecodeError("a light block's header and certificate are bytes")
    if not isinstance(rows, list) or not 0 < len(rows) <= MAX_VALIDATORS:
        raise DecodeError(f"a light block lists 1..{MAX_VALIDATORS} validators")
    members: list[tuple[bytes, int]] = []
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 2
            or not isinstance(row[0], bytes)
            or type(row[1]) is not int
        ):
            raise DecodeError("a validator is [public_key, power]")
        members.append((row[0], row[1]))
    cert = None if cert_cbor is None else decode_certificate(cert_cbor)
    return check_consistent(header_cbor, cert, validator_set_of(members), chain_id)


def check_certificate(
    cert: CommitCertificate, vset: ValidatorSet, header: Header, block_hash: bytes
) -> None:
    """More than 2/3 of ``vset`` signed a precommit for exactly this header."""
    try:
        verify_certificate(cert, vset, header.chain_id, height=header.height, value_id=block_hash)
    except InvalidCertificateError as exc:
        raise BadCertificateError(f"certificate of header {header.height}: {exc}") from None


def trusted_power(cert: CommitCertificate, trusted: ValidatorSet) -> int:
    """Power of ``trusted`` among the certificate's signers (signatures already checked)."""
    return sum(trusted.power_of(s.public_key) for s in cert.signatures)


def check_times(
    trusted_height: int,
    trusted_time_ms: int,
    target: Header,
    now_ms: int,
    trusting_period_ms: int,
) -> None:
    """The trusted header is within the trusting period of ``now_ms``; the
    target is later than it and at most :data:`MAX_CLOCK_DRIFT_MS` ahead."""
    if now_ms - trusted_time_ms >= trusting_period_ms:
        age = (now_ms - trusted_time_ms) / 1000
        raise TrustExpiredError(
            f"trusted header {trusted_height} is {age:.0f} s old, past the trusting period of "
            f"{trusting_period_ms / 1000:.0f} s"
        )
    if target.time_ms <= trusted_time_ms:
        raise HeaderMismatchError(
            f"header {target.height}'s time is not after trusted header {trusted_height}'s"
        )
    if target.time_ms > now_ms + MAX_CLOCK_DRIFT_MS:
        raise HeaderMismatchError(f"header {target.height}'s time is in the future")


def check_time(
    trusted: LightBlock, target: LightBlock, now_ms: int, trusting_period_s: float
) -> None:
    """:func:`check_times` between two light blocks, the period in seconds."""
    check_times(
        trusted.height, trusted.header.time_ms, target.header, now_ms, int(trusting_period_s * 1000)
    )


def check_trust(
    cert: CommitCertificate,
    trusted: ValidatorSet,
    target_height: int,
    trust_level: Fraction = DEFAULT_TRUST_LEVEL,
) -> None:
    """More than ``trust_level`` of ``trusted``'s power signed ``cert``, else
    :class:`InsufficientTrustError`."""
    power = trusted_power(cert, trusted)
    total = trusted.total_power
    if power * trust_level.denominator <= total * trust_level.numerator:
        raise InsufficientTrustError(
            f"signers of header {target_height} hold {power} of the trusted set's {total}"
        )


#: ``next_set(trusted)``: the set the trusted state records for ``trusted.height + 1``
#: (None: unchanged), proven against the trusted header's state root.
NextSet = Callable[[LightBlock], ValidatorSet | None]


def verify_adjacent(
    trusted: LightBlock,
    target: LightBlock,
    next_set: NextSet,
    now_ms: int,
    trusting_period_s: float,
) -> None:
    """Accept ``target`` at ``trusted.height + 1`` (raises why not)."""
    if target.height != trusted.height + 1:
        raise InvalidParameterError("adjacent verification needs consecutive heights")
    check_time(trusted, target, now_ms, trusting_period_s)
    if target.header.parent != trusted.hash:
        raise HeaderMismatchError(
            f"header {target.height}'s parent is not the verified header {trusted.height}"
        )
    if target.header.validators_hash != trusted.header.validators_hash:
        recorded = next_set(trusted)
        if recorded is None or recorded.hash() != target.header.validators_hash:
            raise ValidatorSetMismatchError(
                f"header {target.height} names a validator set that the state of verified "
                f"header {trusted.height} does not record for it"
            )


def verify_skipping(
    trusted: LightBlock,
    target: LightBlock,
    now_ms: int,
    trusting_period_s: float,
    trust_level: Fraction = DEFAULT_TRUST_LEVEL,
) -> None:
    """Accept ``target`` above ``trusted.height + 1`` or raise (InsufficientTrustError: bisect)."""
    if target.height <= trusted.height + 1:
        raise InvalidParameterError("skipping verification needs a gap of two heights or more")
    check_time(trusted, target, now_ms, trusting_period_s)
    assert target.certificate is not None  # check_consistent checked it (height > 0)
    check_trust(target.certificate, trusted.validators, target.height, trust_level)


def verify_key(root: bytes, key: bytes, value: bytes | None, proof: bytes) -> bool:
    """Whether ``proof`` (a sparse Merkle proof's bytes, ``store.smt``) shows
    ``key`` holding ``value`` (absent, for None) under ``root``; False for
    bytes that are no proof."""
    try:
        decoded = Proof.decode(proof)
    except DecodeError:
        return False
    return verify_proof(root, key, value, decoded)


__all__ = [
    "DEFAULT_TRUST_LEVEL",
    "MAX_CLOCK_DRIFT_MS",
    "BadCertificateError",
    "HeaderMismatchError",
    "InsufficientTrustError",
    "LightBlock",
    "NextSet",
    "TrustExpiredError",
    "ValidatorSetMismatchError",
    "check_certificate",
    "check_consistent",
    "check_time",
    "check_times",
    "check_trust",
    "decode_light_block",
    "trusted_power",
    "validator_set_of",
    "verify_adjacent",
    "verify_key",
    "verify_skipping",
]
