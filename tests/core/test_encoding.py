"""Canonical CBOR: one encoding per value, and one typed error for every bad input."""

from __future__ import annotations

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.encoding import decode, encode
from focusflow.core.errors import DecodeError

plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | st.binary() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers(0, 99), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(plain)
def test_round_trip_is_exact(value):
    data = encode(value)
    back = decode(data)
    assert encode(back) == data


def test_map_keys_are_sorted_canonically():
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})
    assert encode({"bb": 1, "a": 2}).index(b"a") < encode({"bb": 1, "a": 2}).index(b"bb")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x02",  # trailing byte after a complete value
        b"\x18\x05",  # 5 encoded in two bytes: not the shortest form
        b"\x5a\xff\xff\xff\xff",  # byte string longer than the input
        b"\xc1\x01",  # tag 1 (datetime)
        b"\xfb\x3f\xf0\x00\x00\x00\x00\x00\x00",  # float 1.0
        b"\x9f\x01\xff",  # indefinite-length array
        b"\xa2\x61\x62\x01\x61\x61\x02",  # map keys out of canonical order
        b"\x81" * 100 + b"\x01",  # nested too deeply
    ],
)
def test_bad_bytes_raise_decode_error(data):
    with pytest.raises(DecodeError) as info:
        decode(data)
    assert info.value.code == "malformed"


def test_non_bytes_input_is_refused():
    with pytest.raises(DecodeError):
        decode("text")  # type: ignore[arg-type]


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_random_bytes_only_raise_decode_error(data):
    try:
        value = decode(data)
    except DecodeError:
        return
    assert cbor2.dumps(value, canonical=True) == data


def _nest(value, depth: int):
    for k in range(depth):
        value = [value] if k % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (_nest(1.5, 5), r"float \(no floats are allowed\) at byte 11"),
        (
            _nest([b"a", 2, cbor2.CBORTag(4000, 1)], 3),
            r"tag 4000 \(no tags but bignums are allowed\) at byte",
        ),
        ([[b"a", b"b"]] * 50 + [[b"a", 0.25]], r"float \(no floats are allowed\) at byte 255"),
        (_nest({1.5: 1}, 4), "map key of type simple value or float"),
        (_nest({(1, 2): 1}, 1), "map key of type array"),
        (_nest(0, 34), "nested deeper than MAX_DEPTH=32 at byte 65"),
    ],
)
def test_values_outside_the_plain_model_are_refused_at_any_depth(value, message):
    with pytest.raises(DecodeError, match=message) as info:
        decode(cbor2.dumps(value, canonical=True), "transaction")
    assert info.value.code == "malformed"
    assert "malformed transaction" in str(info.value)


def test_the_deepest_allowed_nesting_decodes():
    value = _nest(b"leaf", 33)
    assert decode(encode(value)) == value


def test_stored_records_read_as_decode_reads_them_and_garbage_is_refused():
    """``decode_stored`` skips the canonical-form checks only: a record the chain
    wrote reads back the same value, and bytes that are no CBOR at all still
    raise DecodeError rather than some parser's exception."""
    from focusflow.core.encoding import decode_stored

    for value in ([1, 2**70, b"x", "y", [None, True]], 0, -(2**80), {"a": [1]}):
        raw = encode(value)
        assert decode_stored(raw, "record") == decode(raw, "record") == value
    with pytest.raises(DecodeError, match="malformed record"):
        decode_stored(b"\x9f\x01", "record")  # an unterminated indefinite array
