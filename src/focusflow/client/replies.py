"""A node's reply, read within bounds and turned into JSON or a typed error.

A node may be broken or hostile, and what it sends is read here before
anything else looks at it: the body is capped in bytes while it streams in
(a declared ``Content-Length`` over the cap is refused before a byte is
read), and in time once its headers came (a node that trickles a byte at a
time stays under every per-read timeout); the JSON is measured for nesting
before it is parsed (``json.loads`` recurses in C once per level). An error
reply is taken at its word only where it has the documented shape (docs/api.md,
*Conventions*): a code that is a code, a message cut to a readable length and
free of control characters (it ends up on a terminal).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from focusflow.client.errors import (
    BadNodeAnswerError,
    NodeRequestError,
    NodeUnreachableError,
    RemoteError,
)
from focusflow.core.jsontext import MAX_JSON_DEPTH, too_deep

#: Largest answer read, in bytes, unless a caller says otherwise: a datalog
#: answer of 100,000 rows of CIDs is about 15 MB, a graph page about 3 MB.
MAX_ANSWER_BYTES = 64 << 20
#: Seconds an answer's body may take to arrive once its headers did.
MAX_ANSWER_SECONDS = 120.0
#: Longest message kept from an error reply or quoted from a body that is not one.
MAX_MESSAGE_CHARS = 1000
#: An error code as docs/errors.md spells them.
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_CODE_CHARS = 64

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


@dataclass(frozen=True)
class Asked:
    """One request, as the errors about its answer name it."""

    url: str
    method: str
    path: str

    @property
    def what(self) -> str:
        return f"{self.method} {self.path}"


def read_capped(
    declared: str | None,
    chunks: Iterable[bytes],
    asked: Asked,
    max_bytes: int,
    max_seconds: float = MAX_ANSWER_SECONDS,
) -> bytes:
    """The body of ``chunks`` (its ``Content-Length`` was ``declared``), refused
    past ``max_bytes`` (BadNodeAnswerError) or ``max_seconds`` (NodeUnreachableError)."""
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise _too_large(asked, max_bytes)
    deadline = time.monotonic() + max_seconds
    body = bytearray()
    for chunk in chunks:
        body += chunk
        if len(body) > max_bytes:
            raise _too_large(asked, max_bytes)
        if time.monotonic() > deadline:
            raise NodeUnreachableError(
                f"the node at {asked.url} did not send its answer to {asked.what} "
                f"within {max_seconds:g} s"
            )
    return bytes(body)


def _too_large(asked: Asked, max_bytes: int) -> BadNodeAnswerError:
    return BadNodeAnswerError(f"{asked.what}: the node's answer is over {max_bytes} bytes")


def json_of(body: bytes, asked: Asked) -> Any:
    """The JSON value of a success answer; BadNodeAnswerError when it is none."""
    if too_deep(body):
        raise BadNodeAnswerError(
            f"{asked.what}: the node's answer nests deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise BadNodeAnswerError(f"{asked.what}: the node's answer is not JSON") from None


def object_of(value: Any, asked: Asked) -> dict[str, Any]:
    """``value`` when it is a JSON object, as every answer of docs/api.md is."""
    if not isinstance(value, dict):
        raise BadNodeAnswerError(f"{asked.what}: the node's answer is not a JSON object")
    return value


def refusal(status: int, body: bytes, asked: Asked) -> NodeRequestError:
    """The error an answer of an error ``status`` means.

    The node's error reply is a RemoteError with the node's code; a 404
    without one (a route the node does not have) is ``not_found`` as the
    node's own would be; any other status without one is NodeRequestError,
    quoting the start of the body.
    """
    try:
        doc = None if too_deep(body) else json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    found = remote_error(doc.get("error") if isinstance(doc, dict) else None, status)
    if found is not None:
        return found
    detail = printable(body.decode("utf-8", "replace")) or f"HTTP {status}"
    message = f"{asked.what}: HTTP {status}: {detail}"
    if status == 404:
        return RemoteError(message, "not_found", status)
    return NodeRequestError(message, status=status)


def remote_error(error: Any, status: int) -> RemoteError | None:
    """The RemoteError of an error reply's ``error`` member (``{"code",
    "message"}``), or None when it does not have that shape. Also what reads
    the errors a node reports inside an answer: a batch's refused
    transactions, a WebSocket's last message."""
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(code, str) or not _is_code(code):
        return None
    message = error.get("message")
    text = printable(message) if isinstance(message, str) and message.strip() else code
    return RemoteError(text, code, status)


def _is_code(text: str) -> bool:
    return len(text) <= MAX_CODE_CHARS and CODE.fullmatch(text) is not None


def printable(text: str) -> str:
    """``text`` on one line, control characters folded to a space, at most
    MAX_MESSAGE_CHARS long."""
    flat = " ".join(_CONTROL.sub(" ", text).split())
    if len(flat) > MAX_MESSAGE_CHARS:
        return flat[: MAX_MESSAGE_CHARS - 3] + "..."
    return flat


__all__ = [
    "MAX_ANSWER_BYTES",
    "MAX_ANSWER_SECONDS",
    "Asked",
    "json_of",
    "object_of",
    "printable",
    "read_capped",
    "refusal",
    "remote_error",
]
