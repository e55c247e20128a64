"""Snowman's polls and the fallback's switch: what they sign and how they travel.

Three messages, each signed under its own domain tag so that none of their
signatures can ever verify as a Tendermint proposal or vote (``messages.py``
tags those ``focusflow/consensus/proposal/v1`` and ``.../vote/v1``), nor as each
other:

- :class:`Query` ``(height, poll)`` signed by the validator that polls: "which
  value do you prefer at ``height``?" It goes only to the ``k`` validators the
  poller sampled; the signature lets a responder refuse queries from outside
  the set (answering costs a signature).
- :class:`Chits` ``(height, requester, poll, value_id)`` signed by the responder:
  its preference (or decision) at ``height``, bound to the one poll it answers
  (requester key and poll number), so an answer cannot be replayed into another
  poll or by another poller. ``value_id`` None means "no preference yet".
- :class:`Switch` ``(height, locked_round, locked_value_id)`` signed by a
  validator leaving Tendermint for polling at ``height`` (the fallback mode):
  its lock, with the polka (more than 2/3 of prevotes of that round for that
  value) that proves the lock is real. The polka is evidence, not signed by the
  switcher: anyone can check it against the validator set.
"""

from __future__ import annotations

from dataclasses import dataclass

from focusflow.consensus.messages import (
    VALUE_ID_SIZE,
    Step,
    Vote,
    check_bytes,
    check_int,
    message_from_plain,
    message_to_plain,
)
from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError
from focusflow.core.keys import PUBLIC_KEY_SIZE, SIGNATURE_SIZE, KeyPair, verify

QUERY_DOMAIN = "focusflow/consensus/snowman-query/v1"
CHITS_DOMAIN = "focusflow/consensus/snowman-chits/v1"
SWITCH_DOMAIN = "focusflow/consensus/fallback-switch/v1"
#: Prevotes a switch's polka may carry: one per validator of the largest set a
#: light block may list (chain/header_verify.py), so decoding stays bounded.
MAX_POLKA_VOTES = 1024


def query_sign_bytes(chain_id: str, height: int, poll: int) -> bytes:
    return encode([QUERY_DOMAIN, chain_id, height, poll])


def chits_sign_bytes(
    chain_id: str, height: int, requester: bytes, poll: int, value_id: bytes | None
) -> bytes:
    return encode([CHITS_DOMAIN, chain_id, height, requester, poll, value_id])


def switch_sign_bytes(
    chain_id: str, height: int, locked_round: int, locked_value_id: bytes | None
) -> bytes:
    return encode([SWITCH_DOMAIN, chain_id, height, locked_round, locked_value_id])


@dataclass(frozen=True)
class Query:
    """Poll number ``poll`` of ``requester`` at ``height``."""

    height: int
    poll: int
    requester: bytes
    signature: bytes

    @classmethod
    def sign(cls, key: KeyPair, chain_id: str, height: int, poll: int) -> Query:
        sig = key.sign(query_sign_bytes(chain_id, height, poll))
        return cls(height, poll, key.public_key, sig)

    def sign_bytes(self, chain_id: str) -> bytes:
        return query_sign_bytes(chain_id, self.height, self.poll)

    @property
    def signer(self) -> bytes:
        return self.requester


@dataclass(frozen=True)
class Chits:
    """``responder``'s answer to poll ``poll`` of ``requester`` at ``height``."""

    height: int
    requester: bytes
    poll: int
    value_id: bytes | None
    responder: bytes
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: KeyPair,
        chain_id: str,
        height: int,
        requester: bytes,
        poll: int,
        value_id: bytes | None,
    ) -> Chits:
        sig = key.sign(chits_sign_bytes(chain_id, height, requester, poll, value_id))
        return cls(height, requester, poll, value_id, key.public_key, sig)

    def sign_bytes(self, chain_id: str) -> bytes:
        return chits_sign_bytes(chain_id, self.height, self.requester, self.poll, self.value_id)

    @property
    def signer(self) -> bytes:
        return self.responder


