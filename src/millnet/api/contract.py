"""The OpenAPI document as a contract: what it calls valid is served, what it calls invalid is
refused, and every error answer has the one :class:`~millnet.api.errors.ErrorBody` shape.

FastAPI's generated document is close; this module states what it cannot infer:

* ``series`` (parsed by hand, so that both ``series=1&series=2`` and ``series=1,2`` work and a
  bad id answers 400 naming it) is a required array of ids, at most the node's limit;
* ``start`` and ``end`` are RFC 3339 date-times or epoch milliseconds;
* every 4xx and 5xx answer refers to the ``ErrorBody`` component (FastAPI would document its
  own validation-error shape for 422, which the API never sends);
* OpenAPI links: where the ids of an answer lead (a created asset to ``GET /assets/{asset_id}``,
  a device list to its devices, a point to its telemetry), for readers and for schemathesis'
  stateful phase, which otherwise guesses ids that mostly do not exist.

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


_V1 = "/api/v1"
# (operation, status) -> {link name: (target operation, {parameter: runtime expression})}.
# Expressions into list answers name the first item; an empty list leaves the parameter to the
# client. No link leaves a nullable field (a node-wide token's tenant_id is null).
_LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    (f"get {_V1}/tenants", "200"): {
        "GetTenant": (f"get {_V1}/tenants/{{tenant_id}}",
                      {"path.tenant_id": "$response.body#/0/id"}),
        "AssetTree": (f"get {_V1}/assets", {"query.tenant_id": "$response.body#/0/id"}),
        "Devices": (f"get {_V1}/devices", {"query.tenant_id": "$response.body#/0/id"}),
        "Points": (f"get {_V1}/points", {"query.tenant_id": "$response.body#/0/id"}),
        "Products": (f"get {_V1}/products", {"query.tenant_id": "$response.body#/0/id"}),
    },
    (f"post {_V1}/tenants", "201"): {
        "GetTenant": (f"get {_V1}/tenants/{{tenant_id}}",
                      {"path.tenant_id": "$response.body#/id"}),
        "ChangeTenant": (f"patch {_V1}/tenants/{{tenant_id}}",
                         {"path.tenant_id": "$response.body#/id"}),
        "IdentifierPrefixes": (f"put {_V1}/tenants/{{tenant_id}}/identifier-prefixes",
                               {"path.tenant_id": "$response.body#/id"}),
    },
    (f"get {_V1}/assets", "200"): {
        "GetRoot": (f"get {_V1}/assets/{{asset_id}}",
                    {"path.asset_id": "$response.body#/roots/0/id"}),
        "RootChildren": (f"get {_V1}/assets/{{asset_id}}/children",
                         {"path.asset_id": "$response.body#/roots/0/id"}),
    },
    (f"post {_V1}/assets", "201"): {
        "GetAsset": (f"get {_V1}/assets/{{asset_id}}", {"path.asset_id": "$response.body#/id"}),
        "Children": (f"get {_V1}/assets/{{asset_id}}/children",
                     {"path.asset_id": "$response.body#/id"}),
    },
    (f"get {_V1}/assets/{{asset_id}}/children", "200"): {
        "GetChild": (f"get {_V1}/assets/{{asset_id}}",
                     {"path.asset_id": "$response.body#/0/id"}),
    },
    (f"get {_V1}/devices", "200"): {
        "GetDevice": (f"get {_V1}/devices/{{device_id}}",
                      {"path.device_id": "$response.body#/0/id"}),
        "DevicePoints": (f"get {_V1}/devices/{{device_id}}/points",
                         {"path.device_id": "$response.body#/0/id"}),
        "LinkIdentifier": (f"put {_V1}/devices/{{device_id}}/identifier",
                           {"path.device_id": "$response.body#/0/id"}),
    },
    (f"get {_V1}/devices/{{device_id}}", "200"): {
        "LinkIdentifier": (f"put {_V1}/devices/{{device_id}}/identifier",
                           {"path.device_id": "$response.body#/id"}),
        "GetPoint": (f"get {_V1}/points/{{series_id}}",
                     {"path.series_id": "$response.body#/points/0/series_id"}),
    },
    (f"get {_V1}/points", "200"): {
        "GetPoint": (f"get {_V1}/points/{{series_id}}",
                     {"path.series_id": "$response.body#/0/series_id"}),
        "GetDevice": (f"get {_V1}/devices/{{device_id}}",
                      {"path.device_id": "$response.body#/0/device_id"}),
        "Raw": (f"get {_V1}/telemetry/raw", {"query.series": "$response.body#/0/series_id"}),
        "Buckets": (f"get {_V1}/telemetry/buckets",
                    {"query.series": "$response.body#/0/series_id"}),
        "Last": (f"get {_V1}/telemetry/last", {"query.series": "$response.body#/0/series_id"}),
    },
    (f"get {_V1}/points/{{series_id}}", "200"): {
        "Raw": (f"get {_V1}/telemetry/raw", {"query.series": "$response.body#/series_id"}),
        "Buckets": (f"get {_V1}/telemetry/buckets",
                    {"query.series": "$response.body#/series_id"}),
        "Last": (f"get {_V1}/telemetry/last", {"query.series": "$response.body#/series_id"}),
    },
    (f"get {_V1}/products", "200"): {
        "GetProduct": (f"get {_V1}/products/{{product_id}}",
                       {"path.product_id": "$response.body#/0/id"}),
    },
    (f"post {_V1}/products", "201"): {
        "GetProduct": (f"get {_V1}/products/{{product_id}}",
                       {"path.product_id": "$response.body#/id"}),
        "LinkIdentifier": (f"put {_V1}/products/{{product_id}}/identifier",
                           {"path.product_id": "$response.body#/id"}),
    },
}


def _operation_ref(operation: str) -> str:
    method, path = operation.split(" ", 1)
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


def _add_links(paths: dict[str, Any]) -> None:
    for (operation, status), links in _LINKS.items():
        method, path = operation.split(" ", 1)
        response = paths[path][method]["responses"][status]
        response["links"] = {
            name: {"operationRef": _operation_ref(target), "parameters": params}
            for name, (target, params) in links.items()}


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
    _add_links(doc["paths"])
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = doc
    return doc
