"""Parsing a JSON request body: every bad body is ``malformed``, never a server error.

``json.loads`` refuses text that is not JSON with ValueError, but a body nested
past the interpreter's recursion limit (a few kilobytes of ``[``) makes it raise
RecursionError instead, which no route expects: the client got a 500. Both are
the client's fault and get the documented ``malformed`` (400).
"""

from __future__ import annotations

import json
from typing import Any

from focusflow.core.errors import DecodeError


def parse_json(body: bytes | str) -> Any:
    """The JSON value of a request body; DecodeError (``malformed``) if it is none."""
    try:
        return json.loads(body)
    except RecursionError:
        raise DecodeError("request body is nested too deeply") from None
    except ValueError:
        raise DecodeError("request body is not JSON") from None
