"""The OpenAPI document says what the API answers, for a second client and for schemathesis.

FastAPI's generated document differs from kameng's answers in three generic ways, fixed here
once for every route instead of in each:

- it declares every 422 as FastAPI's ``HTTPValidationError`` (``detail`` an array), while
  kameng answers ``{"detail": "<what to fix>"}`` (`backend.api.errors`): each 422 becomes
  `ErrorPublic` unless the route declared its own model;
- it writes an optional parameter (``int | None``) as ``anyOf: [integer, null]``, so a client
  may think the text ``null`` is a valid header or query value; an absent parameter is written
  by leaving it out, so the ``null`` branch is removed from parameters;
- it omits the answers every route shares: 400 for a body that cannot be read (bad UTF-8,
  unparseable JSON), 401 for a route that needs a signed-in wallet, 503 for a database or node
  that is down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi.openapi.utils import get_openapi

from backend.schemas import ErrorPublic

if TYPE_CHECKING:
    from fastapi import FastAPI

_ERROR_REF = {"$ref": "#/components/schemas/ErrorPublic"}
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"

#: Answers added to an operation that does not declare them itself.
_BODY_400 = "The body cannot be read: not UTF-8, or not valid JSON."
_AUTH_401 = "Not signed in, or the token or signature is invalid."
_DOWN_503 = "The database or the node is down; retry after `Retry-After` seconds."
_BAD_422 = "A field is out of its range or malformed; the detail names it."


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` → X (keeping the title, description and default)."""
    options = schema.get("anyOf")
    if not isinstance(options, list):
        return schema
    kept = [o for o in options if o != {"type": "null"}]
    if len(kept) == len(options):
        return schema
    out = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    if len(kept) == 1:
        out.update(kept[0])
    else:
        out["anyOf"] = kept
    return out


def _uses_ref(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_uses_ref(v, ref) for v in node.values())
    if isinstance(node, list):
        return any(_uses_ref(v, ref) for v in node)
    return False


def fix_operation(op: dict[str, Any]) -> None:
    """Bring one operation's parameters and answers in line with what the server does."""
    for param in op.get("parameters", []):
        if "schema" in param:
            param["schema"] = _strip_null(param["schema"])
    responses: dict[str, Any] = op.setdefault("responses", {})
    if "422" in responses and _uses_ref(responses["422"], _FASTAPI_422):
        responses["422"] = _error(_BAD_422)
    if op.get("parameters") or "requestBody" in op:
        responses.setdefault("422", _error(_BAD_422))
    if "requestBody" in op:
        responses.setdefault("400", _error(_BODY_400))
    if op.get("security"):
        responses.setdefault("401", _error(_AUTH_401))
    responses.setdefault("503", _error(_DOWN_503))


def build(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document, generated once and fixed as this module describes."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    for item in doc.get("paths", {}).values():
        for op in item.values():
            fix_operation(op)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("ErrorPublic", ErrorPublic.model_json_schema())
    if not _uses_ref(doc["paths"], _FASTAPI_422):
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
    app.openapi_schema = doc
    return doc


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the fixed document."""

    def openapi() -> dict[str, Any]:
        return build(app)

    app.openapi = openapi  # type: ignore[method-assign]
