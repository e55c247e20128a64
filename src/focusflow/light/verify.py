"""Header verification by commit certificates only (CometBFT's light client rules).

A :class:`LightBlock` is a header, the certificate that committed it and the
validator set that signs its height. It is *consistent* when the header's
canonical CBOR hashes to its hash, the listed set hashes to the header's
``validators_hash`` and the certificate commits exactly this header; a
consistent block is *verified* from a trusted one:

* adjacent (``h + 1``): the header's parent is the trusted hash, and its set is
  the trusted set (equal hash) or the set the trusted state records for
  ``h + 1`` (``/token/valset/<h + 1>`` proven against the trusted state root,
  the chain's counterpart of CometBFT's ``NextValidatorsHash``); the
  certificate carries more than 2/3 of that set's power;
* skipping (``h + n``): more than ``trust_level`` (1/3) of the trusted set's
  power signed the certificate, and more than 2/3 of the target's own set. If
  the first fails the caller bisects (:class:`InsufficientTrustError`).

Both require the trusted header to be within the trusting period of the local
clock and the target to be later than it and not from the future.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TypedDict

from focusflow.chain.block import Header
from focusflow.consensus.certificate import (
    CommitCertificate,
    decode_certificate,
    verify_certificate,
)
from focusflow.consensus.errors import InvalidCertificateError, InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError, InvalidParameterError
from focusflow.core.hashing import sha256
from focusflow.light.errors import (
    BadCertificateError,
    ChainIdMismatchError,
    HeaderMismatchError,
    InsufficientTrustError,
    MalformedAnswerError,
    TrustExpiredError,
    ValidatorSetMismatchError,
)
from focusflow.light.trust import DEFAULT_TRUST_LEVEL, DEFAULT_TRUSTING_PERIOD_S

#: How far ahead of the local clock a header's time may be.
MAX_CLOCK_DRIFT_MS = 10_000


class ValidatorDoc(TypedDict):
    """A member of the signing set in a header answer."""

    public_key: str
    power: int


class HeaderDoc(TypedDict):
    """``GET /v1/light/header/{h}``: what :func:`parse_light_block` reads back.

    Byte strings are hex; ``certificate_cbor`` is None for the genesis header.
    """

    height: int
    hash: str
    chain_id: str
    header_cbor: str
    certificate_cbor: str | None
    validators: list[ValidatorDoc]


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

    def to_json(self) -> HeaderDoc:
        """The route's shape (``/v1/light/header``), enough to parse it again."""
        from focusflow.consensus.certificate import encode_certificate

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


