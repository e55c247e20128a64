"""JSON text from outside: how deep it nests, measured before it is parsed.

``json.loads`` recurses once per nesting level, in C. Past the interpreter's
recursion limit it raises RecursionError, but that limit is no safe bound:
py-evm raises it to 100,000 when a node loads the EVM, and nesting that deep
overflows the C stack and kills the process. Every JSON that arrives from a
client, a peer, a node or a transaction is therefore measured first
(``json_depth``) and refused when it nests deeper than the caller allows.

The measure decides what transactions' WASM messages and packets are refused
with, so it is consensus: it must give every node the same depth for the same
bytes, and do so in time linear in them (a scan that tried a string at every
quote of ``"\\"\\"\\"...`` took 5 s for 40 KB, and grows with the square).
"""

from __future__ import annotations

import re
from itertools import accumulate

#: Deepest nesting of arrays and objects taken from outside (our own documents
#: need 4; a contract's message a few more).
MAX_JSON_DEPTH = 64
#: A JSON string (escapes included), or a quote that no quote closes and all
#: that follows it (``closed`` unset): no quote after an unclosed one closes
#: either, since a run of backslashes escapes the same quotes whichever quote
#: the scan started from, so the tail is one match, read once.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:(?P<closed>")|\\?\Z)')
#: +1 for an opening bracket, -1 for a closing one; every other byte deleted first.
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _STEP)


def _without_strings(raw: bytes) -> bytes:
    """``raw`` with its closed strings blanked out; a quote that nothing closes
    and what follows it stay as they are (their brackets count)."""
    return _STRING.sub(lambda m: b"" if m.group("closed") else m.group(0), raw)


def json_depth(text: bytes | str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside closed
    strings do not count), in C-speed passes."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    brackets = _without_strings(raw).translate(None, _NOT_BRACKETS)
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets)), default=0))


def too_deep(text: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests deeper than ``limit`` (no scan when it has fewer
    brackets than that)."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(raw) > limit
