"""Wire forms and sign bytes of proposals and votes."""

from __future__ import annotations

import pytest

from focusflow.consensus import (
    Proposal,
    Step,
    Vote,
    decode_message,
    encode_message,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .conftest import CHAIN, keys

KEY = keys(1)[0]
VID = sha256(b"v")


def test_round_trip():
    p = Proposal.sign(KEY, CHAIN, 3, 2, 1, b"block", sha256(b"block"))
    v = Vote.sign(KEY, CHAIN, 3, 2, Step.PRECOMMIT, VID)
    nil = Vote.sign(KEY, CHAIN, 3, 2, Step.PREVOTE, None)
    for m in (p, v, nil):
        assert decode_message(encode_message(m)) == m
        assert m.verify_signature(CHAIN)
        assert not m.verify_signature("other-chain")


def test_sign_bytes_are_domain_separated_and_bind_every_field():
    base = vote_sign_bytes(CHAIN, 1, 0, Step.PREVOTE, VID)
    assert base == encode(["focusflow/consensus/vote/v1", CHAIN, 1, 0, 1, VID])
    variants = {
        vote_sign_bytes(CHAIN, 2, 0, Step.PREVOTE, VID),
        vote_sign_bytes(CHAIN, 1, 1, Step.PREVOTE, VID),
        vote_sign_bytes(CHAIN, 1, 0, Step.PRECOMMIT, VID),
        vote_sign_bytes(CHAIN, 1, 0, Step.PREVOTE, None),
        vote_sign_bytes("x", 1, 0, Step.PREVOTE, VID),
        proposal_sign_bytes(CHAIN, 1, 0, -1, VID),
    }
    assert base not in variants and len(variants) == 6


@pytest.mark.parametrize(
    "item",
    [
        [],
        ["vote", 1, 0, 3, None, KEY.public_key, bytes(64)],  # step 3
        ["vote", 1, 0, 0, None, KEY.public_key, bytes(64)],  # a vote cannot be "propose"
        ["vote", -1, 0, 1, None, KEY.public_key, bytes(64)],
        ["vote", 1, 0, 1, b"short", KEY.public_key, bytes(64)],
        ["vote", 1, 0, 1, None, b"k", bytes(64)],
        ["vote", 1, 0, 1, None, KEY.public_key, bytes(63)],
        ["vote", 1, 0, True, None, KEY.public_key, bytes(64)],
        ["proposal", 1, 0, -2, b"", VID, KEY.public_key, bytes(64)],
        ["proposal", 1, 0, -1, "text", VID, KEY.public_key, bytes(64)],
        ["block", 1],
    ],
)
def test_malformed_messages_raise_decode_error(item):
    with pytest.raises(DecodeError) as err:
        decode_message(encode(item))
    assert err.value.code == "malformed"


def test_non_canonical_bytes_raise_decode_error():
    data = encode_message(Vote.sign(KEY, CHAIN, 1, 0, Step.PREVOTE, None))
    with pytest.raises(DecodeError):
        decode_message(data + b"\x00")
    with pytest.raises(DecodeError):
        decode_message(data[:-1])