@dataclass(frozen=True)
class Switch:
    """``validator`` stopped voting in Tendermint at ``height``, locked as stated."""

    height: int
    locked_round: int
    locked_value_id: bytes | None
    polka: tuple[Vote, ...]
    validator: bytes
    signature: bytes

    @classmethod
    def sign(
        cls,
        key: KeyPair,
        chain_id: str,
        height: int,
        locked_round: int,
        locked_value_id: bytes | None,
        polka: tuple[Vote, ...],
    ) -> Switch:
        sig = key.sign(switch_sign_bytes(chain_id, height, locked_round, locked_value_id))
        return cls(height, locked_round, locked_value_id, polka, key.public_key, sig)

    def sign_bytes(self, chain_id: str) -> bytes:
        return switch_sign_bytes(chain_id, self.height, self.locked_round, self.locked_value_id)

    @property
    def signer(self) -> bytes:
        return self.validator


PollMessage = Query | Chits | Switch


def verify_poll_signature(message: PollMessage, chain_id: str) -> bool:
    return verify(message.signer, message.signature, message.sign_bytes(chain_id))


def poll_message_to_plain(message: PollMessage) -> list[object]:
    """The CBOR data model form of a poll message."""
    if isinstance(message, Query):
        return ["query", message.height, message.poll, message.requester, message.signature]
    if isinstance(message, Chits):
        m = message
        return ["chits", m.height, m.requester, m.poll, m.value_id, m.responder, m.signature]
    s = message
    polka = [message_to_plain(v) for v in s.polka]
    return [
        "switch",
        s.height,
        s.locked_round,
        s.locked_value_id,
        polka,
        s.validator,
        s.signature,
    ]


def encode_poll_message(message: PollMessage) -> bytes:
    return encode(poll_message_to_plain(message))


def decode_poll_message(data: bytes) -> PollMessage:
    """The query, chits or switch ``data`` encodes; DecodeError names the flaw."""
    return poll_message_from_plain(decode(data, "poll message"))


def poll_message_from_plain(item: object) -> PollMessage:
    """The poll message of its data model form (evidence embeds chits so)."""
    if not isinstance(item, list) or not item:
        raise DecodeError("malformed poll message: not a non-empty array")
    kind = item[0]
    if kind == "query" and len(item) == 5:
        _, height, poll, requester, sig = item
        _int(height, "height", 0)
        _int(poll, "poll", 0)
        _bytes(requester, PUBLIC_KEY_SIZE, "requester key")
        _bytes(sig, SIGNATURE_SIZE, "signature")
        return Query(height, poll, requester, sig)
    if kind == "chits" and len(item) == 7:
        _, height, requester, poll, value_id, responder, sig = item
        _int(height, "height", 0)
        _int(poll, "poll", 0)
        _bytes(requester, PUBLIC_KEY_SIZE, "requester key")
        if value_id is not None:
            _bytes(value_id, VALUE_ID_SIZE, "value id")
        _bytes(responder, PUBLIC_KEY_SIZE, "responder key")
        _bytes(sig, SIGNATURE_SIZE, "signature")
        return Chits(height, requester, poll, value_id, responder, sig)
    if kind == "switch" and len(item) == 7:
        _, height, locked_round, value_id, polka, validator, sig = item
        _int(height, "height", 0)
        _int(locked_round, "locked round", -1)
        if (locked_round == -1) != (value_id is None):
            raise DecodeError("malformed switch: a lock needs a round and a value id")
        if value_id is not None:
            _bytes(value_id, VALUE_ID_SIZE, "value id")
        if not isinstance(polka, list) or len(polka) > MAX_POLKA_VOTES:
            raise DecodeError(f"malformed switch: polka is not a list of <= {MAX_POLKA_VOTES}")
        votes = tuple(message_from_plain(v) for v in polka)
        if any(not isinstance(v, Vote) or v.step != Step.PREVOTE for v in votes):
            raise DecodeError("malformed switch: polka holds something other than prevotes")
        _bytes(validator, PUBLIC_KEY_SIZE, "validator key")
        _bytes(sig, SIGNATURE_SIZE, "signature")
        return Switch(height, locked_round, value_id, votes, validator, sig)  # type: ignore[arg-type]
    raise DecodeError(f"malformed poll message: unknown kind or arity {kind!r}")


def _int(value: object, name: str, low: int) -> None:
    check_int(value, name, low, "poll message")


def _bytes(value: object, size: int, name: str) -> None:
    check_bytes(value, size, name, "poll message")
