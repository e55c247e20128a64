"""Decoding costs O(bytes): the CBOR shapes that make a decoder amplify are refused
by the scan before ``cbor2`` builds anything, and fuzzed input is either decoded to
the value whose canonical encoding it is, or refused with ``DecodeError``.

The timing runs in a child process with a timeout, so a decoder that amplifies
fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from focusflow.core import encoding
from focusflow.core.encoding import MAX_DEPTH, MAX_ITEMS, decode, encode
from focusflow.core.errors import DecodeError


def shared_refs(depth: int) -> bytes:
    """``[x, x]`` nested ``depth`` times with each ``x`` a shared reference (tags
    28/29): ~6 bytes per level, 2^depth leaves once the references are followed."""
    value: list = []
    for _ in range(depth):
        value = [value, value]
    return cbor2.dumps(value, value_sharing=True)


def string_refs(string_len: int, refs: int) -> bytes:
    """A string-reference namespace (tag 256) over an array of one long string and
    ``refs`` references to it (tag 25): 3 bytes per reference that re-encodes to
    ``string_len`` bytes."""
    count = refs + 1
    return (
        b"\xd9\x01\x00"
        + b"\x9a"
        + count.to_bytes(4, "big")
        + b"\x5a"
        + string_len.to_bytes(4, "big")
        + b"a" * string_len
        + b"\xd8\x19\x00" * refs
    )


#: Inputs that make a tree-walking or tag-resolving decoder amplify, with the
#: reason the scan gives for each.
ATTACKS = {
    "shared refs, [x, x] at depth 32": (
        shared_refs(32),
        "tag 28 (no tags but bignums are allowed) at byte 0",
    ),
    "string refs, 7 KB": (
        string_refs(1000, 2000),
        "tag 256 (no tags but bignums are allowed) at byte 0",
    ),
    "string refs, 60 KB": (
        string_refs(8000, 20_000),
        "tag 256 (no tags but bignums are allowed) at byte 0",
    ),
    "deep arrays": (b"\x81" * 100_000 + b"\x01", f"nested deeper than MAX_DEPTH={MAX_DEPTH}"),
    "deep maps": (b"\xa1\x00" * 50_000 + b"\x01", f"nested deeper than MAX_DEPTH={MAX_DEPTH}"),
    "array of 2^64-1 items, no body": (b"\x9b" + b"\xff" * 8, "array of 18446744073709551615"),
    "map of 2^64-1 pairs, no body": (b"\xbb" + b"\xff" * 8, "map of 18446744073709551615"),
    "byte string of 2^64-1 bytes": (b"\x5b" + b"\xff" * 8, "byte string of 18446744073709551615"),
    "array of 2^32-1 empty arrays": (
        b"\x9a" + b"\xff" * 4 + b"\x80" * 60_000,
        "array of 4294967295",
    ),
    "indefinite array of tags": (
        b"\x9f" + b"\xc1\x00" * 30_000 + b"\xff",
        "indefinite-length array",
    ),
}

#: The child process: decode each input (best of three), print seconds and outcome.
_TIMER = textwrap.dedent(
    """
    import json, sys, time
    from focusflow.core.encoding import decode
    from focusflow.core.errors import DecodeError
    results = {}
    for name, hex_data in json.load(sys.stdin).items():
        data = bytes.fromhex(hex_data)
        best, outcome = float("inf"), None
        for _ in range(3):
            start = time.perf_counter()
            try:
                decode(data)
                outcome = "accepted"
            except DecodeError as exc:
                outcome = exc.message
            best = min(best, time.perf_counter() - start)
        results[name] = [best, outcome]
    print(json.dumps(results))
    """
)

#: Generous, so that a loaded CI machine does not flake: the scan takes well under
#: a microsecond per byte; an amplifying decoder takes seconds to hours.
MAX_SECONDS_PER_BYTE = 50e-6
TIMER_TIMEOUT_S = 60


def _time_decodes(inputs: dict[str, bytes]) -> dict[str, tuple[float, str]]:
    payload = json.dumps({name: data.hex() for name, data in inputs.items()})
    try:
        done = subprocess.run(
            [sys.executable, "-c", _TIMER],
            input=payload,
            capture_output=True,
            text=True,
            timeout=TIMER_TIMEOUT_S,
            check=True,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"decoding {len(inputs)} inputs did not finish in {TIMER_TIMEOUT_S} s")
    return {
        name: (seconds, outcome) for name, (seconds, outcome) in json.loads(done.stdout).items()
    }


def test_amplifying_shapes_are_refused_in_time_linear_in_their_length():
    # A normal value of each attack's size sets the scale of an honest decode.
    baselines = {
        f"baseline {name}": encode([b"x" * 40] * (len(data) // 42 + 1))
        for name, data in ATTACKS.items()
    }
    timed = _time_decodes({name: data for name, (data, _) in ATTACKS.items()} | baselines)
    for name, (data, reason) in ATTACKS.items():
        seconds, outcome = timed[name]
        assert reason in outcome, (name, outcome)
        assert outcome.startswith("malformed value: "), (name, outcome)
        assert seconds < MAX_SECONDS_PER_BYTE * len(data) + 0.01, (name, seconds, len(data))
        baseline, accepted = timed[f"baseline {name}"]
        assert accepted == "accepted"
        assert seconds < 20 * baseline + 0.005, (name, seconds, baseline)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_amplifying_shapes_never_reach_cbor2(name, monkeypatch):
    """The scan refuses before ``cbor2.loads`` runs: nothing is built from the input.
    The shapes are cut down (depth 6, a short string) so that a decoder that does
    reach cbor2 still returns."""
    small = {
        "shared refs, [x, x] at depth 32": shared_refs(6),
        "string refs, 7 KB": string_refs(10, 20),
        "string refs, 60 KB": string_refs(10, 20),
    }
    data = small.get(name, ATTACKS[name][0])
    calls: list[int] = []
    real_loads = cbor2.loads

    def counting_loads(raw, *args, **kwargs):
        calls.append(len(raw))
        return real_loads(raw, *args, **kwargs)

    monkeypatch.setattr(encoding.cbor2, "loads", counting_loads)
    with pytest.raises(DecodeError) as info:
        decode(data, "transaction")
    assert calls == []
    assert info.value.code == "malformed"
    assert info.value.message.startswith("malformed transaction: ")
    assert " at byte " in info.value.message


def test_honest_input_decodes_in_time_linear_in_its_length():
    """A transaction-sized value (10,000 links of three 36-byte CIDs, ~1.1 MB, about
    40,000 items) decodes well within the per-byte bound."""
    links = [[b"\x01" * 36, b"\x02" * 36, b"\x03" * 36] for _ in range(10_000)]
    value = ["focusflow-test", b"s" * 32, 7, 1000, [["link", {"links": links}]], b"g" * 64]
    data = encode(value)
    seconds, outcome = _time_decodes({"tx": data})["tx"]
    assert outcome == "accepted"
    assert seconds < MAX_SECONDS_PER_BYTE * len(data), seconds


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xf7", "simple value 23 (only false, true and null) at byte 0"),
        (b"\xf8\x14", "simple value 20 (only false, true and null) at byte 0"),
        (b"\xf0", "simple value 16"),
        (b"\xf9\x3c\x00", "float (no floats are allowed) at byte 0"),
        (b"\xff", "break code"),
        (b"\x1c", "reserved additional information 28 at byte 0"),
        (
            b"\x82\x01\x7f\x61\x61\xff",
            "indefinite-length text string (only definite lengths are allowed) at byte 2",
        ),
        (b"\x19\x00\xff", "unsigned integer head is not in its shortest form at byte 0"),
        (b"\x3a\x00\x00\xff\xff", "negative integer head is not in its shortest form"),
        (b"\x98\x01\x00", "array head is not in its shortest form"),
        (b"\x1b\x00\x00\x00", "truncated unsigned integer head at byte 0"),
        (b"", "truncated input: an item is missing at byte 0"),
        (b"\x82\x19\x01\x00", "truncated input: an item is missing at byte 4"),
        (b"\x82\x01", "array of 2 items but 1 bytes left at byte 0"),
        (b"\x82\x01\x02\x03", "1 trailing bytes after the value at byte 3"),
        (b"\x62\xc3\x28", "text string is not valid UTF-8 at byte 1"),
        (b"\xa2\x01\x00\x01\x00", "repeated map key at byte 3"),
        (b"\xa2\x02\x00\x01\x00", "map keys are not in canonical order at byte 3"),
        (b"\xa2\x19\x03\xe8\x00\x61\x61\x00", "map keys are not in canonical order at byte 5"),
        (b"\xa1\xf6\x00", "map key of type simple value or float"),
        (b"\xa1\x80\x00", "map key of type array"),
        (b"\xc2\x41\x01", "bignum (tag 2) is not in its shortest form at byte 0"),
        (b"\xc3\x49\x00" + b"\x01" * 8, "bignum (tag 3) is not in its shortest form"),
        (b"\xc2\x01", "tag 2 must enclose a byte string at byte 1"),
        (b"\xc2\x5f\xff", "indefinite-length byte string"),
        (b"\xc2\x4a\x01", "byte string of 10 bytes but 1 bytes left at byte 1"),
        (b"\xc4\x82\x00\x01", "tag 4 (no tags but bignums are allowed)"),
        (b"\xc2\x58\x21\x01" + bytes(32), "bignum of 33 bytes (at most MAX_BIGNUM_BYTES=32)"),
        (b"\x5a\x00\x01\x00\x00", "byte string of 65536 bytes but 0 bytes left at byte 0"),
        (b"\x83\x01\x02", "array of 3 items but 2 bytes left at byte 0"),
    ],
)
def test_each_refusal_names_what_and_where(data, reason):
    with pytest.raises(DecodeError) as info:
        decode(data, "block")
    assert info.value.code == "malformed"
    assert info.value.message.startswith("malformed block: ")
    assert reason in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        -(2**64),
        2**64 - 1,
        2**64,
        -(2**64) - 1,
        3**161,  # 32 bytes
        {2**64: "bignum key", 1: 0},
        {"a": 1, 1000: 2, b"": 3, -1: 4},
        [True, False, None, "", b""],
        "\u00e9\U0001f600",
    ],
)
def test_edges_of_the_plain_model_round_trip(value):
    assert decode(encode(value)) == value


def test_the_item_cap_is_enforced(monkeypatch):
    monkeypatch.setattr(encoding, "MAX_ITEMS", 100)
    assert decode(encode(list(range(99)))) == list(range(99))
    with pytest.raises(DecodeError, match="more than MAX_ITEMS=100 items at byte 176"):
        decode(encode(list(range(100))))
    assert MAX_ITEMS >= 1 << 20


def _reference_decode(data: bytes):
    """What decode accepts, defined independently of the scan: cbor2's value, if
    it is plain and encode() writes exactly ``data`` for it (inputs here are small,
    so cbor2's reference tags cannot amplify)."""
    try:
        value = cbor2.loads(data)
    except Exception:  # noqa: BLE001 - the reference: any error means it refuses
        return DecodeError
    if not _is_plain(value, 0) or encode(value) != data:
        return DecodeError
    return value


def _is_plain(value, depth: int) -> bool:
    if depth > MAX_DEPTH + 1:
        return False
    if type(value) is int:
        return -(2**256) <= value < 2**256  # bignums of MAX_BIGNUM_BYTES at most
    if type(value) in (bytes, str, bool, type(None)):
        return True
    if type(value) is list:
        return depth <= MAX_DEPTH and all(_is_plain(v, depth + 1) for v in value)
    if type(value) is dict:
        return depth <= MAX_DEPTH and all(
            type(k) in (int, bytes, str) and _is_plain(v, depth + 1) for k, v in value.items()
        )
    return False


plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64 - 1)
    | st.integers(-(2**256), 2**256 - 1)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.text(max_size=6)
            | st.integers(-300, 300)
            | st.integers(2**64, 2**66)
            | st.binary(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@st.composite
def mutated_encodings(draw) -> bytes:
    data = bytearray(encode(draw(plain)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data.insert(at, draw(st.integers(0, 255)))
        elif kind == "delete" and data:
            del data[at]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


def _agrees_with_reference(data: bytes) -> None:
    expected = _reference_decode(data)
    try:
        value = decode(data)
    except DecodeError as exc:
        assert exc.code == "malformed"
        assert expected is DecodeError, (data.hex(), exc.message)
        return
    assert expected is not DecodeError, data.hex()
    assert value == expected
    assert encode(value) == data


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(plain)
def test_fuzz_plain_values_round_trip(value):
    data = encode(value)
    assert decode(data) == value
    _agrees_with_reference(data)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_encodings())
def test_fuzz_mutated_encodings_decode_exactly_or_raise_decode_error(data):
    _agrees_with_reference(data)


@settings(max_examples=500)
@given(st.binary(max_size=48))
def test_fuzz_random_bytes_decode_exactly_or_raise_decode_error(data):
    _agrees_with_reference(data)


@pytest.mark.slow
@settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.one_of(mutated_encodings(), st.binary(max_size=200)))
def test_fuzz_long(data):
    _agrees_with_reference(data)
