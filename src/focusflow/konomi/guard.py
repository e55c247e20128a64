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
or with a wrong token, ``forbidden`` (403) for an API token whose roles do not
allow the route, ``body_too_large`` (413), ``malformed_message`` (400) for
a Content-Length that is not a number. A refused WebSocket is closed during the
handshake, which the server answers with HTTP 403.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

from focusflow.core.asgi import ASGIApp, Receive, Scope, Send, replaying
from focusflow.core.errors import InvalidParameterError
from focusflow.services.auth.acl import Grant, Policy
from focusflow.services.auth.credentials import (
    ADMIN_ROLE,
    MAX_AUTHORIZATION,
    Authorizer,
    ForbiddenError,
)
from focusflow.services.auth.tokens import TokenStore, UnauthorizedError

log = logging.getLogger("focusflow.konomi.guard")

#: Largest request body (and WebSocket message) in bytes: the largest legitimate
#: body (a template or a block) is under 200 bytes; LLM text travels in the query.
MAX_BODY = 64 * 1024
#: Methods that only read, open to anyone.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: The environment variable that gives a server its token (containers share it so).
ENV_TOKEN = "KONOMI_TOKEN"
#: Shortest token the server accepts: a short one could be guessed.
MIN_TOKEN_CHARS = 32
#: Longest: ``Bearer <token>`` stays within the header length the guard reads.
MAX_TOKEN_CHARS = MAX_AUTHORIZATION - len("Bearer ")


def check_token(token: str) -> str:
    """``token`` if it is long enough to serve as the server's secret, and short
    enough for an ``Authorization`` header the guard reads (MAX_AUTHORIZATION)."""
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        raise InvalidParameterError(
            f"the Konomi token must have {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters"
        )
    return token


def _bearer(scope: Scope) -> str:
    """The token a request presents: its Authorization header, else (WebSocket) ?token=."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = value.decode("latin-1").strip()
            scheme, _, rest = text.partition(" ")
            if scheme.lower() == "bearer":
                return rest.strip()
    if scope["type"] == "websocket":
        raw: bytes = scope.get("query_string", b"")
        query = parse_qs(raw.decode("latin-1"))
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


#: Konomi's roles: ``admin`` (the server token's) may do anything; ``konomi``
#: may drive the grid (every state-changing route and the WebSocket).
KONOMI_ROLES: dict[str, tuple[Grant, ...]] = {
    ADMIN_ROLE: (Grant("*", "**"),),
    "konomi": (Grant("write", "konomi/**"),),
}


def resource_of(scope: Scope) -> str:
    """The ACL resource a request touches: ``konomi/`` and its path's first two
    segments (``konomi/llm/process``, ``konomi/ws``), each cut to 64 characters
    so that any path names a valid resource."""
    parts = [p[:64] for p in str(scope.get("path", "")).split("/") if p][:2]
    return "/".join(["konomi", *parts])


class KonomiGuard:
    """ASGI middleware: credentials on state-changing requests, a cap on body bytes.

    The server's token holds the ``admin`` role; with a token file, scoped API
    tokens (``focusflow auth token issue --file FILE --role konomi``) are taken
    too, and decided by ``KONOMI_ROLES`` (:class:`Authorizer`).
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        max_body: int = MAX_BODY,
        tokens: TokenStore | None = None,
    ) -> None:
        self.app = app
        self.authorizer = Authorizer(check_token(token), tokens, Policy(KONOMI_ROLES))
        self.max_body = max_body

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        """None if the request's credential may write here, else its (status, code)."""
        try:
            self.authorizer.authorize(f"Bearer {_bearer(scope)}", "write", resource_of(scope))
        except UnauthorizedError as exc:
            log.info("konomi refused credentials: %s", exc.reason)
            return 401, exc.code
        except ForbiddenError as exc:
            log.info("konomi refused: %s", exc.reason)
            return 403, exc.code
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            refused = self._refusal(scope)
            if refused is not None:
                await receive()  # websocket.connect
                await send({"type": "websocket.close", "code": 1008, "reason": refused[1]})
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = None if scope["method"] in READ_METHODS else self._refusal(scope)
        if refused is not None:
            status, code = refused
            message = (
                "this route needs Authorization: Bearer <konomi token or API token>"
                if status == 401
                else "this credential's roles do not allow this route"
            )
            await _error(send, status, code, message)
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
