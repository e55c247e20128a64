"""The OpenAPI document with integer bounds spelled as integers.

FastAPI passes every request-body and component schema through its own model
of a JSON Schema, whose ``minimum`` and ``maximum`` are floats: ``le=1000``
comes out as ``1000.0`` and ``le=2**63 - 1`` as ``9.223372036854776e18``,
which is 2**63, one past int64. A client that reads the bound as written (a
fuzzer, a generated client) then sends a value the server refuses. The
routes declare integer bounds within int64 only, so each float bound of an
integer schema is turned back into the integer it came from: whole floats
below 2**53 are exact, and one that rounded to 2**63 was ``INT64_MAX``.

The interactive page at ``/docs`` is FastAPI's Swagger UI page pointed at the
copies of Swagger UI the package vendors (web/build): FastAPI's default loads
them from a CDN, which leaves the page blank on a machine without the internet
and hands every reader's visit to a third party.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from focusflow.api.params import INT64_MAX

DOCS_URL = "/docs"
"""The interactive page; the app is made with ``docs_url=None`` so that this one serves it."""

_VENDOR = "/static/vendor"
_OAUTH2_REDIRECT = DOCS_URL + "/oauth2-redirect"

_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


def _integer_bounds(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in _BOUNDS:
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = INT64_MAX if value >= 2.0**63 else int(value)
        for value in node.values():
            _integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _integer_bounds(value)


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) answer the corrected document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            _integer_bounds(generate())
        schema = app.openapi_schema
        assert schema is not None  # generate() caches the document it returns
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` from the vendored Swagger UI (under the app's ``/static`` mount)."""
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API",
            swagger_js_url=f"{_VENDOR}/swagger-ui-bundle.js",
            swagger_css_url=f"{_VENDOR}/swagger-ui.css",
            # No favicon request leaves the node: an empty icon.
            swagger_favicon_url="data:,",
            oauth2_redirect_url=_OAUTH2_REDIRECT,
            # No schema is sent to the public validator service.
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
