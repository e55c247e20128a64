"""The two hottest endpoints, answered at the ASGI layer before the framework.

``GET /v1/focus/top`` is what every page and app polls, and its answer is the
same bytes for a whole block (``TopCache``); ``POST /v1/txs`` is what wallets
and importers hammer. Through FastAPI each request also pays routing,
parameter validation, the dependency machinery and a response object: about
0.15-0.3 ms of Python on a core that serves thousands of requests per second.
Under 50 concurrent readers on two cores that put the top list's p99 at twice
the 20 ms goal, and it was most of the margin of the 2,000 tx/s goal.

This middleware serves the plain forms of those two requests itself: the top
list without a query or with ``k`` between 1 and 1000 in plain digits, and a
transaction whose body has a Content-Length (the body cap, ``errors.BodyLimit``,
runs outside it). The work is the routes' own (``TopCache.body``,
``routes_chain.admit``) and errors have the one JSON shape (``errors.error_doc``),
so both paths answer the same. Anything else goes on to the FastAPI routes,
which stay the documented contract.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from focusflow.api.errors import STATUS, error_doc
from focusflow.api.routes_chain import FORWARDED_HEADER, admit, forward_to_owner
from focusflow.api.state import AppState
from focusflow.chain.errors import AdmissionBusyError, WrongChainIdError
from focusflow.core.asgi import ASGIApp, Receive, Scope, Send
from focusflow.core.errors import FocusflowError

TOP_PATH = "/v1/focus/top"
TXS_PATH = "/v1/txs"
DEFAULT_K = 100
MAX_K = 1000
_JSON = b"application/json"


def plain_k(query: bytes) -> int | None:
    """``k`` of a query string that is empty or exactly ``k=<digits>`` in range; else None."""
    if not query:
        return DEFAULT_K
    if not query.startswith(b"k=") or len(query) > 6:
        return None
    digits = query[2:]
    if not digits.isdigit() or digits.startswith(b"0"):
        return None
    k = int(digits)
    return k if 1 <= k <= MAX_K else None


class HotPaths:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, method = scope["path"], scope["method"]
            if path == TOP_PATH and method == "GET":
                k = plain_k(scope.get("query_string", b""))
                if k is not None:
                    body = self.state.top_cache.body(self.state.node.view, k)
                    await _respond(send, 200, body)
                    return
            elif path == TXS_PATH and method == "POST":
                headers = dict(scope.get("headers", ()))
                if b"content-length" in headers and FORWARDED_HEADER.encode() not in headers:
                    await self._submit(receive, send, headers.get(b"content-type", b""))
                    return
        await self.app(scope, receive, send)

    async def _submit(self, receive: Receive, send: Send, content_type: bytes) -> None:
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        headers: list[tuple[bytes, bytes]] = []
        doc: Mapping[str, object]
        body = b"".join(chunks)
        ctype = content_type.decode("latin-1")
        try:
            tx = await admit(self.state, body, ctype)
        except WrongChainIdError as exc:
            forwarded = await forward_to_owner(self.state, body, ctype)
            if forwarded is None:
                status, doc = STATUS.get(exc.code, 400), error_doc(exc.code, exc.message)
            else:
                status, doc, target = forwarded
                headers.append((b"x-forwarded-to", target.encode()))
        except FocusflowError as exc:
            status, doc = STATUS.get(exc.code, 400), error_doc(exc.code, exc.message)
            if isinstance(exc, AdmissionBusyError):
                headers.append((b"retry-after", str(exc.retry_after).encode()))
        else:
            status, doc = 202, {"hash": tx.hash.hex()}
        await _respond(send, status, json.dumps(doc, separators=(",", ":")).encode(), headers)


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
                *(headers or ()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


__all__ = ["HotPaths", "plain_k"]
