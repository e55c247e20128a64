"""JSON depth measured before parsing: the same depth as the scan every node ran
before (it decides how transactions' WASM messages are refused, so it is
consensus), in time linear in the text, where that scan took the square."""

from __future__ import annotations

import re
import time

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from focusflow.core.jsontext import json_depth, too_deep

#: The scan as it was: a string tried at every quote, so a text of escaped
#: quotes behind an unclosed one cost the square of its length.
_OLD_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def old_depth(raw: bytes) -> int:
    bare = np.frombuffer(_OLD_STRING.sub(b"", raw), dtype=np.uint8)
    opens = (bare == ord("[")) | (bare == ord("{"))
    closes = (bare == ord("]")) | (bare == ord("}"))
    steps = opens.astype(np.int64) - closes.astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b":"]), max_size=60))
def test_the_depth_is_the_one_every_node_computed_before(parts):
    raw = b"".join(parts)
    assert json_depth(raw) == old_depth(raw)


def test_known_depths():
    assert json_depth(b"") == json_depth(b"1") == json_depth(b"]]]") == 0
    assert json_depth(b'{"a": [[1], {"b": "[[[["}]}') == 3
    assert json_depth('["\\"[[", [[]]]') == 3
    # a quote nothing closes starts no string: the brackets after it count
    assert json_depth(b'["[[[') == 4
    assert too_deep(b"[" * 65) and not too_deep(b"[" * 64)


def test_escaped_quotes_behind_an_unclosed_one_are_read_once():
    hostile = b"[" * 70 + b'"' + b'\\"' * 1_000_000  # 2 MB, the API's body cap
    t0 = time.monotonic()
    assert json_depth(hostile) == 70
    assert time.monotonic() - t0 < 2
