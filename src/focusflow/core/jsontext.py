"""JSON text from outside: how deep it nests, measured before it is parsed.

``json.loads`` recurses once per nesting level, in C. Past the interpreter's
recursion limit it raises RecursionError, but that limit is no safe bound:
py-evm raises it to 100,000 when a node loads the EVM, and nesting that deep
overflows the C stack and kills the process. Every JSON that arrives from a
client, a peer or a transaction is therefore measured first (``json_depth``)
and refused when it nests deeper than the caller allows.
"""

from __future__ import annotations

import re

import numpy as np

#: Deepest nesting of arrays and objects taken from outside (our own documents
#: need 4; a contract's message a few more).
MAX_JSON_DEPTH = 64
#: A JSON string (escapes included): what the depth scan blanks out first.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def json_depth(text: bytes | str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do
    not count; an unclosed string runs to the end), in C-speed passes."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    bare = np.frombuffer(_STRING.sub(b"", raw), dtype=np.uint8)
    opens = (bare == ord("[")) | (bare == ord("{"))
    closes = (bare == ord("]")) | (bare == ord("}"))
    steps = opens.astype(np.int64) - closes.astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def too_deep(text: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``text`` nests deeper than ``limit`` (no scan when it has fewer
    brackets than that)."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return json_depth(raw) > limit
