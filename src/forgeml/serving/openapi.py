"""The server's OpenAPI document and a self-contained route listing, from the route table.

The request-body schemas describe each protocol's envelope; column values are left open
(``{}``) because their types depend on the model served. The ``/docs`` page loads nothing
from the internet.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from forgeml.version import __version__

__all__ = ["docs_page", "openapi_document"]

_ERROR = {
    "description": "Error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}
_SCALAR: dict[str, Any] = {}
_RECORD = {"type": "object", "additionalProperties": _SCALAR}


def _json_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


_BODIES: dict[str, dict[str, Any]] = {
    "plain": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "records": {"type": "array", "items": _RECORD},
                    "model": {"type": "string"},
                    "version": {"type": "integer"},
                },
                "required": ["records"],
            }
        }
    },
    "v2": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "parameters": {
                        "type": "object",
                        "properties": {"content_type": {"type": "string", "enum": ["pd"]}},
                    },
                    "inputs": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "shape": {"type": "array", "items": {"type": "integer"}},
                                "datatype": {"type": "string"},
                                "data": {"type": "array"},
                            },
                            "required": ["name", "shape", "datatype", "data"],
                        },
                    },
                    "outputs": {
                        "type": "array",
                        "items": {"type": "object", "properties": {"name": {"type": "string"}}},
                    },
                },
                "required": ["inputs"],
            }
        }
    },
    "mlflow": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "dataframe_split": {
                        "type": "object",
                        "properties": {
                            "columns": {"type": "array", "items": {"type": "string"}},
                            "data": {"type": "array", "items": {"type": "array"}},
                        },
                    },
                    "dataframe_records": {"type": "array", "items": _RECORD},
                    "instances": {"type": "array"},
                    "inputs": {},
                },
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
    "feedback": _json_body(
        {
            "type": "object",
            "properties": {
                "request_id": {"type": "string"},
                "row": {"type": "integer", "minimum": 0},
                "label": {"type": ["string", "number", "boolean"]},
                "labels": {"type": "array", "items": {"type": ["string", "number", "boolean"]}},
                "unit_id": {"type": "string"},
                "model": {"type": "string"},
                "value": {"type": ["number", "boolean"]},
                "event_id": {"type": "string"},
                "feedback": {"type": "array", "items": {"type": "object"}},
            },
        }
    ),
    "recommend": _json_body(
        {
            "type": "object",
            "properties": {
                "user": {"type": ["string", "integer"]},
                "users": {"type": "array", "items": {"type": ["string", "integer"]}},
                "k": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                "exclude_seen": {"type": "boolean", "default": True},
                "exclude": {"type": "array", "items": {"type": ["string", "integer"]}},
                "allow": {"type": "array", "items": {"type": ["string", "integer"]}},
                "model": {"type": "string"},
                "version": {"type": "integer"},
            },
        }
    ),
    "similar": _json_body(
        {
            "type": "object",
            "properties": {
                "item": {"type": ["string", "integer"]},
                "k": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10},
                "model": {"type": "string"},
                "version": {"type": "integer"},
            },
            "required": ["item"],
        }
    ),
    "interactions": _json_body(
        {
            "type": "object",
            "properties": {
                "user": {"type": ["string", "integer"]},
                "item": {"type": ["string", "integer"]},
                "weight": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                "interactions": {"type": "array", "items": {"type": "object"}},
                "model": {"type": "string"},
            },
        }
    ),
    "experiment": _json_body(
        {
            "type": "object",
            "properties": {
                "model": {"type": "string"},
                "variants": {
                    "oneOf": [
                        {"type": "object", "additionalProperties": {"type": "number"}},
                        {"type": "string"},
                    ]
                },
                "unit": {"type": "string"},
                "metric": {"type": "string"},
                "kind": {"type": "string", "enum": ["binary", "continuous"]},
                "name": {"type": "string"},
                "shadow": {"type": "boolean"},
                "alias": {"type": "string"},
                "control": {"type": "string"},
            },
            "required": ["variants", "unit", "metric"],
        }
    ),
    "weights": _json_body(
        {
            "type": "object",
            "properties": {
                "variants": {"type": "object", "additionalProperties": {"type": "number"}}
            },
            "required": ["variants"],
        }
    ),
    "conclude": _json_body(
        {
            "type": "object",
            "properties": {"promote": {"type": "string"}, "rollback": {"type": "boolean"}},
        }
    ),
}


def openapi_document(routes: Sequence[Any]) -> dict[str, Any]:
    """OpenAPI 3.0 for ``routes`` (a sequence of :class:`~forgeml.serving.service.RouteSpec`)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "summary": route.summary,
            "operationId": f"{route.handler}_{route.method.lower()}_{len(paths)}",
            "responses": {
                "200": {"description": "OK"},
                "400": _ERROR,
                "404": _ERROR,
                "413": _ERROR,
                "415": _ERROR,
                "422": _ERROR,
                "503": _ERROR,
            },
        }
        params = [p.strip("{}") for p in route.path.split("/") if p.startswith("{")]
        if params:
            operation["parameters"] = [
                {
                    "name": p,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "integer" if p == "version" else "string"},
                }
                for p in params
            ]
        if route.body in _BODIES:
            operation["requestBody"] = {"required": True, "content": _BODIES[route.body]}
        if route.role == "admin":
            operation["security"] = [{"apiKey": []}, {"bearer": []}]
            operation["responses"]["401"] = _ERROR
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "forgeml prediction server", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        },
    }


def docs_page(routes: Sequence[Any]) -> str:
    rows = "\n".join(
        f"<tr><td>{html.escape(r.method)}</td><td><code>{html.escape(r.path)}</code></td>"
        f"<td>{html.escape(r.role)}</td><td>{html.escape(r.summary)}</td></tr>"
        for r in routes
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>forgeml server</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}td,th{padding:.3rem .8rem;"
        "text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
        "<h1>forgeml prediction server</h1><p>OpenAPI document: "
        "<a href='/openapi.json'>/openapi.json</a></p>"
        f"<table><tr><th>Method</th><th>Route</th><th>Who</th><th>What</th></tr>{rows}</table>"
        "</body></html>"
    )
