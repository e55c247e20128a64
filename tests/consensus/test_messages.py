"""Wire forms and sign bytes of proposals and votes."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.consensus import (
    CommitCertificate,
    DuplicateVoteEvidence,
    Proposal,
    Step,
    Vote,
    decode_certificate,
    decode_evidence,
    decode_message,
    encode_certificate,
    encode_evidence,
    encode_message,
    proposal_sign_bytes,
    vote_sign_bytes,
)
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

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


_PREVOTE = Vote.sign(KEY, CHAIN, 1, 0, Step.PREVOTE, VID)
_GOOD = [
    encode_message(_PREVOTE),
    encode_certificate(
        CommitCertificate.from_votes([Vote.sign(KEY, CHAIN, 1, 0, Step.PRECOMMIT, VID)])
    ),
    encode_evidence(
        DuplicateVoteEvidence.of(_PREVOTE, Vote.sign(KEY, CHAIN, 1, 0, Step.PREVOTE, None))
    ),
]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 199), st.integers(0, 255))
def test_any_bytes_either_decode_or_raise_decode_error(junk, pos, byte):
    """Random bytes and one-byte mutations of real messages never escape as other errors."""
    inputs = [junk]
    for data in _GOOD:
        mutated = bytearray(data)
        mutated[pos % len(data)] = byte
        inputs.append(bytes(mutated))
    for data in inputs:
        for parse in (decode_message, decode_certificate, decode_evidence):
            with contextlib.suppress(DecodeError):
                parse(data)