def _hex(doc: dict[str, object], name: str, size: int | None = None) -> bytes:
    value = doc.get(name)
    if not isinstance(value, str):
        raise MalformedAnswerError(f"{name} is not hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MalformedAnswerError(f"{name} is not hex") from None
    if size is not None and len(raw) != size:
        raise MalformedAnswerError(f"{name} is not {size} bytes")
    return raw


def validator_set(rows: object) -> ValidatorSet:
    """The set a node lists, in its order (priorities are not hashed: zeros)."""
    if not isinstance(rows, list) or not rows:
        raise MalformedAnswerError("validators is not a non-empty list")
    try:
        members = tuple(
            Validator(bytes.fromhex(r["public_key"]), r["power"])
            for r in rows
            if isinstance(r, dict)
        )
        if len(members) != len(rows):
            raise MalformedAnswerError("a validator is not an object")
        return ValidatorSet(members, (0,) * len(members))
    except (KeyError, TypeError, ValueError, InvalidValidatorSetError) as exc:
        raise MalformedAnswerError(f"bad validator list: {exc}") from None


def parse_light_block(
    doc: object, chain_id: str, height: int | None = None, *, signatures: bool = True
) -> LightBlock:
    """A node's header answer, checked for consistency (not yet trusted).

    The hash is recomputed from ``header_cbor`` (the JSON copy of the fields is
    ignored), the header must be of ``chain_id`` and ``height``, the listed set
    must hash to ``validators_hash`` and the certificate must commit this hash
    with more than 2/3 of that set's power. ``signatures=False`` skips the
    certificate check: only for blocks read back from this client's own store,
    which verified them before writing.
    """
    if not isinstance(doc, dict):
        raise MalformedAnswerError("a header answer is a JSON object")
    header_cbor = _hex(doc, "header_cbor")
    claimed = _hex(doc, "hash", 32)
    try:
        header = Header.from_cbor(decode(header_cbor, "header"))
    except DecodeError as exc:
        raise MalformedAnswerError(f"header_cbor: {exc}") from None
    actual = sha256(header_cbor)
    if actual != claimed:
        raise HeaderMismatchError(
            f"header bytes hash to {actual.hex()}, not the claimed {claimed.hex()}"
        )
    if header.chain_id != chain_id:
        raise ChainIdMismatchError(
            f"header {header.height} is of chain {header.chain_id!r}, not {chain_id!r}"
        )
    if height is not None and header.height != height:
        raise HeaderMismatchError(f"asked for header {height}, got {header.height}")
    vset = validator_set(doc.get("validators"))
    if vset.hash() != header.validators_hash:
        raise ValidatorSetMismatchError(
            f"the validators listed for height {header.height} do not hash to its validators_hash"
        )
    cert = None
    if doc.get("certificate_cbor") is not None:
        try:
            cert = decode_certificate(_hex(doc, "certificate_cbor"))
        except DecodeError as exc:
            raise BadCertificateError(f"certificate of height {header.height}: {exc}") from None
    if header.height > 0 and signatures:
        if cert is None:
            raise BadCertificateError(f"header {header.height} comes without a certificate")
        _check_certificate(cert, vset, header, actual)
    return LightBlock(header, actual, header_cbor, cert, vset)


def _check_certificate(
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


def check_time(
    trusted: LightBlock, target: LightBlock, now_ms: int, trusting_period_s: float
) -> None:
    """The trusted header is within the trusting period; the target is later, not future."""
    if now_ms - trusted.header.time_ms >= trusting_period_s * 1000:
        age = (now_ms - trusted.header.time_ms) / 1000
        raise TrustExpiredError(
            f"trusted header {trusted.height} is {age:.0f} s old, past the trusting period of "
            f"{trusting_period_s:.0f} s; start again from a recent --trust-height/--trust-hash"
        )
    if target.header.time_ms <= trusted.header.time_ms:
        raise HeaderMismatchError(
            f"header {target.height}'s time is not after trusted header {trusted.height}'s"
        )
    if target.header.time_ms > now_ms + MAX_CLOCK_DRIFT_MS:
        raise HeaderMismatchError(f"header {target.height}'s time is in the future")


#: ``next_set(trusted)``: the set the trusted state records for ``trusted.height + 1``
#: (None: unchanged), proven against the trusted header's state root.
NextSet = Callable[[LightBlock], ValidatorSet | None]


def verify_adjacent(
    trusted: LightBlock,
    target: LightBlock,
    next_set: NextSet,
    now_ms: int,
    trusting_period_s: float = DEFAULT_TRUSTING_PERIOD_S,
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
    trusting_period_s: float = DEFAULT_TRUSTING_PERIOD_S,
    trust_level: Fraction = DEFAULT_TRUST_LEVEL,
) -> None:
    """Accept ``target`` above ``trusted.height + 1`` or raise (InsufficientTrustError: bisect)."""
    if target.height <= trusted.height + 1:
        raise InvalidParameterError("skipping verification needs a gap of two heights or more")
    check_time(trusted, target, now_ms, trusting_period_s)
    assert target.certificate is not None  # parse_light_block checked it (height > 0)
    power = trusted_power(target.certificate, trusted.validators)
    total = trusted.validators.total_power
    if power * trust_level.denominator <= total * trust_level.numerator:
        raise InsufficientTrustError(
            f"signers of header {target.height} hold {power} of the trusted set's {total}"
        )


__all__ = [
    "MAX_CLOCK_DRIFT_MS",
    "HeaderDoc",
    "LightBlock",
    "ValidatorDoc",
    "check_time",
    "parse_light_block",
    "trusted_power",
    "validator_set",
    "verify_adjacent",
    "verify_skipping",
]
