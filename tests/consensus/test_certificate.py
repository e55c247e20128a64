"""Commit certificates, checked standalone as followers and block sync do."""

from __future__ import annotations

import pytest

from focusflow.consensus import (
    CommitCertificate,
    CommitSignature,
    InvalidCertificateError,
    Step,
    ValidatorSet,
    Vote,
    decode_certificate,
    encode_certificate,
    verify_certificate,
)
from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.core.hashing import sha256

from .harness import CHAIN, keys

KS = keys(4)
# Powers 4, 3, 2, 1: total 10, a certificate needs 7.
VS = ValidatorSet.create({k.public_key: p for k, p in zip(KS, (4, 3, 2, 1), strict=True)})
VID = sha256(b"block")


def cert(signers, value_id=VID, round=0, chain=CHAIN) -> CommitCertificate:
    return CommitCertificate.from_votes(
        Vote.sign(k, chain, 5, round, Step.PRECOMMIT, value_id) for k in signers
    )


def test_more_than_two_thirds_of_power_verifies():
    verify_certificate(cert(KS[:2] + KS[3:]), VS, CHAIN, height=5, value_id=VID)  # 4+3+1 = 8
    verify_certificate(cert(KS[:3]), VS, CHAIN)  # 9


def test_two_thirds_or_less_is_refused_even_with_many_signers():
    with pytest.raises(InvalidCertificateError) as err:
        verify_certificate(cert(KS[1:]), VS, CHAIN)  # 3+2+1 = 6 of 10
    assert err.value.code == "invalid_certificate"


@pytest.mark.parametrize(
    "flaw", ["chain", "height", "value", "outsider", "twice", "sig", "prevote"]
)
def test_flawed_certificates_are_refused(flaw):
    good = cert(KS[:3])
    if flaw == "chain":
        c, args = cert(KS[:3], chain="other"), {}
    elif flaw == "height":
        c, args = good, {"height": 6}
    elif flaw == "value":
        c, args = good, {"value_id": sha256(b"other")}
    elif flaw == "outsider":
        c, args = cert(KS[:3] + keys(1, b"out")), {}
    elif flaw == "twice":
        c = CommitCertificate(5, 0, VID, good.signatures + good.signatures[:1])
        args = {}
    elif flaw == "sig":
        s = good.signatures[0]
        c = CommitCertificate(
            5, 0, VID, (CommitSignature(s.public_key, bytes(64)), *good.signatures[1:])
        )
        args = {}
    else:
        pv = [Vote.sign(k, CHAIN, 5, 0, Step.PREVOTE, VID) for k in KS[:3]]
        c = CommitCertificate(
            5, 0, VID, tuple(CommitSignature(v.validator, v.signature) for v in pv)
        )
        args = {}
    with pytest.raises(InvalidCertificateError):
        verify_certificate(c, VS, CHAIN, **args)


def test_round_trip_is_canonical():
    c = cert(reversed(KS))
    data = encode_certificate(c)
    assert decode_certificate(data) == c
    assert [s.public_key for s in c.signatures] == sorted(k.public_key for k in KS)
    assert c.votes()[0].verify_signature(CHAIN)


def test_from_votes_refuses_mixed_or_nil_votes():
    with pytest.raises(InvalidCertificateError):
        CommitCertificate.from_votes([])
    with pytest.raises(InvalidCertificateError):
        cert(KS[:3], value_id=None)
    mixed = [
        Vote.sign(KS[0], CHAIN, 5, 0, Step.PRECOMMIT, VID),
        Vote.sign(KS[1], CHAIN, 5, 1, Step.PRECOMMIT, VID),
    ]
    with pytest.raises(InvalidCertificateError):
        CommitCertificate.from_votes(mixed)


@pytest.mark.parametrize(
    "item",
    [
        ["commit", 5, 0, VID],
        ["commit", 5, 0, b"x", []],
        ["commit", -5, 0, VID, []],
        ["commit", 5, 0, VID, [[KS[0].public_key]]],
        ["commit", 5, 0, VID, [[KS[0].public_key, bytes(64)], [KS[0].public_key, bytes(64)]]],
        [
            "commit",
            5,
            0,
            VID,
            [
                [max(KS[0].public_key, KS[1].public_key), bytes(64)],
                [min(KS[0].public_key, KS[1].public_key), bytes(64)],
            ],
        ],
        ["vote", 5, 0, VID, []],
    ],
)
def test_malformed_certificates_raise_decode_error(item):
    with pytest.raises(DecodeError):
        decode_certificate(encode(item))
