"""Pieces every part of the OpenAPI document uses: answers, security, shared parameters."""

from __future__ import annotations

from typing import Any


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }


def _json(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


SIGNED: list[dict[str, list[str]]] = [{"httpMessageSignature": []}]
NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u001f\\u007f]*$"

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
NOTICE_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
