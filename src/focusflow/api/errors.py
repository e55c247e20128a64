"""Every API error is one JSON shape with a stable code, whatever raised it.

Handlers raise the project's :class:`~focusflow.core.errors.FocusflowError`
subclasses (the same ones the CLI prints); this module maps their codes to
HTTP statuses, turns FastAPI's request-validation errors into ``malformed``,
and caps request bodies before they are read into memory.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from focusflow.core.asgi import ASGIApp, Message, Receive, Scope, Send, replaying
from focusflow.core.errors import FocusflowError
from focusflow.core.jsontext import too_deep

#: Largest request body the node reads (a max-size transaction is 1 MiB, hex doubles it).
MAX_BODY_BYTES = 2 << 20 | 1024
#: Largest blob ``POST /v1/blobs`` takes (its body is raw bytes, spooled to disk).
MAX_BLOB_BYTES = 1 << 30

STATUS = {
    "not_found": 404,
    "unknown_particle": 404,
    "unknown_tx": 404,
    "unknown_block": 404,
    "unknown_name": 404,
    "unknown_semcon": 404,
    "unknown_neuron": 404,
    "unknown_text": 404,
    "unknown_contract": 404,
    "share_unavailable": 404,
    "blob_unavailable": 404,
    "unknown_pin": 404,
    "unknown_share": 404,
    "unknown_pool": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "too_many_attempts": 429,
    "login_busy": 503,
    "body_too_large": 413,
    "blob_too_large": 413,
    "mempool_full": 429,
    "mempool_senders_full": 429,
    "sender_full": 429,
    "admission_busy": 503,
    "inference_busy": 503,
    "query_busy": 503,
    "wasm_query_busy": 503,
    "query_limit": 422,
    "query_height_unavailable": 404,
    "unknown_view": 404,
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
    "unavailable": 503,
}


class ApiError(FocusflowError):
    """An error only the API raises; the code is chosen at the raise site."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class ErrorBody(TypedDict):
    code: str
    message: str


class ErrorDoc(TypedDict):
    """What :func:`error_doc` builds: ``ErrorResponse``'s shape, as plain JSON."""

    error: ErrorBody


#: OpenAPI description of every error answer (replaces FastAPI's 422 schema);
#: the type is that of FastAPI's ``responses`` argument.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "error with a stable code"}
}


def error_response(code: str, message: str, status: int | None = None) -> JSONResponse:
    return JSONResponse(error_doc(code, message), status_code=status or STATUS.get(code, 400))


def error_doc(code: str, message: str) -> ErrorDoc:
    """The one JSON shape of every error answer."""
    return {"error": {"code": code, "message": message}}


def install(app: FastAPI) -> None:
    """Register the handlers and the body cap on ``app``."""

    @app.exception_handler(FocusflowError)
    async def _focusflow_error(request: Request, exc: FocusflowError) -> JSONResponse:
        return error_response(exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A templated route also matches a concrete path of another resource
        # (``GET /v1/txs/batch`` reaches ``/v1/txs/{hash}`` and fails its
        # pattern): that resource does not serve the method, which is a 405.
        allowed = allowed_methods(request.app, request.scope)
        if allowed and request.method not in allowed:
            return _method_not_allowed(allowed)
        parts = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ()))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return error_response("malformed", "; ".join(parts) or "malformed request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "malformed"
        )
        if exc.status_code == 405:
            return _method_not_allowed(allowed_methods(request.app, request.scope))
        return error_response(code, str(exc.detail), exc.status_code)

    # Starlette runs the middleware added last first: the size cap sees the
    # body before the depth check buffers it.
    app.add_middleware(JsonDepthLimit, exempt=("/evm", "/v1/blobs"))
    app.add_middleware(
        BodyLimit, limit=MAX_BODY_BYTES, larger={("POST", "/v1/blobs"): MAX_BLOB_BYTES}
    )


#: The methods a 405's ``Allow`` may name (RFC 9110's, less CONNECT and TRACE,
#: which no route serves).
_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, scope: Mapping[str, Any]) -> list[str]:
    """Every method the resource at the scope's path serves, sorted.

    RFC 9110 requires a 405 to name them in ``Allow``. The router raises 405
    from the first route whose path matches, with that route's methods only,
    and a path served by several routes (``GET`` and ``POST /v1/query/views``)
    needs the union over all of them. A documented path takes its methods
    from the OpenAPI document, concrete paths before templated ones as
    OpenAPI matches them (``/v1/txs/batch`` is not a ``/v1/txs/{hash}``);
    any other path from every route that matches it.
    """
    path = scope["path"]
    paths = app.openapi()["paths"]
    item = paths.get(path)
    if item is None:
        item = next(
            (
                item
                for template, item in paths.items()
                if "{" in template and _template(template).fullmatch(path)
            ),
            None,
        )
    if item is not None:
        return sorted(m.upper() for m in item if m.upper() in _METHODS)
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


def _method_not_allowed(allowed: list[str]) -> JSONResponse:
    response = error_response("method_not_allowed", "Method Not Allowed", 405)
    response.headers["Allow"] = ", ".join(allowed)
    return response


def _template(template: str) -> re.Pattern[str]:
    """A regex of an OpenAPI path template: each ``{name}`` one path segment."""
    parts = re.split(r"\{[^}/]+\}", template)
    return re.compile("[^/]+".join(re.escape(part) for part in parts))


class BodyLimit:
    """ASGI middleware: 413 ``body_too_large`` for bodies over ``limit`` bytes.

    It checks Content-Length up front and counts chunked bodies as they stream,
    so an oversize upload is refused without being buffered.
    """

    def __init__(
        self, app: ASGIApp, limit: int, larger: dict[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        #: ``(method, path) -> limit`` for the routes that take more (a blob upload).
        self.larger = larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get((scope.get("method", ""), scope.get("path", "")), self.limit)
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_413(send, limit)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLargeError()
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLargeError:
            await _send_413(send, limit)


class _BodyTooLargeError(Exception):
    pass


class JsonDepthLimit:
    """ASGI middleware: 400 ``malformed`` for a JSON body nested deeper than
    ``core.jsontext.MAX_JSON_DEPTH``, before any route or the framework parses it.

    Every route's JSON goes through it, the framework-parsed ones (pydantic
    bodies) too: with the EVM loaded the interpreter's recursion limit is far
    above what the C stack holds (``jsonbody``), so a deep body must never
    reach ``json.loads``. The body is read whole (``BodyLimit`` caps it first)
    and handed on unchanged.
    """

    def __init__(self, app: ASGIApp, exempt: tuple[str, ...] = ()) -> None:
        self.app = app
        #: Paths whose route parses its body with ``parse_json`` (which checks the
        #: depth itself) and answers in its own error format (JSON-RPC's -32700),
        #: or takes no JSON at all (a blob's raw bytes, which must not be buffered).
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if too_deep(body):
            response = error_response("malformed", "request body is nested too deeply", 400)
            await response(scope, receive, send)
            return
        await self.app(scope, replaying(body, receive), send)


def _is_json(scope: Scope) -> bool:
    """A body the framework would parse as JSON: a JSON media type, or none at all."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            kind: bytes = value.split(b";")[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return True


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(error_doc("body_too_large", f"request body over {limit} bytes")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
