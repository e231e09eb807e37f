"""The internal API as an OpenAPI 3.1 document, built from the very structs that decode its
bodies and encode its answers, so the document and the server cannot disagree.

web/internal.py serves it at /internal/openapi.json; docs/openapi.json is the same document
checked in (tests/test_http.py fails when they differ). After changing the API, write it anew:

    python3 dev.py openapi > docs/openapi.json
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from parley import __version__
from parley.validation import NO_NUL_PATTERN

_REF: Final = "#/components/schemas/{name}"
# JSON that Postgres's jsonb holds: any value, but no NUL in a string or a key.
_NO_NUL: Final = {"pattern": NO_NUL_PATTERN}
METADATA_VALUE_REF: Final = _REF.format(name="MetadataValue")
_METADATA_VALUE: Final = {
    "anyOf": [
        {"type": ["null", "boolean", "number"]},
        {"type": "string", **_NO_NUL},
        {"type": "array", "items": {"$ref": METADATA_VALUE_REF}},
        {
            "type": "object",
            "propertyNames": _NO_NUL,
            "additionalProperties": {"$ref": METADATA_VALUE_REF},
        },
    ]
}
# A message's metadata: the schema for http.py's bodies to name.
METADATA_SCHEMA: Final = {
    "propertyNames": _NO_NUL,
    "additionalProperties": {"$ref": METADATA_VALUE_REF},
    "description": "a JSON object of at most PARLEY_MAX_METADATA_BYTES (8192) bytes as JSON,"
    " nesting at most 16 deep, with no NUL in any string",
}


class ErrorBody(msgspec.Struct, frozen=True):
    code: str
    message: str


class ErrorAnswer(msgspec.Struct, frozen=True):
    error: ErrorBody


@dataclass(frozen=True)
class Operation:
    """One endpoint of the internal API: what http.py routes, and what the document says."""

    method: str
    path: str  # with "{id}" for an id in the path
    summary: str
    body: type[Any] | None  # the JSON body's struct, or None for none
    answers: dict[int, tuple[str, type[Any] | None]]  # status -> (meaning, body or error)
    handler: Callable[..., Awaitable[Any]]  # (request, path id or None, body or query)
    operation_id: str
    query: type[Any] | None = None  # the query parameters' struct (GET)
    # OpenAPI links from the success answer: name -> (operationId, the id it passes), so
    # a client (and stateful testing) can follow one call with the next.
    links: dict[str, tuple[str, str]] = field(default_factory=dict)


_COMMON_ERRORS: Final = {
    400: "the body, the query or a value in them breaks a rule (`invalid_body`, `invalid_query`,"
    " `invalid_argument`, …)",
    401: "no valid service bearer token (`unauthorized`)",
    404: "no such id (`not_found`); ids in paths are ASCII digits of a positive bigint",
    413: "the body is over PARLEY_MAX_BODY_BYTES (`payload_too_large`)",
    503: "the internal API is off (`disabled`) or the database cannot be reached (`unavailable`)",
}


def document(operations: list[Operation]) -> dict[str, Any]:
    types = [op.body for op in operations if op.body is not None] + [
        body for op in operations for _, body in op.answers.values() if body is not None
    ]
    refs, components = msgspec.json.schema_components([*types, ErrorAnswer], ref_template=_REF)
    components["MetadataValue"] = _METADATA_VALUE
    for schema in components.values():
        # Docstrings as inspect.cleandoc leaves them, whichever msgspec release read them
        # (0.23 began to dedent them itself).
        if "description" in schema:
            schema["description"] = inspect.cleandoc(schema["description"])
    schema_of = dict(zip([*types, ErrorAnswer], refs, strict=True))
    paths: dict[str, Any] = {}
    for op in operations:
        responses: dict[str, Any] = {
            str(status): {
                "description": meaning,
                "content": {"application/json": {"schema": schema_of[body]}},
            }
            for status, (meaning, body) in op.answers.items()
            if body is not None
        }
        for status, meaning in _COMMON_ERRORS.items():
            responses.setdefault(
                str(status),
                {
                    "description": meaning,
                    "content": {"application/json": {"schema": schema_of[ErrorAnswer]}},
                },
            )
        for status, (meaning, body) in op.answers.items():
            if body is None:
                responses[str(status)] = {
                    "description": meaning,
                    "content": {"application/json": {"schema": schema_of[ErrorAnswer]}},
                }
        for name, (target, expression) in op.links.items():
            success = responses[str(min(op.answers))]
            link = {"operationId": target, "parameters": {"id": expression}}
            success.setdefault("links", {})[name] = link
        described: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "parameters": _parameters(op),
        }
        if op.body is not None:
            described["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_of[op.body]}},
            }
        described["responses"] = dict(sorted(responses.items()))
        paths.setdefault(op.path, {})[op.method.lower()] = described
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Parley internal API",
            "version": __version__,
            "description": "What the marketplace backend calls: users, products, notices, reports.",
        },
        "security": [{"service": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"service": {"type": "http", "scheme": "bearer"}},
        },
    }


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if "{id}" in op.path:
        parameters.append(
            {
                "name": "id",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
            }
        )
    if op.query is not None:
        for field in msgspec.structs.fields(op.query):
            parameters.append(
                {
                    "name": field.encode_name,
                    "in": "query",
                    "required": field.required,
                    "schema": msgspec.json.schema(field.type),
                }
            )
    return parameters


def dumps(operations: list[Operation]) -> str:
    return json.dumps(document(operations), indent=2, sort_keys=True) + "\n"
