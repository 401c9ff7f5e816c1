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


# The reader's language for names from the policy and directory files (broker.titles): the
# channel's title, field and value labels, role titles, jurisdiction and organisation names.
ACCEPT_LANGUAGE: dict[str, Any] = {
    "name": "Accept-Language",
    "in": "header",
    "description": (
        "Names in this language (en, sq, bs, hr, sr-Latn, sr-Cyrl, cnr, mk; sr reads sr-Latn); "
        "a name the files do not give in it, or no header, is the files' default text "
        "(English, else the file's first language). The answer has Vary: Accept-Language and "
        "Content-Language when one was chosen. A negotiation hint: any value is taken, and "
        "one naming none of these languages gives the default text."
    ),
    "schema": {"type": "string"},
}
