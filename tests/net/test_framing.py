from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from focusflow.core.errors import DecodeError
from focusflow.net import FrameDecoder, FrameTooLargeError, encode_frame


def test_frame_is_big_endian_length_then_payload() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 50))
def test_any_split_of_the_stream_gives_back_the_frames(payloads: list, step: int) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(stream), step):
        got += decoder.feed(stream[i : i + step])
    assert got == payloads
    decoder.finish()


def test_oversized_header_is_refused_before_buffering() -> None:
    decoder = FrameDecoder(max_frame=10)
    with pytest.raises(FrameTooLargeError) as info:
        decoder.feed(b"\x00\x00\x00\x0b")
    assert info.value.code == "frame_too_large"
    assert isinstance(info.value, DecodeError)
    with pytest.raises(FrameTooLargeError):
        encode_frame(b"x" * 11, max_frame=10)


def test_stream_ending_inside_a_frame_is_malformed() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(b"\x00\x00\x00\x05ab") == []
    assert decoder.buffered == 2
    with pytest.raises(DecodeError):
        decoder.finish()
