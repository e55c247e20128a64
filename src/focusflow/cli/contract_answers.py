"""How the CLI shows what a contract answered.

Contracts answer bytes; by CosmWasm's convention they are JSON, which people
read as JSON. Anything else is shown as ``0x`` hex so that no byte is hidden.
"""

from __future__ import annotations

import json
from typing import Any

#: Marks an answer that is not JSON.
NOT_JSON = object()


def decoded(raw: bytes) -> Any:
    """The JSON value of an answer, or :data:`NOT_JSON`."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return NOT_JSON


def answer_text(raw: bytes) -> str:
    """One line: the answer's compact JSON, else its hex."""
    value = decoded(raw)
    if value is NOT_JSON:
        return "0x" + raw.hex()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
