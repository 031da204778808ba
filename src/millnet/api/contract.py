"""The OpenAPI document as a contract: what it calls valid is served, what it calls invalid is
refused, and every error answer has the one :class:`~millnet.api.errors.ErrorBody` shape.

FastAPI's generated document is close; this module states what it cannot infer:

* ``series`` (parsed by hand, so that both ``series=1&series=2`` and ``series=1,2`` work and a
  bad id answers 400 naming it) is a required array of ids, at most the node's limit;
* ``start`` and ``end`` are RFC 3339 date-times or epoch milliseconds;
* every 4xx and 5xx answer refers to the ``ErrorBody`` component (FastAPI would document its
  own validation-error shape for 422, which the API never sends).

``tests/integration/test_api_contract.py`` runs schemathesis with all its checks against a
node served by uvicorn to hold the API to this document.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from millnet.api.params import EPOCH_MS_PATTERN, INT32_MAX, Limits

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
_TIME_SCHEMA = {"anyOf": [{"type": "string", "format": "date-time"},
                          {"type": "string", "pattern": EPOCH_MS_PATTERN}]}


def _series_schema(max_items: int) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "maxItems": max_items,
            "items": {"type": "integer", "minimum": 0, "maximum": INT32_MAX}}


def _fix_parameters(path: str, operation: dict[str, Any], limits: Limits) -> None:
    for param in operation.get("parameters", []):
        if param["in"] != "query":
            continue
        if param["name"] == "series":
            most = limits.max_last_series if path.endswith("/last") else limits.max_series
            param.update(required=True, style="form", explode=True, schema=_series_schema(most))
        elif param["name"] in ("start", "end"):
            param["schema"] = {**_TIME_SCHEMA, "title": param["name"].title()}


def _fix_responses(operation: dict[str, Any]) -> None:
    if "requestBody" in operation:
        operation["responses"].setdefault("400", {"description": "The body is not JSON"})
    for code, response in operation.get("responses", {}).items():
        if code[0] not in "45":
            continue
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if str(schema.get("$ref", "")).endswith("/Health"):
            continue  # /healthz answers 503 with its checks, not an error
        response["content"] = {"application/json": {"schema": ERROR_REF}}


def document(app: FastAPI, limits: Limits) -> dict[str, Any]:
    """The app's OpenAPI document, made exact (built once, then cached on the app)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description,
                      routes=app.routes, tags=app.openapi_tags)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            _fix_parameters(path, operation, limits)
            _fix_responses(operation)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
