"""Request bodies the routes parse themselves, declared in the OpenAPI schema.

``POST /v1/query``, ``/v1/query/views`` and ``/v1/infer`` read their bodies
by hand (``api.jsonbody``: bounded, each refusal with its code), so FastAPI
knows nothing of them. Each route states its body as a :class:`StrictBody`
model beside its parser, field for field what the parser accepts, and
:func:`json_body` puts it in the schema: the same bounds, enums for fixed
sets, and ``additionalProperties: false``, since the parsers refuse unknown
fields.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictBody(BaseModel):
    """A body whose unknown fields the server refuses."""

    model_config = ConfigDict(extra="forbid")


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its nested models inlined.

    A ``#/$defs/...`` reference inside the OpenAPI document would resolve
    against the document's root, where there are no ``$defs``.
    """
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)  # an object stays an object
    return inlined


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` the route's required JSON body."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": json_schema(model)}},
        }
    }
