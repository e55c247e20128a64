"""Request/response: named handlers and how their outcome travels back.

A request is one :class:`Request` message alone on a new QUIC stream; the
answer is one :class:`Response` (or :class:`Error`) on the same stream, after
which both sides close it. A stream per request means a slow answer (a 1 MB
block) never holds up a vote behind it, and QUIC reuses the one connection.
Handlers are async functions ``(peer_id, payload) -> bytes`` registered by name;
block sync and DA sampling register theirs on top of this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from focusflow.core.errors import FocusflowError
from focusflow.net.errors import RemoteError
from focusflow.net.messages import Error, Response

Handler = Callable[[bytes, bytes], Awaitable[bytes]]

UNKNOWN_HANDLER = "unknown_handler"
BUSY = "busy"
HANDLER_FAILED = "handler_failed"
RESPONSE_TOO_LARGE = "response_too_large"


class Handlers:
    """The request handlers of one node, by name."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers:
            raise ValueError(f"a handler named {name!r} is already registered")
        self._handlers[name] = handler

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)


def error_for(exc: BaseException) -> Error:
    """The Error message for a handler's exception: its stable code, never a traceback."""
    if isinstance(exc, FocusflowError):
        return Error(exc.code, exc.message)
    return Error(HANDLER_FAILED, f"{type(exc).__name__} in handler")


def result_of(message: Response | Error) -> bytes:
    """The payload of a response, or RemoteError carrying the peer's error code."""
    if isinstance(message, Error):
        raise RemoteError(f"peer error {message.code}: {message.message}", message.code)
    return message.payload
