"""Who may change the grid, and how much a request may send: Konomi's ASGI guard.

Every request that can change state (an HTTP method other than GET, HEAD and
OPTIONS, and every WebSocket, whose actions create and drive cubes) must carry
the server's bearer token: ``Authorization: Bearer <token>``, or for a WebSocket
opened by a browser, which cannot set headers, ``?token=<token>`` in its URL.
The comparison is constant-time (:func:`hmac.compare_digest`). Reads stay open.

Bodies are capped at ``max_body`` bytes: a ``Content-Length`` above the cap is
refused before one byte of the body is read, and a body without one (chunked)
is refused as soon as what arrived passes the cap, so no client makes the server
hold more than the cap. The token is checked first, so an anonymous client
cannot make the server read a body at all.

Errors (JSON ``{"error": {"code", "message"}}``): ``unauthorized`` (401) without
or with a wrong token, ``body_too_large`` (413), ``malformed_message`` (400) for
a Content-Length that is not a number. A refused WebSocket is closed during the
handshake, which the server answers with HTTP 403.
"""

from __future__ import annotations

import hmac
import json
from urllib.parse import parse_qs

from focusflow.core.asgi import ASGIApp, Receive, Scope, Send, replaying
from focusflow.core.errors import InvalidParameterError

#: Largest request body (and WebSocket message) in bytes: the largest legitimate
#: body (a template or a block) is under 200 bytes; LLM text travels in the query.
MAX_BODY = 64 * 1024
#: Methods that only read, open to anyone.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The environment variable that gives a server its token (containers share it so).
ENV_TOKEN = "KONOMI_TOKEN"
#: Shortest token the server accepts: a short one could be guessed.
MIN_TOKEN_CHARS = 32


def check_token(token: str) -> str:
    """``token`` if it is long enough to serve as the server's secret."""
    if len(token) < MIN_TOKEN_CHARS:
        raise InvalidParameterError(
            f"the Konomi token must have at least {MIN_TOKEN_CHARS} characters"
        )
    return token


def _bearer(scope: Scope) -> str:
    """The token a request presents: its Authorization header, else (WebSocket) ?token=."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            scheme, _, rest = text.partition(" ")
            if scheme.lower() == "bearer":
                return rest.strip()
    if scope["type"] == "websocket":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return (query.get("token") or [""])[0]
    return ""


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent; ValueError when not a count."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            if not text.isdigit():
                raise ValueError(text)
            return int(text)
    return None


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="konomi"'))
    # The body is not (all) read: the connection closes after this answer.
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class KonomiGuard:
    """ASGI middleware: token on state-changing requests, a cap on body bytes."""

    def __init__(self, app: ASGIApp, token: str, max_body: int = MAX_BODY) -> None:
        self.app = app
        self._token = check_token(token).encode()
        self.max_body = max_body

    def _authorised(self, scope: Scope) -> bool:
        return hmac.compare_digest(_bearer(scope).encode(), self._token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            if not self._authorised(scope):
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in READ_METHODS and not self._authorised(scope):
            await _error(
                send, 401, "unauthorized", "this route needs Authorization: Bearer <konomi token>"
            )
            return
        try:
            declared = _content_length(scope)
        except ValueError as exc:
            await _error(send, 400, "malformed_message", f"Content-Length {exc} is not a count")
            return
        if declared is not None and declared > self.max_body:
            await _error(send, 413, "body_too_large", self._too_large(declared))
            return
        await self._bounded(scope, receive, send)

    def _too_large(self, size: int | str) -> str:
        return f"the request body ({size} bytes) exceeds the limit of {self.max_body} bytes"

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Read the body up to the cap (refusing it past the cap), then run the app on it."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _error(send, 413, "body_too_large", self._too_large(f"at least {size}"))
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, replaying(b"".join(chunks), receive), send)
