from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusflow.core.encoding import encode
from focusflow.core.errors import DecodeError
from focusflow.net import decode_message, encode_message
from focusflow.net.messages import (
    Auth,
    Challenge,
    Error,
    Gossip,
    Hello,
    Request,
    Response,
    Welcome,
)

EXAMPLES = [
    Hello(2, b"\x01" * 32, b"\x04" * 32),
    Challenge(b"\x02" * 32),
    Auth(b"\x03" * 64),
    Welcome(b"\x05" * 32),
    Gossip("vote", b"payload"),
    Request("block", b"\x00"),
    Response(b""),
    Error("busy", "too many"),
]


@pytest.mark.parametrize("message", EXAMPLES)
def test_round_trip(message) -> None:
    assert decode_message(encode_message(message)) == message


def test_envelope_bytes_are_kind_then_fields() -> None:
    assert encode_message(Gossip("tx", b"\xff")) == bytes.fromhex("830462747841ff")
    assert encode_message(Welcome(bytes(32))) == bytes.fromhex("820358200" + "0" * 63)


@pytest.mark.parametrize(
    "value",
    [
        [],
        {"kind": 4},
        [99, "x"],
        [4, "tx"],
        [4, "tx", "not bytes"],
        [4, "", b""],
        [4, "t" * 65, b""],
        [0, 1, b"short"],
        [0, 2, b"\x01" * 32, b"short network id"],
        [0, 2, b"\x01" * 32],
        [3, b"\x00" * 31],
        [3],
        [2, b"\x00" * 63],
        [True, b""],
    ],
)
def test_wrong_shapes_are_decode_errors(value) -> None:
    with pytest.raises(DecodeError):
        decode_message(encode(value))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_message(data)
