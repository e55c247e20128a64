"""Header verification by commit certificates only (CometBFT's light client rules).

The rules themselves are ``focusflow.chain.header_verify``'s, shared with the
chain's own light clients of other chains (``modules.ibc_client``); this module
reads a node's JSON header answer (:func:`parse_light_block`) and turns the
rules' errors into the light client's (:mod:`focusflow.light.errors`, exit
status 3), so a node that lies is refused the same way on and off chain.

A :class:`LightBlock` is a header, the certificate that committed it and the
validator set that signs its height; a consistent block is verified from a
trusted one adjacently (``h + 1``: parent hash, and the same set or the one the
trusted state records for ``h + 1``) or by skipping (``h + n``: more than 1/3
of the trusted set's power signed), within the trusting period of the local
clock (``chain.header_verify`` says each rule).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import TypedDict

from focusflow.chain import header_verify as rules
from focusflow.chain.block import Header
from focusflow.chain.header_verify import (
    MAX_CLOCK_DRIFT_MS,
    LightBlock,
    NextSet,
    trusted_power,
)
from focusflow.consensus.certificate import decode_certificate
from focusflow.consensus.errors import InvalidValidatorSetError
from focusflow.consensus.validators import Validator, ValidatorSet
from focusflow.core import errors as core_errors
from focusflow.core.encoding import decode
from focusflow.core.errors import DecodeError
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

#: Each shared rule's error, and the light client's error of the same code.
_LIGHT_ERRORS: dict[type[core_errors.FocusflowError], type[core_errors.FocusflowError]] = {
    rules.HeaderMismatchError: HeaderMismatchError,
    rules.ValidatorSetMismatchError: ValidatorSetMismatchError,
    rules.BadCertificateError: BadCertificateError,
    core_errors.ChainIdMismatchError: ChainIdMismatchError,
}


@contextmanager
def _as_light() -> Iterator[None]:
    """The shared rules' errors as the light client's (same codes, exit status 3)."""
    try:
        yield
    except rules.TrustExpiredError as exc:
        raise TrustExpiredError(
            f"{exc.message}; start again from a recent --trust-height/--trust-hash"
        ) from None
    except tuple(_LIGHT_ERRORS) as exc:
        light = _LIGHT_ERRORS.get(type(exc))
        if light is None:  # already the light client's own
            raise
        raise light(exc.message) from None


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
    if height is not None and header.height != height:
        raise HeaderMismatchError(f"asked for header {height}, got {header.height}")
    vset = validator_set(doc.get("validators"))
    cert = None
    if doc.get("certificate_cbor") is not None:
        try:
            cert = decode_certificate(_hex(doc, "certificate_cbor"))
        except DecodeError as exc:
            raise BadCertificateError(f"certificate of height {header.height}: {exc}") from None
    with _as_light():
        return rules.check_consistent(header_cbor, cert, vset, chain_id, signatures=signatures)


def check_time(
    trusted: LightBlock, target: LightBlock, now_ms: int, trusting_period_s: float
) -> None:
    """The trusted header is within the trusting period; the target is later, not future."""
    with _as_light():
        rules.check_time(trusted, target, now_ms, trusting_period_s)


def verify_adjacent(
    trusted: LightBlock,
    target: LightBlock,
    next_set: NextSet,
    now_ms: int,
    trusting_period_s: float = DEFAULT_TRUSTING_PERIOD_S,
) -> None:
    """Accept ``target`` at ``trusted.height + 1`` (raises why not)."""
    with _as_light():
        rules.verify_adjacent(trusted, target, next_set, now_ms, trusting_period_s)


def verify_skipping(
    trusted: LightBlock,
    target: LightBlock,
    now_ms: int,
    trusting_period_s: float = DEFAULT_TRUSTING_PERIOD_S,
    trust_level: Fraction = DEFAULT_TRUST_LEVEL,
) -> None:
    """Accept ``target`` above ``trusted.height + 1`` or raise (InsufficientTrustError: bisect)."""
    with _as_light():
        rules.verify_skipping(trusted, target, now_ms, trusting_period_s, trust_level)


__all__ = [
    "MAX_CLOCK_DRIFT_MS",
    "HeaderDoc",
    "InsufficientTrustError",
    "LightBlock",
    "NextSet",
    "ValidatorDoc",
    "check_time",
    "parse_light_block",
    "trusted_power",
    "validator_set",
    "verify_adjacent",
    "verify_skipping",
]
